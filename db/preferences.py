"""The borrower's contact preferences (domain.compliance.Preferences) in the database: read by the gate inside its
transaction (db/repo.py GateStore.check), written from the borrower's page with an event on each of their cases."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlmodel import col, select

from db.tables import ContactPreferenceRow, EventRow, LoanRow
from domain.compliance import Preferences, hhmm
from domain.models import workflow_id
from domain.policy import _minutes


def preferences_of(row: ContactPreferenceRow | None) -> Preferences | None:
    if row is None:
        return None
    hours = (_minutes(row.hours_start), _minutes(row.hours_end)) if row.hours_start and row.hours_end else None
    return Preferences(hours=hours, quiet=frozenset(x for x in row.quiet.split(",") if x), not_at_work=row.not_at_work)


def describe(p: Preferences) -> str:
    """The preferences in a line for the case's timeline and the people who call and visit."""
    parts = []
    if p.hours:
        parts.append(f"hours {hhmm(p.hours[0])}-{hhmm(p.hours[1])}")
    if p.quiet:
        parts.append("not by " + ", ".join(sorted(p.quiet)))
    if p.not_at_work:
        parts.append("not at the workplace")
    return "; ".join(parts) or "no preferences (the policy's rules only)"


class PreferenceStore:
    def __init__(self, repo: Any) -> None:  # a db.repo.Repo (which imports this module for its gate)
        self.repo = repo

    def get(self, borrower_id: str) -> Preferences | None:
        with self.repo.session() as s:
            return preferences_of(s.get(ContactPreferenceRow, borrower_id))

    def set(self, borrower_id: str, p: Preferences, *, by: str, at: datetime) -> int:
        """Keep the borrower's latest statement and put it on the timeline of each of their open and closed loans'
        cases (so whoever reads a case sees it); the number of cases told."""
        with self.repo.session() as s:
            row = s.get(ContactPreferenceRow, borrower_id) or ContactPreferenceRow(
                borrower_id=borrower_id, updated_by=by, updated_at=at
            )
            row.hours_start, row.hours_end = (hhmm(p.hours[0]), hhmm(p.hours[1])) if p.hours else (None, None)
            row.quiet, row.not_at_work, row.updated_by, row.updated_at = ",".join(sorted(p.quiet)), p.not_at_work, by, at
            s.add(row)
            loans = list(s.scalars(select(LoanRow.id).where(col(LoanRow.borrower_id) == borrower_id)))
            for loan in loans:
                s.add(
                    EventRow(
                        workflow_id=workflow_id(loan),
                        loan_id=loan,
                        at=at,
                        kind="contact_preferences",
                        detail=describe(p),
                        cause=json.dumps({"hours": p.hours, "quiet": sorted(p.quiet), "not_at_work": p.not_at_work}),
                        actor=by,
                    )
                )
            s.commit()
            return len(loans)
