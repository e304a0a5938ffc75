"""What workflows send to activities and get back. Pure pydantic: safe in the workflow sandbox.

No PII crosses here: ids, amounts and keys only. Activities read contact details from the
database themselves.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# The channel registry (domain/channels.py) says which activity and gateway channel each action uses.
from domain.channels import ActionName, base_action, for_guarantor  # noqa: F401 - re-exported
from domain.models import ContactResult, Event, Outcome
from domain.money import Minor, parse_amount
from domain.policy import ContactRules

# A timed send found its contact window closed (or its day not a contact day) when the attempt came: nothing
# went out; the workflow waits for `retry_at` and asks the gate again. Non-retryable.
WINDOW_CLOSED = "ContactWindowClosed"
# The gateway is unavailable and the attempts of one local activity are used up (or it asked to wait longer
# than a local retry may): the workflow waits on a durable timer and sends again. Non-retryable.
GATEWAY_BACKOFF = "GatewayBackoff"
# Longest wait between two attempts of one local activity; longer waits are the workflow's durable timers.
LOCAL_RETRY_SECONDS = 10


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChannelRequest(Contract):
    @model_validator(mode="before")
    @classmethod
    def _from_decimal_strings(cls, data: Any) -> Any:
        """A request kept by an older build (a contact row's frozen request: what a rerun must render the same
        message from) carries `outstanding` as decimal strings: read as minor units of its currency."""
        if isinstance(data, dict) and "outstanding" in data and "outstanding_minor" not in data:
            data = dict(data)
            old, cur = data.pop("outstanding"), data.get("currency", "")
            data["outstanding_minor"] = {k: parse_amount(v, cur, k, allow_zero=True) for k, v in old.items()}
        return data

    workflow_id: str
    case_key: str
    loan_id: str
    borrower_id: str
    guarantor_id: str | None = None
    step: str
    action: ActionName
    idempotency_key: str
    policy: str
    stage: str
    dpd: int
    currency: str
    # principal, interest, fees and total in minor units (the message formats them for the borrower)
    outstanding_minor: dict[str, Minor]
    due_date: dt.date
    letter: str | None = None
    next_step: str | None = Field(default=None, description="what happens next, for the message")
    next_dpd: int | None = None
    events: list[Event] = Field(default=[], description="audit events not yet in the database")
    now: dt.datetime | None = Field(
        default=None,
        description="the case's clock when the send was scheduled; with "
        "`rules`, every attempt re-checks the contact window and day before it goes out",
    )
    rules: ContactRules | None = None
    notice_days: int = Field(
        default=14,
        description="the policy's credit-bureau notice period, as the notice says it (14: requests from runs before it)",
    )
    reply_keywords: dict[str, int] = Field(
        default={}, description="the policy's SMS reply keywords: each promises the whole amount within its days"
    )
    links: bool = Field(
        default=True, description="the policy's selfservice.links: an SMS, email or letter carries the borrower page's link"
    )
    time_barred: bool = Field(
        default=False,
        description="the limitation period has run out: the message asks for voluntary repayment and threatens nothing",
    )


class WindowClosed(Contract):
    """The details of a WINDOW_CLOSED failure."""

    rule: str
    reason: str
    retry_at: dt.datetime


class LedgerEntry(Contract):
    """An applied payment for the ledger. Amounts are integer minor units of `currency`, as the case holds them and
    the ledger stores them; they become decimal strings only where a person reads them (logs, letters, screens)."""

    workflow_id: str
    case_key: str
    loan_id: str
    payment_id: str
    amount_minor: Minor = Field(gt=0)
    currency: str
    paid_at: dt.datetime
    allocation_minor: dict[str, Minor] = Field(description="minor units paid to each component (principal, ...)")
    outstanding_minor: Minor
    total_paid_minor: Minor
    events: list[Event] = []


class ReversalEntry(Contract):
    """A payment reversal for the ledger (the payment's row stays; the reversal gets its own). Amounts in minor units
    of `currency`, as in LedgerEntry."""

    workflow_id: str
    run_id: str
    case_key: str
    loan_id: str
    payment_id: str
    amount_minor: Minor = Field(gt=0)
    currency: str
    reason: str
    reversed_at: dt.datetime
    outstanding_minor: Minor
    total_paid_minor: Minor
    reopened: bool = False
    events: list[Event] = []


class AuditEvents(Contract):
    workflow_id: str
    case_key: str
    loan_id: str
    events: list[Event]


class GateCheck(Contract):
    """Ask the contact gate about the actions of one step, at the case's time."""

    workflow_id: str
    case_key: str
    loan_id: str
    borrower_id: str
    step: str
    actions: list[ActionName]
    now: dt.datetime
    rules: ContactRules
    guarantor_id: str | None = None
    day_seconds: int = 86400  # the policy's day: the gate's caps, 7-day window and spacing count policy days


class GateDecision(Contract):
    action: ActionName
    allowed: bool
    rule: str
    reason: str
    retry_at: dt.datetime | None = None
    final: bool = False


class CaseProjection(Contract):
    """What the console's case row holds of an open case: written whenever one of these changes."""

    workflow_id: str
    loan_id: str
    currency: str
    stage: str
    status: Literal["active", "paused"]
    outstanding_minor: Minor
    total_paid_minor: Minor


class StepSend(Contract):
    """One send of a step: its action and, for a letter, which letter."""

    action: ActionName
    letter: str | None = None


class StepRun(Contract):
    """A step's contacts in one local activity: the gate's check, then a first attempt at each send it allows.
    `request` is what the step's sends share (its `now` and `rules` the check's); each send's action, key and
    letter are its own (`sends`)."""

    check: GateCheck
    request: ChannelRequest
    sends: list[StepSend]
    projection: CaseProjection | None = Field(
        default=None, description="the case row as the step leaves it, written in the step's second transaction"
    )


class StepSent(Contract):
    """What a send of the step came to on its first attempt: finished (`result`), not sent because its window
    closed (`deferred`), or neither (the gateway could not take it: the workflow sends it again on its own,
    after `retry_after` seconds when the gateway asked for a wait longer than a local retry's)."""

    action: ActionName
    result: ContactResult | None = None
    deferred: WindowClosed | None = None
    retry_after: float | None = None


class StepOutcome(Contract):
    decisions: list[GateDecision]
    sent: list[StepSent]


class HoldChange(Contract):
    workflow_id: str
    case_key: str
    loan_id: str
    borrower_id: str
    kind: str
    at: dt.datetime
    until: dt.datetime | None = None
    reference: str = ""
    released: bool = False
    released_by: str | None = None
    events: list[Event] = []


class UnappliedPayment(Contract):
    """A signalled payment the case could not take because it had closed: kept in the ledger as unapplied."""

    payment_id: str
    amount: int = Field(description="minor units")
    currency: str
    paid_at: dt.datetime


class RejectedInput(Contract):
    """A signalled input the case refused (or could not read): kept, with why, for a person to see the same day."""

    workflow_id: str
    case_key: str
    loan_id: str
    signal: str = Field(description="the signal's name as sent")
    input_id: str | None = Field(default=None, description="the payment, promise or other id the input carried, if any")
    field: str
    reason: str
    sender: str = Field(description="system:<the sender's Temporal identity>")
    received_at: dt.datetime
    seq: int = Field(description="the case's event recording the rejection: the row's key with case_key")
    events: list[Event] = []
    unapplied: UnappliedPayment | None = Field(default=None, description="a payment kept as unapplied, not lost")


class CaseClosed(Contract):
    workflow_id: str
    case_key: str
    loan_id: str
    outcome: Outcome
    outstanding_minor: Minor
    total_paid_minor: Minor
    currency: str
    closed_at: dt.datetime
    events: list[Event] = []


def case_key(workflow_id: str, opened_at: dt.datetime) -> str:
    """Names one case of a loan: stable across retries, crashes and continue-as-new; a later case differs."""
    return f"{workflow_id}:{opened_at:%Y%m%dT%H%M%S}"
