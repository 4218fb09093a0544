"""Every message a technician reads names a command or a window action, never the API or the
source (issue 20): no "GET /v1/models", no "see agent/api/schemas.py", no "pass force=true"
where the flag is --force, no "(UnidentifiedImageError)".

The scan reads the arguments of every refusal and error the code raises or builds, every note
or warning appended for a technician, and every command's help, in the agent (its hints reach
technicians through the app) and the app alike; and any text anywhere that explains a failure
by an exception's class name alone ("a probe run failed (InvalidArgument)").
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
_MESSAGE_KEYWORDS = {"message", "hint", "detail", "reason", "help", "description", "epilog"}
_NOTE_LISTS = {"notes", "warnings", "reasons"}  # what a command or window shows under a result
_HELP_CALLS = {"add_argument", "add_parser", "add_argument_group", "command"}


def _raised_calls(tree: ast.AST) -> Iterator[ast.Call]:
    """Calls that build text a technician reads: an error or refusal (`Name(...)` or
    `mod.Name(...)` where the name ends in Error, Refusal or is one of the refusal causes of the
    toolkit's errors module), a note or warning appended to its list, a command's help."""
    causes = {"BadInput", "Forbidden", "NotFound", "Conflict", "TooLarge", "Unsupported"}
    causes |= {"Invalid", "Busy", "Unavailable", "NoRoom", "JobFailed", "error_response", "body_of"}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if name in causes or name in _HELP_CALLS or name.endswith(("Error", "Refusal")) or _noted(func):
            yield node


def _noted(func: ast.expr) -> bool:
    """`notes.append(...)`, `self.warnings.append(...)` and the like."""
    if not (isinstance(func, ast.Attribute) and func.attr == "append"):
        return False
    owner = func.value
    name = owner.id if isinstance(owner, ast.Name) else owner.attr if isinstance(owner, ast.Attribute) else ""
    return name in _NOTE_LISTS


def _class_names_in_brackets(tree: ast.AST) -> Iterator[int]:
    """Lines of f-strings that explain a failure by the exception's class name alone:
    `f"... failed ({type(exc).__name__})"`, wherever the text goes."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.JoinedStr):
            continue
        for before, part in zip(node.values, node.values[1:], strict=False):
            if (
                isinstance(before, ast.Constant)
                and str(before.value).endswith("(")
                and isinstance(part, ast.FormattedValue)
                and _is_class_name(part.value)
            ):
                yield node.lineno


def _is_class_name(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "__name__"
        and isinstance(node.value, ast.Call)
        and isinstance(node.value.func, ast.Name)
        and node.value.func.id == "type"
    )


def _texts(node: ast.AST) -> Iterator[tuple[str, bool]]:
    """The literal text in an argument (f-string parts too), and whether an exception's class
    name is formatted into it."""
    for part in ast.walk(node):
        if isinstance(part, ast.Constant) and isinstance(part.value, str):
            yield part.value, False
        if isinstance(part, ast.expr) and _is_class_name(part):
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
        found += [
            f"{path.relative_to(ROOT)}:{line}: a failure explained by its class name"
            for line in _class_names_in_brackets(tree)
        ]
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


def test_the_scan_reads_notes_help_and_bracketed_class_names_too() -> None:
    tree = ast.parse(
        'notes.append(f"pre-processing failed ({type(exc).__name__})")\n'
        'self.warnings.append("see app/fleet/deploy.py")\n'
        'parser.add_argument("--agent-upgrade", help="from packaging/wheelhouse.py")\n'
        'return facts, f"a probe run failed ({type(exc).__name__})"\n'
        'unavailable(family, f"{type(exc).__name__}: {exc}")\n'  # the class beside its message
    )
    calls = list(_raised_calls(tree))
    texts = [
        t for call in calls for arg in [*call.args, *(k.value for k in call.keywords)] for t, _ in _texts(arg)
    ]
    assert len(calls) == 3
    assert sum(bool(FORBIDDEN[2][0].search(t)) for t in texts) == 2, "both source paths"
    assert list(_class_names_in_brackets(tree)) == [1, 4], (
        "the return's text too, not the one with its message"
    )
