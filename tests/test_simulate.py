"""The strategy simulator: same seed, same numbers; a report with both policies side by side.

A small comparison (40 loans, 120 simulated days) runs twice on the real workflows, once from the
command line and once in-process, each on its own time-skipping test server, gateway and database.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sim.behaviour import Borrower, contact_kind
from sim.generate import portfolio
from sim.report import headline
from sim.run import Options, simulate

ROOT = Path(__file__).resolve().parent.parent
CHALLENGER = "policies/challenger-early-legal.toml"
ARGS = dict(loans=40, days=120, seed=11)


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


async def test_same_seed_same_numbers_and_a_report_with_both_policies(tmp_path):
    out1, out2 = tmp_path / "cli", tmp_path / "inproc"
    cli = subprocess.run(
        [sys.executable, "starter.py", "simulate", "--policy", "default", "--challenger", CHALLENGER,
         "--loans", str(ARGS["loans"]), "--days", str(ARGS["days"]), "--seed", str(ARGS["seed"]), "--out", str(out1)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "COLUMNS": "160"},
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
        for row in ("| cure rate (paid or settled) |", "| roll rate M2 → M3 |", "| recovered (CNY) |",
                    "| refusals (contact gate and legal clocks) |", "| cases reaching litigation |", "| write-offs |"):
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
        assert arm["missing_from_ledger"] == {"loans": 0, "amount": 0}   # every applied payment is in the ledger
    # what differs between the ladders shows: only the champion visits, the challenger sues sooner
    assert arms["champion"]["actions"].get("visit", 0) > 0 and "visit" not in arms["challenger"]["actions"]
    assert "home_visit" not in arms["challenger"]["recovered_by_step"]
    assert second["run"]["failed_workflows"] == []
    assert sum(second["inputs"]["champion"].values()) + sum(second["inputs"]["challenger"].values()) > 0


def test_bad_input_names_the_field():
    r = subprocess.run([sys.executable, "starter.py", "simulate", "--challenger", "policies/nope.toml", "--loans", "4"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "error: challenger: policies/nope.toml: no such policy file" in r.stderr
    r = subprocess.run([sys.executable, "starter.py", "simulate", "--challenger", CHALLENGER, "--loans", "0"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "loans: 0 must be at least 1" in r.stderr
