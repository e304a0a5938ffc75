"""The contact gate end to end: real workflows, the real gate over the database, two loans of one borrower."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest

from domain.models import HoldIn, ReleaseIn
from domain.policy import parse_policy
from tests.conftest import LADDER_POLICY
from workflows.case import CollectionCase


def calls_policy():
    data = LADDER_POLICY.model_dump(mode="json")
    data.update(
        name="many-calls",
        min_gap_days=0,
        steps=[{"key": f"call_{i}", "stage": "calls", "dpd": i, "actions": ["call"]} for i in range(1, 5)],
    )
    data["contact"].update(call_cap_7d=3, no_call_after_conversation_days=0, daily_caps={"call": 3})
    return parse_policy(data)


async def test_two_loans_of_one_borrower_share_the_seven_day_call_cap(cases, repo):
    policy = calls_policy()
    a = await cases.start(dpd=1, loan_id="GATE-A", borrower_id="GATE-B1", policy=policy)
    b = await cases.start(dpd=1, loan_id="GATE-B", borrower_id="GATE-B1", policy=policy)
    await cases.advance(days=30)
    rows = [r for r in repo.contacts() if r.borrower_id == "GATE-B1" and r.channel == "call"]
    delivered = sorted(r.at for r in rows if r.status == "delivered")
    assert len(delivered) == 8  # every call step of both loans happened in the end
    for _i, t in enumerate(delivered):  # and no 7-day window holds more than the cap, across both loans
        assert sum(1 for u in delivered if t <= u < t + timedelta(days=7)) <= 3, delivered
    refusals = [d for h in (a, b) for d in (await cases.status(h)).decisions if not d.allowed]
    events = [e for h in (a, b) for e in (await cases.status(h)).events if e.kind == "contact_refused"]
    assert any("call_cap_7d" in e.detail for e in events) or any(d.rule == "call_cap_7d" for d in refusals)
    audit = [e for e in repo.events("loan-GATE-A") + repo.events("loan-GATE-B") if e.kind == "contact_refused"]
    assert audit and all("call_cap_7d" in e.detail for e in audit)


async def test_a_complaint_on_one_loan_stops_every_contact_on_both(cases, repo):
    a = await cases.start(dpd=1, loan_id="CMP-A", borrower_id="CMP-B1")
    b = await cases.start(dpd=1, loan_id="CMP-B", borrower_id="CMP-B1")
    await a.execute_update(CollectionCase.place_hold, HoldIn(kind="complaint", reference="called the police"))
    await cases.advance(days=10)
    sa, sb = await cases.status(a), await cases.status(b)
    assert sa.steps_done == ["reminder_notice"] and sa.status == "paused"
    assert sb.steps_done == ["reminder_notice"]  # its first call (DPD 7) was refused by the gate
    assert sb.contacts == {"sms": 1, "email": 1, "letter": 1}
    assert [d.rule for d in sb.decisions if not d.allowed][-1] == "complaint"
    assert sb.next_action.at is not None  # it asks again, it does not give up
    calls_b = [r for r in repo.contacts(loan_id="CMP-B") if r.channel == "call"]
    assert calls_b == []
    await a.execute_update(CollectionCase.release_hold, ReleaseIn(kind="complaint", reviewer="Compliance: Li Na"))
    await cases.advance(days=2)
    sa, sb = await cases.status(a), await cases.status(b)
    assert "first_call" in sa.steps_done  # contact resumes...
    # ...but one call only: having spoken with the borrower on loan A, no call on loan B for 7 days
    assert "first_call" not in sb.steps_done and sb.decisions[-1].rule == "after_conversation"
    await cases.advance(days=8)
    sb = await cases.status(b)
    assert "first_call" in sb.steps_done
    assert [r.status for r in repo.contacts(loan_id="CMP-B") if r.channel == "call"] == ["delivered"]
    holds = [(h.kind, h.released_by) for h in __import__("db.repo", fromlist=["GateStore"]).GateStore(repo).holds("CMP-B1")]
    assert holds == [("complaint", "Compliance: Li Na")]


async def test_contact_outside_hours_waits_for_the_window(cases, repo):
    """With the real default rules: a reminder due at local midnight goes out at 08:00 local, not before."""
    from zoneinfo import ZoneInfo

    from domain.policy import load_policy

    # the default window and clocks, without the rest days: the test server's clock may be in a year with no
    # official calendar yet (it fails closed there: tests/test_calendar.py), and this test is about the hours
    hours = load_policy("default").model_copy(
        update={"contact": load_policy("default").contact.model_copy(update={"public_holidays": False})}
    )
    h = await cases.start(dpd=0, loan_id="HOURS-1", policy=hours)  # due today: DPD 1 from midnight
    await cases.advance(days=2)
    st = await cases.status(h)
    assert "reminder_notice" in st.steps_done
    for r in repo.contacts(loan_id="HOURS-1"):
        if r.channel in ("sms", "email"):
            loc = r.at.astimezone(ZoneInfo("Asia/Shanghai"))
            assert 8 <= loc.hour < 21, loc


async def test_a_guarantor_gets_the_formal_letters_and_nothing_else(cases, repo, gateway):
    h = await cases.start(dpd=1, loan_id="GUAR-1", guarantor_id="GUAR-G1")
    await cases.advance(days=70)
    st = await cases.status(h)
    assert st.contacts["letter@guarantor"] == 1 and st.contacts["law_firm@guarantor"] == 1
    rows = [r for r in repo.contacts(loan_id="GUAR-1") if r.borrower_id == "GUAR-G1"]
    assert sorted((r.step, r.channel, r.status) for r in rows) == [
        ("lawyers_letter", "law_firm", "delivered"),
        ("overdue_letter", "letter", "delivered"),
    ]
    items = [i for i in gateway.outbox(loan_id="GUAR-1") if i["body"].get("recipient") == "李强"]
    assert len(items) == 2
    letter = next(i for i in items if i["channel"] == "letter")["body"]
    assert letter["address"].startswith("北京市") and "保证人" in letter["content"] and "张伟" in letter["content"]
    # calls, SMS and visits go to the borrower only
    assert all(i["body"].get("to") != "13900001111" for i in gateway.outbox(loan_id="GUAR-1"))


async def test_a_lawsuit_outside_the_limitation_period_is_refused_and_audited(cases, repo):
    """Opened at DPD 1,200 (over 3 years, nothing paid): the case never sues, and says why."""
    data = LADDER_POLICY.model_dump(mode="json")
    data["write_off_dpd"] = 2000
    h = await cases.start(dpd=1200, loan_id="LIMIT-1", policy=parse_policy(data))
    # the bureau notice, its 14 days to 24:00 of the last day (moved past rest days), the report, then litigation
    await cases.advance(days=30)
    st = await cases.status(h)
    assert "litigation" in st.steps_done and st.contacts.get("court") is None
    refusal = next(d for d in st.decisions if d.action == "lawsuit")
    assert refusal.rule == "limitation_period" and refusal.final
    audit = [e for e in repo.events("loan-LIMIT-1") if e.kind == "legal_refused"]
    assert len(audit) == 1 and "limitation_period" in audit[0].detail


async def test_a_bankruptcy_on_one_loan_closes_the_borrowers_other_cases_at_once(cases, env, repo):
    """Operators record it once (CLI and API go through app.inputs.place_hold): every open case closes."""
    from app import errors, inputs

    a = await cases.start(dpd=1, loan_id="BK-A", borrower_id="BK-B1")
    b = await cases.start(dpd=40, loan_id="BK-B", borrower_id="BK-B1")
    other = await cases.start(dpd=1, loan_id="BK-X", borrower_id="BK-B2")  # another borrower: untouched
    result = await inputs.place_hold(env.client, repo, "BK-A", {"kind": "bankruptcy", "reference": "court case 2026-17"})
    assert result.outcome == "bankrupt" and "BK-B" in result.message
    sa, sb, sx = await cases.status(a), await cases.status(b), await cases.status(other)
    assert (sa.status, sa.outcome) == ("closed", "bankrupt")
    assert (sb.status, sb.outcome) == ("closed", "bankrupt")
    assert any("recorded on loan BK-A" in e.detail for e in sb.events if e.kind == "closed")
    assert sx.status != "closed"
    # sent again (the caller lost the answer): the named case counts as done, the others are already closed
    again = await inputs.place_hold(env.client, repo, "BK-A", {"kind": "bankruptcy"})
    assert (again.status, again.outcome) == ("closed", "bankrupt") and "already closed" in again.message
    assert (await cases.status(other)).status != "closed"
    # a case closed for another reason is not a bankruptcy: the refusal stands
    c = await cases.start(dpd=1, loan_id="BK-C", borrower_id="BK-B3")
    total = (await cases.status(c)).outstanding["total"]
    await inputs.record_payment(env.client, repo, "BK-C", payment_id="BK-C-FULL", amount=total)
    await cases.result(c)
    with pytest.raises(errors.NotFound):
        await inputs.place_hold(env.client, repo, "BK-C", {"kind": "bankruptcy"})


async def test_a_bankruptcy_sent_again_after_a_partial_fan_out_reaches_the_rest(cases, env, repo):
    """The caller stopped after the named case (as if the API's timeout fired): sent again, the rest close."""
    from app import inputs

    a = await cases.start(dpd=1, loan_id="BKR-A", borrower_id="BKR-B1")
    b = await cases.start(dpd=1, loan_id="BKR-B", borrower_id="BKR-B1")
    await inputs.send_update(env.client, "BKR-A", "hold", {"kind": "bankruptcy"})  # only the named case
    assert (await cases.status(b)).status != "closed"
    result = await inputs.place_hold(env.client, repo, "BKR-A", {"kind": "bankruptcy"})
    assert "BKR-B" in result.message
    assert ((await cases.status(b)).status, (await cases.status(b)).outcome) == ("closed", "bankrupt")
    assert (await cases.status(a)).outcome == "bankrupt"


async def test_a_case_the_fan_out_missed_closes_at_its_next_step(cases, repo):
    """The hold placed on loan A's workflow only (as if the caller died before the fan-out): loan B meets it
    at the contact gate on its next step, and closes as bankrupt instead of walking a ladder of refusals."""
    a = await cases.start(dpd=1, loan_id="BK2-A", borrower_id="BK2-B1")
    b = await cases.start(dpd=1, loan_id="BK2-B", borrower_id="BK2-B1")
    await a.execute_update(CollectionCase.place_hold, HoldIn(kind="deceased", reference="death certificate"))
    assert (await cases.status(b)).status != "closed"
    await cases.advance(days=10)  # loan B's first call is due at DPD 7
    sb = await cases.status(b)
    assert (sb.status, sb.outcome) == ("closed", "deceased"), sb.events[-3:]
    assert sb.steps_done == ["reminder_notice", "first_call"]  # the call step, refused by the gate
    assert [d.rule for d in sb.decisions if not d.allowed] == ["deceased"]
    assert [r.channel for r in repo.contacts(loan_id="BK2-B") if r.channel == "call"] == []


async def test_a_conversation_an_operator_records_blocks_the_next_call(cases, repo, gateway):
    """The provider's calls go unanswered; an operator then records that they spoke with the borrower (the
    record_outcome update, as the CLI and API send it). That conversation is in the contact ledger, and the next
    call step is refused by the rule after_conversation, for 7 days from when it was recorded."""
    from domain.models import OutcomeIn

    data = LADDER_POLICY.model_dump(mode="json")
    data.update(
        name="two-calls",
        min_gap_days=0,
        steps=[
            {"key": "call_1", "stage": "calls", "dpd": 1, "actions": ["call"]},
            {"key": "call_2", "stage": "calls", "dpd": 3, "actions": ["call"]},
        ],
    )
    gateway.script_calls({"CONV-1": {"outcome": "no_answer"}})
    try:
        h = await cases.start(dpd=1, loan_id="CONV-1", policy=parse_policy(data))
        assert [(r.step, r.outcome) for r in repo.contacts(loan_id="CONV-1")] == [("call_1", "no_answer")]
        await h.execute_update(CollectionCase.record_outcome, OutcomeIn(kind="call", outcome="answered"))
        recorded = [r for r in repo.contacts(loan_id="CONV-1") if r.step == "operator"]
        assert [(r.channel, r.status, r.outcome) for r in recorded] == [("call", "delivered", "answered")]
        await cases.advance(days=3)
        st = await cases.status(h)
        assert "call_2" not in st.steps_done
        refusal = st.decisions[-1]
        assert (refusal.action, refusal.allowed, refusal.rule) == ("call", False, "after_conversation")
        assert refusal.retry_at == recorded[0].at + timedelta(days=7)
        await cases.advance(days=6)
        assert "call_2" in (await cases.status(h)).steps_done
    finally:
        gateway.script_calls({"CONV-1": None})


def test_a_deferred_send_is_decided_anew_by_the_gate_with_the_caps_as_they_are_then(repo):
    """A send whose window closed before it went out gave its reservation back: asked again, the gate does not
    answer 'already allowed' but decides anew, and a cap filled in between (another loan's SMS) refuses it."""
    from datetime import datetime

    from db.records import EventRecord
    from db.repo import GateRequest, GateStore
    from domain import compliance
    from domain.policy import ContactRules

    rules = ContactRules(
        window_start="00:00", window_end="24:00", public_holidays=False, daily_caps={"sms": 1}, min_minutes_between_contacts=0
    )
    repo.upsert_borrower(id="DEF-B", timezone="Asia/Shanghai", name="n", phone="13812345678", language="zh")
    store = GateStore(repo)

    def decide(q, tz, holds, history, prefs=None):
        return compliance.decide(
            action=q.action, channel=q.channel, loan_id=q.loan_id, now=q_now, tz=tz, rules=rules, holds=holds, history=history,
            prefs=prefs,
        )  # fmt: skip

    def ask(key, loan, at):
        nonlocal q_now
        q_now = at
        return store.check(
            "DEF-B",
            at,
            [GateRequest(idempotency_key=key, workflow_id=f"loan-{loan}", loan_id=loan, step="s", action="sms", channel="sms")],
            decide,
        )[0]

    q_now = None
    day1 = datetime(2031, 3, 4, 2, 0, tzinfo=UTC)
    assert ask("DEF-1", "DEF-L1", day1).allowed
    repo.defer_contact("DEF-1", event=EventRecord(workflow_id="loan-DEF-L1", loan_id="DEF-L1", kind="contact_deferred"))
    assert [r.status for r in repo.contacts(loan_id="DEF-L1")] == ["deferred"]
    assert ask("DEF-2", "DEF-L2", day1).allowed  # the deferred one no longer holds the day's one SMS...
    again = ask("DEF-1", "DEF-L1", day1)  # ...so, asked again, it meets the cap
    assert (again.allowed, again.rule) == (False, "daily_cap")
    assert [r.status for r in repo.contacts(loan_id="DEF-L1")] == ["deferred"]
    day2 = datetime(2031, 3, 5, 2, 0, tzinfo=UTC)
    allowed = ask("DEF-1", "DEF-L1", day2)
    assert (allowed.allowed, allowed.rule) == (True, "allowed")
    [row] = repo.contacts(loan_id="DEF-L1")
    assert row.status == "pending" and row.at == day2  # reserved again, counted on the day it was allowed
    assert ask("DEF-1", "DEF-L1", day2).rule == "already_allowed"  # and a rerun of that check changes nothing
