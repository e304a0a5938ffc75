"""The README and docs/ as a newcomer uses them: every relative link opens a file (and its #anchor a heading there),
every `make` target quoted exists in the Makefile, and every `python starter.py ...` command quoted parses with the
real command line's parser (its command, its flags and their choices). The README stays short enough to read in
five minutes; the rest is in docs/, one file per reader."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_MAX = 12 * 1024
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"```[a-z]*\n(.*?)```", re.S)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    s = re.sub(r"[`*]", "", heading.strip().lower())
    s = re.sub(r"[^\w\- \u4e00-\u9fff]", "", s)
    return s.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return {slug(m.group(1)) for m in re.finditer(r"(?m)^#{1,6} (.+)$", text)}


def links(path: Path) -> list[str]:
    return [m.group(1) for m in LINK.finditer(FENCE.sub("", path.read_text(encoding="utf-8")))]


def test_the_readme_is_short_and_names_every_reader_page():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.encode()) <= README_MAX, f"README.md is {len(text.encode())} bytes; keep it under {README_MAX}"
    for part in ("## The two commands", "make demo", "make test", "## A first case"):
        assert part in text
    for page in ("floor", "integrating", "compliance", "operations", "strategy", "engineering"):
        assert f"(docs/{page}.md)" in text, f"the README does not send anyone to docs/{page}.md"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_opens_a_file_and_its_anchor(page):
    broken = []
    for target in links(page):
        if re.match(r"^[a-z]+:", target):  # http(s), mailto, geo
            continue
        path, _, anchor = target.partition("#")
        where = (page.parent / path).resolve() if path else page
        if not where.exists():
            broken.append(f"{target}: no file {where.relative_to(ROOT) if ROOT in where.parents else where}")
        elif anchor and where.suffix == ".md" and anchor not in anchors(where):
            broken.append(f"{target}: no heading #{anchor} in {where.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def quoted_commands(text: str, program: str) -> list[str]:
    """Each `program ...` line of the code blocks and inline code, continuation lines joined, comments cut."""
    found = []
    for block in FENCE.findall(text):
        joined = re.sub(r"\\\n\s*", " ", block)
        found += [line.strip() for line in joined.splitlines() if line.strip().startswith(program)]
    found += [m.group(1) for m in re.finditer(r"`(" + re.escape(program) + r"[^`]*)`", FENCE.sub("", text))]
    cut = [re.split(r"\s(?:\||>|&&|;)\s", re.sub(r"\s+#.*$", "", c))[0] for c in found]  # no pipes, redirections
    return [c.strip() for c in cut]


def test_every_make_target_quoted_exists():
    targets = set(re.findall(r"(?m)^([a-z][a-z-]*):", (ROOT / "Makefile").read_text()))
    missing = []
    for page in PAGES:
        for cmd in quoted_commands(page.read_text(encoding="utf-8"), "make "):
            words = cmd.split()
            if len(words) > 1 and not words[1].startswith("-") and "=" not in words[1] and words[1] not in targets:
                missing.append(f"{page.name}: {cmd}")
    assert not missing, f"make targets quoted but not in the Makefile: {missing}"


def test_every_starter_command_quoted_parses():
    import starter

    bad = []
    seen = 0
    for page in PAGES:
        for cmd in quoted_commands(page.read_text(encoding="utf-8"), "python starter.py"):
            if "..." in cmd or "<" in cmd or cmd.endswith("starter.py"):
                continue  # a template, not a command
            try:
                argv = shlex.split(cmd)[2:]
            except ValueError:
                bad.append(f"{page.name}: {cmd}: not shell words")
                continue
            if not argv or argv[0].startswith("-"):
                continue
            seen += 1
            err = io.StringIO()
            try:
                with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                    starter.parser().parse_args(argv)
            except SystemExit as exc:
                if exc.code not in (0, None):  # --help exits 0
                    bad.append(f"{page.name}: {cmd}: {err.getvalue().strip().splitlines()[-1]}")
    assert seen >= 20, f"only {seen} starter.py commands found in the docs"
    assert not bad, "starter.py commands in the docs that do not parse:\n" + "\n".join(bad)
