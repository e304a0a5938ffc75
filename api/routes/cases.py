"""/v1/cases and /v1/loans/{loan_id}: open a case, list cases, one case's status."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from api.deps import E401, E403, E404, E422, E503, Backend, LoanId, authorized, backend, guard, within_timeout
from api.routes.payments import PaymentBody
from app import opening, visibility
from app.errors import build
from domain.models import ID_PATTERN, CaseStatus, PaymentIn
from infra.config import settings

NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"

router = APIRouter(prefix="/v1", dependencies=[Depends(authorized)], responses={**E401, **E403, **E503})
BackendDep = Annotated[Backend, Depends(backend)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Borrower(Model):
    """Contact details: stored in the database only, never in Temporal."""

    name: str = Field(min_length=1, max_length=200, pattern=NO_CONTROL)
    phone: str | None = Field(default=None, max_length=32, pattern=r"^\+?[0-9][0-9 ()-]{4,30}$")
    email: str | None = Field(default=None, max_length=254, pattern=r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
    address: str | None = Field(default=None, max_length=500, pattern=NO_CONTROL)
    id_number: str | None = Field(default=None, max_length=32, pattern=r"^[0-9A-Za-z]{1,32}$")
    language: Literal["zh", "en"] = "zh"


class StartCase(Model):
    loan_id: str = Field(pattern=ID_PATTERN)
    borrower_id: str = Field(pattern=ID_PATTERN)
    principal: str = Field(description="outstanding principal, decimal string in major units, e.g. '12000.00'")
    interest: str = "0"
    fees: str = "0"
    currency: str = "CNY"
    due_date: dt.date = Field(description="the missed due date (borrower's calendar)")
    timezone: str = "Asia/Shanghai"
    segment: str = Field(default="retail", pattern=r"^[A-Za-z0-9_-]{1,32}$")
    product: str = Field(default="personal_loan", pattern=r"^[A-Za-z0-9_-]{1,32}$")
    guarantor_id: str | None = Field(default=None, pattern=ID_PATTERN)
    policy: str | None = Field(
        default=None,
        pattern=r"^[a-z][a-z0-9_-]{0,63}$",
        description="a policy name; default: the segment's policy if any, else default",
    )
    borrower: Borrower | None = Field(
        default=None,
        description="contact details, written to the database before "
        "the case opens; may be left out when the borrower is already there",
    )
    payment: PaymentBody | None = Field(
        default=None,
        description="a payment received with the opening data: the case opens and applies it in one request "
        "(update-with-start), both or neither; sent again, the same payment_id changes nothing",
    )


class CaseList(BaseModel):
    query: str = Field(description="the visibility query that was run")
    count: int
    items: list[visibility.CaseSummary]


@router.post(
    "/cases",
    **guard("case.open"),
    tags=["cases"],
    summary="Open the case of one delinquent loan (idempotent)",
    status_code=201,
    response_model=opening.StartResult,
    responses={
        200: {"model": opening.StartResult, "description": "already running: nothing started"},
        201: {"description": "case started"},
        **E422,
    },
)
async def start_case(be: BackendDep, body: StartCase) -> JSONResponse:
    inp = opening.case_input(
        loan_id=body.loan_id,
        borrower_id=body.borrower_id,
        principal=body.principal,
        interest=body.interest,
        fees=body.fees,
        currency=body.currency,
        due_date=body.due_date,
        timezone=body.timezone,
        segment=body.segment,
        product=body.product,
        guarantor_id=body.guarantor_id,
        policy=body.policy,
        allow_policy_paths=False,
    )
    contact = opening.Contact(**body.borrower.model_dump()) if body.borrower else None
    payment = None
    if body.payment is not None:
        p = body.payment
        payment = build(
            PaymentIn, payment_id=p.payment_id, amount=p.amount, currency=p.currency or inp.currency, paid_at=p.paid_at
        )
    result = await opening.open_case(
        await be.client(), be.repo(), inp, contact, settings().task_queue, require_borrower=True, payment=payment
    )
    return JSONResponse(result.model_dump(mode="json"), status_code=201 if result.started else 200)


@router.get(
    "/cases",
    **guard("case.list"),
    tags=["cases"],
    summary="List cases by their search attributes",
    response_model=CaseList,
    responses={**E422},
)
async def list_cases(
    be: BackendDep,
    stage: Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9_]{0,39}$", description="e.g. litigation")] = None,
    status: Annotated[Literal["active", "paused", "closed"] | None, Query()] = None,
    on_hold: Annotated[bool | None, Query()] = None,
    min_amount: Annotated[
        str | None,
        Query(pattern=r"^[0-9]{1,15}(\.[0-9]{1,6})?$", description="outstanding at least this (major units)"),
    ] = None,
    segment: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,32}$")] = None,
    policy: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,32}$")] = None,
    query: Annotated[str | None, Query(max_length=2000, description="raw Temporal visibility query, ANDed")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> CaseList:
    await asyncio.to_thread(visibility.check_filters, be.repo(), stage=stage, segment=segment, policy=policy)
    q = visibility.visibility_query(
        stage=stage, status=status, on_hold=on_hold, min_amount=min_amount, segment=segment, policy=policy, query=query
    )
    items = await visibility.list_cases(await be.client(), q, limit)
    return CaseList(query=q, count=len(items), items=items)


@router.get(
    "/loans/{loan_id}",
    # a proposal's input is shown as clients send it: the actor set by the application layer is in the
    # proposal's `maker`, and the hidden fields are not part of the documented input shapes
    response_model_exclude={
        "pending_approval": {
            "plan": {"actor"},
            "hold": {"actor", "approved"},
            "release": {"actor"},
            "close": {"actor"},
            "confirm": {"actor"},
        }
    },
    **guard("case.read"),
    tags=["cases"],
    summary="The loan's case: stage, status, balances, next action",
    response_model=CaseStatus,
    responses={**E404, **E422},
)
async def status(be: BackendDep, loan_id: LoanId) -> CaseStatus:
    return await within_timeout(visibility.case_status(await be.client(), loan_id, be.repo()))
