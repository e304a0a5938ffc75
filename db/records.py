"""What the repository (db/repo.py) writes, typed: one record per kind of write, instead of dicts of keyword
arguments. Frozen dataclasses with slots: they are built for every send, payment and audit event, so they cost
no validation (the values come from pydantic contracts or the repository's own callers).

Amounts are integer minor units of their currency, as the tables store them (BigInteger columns)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class PaymentRecord:
    """A payment for the ledger (`payments`): written once per payment id."""

    payment_id: str
    loan_id: str
    workflow_id: str | None
    amount: int  # minor units
    currency: str
    paid_at: datetime
    status: str = "applied"  # applied | unapplied
    allocation: Mapping[str, int] | None = None  # minor units per component
    note: str = ""
    recorded_by: str | None = None  # the actor: operator id:role


@dataclass(frozen=True, slots=True)
class ReversalRecord:
    """A payment taken back (`payment_reversals`): its own row beside the payment's, once per payment id."""

    payment_id: str
    loan_id: str
    workflow_id: str
    run_id: str | None
    amount: int  # minor units
    currency: str
    reason: str
    reversed_at: datetime


@dataclass(frozen=True, slots=True)
class CaseRecord:
    """The case row (`cases`) as a case's write leaves it: the fields given (not None) are written; a new row gets
    stage `new`, status `active` and zero balances for those not given."""

    workflow_id: str
    loan_id: str
    currency: str
    stage: str | None = None
    status: str | None = None
    outstanding: int | None = None  # minor units
    total_paid: int | None = None  # minor units
    outcome: str | None = None
    closed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class EventRecord:
    """A line of the audit trail (`case_events`); with a `dedupe_key`, written once per key. `at` None: now."""

    workflow_id: str
    loan_id: str
    kind: str
    detail: str = ""
    cause: Mapping[str, Any] | None = None
    at: datetime | None = None
    dedupe_key: str | None = None
    actor: str | None = None


@dataclass(frozen=True, slots=True)
class ContactStart:
    """A send's contact row (`contact_attempts`) as its first attempt creates it, keyed by its idempotency key."""

    idempotency_key: str
    workflow_id: str
    loan_id: str
    borrower_id: str  # the recipient
    step: str
    channel: str
    action: str


@dataclass(frozen=True, slots=True)
class ContactFinish:
    """What a send came to, on its contact row."""

    idempotency_key: str
    status: str  # delivered | failed | refused
    outcome: str | None = None
    reason: str | None = None
    reference: str | None = None


@dataclass(frozen=True, slots=True)
class OperatorContact:
    """A conversation an operator recorded (a call or visit outcome): a delivered contact in the ledger, at the time
    it was recorded. `task_id`: the task it reports (its call placed through the console is the ledger's row)."""

    idempotency_key: str
    workflow_id: str
    loan_id: str
    step: str
    channel: str
    action: str
    outcome: str
    at: datetime
    task_id: int | None = None
