"""SQLModel tables. Money in integer minor units; times stored in UTC.

The schema is created by Alembic migrations (db/migrations); tests check that the
migrations and these models agree.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import BigInteger, Column, DateTime, Table, Text, UniqueConstraint
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """timestamptz on PostgreSQL, text on SQLite; written as UTC, read back aware in UTC on both.

    SQLite has no timezone type: SQLAlchemy writes an aware datetime's wall-clock time and drops
    its offset, so 09:30+08:00 was stored (and read back) as 09:30 UTC. Converting to UTC before
    writing keeps the instant; a naive value is taken to be UTC already. The database type is
    DateTime(timezone=True), the same as the migrations create.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class BorrowerRow(SQLModel, table=True):
    __tablename__ = "borrowers"
    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    phone: str | None = Field(default=None, max_length=32)
    email: str | None = Field(default=None, max_length=254)
    address: str | None = Field(default=None, max_length=500)
    id_number: str | None = Field(default=None, max_length=32)
    timezone: str = Field(default="Asia/Shanghai", max_length=64)
    language: str = Field(default="zh", max_length=8)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    erased_at: datetime | None = Field(
        default=None,
        sa_column=Column(UTCDateTime(), nullable=True),
        description="when the retention job erased the contact details (db/jobs.py); new details clear it",
    )


class LoanRow(SQLModel, table=True):
    __tablename__ = "loans"
    id: str = Field(primary_key=True, max_length=64)
    borrower_id: str = Field(foreign_key="borrowers.id", index=True, max_length=64)
    guarantor_id: str | None = Field(default=None, foreign_key="borrowers.id", max_length=64)
    currency: str = Field(max_length=3)
    principal: int = Field(sa_column=Column(BigInteger, nullable=False))
    interest: int = Field(sa_column=Column(BigInteger, nullable=False))
    fees: int = Field(sa_column=Column(BigInteger, nullable=False))
    due_date: date
    product: str = Field(default="personal_loan", max_length=32)
    segment: str = Field(default="retail", max_length=32)
    policy: str = Field(default="default", max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


class CaseRow(SQLModel, table=True):
    """A projection of each case for reporting; the workflow is the source of truth."""

    __tablename__ = "cases"
    workflow_id: str = Field(primary_key=True, max_length=80)
    loan_id: str = Field(index=True, max_length=64)
    stage: str = Field(default="new", max_length=40, index=True)
    status: str = Field(default="active", max_length=16, index=True)
    outcome: str | None = Field(default=None, max_length=32)  # settled_by_agreement: 20
    currency: str = Field(max_length=3)
    outstanding: int = Field(sa_column=Column(BigInteger, nullable=False))
    total_paid: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    opened_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    closed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


class PaymentRow(SQLModel, table=True):
    """The payments ledger: one row per payment id, ever."""

    __tablename__ = "payments"
    payment_id: str = Field(primary_key=True, max_length=64)
    loan_id: str = Field(index=True, max_length=64)
    workflow_id: str | None = Field(default=None, max_length=80)
    amount: int = Field(sa_column=Column(BigInteger, nullable=False))
    currency: str = Field(max_length=3)
    paid_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    status: str = Field(default="applied", max_length=16, index=True)  # applied | unapplied
    allocation: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    note: str = Field(default="", max_length=200)
    recorded_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    recorded_by: str | None = Field(default=None, max_length=40, description="the actor: operator id:role")


class PaymentReversalRow(SQLModel, table=True):
    """A payment taken back (returned transfer, failed debit): its own row beside the payment's, which stays."""

    __tablename__ = "payment_reversals"
    payment_id: str = Field(primary_key=True, foreign_key="payments.payment_id", max_length=64)
    loan_id: str = Field(index=True, max_length=64)
    workflow_id: str = Field(max_length=80)
    run_id: str | None = Field(default=None, max_length=64, description="the run that applied it (a reopened case: the new run)")
    amount: int = Field(sa_column=Column(BigInteger, nullable=False))
    currency: str = Field(max_length=3)
    reason: str = Field(max_length=200)
    reversed_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    recorded_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


class ContactRow(SQLModel, table=True):
    """One row per contact attempt of a step (idempotency key unique): never two for one delivery."""

    __tablename__ = "contact_attempts"
    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(max_length=200, unique=True)
    workflow_id: str = Field(max_length=80, index=True)
    loan_id: str = Field(max_length=64, index=True)
    borrower_id: str = Field(max_length=64, index=True)
    step: str = Field(max_length=64)
    channel: str = Field(max_length=32)
    action: str = Field(max_length=32)
    status: str = Field(default="pending", max_length=16)  # pending | delivered | failed | deferred (window closed)
    outcome: str | None = Field(default=None, max_length=32)
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    reference: str | None = Field(default=None, max_length=100)
    attempts: int = 0
    actor: str | None = Field(default=None, max_length=40, description="a call placed by a person: operator id:role")
    at: datetime | None = Field(
        default=None,
        sa_column=Column(UTCDateTime(), nullable=True, index=True),
        description="when the gate allowed it, on the case's clock; caps count by this",
    )
    frozen: str | None = Field(
        default=None,
        sa_column=Column(Text, nullable=True),
        description="what the message was first rendered from (JSON, no PII): a re-run after "
        "a crash sends the same body under the same idempotency key",
    )
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


class HoldRow(SQLModel, table=True):
    """Holds by borrower: the contact gate reads them for every loan of the borrower."""

    __tablename__ = "holds"
    __table_args__ = (UniqueConstraint("workflow_id", "kind", "placed_at", name="uq_holds_case_kind_placed"),)
    id: int | None = Field(default=None, primary_key=True)
    borrower_id: str = Field(max_length=64, index=True)
    loan_id: str = Field(max_length=64)
    workflow_id: str = Field(max_length=80)
    kind: str = Field(max_length=16)
    reference: str = Field(default="", max_length=200)
    placed_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    until: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    released_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    released_by: str | None = Field(default=None, max_length=100)
    placed_by: str | None = Field(default=None, max_length=120, description="the actor: operator id:role")


class EventRow(SQLModel, table=True):
    """The audit trail: every step, decision and input of a case, with time and cause."""

    __tablename__ = "case_events"
    __table_args__ = (UniqueConstraint("dedupe_key", name="uq_case_events_dedupe_key"),)
    id: int | None = Field(default=None, primary_key=True)
    workflow_id: str = Field(max_length=80, index=True)
    loan_id: str = Field(max_length=64, index=True)
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    kind: str = Field(max_length=40)
    detail: str = Field(default="", sa_column=Column(Text, nullable=False))
    cause: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    dedupe_key: str | None = Field(default=None, max_length=220)
    actor: str | None = Field(
        default=None, max_length=120, description="who (operator id:role, or borrower:<loan>:self_service) for a human step"
    )


class OperatorRow(SQLModel, table=True):
    """A named person (or bank system) who acts on cases. The id is opaque and is what case events and
    workflow histories carry; the display name stays here."""

    __tablename__ = "operators"
    id: str = Field(primary_key=True, max_length=20)
    display_name: str = Field(max_length=100, unique=True)
    roles: str = Field(max_length=200, description="comma-separated, from access.permissions.ROLES")
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    disabled_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    language: str | None = Field(default=None, max_length=8, description="the console language they chose (zh_CN, en)")


class OperatorTokenRow(SQLModel, table=True):
    """An API token of an operator: only the SHA-256 of its secret is kept (the token is shown once)."""

    __tablename__ = "operator_tokens"
    id: str = Field(primary_key=True, max_length=16, description="public part of the token (its prefix)")
    operator_id: str = Field(foreign_key="operators.id", index=True, max_length=20)
    secret_hash: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


class ContactChangeRow(SQLModel, table=True):
    """An audited change of a borrower's contact detail: who changed what and when, the old value kept."""

    __tablename__ = "contact_changes"
    id: int | None = Field(default=None, primary_key=True)
    borrower_id: str = Field(foreign_key="borrowers.id", index=True, max_length=64)
    field: str = Field(max_length=16)
    old_value: str | None = Field(default=None, max_length=500)
    new_value: str | None = Field(default=None, max_length=500)
    actor: str = Field(max_length=40)
    at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


class TaskRow(SQLModel, table=True):
    """A call or visit for a person on the collections floor (agent mode, domain/tasks.py), one per step action
    and case run (idempotency key unique). The workflow opens, re-queues and ends it; the console works it."""

    __tablename__ = "tasks"
    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(max_length=200, unique=True)
    workflow_id: str = Field(max_length=80, index=True)
    loan_id: str = Field(max_length=64, index=True)
    borrower_id: str = Field(max_length=64, index=True)
    step: str = Field(max_length=64)
    action: str = Field(max_length=16, description="call | visit")
    status: str = Field(default="open", max_length=16, index=True, description="open | done | expired | cancelled")
    team: str = Field(max_length=80)
    assignee: str | None = Field(default=None, max_length=100, index=True, description="operator display name")
    priority: int = Field(default=3, description="1 most urgent .. 5")
    urgency: int = Field(default=0, description="the policy's formula (domain/tasks.py urgency): calls by it, highest first")
    segment: str = Field(default="", max_length=32)
    province: str = Field(default="", max_length=32)
    city: str = Field(default="", max_length=32)
    district: str = Field(default="", max_length=32)
    dpd: int = 0
    outstanding_minor: int = Field(default=0, sa_column=Column(BigInteger(), nullable=False))
    due_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    slot_start: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    slot_end: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    requeues: int = 0
    attempts: int = Field(default=0, description="calls placed through click-to-call")
    outcome: str | None = Field(default=None, max_length=32)
    notes: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    worked_by: str | None = Field(default=None, max_length=40, description="the actor: operator id:role")
    gate_rules: str = Field(
        default="{}",
        sa_column=Column(Text, nullable=False),
        description="the case's pinned contact rules and day length (JSON): click-to-call asks the gate with them",
    )
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    ended_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


class ConsoleSessionRow(SQLModel, table=True):
    """A console sign-in (console/auth.py), by the SHA-256 of its cookie's id: never the id, never the token."""

    __tablename__ = "console_sessions"
    key: str = Field(primary_key=True, max_length=64)
    operator_id: str = Field(max_length=20)
    name: str = Field(max_length=100)
    roles: str = Field(max_length=200)
    token_id: str = Field(max_length=16)
    csrf: str = Field(max_length=64)
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))


class CalendarYearRow(SQLModel, table=True):
    """An official calendar year added as data (app/calendars.py): the file's text, who added it and who decided it
    (four-eyes: never the same operator). Rows are never deleted: a year approved again supersedes the older row."""

    __tablename__ = "calendar_years"
    id: int | None = Field(default=None, primary_key=True)
    year: int = Field(index=True)
    toml: str = Field(sa_column=Column(Text, nullable=False), description="the file's text, as validated")
    sha256: str = Field(max_length=64)
    status: str = Field(max_length=16, index=True, description="pending | approved | rejected | superseded")
    maker: str = Field(max_length=40, description="who added it: operator id:role")
    made_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    checker: str | None = Field(default=None, max_length=40, description="who approved or rejected it: operator id:role")
    decided_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    note: str = Field(default="", max_length=500)


def table_of(model: type[SQLModel]) -> Table:
    """The Core table of a table model. SQLModel's types do not declare `__table__` (SQLAlchemy sets it when the
    class is mapped), so this is the one place that reads it."""
    table = getattr(model, "__table__", None)
    if not isinstance(table, Table):
        raise TypeError(f"{model.__name__} is not a table model")
    return table


class RejectedInputRow(SQLModel, table=True):
    """A signalled input a case refused or could not read (its name unknown, its payload not JSON, a field wrong):
    kept with why and who sent it, for the console's "inputs rejected" worklist. One per case event (dedupe key)."""

    __tablename__ = "rejected_inputs"
    id: int | None = Field(default=None, primary_key=True)
    dedupe_key: str = Field(max_length=220, unique=True, description="case key and the rejection event's sequence")
    workflow_id: str = Field(max_length=80, index=True)
    loan_id: str = Field(max_length=64, index=True)
    signal: str = Field(max_length=80, description="the signal's name as sent")
    input_id: str | None = Field(default=None, max_length=64, description="the payment (or other) id it carried")
    field: str = Field(max_length=64)
    reason: str = Field(sa_column=Column(Text, nullable=False))
    sender: str = Field(max_length=200, description="system:<the sender's Temporal identity>")
    received_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))


class BorrowerLinkRow(SQLModel, table=True):
    """The link one message carried (domain/selfservice.py): only its token's keyed hash, the case it opens, who it
    was sent to, and the one-time code that opens it (hashed too). No loan id, name or amount is in the link."""

    __tablename__ = "borrower_links"
    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    workflow_id: str = Field(max_length=80, index=True)
    loan_id: str = Field(max_length=64, index=True)
    borrower_id: str = Field(max_length=64, index=True, description="the case's borrower")
    recipient_id: str = Field(max_length=64, description="who the message went to: the borrower or a guarantor")
    audience: str = Field(max_length=16, description="borrower | guarantor: a guarantor's link never opens the debt")
    channel: str = Field(max_length=32)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    code_hash: str | None = Field(default=None, max_length=64)
    code_sent_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    code_expires_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    wrong_codes: int = 0
    locked_until: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    secret_fp: str | None = Field(default=None, max_length=12, description="domain.selfservice.fingerprint of the secret")


class BorrowerSessionRow(SQLModel, table=True):
    """A borrower's session behind a link, after the code: only its id's keyed hash is kept."""

    __tablename__ = "borrower_sessions"
    id: int | None = Field(default=None, primary_key=True)
    session_hash: str = Field(max_length=64, unique=True)
    link_id: int = Field(index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class WebhookEventRow(SQLModel, table=True):
    """A gateway webhook taken (domain/webhooks.py): its event id, once, so a duplicate delivery changes nothing."""

    __tablename__ = "webhook_events"
    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(max_length=100, unique=True)
    kind: str = Field(max_length=32)
    loan_id: str | None = Field(default=None, max_length=64, index=True)
    received_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    result: str = Field(default="", max_length=200)


class ContactPreferenceRow(SQLModel, table=True):
    """How the borrower asked to be contacted (domain.compliance.Preferences), from their own page: the gate reads it
    in the same transaction as their holds and contacts. One row per borrower, the latest statement."""

    __tablename__ = "contact_preferences"
    borrower_id: str = Field(primary_key=True, foreign_key="borrowers.id", max_length=64)
    hours_start: str | None = Field(default=None, max_length=5, description="HH:MM local, inside the policy's window")
    hours_end: str | None = Field(default=None, max_length=5)
    quiet: str = Field(default="", max_length=64, description="channels not to use, comma-separated (sms, email, call)")
    not_at_work: bool = Field(default=False)
    updated_by: str = Field(max_length=80)
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class InboundMessageRow(SQLModel, table=True):
    """A borrower's reply to one of our SMS (app/replies.py): matched to its case by the message it answers, acted
    on by the policy's keywords, else left for a person (the console's replies worklist)."""

    __tablename__ = "inbound_messages"
    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(max_length=100, unique=True)
    in_reply_to: str | None = Field(default=None, max_length=100, description="the gateway's id of our message")
    loan_id: str | None = Field(default=None, max_length=64, index=True)
    workflow_id: str | None = Field(default=None, max_length=80)
    sender_tail: str = Field(default="", max_length=4, description="the last four digits of the sender's number")
    text: str = Field(sa_column=Column(Text, nullable=False))
    keyword: str | None = Field(default=None, max_length=8)
    status: str = Field(max_length=16, description="acted | needs_person")
    result: str = Field(default="", sa_column=Column(Text, nullable=False))
    received_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
