"""Search attributes a person finds cases by, and the operator's command line against a real server."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import timedelta

import pytest

from domain.models import HoldIn
from tests.conftest import TASK_QUEUE, today_in
from tests.workflow_helpers import run_starter
from workflows import search
from workflows.case import CollectionCase

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


async def test_search_attributes_follow_the_case(cases):
    h = await cases.start(dpd=1, segment="sme")
    await cases.advance(days=8)
    sa = (await h.describe()).typed_search_attributes
    assert sa.get(search.STAGE) == "first_call"
    assert sa.get(search.STATUS) == "active"
    assert sa.get(search.ON_HOLD) is False
    assert sa.get(search.OUTSTANDING) == pytest.approx(10520.00)
    assert sa.get(search.POLICY) == "default" and sa.get(search.SEGMENT) == "sme"
    st = await cases.status(h)
    assert sa.get(search.NEXT_ACTION_AT) == st.next_action.at
    assert sa.get(search.DELINQUENT_SINCE) < await cases.now()
    await h.execute_update(CollectionCase.place_hold, HoldIn(kind="dispute"))
    sa = (await h.describe()).typed_search_attributes
    assert sa.get(search.ON_HOLD) is True and sa.get(search.STATUS) == "paused"
    assert sa.get(search.NEXT_ACTION_AT) is not None  # the write-off date still stands


DB_URL = ""


@pytest.fixture(autouse=True)
def _database_url(repo):
    global DB_URL
    DB_URL = repo.engine.url.render_as_string(hide_password=False)


async def cli(env, *args: str) -> subprocess.CompletedProcess:
    return await run_starter(env.client.service_client.config.target_host, TASK_QUEUE, DB_URL, *args, timeout=60)


async def test_cli_start_pay_plan_hold_status(env, cases):
    now = await cases.now()
    due = (today_in(now) - timedelta(days=3)).isoformat()
    r = await cli(
        env,
        "start",
        "--loan-id",
        "CLI1",
        "--borrower-id",
        "B9",
        "--principal",
        "5000.00",
        "--interest",
        "120.50",
        "--fees",
        "15",
        "--due-date",
        due,
        "--json",
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"workflow_id": "loan-CLI1", "started": True}
    cases.started.append(env.client.get_workflow_handle("loan-CLI1"))  # ended with the test
    again = await cli(env, "start", "--loan-id", "CLI1", "--borrower-id", "B9", "--principal", "5000.00", "--due-date", due)
    assert again.returncode == 0 and "already running" in again.stdout

    r = await cli(env, "pay", "CLI1", "--payment-id", "CLI-BANK-1", "--amount", "135.50", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["allocation"] == {"fees": "15.00", "interest": "120.50"}
    r = await cli(env, "pay", "CLI1", "--payment-id", "CLI-BANK-1", "--amount", "135.50")
    assert r.returncode == 0 and "duplicate" in r.stdout

    first = (today_in(now) + timedelta(days=7)).isoformat()
    r = await cli(env, "plan", "CLI1", "--kind", "instalments", "--instalments", "5", "--first-due", first, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["total"] == "5000.00"

    r = await cli(env, "status", "CLI1", "--json")
    st = json.loads(r.stdout)
    assert st["status"] == "paused" and st["plan"]["kind"] == "instalments"
    human = await cli(env, "status", "CLI1")
    assert "PAUSED" in human.stdout and "plan: instalments active" in human.stdout
    # letters are not bound to contact hours, so this holds whatever the time of day
    assert "latest contact decisions:" in human.stdout and "reminder_notice/letter: allowed" in human.stdout


@pytest.mark.parametrize(
    "args,message",
    [
        (["pay", "CLI2", "--payment-id", "X1", "--amount", "-3"], "error: amount: must not be negative"),
        (["pay", "CLI2", "--payment-id", "X1", "--amount", "1.001"], "error: amount: has 3 decimals"),
        (["pay", "CLI2", "--payment-id", "X1", "--amount", "5", "--currency", "USD"], "error: currency: USD does not match"),
        (["pay", "CLI2", "--payment-id", "bad id!", "--amount", "5"], "error: payment_id: 'bad id!' is not an id"),
        (["hold", "CLI2", "--kind", "hardship"], "error: until: a hardship hold needs its end date"),
        (["release", "CLI2", "--kind", "dispute"], "error: kind: there is no dispute hold"),
        (["plan", "CLI2", "--kind", "instalments", "--instalments", "70", "--first-due", "2030-01-01"], "error: instalments:"),
        (["outcome", "CLI2", "--kind", "court", "--outcome", "judgment"], "error: kind: no lawsuit"),
        (["pay", "NOPE", "--payment-id", "X1", "--amount", "5", "--currency", "CNY"], "error: loan_id: NOPE is unknown"),
    ],
)
async def test_cli_bad_input_exits_2_and_changes_nothing(env, cases, args, message):
    loan = f"CLI2-{abs(hash(tuple(args))) % 10**8}"
    h = await cases.start(dpd=1, loan_id=loan)
    args = [loan if a == "CLI2" else a for a in args]
    before = (await h.query(CollectionCase.status)).model_dump(exclude={"as_of"})
    r = await cli(env, *args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert message in r.stderr, r.stderr
    assert (await h.query(CollectionCase.status)).model_dump(exclude={"as_of"}) == before


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["start", "--loan-id", "S1", "--borrower-id", "B", "--principal", "abc", "--due-date", "2026-01-01"],
            "error: principal: is not a plain decimal",
        ),
        (
            [
                "start",
                "--loan-id",
                "S1",
                "--borrower-id",
                "B",
                "--principal",
                "10",
                "--due-date",
                "2026-01-01",
                "--currency",
                "XYZ",
            ],
            "error: currency: unknown",
        ),
        (
            [
                "start",
                "--loan-id",
                "S1",
                "--borrower-id",
                "B",
                "--principal",
                "10",
                "--due-date",
                "2026-01-01",
                "--timezone",
                "Moon/Base",
            ],
            "error: timezone: unknown IANA",
        ),
        (
            ["start", "--loan-id", "S1", "--borrower-id", "B", "--principal", "0", "--due-date", "2026-01-01"],
            "error: principal: the loan owes nothing",
        ),
        (["start", "--loan-id", "S 1", "--borrower-id", "B", "--principal", "10", "--due-date", "2026-01-01"], "error: loan_id:"),
        (["start", "--loan-id", "S1", "--borrower-id", "B", "--principal", "10", "--due-date", "2026-02-30"], "not a date"),
        (
            [
                "start",
                "--loan-id",
                "S1",
                "--borrower-id",
                "B",
                "--principal",
                "10",
                "--due-date",
                "2026-01-01",
                "--policy",
                "nosuch",
            ],
            "error: policy: no policy named 'nosuch'",
        ),
    ],
)
async def test_cli_start_rejects_bad_flags(env, args, message):
    r = await cli(env, *args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert message in r.stderr, r.stderr


async def test_a_payment_for_a_loan_with_no_open_case_is_kept_as_unapplied(env, cases, repo):
    h = await cases.start(dpd=1, loan_id="CLI-CLOSED")
    await h.execute_update(
        CollectionCase.record_payment,
        __import__("domain.models", fromlist=["PaymentIn"]).PaymentIn(payment_id="FULL", amount="10520.00", currency="CNY"),
    )
    await cases.result(h)
    r = await cli(env, "pay", "CLI-CLOSED", "--payment-id", "LATE-1", "--amount", "50.00")
    assert r.returncode == 0, r.stderr
    assert "kept as unapplied" in r.stdout
    again = await cli(env, "pay", "CLI-CLOSED", "--payment-id", "LATE-1", "--amount", "50.00")
    assert "already recorded" in again.stdout
    rows = repo.payments(loan_id="CLI-CLOSED")
    assert [(p.payment_id, p.status, p.amount) for p in rows] == [("FULL", "applied", 1_052_000), ("LATE-1", "unapplied", 5_000)]
    listed = json.loads((await cli(env, "payments", "--unapplied", "--json")).stdout)
    assert {
        "payment_id": "LATE-1",
        "loan_id": "CLI-CLOSED",
        "amount": "50.00",
        "currency": "CNY",
        "status": "unapplied",
    }.items() <= next(p for p in listed if p["payment_id"] == "LATE-1").items()


async def test_a_bad_flag_value_is_one_line_naming_the_field_not_the_usage_block(env):
    r = await cli(env, "pay", "L1", "--payment-id", "P1", "--amount", "1.00", "--paid-at", "yesterday")
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert lines[0].startswith("error: paid_at:") and lines[-1] == "(usage: starter.py pay --help)", r.stderr
    assert len(lines) == 2 and "usage: starter.py pay [-h]" not in r.stderr, r.stderr
