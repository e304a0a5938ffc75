"""Every path of a collection case, on the time-skipping server (months pass in seconds)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain.models import HoldIn, OutcomeIn, PaymentIn, PlanIn, PromiseIn, ReleaseIn
from domain.policy import load_policy, parse_policy
from tests.conftest import open_hours, today_in
from tests.test_ladder import judgment_dates
from workflows.case import CollectionCase

DEFAULT = load_policy("default")  # ladder tests run it with open contact hours (tests/conftest.py)
FULL = "10520.00"  # 10000.00 principal + 500.00 interest + 20.00 fees (conftest defaults)


def pay(pid: str, amount: str, currency: str = "CNY") -> PaymentIn:
    return PaymentIn(payment_id=pid, amount=amount, currency=currency)


async def until_step(cases, h, step: str, max_days: int = 400) -> None:
    for _ in range(max_days):
        if step in (await cases.status(h)).steps_done:
            return
        await cases.advance(days=1)
    raise AssertionError(f"never reached {step}")


@pytest.mark.parametrize("step", [s.key for s in DEFAULT.steps])
async def test_full_payment_at_each_step_closes_the_case(cases, step):
    h = await cases.start(dpd=1)
    target = DEFAULT.steps[DEFAULT.step_index(step)]
    if target.requires == "judgment":
        await until_step(cases, h, "litigation")
        await h.execute_update(
            CollectionCase.record_outcome,
            OutcomeIn(kind="court", outcome="judgment", **judgment_dates(today_in(await cases.now()))),
        )
    await until_step(cases, h, step)
    st = await cases.status(h)
    assert st.stage == target.stage
    r = await h.execute_update(CollectionCase.record_payment, pay("P1", FULL))
    assert r.status == "closed" and r.outstanding == "0.00"
    result = await cases.result(h)
    assert result.outcome == ("recovered" if step == "enforcement" else "paid")
    assert result.steps_done[-1] == step


async def test_partial_payments_follow_the_allocation_order_and_the_ladder_goes_on(cases):
    h = await cases.start(dpd=1)
    r1 = await h.execute_update(CollectionCase.record_payment, pay("P1", "100.00"))
    assert r1.allocation == {"fees": "20.00", "interest": "80.00"}
    r2 = await h.execute_update(CollectionCase.record_payment, pay("P2", "1000.00"))
    assert r2.allocation == {"interest": "420.00", "principal": "580.00"}
    assert r2.outstanding == "9420.00" and r2.status == "active"
    await cases.advance(days=8)
    st = await cases.status(h)
    assert st.outstanding == {"principal": "9420.00", "interest": "0.00", "fees": "0.00", "total": "9420.00"}
    assert st.total_paid == "1100.00"
    assert "first_call" in st.steps_done


async def test_duplicate_payment_id_returns_the_first_result_and_changes_nothing(cases):
    h = await cases.start(dpd=1)
    first = await h.execute_update(CollectionCase.record_payment, pay("BANK-1", "300.00"))
    before = (await cases.status(h)).model_dump(exclude={"as_of"})
    again = await h.execute_update(CollectionCase.record_payment, pay("BANK-1", "300.00"))
    assert again.duplicate and again.applied == first.applied and again.outstanding == first.outstanding
    assert (await cases.status(h)).model_dump(exclude={"as_of"}) == before


async def test_promise_kept_resumes_the_ladder(cases):
    h = await cases.start(dpd=1)
    today = today_in(await cases.now())
    await h.execute_update(CollectionCase.promise_to_pay, PromiseIn(amount="2000.00", date=today + timedelta(days=10)))
    st = await cases.status(h)
    assert st.status == "paused" and st.promise.status == "active"
    await cases.advance(days=8)
    assert "first_call" not in (await cases.status(h)).steps_done  # paused through DPD 7
    await h.execute_update(CollectionCase.record_payment, pay("P1", "2000.00"))
    st = await cases.status(h)
    assert st.promise.status == "kept" and st.status == "active"
    await cases.advance(days=1)
    assert "first_call" in (await cases.status(h)).steps_done


async def test_promise_broken_resumes_the_ladder_at_the_next_step(cases):
    h = await cases.start(dpd=1)
    today = today_in(await cases.now())
    await h.execute_update(CollectionCase.promise_to_pay, PromiseIn(amount="2000.00", date=today + timedelta(days=10)))
    await cases.advance(days=12)
    st = await cases.status(h)
    assert st.promise.status == "active" and "first_call" not in st.steps_done
    await cases.advance(days=3)  # date + 3 grace days passed
    st = await cases.status(h)
    assert st.promise.status == "broken"
    assert st.steps_done == ["reminder_notice", "first_call"]
    assert any(e.kind == "promise_broken" for e in st.events)


async def test_instalment_plan_kept_settles_the_case(cases):
    h = await cases.start(dpd=1)
    today = today_in(await cases.now())
    r = await h.execute_update(
        CollectionCase.agree_plan, PlanIn(kind="instalments", instalments=3, first_due=today + timedelta(days=5))
    )
    assert r.total == FULL and [a for _, a in r.schedule] == ["3506.66", "3506.66", "3506.68"]
    for i, (_due, amount) in enumerate(r.schedule):
        await h.execute_update(CollectionCase.record_payment, pay(f"I{i}", amount))
        st = await cases.status(h)
        if i < 2:
            assert st.status == "paused" and st.plan.status == "active"
            await cases.advance(days=30)
    result = await cases.result(h)
    assert result.outcome == "settled" and result.plan.status == "completed"
    assert result.steps_done == ["reminder_notice"]


async def test_instalment_plan_broken_resumes_the_ladder(cases):
    h = await cases.start(dpd=1)
    today = today_in(await cases.now())
    r = await h.execute_update(
        CollectionCase.agree_plan, PlanIn(kind="instalments", instalments=4, first_due=today + timedelta(days=5))
    )
    await h.execute_update(CollectionCase.record_payment, pay("I0", r.schedule[0][1]))
    await cases.advance(days=30)
    st = await cases.status(h)
    assert st.plan.status == "active" and st.steps_done == ["reminder_notice"]
    await cases.advance(days=14)  # second instalment (a month after the first) + 5 grace days missed
    st = await cases.status(h)
    assert st.plan.status == "broken"
    kinds = [e.kind + ":" + e.detail for e in st.events]
    broke = next(i for i, k in enumerate(kinds) if k.startswith("plan_broken"))
    assert kinds[broke + 1] == "step_started:first_call"  # resumes at its next step
    assert st.steps_done[:2] == ["reminder_notice", "first_call"]


async def test_deferral_kept_and_broken(cases):
    today = today_in(await cases.now())
    kept = await cases.start(dpd=1)
    await kept.execute_update(CollectionCase.agree_plan, PlanIn(kind="deferral", until=today + timedelta(days=60)))
    await cases.advance(days=50)
    assert (await cases.status(kept)).steps_done == ["reminder_notice"]
    await kept.execute_update(CollectionCase.record_payment, pay("D1", FULL))
    assert (await cases.result(kept)).outcome == "settled"

    broken = await cases.start(dpd=1)
    today = today_in(await cases.now())
    await broken.execute_update(CollectionCase.agree_plan, PlanIn(kind="deferral", until=today + timedelta(days=20)))
    # the last day (20 days + 5 of grace) moves past a rest day or a break (民法典 art. 203): up to 10 days later
    await cases.advance(days=37)
    st = await cases.status(broken)
    assert st.plan.status == "broken" and "first_call" in st.steps_done
    last = st.plan.schedule[0].last_day
    assert last is not None and last >= today + timedelta(days=25) and st.plan.schedule[0].waits_for_year is None


async def test_interest_waiver_kept_forgives_the_interest_and_broken_restores_it(cases):
    today = today_in(await cases.now())
    kept = await cases.start(dpd=1)
    r = await kept.execute_update(
        CollectionCase.agree_plan, PlanIn(kind="interest_waiver", waiver_percent=40, pay_by=today + timedelta(days=10))
    )
    assert r.waived == "200.00" and r.total == "10320.00"
    assert (await cases.status(kept)).outstanding["interest"] == "300.00"
    await kept.execute_update(CollectionCase.record_payment, pay("W1", "10320.00"))
    result = await cases.result(kept)
    assert result.outcome == "settled" and result.total_paid == "10320.00"

    broken = await cases.start(dpd=1)
    today = today_in(await cases.now())
    await broken.execute_update(
        CollectionCase.agree_plan, PlanIn(kind="interest_waiver", waiver_percent=40, pay_by=today + timedelta(days=10))
    )
    await cases.advance(days=16)
    st = await cases.status(broken)
    assert st.plan.status == "broken" and st.outstanding["interest"] == "500.00"
    assert "first_call" in st.steps_done


@pytest.mark.parametrize("kind", ["dispute", "complaint"])
async def test_pausing_holds_stop_the_ladder_until_released(cases, kind):
    h = await cases.start(dpd=1)
    r = await h.execute_update(CollectionCase.place_hold, HoldIn(kind=kind, reference="ticket 42"))
    assert r.status == "paused"
    await cases.advance(days=20)
    st = await cases.status(h)
    assert st.steps_done == ["reminder_notice"] and st.holds[0].kind == kind
    release = ReleaseIn(kind=kind, reviewer="Wang Li" if kind == "complaint" else None)
    await h.execute_update(CollectionCase.release_hold, release)
    await cases.advance(hours=1)
    st = await cases.status(h)
    assert st.status == "active" and "first_call" in st.steps_done and not st.holds


async def test_cease_contact_stops_contact_but_not_the_ladder(cases):
    h = await cases.start(dpd=1)
    await h.execute_update(CollectionCase.place_hold, HoldIn(kind="cease_contact", reference="borrower's letter"))
    assert (await cases.status(h)).status == "active"
    await cases.advance(days=80)
    st = await cases.status(h)
    assert st.steps_done[:6] == [
        "reminder_notice",
        "first_call",
        "home_visit",
        "overdue_letter",
        "lawyers_letter",
        "bureau_notice",
    ]
    assert st.contacts == {"sms": 1, "email": 1, "letter": 2}  # the reminder before the hold, then only the legal notice
    refused = [e.detail.split(":")[0] for e in st.events if e.kind == "contact_refused"]
    assert refused == ["first_call/call", "home_visit/visit", "overdue_letter/letter", "lawyers_letter/law_firm"]
    assert all(d.rule == "cease_contact" and d.final for d in st.decisions if not d.allowed)


async def test_hardship_hold_ends_on_its_end_date(cases):
    h = await cases.start(dpd=1)
    today = today_in(await cases.now())
    await h.execute_update(CollectionCase.place_hold, HoldIn(kind="hardship", until=today + timedelta(days=30)))
    await cases.advance(days=29)
    assert (await cases.status(h)).steps_done == ["reminder_notice"]
    await cases.advance(days=2)
    st = await cases.status(h)
    assert not st.holds and "first_call" in st.steps_done


@pytest.mark.parametrize("kind,outcome", [("bankruptcy", "bankrupt"), ("deceased", "deceased")])
async def test_bankruptcy_and_death_close_the_case(cases, kind, outcome):
    h = await cases.start(dpd=1)
    r = await h.execute_update(CollectionCase.place_hold, HoldIn(kind=kind, reference="court notice"))
    assert r.outcome == outcome
    assert (await cases.result(h)).outcome == outcome


async def test_late_start_at_dpd_75_sends_the_reminder_then_the_step_its_dpd_calls_for(cases):
    h = await cases.start(dpd=75)
    await cases.advance(days=3)
    st = await cases.status(h)
    assert st.steps_done == ["reminder_notice", "lawyers_letter"]
    skipped = [e.detail.split(":")[0] for e in st.events if e.kind == "step_skipped"]
    assert skipped == ["first_call", "home_visit", "overdue_letter"]
    await cases.advance(days=2)
    assert (await cases.status(h)).steps_done[-1] == "bureau_notice"


async def test_a_policy_with_another_order_of_steps(cases):
    data = DEFAULT.model_dump(mode="json")
    data.update(
        name="fast-legal",
        steps=[
            {"key": "first_call", "stage": "first_call", "dpd": 2, "actions": ["call"]},
            {"key": "lawyers_letter", "stage": "lawyers_letter", "dpd": 5, "actions": ["law_firm"]},
            {"key": "reminder_notice", "stage": "reminder", "dpd": 6, "actions": ["sms", "letter"], "letter": "reminder_notice"},
            {"key": "agency", "stage": "agency", "dpd": 10, "actions": ["agency_place"]},
            {"key": "payment_order", "stage": "litigation", "dpd": 20, "actions": ["payment_order"], "await_outcome_days": 15},
        ],
    )
    h = await cases.start(dpd=1, policy=open_hours(parse_policy(data)))
    await cases.advance(days=25)
    st = await cases.status(h)
    assert st.policy == "fast-legal"
    assert st.steps_done == ["first_call", "lawyers_letter", "reminder_notice", "agency", "payment_order"]
    assert st.contacts == {"call": 1, "law_firm": 1, "sms": 1, "letter": 1, "agency": 1, "court": 1}


async def test_write_off_is_proposed_when_nothing_is_recovered_and_the_case_stays_open(cases):
    h = await cases.start(dpd=1)
    await cases.advance(days=725)
    st = await cases.status(h)
    assert st.status != "closed" and st.write_off == "proposed" and st.stage == "litigation"
    assert st.outstanding["total"] == FULL


async def test_visit_outcome_ends_the_wait_and_court_events_are_recorded(cases):
    h = await cases.start(dpd=1)
    await until_step(cases, h, "home_visit")
    st = await cases.status(h)
    assert st.awaiting and st.awaiting.kind == "visit"
    await h.execute_update(CollectionCase.record_outcome, OutcomeIn(kind="visit", outcome="not_home", reference="V-9"))
    st = await cases.status(h)
    assert st.awaiting is None and any(e.kind == "visit_outcome" for e in st.events)


async def test_call_outcome_promise_pauses_the_case(cases):
    h = await cases.start(dpd=1)
    today = today_in(await cases.now())
    await h.execute_update(
        CollectionCase.record_outcome, OutcomeIn(kind="call", outcome="promise", amount="500.00", date=today + timedelta(days=3))
    )
    st = await cases.status(h)
    assert st.status == "paused" and st.promise.amount == 50000


async def test_continue_as_new_carries_the_state(cases):
    h = await cases.start(dpd=1, history_limit=50)
    for i in range(6):
        await h.execute_update(CollectionCase.record_payment, pay(f"C{i}", "10.00"))
        await cases.advance(days=10)
    st = await cases.status(h)
    assert st.total_paid == "60.00" and st.steps_done[:3] == ["reminder_notice", "first_call", "home_visit"]
    desc = await h.describe()
    assert desc.run_id != h.result_run_id  # a later run of the same case
    dup = await cases.env.client.get_workflow_handle(h.id).execute_update(CollectionCase.record_payment, pay("C0", "10.00"))
    assert dup.duplicate
