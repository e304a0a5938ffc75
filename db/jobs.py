"""The database side of the daily jobs (workflows/jobs.py): the projection's repair, the retention erasure and the
jobs' own notices. Each write is idempotent: a retry writes nothing twice."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlmodel import col

from db.records import CaseRecord, EventRecord
from db.repo import Repo, _insert
from db.tables import BorrowerRow, CaseRow, ContactChangeRow, EventRow, LoanRow, table_of, utcnow
from domain import retention

# The jobs' notices (case_events rows of no case: workflow_id is the job's schedule id, loan_id empty), read by the
# console's compliance worklist (console/worklists.py).
CALENDAR_MISSING = "calendar_missing"
RETENTION_ERASED = "retention_erased"
PROJECTION_REPAIRED = "projection_repaired"
JOB_NOTICES = (CALENDAR_MISSING, RETENTION_ERASED, PROJECTION_REPAIRED)


@dataclass(frozen=True)
class LiveCase:
    """What the reconciliation compares: the case row's fields as the workflow has them (minor units)."""

    workflow_id: str
    loan_id: str
    currency: str
    stage: str
    status: str
    outstanding: int
    total_paid: int


@dataclass(frozen=True)
class Erasure:
    person: str  # a borrower's id (the borrower or the guarantor of a loan)
    loans: tuple[tuple[str, str], ...]  # (loan id, workflow id of its case)
    last_closed: datetime
    years: int
    source: str


FIELDS = ("stage", "status", "outstanding", "total_paid")


class JobStore:
    def __init__(self, repo: Repo) -> None:
        self.repo = repo

    # ---- reconciliation

    def repair_case(self, live: LiveCase, at: datetime, job: str) -> list[str]:
        """Rewrite the case row from the workflow's state when they differ; the fields repaired (none: it agreed).

        Compare and set: the row is rewritten only if it still holds what was read, so a projection the workflow
        itself wrote in between is never overwritten with an older state (nothing repaired then: it is right)."""
        with self.repo.session() as s:
            row = s.get(CaseRow, live.workflow_id)
            if row is None:
                self.repo.project_case(
                    CaseRecord(
                        workflow_id=live.workflow_id,
                        loan_id=live.loan_id,
                        currency=live.currency,
                        stage=live.stage,
                        status=live.status,
                        outstanding=live.outstanding,
                        total_paid=live.total_paid,
                    ),
                    session=s,
                )
                changed, was = ["row"], "no row"
            else:
                changed = [f for f in FIELDS if getattr(row, f) != getattr(live, f)]
                if not changed:
                    return []
                read = {f: getattr(row, f) for f in FIELDS}
                was = ", ".join(f"{f} {read[f]}" for f in changed)
                t = table_of(CaseRow)
                c = t.c
                done = cast(
                    CursorResult[Any],
                    s.execute(
                        update(t)
                        .where(c.workflow_id == live.workflow_id, *(c[f] == read[f] for f in FIELDS))
                        .values(**{f: getattr(live, f) for f in FIELDS}, updated_at=utcnow())
                    ),
                ).rowcount
                if not done:
                    return []
            self.repo.record_events(
                [
                    EventRecord(
                        workflow_id=live.workflow_id,
                        loan_id=live.loan_id,
                        at=at,
                        kind=PROJECTION_REPAIRED,
                        detail=f"the case row disagreed with the case ({was}); rewritten from the case",
                        cause={"job": job, "fields": changed},
                    )
                ],
                session=s,
            )
            s.commit()
            return changed

    # ---- retention

    def erasures_due(self, now: datetime, rules_of: Callable[[str], tuple[int, str]]) -> list[Erasure]:
        """The people (borrowers and guarantors) not yet erased whose every loan has a closed case, the last of them
        closed longer ago than the retention period of its loan's policy (`rules_of(policy) -> (years, source)`)."""
        loans: dict[str, list[tuple[str, str | None, str, str | None, datetime | None]]] = {}
        with self.repo.session() as s:
            erased = set(s.scalars(select(col(BorrowerRow.id)).where(col(BorrowerRow.erased_at).is_not(None))))
            q = select(
                col(LoanRow.id),
                col(LoanRow.borrower_id),
                col(LoanRow.guarantor_id),
                col(LoanRow.policy),
                col(CaseRow.workflow_id),
                col(CaseRow.status),
                col(CaseRow.closed_at),
            ).outerjoin(CaseRow, col(CaseRow.loan_id) == col(LoanRow.id))
            for loan, borrower, guarantor, policy, wid, status, closed_at in s.execute(q):
                row = (loan, wid, policy, status, closed_at)
                for person in (borrower, guarantor):
                    if person is not None and person not in erased:
                        loans.setdefault(person, []).append(row)
        out = []
        for person, rows in sorted(loans.items()):
            closed = [(loan, wid, policy, at) for loan, wid, policy, status, at in rows if status == "closed" and wid and at]
            if len(closed) < len(rows):
                continue  # a case still open, or a loan with no case (yet): its purpose is not over
            # each loan's period (its policy's) from its case's closure; the person waits for the last of them to end
            end, policy, last = max((retention.erase_from(at, rules_of(p)[0]), p, at) for _, _, p, at in closed)
            if now < end:
                continue
            years, source = rules_of(policy)
            out.append(Erasure(person, tuple((loan, wid) for loan, wid, _, _ in closed), last, years, source))
        return out

    def erase(self, e: Erasure, now: datetime, job: str) -> bool:
        """Erase (phone, email, address) and mask (name, id number) one person's details, and the old values of their
        audited changes; the amounts, payments and audit trail stay. One event on each of the person's cases says
        so (what and why, never the values). False when already erased (nothing written)."""
        with self.repo.session() as s:
            person = s.get(BorrowerRow, e.person)
            if person is None or person.erased_at is not None:
                return False
            masked = {f: retention.mask(f, getattr(person, f)) for f in retention.MASKED}
            bt = table_of(BorrowerRow)
            b = bt.c
            done = cast(
                CursorResult[Any],
                s.execute(
                    update(bt)
                    .where(b.id == e.person, b.erased_at.is_(None))
                    .values(**{f: None for f in retention.ERASED}, **masked, erased_at=now, updated_at=utcnow())
                ),
            ).rowcount
            if not done:
                return False
            s.execute(
                update(ContactChangeRow)
                .where(col(ContactChangeRow.borrower_id) == e.person)
                .values(old_value=None, new_value=None)
            )
            why = f"{e.years} year(s) after the last case closed ({e.last_closed:%Y-%m-%d}); {e.source}"
            self.repo.record_events(
                [
                    EventRecord(
                        workflow_id=wid,
                        loan_id=loan,
                        at=now,
                        kind="contact_details_erased",
                        detail=f"contact details of {e.person} erased ({', '.join(retention.ERASED)}; "
                        f"{', '.join(retention.MASKED)} masked): {why}",
                        cause={"job": job, "person": e.person, "years": e.years},
                        dedupe_key=f"retention:{e.person}:{loan}:{now:%Y%m%d}",
                    )
                    for loan, wid in e.loans
                ],
                session=s,
            )
            s.commit()
            return True

    # ---- the jobs' notices (the compliance worklist)

    def notice(self, *, job: str, kind: str, detail: str, at: datetime, cause: dict, dedupe_key: str | None) -> bool:
        """A job's notice, once per dedupe key. True when written."""
        with self.repo.session() as s:
            stmt = (
                _insert(s, EventRow)
                .values(
                    workflow_id=job,
                    loan_id="",
                    at=at,
                    kind=kind,
                    detail=detail,
                    cause=json.dumps(cause, sort_keys=True, default=str, ensure_ascii=False),
                    dedupe_key=dedupe_key,
                )
                .on_conflict_do_nothing(index_elements=["dedupe_key"])
                .returning(table_of(EventRow).c.id)
            )
            written = s.execute(stmt).first() is not None
            s.commit()
            return written

    def notices(self, kind: str | None = None) -> list[EventRow]:
        with self.repo.session() as s:
            q = select(EventRow).where(col(EventRow.kind).in_([kind] if kind else JOB_NOTICES), col(EventRow.loan_id) == "")
            return list(s.scalars(q.order_by(col(EventRow.id))))
