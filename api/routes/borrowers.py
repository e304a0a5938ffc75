"""/v1/borrowers/{borrower_id}/contact: the audited change of a borrower's contact details."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Path

from api.deps import E401, E403, E404, E422, E503, Backend, authorized, backend, guard
from app import contacts
from domain.models import ID_PATTERN

router = APIRouter(prefix="/v1", dependencies=[Depends(authorized)], responses={**E401, **E403, **E503})
BackendDep = Annotated[Backend, Depends(backend)]
BorrowerId = Annotated[str, Path(pattern=ID_PATTERN, description="the bank's borrower id")]


@router.post(
    "/borrowers/{borrower_id}/contact",
    **guard("contact.update"),
    tags=["borrowers"],
    response_model=contacts.ContactChanged,
    responses={**E404, **E422},
    summary="Change a borrower's contact details (audited: who, when, the old value kept)",
)
async def update_contact(be: BackendDep, borrower_id: BorrowerId, body: contacts.ContactUpdate) -> contacts.ContactChanged:
    return await asyncio.to_thread(contacts.update_contact, be.repo(), borrower_id, body)
