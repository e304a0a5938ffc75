"""Item 6: the strategy simulator's direct engine (sim.direct), each run a fresh process.

    python -m bench --only direct                                   # 10,000 loans x 365 days
    python -m bench --only direct --direct-loans 10000,100000 --direct-sweep 10000

Each run is `starter.py simulate` in a child process (the command a strategy analyst types), timed
from outside; its CPU time and peak resident memory are the child's and its worker processes' (wait4:
the largest resident set among them). The machine is shared: the 1-minute load average is noted
before and after each run, beside the figure.

The baseline is the previous 10,000-loan run on the real workflows (`--engine temporal`), from the
committed report (docs/simulation-10000), labelled with its date: it took about an hour and is not
rerun here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.report import Row, Table

ROOT = Path(__file__).resolve().parent.parent
TEMPORAL_10K = ROOT / "docs" / "simulation-10000" / "summary.json"
# the goals for the direct engine (seconds for so many loans), on this 2-core machine
GOALS = {10_000: 60, 100_000: 600}
SWEEP_GOAL = 900
SWEEP = [
    "--sweep",
    "steps.home_visit.dpd=20,30,45",
    "--sweep",
    "plans.max_instalments=6,12",
    "--sweep",
    "promise.max_days_ahead=7,14",
]  # 3 x 2 x 2 = 12 variants


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def run_child(args: list[str], out: Path) -> dict:
    """As `measure`, with wait4 for the child's CPU time and peak RSS (its workers included)."""
    before = _load()
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as so, tempfile.TemporaryFile("w+") as se:
        proc = subprocess.Popen(
            [sys.executable, "starter.py", "simulate", *args, "--out", str(out), "--json"],
            cwd=ROOT,
            stdout=so,
            stderr=se,
            text=True,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        so.seek(0)
        se.seek(0)
        stdout, stderr = so.read(), se.read()
    if proc.returncode != 0:
        raise RuntimeError(f"simulate {' '.join(args)} failed ({proc.returncode}): {stderr[-2000:]}")
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "peak_rss_mib": usage.ru_maxrss / 1024,
        "summary": json.loads(stdout),
        "load_before": before,
        "load_after": _load(),
    }


def temporal_baseline() -> tuple[float | None, str]:
    try:
        s = json.loads(TEMPORAL_10K.read_text())
    except (OSError, ValueError):
        return None, "no committed temporal report"
    run = s.get("run", {})
    if run.get("engine", "temporal") != "temporal":
        run = s.get("temporal_run", {})
    wall = run.get("wall_seconds")
    return wall, f"temporal engine, 10,000 loans, {run.get('measured_on', 'run of 2026-11-28')}"


def run(loans: list[int], days: int, sweep_loans: int | None, workers: int | None) -> Table:
    t = Table("6. Direct simulator (sim.direct): simulate --engine direct, each run a fresh process")
    base_wall, base_label = temporal_baseline()
    extra = ["--workers", str(workers)] if workers else []
    with tempfile.TemporaryDirectory(prefix="bench-direct-") as tmp:
        for n in loans:
            r = run_child(
                ["--challenger", "policies/challenger-early-legal.toml", "--loans", str(n), "--days", str(days), *extra],
                Path(tmp) / f"sim-{n}",
            )
            goal = GOALS.get(n)
            t.add(
                Row(
                    f"{n:,} loans x {days} days, wall",
                    round(r["wall"], 1),
                    baseline=base_wall if n == 10_000 and days == 365 else None,
                    unit="s",
                    goal=f"<= {goal}" if goal and days == 365 else "",
                    goal_on="ours",
                    note=f"load {r['load_before']} -> {r['load_after']}" + (f"; baseline: {base_label}" if n == 10_000 else ""),
                ),
                Row(
                    f"{n:,} loans: CPU per loan-year",
                    round(1000 * r["cpu"] / n * 365 / days, 2),
                    unit="ms",
                    note="the child and its workers",
                ),
                Row(
                    f"{n:,} loans: peak RSS",
                    round(r["peak_rss_mib"]),
                    unit="MiB",
                    goal="<= 4096" if n >= 100_000 else "",
                    goal_on="ours",
                    note="largest process",
                ),
            )
            t.facts[f"{n} loans load"] = f"{r['load_before']} -> {r['load_after']}"
        if sweep_loans:
            r = run_child([*SWEEP, "--loans", str(sweep_loans), "--days", str(days), *extra], Path(tmp) / "sweep")
            variants = len(r["summary"]["rows"])
            t.add(
                Row(
                    f"sweep {variants} variants x {sweep_loans:,} loans x {days} days, wall",
                    round(r["wall"], 1),
                    unit="s",
                    goal=f"<= {SWEEP_GOAL}" if variants == 12 and sweep_loans == 10_000 and days == 365 else "",
                    goal_on="ours",
                    note=f"load {r['load_before']} -> {r['load_after']}",
                )
            )
            t.facts["sweep load"] = f"{r['load_before']} -> {r['load_after']}"
    t.facts["machine"] = "shared (other jobs may run): load averages beside each figure"
    return t
