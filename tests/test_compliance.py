"""The contact gate's rules at their edges, and properties over many generated borrowers."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain import calendar
from domain import compliance as c
from domain.policy import ContactRules

SH = "Asia/Shanghai"
RULES = ContactRules()
UTC = UTC


def local(y, mo, d, h=0, mi=0, s=0, us=0, tz=SH) -> datetime:
    return datetime(y, mo, d, h, mi, s, us, tzinfo=ZoneInfo(tz)).astimezone(UTC)


def decide(channel="sms", action=None, now=None, holds=(), history=(), rules=RULES, tz=SH, loan="L1"):
    return c.decide(
        action=action or channel,
        channel=channel,
        loan_id=loan,
        now=now,
        tz=tz,
        rules=rules,
        holds=list(holds),
        history=list(history),
    )


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
    assert not d.allowed and d.rule == "holiday" and "国庆节" in d.reason
    # 国办发明电〔2025〕7号: "10月1日（周四）至7日（周三）放假调休"; 8 October is the first working day
    assert d.retry_at == local(2026, 10, 8, 8, 0)
    assert not c.is_public_holiday(d.retry_at.astimezone(ZoneInfo(SH)).date())


def test_make_up_working_saturday_counts_as_a_working_day():
    no_weekends = ContactRules(weekends=False)
    assert date(2026, 2, 14).weekday() == 5 and c.is_working_day(date(2026, 2, 14))  # 调休 Saturday
    assert decide(now=local(2026, 2, 14, 10, 0), rules=no_weekends).allowed
    sunday = decide(now=local(2026, 2, 15, 10, 0), rules=no_weekends)
    assert not sunday.allowed and sunday.rule == "holiday"
    # 21 February 2026 is a Saturday *inside* the Spring Festival break (2月15日至23日放假调休), not an ordinary one:
    # refused under the default rules too, which allow ordinary weekends
    assert date(2026, 2, 21).weekday() == 5
    assert decide(now=local(2026, 2, 21, 10, 0), rules=no_weekends).rule == "holiday"
    inside = decide(now=local(2026, 2, 21, 10, 0))
    assert not inside.allowed and inside.rule == "holiday" and "春节" in inside.reason
    assert inside.retry_at == local(2026, 2, 24, 8, 0)
    # an ordinary Saturday (7 March 2026) is allowed by the default rules, refused with weekends = false
    assert decide(now=local(2026, 3, 7, 10, 0)).allowed
    assert decide(now=local(2026, 3, 7, 10, 0), rules=no_weekends).rule == "holiday"


# ---------------------------------------------------------------- a year with no calendar file fails closed


def test_a_year_without_a_calendar_file_refuses_contacts_bound_to_rest_days(tmp_path, monkeypatch):
    from domain import calendar

    # a folder of the official files alone (the suite's own folder adds test-only stand-ins for later years)
    official = tmp_path / "official"
    official.mkdir()
    for f in calendar.OFFICIAL_DIR.glob("cn-*.toml"):
        (official / f.name).write_text(f.read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.setattr(calendar, "CALENDAR_DIR", official)
    monkeypatch.setattr(calendar, "_loaded", {})
    assert 2031 not in calendar.years_available()
    d = decide(now=local(2031, 3, 4, 10, 0))  # a Tuesday, in a year with no file
    assert not d.allowed and d.rule == "calendar_missing" and not d.final
    assert "cn-2031.toml" in d.reason
    assert d.retry_at == local(2031, 3, 5, 10, 0)  # asked again the next day
    assert decide(now=local(2031, 3, 4, 10, 0), rules=ContactRules(weekends=False)).rule == "calendar_missing"
    assert decide("letter", now=local(2031, 3, 4, 23, 0)).rule == "calendar_missing"  # untimed, still bound to days
    # rules that bind neither holidays nor weekends need no calendar
    free = ContactRules(public_holidays=False, weekends=True)
    assert decide(now=local(2031, 3, 4, 10, 0), rules=free).allowed
    # the file arrives: the next ask is released (no restart)
    monkeypatch.setattr(calendar, "CALENDAR_DIR", tmp_path)
    monkeypatch.setattr(calendar, "_loaded", {})
    (tmp_path / "cn-2031.toml").write_text(
        'year = 2031\n[source]\ntitle = "国务院办公厅关于2031年部分节假日安排的通知"\nnumber = "test"\ndate = 2030-11-01\n'
        '[[breaks]]\nname = "元旦"\nrest = [2031-01-01]\n',
        encoding="utf-8",
    )
    assert decide(now=local(2031, 3, 5, 10, 0)).allowed


def test_a_window_closing_into_a_year_without_a_file_asks_again_when_it_begins(tmp_path, monkeypatch):
    from domain import calendar

    src = calendar.calendar_path(2026).read_text(encoding="utf-8")
    monkeypatch.setattr(calendar, "CALENDAR_DIR", tmp_path)
    monkeypatch.setattr(calendar, "_loaded", {})
    (tmp_path / "cn-2026.toml").write_text(src, encoding="utf-8")  # 2026 only
    d = decide(now=local(2026, 12, 31, 21, 30))
    assert d.rule == "contact_window" and d.retry_at == local(2027, 1, 1, 0, 0)
    then = decide(now=d.retry_at)
    assert then.rule == "calendar_missing" and "cn-2027.toml" in then.reason


# ---------------------------------------------------------------- the window on both clocks

BOTH = ContactRules(window_in_beijing_time=True)
URUMQI = "Asia/Urumqi"  # UTC+6: 21:00 Beijing time is 19:00 there


def test_urumqi_borrower_not_called_after_2100_beijing_time():
    # 19:00 in Urumqi = 21:00 Beijing: inside the recorded zone's window, outside Beijing's
    at = local(2026, 12, 2, 21, 0)
    assert at == local(2026, 12, 2, 19, 0, tz=URUMQI)
    assert decide("call", now=at, tz=URUMQI).allowed  # recorded clock only (option off)
    d = decide("call", now=at, tz=URUMQI, rules=BOTH)
    assert not d.allowed and d.rule == "contact_window" and "Beijing" in d.reason
    # next: 08:00 Urumqi = 10:00 Beijing (the later of the two openings)
    assert d.retry_at == local(2026, 12, 3, 8, 0, tz=URUMQI) == local(2026, 12, 3, 10, 0)
    assert decide("call", now=local(2026, 12, 2, 20, 59), tz=URUMQI, rules=BOTH).allowed
    # 09:00 Beijing is 07:00 in Urumqi: Beijing's window is open, the recorded zone's is not
    early = decide("call", now=local(2026, 12, 3, 9, 0), tz=URUMQI, rules=BOTH)
    assert early.rule == "contact_window" and early.retry_at == local(2026, 12, 3, 10, 0)


def test_both_clocks_also_keep_beijings_rest_days():
    # 23:30 on 14 Feb in New York is 12:30 on 15 Feb in Beijing: a rest day of the Spring Festival break there
    ny = "America/New_York"
    at = local(2026, 2, 14, 23, 30, tz=ny)
    rules = ContactRules(window_start="00:00", window_end="24:00", window_in_beijing_time=True)
    d = decide("letter", now=at, tz=ny, rules=rules)
    assert not d.allowed and d.rule == "holiday" and "Beijing" in d.reason
    # the first instant both allow: 24 Feb in New York (the 23rd, still in the break, ends there 13 hours later)
    assert d.retry_at == local(2026, 2, 24, 0, 0, tz=ny)
    assert decide("letter", now=at, tz=ny, rules=rules.model_copy(update={"window_in_beijing_time": False})).allowed


def test_a_shanghai_borrower_is_unchanged_by_the_option():
    for h in (7, 8, 20, 21):
        assert decide(now=local(2026, 12, 2, h, 0)) == decide(now=local(2026, 12, 2, h, 0), rules=BOTH)


def test_the_default_policy_holds_the_window_on_both_clocks_and_the_demo_does_not():
    from domain.policy import load_policy

    assert load_policy("default").contact.window_in_beijing_time
    assert not load_policy("demo").contact.window_in_beijing_time


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
    d = c.decide(
        action="email", channel="email", loan_id="L1", now=t + timedelta(minutes=59), tz=SH, rules=RULES, holds=[], history=past
    )
    assert d.rule == "min_interval" and d.retry_at == t + timedelta(minutes=60)
    same_step = c.decide(
        action="email",
        channel="email",
        loan_id="L2",
        now=t,
        tz=SH,
        rules=RULES,
        holds=[],
        history=past,
        bundle="loan-L2:reminder",
    )
    assert same_step.allowed


# ---------------------------------------------------------------- a compressed policy day scales the rules

DEMO_DAY = 6  # the demo policy's day_seconds


def test_daily_cap_counts_policy_days_on_a_compressed_clock():
    rules = ContactRules(window_start="00:00", window_end="24:00", public_holidays=False, min_minutes_between_contacts=0)
    t = datetime.fromtimestamp(1_800_000_000 // DEMO_DAY * DEMO_DAY, tz=UTC)  # the start of a policy day
    two = [c.PastContact(at=t, channel="sms"), c.PastContact(at=t + timedelta(seconds=1), channel="sms")]
    d = c.decide(
        action="sms",
        channel="sms",
        loan_id="L1",
        now=t + timedelta(seconds=2),
        tz=SH,
        rules=rules,
        holds=[],
        history=two,
        day_seconds=DEMO_DAY,
    )
    assert d.rule == "daily_cap" and d.retry_at == t + timedelta(seconds=DEMO_DAY)
    assert c.decide(
        action="sms", channel="sms", loan_id="L1", now=d.retry_at, tz=SH, rules=rules, holds=[], history=two, day_seconds=DEMO_DAY
    ).allowed  # the next policy day, 6 s later, not tomorrow
    # on the real calendar the same history blocks until local midnight
    real = c.decide(
        action="sms", channel="sms", loan_id="L1", now=t + timedelta(seconds=2), tz=SH, rules=rules, holds=[], history=two
    )
    assert real.rule == "daily_cap" and real.retry_at > t + timedelta(hours=1)


def test_seven_day_call_cap_spacing_and_conversation_count_policy_days():
    rules = ContactRules(
        window_start="00:00",
        window_end="24:00",
        public_holidays=False,
        daily_caps={"call": 10},
        call_cap_7d=2,
        min_minutes_between_contacts=60,
    )
    t = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)
    kw = dict(action="call", channel="call", loan_id="L1", tz=SH, rules=rules, holds=[], day_seconds=DEMO_DAY)
    # spacing: 60 policy minutes of a 6-second day = 0.25 s
    one = [c.PastContact(at=t, channel="call", outcome="no_answer")]
    d = c.decide(now=t + timedelta(seconds=0.2), history=one, **kw)
    assert d.rule == "min_interval" and d.retry_at == t + timedelta(seconds=0.25)
    # two calls in 7 policy days (42 s): the third waits until the first leaves the window
    two = one + [c.PastContact(at=t + timedelta(seconds=6), channel="call", outcome="no_answer")]
    d = c.decide(now=t + timedelta(seconds=12), history=two, **kw)
    assert d.rule == "call_cap_7d" and d.retry_at == t + timedelta(seconds=42)
    assert c.decide(now=t + timedelta(seconds=42), history=two, **kw).allowed
    # a conversation: no call for 7 policy days (42 s), not 7 real days
    talk = [c.PastContact(at=t, channel="call", outcome="answered")]
    d = c.decide(now=t + timedelta(seconds=30), history=talk, **kw)
    assert d.rule == "after_conversation" and d.retry_at == t + timedelta(seconds=42)
    assert c.decide(now=t + timedelta(seconds=42), history=talk, **kw).allowed


def test_the_demo_gate_never_waits_longer_than_a_few_policy_days():
    """The stall of `make demo` after ~8 minutes: refusals asked again after real days. On the demo policy's
    6-second day every refusal of the gate (no holds) is retried within 7 policy days."""
    from domain.policy import load_policy

    policy = load_policy("demo")
    rules, ds = policy.contact, policy.day_seconds
    t = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)
    history: list[c.PastContact] = []
    for i in range(400):
        ch = ["sms", "call", "email", "letter", "visit"][i % 5]
        d = c.decide(action=ch, channel=ch, loan_id="L1", now=t, tz=SH, rules=rules, holds=[], history=history, day_seconds=ds)
        if d.allowed:
            history.append(c.PastContact(at=t, channel=ch, outcome="answered" if ch == "call" else None))
        else:
            assert d.retry_at - t <= timedelta(seconds=7 * ds), d
        t += timedelta(seconds=0.5)


# ---------------------------------------------------------------- holds


def test_the_first_second_after_a_hardship_hold_ends_is_allowed():
    ends = local(2026, 12, 10, 0, 0)
    hold = [c.ActiveHold("hardship", "L1", until=ends)]
    before = decide(
        now=ends - timedelta(microseconds=1), holds=hold, rules=ContactRules(window_start="00:00", window_end="24:00")
    )
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
    attempts = sorted(
        (start + timedelta(minutes=rnd.randint(0, 60 * 24 * 60)), rnd.choice(loans), rnd.choice(CHANNELS))
        for _ in range(rnd.randint(5, 30))
    )
    rules = ContactRules(
        call_cap_7d=rnd.randint(1, 7),
        no_call_after_conversation_days=rnd.choice([0, 7]),
        min_minutes_between_contacts=rnd.choice([0, 60, 240]),
        weekends=rnd.random() < 0.7,
        public_holidays=rnd.random() < 0.9,
        window_in_beijing_time=rnd.random() < 0.5,
    )
    return tz, loans, holds, attempts, rules, rnd


def active_holds(holds, now):
    return [h for placed, h in holds if placed <= now]


def check_allowed(d, *, channel, action, loan, now, tz, rules, holds, history):
    """Every invariant an allowed contact must satisfy."""
    loc = now.astimezone(ZoneInfo(tz))
    # the clocks that bind: the recorded zone, and Beijing time when the policy says so
    for z in [tz] + ([SH] if rules.window_in_beijing_time else []):
        there = now.astimezone(ZoneInfo(z))
        if channel in rules.timed_channels:
            start, end = rules.window
            assert start <= there.hour * 60 + there.minute < end, (there, z, "outside the window")
        if channel in c.CONTACT_CHANNELS:
            # straight from the calendar files, not through the gate's own day_allowed
            if rules.public_holidays:
                assert not calendar.is_public_holiday(there.date()), (there.date(), z, "rest day of an official break")
            if not rules.weekends:
                assert not calendar.is_rest_day(there.date()), (there.date(), z, "rest day")
    if channel in c.CONTACT_CHANNELS:
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
    for tz, _loans, holds, attempts, rules, rnd in population:
        history: list[c.PastContact] = []
        for at, loan, channel in attempts:
            now, tries = at, 0
            while True:
                current = active_holds(holds, now)
                d = c.decide(
                    action=channel, channel=channel, loan_id=loan, now=now, tz=tz, rules=rules, holds=current, history=history
                )
                if d.allowed:
                    check_allowed(
                        d, channel=channel, action=channel, loan=loan, now=now, tz=tz, rules=rules, holds=current, history=history
                    )
                    history.append(
                        c.PastContact(
                            at=now,
                            channel=channel,
                            loan_id=loan,
                            outcome=rnd.choice(["answered", "no_answer"]) if channel == "call" else None,
                        )
                    )
                    break
                if d.final:
                    assert d.rule in ("cease_contact",), d
                    break
                assert d.retry_at is not None and d.retry_at > now, d  # a refusal always says until when
                if d.rule in ("complaint", "dispute"):
                    break  # stays refused until a person releases it; released holds are tested end to end
                if d.rule == "calendar_missing":  # fails closed until the year's file is added
                    assert rules.public_holidays or not rules.weekends, d
                    assert any(now.astimezone(ZoneInfo(z)).year not in calendar.years_available() for z in (tz, SH)), d
                    break
                now, tries = d.retry_at, tries + 1
                assert tries < 60, f"never allowed: {d}"  # liveness: once nothing forbids it, it happens


def test_a_bankruptcy_is_the_answer_whatever_else_is_held():
    """cease_contact on one loan and a bankruptcy on another: the third loan's SMS is refused for the
    bankruptcy (final, and it closes that case), not for the cease_contact met first."""
    now = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    holds = [c.ActiveHold("cease_contact", "L1"), c.ActiveHold("complaint", "L1"), c.ActiveHold("bankruptcy", "L2")]
    d = c.check_holds("sms", "sms", "L3", holds, now)
    assert (d.allowed, d.rule, d.final) == (False, "bankruptcy", True)


def test_only_the_borrowers_own_bankruptcy_or_death_closes_the_case():
    from domain.case import Case
    from domain.models import GateRecord

    now = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)

    def refused(action, rule):
        return GateRecord(at=now, step="overdue_letter", action=action, allowed=False, rule=rule, reason="r", final=True)

    assert Case.borrower_closure([refused("letter@guarantor", "deceased")]) is None  # the guarantor died
    assert Case.borrower_closure([refused("letter", "cease_contact")]) is None
    mine = refused("letter", "deceased")
    assert Case.borrower_closure([refused("letter@guarantor", "deceased"), mine]) is mine
