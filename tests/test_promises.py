"""Promises to pay: validation on making, kept / broken / active at the deadline edges."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.dates import DAY, CaseClock
from domain.errors import InvalidInput
from domain.policy import PromiseRules
from domain.promises import evaluate_promise, make_promise

UTC = UTC
US = timedelta(microseconds=1)
NOW = datetime(2026, 5, 10, 4, 0, tzinfo=UTC)  # 12:00 on 10 May in Shanghai
TODAY = date(2026, 5, 10)
CLOCK = CaseClock(date(2026, 4, 1), "Asia/Shanghai", DAY, NOW, 39)
RULES = PromiseRules()  # grace 3 days, at most 14 days ahead
OUTSTANDING = 1_052_000


def promise(
    amount="500.00",
    day=TODAY + timedelta(days=5),
    outstanding=OUTSTANDING,
    currency="CNY",
    rules=RULES,
    clock=CLOCK,
    now=NOW,
    paid_before=0,
):
    return make_promise(amount, day, outstanding, currency, rules, clock, now, paid_before)


def test_make_promise():
    p = promise(paid_before=12_345)
    assert p.amount == 50_000
    assert p.date == TODAY + timedelta(days=5)
    # local midnight after 15 May plus 3 days of grace: 19 May 00:00 Shanghai = 18 May 16:00 UTC
    assert p.deadline == datetime(2026, 5, 18, 16, 0, tzinfo=UTC)
    assert p.made_at == NOW and p.paid_before == 12_345 and p.status == "active"


def test_promise_for_today_and_for_the_last_allowed_day():
    assert promise(day=TODAY).date == TODAY
    assert promise(day=TODAY + timedelta(days=14)).date == TODAY + timedelta(days=14)


def test_promise_for_the_whole_outstanding():
    assert promise(amount="10520.00").amount == OUTSTANDING


@pytest.mark.parametrize(
    ("kw", "field", "fragment"),
    [
        ({"amount": "10520.01"}, "amount", "more than the outstanding 10520.00"),
        ({"amount": "0"}, "amount", "greater than zero"),
        ({"amount": "-5"}, "amount", "negative"),
        ({"amount": "abc"}, "amount", "not a plain decimal"),
        ({"amount": "1.234"}, "amount", "3 decimals"),
        ({"amount": ""}, "amount", "empty"),
        ({"currency": "XYZ"}, "currency", "unknown or unsupported currency"),
        ({"day": None}, "date", "is required"),
        ({"day": TODAY - timedelta(days=1)}, "date", "is in the past"),
        ({"day": TODAY + timedelta(days=15)}, "date", "at most 14"),
    ],
)
def test_make_promise_rejected(kw, field, fragment):
    with pytest.raises(InvalidInput) as exc:
        promise(**kw)
    assert exc.value.field == field, str(exc.value)
    assert fragment in exc.value.reason, str(exc.value)


def test_policy_rules_apply():
    rules = PromiseRules(grace_days=0, max_days_ahead=3)
    p = promise(rules=rules, day=TODAY + timedelta(days=3))
    assert p.deadline == datetime(2026, 5, 13, 16, 0, tzinfo=UTC)  # midnight after 13 May
    with pytest.raises(InvalidInput, match="at most 3"):
        promise(rules=rules, day=TODAY + timedelta(days=4))


def test_promise_deadline_in_new_york_is_local_midnight_across_dst():
    now = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    clock = CaseClock(date(2026, 2, 1), "America/New_York", DAY, now, 29)
    p = promise(day=date(2026, 3, 6), clock=clock, now=now)
    # 6 March + 1 + 3 days grace = 10 March 00:00 EDT (DST began on 8 March) = 04:00 UTC
    assert p.deadline == datetime(2026, 3, 10, 4, 0, tzinfo=UTC)


def test_evaluate_promise_at_the_deadline_edges():
    p = promise()
    d = p.deadline
    assert evaluate_promise(p, 0, NOW) == "active"
    assert evaluate_promise(p, 0, d - US) == "active"
    assert evaluate_promise(p, 0, d) == "broken"
    assert evaluate_promise(p, 49_999, d) == "broken"  # a cent short
    assert evaluate_promise(p, 49_999, d - US) == "active"
    assert evaluate_promise(p, 50_000, d - US) == "kept"
    assert evaluate_promise(p, 50_000, d) == "kept"
    assert evaluate_promise(p, 80_000, NOW) == "kept"


def test_evaluate_promise_counts_only_payments_after_it_was_made():
    p = promise(paid_before=30_000)
    assert evaluate_promise(p, 30_000, NOW) == "active"
    assert evaluate_promise(p, 79_999, NOW) == "active"
    assert evaluate_promise(p, 80_000, NOW) == "kept"
    assert evaluate_promise(p, 79_999, p.deadline) == "broken"


@settings(max_examples=300, deadline=None)
@given(
    amount=st.integers(min_value=1, max_value=OUTSTANDING),
    paid=st.integers(min_value=0, max_value=2 * OUTSTANDING),
    before=st.integers(min_value=0, max_value=10**6),
    ahead=st.integers(min_value=0, max_value=14),
    offset=st.integers(min_value=-30 * 86400, max_value=30 * 86400),
)
def test_evaluate_promise_rule(amount, paid, before, ahead, offset):
    text = f"{amount // 100}.{amount % 100:02d}"
    p = promise(amount=text, day=TODAY + timedelta(days=ahead), paid_before=before)
    assert p.amount == amount
    now = p.deadline + timedelta(seconds=offset)
    verdict = evaluate_promise(p, before + paid, now)
    if paid >= amount:
        assert verdict == "kept"
    elif offset >= 0:
        assert verdict == "broken"
    else:
        assert verdict == "active"
