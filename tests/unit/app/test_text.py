"""Text from kits made safe to show, and the names of result files the app will save."""

from __future__ import annotations

import io
import logging

import pytest

from agent.toolkit.logs import PrintableFormatter
from app.fleet.results import name_problem
from app.fleet.text import printable, printable_lines


def test_control_characters_are_escaped_and_ordinary_unicode_is_kept() -> None:
    assert printable("evil\x1b[2J\r\u202eexe.txt\x00\x7f\x9b") == (
        "evil\\x1b[2J\\r\\u202eexe.txt\\x00\\x7f\\x9b"
    )
    assert printable("Zürich 東京 kit-1 ✓ a\\b") == "Zürich 東京 kit-1 ✓ a\\b"
    assert printable_lines("line one\r\n\tline two\x1b") == "line one\\r\n\tline two\\x1b"


def test_log_records_stay_one_line_and_tracebacks_are_escaped() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(PrintableFormatter("%(levelname)s %(message)s"))
    log = logging.getLogger("test-text")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("schedule %s skipped", "a\nFAKE line\x1b[2J")
        try:
            raise ValueError("kit said \x1b]0;title\x07")
        except ValueError:
            log.exception("bug")
    finally:
        log.removeHandler(handler)
    text = out.getvalue()
    assert text.startswith("WARNING schedule a\\nFAKE line\\x1b[2J skipped\nERROR bug\nTraceback")
    assert "ValueError: kit said \\x1b]0;title\\x07" in text
    assert "\x1b" not in text


@pytest.mark.parametrize("name", ["results.jsonl", "results.1.csv", "model.onnx", "a_b-c.txt"])
def test_plain_result_names_are_saved(name: str) -> None:
    assert name_problem(name) is None


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "empty"),
        ("../x", "path"),
        ("..", "path"),
        ("/etc/passwd", "path"),
        ("a\\b", "path"),
        (".bashrc", "hidden"),
        ("job.json", "app's own"),
        ("x" * 101, "longer"),
        ("a\x1bb", "control"),
        ("a\u202eb", "control"),
        ("a b", "characters"),
        ("ä.txt", "characters"),
        ("x.", "characters"),
        ("CON.txt", "Windows"),
        ("nul", "Windows"),
    ],
)
def test_other_result_names_are_refused_with_the_reason(name: str, why: str) -> None:
    problem = name_problem(name)
    assert problem is not None
    assert why in problem
