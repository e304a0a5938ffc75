"""Repayment plans (deferral 展期, instalments 分期, interest waiver 减免利息) within the policy's limits."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Literal

from domain.dates import CaseClock, add_months
from domain.errors import InvalidInput
from domain.models import Balances, Instalment, Plan, PlanIn
from domain.policy import LEGAL_MAX_TERM_MONTHS, PlanLimits

_ONLY_FOR = {
    "until": "deferral",
    "instalments": "instalments",
    "first_due": "instalments",
    "pay_by": "interest_waiver",
}


def _within(field: str, day: date | None, today: date, max_days: int, *, strictly_after: bool = False) -> date:
    if day is None:
        raise InvalidInput(field, "is required for this kind of plan")
    if day < today or (strictly_after and day == today):
        raise InvalidInput(field, f"{day} is in the past (today is {today} in the borrower's time zone)")
    if day > today + timedelta(days=max_days):
        raise InvalidInput(
            field, f"{day} is more than {max_days} days after today ({today}); the policy allows at most {max_days}"
        )
    return day


def split(total: int, count: int) -> list[int]:
    """Equal instalments; the last one takes the remainder so the parts sum to `total` exactly."""
    base = total // count
    return [base] * (count - 1) + [total - base * (count - 1)]


def build_plan(req: PlanIn, balances: Balances, limits: PlanLimits, clock: CaseClock, now: datetime, paid_before: int) -> Plan:
    """Validate a plan request against the policy and the law, and lay out its schedule.

    Interest waived by the plan is set aside at agreement and forgiven on completion.
    """
    for field, kind in _ONLY_FOR.items():
        if getattr(req, field) is not None and req.kind != kind:
            raise InvalidInput(field, f"only applies to a {kind} plan, not {req.kind}")
    today = clock.today(now)
    pct = req.waiver_percent
    if pct < 0 or pct > limits.max_interest_waiver_percent:
        raise InvalidInput("waiver_percent", f"{pct}% is outside 0..{limits.max_interest_waiver_percent}% allowed by the policy")
    if req.kind == "interest_waiver" and pct == 0:
        raise InvalidInput("waiver_percent", "an interest waiver plan waives at least 1%")
    if pct and balances.interest == 0:
        raise InvalidInput("waiver_percent", "there is no outstanding interest to waive")
    waived = balances.interest * pct // 100
    total = balances.total - waived
    if total <= 0:
        raise InvalidInput("waiver_percent", "the plan would leave nothing to pay")

    if req.kind == "deferral":
        until = _within("until", req.until, today, limits.max_deferral_days, strictly_after=True)
        dues = [(until, total)]
    elif req.kind == "interest_waiver":
        pay_by = _within("pay_by", req.pay_by, today, limits.waiver_pay_within_days)
        dues = [(pay_by, total)]
    else:
        n = req.instalments
        if n is None:
            raise InvalidInput("instalments", "is required for an instalment plan")
        if n < 2 or n > limits.max_instalments:
            raise InvalidInput("instalments", f"{n} is outside 2..{limits.max_instalments} allowed by the policy")
        term = n * req.interval_months
        cap = min(limits.max_term_months, LEGAL_MAX_TERM_MONTHS)
        if term > cap:
            raise InvalidInput(
                "instalments",
                f"{n} instalments every {req.interval_months} month(s) is a {term}-month term; at most {cap} months are allowed",
            )
        first = _within("first_due", req.first_due, today, limits.first_instalment_within_days)
        if total < n:
            raise InvalidInput("instalments", f"{n} instalments would be smaller than the currency's smallest unit")
        dues = [(add_months(first, i * req.interval_months), part) for i, part in enumerate(split(total, n))]

    schedule = [Instalment(due=d, amount=a, deadline=clock.date_deadline(d, limits.grace_days)) for d, a in dues]
    return Plan(kind=req.kind, made_at=now, schedule=schedule, total=total, waived=waived, paid_before=paid_before)


def pay_by_terms(grace_days: int, keep_dates: bool, tz: str) -> str:
    """How the plan's dates are counted, in the terms the borrower is given (民法典 art. 203, or art. 204 when agreed)."""
    grace = f" plus {grace_days} days of grace" if grace_days else ""
    if keep_dates:
        return (
            f"Each payment is due by 24:00 ({tz}) on its due date{grace}; as agreed in these terms, the dates stand "
            "on public holidays and rest days too (民法典 art. 204)"
        )
    return (
        f"Each payment is due by 24:00 ({tz}) on its due date{grace}; a last day on a public holiday or rest day moves "
        "to the next working day (民法典 art. 203)"
    )


def evaluate_plan(plan: Plan, total_paid: int, now: datetime) -> Literal["active", "completed", "broken"]:
    """'completed' once the plan total is paid, 'broken' once a final deadline passes short, else 'active' (a
    deadline waiting for its calendar year is not final: Case.count_pay_by)."""
    paid = total_paid - plan.paid_before
    if paid >= plan.total:
        return "completed"
    due = sum(i.amount for i in plan.schedule if i.deadline <= now and i.waits_for_year is None)
    return "broken" if paid < due else "active"


def next_plan_deadline(plan: Plan, total_paid: int) -> datetime | None:
    """The deadline of the first instalment not yet covered by payments."""
    paid, cumulative = total_paid - plan.paid_before, 0
    for inst in plan.schedule:
        cumulative += inst.amount
        if paid < cumulative:
            return inst.deadline
    return None


def plan_arrears(plan: Plan, total_paid: int, today: date) -> tuple[int, int, date, datetime] | None:
    """An active plan's arrears on `today`: (due so far, paid under the plan, the oldest unpaid instalment's due
    date, its deadline) when an instalment's due date has passed without payments covering it; None otherwise.
    Inside the grace days the plan is in arrears, not yet broken (evaluate_plan breaks it at the deadline)."""
    if plan.status != "active":
        return None
    paid, cumulative = total_paid - plan.paid_before, 0
    for inst in plan.schedule:
        if inst.due >= today:
            return None
        cumulative += inst.amount
        if paid < cumulative:
            due = sum(i.amount for i in plan.schedule if i.due < today)
            return due, paid, inst.due, inst.deadline
    return None
