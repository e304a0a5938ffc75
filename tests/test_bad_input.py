"""Every bad input to a case is rejected naming the field and the reason, and changes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain.models import HoldIn, OutcomeIn, PaymentIn, PlanIn, PromiseIn, ReleaseIn
from tests.conftest import today_in
from tests.workflow_helpers import assert_rejected
from workflows.case import CollectionCase as W

D = timedelta(days=1)

# (update, input built from today's date, field named, fragment of the reason)
CASES = [
    (
        "payment in another currency",
        W.record_payment,
        lambda t: PaymentIn(payment_id="P1", amount="10.00", currency="USD"),
        "currency",
        "does not match",
    ),
    (
        "negative payment",
        W.record_payment,
        lambda t: PaymentIn(payment_id="P1", amount="-10.00", currency="CNY"),
        "amount",
        "negative",
    ),
    (
        "malformed amount",
        W.record_payment,
        lambda t: PaymentIn(payment_id="P1", amount="12,00", currency="CNY"),
        "amount",
        "not a plain decimal",
    ),
    (
        "NaN amount",
        W.record_payment,
        lambda t: PaymentIn(payment_id="P1", amount="NaN", currency="CNY"),
        "amount",
        "not a plain decimal",
    ),
    (
        "infinite amount",
        W.record_payment,
        lambda t: PaymentIn(payment_id="P1", amount="Infinity", currency="CNY"),
        "amount",
        "not a plain decimal",
    ),
    ("empty amount", W.record_payment, lambda t: PaymentIn(payment_id="P1", amount="", currency="CNY"), "amount", "empty"),
    (
        "too many decimals",
        W.record_payment,
        lambda t: PaymentIn(payment_id="P1", amount="1.234", currency="CNY"),
        "amount",
        "at most 2",
    ),
    (
        "zero payment",
        W.record_payment,
        lambda t: PaymentIn(payment_id="P1", amount="0.00", currency="CNY"),
        "amount",
        "greater than zero",
    ),
    (
        "overpayment",
        W.record_payment,
        lambda t: PaymentIn(payment_id="P1", amount="99999.00", currency="CNY"),
        "amount",
        "more than the outstanding",
    ),
    (
        "payment dated in the future",
        W.record_payment,
        lambda t: PaymentIn(payment_id="P1", amount="1.00", currency="CNY", paid_at=t["now"] + timedelta(days=2)),
        "paid_at",
        "future",
    ),
    (
        "promise above the balance",
        W.promise_to_pay,
        lambda t: PromiseIn(amount="20000.00", date=t["today"] + 3 * D),
        "amount",
        "more than the outstanding",
    ),
    ("promise in the past", W.promise_to_pay, lambda t: PromiseIn(amount="100.00", date=t["today"] - D), "date", "in the past"),
    (
        "promise too far ahead",
        W.promise_to_pay,
        lambda t: PromiseIn(amount="100.00", date=t["today"] + 40 * D),
        "date",
        "at most 14",
    ),
    (
        "too many instalments",
        W.agree_plan,
        lambda t: PlanIn(kind="instalments", instalments=36, first_due=t["today"] + D),
        "instalments",
        "outside 2..24",
    ),
    (
        "term over 60 months",
        W.agree_plan,
        lambda t: PlanIn(kind="instalments", instalments=24, interval_months=3, first_due=t["today"] + D),
        "instalments",
        "72-month term",
    ),
    (
        "instalments without a first date",
        W.agree_plan,
        lambda t: PlanIn(kind="instalments", instalments=6),
        "first_due",
        "required",
    ),
    ("deferral too long", W.agree_plan, lambda t: PlanIn(kind="deferral", until=t["today"] + 200 * D), "until", "at most 90"),
    ("deferral into the past", W.agree_plan, lambda t: PlanIn(kind="deferral", until=t["today"] - D), "until", "in the past"),
    (
        "waiver over the policy maximum",
        W.agree_plan,
        lambda t: PlanIn(kind="interest_waiver", waiver_percent=80, pay_by=t["today"] + 5 * D),
        "waiver_percent",
        "outside 0..50",
    ),
    (
        "field of another plan kind",
        W.agree_plan,
        lambda t: PlanIn(kind="deferral", until=t["today"] + 5 * D, instalments=3),
        "instalments",
        "only applies",
    ),
    ("hardship without an end", W.place_hold, lambda t: HoldIn(kind="hardship"), "until", "end date"),
    ("hardship too long", W.place_hold, lambda t: HoldIn(kind="hardship", until=t["today"] + 400 * D), "until", "at most 180"),
    (
        "end date on a dispute",
        W.place_hold,
        lambda t: HoldIn(kind="dispute", until=t["today"] + 5 * D),
        "until",
        "only a hardship",
    ),
    ("release of a hold that is not there", W.release_hold, lambda t: ReleaseIn(kind="dispute"), "kind", "no dispute hold"),
    (
        "visit outcome before any visit",
        W.record_outcome,
        lambda t: OutcomeIn(kind="visit", outcome="met_borrower"),
        "kind",
        "no home visit",
    ),
    (
        "court event before any lawsuit",
        W.record_outcome,
        lambda t: OutcomeIn(kind="court", outcome="judgment"),
        "kind",
        "no lawsuit",
    ),
    (
        "unknown call outcome",
        W.record_outcome,
        lambda t: OutcomeIn(kind="call", outcome="shouted"),
        "outcome",
        "not a call outcome",
    ),
    (
        "promise outcome without a date",
        W.record_outcome,
        lambda t: OutcomeIn(kind="call", outcome="promise", amount="10.00"),
        "date",
        "promised amount and date",
    ),
]


@pytest.mark.parametrize("name,update,make,field,fragment", CASES, ids=[c[0] for c in CASES])
async def test_rejected(cases, name, update, make, field, fragment):
    h = await cases.start(dpd=1)
    now = await cases.now()
    await assert_rejected(h, update, make({"now": now, "today": today_in(now)}), field, fragment)


async def test_state_dependent_rejections(cases):
    h = await cases.start(dpd=1)
    today = today_in(await cases.now())
    await h.execute_update(W.place_hold, HoldIn(kind="complaint"))
    await assert_rejected(h, W.place_hold, HoldIn(kind="complaint"), "kind", "already on a complaint hold")
    await assert_rejected(h, W.release_hold, ReleaseIn(kind="complaint"), "reviewer", "compliance reviewer")
    await h.execute_update(W.release_hold, ReleaseIn(kind="complaint", reviewer="Li"))
    await h.execute_update(W.agree_plan, PlanIn(kind="deferral", until=today + 30 * D))
    await assert_rejected(h, W.agree_plan, PlanIn(kind="deferral", until=today + 20 * D), "case", "already active")
    await assert_rejected(h, W.promise_to_pay, PromiseIn(amount="10.00", date=today + D), "case", "plan is active")


async def test_update_to_a_closed_case_is_refused(cases):
    from temporalio.client import WorkflowUpdateFailedError
    from temporalio.service import RPCError

    h = await cases.start(dpd=1)
    await h.execute_update(W.record_payment, PaymentIn(payment_id="ALL", amount="10520.00", currency="CNY"))
    assert (await cases.result(h)).outcome == "paid"
    with pytest.raises((RPCError, WorkflowUpdateFailedError)):
        await h.execute_update(W.record_payment, PaymentIn(payment_id="LATE", amount="1.00", currency="CNY"))
    st = await h.query(W.status)
    assert st.status == "closed" and st.total_paid == "10520.00" and "LATE" not in str(st.events)
