"""Payment reversal (a returned transfer, a failed debit): the balance comes back, the promise or plan the payment
had kept is judged again, a case closed as paid by it reopens as a new run, and the ledger keeps both rows."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app import reversal as ops
from app.errors import BadInput
from domain.models import PaymentIn, PromiseIn, ReversalIn
from tests.conftest import TASK_QUEUE, today_in
from tests.test_case_rules import T0, TOTAL, Runner, rejected
from tests.workflow_helpers import assert_rejected
from workflows import search
from workflows.case import CollectionCase

FULL = "10520.00"

# ---------------------------------------------------------------- the Case, directly


def test_a_reversal_restores_the_balance_and_undoes_the_allocation():
    r = Runner.open(dpd=10).run_until(T0)
    r.pay("100.00", pid="P1")
    assert r.state.balances.fees == 0 and r.state.balances.interest == 42_000
    r.case.apply(ReversalIn(payment_id="P1", reason="returned transfer"), r.now)
    assert r.state.balances.total == TOTAL and r.state.balances.fees == 2_000 and r.state.total_paid == 0
    assert r.state.payments["P1"].reversed_at == r.now  # the payment stays, marked
    assert "the limitation restart it caused stands" in r.events("payment_reversed")[0]
    # the payment's restart of the limitation period stays (counted from the day it was paid, domain/legal.py)
    assert r.case.limitation_start() == r.today() and r.state.limitation_restarts[-1].cause.startswith("payment")


def test_the_reversal_is_refused_for_an_unknown_id_a_second_time_or_without_a_reason():
    r = Runner.open(dpd=10).run_until(T0)
    r.pay("100.00", pid="P1")
    rejected(r, lambda: r.case.apply(ReversalIn(payment_id="NOPE", reason="x"), r.now), "payment_id", "not a payment")
    rejected(r, lambda: r.case.apply(ReversalIn(payment_id="P1", reason=" "), r.now), "reason", "is required")
    r.case.apply(ReversalIn(payment_id="P1", reason="failed debit"), r.now)
    rejected(r, lambda: r.case.apply(ReversalIn(payment_id="P1", reason="x"), r.now), "payment_id", "already reversed")


def test_a_kept_promise_reopens_before_its_deadline_and_breaks_after_it():
    r = Runner.open(dpd=10).run_until(T0)
    r.promise("500.00", r.today() + timedelta(days=5))
    r.pay("500.00", pid="P1")
    assert r.state.promise.status == "kept"
    r.case.apply(ReversalIn(payment_id="P1", reason="returned transfer"), r.now)
    assert r.state.promise.status == "active"  # the borrower still has until the promise's deadline
    r.pay("500.00", pid="P2")
    assert r.state.promise.status == "kept"
    r.run_until(r.state.promise.deadline + timedelta(days=1))
    r.case.apply(ReversalIn(payment_id="P2", reason="returned transfer"), r.now)
    assert r.state.promise.status == "broken" and r.events("promise_broken")


def test_a_completed_plan_is_active_again_when_its_last_payment_is_reversed():
    r = Runner.open(dpd=10).run_until(T0)
    r.plan(kind="instalments", instalments=2, first_due=r.today() + timedelta(days=5))
    r.pay("5260.00", pid="I1")
    r.pay("5260.00", pid="I2")
    assert r.state.closed and r.state.outcome == "settled"
    rejected(r, lambda: r.case.apply(ReversalIn(payment_id="I2", reason="x"), r.now), "case", "reopens it as a new run")


# ---------------------------------------------------------------- the workflow and the ledger


async def test_a_reversal_reopens_a_paid_case_breaks_the_promise_it_kept_and_the_ledger_keeps_both_rows(cases, repo):
    h = await cases.start(dpd=1)
    loan_id = h.id.removeprefix("loan-")
    today = today_in(await cases.now())
    await h.execute_update(CollectionCase.promise_to_pay, PromiseIn(amount=FULL, date=today + timedelta(days=3)))
    r = await h.execute_update(CollectionCase.record_payment, PaymentIn(payment_id=f"{loan_id}-P1", amount=FULL, currency="CNY"))
    assert r.outcome == "paid"
    closed = await cases.result(h)
    assert closed.promise.status == "kept" and closed.outcome == "paid"
    closed_run = (await h.describe()).run_id
    await cases.advance(days=8)  # the promise's date and its grace days have passed

    with pytest.raises(BadInput) as exc:
        await ops.reverse_payment(cases.env.client, loan_id, payment_id="NOPE", reason="returned", task_queue=TASK_QUEUE)
    assert exc.value.field == "payment_id" and "not a payment" in exc.value.reason
    out = await ops.reverse_payment(
        cases.env.client, loan_id, payment_id=f"{loan_id}-P1", reason="returned transfer", task_queue=TASK_QUEUE
    )
    new = cases.env.client.get_workflow_handle(h.id)
    cases.started.append(new)
    assert out.reopened and out.previous_run_id == closed_run and out.outstanding == FULL
    desc = await new.describe()
    assert desc.run_id != closed_run and desc.status.name == "RUNNING"  # same workflow id, a new run
    st = await new.query(CollectionCase.status)
    assert st.status == "active" and st.outcome is None and st.reopened_from == [closed_run]
    assert st.promise.status == "broken" and st.total_paid == "0.00"
    assert [e.kind for e in st.events if e.kind in ("reopened", "payment_reversed", "promise_broken")] == [
        "reopened",
        "payment_reversed",
        "promise_broken",
    ]
    assert closed_run in next(e.detail for e in st.events if e.kind == "reopened")

    # the ledger keeps both rows: the payment, and its reversal
    [payment] = repo.payments(loan_id=loan_id)
    [reversal] = repo.reversals(loan_id=loan_id)
    assert payment.payment_id == reversal.payment_id == f"{loan_id}-P1" and payment.amount == reversal.amount == 1_052_000
    assert reversal.reason == "returned transfer" and reversal.run_id == desc.run_id
    row = repo.case_row(h.id)
    assert row.status == "active" and row.outcome is None and row.outstanding == 1_052_000
    assert any(e.kind == "reopened" for e in repo.events(h.id))

    # the reopened case goes on with the ladder, and a second reversal of the same payment is refused
    await cases.advance(days=2)
    assert "first_call" in (await new.query(CollectionCase.status)).steps_done
    with pytest.raises(BadInput) as exc:
        await ops.reverse_payment(cases.env.client, loan_id, payment_id=f"{loan_id}-P1", reason="again", task_queue=TASK_QUEUE)
    assert exc.value.field == "payment_id" and "already reversed" in exc.value.reason
    assert len(repo.reversals(loan_id=loan_id)) == 1
    assert (await new.describe()).typed_search_attributes.get(search.CASE_OUTCOME) is None


async def test_a_reversal_on_an_open_case_goes_through_the_update(cases, repo):
    h = await cases.start(dpd=1)
    loan_id = h.id.removeprefix("loan-")
    await h.execute_update(CollectionCase.record_payment, PaymentIn(payment_id=f"{loan_id}-A", amount="100.00", currency="CNY"))
    await assert_rejected(h, CollectionCase.reverse_payment, ReversalIn(payment_id=f"{loan_id}-A"), "reason", "is required")
    out = await ops.reverse_payment(
        cases.env.client, loan_id, payment_id=f"{loan_id}-A", reason="failed debit", task_queue=TASK_QUEUE
    )
    assert not out.reopened and out.outstanding == FULL
    [reversal] = repo.reversals(loan_id=loan_id)
    assert reversal.amount == 10_000 and reversal.reason == "failed debit"


async def test_the_api_reverses_a_payment_and_names_the_field_it_refuses(cases, repo, env):
    import httpx

    from api.server import create_app

    h = await cases.start(dpd=1)
    loan_id = h.id.removeprefix("loan-")
    await h.execute_update(CollectionCase.record_payment, PaymentIn(payment_id=f"{loan_id}-API", amount="20.00", currency="CNY"))
    from access.operators import Operators

    store = Operators(repo)
    token = store.issue_token(store.ensure("reversal test", ["payments"]).id).token  # the bank's payment feed
    app = create_app(["t0ken-for-tests"], client=env.client, repo=repo)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://api",
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    ) as http:
        path = f"/v1/loans/{loan_id}/payments/{loan_id}-API/reversal"
        r = await http.post(path, json={})
        assert r.status_code == 422 and "reason" in r.text
        r = await http.post(path, json={"reason": "failed debit"})
        assert r.status_code == 200, r.text
        assert r.json()["outstanding"] == FULL and r.json()["reopened"] is False
        r = await http.post(path, json={"reason": "failed debit"})
        assert r.status_code == 422 and "already reversed" in r.text
    assert [x.payment_id for x in repo.reversals(loan_id=loan_id)] == [f"{loan_id}-API"]
