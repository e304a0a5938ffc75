"""Result rows and tables: metric, ours, baseline, ratio, goal, met?; printed with rich, saved as JSON."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table as RichTable


@dataclass
class Row:
    metric: str
    ours: float | None
    baseline: float | None = None
    unit: str = ""
    goal: str = ""  # e.g. ">= 0.8" on the ratio, or "<= 150" on ours
    goal_on: str = "ratio"  # "ratio" or "ours"
    note: str = ""
    ratio: float | None = None
    met: bool | None = None

    def __post_init__(self) -> None:
        if self.ratio is None and self.ours is not None and self.baseline:
            self.ratio = self.ours / self.baseline
        if self.goal and self.met is None:
            value = self.ratio if self.goal_on == "ratio" else self.ours
            if value is not None:
                op, limit = self.goal.split()
                self.met = value >= float(limit) if op == ">=" else value <= float(limit)


@dataclass
class Table:
    title: str
    rows: list[Row] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)  # sizes, settings, extra figures

    def add(self, *rows: Row) -> Table:
        self.rows.extend(rows)
        return self

    def render(self) -> RichTable:
        t = RichTable(title=self.title, title_justify="left")
        for col, just in (
            ("metric", "left"),
            ("ours", "right"),
            ("baseline", "right"),
            ("ratio", "right"),
            ("goal", "left"),
            ("met?", "center"),
        ):
            t.add_column(col, justify=just)
        for r in self.rows:
            t.add_row(
                r.metric + (f" ({r.unit})" if r.unit else ""),
                fmt(r.ours),
                fmt(r.baseline),
                fmt(r.ratio, 2),
                (("ratio " if r.goal_on == "ratio" else "ours ") + r.goal) if r.goal else "—",
                "—" if r.met is None else ("yes" if r.met else "NO"),
            )
        if self.facts:
            t.caption = "; ".join(f"{k}: {v}" for k, v in self.facts.items())
            t.caption_justify = "left"
        return t

    def to_json(self) -> dict:
        return {"title": self.title, "rows": [asdict(r) for r in self.rows], "facts": self.facts}


def fmt(value: float | None, digits: int | None = None) -> str:
    if value is None:
        return "—"
    if digits is not None:
        return f"{value:.{digits}f}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if abs(value) >= 1 else f"{value:.3f}"


def machine() -> dict[str, Any]:
    import temporalio

    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        nproc = int(subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout)
    except (OSError, ValueError, subprocess.CalledProcessError):
        nproc = os.cpu_count()
    mem = None
    try:
        mem = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {
        "nproc": nproc,
        "cpu": cpu,
        "memory_gib": mem,
        "python": platform.python_version(),
        "temporalio": temporalio.__version__,
        "os": platform.platform(),
        "load_1m_at_start": load,
    }


def machine_table(info: dict[str, Any]) -> RichTable:
    t = RichTable(title="Machine", title_justify="left", show_header=False)
    t.add_column("what")
    t.add_column("value")
    for k, v in info.items():
        t.add_row(k, str(v))
    return t


def print_tables(console: Console, tables: list[Table]) -> None:
    for table in tables:
        console.print(table.render())
        console.print()


def save(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
