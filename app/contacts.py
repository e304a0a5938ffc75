"""A borrower's contact details change through this one audited use case: who changed
which detail and when, the old value kept (contact_changes). The gate and the templates read the borrower
row at each contact, so the new details are used from the next contact on. Opening a case again never
changes them while the case is open."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from access.operators import OperatorError, clean_name
from access.permissions import require
from app.errors import BadInput, NotFound, check_id

CONTACT_FIELDS = ("name", "phone", "email", "address", "language")


class ContactUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=32, pattern=r"^\+?[0-9][0-9 ()-]{4,30}$")
    email: str | None = Field(default=None, max_length=254, pattern=r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
    address: str | None = Field(default=None, max_length=500)
    language: str | None = Field(default=None, pattern=r"^(zh|en)$")


class ContactChanged(BaseModel):
    borrower_id: str
    changed: list[str] = Field(description="the fields that changed (their old values are kept in the audit trail)")
    message: str


def update_contact(repo, borrower_id: str, update: ContactUpdate) -> ContactChanged:
    actor = require("contact.update")
    check_id(borrower_id, "borrower_id")
    from db.tables import BorrowerRow, ContactChangeRow, utcnow

    given: dict[str, Any] = {k: v for k, v in update.model_dump().items() if v is not None}
    for k in ("name", "address"):
        if k in given:
            try:
                given[k] = clean_name(given[k], k, 200 if k == "name" else 500)
            except OperatorError as exc:
                raise BadInput(exc.field, exc.reason) from None
    if not given:
        raise BadInput("body", f"names no contact detail to change ({', '.join(CONTACT_FIELDS)})")
    with repo.session() as s:
        row = s.get(BorrowerRow, borrower_id)
        if row is None:
            raise NotFound("borrower_id", f"no borrower {borrower_id}; nothing was changed")
        now = utcnow()
        changed = [k for k, v in given.items() if getattr(row, k) != v]
        for k in changed:
            s.add(
                ContactChangeRow(
                    borrower_id=borrower_id,
                    field=k,
                    old_value=getattr(row, k),
                    new_value=given[k],
                    actor=f"{actor.operator_id}:{actor.role}",
                    at=now,
                )
            )
            setattr(row, k, given[k])
        if changed:
            row.updated_at = now
        s.commit()
    return ContactChanged(
        borrower_id=borrower_id,
        changed=changed,
        message=(
            f"changed {', '.join(changed)} of borrower {borrower_id}; used from the next contact on"
            if changed
            else "nothing to change: the details were already these"
        ),
    )
