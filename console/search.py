"""The header's search: a case by its loan id, by its borrower's id, or by the last four digits of the borrower's phone.

What the query is decides how it is read: four digits are a phone's last four (every case of a borrower whose number
ends so); anything else an id, the loan's (exact, or its start) or the borrower's (exact). Phone numbers are shown
masked (138****5678), and each search that shows a case writes an event to that case's audit trail (kind
`case_found_by_search`, the operator as actor, how it was found), as a view of contact details does.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from sqlalchemy import select

from app.errors import BadInput
from db.tables import BorrowerRow, CaseRow, EventRow, LoanRow, utcnow
from domain.display import mask_phone

LIMIT = 25
ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
LAST_FOUR = re.compile(r"[0-9]{4}")


@dataclass(frozen=True)
class Found:
    loan_id: str
    borrower_id: str
    phone: str  # masked
    stage: str
    status: str
    outstanding: int
    currency: str


def kind_of(q: str) -> str:
    """'phone' (four digits), 'id' (a loan or borrower id); bad input names the field and the reason."""
    q = q.strip()
    if not q:
        raise BadInput("q", "is empty: type a loan id, a borrower id or the last four digits of a phone number")
    if LAST_FOUR.fullmatch(q):
        return "phone"
    if not ID.fullmatch(q):
        raise BadInput(
            "q",
            f"{q[:64]!r} is neither an id (letters, digits and _ . : -, up to 64) nor the last four digits of a phone",
        )
    return "id"


def find(repo, q: str, *, actor: str) -> tuple[str, list[Found]]:
    """(how the query was read, the cases found, newest first), each found case audited with `actor`."""
    q = q.strip()
    kind = kind_of(q)
    c, ln, b = CaseRow, LoanRow, BorrowerRow
    stmt = (
        select(c.loan_id, ln.borrower_id, b.phone, c.stage, c.status, c.outstanding, c.currency)
        .join(ln, ln.id == c.loan_id)
        .join(b, b.id == ln.borrower_id)
        .order_by(c.opened_at.desc(), c.loan_id)  # type: ignore[union-attr]
        .limit(LIMIT)
    )
    if kind == "phone":
        stmt = stmt.where(b.phone.like(f"%{q}"))  # type: ignore[union-attr]
        how = "phone"
    else:
        escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = stmt.where((c.loan_id == q) | (ln.borrower_id == q) | c.loan_id.like(escaped + "%", escape="\\"))  # type: ignore[attr-defined]
        how = "id"
    with repo.session() as s:
        rows = [Found(r[0], r[1], mask_phone(r[2]), r[3], r[4], int(r[5] or 0), r[6]) for r in s.execute(stmt)]
        detail = (
            f"found in the console's search by the last four digits of the borrower's phone ({q})"
            if kind == "phone"
            else f"found in the console's search by id ({q})"
        )
        for f in rows:
            s.add(
                EventRow(
                    workflow_id=f"loan-{f.loan_id}",
                    loan_id=f.loan_id,
                    at=utcnow(),
                    kind="case_found_by_search",
                    detail=detail,
                    cause=json.dumps({"source": "console", "search": how}),
                    actor=actor,
                )
            )
        s.commit()
    return how, rows
