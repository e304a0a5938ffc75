"""After a restore of the application database from a backup older than the cases: the database brought back in
line with what happened since.

Who is the truth for what:
- the case's workflow, for the case's state: its row (stage, status, outstanding, total paid), the payments it
  applied, its holds (the contact gate reads them for every loan of the borrower);
- the channel gateway's delivery log (the providers' records), for what was sent: a contact row lost with the
  restore is written again from it, so the gate counts it against the caps and a send re-run after the restore
  finds its delivery recorded instead of contacting the borrower a second time;
- the database, for the borrowers and the payment ledger's own entries (unapplied payments, which no case holds).

`reconcile` does every repair that follows from those sources and lists for a person what it cannot decide: a
payment the case applied whose id the restored ledger holds for another loan or amount, an applied ledger row no
case knows, a payment reversed after the backup, a delivery for a loan the restored database does not have. A
payment kept as unapplied after the backup (no open case then) is in no workflow: only the bank's payment feed,
sent again from the backup's time, brings it back (payments are idempotent by payment id, so everything else it
sends again changes nothing).

    python starter.py restore-reconcile [--gateway-log deliveries.json]
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlmodel import col
from temporalio.client import Client

from activities.contracts import case_key
from activities.jobs import live_case
from db.jobs import JobStore
from db.records import PaymentRecord
from db.repo import GateStore, Repo
from db.tables import ContactRow, HoldRow, LoanRow, PaymentRow, utcnow
from domain.models import CaseInput, CaseStatus
from workflows.case import CollectionCase

JOB = "restore"
NOTE = "restored from the case after a database restore"


@dataclass
class RestoreReport:
    cases: int = 0
    rows_repaired: list[str] = field(default_factory=list)  # workflow ids whose case row was rewritten
    payments_restored: list[str] = field(default_factory=list)  # payment ids written back to the ledger
    holds_restored: list[str] = field(default_factory=list)  # "workflow id: kind"
    holds_released: list[str] = field(default_factory=list)
    contacts_restored: list[str] = field(default_factory=list)  # idempotency keys
    for_a_person: list[str] = field(default_factory=list)  # what the reconciliation cannot decide
    unreadable: list[str] = field(default_factory=list)  # cases that did not answer (run it again)

    def summary(self) -> str:
        return (
            f"{self.cases} cases: {len(self.rows_repaired)} case rows rewritten, {len(self.payments_restored)} payments "
            f"restored to the ledger, {len(self.holds_restored)} holds restored and {len(self.holds_released)} released, "
            f"{len(self.contacts_restored)} contacts restored from the gateway's log; {len(self.for_a_person)} for a "
            f"person, {len(self.unreadable)} cases unreadable"
        )


def _aware(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)


async def reconcile(
    client: Client,
    repo: Repo,
    deliveries: Iterable[dict[str, Any]] = (),
    *,
    workflow_ids: list[str] | None = None,
    concurrency: int = 8,
) -> RestoreReport:
    """Every case (open and closed; `workflow_ids`: only these) read, then the gateway's `deliveries` (items with
    idempotency_key, loan_id, channel, accepted_at and the gateway's id) against the contact rows, then each case
    against the restored database. Run it with the workers up (closed cases answer their queries through them) and
    before the API takes inputs again."""
    report = RestoreReport()
    found = dict.fromkeys(workflow_ids or [])
    if workflow_ids is None:
        async for wf in client.list_workflows('WorkflowType = "CollectionCase"'):
            found[wf.id] = None  # a reopened case lists each run: one entry
    ids = list(found)
    gate = asyncio.Semaphore(concurrency)
    read: list[tuple[CaseStatus, CaseInput]] = []

    async def one(wid: str) -> None:
        async with gate:
            handle = client.get_workflow_handle(wid)  # the latest run: a reopened case's current one
            try:
                st: CaseStatus = await handle.query(CollectionCase.status)
                snap: CaseInput = await handle.query(CollectionCase.snapshot)
            except Exception as exc:  # noqa: BLE001 - named; the rest goes on
                report.unreadable.append(f"{wid}: {str(exc)[:200]}")
                return
            read.append((st, snap))

    await asyncio.gather(*(one(w) for w in ids))
    report.cases = len(ids)
    # the contacts first: the gate counts them from here on; the borrower of a loan the restored database lacks
    # (opened after the backup) is the case's
    borrower_of = {st.loan_id: snap.borrower_id for st, snap in read}
    # when the gate allowed each send, on the case's clock (the caps count by it): the cases' recent decisions
    decided = {
        f"{case_key(st.workflow_id, snap.state.opened_at)}:{d.step}:{d.action}": d.at
        for st, snap in read
        if snap.state is not None
        for d in snap.state.decisions
        if d.allowed
    }
    await asyncio.to_thread(_contacts, repo, list(deliveries), report, borrower_of, decided)
    for st, snap in read:
        await asyncio.to_thread(_case, repo, st, snap, report)
    return report


def _case(repo: Repo, st: CaseStatus, snap: CaseInput, report: RestoreReport) -> None:
    now = utcnow()
    wid = st.workflow_id
    if repo.loan(st.loan_id) is None:  # opened after the backup: the loan system's import brings it back
        report.for_a_person.append(
            f"loan {st.loan_id} (case {wid}) and its borrower are not in the restored database: import them again "
            "from the loan system"
        )
    if JobStore(repo).repair_case(live_case(st), now, JOB):
        report.rows_repaired.append(wid)
    state = snap.state
    assert state is not None  # the snapshot query always carries the state
    with repo.session() as s:
        rows = {r.payment_id: r for r in s.scalars(select(PaymentRow).where(col(PaymentRow.loan_id) == st.loan_id))}
        known = {
            r.payment_id: r for r in s.scalars(select(PaymentRow).where(col(PaymentRow.payment_id).in_(list(state.payments))))
        }
        rows_held = list(s.scalars(select(HoldRow).where(col(HoldRow.workflow_id) == wid, col(HoldRow.released_at).is_(None))))
    for pid, rec in state.payments.items():
        row = known.get(pid)
        if row is not None and (row.loan_id != st.loan_id or row.amount != rec.amount):
            report.for_a_person.append(
                f"payment {pid}: the case of loan {st.loan_id} applied {rec.amount} (minor units); the restored ledger "
                f"holds it for loan {row.loan_id}, {row.amount}: left as it is"
            )
            continue
        if row is not None and row.status == "applied":
            continue
        repo.record_payment(
            PaymentRecord(
                payment_id=pid,
                loan_id=st.loan_id,
                workflow_id=wid,
                amount=rec.amount,
                currency=st.currency,
                paid_at=_aware(rec.at),
                status="applied",
                allocation=rec.allocation,
                note=NOTE,
            )
        )
        report.payments_restored.append(pid)
        if rec.reversed_at is not None:
            report.for_a_person.append(
                f"payment {pid} of loan {st.loan_id} was reversed at {rec.reversed_at:%Y-%m-%d %H:%M} UTC after the "
                "backup: record its reversal again (POST .../payments/{pid}/reversal answers it as known)"
            )
    for pid, r in rows.items():
        if r.status == "applied" and r.workflow_id == wid and pid not in state.payments:
            report.for_a_person.append(
                f"payment {pid}: applied to loan {st.loan_id} in the restored ledger, but the case has no such payment"
            )
    # holds: the case's own are the truth; the gate reads them for every loan of the borrower
    live = {h.kind for h in st.holds}
    rowset = {held.kind for held in rows_held}
    store = GateStore(repo)
    for h in st.holds:
        if h.kind not in rowset:
            store.place_hold(
                borrower_id=snap.borrower_id,
                loan_id=st.loan_id,
                workflow_id=wid,
                kind=h.kind,
                placed_at=_aware(h.placed_at),
                until=_aware(h.until) if h.until else None,
                reference=h.reference,
            )
            report.holds_restored.append(f"{wid}: {h.kind}")
    for held in rows_held:
        if held.kind not in live:
            store.release_hold(workflow_id=wid, kind=held.kind, released_at=now, released_by="restore reconciliation")
            report.holds_released.append(f"{wid}: {held.kind}")


def _contacts(
    repo: Repo,
    deliveries: list[dict[str, Any]],
    report: RestoreReport,
    cases: dict[str, str],
    decided: dict[str, dt.datetime],
) -> None:
    """A contact row, delivered, for every delivery in the gateway's log that the restored database lacks (or holds
    as anything but delivered); its time the case's decision when the case still has it, else the gateway's."""
    if not deliveries:
        return
    with repo.session() as s:
        keys = [d["idempotency_key"] for d in deliveries]
        have = {r.idempotency_key: r for r in s.scalars(select(ContactRow).where(col(ContactRow.idempotency_key).in_(keys)))}
        loans = {d["loan_id"] for d in deliveries}
        borrower_of = cases | {r.id: r.borrower_id for r in s.scalars(select(LoanRow).where(col(LoanRow.id).in_(loans)))}
        now = utcnow()
        for d in deliveries:
            key = d["idempotency_key"]
            wf, _opened, step, action = key.split(":", 3)
            at = _aware(decided.get(key) or dt.datetime.fromisoformat(d["accepted_at"]))
            row = have.get(key)
            if row is not None:
                if row.status != "delivered":
                    row.status, row.reference, row.at = "delivered", str(d.get("id") or row.reference or ""), row.at or at
                    row.updated_at = now
                    report.contacts_restored.append(key)
                continue
            borrower = borrower_of.get(d["loan_id"])
            if borrower is None:
                report.for_a_person.append(f"delivery {key}: loan {d['loan_id']} has no case and no loan row")
                continue
            s.add(
                ContactRow(
                    idempotency_key=key,
                    workflow_id=wf,
                    loan_id=d["loan_id"],
                    borrower_id=borrower,
                    step=step,
                    channel=d["channel"],
                    action=action,
                    status="delivered",
                    reference=str(d.get("id") or ""),
                    reason="restored from the gateway's delivery log after a database restore",
                    attempts=1,
                    at=at,
                    created_at=now,
                    updated_at=now,
                )
            )
            report.contacts_restored.append(key)
        s.commit()
