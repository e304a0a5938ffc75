"""No import circles between the project's modules.

Every import counts, at the top of a file or inside a function: an import moved into a function to dodge a circle
still ties the two modules together (each needs the other to be understood, tested or moved), and the first caller to
move it back to the top turns it into an ImportError at start. tests/test_layout.py checks the direction between rooms;
this checks every module against every other, inside a room too.

A circle shows up as a strongly connected component of the graph (Tarjan); one circle in it is printed, module by
module, with the line of each import.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOT_SCANNED = {"tests"}

# Circles left on purpose, each with its reason. A circle found is let through when all its modules are in one of
# these sets (so breaking part of one needs no change here).
ALLOWED: list[frozenset[str]] = []  # none: every circle fails the test


def allowed(component: set[str]) -> bool:
    return any(component <= a for a in ALLOWED)


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_files(root: Path = ROOT) -> dict[str, Path]:
    """module name -> file, for every module of the tree's packages and the top-level modules."""
    out = {p.stem: p for p in root.glob("*.py")}
    for init in root.glob("*/__init__.py"):
        if init.parent.name in NOT_SCANNED:
            continue
        for f in init.parent.rglob("*.py"):
            if "migrations" not in f.relative_to(root).parts:
                out[module_name(f, root)] = f
    return out


def _type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def type_only(tree: ast.Module) -> set[int]:
    """The nodes under `if TYPE_CHECKING:`: imports for the type checker only, never run, so no circle at import time
    (a rule's module names the Case it works on; the Case imports the rules)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _type_checking(node.test):
            for child in node.body:
                out.update(id(n) for n in ast.walk(child))
    return out


def imports_of(name: str, path: Path, known: set[str]) -> list[tuple[str, int]]:
    """(project module, line) for each import in the file, at any depth of it, relative ones resolved."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    skipped = type_only(tree)
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1] if package else []
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            # `from pkg import sub` imports the module pkg.sub; `from mod import thing` imports mod
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in known else module for a in node.names]
        else:
            continue
        for target in targets:
            # `import a.b.c` of a name that is no module of ours (a third-party one, or a.b.c an attribute): its
            # longest known prefix, if any
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.append((target, node.lineno))
    return found


def graph(root: Path = ROOT) -> dict[str, dict[str, int]]:
    """module -> {imported module: line of the first such import}."""
    files = project_files(root)
    known = set(files)
    out: dict[str, dict[str, int]] = {}
    for name, path in files.items():
        edges: dict[str, int] = {}
        for target, line in imports_of(name, path, known):
            edges.setdefault(target, line)
        out[name] = edges
    return out


def components(g: dict[str, dict[str, int]]) -> list[set[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    counter = 0
    for start in sorted(g):
        if start in index:
            continue
        work = [(start, iter(sorted(g[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(g.get(child, {})))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def one_circle(g: dict[str, dict[str, int]], component: set[str]) -> list[str]:
    """A shortest circle through the component's first module (breadth first), as 'a:line -> b' steps."""
    start = min(component)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(g[node]):
                if child not in component:
                    continue
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    path.reverse()
                    path.append(start)
                    return [f"{a} (line {g[a][b]}) -> {b}" for a, b in zip(path, path[1:], strict=False)]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"no circle through {start}")


def circles(root: Path = ROOT) -> list[str]:
    g = graph(root)
    out = []
    for component in sorted(components(g), key=min):
        if allowed(component):
            continue
        out.append(f"{sorted(component)}:\n    " + "\n    ".join(one_circle(g, component)))
    return out


def test_the_graph_is_built():
    g = graph()
    assert len(g) > 100
    assert "domain.models" in g["domain.allocation"]
    assert "infra.config" in g["worker"]


def test_no_import_circles():
    found = circles()
    assert not found, "import circles between project modules (move the shared thing to the module it belongs in):\n" + (
        "\n".join(found)
    )


def test_the_allowed_circles_still_exist():
    """An allowed circle that has been broken is taken off the list, so that it cannot come back unseen."""
    present = components(graph())
    gone = [sorted(a) for a in ALLOWED if not any(c <= a for c in present)]
    assert not gone, f"allowed circles no longer there (remove them from ALLOWED): {gone}"


def test_a_circle_is_caught_at_function_level(tmp_path):
    """The checker itself: a circle through an import inside a function is found, with its lines; a one-way import
    (and a relative one) is not a circle."""
    (tmp_path / "room").mkdir()
    (tmp_path / "room" / "__init__.py").write_text("")
    (tmp_path / "room" / "a.py").write_text("from room import b\n")
    (tmp_path / "room" / "b.py").write_text("import os\n\n\ndef f():\n    from room.a import thing\n")
    (tmp_path / "room" / "c.py").write_text("from . import a\nfrom .b import f\n")
    assert graph(tmp_path)["room.c"] == {"room.a": 1, "room.b": 2}
    assert circles(tmp_path) == ["['room.a', 'room.b']:\n    room.a (line 1) -> room.b\n    room.b (line 5) -> room.a"]


def test_an_import_for_the_type_checker_only_is_no_circle(tmp_path):
    """`if TYPE_CHECKING:` imports never run: a module may name, for its types, one that imports it; the same import
    outside the block is a circle."""
    (tmp_path / "room").mkdir()
    (tmp_path / "room" / "__init__.py").write_text("")
    (tmp_path / "room" / "a.py").write_text("from room import b\n")
    (tmp_path / "room" / "b.py").write_text(
        "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from room.a import thing\n"
    )
    assert circles(tmp_path) == []
    (tmp_path / "room" / "b.py").write_text("import typing\n\nif typing.TYPE_CHECKING:\n    pass\nfrom room.a import thing\n")
    assert len(circles(tmp_path)) == 1
