"""Every message a technician reads names a command or a window action, never the API or the
source (issue 20): no "GET /v1/models", no "see agent/api/schemas.py", no "pass force=true"
where the flag is --force, no "(UnidentifiedImageError)".

The scan reads the arguments of every refusal and error the code raises or builds, in the
agent (its hints reach technicians through the app) and the app alike.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
FORBIDDEN = [
    (re.compile(r"\b(GET|POST|PUT|PATCH|DELETE) /v1"), "an API call"),
    (re.compile(r"/v1/\w"), "an API path"),
    (re.compile(r"(?<![\w.-])[\w/]+\.py\b"), "a source file"),
    (re.compile(r"\bforce=true\b"), "an API parameter"),
    (re.compile(r"\bpython packaging/"), "a script from the source tree"),
    (re.compile(r"\bopenapi\.json\b"), "the API's schema"),
]
_MESSAGE_KEYWORDS = {"message", "hint", "detail", "reason"}


def _raised_calls(tree: ast.AST) -> Iterator[ast.Call]:
    """Calls that build an error or refusal: `Name(...)` or `mod.Name(...)` where the name ends
    in Error, Refusal or is one of the refusal causes (the toolkit's errors module)."""
    causes = {"BadInput", "Forbidden", "NotFound", "Conflict", "TooLarge", "Unsupported"}
    causes |= {"Invalid", "Busy", "Unavailable", "NoRoom", "JobFailed", "error_response", "body_of"}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if name in causes or name.endswith(("Error", "Refusal")):
            yield node


def _texts(node: ast.AST) -> Iterator[tuple[str, bool]]:
    """The literal text in an argument (f-string parts too), and whether an exception's class
    name is formatted into it."""
    for part in ast.walk(node):
        if isinstance(part, ast.Constant) and isinstance(part.value, str):
            yield part.value, False
        if (
            isinstance(part, ast.Attribute)
            and part.attr == "__name__"
            and isinstance(part.value, ast.Call)
            and isinstance(part.value.func, ast.Name)
            and part.value.func.id == "type"
        ):
            yield "", True


def _findings() -> list[str]:
    found = []
    for path in sorted([*ROOT.glob("agent/**/*.py"), *ROOT.glob("app/**/*.py")]):
        tree = ast.parse(path.read_text(), str(path))
        for call in _raised_calls(tree):
            args = [*call.args, *(k.value for k in call.keywords if k.arg in _MESSAGE_KEYWORDS)]
            for arg in args:
                for text, class_name in _texts(arg):
                    where = f"{path.relative_to(ROOT)}:{call.lineno}"
                    if class_name:
                        found.append(f"{where}: an exception's class name in a message")
                    found += [f"{where}: {what} in {text!r}" for rx, what in FORBIDDEN if rx.search(text)]
    return found


def test_messages_name_commands_not_the_api_or_the_source() -> None:
    assert _findings() == []


def test_the_scan_finds_what_it_looks_for(tmp_path: Path) -> None:
    tree = ast.parse(
        'raise NotFound("model_not_found", f"no {n}", "list models with GET /v1/models")\n'
        'raise Error(f"bad image ({type(exc).__name__})")\n'
        'raise Conflict("x", "y", "see agent/api/schemas.py, or pass force=true")\n'
    )
    texts = [(t, c) for call in _raised_calls(tree) for arg in call.args for t, c in _texts(arg)]
    assert any(c for _, c in texts)
    flagged = {what for t, _ in texts for rx, what in FORBIDDEN if rx.search(t)}
    assert flagged == {"an API call", "an API path", "a source file", "an API parameter"}
