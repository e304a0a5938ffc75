"""Write-off (核销) is an accounting event, never the end of recovery (账销案存).

Reaching the write-off DPD proposes a write-off; a hold or an open promise defers the proposal; the case stays
open, legal steps and payments go on. A case closes only on payment, settlement, bankruptcy, death, a limitation
period that has run out, or an operator's explicit closure with a reason.
Unit tests drive `Case` directly (tests/test_case_rules.py's Runner); the workflow tests run on the
time-skipping server.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from domain.models import CloseIn, ContactResult, HoldIn, OutcomeIn, PaymentIn, PromiseIn, WriteOffConfirmIn
from tests.conftest import today_in
from tests.test_case_rules import DEFAULT, T0, TOTAL, Runner, delivered, rejected
from tests.test_ladder import judgment_dates
from tests.workflow_helpers import assert_rejected
from workflows import search
from workflows.case import CollectionCase

# ---------------------------------------------------------------- the Case, directly


def test_write_off_is_proposed_once_and_the_case_goes_on():
    r = Runner.open(dpd=700).run_until(T0)
    r.run_until(r.dpd_at(DEFAULT.write_off_dpd))
    assert r.state.write_off == "proposed" and not r.state.closed
    r.run_for(days=30)
    assert len(r.events("write_off_proposed")) == 1
    r.pay("100.00", pid="LATE")
    assert r.state.total_paid == 10_000 and r.state.balances.total == TOTAL - 10_000 and not r.state.closed


def test_a_hardship_hold_defers_the_proposal_until_it_ends():
    r = Runner.open(dpd=710).run_until(T0)
    r.hold("hardship", until=r.today() + timedelta(days=30))
    r.run_until(r.dpd_at(DEFAULT.write_off_dpd) + timedelta(days=5))
    assert r.state.write_off is None and r.state.write_off_deferred == "on hold: hardship" and not r.state.closed
    assert r.events("write_off_deferred")
    r.run_for(days=30)  # the hold ended on its end date
    assert r.state.write_off == "proposed" and not r.state.closed


def test_an_open_promise_defers_the_proposal_and_a_kept_one_lets_it_follow():
    r = Runner.open(dpd=715).run_until(T0)
    r.promise("500.00", r.today() + timedelta(days=10))
    r.run_until(r.dpd_at(DEFAULT.write_off_dpd) + timedelta(days=2))
    assert r.state.write_off is None and r.state.write_off_deferred.startswith("promise to pay")
    r.pay("500.00")
    r.run_for(hours=1)
    assert r.state.promise.status == "kept" and r.state.write_off == "proposed" and not r.state.closed


def test_a_pending_lawsuit_goes_on_after_the_proposal_to_judgment_and_enforcement():
    # opened late enough that the write-off DPD, the judgment and its performance period all fall in 2026, a year
    # with an official calendar (a period's last day on a rest day moves: domain/legal.py)
    r = Runner.open(dpd=560).run_until(T0)
    r.run_until(r.dpd_at(DEFAULT.write_off_dpd) + timedelta(days=1))
    assert r.state.lawsuit_filed and r.state.write_off == "proposed" and not r.state.closed
    today = r.today()
    r.outcome("court", "judgment", effective_on=today - timedelta(days=1), performance_ends=today + timedelta(days=3))
    r.run_for(days=10)
    assert "enforcement" in r.state.steps_done  # the legal route goes on after write-off
    r.outcome("court", "enforcement_result", amount="10520.00")
    assert r.state.closed and r.state.outcome == "recovered"


def test_confirmation_by_an_operator_keeps_the_case_open():
    r = Runner.open(dpd=700).run_until(T0)
    confirm = WriteOffConfirmIn(approver="Chen Jie", reference="WO-2026-7")
    rejected(r, lambda: r.case.apply(confirm, r.now), "case", "no write-off has been proposed")
    r.run_until(r.dpd_at(DEFAULT.write_off_dpd))
    rejected(r, lambda: r.case.apply(WriteOffConfirmIn(approver=" "), r.now), "approver", "is required")
    r.case.apply(confirm, r.now)
    assert r.state.write_off == "confirmed" and not r.state.closed
    rejected(r, lambda: r.case.apply(confirm, r.now), "case", "already confirmed")
    r.pay("10520.00")
    assert r.state.outcome == "paid"  # recovered after write-off: closed by the payment


def test_an_operator_closes_a_case_only_with_an_allowed_outcome_and_a_reason():
    r = Runner.open(dpd=30).run_until(T0)
    rejected(r, lambda: r.case.apply(CloseIn(outcome="sold", reason="  "), r.now), "reason", "is required")
    rejected(r, lambda: r.case.apply(CloseIn(outcome="paid", reason="x"), r.now), "outcome", "sold")
    r.case.apply(CloseIn(outcome="sold", reason="portfolio sale 2026-11", operator="Li Na"), r.now)
    assert r.state.closed and r.state.outcome == "sold"
    assert "closed by operator Li Na: portfolio sale 2026-11" in r.events("closed")[0]
    rejected(r, lambda: r.case.apply(CloseIn(outcome="error", reason="again"), r.now), "case", "is closed")


def test_the_case_closes_when_the_limitation_period_has_run_out_and_nothing_else_is_left():
    """No lawsuit could be filed (the court refused the filing each time): after the write-off proposal the case
    waits, and closes as time_barred at the end of the limitation period (Civil Code art. 188: three years from
    the first day overdue, art. 195). Opened at DPD 980 so that the period ends in 2026 (September), a year with an
    official calendar: a period whose last day falls in a year without one is never declared run out."""
    r = Runner.open(dpd=980).run_until(T0)

    def no_court(step):
        return [
            ContactResult(action=a, channel=a, status="failed" if a == "lawsuit" else "delivered", reason="court refused")
            if a == "lawsuit"
            else c
            for a, c in zip(step.actions, delivered(step), strict=False)
        ]

    r.results = no_court
    r.run_until(r.dpd_at(DEFAULT.write_off_dpd))
    assert r.state.write_off == "proposed" and not r.state.lawsuit_filed and not r.state.closed
    # due 25 September 2023; three years end on 26 September 2026, a Saturday: art. 203 moves the last day to the
    # next working day, Monday 28 September, which ends at 24:00 (Beijing time)
    assert r.case.inp.due_date == date(2023, 9, 25)
    ends = datetime(2026, 9, 29, 0, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    r.run_until(ends - timedelta(minutes=1))
    assert not r.state.closed
    r.run_until(ends + timedelta(days=1))  # Runner asserts no busy loop on the way
    assert r.state.closed and r.state.outcome == "time_barred"
    assert "limitation period ran out" in r.events("closed")[0]


def test_a_pending_lawsuit_is_never_time_barred():
    r = Runner.open(dpd=1).run_until(T0)
    r.run_until(T0 + timedelta(days=365 * 4))
    assert r.state.lawsuit_filed and not r.state.closed


# ---------------------------------------------------------------- the workflow, on the time-skipping server


def pay(pid: str, amount: str) -> PaymentIn:
    return PaymentIn(payment_id=pid, amount=amount, currency="CNY")


async def search_attributes(h):
    return (await h.describe()).typed_search_attributes


async def test_write_off_under_a_hardship_hold_defers_then_recovery_and_payments_go_on(cases):
    h = await cases.start(dpd=705)
    today = today_in(await cases.now())
    await h.execute_update(CollectionCase.place_hold, HoldIn(kind="hardship", until=today + timedelta(days=30)))
    done_before = (await cases.status(h)).steps_done
    await cases.advance(days=20)  # DPD 725: past the write-off DPD, still on hold
    st = await cases.status(h)
    assert st.status == "paused" and st.write_off is None and st.write_off_deferred == "on hold: hardship"
    await cases.advance(days=15)  # the hold ended: proposed, and the ladder resumed
    st = await cases.status(h)
    assert st.status == "active" and st.write_off == "proposed"
    assert len(st.steps_done) > len(done_before)  # recovery goes on
    assert (await search_attributes(h)).get(search.WRITE_OFF) == "proposed"
    r = await h.execute_update(CollectionCase.record_payment, pay("AFTER-WO", "500.00"))
    assert r.status != "closed" and r.outstanding == "10020.00"


async def test_write_off_under_an_open_promise_waits_for_it_then_a_payment_applies(cases):
    h = await cases.start(dpd=715)
    today = today_in(await cases.now())
    await h.execute_update(CollectionCase.promise_to_pay, PromiseIn(amount="300.00", date=today + timedelta(days=10)))
    await cases.advance(days=8)  # DPD 723: deferred by the promise
    st = await cases.status(h)
    assert st.status == "paused" and st.write_off is None and st.write_off_deferred.startswith("promise to pay")
    await cases.advance(days=8)  # the promise's deadline passed unpaid: broken, then proposed
    st = await cases.status(h)
    assert st.promise.status == "broken" and st.write_off == "proposed" and st.status == "active"
    r = await h.execute_update(CollectionCase.record_payment, pay("AFTER-WO", "300.00"))
    assert r.status == "active" and r.outstanding == "10220.00"


async def test_write_off_with_a_lawsuit_pending_goes_on_to_judgment_enforcement_and_recovery(cases):
    h = await cases.start(dpd=700)
    await cases.advance(days=25)
    st = await cases.status(h)
    assert st.write_off == "proposed" and st.status != "closed"
    assert "litigation" in st.steps_done and st.awaiting and st.awaiting.kind == "court"
    await h.execute_update(CollectionCase.confirm_write_off, WriteOffConfirmIn(approver="Chen Jie", reference="WO-1"))
    await assert_rejected(
        h, CollectionCase.confirm_write_off, WriteOffConfirmIn(approver="Chen Jie"), "case", "already confirmed"
    )
    sa = await search_attributes(h)
    assert sa.get(search.WRITE_OFF) == "confirmed" and sa.get(search.CASE_OUTCOME) == "written_off"
    assert sa.get(search.RISK_CLASS) == "loss"
    # the judgment's performance period ends in 2026, a year with an official calendar (domain/legal.py)
    await h.execute_update(
        CollectionCase.record_outcome, OutcomeIn(kind="court", outcome="judgment", **judgment_dates(today_in(await cases.now())))
    )
    await cases.advance(days=3)
    assert "enforcement" in (await cases.status(h)).steps_done
    await h.execute_update(CollectionCase.record_payment, pay("AFTER-WO", "520.00"))
    r = await h.execute_update(
        CollectionCase.record_outcome, OutcomeIn(kind="court", outcome="enforcement_result", amount="10000.00")
    )
    assert r.outcome == "recovered"
    result = await cases.result(h)
    assert result.outcome == "recovered" and result.write_off == "confirmed"
    assert (await search_attributes(h)).get(search.CASE_OUTCOME) == "recovered"


async def test_an_operator_closes_a_case_with_a_reason(cases, repo):
    h = await cases.start(dpd=30)
    await assert_rejected(h, CollectionCase.close_case, CloseIn(outcome="uncollectable"), "reason", "is required")
    await assert_rejected(h, CollectionCase.close_case, CloseIn(outcome="gone", reason="x"), "outcome", "uncollectable")
    r = await h.execute_update(
        CollectionCase.close_case, CloseIn(outcome="uncollectable", reason="borrower emigrated", operator="Li Na")
    )
    assert r.status == "closed" and r.outcome == "uncollectable"
    result = await cases.result(h)
    assert result.outcome == "uncollectable"
    assert (await h.describe()).status.name == "COMPLETED"  # the closure was recorded, the run ended cleanly
    row = repo.case_row(h.id)
    assert row.status == "closed" and row.outcome == "uncollectable"
    assert (await search_attributes(h)).get(search.CASE_OUTCOME) == "uncollectable"
