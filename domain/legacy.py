"""The legal clocks as cases begun before them counted them: from recording times, years by the calendar's date,
the objection window as 15 x 24 hours. Kept only so that those cases replay as they ran (domain/regime.py
`legal_clocks`, workflows/versioning.py LEGAL_CLOCKS); a new run never reads this module. Today's rules, each with
its source, are domain/legal.py's.

Pure: no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from domain.dates import dpd_start
from domain.legal import Refusal
from domain.models import CaseState
from domain.policy import LegalRules

if TYPE_CHECKING:
    from domain.case import Case


def limitation_from(case: Case) -> datetime:
    """The instant the limitation period was counted from: the last acknowledgement's recording time, or the day
    after the due date."""
    return case.state.limitation_from or dpd_start(case.inp.due_date, case.inp.timezone, 1)


def acknowledged(state: CaseState, now: datetime) -> None:
    """A payment or a promise restarted the period at the time it was recorded (today's rules: the day it was made,
    in the borrower's zone, Case.restart_limitation)."""
    state.limitation_from = now


def enforceable(state: CaseState) -> bool:
    """Any judgment, or a payment order not objected to (today's rules also want their dates)."""
    return state.judgment_at is not None or (state.payment_order_at is not None and not state.objection)


def refusal(case: Case, action: str, now: datetime) -> Refusal | None:
    """A court action outside its clock as counted then (`check`)."""
    s = case.state
    return check(
        action,
        now,
        case.policy.legal,
        limitation_from=limitation_from(case),
        judgment_at=s.judgment_at,
        payment_order_at=s.payment_order_at,
        objection=s.objection,
    )


def _add_years(t: datetime, years: int) -> datetime:
    try:
        return t.replace(year=t.year + years)
    except ValueError:
        return t.replace(year=t.year + years, day=28)


def limitation_ends(since: datetime, rules: LegalRules) -> datetime:
    return _add_years(since, rules.limitation_years)


def check(
    action: str,
    now: datetime,
    rules: LegalRules,
    *,
    limitation_from: datetime,
    judgment_at: datetime | None,
    payment_order_at: datetime | None,
    objection: bool,
) -> Refusal | None:
    """The clocks as cases started before the legal-clocks change counted them (recording times, 15 x 24 h). Kept only
    so that those cases replay as they ran (workflows/versioning.py LEGAL_CLOCKS); new runs never use it."""
    if action in ("lawsuit", "payment_order"):
        ends = limitation_ends(limitation_from, rules)
        if now >= ends:
            return Refusal(
                "limitation_period",
                f"the {rules.limitation_years}-year limitation period ran out "
                f"on {ends:%Y-%m-%d} (last restarted {limitation_from:%Y-%m-%d})",
                final=True,
            )
    if action == "enforcement":
        if judgment_at is not None:
            ends = _add_years(judgment_at, rules.enforcement_within_years)
            if now >= ends:
                return Refusal(
                    "enforcement_deadline",
                    f"enforcement must be applied for within "
                    f"{rules.enforcement_within_years} years of the judgment ({ends:%Y-%m-%d})",
                    final=True,
                )
        elif payment_order_at is not None:
            if objection:
                return Refusal(
                    "payment_order_objection", "the borrower objected to the payment order; a lawsuit is needed", final=True
                )
            opens = payment_order_at + timedelta(days=rules.payment_order_objection_days)
            if now < opens:
                return Refusal(
                    "objection_window",
                    f"the {rules.payment_order_objection_days}-day objection window "
                    f"runs until {opens.astimezone(UTC):%Y-%m-%d %H:%M}Z",
                    retry_at=opens,
                )
    return None
