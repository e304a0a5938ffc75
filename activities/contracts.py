"""What workflows send to activities and get back. Pure pydantic: safe in the workflow sandbox.

No PII crosses here: ids, amounts and keys only. Activities read contact details from the
database themselves.
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from domain.models import Event, Outcome
from domain.policy import ContactRules

# One activity per channel; several ladder actions may share one (with `action` telling which).
ACTIVITY_FOR_ACTION: dict[str, str] = {
    "sms": "send_sms",
    "email": "send_email",
    "letter": "send_letter",
    "call": "place_call",
    "visit": "schedule_field_visit",
    "law_firm": "instruct_law_firm",
    "bureau_notice": "send_letter",
    "bureau_notice_sms": "send_sms",      # the notice by the policy's next channel when the letter failed
    "bureau_notice_email": "send_email",  # (domain.legal.NOTICE_ACTIONS, LegalRules.notice_channels)
    "bureau_report": "credit_bureau",
    "bureau_correction": "credit_bureau",
    "agency_place": "collection_agency",
    "agency_recall": "collection_agency",
    "lawsuit": "court_filing",
    "payment_order": "court_filing",
    "enforcement": "court_filing",
}
CHANNEL_FOR_ACTION: dict[str, str] = {
    "sms": "sms", "email": "email", "letter": "letter", "call": "call", "visit": "visit",
    "law_firm": "law_firm", "bureau_notice": "letter", "bureau_notice_sms": "sms",
    "bureau_notice_email": "email", "bureau_report": "credit_bureau",
    "bureau_correction": "credit_bureau", "agency_place": "agency", "agency_recall": "agency",
    "lawsuit": "court", "payment_order": "court", "enforcement": "court",
}


def base_action(action: str) -> str:
    """`letter@guarantor` -> `letter`: the same channel, addressed to the guarantor."""
    return action.split("@", 1)[0]


def for_guarantor(action: str) -> bool:
    return action.endswith("@guarantor")


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChannelRequest(Contract):
    workflow_id: str
    case_key: str
    loan_id: str
    borrower_id: str
    guarantor_id: str | None = None
    step: str
    action: str
    idempotency_key: str
    policy: str
    stage: str
    dpd: int
    currency: str
    outstanding: dict[str, str]
    due_date: dt.date
    letter: str | None = None
    next_step: str | None = Field(default=None, description="what happens next, for the message")
    next_dpd: int | None = None
    events: list[Event] = Field(default=[], description="audit events not yet in the database")


class LedgerEntry(Contract):
    workflow_id: str
    case_key: str
    loan_id: str
    payment_id: str
    amount: str
    currency: str
    paid_at: dt.datetime
    allocation: dict[str, str]
    outstanding: str
    total_paid: str
    events: list[Event] = []


class ReversalEntry(Contract):
    """A payment reversal for the ledger (the payment's row stays; the reversal gets its own)."""

    workflow_id: str
    run_id: str
    case_key: str
    loan_id: str
    payment_id: str
    amount: str
    currency: str
    reason: str
    reversed_at: dt.datetime
    outstanding: str
    total_paid: str
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
    actions: list[str]
    now: dt.datetime
    rules: ContactRules
    guarantor_id: str | None = None
    day_seconds: int = 86400  # the policy's day: the gate's caps, 7-day window and spacing count policy days


class GateDecision(Contract):
    action: str
    allowed: bool
    rule: str
    reason: str
    retry_at: dt.datetime | None = None
    final: bool = False


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


class CaseClosed(Contract):
    workflow_id: str
    case_key: str
    loan_id: str
    outcome: Outcome
    outstanding: str
    total_paid: str
    currency: str
    closed_at: dt.datetime
    events: list[Event] = []


def case_key(workflow_id: str, opened_at: dt.datetime) -> str:
    """Names one case of a loan: stable across retries, crashes and continue-as-new; a later case differs."""
    return f"{workflow_id}:{opened_at:%Y%m%dT%H%M%S}"

