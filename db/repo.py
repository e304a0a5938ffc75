"""Reads and writes of the system of record. Synchronous SQLAlchemy sessions; activities
call these through asyncio.to_thread. Each write is idempotent: a retry or a rerun after a
crash writes nothing twice (unique keys with ON CONFLICT DO NOTHING)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast, overload

import structlog
from sqlalchemy import CursorResult, Engine, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, SQLModel, col

from db.preferences import preferences_of
from db.records import (
    CaseRecord,
    ContactFinish,
    ContactStart,
    EventRecord,
    OperatorContact,
    PaymentRecord,
    ReversalRecord,
)
from db.tables import (
    BorrowerRow,
    CaseRow,
    ContactPreferenceRow,
    ContactRow,
    EventRow,
    HoldRow,
    LoanRow,
    PaymentReversalRow,
    PaymentRow,
    RejectedInputRow,
    table_of,
    utcnow,
)

log = structlog.get_logger("db")


def _insert(session: Session, model: type[SQLModel]) -> Any:
    """The dialect's INSERT (PostgreSQL's or SQLite's: both have ON CONFLICT) of `model`'s table. `Any`: the two
    dialects' Insert classes share no base with on_conflict_do_nothing/_update, and callers use both."""
    return (postgresql if session.get_bind().dialect.name == "postgresql" else sqlite).insert(table_of(model))


@overload
def _aware(value: datetime) -> datetime: ...
@overload
def _aware(value: None) -> None: ...
@overload
def _aware(value: datetime | None) -> datetime | None: ...
def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class Repo:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    @contextmanager
    def tx(self, session: Session | None = None) -> Iterator[Session]:
        """A transaction of its own (committed at the end), or a part of the caller's `session`, which commits it:
        the writes of a whole step (the gate, its sends' rows, their links) share one."""
        if session is not None:
            yield session
            return
        with self.session() as s:
            yield s
            s.commit()

    # ---- borrowers and loans (import / start)

    def upsert_borrower(self, **fields: Any) -> None:
        fields.setdefault("updated_at", utcnow())
        if any(fields.get(f) for f in ("phone", "email", "address")):
            fields.setdefault("erased_at", None)  # new contact details of a person the retention job erased
        with self.session() as s:
            stmt = _insert(s, BorrowerRow).values(created_at=utcnow(), **fields)
            s.execute(stmt.on_conflict_do_update(index_elements=["id"], set_={k: stmt.excluded[k] for k in fields}))
            s.commit()

    def upsert_loan(self, **fields: Any) -> None:
        fields.setdefault("updated_at", utcnow())
        with self.session() as s:
            stmt = _insert(s, LoanRow).values(created_at=utcnow(), **fields)
            s.execute(stmt.on_conflict_do_update(index_elements=["id"], set_={k: stmt.excluded[k] for k in fields}))
            s.commit()

    def borrower(self, borrower_id: str) -> BorrowerRow | None:
        with self.session() as s:
            return s.get(BorrowerRow, borrower_id)

    def loan(self, loan_id: str) -> LoanRow | None:
        with self.session() as s:
            return s.get(LoanRow, loan_id)

    def other_loans(self, loan_id: str) -> list[str]:
        """The ids of the other loans of this loan's borrower."""
        with self.session() as s:
            borrower = s.scalar(select(col(LoanRow.borrower_id)).where(col(LoanRow.id) == loan_id))
            if borrower is None:
                return []
            return list(
                s.scalars(
                    select(col(LoanRow.id))
                    .where(col(LoanRow.borrower_id) == borrower, col(LoanRow.id) != loan_id)
                    .order_by(col(LoanRow.id))
                )
            )

    # ---- the case projection

    def project_case(self, case: CaseRecord, session: Session | None = None) -> None:
        """The case row follows the case: INSERT ... ON CONFLICT (workflow_id) DO UPDATE of the fields `case` gives.
        One transaction, or a part of `session`'s (Repo.tx)."""
        now = utcnow()
        values = {
            k: v
            for k, v in dict(
                stage=case.stage,
                status=case.status,
                outstanding=case.outstanding,
                total_paid=case.total_paid,
                outcome=case.outcome,
                closed_at=case.closed_at,
            ).items()
            if v is not None
        }
        with self.tx(session) as s:
            stmt = _insert(s, CaseRow).values(
                workflow_id=case.workflow_id,
                loan_id=case.loan_id,
                currency=case.currency,
                opened_at=now,
                updated_at=now,
                **{"outstanding": 0, "total_paid": 0, "stage": "new", "status": "active", **values},
            )
            s.execute(stmt.on_conflict_do_update(index_elements=["workflow_id"], set_={**values, "updated_at": now}))

    def case_row(self, workflow_id: str) -> CaseRow | None:
        with self.session() as s:
            return s.get(CaseRow, workflow_id)

    # ---- payments ledger

    def record_payment(self, payment: PaymentRecord, session: Session | None = None) -> bool:
        """Write a payment once. True if this call wrote it, False if the payment id was already there (an unapplied
        payment of the same loan, amount and currency, applied to its case at last, is rewritten as applied).
        One transaction, or a part of `session`'s."""
        p = payment
        with self.tx(session) as s:
            stmt = _insert(s, PaymentRow).values(
                payment_id=p.payment_id,
                loan_id=p.loan_id,
                workflow_id=p.workflow_id,
                amount=p.amount,
                currency=p.currency,
                paid_at=p.paid_at,
                status=p.status,
                allocation=json.dumps(dict(p.allocation or {}), sort_keys=True),
                note=p.note,
                recorded_at=utcnow(),
                recorded_by=p.recorded_by,
            )
            if p.status == "applied":  # an unapplied payment of this loan, applied to its case at last: the row says so
                t = table_of(PaymentRow)
                stmt = stmt.on_conflict_do_update(
                    index_elements=["payment_id"],
                    set_=dict(
                        status="applied",
                        workflow_id=p.workflow_id,
                        allocation=stmt.excluded.allocation,
                        note="kept as unapplied (no open case), applied to the case later",
                        recorded_at=stmt.excluded.recorded_at,
                    ),
                    where=(t.c.status == "unapplied")
                    & (t.c.loan_id == p.loan_id)
                    & (t.c.amount == p.amount)
                    & (t.c.currency == p.currency),
                )
            else:
                stmt = stmt.on_conflict_do_nothing(index_elements=["payment_id"])
            stmt = stmt.returning(table_of(PaymentRow).c.payment_id)
            # RETURNING, not rowcount: SQLAlchemy does not keep cursor.rowcount for an INSERT
            # (psycopg 3 reports -1 once the result is closed), so rowcount == 1 was never true
            # on PostgreSQL. A row comes back only when this statement inserted it.
            return s.execute(stmt).first() is not None

    def record_payment_of_case(
        self, *, payment: PaymentRecord, case: CaseRecord, events: Sequence[EventRecord], session: Session | None = None
    ) -> bool:
        """`record_payment`, `project_case` and `record_events` of one ledger entry in one transaction (or a part of
        `session`'s): the same rows as the three calls one after the other; True if this call wrote the payment."""
        with self.tx(session) as s:
            written = self.record_payment(payment, session=s)
            self.project_case(case, session=s)
            self.record_events(events, session=s)
            return written

    def record_reversal(self, reversal: ReversalRecord, session: Session | None = None) -> bool:
        """A payment reversal's own row (the payment's stays), written once: the payment id is its key. True if this
        call wrote it. One transaction, or a part of `session`'s."""
        r = reversal
        with self.tx(session) as s:
            stmt = _insert(s, PaymentReversalRow).values(
                payment_id=r.payment_id,
                loan_id=r.loan_id,
                workflow_id=r.workflow_id,
                run_id=r.run_id,
                amount=r.amount,
                currency=r.currency,
                reason=r.reason,
                reversed_at=r.reversed_at,
                recorded_at=utcnow(),
            )
            stmt = stmt.on_conflict_do_nothing(index_elements=["payment_id"]).returning(table_of(PaymentReversalRow).c.payment_id)
            return s.execute(stmt).first() is not None

    def record_reversal_of_case(
        self,
        *,
        reversal: ReversalRecord,
        case: CaseRecord,
        events: Sequence[EventRecord],
        reopened: bool = False,
        session: Session | None = None,
    ) -> bool:
        """A payment reversal, the case projection and the workflow's events, in one transaction (or a part of
        `session`'s). `reopened`: a case closed as paid opens again, so its projection loses the outcome and closing
        time. True if this call wrote the reversal."""
        with self.tx(session) as s:
            written = self.record_reversal(reversal, session=s)
            self.project_case(case, session=s)
            if reopened:
                s.execute(
                    update(CaseRow)
                    .where(col(CaseRow.workflow_id) == case.workflow_id)
                    .values(outcome=None, closed_at=None, status="active", updated_at=utcnow())
                )
            self.record_events(events, session=s)
            return written

    def reversals(self, loan_id: str | None = None) -> list[PaymentReversalRow]:
        with self.session() as s:
            q = select(PaymentReversalRow).order_by(col(PaymentReversalRow.recorded_at))
            if loan_id:
                q = q.where(col(PaymentReversalRow.loan_id) == loan_id)
            return list(s.scalars(q))

    def payments(self, loan_id: str | None = None, status: str | None = None) -> list[PaymentRow]:
        with self.session() as s:
            q = select(PaymentRow).order_by(col(PaymentRow.recorded_at))
            if loan_id:
                q = q.where(col(PaymentRow.loan_id) == loan_id)
            if status:
                q = q.where(col(PaymentRow.status) == status)
            return list(s.scalars(q))

    # ---- contacts

    def begin_send(
        self,
        contact: ContactStart,
        *,
        frozen: Callable[[BorrowerRow | None], str | None],
        debtor_id: str | None = None,
        session: Session | None = None,
    ) -> tuple[BorrowerRow | None, BorrowerRow | None, ContactRow]:
        """What a send reads and writes before it calls the gateway, in one transaction:
        (the recipient's record, the debtor's record if `debtor_id`, the contact row).

        `frozen(recipient)` gives what the message is rendered from (it depends on the recipient's time zone); it is
        kept from the first attempt that gives one (`begin_contact`).
        The reads come first and the transaction begins at the first write (SQLite), as with the
        separate calls. With `session`, a part of the caller's transaction (Repo.tx)."""
        with self.tx(session) as s:
            borrower = s.get(BorrowerRow, contact.borrower_id)
            debtor = s.get(BorrowerRow, debtor_id) if debtor_id is not None else None
            row = self.begin_contact(contact, frozen(borrower), session=s)
            return borrower, debtor, row

    def begin_contact(self, contact: ContactStart, frozen: str | None, session: Session | None = None) -> ContactRow:
        """The contact row of this step and action, created on the first attempt; attempts are counted. `frozen` (what
        the message is rendered from) is kept from the first attempt that gives one (None gives none): the returned
        row's `frozen` is what every attempt must send. One transaction, or a part of `session`'s."""
        c0 = contact
        now = utcnow()
        with self.tx(session) as s:
            s.execute(
                _insert(s, ContactRow)
                .values(
                    idempotency_key=c0.idempotency_key,
                    workflow_id=c0.workflow_id,
                    loan_id=c0.loan_id,
                    borrower_id=c0.borrower_id,
                    step=c0.step,
                    channel=c0.channel,
                    action=c0.action,
                    status="pending",
                    attempts=0,
                    created_at=now,
                    updated_at=now,
                )
                .on_conflict_do_nothing(index_elements=["idempotency_key"])
            )
            c = CONTACTS.c  # a Core UPDATE: the ORM's bulk-update bookkeeping cost a fifth of a send's CPU
            s.execute(
                update(CONTACTS)
                .where(c.idempotency_key == c0.idempotency_key)
                .values(
                    attempts=c.attempts + 1,
                    updated_at=now,
                    **({"frozen": func.coalesce(c.frozen, frozen)} if frozen is not None else {}),
                )
            )
            # read inside the transaction that wrote it (the row lock is held): no second transaction
            return s.scalars(select(ContactRow).where(col(ContactRow.idempotency_key) == c0.idempotency_key)).one()

    def finish_contact(self, result: ContactFinish, session: Session | None = None) -> None:
        """A send's result on its contact row. One transaction, or a part of `session`'s."""
        with self.tx(session) as s:
            s.execute(
                update(CONTACTS)
                .where(CONTACTS.c.idempotency_key == result.idempotency_key)
                .values(
                    status=result.status,
                    outcome=result.outcome,
                    reason=result.reason,
                    reference=result.reference,
                    updated_at=utcnow(),
                )
            )

    def finish_send(
        self,
        *,
        contact: ContactFinish,
        event: EventRecord,
        case: CaseRecord,
        events: Sequence[EventRecord],
        session: Session | None = None,
    ) -> None:
        """What a send writes once the gateway answered, in one transaction: the contact row's result
        (`finish_contact`), the contact's own event, `project_case(case)` and the workflow's events it carried
        (`record_events`). The same rows, in the same order, as those calls one after the other. With `session`, a
        part of the caller's transaction."""
        with self.tx(session) as s:
            self.finish_contact(contact, session=s)
            self.record_events([event], session=s)
            self.project_case(case, session=s)
            self.record_events(events, session=s)

    def finish_sends(
        self,
        *,
        contacts: Sequence[tuple[ContactFinish, EventRecord]],
        case: CaseRecord | None,
        events: Sequence[EventRecord],
        notes: Sequence[tuple[str, str]],
        session: Session | None = None,
    ) -> None:
        """What a step's sends write once the gateway answered them, in one transaction: `finish_send`'s rows of each
        finished send (`contacts`: its result and event), the case projection once (`case`, when one finished),
        the workflow's events once, and the gateway's error on each send it could not take (`notes`: key, reason)."""
        with self.tx(session) as s:
            for contact, _ in contacts:
                self.finish_contact(contact, session=s)
            self.record_events([event for _, event in contacts], session=s)
            if case is not None:
                self.project_case(case, session=s)
            self.record_events(events, session=s)
            for key, reason in notes:
                self.note_contact_error(key, reason, session=s)

    def defer_contact(self, idempotency_key: str, *, event: EventRecord, session: Session | None = None) -> None:
        """A send found its window closed when its attempt came: nothing went out. The row gives its reservation
        back (status `deferred`: the gate's caps no longer count it) until the gate allows it again
        (GateStore.check); the deferral is an audit event (`event`). One transaction (or a part of `session`'s)."""
        with self.tx(session) as s:
            s.execute(
                update(CONTACTS)
                .where(CONTACTS.c.idempotency_key == idempotency_key, CONTACTS.c.status == "pending")
                .values(status="deferred", updated_at=utcnow())
            )
            self.record_events([event], session=s)

    def record_operator_contacts(self, rows: Sequence[OperatorContact], session: Session | None = None) -> None:
        """Conversations an operator recorded (a call or visit outcome): delivered contacts in the ledger, at the
        time they were recorded, with their outcome; the borrower is the loan's. Once per idempotency key."""
        if not rows:
            return
        with self.tx(session) as s:
            borrowers: dict[str, str] = {
                loan: borrower
                for loan, borrower in s.execute(
                    select(col(LoanRow.id), col(LoanRow.borrower_id)).where(col(LoanRow.id).in_({r.loan_id for r in rows}))
                )
            }
            now = utcnow()
            values = []
            for r in rows:
                if r.task_id is not None and self._task_call_answered(s, r.task_id, r.outcome):
                    continue  # the call placed through the console is the ledger's row; it now has its outcome
                if r.loan_id in borrowers:
                    values.append(
                        dict(
                            idempotency_key=r.idempotency_key,
                            workflow_id=r.workflow_id,
                            loan_id=r.loan_id,
                            step=r.step,
                            channel=r.channel,
                            action=r.action,
                            outcome=r.outcome,
                            at=r.at,
                            borrower_id=borrowers[r.loan_id],
                            status="delivered",
                            attempts=0,
                            created_at=now,
                            updated_at=now,
                        )
                    )
            if values:
                s.execute(_insert(s, ContactRow).on_conflict_do_nothing(index_elements=["idempotency_key"]), values)

    @staticmethod
    def _task_call_answered(s: Session, task_id: int, outcome: str) -> bool:
        """Put an outcome on the task's last call placed through the console (app/tasks.py); False when none was."""
        row = s.scalars(
            select(ContactRow)
            .where(col(ContactRow.idempotency_key).startswith(f"task:{task_id}:call:"))
            .order_by(col(ContactRow.id).desc())
        ).first()
        if row is None:
            return False
        if row.outcome is None:
            row.outcome, row.updated_at = outcome, utcnow()
            s.add(row)
        return True

    def note_contact_error(self, idempotency_key: str, reason: str, session: Session | None = None) -> None:
        with self.tx(session) as s:
            s.execute(
                update(ContactRow)
                .where(col(ContactRow.idempotency_key) == idempotency_key)
                .values(reason=reason[:500], updated_at=utcnow())
            )

    def contacts(self, loan_id: str | None = None, workflow_id: str | None = None) -> list[ContactRow]:
        with self.session() as s:
            q = select(ContactRow).order_by(col(ContactRow.id))
            if loan_id:
                q = q.where(col(ContactRow.loan_id) == loan_id)
            if workflow_id:
                q = q.where(col(ContactRow.workflow_id) == workflow_id)
            return list(s.scalars(q))

    # ---- audit trail

    def record_event(self, event: EventRecord, session: Session | None = None) -> bool:
        """One line of the audit trail, once per dedupe key: True if this call wrote it. One transaction, or a part of
        `session`'s."""
        with self.tx(session) as s:
            stmt = (
                _insert(s, EventRow)
                .values(**_event_values(event))
                .on_conflict_do_nothing(index_elements=["dedupe_key"])
                .returning(table_of(EventRow).c.id)
            )
            return s.execute(stmt).first() is not None  # RETURNING, not rowcount (see record_payment)

    def record_events(self, events: Sequence[EventRecord], session: Session | None = None) -> None:
        """`record_event` of each of `events`, in one transaction (or a part of `session`'s) and one statement: INSERT
        ... ON CONFLICT (dedupe_key) DO NOTHING, in the list's order, as one executemany, compiled once and cached
        (a multi-row VALUES list was compiled anew for every call). An event whose dedupe key is already there is
        skipped, as record_event skips it."""
        if not events:
            return
        with self.tx(session) as s:
            s.execute(
                _insert(s, EventRow).on_conflict_do_nothing(index_elements=["dedupe_key"]), [_event_values(e) for e in events]
            )

    def record_rejected_input(
        self,
        row: RejectedInputRow,
        events: Sequence[EventRecord],
        unapplied: PaymentRecord | None = None,
        session: Session | None = None,
    ) -> bool:
        """A signalled input the case refused, with its case events (and a payment it kept as unapplied), in one
        transaction (or a part of `session`'s); once per dedupe key (a local activity run again changes nothing).
        True when written now."""
        with self.tx(session) as s:
            values = row.model_dump(exclude={"id"})
            written = s.execute(_insert(s, RejectedInputRow).on_conflict_do_nothing(index_elements=["dedupe_key"]), values)
            self.record_events(events, session=s)
            if unapplied is not None and not self.record_payment(unapplied, session=s):
                log.warning(  # the id is the ledger's already (another loan's, or another amount): nothing kept
                    "payment not kept as unapplied: its id is already in the ledger", payment_id=unapplied.payment_id
                )
            return bool(getattr(written, "rowcount", 0))  # a CursorResult: 1 when inserted, 0 when known

    def rejected_inputs(
        self, since: datetime | None = None, loan_id: str | None = None, limit: int = 500
    ) -> list[RejectedInputRow]:
        """Rejected signalled inputs, newest first (since a time, of a loan)."""
        with self.session() as s:
            q = select(RejectedInputRow)
            if since is not None:
                q = q.where(col(RejectedInputRow.received_at) >= since)
            if loan_id is not None:
                q = q.where(col(RejectedInputRow.loan_id) == loan_id)
            return list(
                s.scalars(q.order_by(col(RejectedInputRow.received_at).desc(), col(RejectedInputRow.id).desc()).limit(limit))
            )

    def holds_of_case(self, workflow_id: str) -> list[HoldRow]:
        """The case's holds not yet released, as the database recorded them."""
        with self.session() as s:
            q = select(HoldRow).where(col(HoldRow.workflow_id) == workflow_id, col(HoldRow.released_at).is_(None))
            return list(s.scalars(q.order_by(col(HoldRow.id))))

    def events(self, workflow_id: str) -> list[EventRow]:
        with self.session() as s:
            return list(s.scalars(select(EventRow).where(col(EventRow.workflow_id) == workflow_id).order_by(col(EventRow.id))))


# ---------------------------------------------------------------- statements shared by the one-transaction writers


def _event_values(e: EventRecord) -> dict:
    """An audit event's row values: its cause as sorted JSON, its time now when it has none."""
    return dict(
        workflow_id=e.workflow_id,
        loan_id=e.loan_id,
        at=e.at or utcnow(),
        kind=e.kind,
        detail=e.detail,
        cause=json.dumps(e.cause or {}, sort_keys=True, default=str, ensure_ascii=False),
        dedupe_key=e.dedupe_key,
        actor=e.actor,
    )


CONTACTS = table_of(ContactRow)


# ---------------------------------------------------------------- the contact gate


@dataclass(frozen=True)
class GateRequest:
    idempotency_key: str
    workflow_id: str
    loan_id: str
    step: str
    action: str
    channel: str


def _decision_event(q: GateRequest, d, now: datetime) -> dict[str, Any]:
    """The case's event for one decision of the gate, with its rule and inputs (the audit trail's why)."""
    return dict(
        workflow_id=q.workflow_id,
        loan_id=q.loan_id,
        at=now,
        kind="contact_allowed" if d.allowed else "contact_refused",
        detail=f"{q.step}/{q.action}: {d.rule}: {d.reason}",
        cause=json.dumps(
            {"rule": d.rule, "retry_at": d.retry_at.isoformat() if d.retry_at else None, "final": d.final, **d.inputs},
            sort_keys=True,
            default=str,
            ensure_ascii=False,
        ),
        dedupe_key=None,
    )


def rules_decider(now: datetime, rules, day_seconds: int):
    """The question GateStore.check asks of each request: `domain.compliance.decide` on the request's action at
    `now`, with the case's pinned contact rules; a step's actions are one bundle (one contact for spacing)."""
    from domain import channels, compliance

    def decide(q: GateRequest, tz: str, holds, history, prefs=None):  # noqa: ANN202
        return compliance.decide(
            action=channels.base_action(q.action),
            channel=q.channel,
            loan_id=q.loan_id,
            now=now,
            tz=tz,
            rules=rules,
            holds=holds,
            history=history,
            bundle=f"{q.workflow_id}:{q.step}",
            day_seconds=day_seconds,
            prefs=prefs,
        )

    return decide


class GateStore:
    """The database side of the contact gate: one transaction per check, holding the borrower's row lock,
    so that two loans of one borrower cannot both take the last slot under a cap."""

    def __init__(self, repo: Repo) -> None:
        self.repo = repo

    def check(self, borrower_id: str, now: datetime, requests: list[GateRequest], decide, session: Session | None = None) -> list:
        """`decide(request, tz, holds, history, prefs)` -> Decision; allowed contacts are reserved (a pending row). With
        `session`, a part of the caller's transaction (the borrower's row stays locked until it commits)."""
        from domain.compliance import Decision, PastContact

        with self.repo.tx(session) as s:
            tz, holds, prefs, history = self._facts(s, borrower_id, now)
            existing = {
                r.idempotency_key: r
                for r in s.scalars(
                    select(ContactRow).where(col(ContactRow.idempotency_key).in_([q.idempotency_key for q in requests]))
                )
            }
            out = []
            for q in requests:
                prior = existing.get(q.idempotency_key)
                # a rerun after a crash: the first check already allowed and reserved it. A send deferred because
                # its window closed before it went out gave its reservation back: it is decided anew.
                if prior is not None and prior.status != "deferred":
                    out.append(Decision(True, "already_allowed", f"allowed earlier ({prior.status})"))
                    continue
                d = decide(q, tz, holds, history, prefs)
                if d.allowed:
                    self._reserve(s, borrower_id, q, now, again=prior is not None)
                    history.append(PastContact(at=now, channel=q.channel, loan_id=q.loan_id, bundle=f"{q.workflow_id}:{q.step}"))
                s.execute(_insert(s, EventRow).values(**_decision_event(q, d, now)))
                out.append(d)
            return out

    @staticmethod
    def _facts(s: Session, borrower_id: str, now: datetime):
        """What the gate decides with, the borrower's row locked first (a Core UPDATE, without the ORM's bulk-update
        bookkeeping) so that two cases of one borrower decide one after the other: the borrower's zone, holds on any
        of their loans, their own preferences, and their contacts of the last eight days."""
        from domain.compliance import ActiveHold, PastContact

        borrowers = table_of(BorrowerRow)
        b = borrowers.c
        # an UPDATE's result is a CursorResult (Session.execute is typed for any statement)
        locked = cast(
            CursorResult[Any], s.execute(update(borrowers).where(b.id == borrower_id).values(updated_at=b.updated_at))
        ).rowcount
        borrower = s.get(BorrowerRow, borrower_id) if locked else None
        tz = borrower.timezone if borrower else "Asia/Shanghai"
        holds = [
            ActiveHold(kind=h.kind, loan_id=h.loan_id, until=_aware(h.until))
            for h in s.scalars(select(HoldRow).where(col(HoldRow.borrower_id) == borrower_id, col(HoldRow.released_at).is_(None)))
        ]
        prefs = preferences_of(s.get(ContactPreferenceRow, borrower_id))
        rows = s.scalars(
            select(ContactRow).where(
                col(ContactRow.borrower_id) == borrower_id,
                col(ContactRow.status).in_(("pending", "delivered")),
                col(ContactRow.at).is_not(None),
                col(ContactRow.at) >= now - timedelta(days=8),
            )
        )
        history = [
            PastContact(
                at=_aware(r.at), channel=r.channel, outcome=r.outcome, loan_id=r.loan_id, bundle=f"{r.workflow_id}:{r.step}"
            )
            for r in rows
            if r.at is not None
        ]
        return tz, holds, prefs, history

    @staticmethod
    def _reserve(s: Session, borrower_id: str, q: GateRequest, now: datetime, *, again: bool) -> None:
        """An allowed contact's pending row: a new one, or (`again`) the deferred one taken up anew."""
        if again:
            s.execute(
                update(CONTACTS)
                .where(CONTACTS.c.idempotency_key == q.idempotency_key)
                .values(status="pending", at=now, updated_at=utcnow())
            )
            return
        s.execute(
            _insert(s, ContactRow)
            .values(
                idempotency_key=q.idempotency_key,
                workflow_id=q.workflow_id,
                loan_id=q.loan_id,
                borrower_id=borrower_id,
                step=q.step,
                channel=q.channel,
                action=q.action,
                status="pending",
                attempts=0,
                at=now,
                created_at=utcnow(),
                updated_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=["idempotency_key"])
        )

    def place_hold(
        self,
        *,
        borrower_id: str,
        loan_id: str,
        workflow_id: str,
        kind: str,
        placed_at: datetime,
        until: datetime | None,
        reference: str,
    ) -> None:
        with self.repo.session() as s:
            s.execute(
                _insert(s, HoldRow)
                .values(
                    borrower_id=borrower_id,
                    loan_id=loan_id,
                    workflow_id=workflow_id,
                    kind=kind,
                    reference=reference,
                    placed_at=placed_at,
                    until=until,
                )
                .on_conflict_do_nothing(index_elements=["workflow_id", "kind", "placed_at"])
            )
            s.commit()

    def hold_placed_by(self, *, workflow_id: str, kind: str, placed_at: datetime, actor: str) -> None:
        """The actor (operator id:role) on a hold row: the audit trail names who placed each hold."""
        with self.repo.session() as s:
            s.execute(
                update(HoldRow)
                .where(col(HoldRow.workflow_id) == workflow_id, col(HoldRow.kind) == kind, col(HoldRow.placed_at) == placed_at)
                .values(placed_by=actor)
            )
            s.commit()

    def release_hold(self, *, workflow_id: str, kind: str, released_at: datetime, released_by: str | None) -> None:
        with self.repo.session() as s:
            s.execute(
                update(HoldRow)
                .where(col(HoldRow.workflow_id) == workflow_id, col(HoldRow.kind) == kind, col(HoldRow.released_at).is_(None))
                .values(released_at=released_at, released_by=released_by)
            )
            s.commit()

    def holds(self, borrower_id: str) -> list[HoldRow]:
        with self.repo.session() as s:
            return list(s.scalars(select(HoldRow).where(col(HoldRow.borrower_id) == borrower_id).order_by(col(HoldRow.id))))
