"""Promises to pay: made within the policy's horizon, kept when paid in time, broken otherwise."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Literal

from domain.dates import CaseClock
from domain.errors import InvalidInput
from domain.models import Promise
from domain.money import format_amount, parse_amount
from domain.policy import PromiseRules


def make_promise(
    amount: str,
    day: date | None,
    outstanding: int,
    currency: str,
    rules: PromiseRules,
    clock: CaseClock,
    now: datetime,
    paid_before: int,
) -> Promise:
    minor = parse_amount(amount, currency, "amount")
    if minor > outstanding:
        raise InvalidInput("amount", f"{amount} is more than the outstanding {format_amount(outstanding, currency)}")
    if day is None:
        raise InvalidInput("date", "is required: the day the borrower promises to pay")
    today = clock.today(now)
    if day < today:
        raise InvalidInput("date", f"{day} is in the past (today is {today} in the borrower's time zone)")
    if day > today + timedelta(days=rules.max_days_ahead):
        raise InvalidInput(
            "date", f"{day} is more than {rules.max_days_ahead} days ahead; the policy allows at most {rules.max_days_ahead}"
        )
    return Promise(
        amount=minor, date=day, deadline=clock.date_deadline(day, rules.grace_days), made_at=now, paid_before=paid_before
    )


def evaluate_promise(promise: Promise, total_paid: int, now: datetime) -> Literal["active", "kept", "broken"]:
    if total_paid - promise.paid_before >= promise.amount:
        return "kept"
    return "broken" if now >= promise.deadline and promise.waits_for_year is None else "active"
