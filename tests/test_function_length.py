"""No function or method longer than 80 lines without a stated reason.

A long function is read, tested and changed as one piece: its steps cannot be named, reused or checked apart. The
limit counts the lines from the `def` (its decorators not included) to the last line of its body, docstring and
comments included, the way `ast` reports them (end_lineno - lineno + 1). A function that should stay long (a literal
table, say) goes in REASONS with one sentence saying why; an entry whose function is gone or is no longer over the
limit fails too, so the list says only what is true.

Every .py file of the tree is read, but for the virtualenv, build output, var/, the tests and the Alembic migrations'
versions (each an upgrade written once and never changed).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 80

# Top-level folders left out, and paths under the root left out with everything below them.
SKIPPED_DIRS = {".venv", "build", "var", "tests"}
SKIPPED_PATHS = ("db/migrations/versions/",)

# "path::qualname" -> why it stays over LIMIT lines. The qualname is Python's: Class.method, outer.<locals>.inner.
REASONS: dict[str, str] = {}  # none: every function is within the limit


def project_files(root: Path) -> list[Path]:
    """Every .py file under root that the limit applies to, sorted so the failure lists read the same each run."""
    out = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] in SKIPPED_DIRS or rel.parts[0].startswith("."):
            continue
        if rel.as_posix().startswith(SKIPPED_PATHS):
            continue
        out.append(path)
    return out


def function_lengths(path: Path, root: Path) -> dict[str, int]:
    """ "path::qualname" -> length in lines, for every function and method in the file, nested ones too."""
    rel = path.relative_to(root).as_posix()
    found: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                qualname = prefix + child.name
                assert child.end_lineno is not None
                found[f"{rel}::{qualname}"] = child.end_lineno - child.lineno + 1
                visit(child, qualname + ".<locals>.")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
            else:
                visit(child, prefix)

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)), "")
    return found


def all_lengths(root: Path) -> dict[str, int]:
    lengths: dict[str, int] = {}
    for path in project_files(root):
        lengths.update(function_lengths(path, root))
    return lengths


def problems(root: Path, reasons: dict[str, str], limit: int = LIMIT) -> list[str]:
    """One line per function over the limit with no reason, and per reason that no longer applies."""
    lengths = all_lengths(root)
    out = [
        f"{key}: {n} lines (limit {limit}): split it, or give its reason in REASONS"
        for key, n in sorted(lengths.items())
        if n > limit and key not in reasons
    ]
    for key in sorted(reasons):
        if key not in lengths:
            out.append(f"{key}: in REASONS but no such function any more: remove the entry")
        elif lengths[key] <= limit:
            out.append(f"{key}: in REASONS but {lengths[key]} lines now (limit {limit}): remove the entry")
        elif not reasons[key].strip():
            out.append(f"{key}: in REASONS with no reason")
    return out


def test_no_function_over_the_limit_without_a_reason():
    found = problems(ROOT, REASONS)
    assert not found, "\n".join(found)


def _long_def(header: str, indent: str = "") -> str:
    """A function of LIMIT + 1 lines (its def and LIMIT statements), indented for where it goes."""
    lines = [header] + [f"    x{i} = {i}" for i in range(LIMIT)]
    return "".join(f"{indent}{line}\n" for line in lines)


def test_the_checker_catches_long_functions_and_stale_reasons(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text(
        _long_def("def long():")
        + "def short():\n    return 1\n"
        + "class C:\n"
        + _long_def("async def method(self):", "    ")
        + "def outer():\n"
        + _long_def("def inner():", "    ")
        + "    return inner\n",
        encoding="utf-8",
    )
    for skipped in ("tests", ".venv", "var", "build", "db/migrations/versions"):
        (tmp_path / skipped).mkdir(parents=True)
        (tmp_path / skipped / "skipped.py").write_text(_long_def("def long():"), encoding="utf-8")

    found = problems(tmp_path, {})
    assert [line.split(": ")[0] for line in found] == [
        "pkg/mod.py::C.method",
        "pkg/mod.py::long",
        "pkg/mod.py::outer",
        "pkg/mod.py::outer.<locals>.inner",
    ], found

    reasons = {
        "pkg/mod.py::long": "a literal table",
        "pkg/mod.py::C.method": "a literal table",
        "pkg/mod.py::outer": "a literal table",
        "pkg/mod.py::outer.<locals>.inner": "a literal table",
        "pkg/mod.py::short": "it was long once",
        "pkg/mod.py::gone": "it was here once",
    }
    assert problems(tmp_path, reasons) == [
        "pkg/mod.py::gone: in REASONS but no such function any more: remove the entry",
        f"pkg/mod.py::short: in REASONS but 2 lines now (limit {LIMIT}): remove the entry",
    ]
