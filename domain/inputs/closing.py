"""Closing a case by an operator, and the confirmation of a proposed write-off (账销案存: the case stays open).

Each input has `check_*` (pure, raises InvalidInput naming the field) and `apply_*` (checks again, then changes
the case); domain/inputs/__init__.py registers them by the input's model."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from domain.errors import InvalidInput
from domain.models import (
    OPERATOR_OUTCOMES,
    CloseIn,
    UpdateResult,
    WriteOffConfirmIn,
)

if TYPE_CHECKING:
    from domain.case import Case


def check_confirm_write_off(case: Case, c: WriteOffConfirmIn, now: datetime) -> None:
    case.refuse_if_closed()
    s = case.state
    if s.write_off == "confirmed":
        raise InvalidInput("case", f"the write-off was already confirmed on {s.write_off_confirmed_at:%Y-%m-%d}")
    if s.write_off is None:
        raise InvalidInput(
            "case",
            "no write-off has been proposed"
            + (
                f" (deferred: {s.write_off_deferred})"
                if s.write_off_deferred
                else f" (it is proposed at DPD {case.policy.write_off_dpd})"
            ),
        )
    if not c.approver.strip():
        raise InvalidInput("approver", "is required: the operator who approves the write-off")


def apply_confirm_write_off(case: Case, c: WriteOffConfirmIn, now: datetime) -> UpdateResult:
    check_confirm_write_off(case, c, now)
    s = case.state
    s.write_off, s.write_off_confirmed_at = "confirmed", now
    case.event(
        now,
        "write_off_confirmed",
        f"by {c.approver}"
        + (f" ({c.reference})" if c.reference else "")
        + f", {case.money(s.balances.total)}; the claim and the recovery go on (账销案存)",
    )
    return case.result("write-off confirmed; the case stays open and recovery goes on")


def check_close(case: Case, c: CloseIn, now: datetime) -> None:
    case.refuse_if_closed()
    if c.outcome not in OPERATOR_OUTCOMES:
        raise InvalidInput(
            "outcome", f"{c.outcome!r} is not an operator's closing outcome (one of: {', '.join(OPERATOR_OUTCOMES)})"
        )
    if not c.reason.strip():
        raise InvalidInput("reason", "is required: why the case is closed")


def apply_close(case: Case, c: CloseIn, now: datetime) -> UpdateResult:
    check_close(case, c, now)
    outcome = next(o for o in OPERATOR_OUTCOMES if o == c.outcome)  # the Outcome check_close found it to be
    case.close(outcome, now, f"closed by operator{' ' + c.operator if c.operator else ''}: {c.reason.strip()}")
    return case.result(f"case closed as {c.outcome}")
