"""Repayment plans: deferral, instalments, interest waiver within the policy's limits; schedules; evaluation."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.dates import DAY, CaseClock, add_months
from domain.errors import InvalidInput
from domain.models import Balances, PlanIn
from domain.plans import build_plan, evaluate_plan, next_plan_deadline, split
from domain.policy import PlanLimits

UTC = UTC
SH = "Asia/Shanghai"
NOW = datetime(2026, 5, 10, 4, 0, tzinfo=UTC)  # 12:00 on 10 May in Shanghai
TODAY = date(2026, 5, 10)
CLOCK = CaseClock(date(2026, 4, 1), SH, DAY, NOW, 39)
LIMITS = PlanLimits()
BAL = Balances(principal=1_000_000, interest=50_000, fees=2_000)


def plan(
    balances: Balances = BAL,
    limits: PlanLimits = LIMITS,
    now: datetime = NOW,
    paid_before: int = 0,
    clock: CaseClock = CLOCK,
    **req,
):
    return build_plan(PlanIn(**req), balances, limits, clock, now, paid_before)


def rejected(field: str, fragment: str, **kw) -> InvalidInput:
    with pytest.raises(InvalidInput) as exc:
        plan(**kw)
    assert exc.value.field == field, str(exc.value)
    assert fragment in exc.value.reason, str(exc.value)
    return exc.value


def midnight_after(day: date, grace: int) -> datetime:
    """Local midnight (Shanghai, UTC+8) after `day` plus `grace` days."""
    return datetime.combine(day + timedelta(days=1 + grace), datetime.min.time(), tzinfo=UTC) - timedelta(hours=8)


# ---------------------------------------------------------------- deferral


def test_deferral_moves_the_whole_balance_to_one_date():
    p = plan(kind="deferral", until=TODAY + timedelta(days=30))
    assert p.kind == "deferral" and p.total == BAL.total and p.waived == 0
    assert [(i.due, i.amount) for i in p.schedule] == [(TODAY + timedelta(days=30), BAL.total)]
    assert p.schedule[0].deadline == midnight_after(TODAY + timedelta(days=30), LIMITS.grace_days)
    assert p.made_at == NOW and p.paid_before == 0 and p.status == "active"


def test_deferral_to_the_last_allowed_day():
    p = plan(kind="deferral", until=TODAY + timedelta(days=LIMITS.max_deferral_days))
    assert p.schedule[0].due == TODAY + timedelta(days=90)


@pytest.mark.parametrize(
    ("until", "fragment"),
    [
        (None, "is required"),
        (TODAY, "is in the past"),  # a deferral must move the date forward
        (TODAY - timedelta(days=1), "is in the past"),
        (TODAY + timedelta(days=91), "the policy allows at most 90"),
    ],
)
def test_deferral_date_rejected(until, fragment):
    rejected("until", fragment, kind="deferral", until=until)


def test_deferral_with_a_waiver():
    p = plan(kind="deferral", until=TODAY + timedelta(days=10), waiver_percent=20)
    assert p.waived == 10_000 and p.total == BAL.total - 10_000


# ---------------------------------------------------------------- interest waiver


def test_interest_waiver_plan():
    p = plan(kind="interest_waiver", pay_by=TODAY + timedelta(days=7), waiver_percent=50)
    assert p.waived == 25_000
    assert p.total == BAL.total - 25_000
    assert [(i.due, i.amount) for i in p.schedule] == [(TODAY + timedelta(days=7), p.total)]


def test_interest_waiver_rounds_the_waiver_down_to_the_cent():
    p = plan(balances=Balances(principal=100, interest=333), kind="interest_waiver", pay_by=TODAY, waiver_percent=50)
    assert p.waived == 166 and p.total == 100 + 333 - 166


@pytest.mark.parametrize(
    ("kw", "field", "fragment"),
    [
        ({"waiver_percent": 0}, "waiver_percent", "waives at least 1%"),
        ({"waiver_percent": 51}, "waiver_percent", "outside 0..50%"),
        ({"waiver_percent": -5}, "waiver_percent", "outside 0..50%"),
        ({"waiver_percent": 10, "pay_by": None}, "pay_by", "is required"),
        ({"waiver_percent": 10, "pay_by": TODAY - timedelta(days=1)}, "pay_by", "is in the past"),
        ({"waiver_percent": 10, "pay_by": TODAY + timedelta(days=31)}, "pay_by", "at most 30"),
    ],
)
def test_interest_waiver_rejected(kw, field, fragment):
    req = {"kind": "interest_waiver", "pay_by": TODAY + timedelta(days=5)} | kw
    rejected(field, fragment, **req)


def test_waiver_needs_interest_to_waive():
    rejected(
        "waiver_percent",
        "no outstanding interest",
        balances=Balances(principal=1_000),
        kind="interest_waiver",
        pay_by=TODAY,
        waiver_percent=10,
    )


def test_full_waiver_of_interest_only_debt_leaves_nothing_to_pay():
    limits = PlanLimits(max_interest_waiver_percent=100)
    rejected(
        "waiver_percent",
        "nothing to pay",
        balances=Balances(interest=500),
        limits=limits,
        kind="interest_waiver",
        pay_by=TODAY,
        waiver_percent=100,
    )


def test_policy_limit_on_waiver_percent():
    rejected(
        "waiver_percent",
        "outside 0..0%",
        limits=PlanLimits(max_interest_waiver_percent=0),
        kind="deferral",
        until=TODAY + timedelta(days=3),
        waiver_percent=1,
    )


# ---------------------------------------------------------------- instalments


def test_instalments_monthly_schedule():
    first = TODAY + timedelta(days=10)
    p = plan(kind="instalments", instalments=12, first_due=first)
    assert len(p.schedule) == 12
    assert sum(i.amount for i in p.schedule) == p.total == BAL.total
    assert [i.due for i in p.schedule] == [add_months(first, k) for k in range(12)]
    assert p.schedule[0].amount == BAL.total // 12
    assert p.schedule[-1].amount == BAL.total - 11 * (BAL.total // 12)
    for i in p.schedule:
        assert i.deadline == midnight_after(i.due, LIMITS.grace_days)


def test_instalment_dates_clamp_to_month_end_without_drifting():
    now = datetime(2028, 1, 20, 4, tzinfo=UTC)
    clock = CaseClock(date(2027, 12, 1), SH, DAY, now, 50)
    p = plan(now=now, clock=clock, kind="instalments", instalments=6, first_due=date(2028, 1, 31))
    assert [i.due for i in p.schedule] == [
        date(2028, 1, 31),
        date(2028, 2, 29),
        date(2028, 3, 31),
        date(2028, 4, 30),
        date(2028, 5, 31),
        date(2028, 6, 30),
    ]


def test_instalments_every_three_months():
    first = TODAY + timedelta(days=1)
    p = plan(kind="instalments", instalments=4, interval_months=3, first_due=first)
    assert [i.due for i in p.schedule] == [first, add_months(first, 3), add_months(first, 6), add_months(first, 9)]


def test_instalments_with_a_waiver_sum_to_the_reduced_total():
    p = plan(kind="instalments", instalments=7, first_due=TODAY, waiver_percent=30)
    assert p.waived == 15_000
    assert sum(i.amount for i in p.schedule) == p.total == BAL.total - 15_000


def test_term_of_exactly_sixty_months_allowed():
    p = plan(kind="instalments", instalments=20, interval_months=3, first_due=TODAY)
    assert len(p.schedule) == 20
    limits = PlanLimits(max_instalments=60)
    p = plan(limits=limits, kind="instalments", instalments=60, first_due=TODAY)
    assert len(p.schedule) == 60 and p.schedule[-1].due == add_months(TODAY, 59)


@pytest.mark.parametrize(
    ("kw", "limits", "field", "fragment"),
    [
        ({"instalments": None}, LIMITS, "instalments", "is required"),
        ({"instalments": 1}, LIMITS, "instalments", "outside 2..24"),
        ({"instalments": 0}, LIMITS, "instalments", "outside 2..24"),
        ({"instalments": -3}, LIMITS, "instalments", "outside 2..24"),
        ({"instalments": 25}, LIMITS, "instalments", "outside 2..24"),
        ({"instalments": 21, "interval_months": 3}, LIMITS, "instalments", "63-month term; at most 60 months"),
        ({"instalments": 31, "interval_months": 2}, PlanLimits(max_instalments=60), "instalments", "62-month term; at most 60"),
        ({"instalments": 5, "interval_months": 3}, PlanLimits(max_term_months=12), "instalments", "15-month term; at most 12"),
        ({"instalments": 6, "first_due": None}, LIMITS, "first_due", "is required"),
        ({"instalments": 6, "first_due": TODAY - timedelta(days=1)}, LIMITS, "first_due", "is in the past"),
        ({"instalments": 6, "first_due": TODAY + timedelta(days=32)}, LIMITS, "first_due", "at most 31"),
    ],
)
def test_instalments_rejected(kw, limits, field, fragment):
    req = {"kind": "instalments", "first_due": TODAY + timedelta(days=3)} | kw
    rejected(field, fragment, limits=limits, **req)


def test_instalments_smaller_than_a_cent_rejected():
    rejected("instalments", "smallest unit", balances=Balances(principal=5), kind="instalments", instalments=6, first_due=TODAY)


@pytest.mark.parametrize(
    ("kind", "extra", "field"),
    [
        ("instalments", {"instalments": 3, "first_due": TODAY, "until": TODAY + timedelta(days=5)}, "until"),
        ("instalments", {"instalments": 3, "first_due": TODAY, "pay_by": TODAY}, "pay_by"),
        ("deferral", {"until": TODAY + timedelta(days=5), "instalments": 3}, "instalments"),
        ("deferral", {"until": TODAY + timedelta(days=5), "first_due": TODAY}, "first_due"),
        ("interest_waiver", {"pay_by": TODAY, "waiver_percent": 10, "until": TODAY + timedelta(days=5)}, "until"),
    ],
)
def test_fields_of_another_kind_rejected(kind, extra, field):
    rejected(field, "only applies to", kind=kind, **extra)


def test_today_is_the_borrowers_today():
    # 17:00 UTC on 9 May is already 10 May in Shanghai: 9 May is in the past there.
    now = datetime(2026, 5, 9, 17, 0, tzinfo=UTC)
    rejected("first_due", "is in the past", now=now, kind="instalments", instalments=3, first_due=date(2026, 5, 9))
    assert plan(now=now, kind="instalments", instalments=3, first_due=date(2026, 5, 10)).schedule[0].due == date(2026, 5, 10)


@settings(max_examples=300, deadline=None)
@given(total=st.integers(min_value=1, max_value=10**13), count=st.integers(min_value=1, max_value=60))
def test_split_sums_exactly(total, count):
    parts = split(total, count)
    assert len(parts) == count
    assert sum(parts) == total
    assert all(p >= 0 for p in parts)
    assert max(parts) - min(parts) < count  # the last one only carries the remainder


@settings(max_examples=300, deadline=None)
@given(
    principal=st.integers(min_value=0, max_value=10**11),
    interest=st.integers(min_value=0, max_value=10**9),
    fees=st.integers(min_value=0, max_value=10**7),
    n=st.integers(min_value=2, max_value=24),
    interval=st.integers(min_value=1, max_value=12),
    first_in=st.integers(min_value=0, max_value=31),
    pct=st.integers(min_value=0, max_value=50),
)
def test_instalments_sum_exactly_to_the_plan_total(principal, interest, fees, n, interval, first_in, pct):
    b = Balances(principal=principal, interest=interest, fees=fees)
    if pct and interest == 0:
        pct = 0
    first = TODAY + timedelta(days=first_in)
    waived = interest * pct // 100
    if n * interval > 60 or b.total - waived < n:
        with pytest.raises(InvalidInput) as exc:
            plan(balances=b, kind="instalments", instalments=n, interval_months=interval, first_due=first, waiver_percent=pct)
        assert exc.value.field in ("instalments", "waiver_percent")
        return
    p = plan(balances=b, kind="instalments", instalments=n, interval_months=interval, first_due=first, waiver_percent=pct)
    assert p.waived == waived
    assert p.total == b.total - waived
    assert sum(i.amount for i in p.schedule) == p.total
    assert all(i.amount > 0 for i in p.schedule)
    dues = [i.due for i in p.schedule]
    assert dues == [add_months(first, k * interval) for k in range(n)]
    assert dues == sorted(set(dues))
    assert all(i.deadline > NOW for i in p.schedule)
    # the last instalment is due within the legal 60-month term (from the first)
    assert dues[-1] <= add_months(first, 60)


# ---------------------------------------------------------------- evaluating a plan


def three_instalments(paid_before: int = 0):
    return plan(
        paid_before=paid_before,
        balances=Balances(principal=300),
        kind="instalments",
        instalments=3,
        first_due=TODAY + timedelta(days=5),
    )


def test_evaluate_plan_at_the_deadline_edges():
    p = three_instalments()
    d0 = p.schedule[0].deadline
    assert evaluate_plan(p, 0, NOW) == "active"
    assert evaluate_plan(p, 0, d0 - timedelta(microseconds=1)) == "active"
    assert evaluate_plan(p, 0, d0) == "broken"
    assert evaluate_plan(p, 99, d0) == "broken"  # a cent short
    assert evaluate_plan(p, 100, d0) == "active"
    assert evaluate_plan(p, 100, p.schedule[1].deadline) == "broken"
    assert evaluate_plan(p, 200, p.schedule[1].deadline) == "active"
    assert evaluate_plan(p, 300, NOW) == "completed"  # paid ahead
    assert evaluate_plan(p, 300, p.schedule[2].deadline + timedelta(days=400)) == "completed"


def test_evaluate_plan_counts_only_payments_after_agreement():
    p = three_instalments(paid_before=5_000)
    assert evaluate_plan(p, 5_000, p.schedule[0].deadline) == "broken"
    assert evaluate_plan(p, 5_100, p.schedule[0].deadline) == "active"
    assert evaluate_plan(p, 5_300, NOW) == "completed"


def test_next_plan_deadline():
    p = three_instalments()
    assert next_plan_deadline(p, 0) == p.schedule[0].deadline
    assert next_plan_deadline(p, 150) == p.schedule[1].deadline
    assert next_plan_deadline(p, 200) == p.schedule[2].deadline
    assert next_plan_deadline(p, 300) is None
    p2 = three_instalments(paid_before=1_000)
    assert next_plan_deadline(p2, 1_000) == p2.schedule[0].deadline
    assert next_plan_deadline(p2, 1_300) is None


def test_a_plan_is_in_arrears_from_an_unpaid_instalments_due_date_until_it_is_paid():
    """The console's plans-in-arrears worklist (domain.plans.plan_arrears): behind from the day after an
    instalment's due date while payments under the plan fall short, inside the grace days; not before."""
    from domain.plans import plan_arrears

    p = plan(kind="instalments", instalments=3, first_due=date(2026, 6, 1))
    first, second = p.schedule[0], p.schedule[1]
    assert plan_arrears(p, 0, first.due) is None  # due today: not late yet
    behind = plan_arrears(p, 0, first.due + timedelta(days=1))
    assert behind == (first.amount, 0, first.due, first.deadline)
    assert plan_arrears(p, first.amount, first.due + timedelta(days=1)) is None  # paid
    part = first.amount - 1
    assert plan_arrears(p, part, first.due + timedelta(days=1)) == (first.amount, part, first.due, first.deadline)
    later = second.due + timedelta(days=1)
    assert plan_arrears(p, first.amount, later) == (first.amount + second.amount, first.amount, second.due, second.deadline)
    assert plan_arrears(p.model_copy(update={"status": "broken"}), 0, later) is None
