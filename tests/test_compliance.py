"""The contact gate's rules at their edges, and properties over many generated borrowers."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain import compliance as c
from domain.policy import ContactRules

SH = "Asia/Shanghai"
RULES = ContactRules()
UTC = timezone.utc


def local(y, mo, d, h=0, mi=0, s=0, us=0, tz=SH) -> datetime:
    return datetime(y, mo, d, h, mi, s, us, tzinfo=ZoneInfo(tz)).astimezone(UTC)


def decide(channel="sms", action=None, now=None, holds=(), history=(), rules=RULES, tz=SH, loan="L1"):
    return c.decide(action=action or channel, channel=channel, loan_id=loan, now=now, tz=tz, rules=rules,
                    holds=list(holds), history=list(history))


# ---------------------------------------------------------------- contact window

def test_2059_local_is_inside_the_window_and_2100_is_not():
    assert decide(now=local(2026, 12, 2, 20, 59)).allowed
    late = decide(now=local(2026, 12, 2, 21, 0))
    assert not late.allowed and late.rule == "contact_window"
    assert late.retry_at == local(2026, 12, 3, 8, 0)


def test_before_eight_waits_for_eight_the_same_day():
    d = decide(now=local(2026, 12, 2, 7, 59, 59))
    assert d.rule == "contact_window" and d.retry_at == local(2026, 12, 2, 8, 0)
    assert decide(now=local(2026, 12, 2, 8, 0)).allowed


def test_the_window_is_the_borrowers_own_time_zone():
    now = local(2026, 12, 2, 20, 30)  # 20:30 in Shanghai is 07:30 in New York... the day before
    assert decide(now=now).allowed
    ny = decide(now=now, tz="America/New_York")
    assert ny.rule == "contact_window" and ny.retry_at == local(2026, 12, 2, 8, 0, tz="America/New_York")


def test_letters_are_not_bound_to_the_hours_but_calls_are():
    night = local(2026, 12, 2, 23, 0)
    assert decide("letter", now=night).allowed
    assert decide("call", now=night).rule == "contact_window"


# ---------------------------------------------------------------- holidays and make-up working days

def test_public_holiday_refused_until_the_first_ordinary_day():
    d = decide(now=local(2026, 10, 1, 10, 0))
    assert not d.allowed and d.rule == "holiday"
    assert d.retry_at.astimezone(ZoneInfo(SH)).date() > date(2026, 10, 1)
    assert not c.is_public_holiday(d.retry_at.astimezone(ZoneInfo(SH)).date())
    assert d.retry_at.astimezone(ZoneInfo(SH)).hour == 8


def test_make_up_working_saturday_counts_as_a_working_day():
    no_weekends = ContactRules(weekends=False)
    assert date(2026, 2, 14).weekday() == 5 and c.is_working_day(date(2026, 2, 14))  # 调休 Saturday
    assert decide(now=local(2026, 2, 14, 10, 0), rules=no_weekends).allowed
    sunday = decide(now=local(2026, 2, 15, 10, 0), rules=no_weekends)
    assert not sunday.allowed and sunday.rule == "holiday"
    assert decide(now=local(2026, 2, 21, 10, 0), rules=no_weekends).rule == "holiday"  # an ordinary Saturday


# ---------------------------------------------------------------- caps and spacing

def calls(*ats, outcome="no_answer"):
    return [c.PastContact(at=a, channel="call", outcome=outcome, loan_id="L1") for a in ats]


def test_the_seventh_call_in_seven_days_is_allowed_and_the_eighth_is_not():
    rules = ContactRules(no_call_after_conversation_days=0, min_minutes_between_contacts=0, daily_caps={"call": 10})
    start = local(2026, 12, 1, 9, 0)
    six = calls(*(start + timedelta(days=i) for i in range(6)))
    now = start + timedelta(days=6, hours=1)
    assert decide("call", now=now, history=six, rules=rules).allowed
    seven = six + calls(now)
    eighth = decide("call", now=now + timedelta(hours=2), history=seven, rules=rules)
    assert not eighth.allowed and eighth.rule == "call_cap_7d"
    assert eighth.retry_at == start + timedelta(days=7)  # when the oldest call leaves the window
    assert decide("call", now=eighth.retry_at, history=seven, rules=rules).allowed


def test_no_call_within_seven_days_after_a_conversation():
    talked = local(2026, 12, 1, 10, 0)
    d = decide("call", now=talked + timedelta(days=6, hours=23), history=calls(talked, outcome="answered"))
    assert d.rule == "after_conversation" and d.retry_at == talked + timedelta(days=7)
    assert decide("call", now=talked + timedelta(days=7), history=calls(talked, outcome="answered")).allowed
    # an unanswered call is no conversation
    assert decide("call", now=talked + timedelta(days=1), history=calls(talked)).allowed


def test_daily_cap_per_channel_resets_at_local_midnight():
    rules = ContactRules(min_minutes_between_contacts=0)
    t = local(2026, 12, 2, 9, 0)
    two_sms = [c.PastContact(at=t, channel="sms"), c.PastContact(at=t + timedelta(hours=1), channel="sms")]
    d = decide("sms", now=t + timedelta(hours=3), history=two_sms, rules=rules)
    assert d.rule == "daily_cap" and d.retry_at == local(2026, 12, 3)
    assert decide("email", now=t + timedelta(hours=3), history=two_sms, rules=rules).allowed


def test_minimum_interval_between_any_two_contacts_but_not_within_one_step():
    t = local(2026, 12, 2, 9, 0)
    past = [c.PastContact(at=t, channel="sms", bundle="loan-L2:reminder")]
    d = c.decide(action="email", channel="email", loan_id="L1", now=t + timedelta(minutes=59), tz=SH, rules=RULES,
                 holds=[], history=past)
    assert d.rule == "min_interval" and d.retry_at == t + timedelta(minutes=60)
    same_step = c.decide(action="email", channel="email", loan_id="L2", now=t, tz=SH, rules=RULES, holds=[],
                         history=past, bundle="loan-L2:reminder")
    assert same_step.allowed


# ---------------------------------------------------------------- holds

def test_the_first_second_after_a_hardship_hold_ends_is_allowed():
    ends = local(2026, 12, 10, 0, 0)
    hold = [c.ActiveHold("hardship", "L1", until=ends)]
    before = decide(now=ends - timedelta(microseconds=1), holds=hold, rules=ContactRules(window_start="00:00", window_end="24:00"))
    assert not before.allowed and before.rule == "hardship" and before.retry_at == ends
    assert decide(now=ends, holds=hold, rules=ContactRules(window_start="00:00", window_end="24:00")).allowed


def test_cease_contact_stops_contact_but_not_legal_notices_or_legal_steps():
    hold = [c.ActiveHold("cease_contact", "L1")]
    now = local(2026, 12, 2, 10, 0)
    for ch in ("sms", "email", "call", "visit", "law_firm"):
        d = decide(ch, now=now, holds=hold)
        assert not d.allowed and d.rule == "cease_contact" and d.final
    assert decide("letter", action="bureau_notice", now=now, holds=hold).allowed
    assert decide("credit_bureau", action="bureau_report", now=now, holds=hold).allowed
    assert decide("court", action="lawsuit", now=now, holds=hold).allowed


def test_complaint_stops_everything_on_every_loan_but_the_agency_recall():
    hold = [c.ActiveHold("complaint", "L2")]
    now = local(2026, 12, 2, 10, 0)
    for ch, action in (("sms", "sms"), ("court", "lawsuit"), ("credit_bureau", "bureau_report"), ("letter", "bureau_notice")):
        d = decide(ch, action=action, now=now, holds=hold, loan="L1")
        assert not d.allowed and d.rule == "complaint" and not d.final
    assert decide("agency", action="agency_recall", now=now, holds=hold).allowed


def test_a_dispute_stops_contact_and_reporting_on_its_own_loan_only():
    hold = [c.ActiveHold("dispute", "L1")]
    now = local(2026, 12, 2, 10, 0)
    assert decide("sms", now=now, holds=hold, loan="L1").rule == "dispute"
    assert decide("credit_bureau", action="bureau_report", now=now, holds=hold, loan="L1").rule == "dispute"
    assert decide("sms", now=now, holds=hold, loan="L2").allowed


# the legal clocks (limitation, enforcement, objection window) are tested in tests/test_legal.py


# ---------------------------------------------------------------- properties over generated borrowers

ZONES = ["Asia/Shanghai", "Asia/Urumqi", "Asia/Hong_Kong", "America/New_York", "Europe/London", "Australia/Sydney"]
CHANNELS = ["sms", "email", "call", "visit", "letter", "law_firm"]
HOLD_KINDS = ["dispute", "cease_contact", "hardship", "complaint"]


@st.composite
def borrowers(draw):
    """A borrower: a zone, 1-3 loans, some holds, and a stream of contact attempts over two months."""
    seed = draw(st.integers(0, 2**32 - 1))
    rnd = random.Random(seed)
    tz = rnd.choice(ZONES)
    loans = [f"L{i}" for i in range(rnd.randint(1, 3))]
    start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=rnd.randint(0, 365 * 24 * 60))
    holds = []
    for _ in range(rnd.randint(0, 2)):
        kind = rnd.choice(HOLD_KINDS)
        placed = start + timedelta(hours=rnd.randint(0, 24 * 40))
        until = placed + timedelta(days=rnd.randint(1, 20)) if kind == "hardship" else None
        holds.append((placed, c.ActiveHold(kind, rnd.choice(loans), until)))
    attempts = sorted((start + timedelta(minutes=rnd.randint(0, 60 * 24 * 60)), rnd.choice(loans), rnd.choice(CHANNELS))
                      for _ in range(rnd.randint(5, 30)))
    rules = ContactRules(call_cap_7d=rnd.randint(1, 7), no_call_after_conversation_days=rnd.choice([0, 7]),
                         min_minutes_between_contacts=rnd.choice([0, 60, 240]), weekends=rnd.random() < 0.7)
    return tz, loans, holds, attempts, rules, rnd


def active_holds(holds, now):
    return [h for placed, h in holds if placed <= now]


def check_allowed(d, *, channel, action, loan, now, tz, rules, holds, history):
    """Every invariant an allowed contact must satisfy."""
    loc = now.astimezone(ZoneInfo(tz))
    if channel in rules.timed_channels:
        start, end = rules.window
        assert start <= loc.hour * 60 + loc.minute < end, (loc, "outside the window")
    if channel in c.CONTACT_CHANNELS:
        assert c.day_allowed(loc.date(), rules), (loc.date(), "holiday or weekend")
        same_day = [p for p in history if p.channel == channel and p.at.astimezone(ZoneInfo(tz)).date() == loc.date()]
        assert len(same_day) < rules.daily_caps.get(channel, 10**9), "over the daily cap"
        if channel == "call":
            # in elapsed time (UTC): an aware local `now` minus 7 days is wall-clock arithmetic, an hour off
            # across a DST change (found by hypothesis: Europe/London, 2026-10-26)
            utc_now = now.astimezone(UTC)
            week = [p for p in history if p.channel == "call" and utc_now - timedelta(days=7) < p.at <= utc_now]
            assert len(week) < rules.call_cap_7d, "over the 7-day call cap"
    for h in holds:
        if h.until is not None and h.until <= now:
            continue
        assert h.kind not in ("complaint", "bankruptcy", "deceased"), "contact during a complaint"
        if channel in c.CONTACT_CHANNELS:
            assert h.kind != "hardship", "contact during hardship"
            assert not (h.kind == "cease_contact" and action not in c.LEGAL_NOTICES), "contact after cease_contact"
            assert not (h.kind == "dispute" and h.loan_id == loan), "contact on a disputed loan"


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(borrowers(), min_size=5, max_size=5))
def test_no_contact_breaks_a_rule_and_every_allowed_step_eventually_happens(population):
    """5 borrowers an example, 2,000 examples: 10,000 borrowers with several loans, zones, holds and timelines."""
    for tz, loans, holds, attempts, rules, rnd in population:
        history: list[c.PastContact] = []
        for at, loan, channel in attempts:
            now, tries = at, 0
            while True:
                current = active_holds(holds, now)
                d = c.decide(action=channel, channel=channel, loan_id=loan, now=now, tz=tz, rules=rules,
                             holds=current, history=history)
                if d.allowed:
                    check_allowed(d, channel=channel, action=channel, loan=loan, now=now, tz=tz, rules=rules,
                                  holds=current, history=history)
                    history.append(c.PastContact(at=now, channel=channel, loan_id=loan,
                                                 outcome=rnd.choice(["answered", "no_answer"]) if channel == "call" else None))
                    break
                if d.final:
                    assert d.rule in ("cease_contact",), d
                    break
                assert d.retry_at is not None and d.retry_at > now, d  # a refusal always says until when
                if d.rule in ("complaint", "dispute"):
                    break  # stays refused until a person releases it; released holds are tested end to end
                now, tries = d.retry_at, tries + 1
                assert tries < 60, f"never allowed: {d}"  # liveness: once nothing forbids it, it happens


def test_a_bankruptcy_is_the_answer_whatever_else_is_held():
    """cease_contact on one loan and a bankruptcy on another: the third loan's SMS is refused for the
    bankruptcy (final, and it closes that case), not for the cease_contact met first."""
    now = datetime(2026, 12, 1, 3, 0, tzinfo=timezone.utc)
    holds = [c.ActiveHold("cease_contact", "L1"), c.ActiveHold("complaint", "L1"), c.ActiveHold("bankruptcy", "L2")]
    d = c.check_holds("sms", "sms", "L3", holds, now)
    assert (d.allowed, d.rule, d.final) == (False, "bankruptcy", True)


def test_only_the_borrowers_own_bankruptcy_or_death_closes_the_case():
    from domain.case import Case
    from domain.models import GateRecord

    now = datetime(2026, 12, 1, 3, 0, tzinfo=timezone.utc)

    def refused(action, rule):
        return GateRecord(at=now, step="overdue_letter", action=action, allowed=False, rule=rule, reason="r", final=True)

    assert Case.borrower_closure([refused("letter@guarantor", "deceased")]) is None     # the guarantor died
    assert Case.borrower_closure([refused("letter", "cease_contact")]) is None
    mine = refused("letter", "deceased")
    assert Case.borrower_closure([refused("letter@guarantor", "deceased"), mine]) is mine
