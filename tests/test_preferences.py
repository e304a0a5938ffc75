"""The borrower's contact preferences (domain.compliance.Preferences): what they may choose, checked with the field
named, and how the gate applies them: a channel they closed is refused for good except a legal notice, and a timed
contact outside their hours waits for their next start. On their page they reach every loan's gate."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from domain import compliance as c
from domain.errors import InvalidInput
from domain.policy import ContactRules

SH = ZoneInfo("Asia/Shanghai")
RULES = ContactRules()  # 08:00-21:00, the default policy's window


def at(h: int, mi: int = 0, day: int = 8) -> datetime:  # Tuesday 2026-12-08, an ordinary working day
    return datetime(2026, 12, day, h, mi, tzinfo=SH)


def decide(channel: str, now: datetime, prefs: c.Preferences | None, action: str | None = None) -> c.Decision:
    return c.decide(
        action=action or channel, channel=channel, loan_id="L1", now=now, tz="Asia/Shanghai", rules=RULES,
        holds=[], history=[], prefs=prefs,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("start", "end", "quiet", "field", "words"),
    [
        ("07:00", "12:00", [], "hours", "inside the hours we may call, 08:00-21:00"),
        ("12:00", "21:30", [], "hours", "inside the hours"),
        ("12:00", "13:00", [], "hours", "shorter than two hours"),
        ("14:00", "12:00", [], "hours", "inside the hours"),
        ("12:00", None, [], "hours", "both the start and the end"),
        ("noon", "14:00", [], "hours", "not two times of day"),
        (None, None, ["letter"], "quiet", "only sms, email, call can be chosen"),
        (None, None, ["sms", "email", "call"], "quiet", "keep at least one"),
    ],
)
def test_what_a_borrower_may_not_choose_is_refused_with_the_field_and_the_reason(start, end, quiet, field, words):
    with pytest.raises(InvalidInput) as exc:
        c.preferences(start, end, quiet, False, RULES)
    assert exc.value.field == field and words in exc.value.reason


def test_hours_inside_the_window_and_two_channels_closed_are_taken():
    p = c.preferences("18:00", "20:30", ["call", "sms"], True, RULES)
    assert p.hours == (18 * 60, 20 * 60 + 30) and p.quiet == {"sms", "call"} and p.not_at_work


def test_a_closed_channel_is_refused_for_good_and_the_step_goes_on_with_the_others():
    p = c.preferences(None, None, ["call"], False, RULES)
    d = decide("call", at(10), p)
    assert not d.allowed and d.rule == "borrower_preference" and d.final and d.retry_at is None
    assert decide("sms", at(10), p).allowed and decide("letter", at(10), p).allowed


def test_a_legal_notice_still_goes_by_a_channel_the_borrower_closed():
    p = c.preferences(None, None, ["sms"], False, RULES)
    assert decide("sms", at(10), p, action="bureau_notice_sms").allowed  # 征信业管理条例 art. 15: the notice is owed
    assert not decide("sms", at(10), p, action="reminder_sms").allowed


def test_a_timed_contact_outside_the_borrowers_hours_waits_for_their_next_start():
    p = c.preferences("18:00", "20:00", [], False, RULES)
    early = decide("sms", at(9, 30), p)
    assert not early.allowed and early.rule == "borrower_hours" and early.retry_at == at(18)
    late = decide("call", at(20, 0), p)  # the end is not inside
    assert not late.allowed and late.retry_at == at(18, day=9)
    assert decide("call", at(19, 59), p).allowed
    assert decide("letter", at(9, 30), p).allowed  # a letter is not bound to hours


def test_the_legal_window_still_binds_inside_the_borrowers_hours():
    p = c.preferences("08:00", "21:00", [], False, RULES)
    d = decide("call", at(7, 59), p)
    assert not d.allowed and d.rule == "contact_window"  # the law's own rule answers first
    assert decide("call", at(8), p).allowed


def test_no_preferences_change_nothing():
    for h in (8, 12, 20):
        assert decide("call", at(h), None) == decide("call", at(h), c.Preferences())
    assert decide("call", at(21), None).rule == "contact_window"
    assert decide("sms", at(9), c.Preferences()).allowed
