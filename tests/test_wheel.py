"""The wheel `pip install .` builds (the Dockerfile's install) carries every package of the tree and imports from it.

setuptools installs only the packages listed in pyproject.toml: a package missing there works in the checkout (the
tests run from it) and is absent from an installed build. Here the wheel is built, unpacked, and every module is
imported from the unpacked copy by an interpreter that cannot see the checkout.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Not the project's code: the tests, and what the checkout holds beside the packages (data, docs, local state).
NOT_PACKAGED = {"tests"}
# Files inside package folders that are not loaded at run time, so not package data.
NOT_DATA = {"console/static/vendor/VENDOR.md"}


def tree_packages(root: Path = ROOT) -> list[str]:
    """Every package in the checkout (a folder with __init__.py under a package, from the top), tests/ aside."""
    found = []
    for init in sorted(root.glob("**/__init__.py")):
        parts = init.parent.relative_to(root).parts
        if not parts or parts[0].startswith(".") or parts[0] in NOT_PACKAGED:
            continue
        if all((root.joinpath(*parts[:i]) / "__init__.py").exists() for i in range(1, len(parts) + 1)):
            found.append(".".join(parts))
    return found


def tree_files(root: Path = ROOT) -> set[str]:
    """The files a complete build carries: each package's files (code and data) and the top-level modules."""
    files = {p.name for p in root.glob("*.py")}
    for package in tree_packages(root):
        folder = root.joinpath(*package.split("."))
        for f in folder.rglob("*"):
            rel = f.relative_to(root)
            if not f.is_file() or "__pycache__" in rel.parts or f.suffix == ".pyc" or rel.as_posix() in NOT_DATA:
                continue
            # a subfolder that is a package of its own is counted there; one that is not (templates/) belongs here
            inner = f.parent
            while inner != folder and not (inner / "__init__.py").exists():
                inner = inner.parent
            if inner == folder:
                files.add(rel.as_posix())
    return files


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the checkout (an in-place build would leave build/ and *.egg-info in it)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    skip = shutil.ignore_patterns(".venv", ".git", "var", "build", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis")
    shutil.copytree(ROOT, src, ignore=skip)
    out = tmp / "dist"
    # --no-build-isolation: the build backend is the dev install's (setuptools, pinned in pyproject.toml's dev extra),
    # so the test needs no package index
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q", "-w", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (built,) = out.glob("*.whl")
    return built


def test_the_tree_is_found():
    packages = tree_packages()
    assert {"domain", "workflows", "access", "api.routes", "console"} <= set(packages)
    assert "tests" not in packages


def test_the_wheel_carries_every_package_and_its_data(wheel):
    with zipfile.ZipFile(wheel) as z:
        carried = {n for n in z.namelist() if ".dist-info/" not in n}
    missing = sorted(tree_files() - carried)
    assert not missing, "files of the tree that the wheel lacks (pyproject.toml [tool.setuptools]):\n" + "\n".join(missing)
    assert not {n for n in carried if n.startswith("tests/")}


def test_every_module_imports_from_the_wheel(wheel, tmp_path):
    """Each module of the unpacked wheel imports in an interpreter that does not see the checkout (-I: no current
    folder on sys.path; the editable install's finder is taken off), and comes from the wheel, not the checkout.

    The policies and the official calendars are data files the code finds beside its packages (domain/policy.py,
    domain/calendar.py), not package data: the image runs the code from /app, where policies/ lies beside it. So the
    unpacked wheel gets a copy of policies/ beside it too, and nothing else of the checkout."""
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
        modules = sorted(
            n.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
            for n in z.namelist()
            if n.endswith(".py") and not n.endswith("__main__.py") and ".dist-info/" not in n and "/migrations/" not in n
        )
    shutil.copytree(ROOT / "policies", site / "policies")
    script = f"""
import importlib, sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in getattr(f, "__module__", "")]
sys.path[:] = [p for p in sys.path if p not in ("", {str(ROOT)!r})]
sys.path.insert(0, {str(site)!r})
for name in {modules!r}:
    module = importlib.import_module(name)
    assert (module.__file__ or "").startswith({str(site)!r}), f"{{name}} came from {{module.__file__}}"
print(len({modules!r}))
"""
    result = subprocess.run([sys.executable, "-I", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert int(result.stdout.split()[-1]) == len(modules) > 100
