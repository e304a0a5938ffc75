"""The strategy simulator: same seed, same numbers; a report with both policies side by side.

A small comparison (40 loans, 120 simulated days) runs twice on the real workflows (`--engine temporal`),
once from the command line and once in-process, each on its own time-skipping test server, gateway and
database. The direct engine (the default) gives the same numbers whatever the number of workers, and
runs sweeps; its agreement with the real workflows is tests/test_simulate_agreement.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sim.behaviour import Borrower, contact_kind
from sim.generate import portfolio
from sim.report import headline
from sim.run import Options, simulate

ROOT = Path(__file__).resolve().parent.parent
CHALLENGER = "policies/challenger-early-legal.toml"
ARGS = dict(loans=40, days=120, seed=11)

# The real workflows' clock starts in the future (1 January next year), and a year with no official calendar file
# is refused every contact (the gate fails closed). Until that year's notice is out and transcribed, the runs on the
# real workflows use this stand-in: TEST ONLY, not transcribed from any notice, never in policies/calendars/.
from tests.conftest import TEST_ONLY_CALENDAR  # noqa: E402 - the suite's stand-in for a year with no notice


def calendars_with_next_year(folder: Path) -> Path:
    """The official calendar files, and a test-only one for next year if it is not on file."""
    import shutil
    from datetime import date

    from domain import calendar

    folder.mkdir(parents=True, exist_ok=True)
    for f in calendar.CALENDAR_DIR.glob("cn-*.toml"):
        shutil.copy(f, folder)
    year = date.today().year + 1
    if not (folder / f"cn-{year}.toml").exists():
        (folder / f"cn-{year}.toml").write_text(TEST_ONLY_CALENDAR.format(year=year, prev=year - 1), encoding="utf-8")
    return folder


@pytest.fixture
def next_year_calendar(tmp_path, monkeypatch):
    from domain import calendar

    folder = calendars_with_next_year(tmp_path / "calendars")
    monkeypatch.setattr(calendar, "CALENDAR_DIR", folder)
    calendar.clear_cache()
    yield folder
    calendar.clear_cache()


def test_the_portfolio_is_reproducible_and_split_in_two():
    a, b = portfolio(7, 200), portfolio(7, 200)
    assert a == b
    assert portfolio(8, 200) != a
    assert portfolio(7, 50) == a[:50]  # a loan is the same loan whatever the size of the portfolio
    assert [ln.arm for ln in a[:4]] == ["champion", "challenger", "champion", "challenger"]
    hashed = portfolio(7, 200, split="hash")
    assert 60 < sum(ln.arm == "champion" for ln in hashed) < 140
    assert {ln.timezone for ln in a} == {"Asia/Shanghai", "Asia/Urumqi", "Asia/Hong_Kong"}
    assert len({ln.segment for ln in a}) >= 3
    assert all(ln.principal > 0 and ln.principal % 100 == 0 and ln.interest >= 0 for ln in a)
    assert min(ln.start_dpd for ln in a) >= 1 and max(ln.start_dpd for ln in a) > 90


def test_contact_kinds():
    assert contact_kind("letter@guarantor") == "guarantor"
    assert contact_kind("bureau_notice") == contact_kind("bureau_report") == "bureau"
    assert contact_kind("lawsuit") == "court" and contact_kind("sms") == "sms"
    assert contact_kind("bureau_correction") is None


def test_a_borrower_decides_from_its_own_generator():
    from datetime import date

    from domain.policy import load_policy

    loan = portfolio(7, 3)[2]
    policy = load_policy("default")
    runs = []
    for _ in range(2):
        b = Borrower(loan, 7, policy, date(2027, 1, 1), 365)
        for day, action in ((1, "sms"), (1, "email"), (8, "call"), (31, "visit"), (46, "letter"), (61, "law_firm")):
            b.on_contact(day, action, "delivered", "answered" if action == "call" else None)
        runs.append([(a.day, a.kind, sorted(a.args.items())) for a in sorted(b.queue)])
    assert runs[0] == runs[1]


async def test_same_seed_same_numbers_and_a_report_with_both_policies(tmp_path, next_year_calendar):
    out1, out2 = tmp_path / "cli", tmp_path / "inproc"
    cli = subprocess.run(
        [
            sys.executable,
            "starter.py",
            "simulate",
            "--engine",
            "temporal",
            "--policy",
            "default",
            "--challenger",
            CHALLENGER,
            "--loans",
            str(ARGS["loans"]),
            "--days",
            str(ARGS["days"]),
            "--seed",
            str(ARGS["seed"]),
            "--out",
            str(out1),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "160", "COLLECTIONS_CALENDAR_DIR": str(next_year_calendar)},
    )
    assert cli.returncode == 0, cli.stderr[-3000:]
    # the side-by-side table, printed
    assert "champion: default" in cli.stdout and "challenger: challenger-early-legal" in cli.stdout
    assert "roll rate M1 → M2" in cli.stdout and "Recovered by step" in cli.stdout

    second = await simulate(Options(champion="default", challenger=CHALLENGER, out=out2, progress=False, **ARGS))
    first = json.loads((out1 / "summary.json").read_text())
    assert headline(first) == headline(json.loads(json.dumps(second, default=str)))

    for out in (out1, out2):
        for name in ("report.md", "summary.json", "dpd_distribution.png", "recovery_curves.png", "recovered_by_step.png"):
            assert (out / name).stat().st_size > 0, name
        assert (out / "dpd_distribution.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        md = (out / "report.md").read_text()
        header = next(line for line in md.splitlines() if line.startswith("| metric"))
        assert "champion: default" in header and "challenger: challenger-early-legal" in header
        for row in (
            "| cure rate (paid or settled) |",
            "| roll rate M2 → M3 |",
            "| recovered (CNY) |",
            "| refusals (contact gate and legal clocks) |",
            "| cases reaching litigation |",
            "| write-offs |",
        ):
            assert row in md, row
        assert "![recovery curves](recovery_curves.png)" in md

    arms = second["arms"]
    assert arms["champion"]["loans"] == arms["challenger"]["loans"] == ARGS["loans"] // 2
    for arm in arms.values():
        # the cases really ran: contacts went out, the gate refused some, and borrowers paid
        assert arm["contacts"] > ARGS["loans"] // 2
        assert arm["refusals"] > 0 and arm["refusals_by_rule"]
        assert arm["recovered"] > 0 and 0 < arm["recovery_rate"] < 1
        assert sum(arm["outcomes"].values()) == arm["loans"]
        assert set(arm["roll_rates"]) == {"M1->M2", "M2->M3", "M3->M3+"}
        assert arm["missing_from_ledger"] == {"loans": 0, "amount": 0}  # every applied payment is in the ledger
    # what differs between the ladders shows: only the champion visits, the challenger sues sooner
    assert arms["champion"]["actions"].get("visit", 0) > 0 and "visit" not in arms["challenger"]["actions"]
    assert "home_visit" not in arms["challenger"]["recovered_by_step"]
    assert second["run"]["failed_workflows"] == []
    assert sum(second["inputs"]["champion"].values()) + sum(second["inputs"]["challenger"].values()) > 0


def test_bad_input_names_the_field():
    r = subprocess.run(
        [sys.executable, "starter.py", "simulate", "--challenger", "policies/nope.toml", "--loans", "4"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2, r.stderr
    assert "error: challenger: policies/nope.toml: no such policy file" in r.stderr
    r = subprocess.run(
        [sys.executable, "starter.py", "simulate", "--challenger", CHALLENGER, "--loans", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "loans: 0 must be at least 1" in r.stderr


# ------------------------------------------------------------------------------------------ the direct engine


def test_direct_engine_results_do_not_depend_on_the_workers(tmp_path):
    from sim.run import simulate_direct

    runs = [
        simulate_direct(
            Options(
                champion="default",
                challenger=CHALLENGER,
                out=tmp_path / f"w{n}",
                progress=False,
                workers=n,
                finals=True,
                loans=120,
                days=200,
                seed=5,
            )
        )
        for n in (1, 2)
    ]
    one, two = runs
    assert one["finals"] == two["finals"]
    assert headline(one) == headline(two)
    assert one["run"]["engine"] == "direct"
    arms = one["arms"]
    for arm in arms.values():  # the cases really ran
        assert arm["contacts"] > 60 and arm["refusals"] > 0 and 0 < arm["recovery_rate"] < 1
        assert arm["missing_from_ledger"] == {"loans": 0, "amount": 0}
    assert arms["champion"]["actions"].get("visit", 0) > 0 and "visit" not in arms["challenger"]["actions"]
    assert sum(one["inputs"]["champion"].values()) > 0
    assert (tmp_path / "w1" / "report.md").read_text().count("| recovered (CNY) |") == 1


def test_direct_engine_from_the_command_line_is_the_default(tmp_path):
    cli = subprocess.run(
        [
            sys.executable,
            "starter.py",
            "simulate",
            "--challenger",
            CHALLENGER,
            "--loans",
            "30",
            "--days",
            "60",
            "--workers",
            "1",
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "160", "COLLECTIONS_CALENDAR_DIR": str(next_year_calendar)},
    )
    assert cli.returncode == 0, cli.stderr[-3000:]
    assert "champion: default" in cli.stdout
    assert json.loads((tmp_path / "summary.json").read_text())["run"]["engine"] == "direct"


def test_sweep_writes_one_row_per_variant_and_the_plot(tmp_path):
    from domain.policy import load_policy
    from sim import sweep

    dims = [sweep.parse_sweep("steps.home_visit.dpd=20,45"), sweep.parse_sweep("plan.max_instalments=6,12")]
    out = sweep.run(load_policy("default"), dims, loans=60, days=120, seed=3, workers=2, out=tmp_path)
    rows = out["rows"]
    assert [r["variant"] for r in rows] == [
        "steps.home_visit.dpd=20, plan.max_instalments=6",
        "steps.home_visit.dpd=20, plan.max_instalments=12",
        "steps.home_visit.dpd=45, plan.max_instalments=6",
        "steps.home_visit.dpd=45, plan.max_instalments=12",
    ]
    for r in rows:
        assert 0 < r["recovery_rate"] < 1 and r["contacts"] > 0 and r["cost_per_cny_recovered"] > 0
    # the varied number reaches the cases: visiting at DPD 20 instead of 45 changes what happens
    assert rows[0]["contacts"] != rows[2]["contacts"] or rows[0]["recovery_rate"] != rows[2]["recovery_rate"]
    assert (tmp_path / "recovery_vs_cost.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len((tmp_path / "sweep.csv").read_text().splitlines()) == 1 + len(rows)
    variants = sweep.grid(load_policy("default"), dims)
    assert variants[0][1].steps[2].dpd == 20 and variants[0][1].plans.max_instalments == 6


def test_sweep_bad_input_names_the_field():
    from domain.errors import InvalidInput
    from domain.policy import load_policy
    from sim import sweep

    pol = load_policy("default")
    for spec, fragment in (
        ("steps.home_visit.dpd", "is not PATH=V1,V2"),
        ("steps.home_visit.dpd=", "no values"),
        ("steps.nope.dpd=3", "no step 'nope'"),
        ("plans.nope=3", "'nope' is not a setting"),
        ("steps.home_visit.dpd=3", "steps[2].dpd: 3 is earlier than the step before it"),
    ):
        with pytest.raises(InvalidInput) as exc:
            sweep.grid(pol, [sweep.parse_sweep(spec)])
        assert exc.value.field == "sweep" and fragment in exc.value.reason, (spec, str(exc.value))
    r = subprocess.run(
        [sys.executable, "starter.py", "simulate", "--sweep", "steps.nope.dpd=3", "--loans", "4"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "error: sweep: steps.nope.dpd: no step 'nope'" in r.stderr, r.stderr
    r = subprocess.run(
        [sys.executable, "starter.py", "simulate", "--loans", "4"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 2 and "error: challenger: a challenger policy is required" in r.stderr, r.stderr
    r = subprocess.run(
        [sys.executable, "starter.py", "simulate", "--challenger", CHALLENGER, "--workers", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "error: workers: 0 must be at least 1" in r.stderr, r.stderr


async def test_the_real_workflows_refuse_a_period_with_no_calendar_or_in_the_past_before_anything_starts(tmp_path, monkeypatch):
    """Their clock starts at today's time and only moves forward; a year with no official calendar would have every
    contact refused (a run that measures nothing, and slowly). Both are refused before a server starts."""
    import shutil
    from datetime import UTC, datetime, timedelta

    from app.errors import BadInput
    from domain import calendar
    from sim.clock import default_start

    official = tmp_path / "official"
    official.mkdir()
    for f in calendar.OFFICIAL_DIR.glob("cn-*.toml"):
        shutil.copy(f, official)
    monkeypatch.setattr(calendar, "CALENDAR_DIR", official)
    calendar.clear_cache()
    try:
        nxt = default_start(datetime.now(UTC))
        common = dict(engine="temporal", progress=False, loans=500, days=365, out=tmp_path / "out")
        if nxt.year not in calendar.years_available():
            with pytest.raises(BadInput) as exc:
                await simulate(Options(**common))
            assert exc.value.field == "start"
            assert f"no official holiday calendar for {nxt.year}" in exc.value.reason and "--engine direct" in exc.value.reason
            assert not (tmp_path / "out").exists()  # refused before the run wrote anything
        else:
            print(f"the official calendar for {nxt.year} is on file: only the past start is refused here")
        yesterday = datetime.now(UTC).date() - timedelta(days=1)
        with pytest.raises(BadInput) as exc:
            await simulate(Options(start=yesterday, **common))
        assert exc.value.field == "start" and "is not in the future" in exc.value.reason
    finally:
        calendar.clear_cache()
