"""/v1/loans/{loan_id}/promises, plans, holds (and their release), outcomes: inputs to an open case."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from access.permissions import HOLD_PLACE, HOLD_RELEASE, TWO_PERSON
from api.deps import E401, E403, E404, E422, E503, Backend, LoanId, answered, authorized, backend, guard, within_timeout
from app import errors, inputs
from domain.models import (
    CloseIn,
    HoldIn,
    HoldKind,
    OutcomeIn,
    PlanIn,
    PlanResult,
    PromiseIn,
    ReleaseIn,
    SuspensionIn,
    UpdateResult,
    WriteOffConfirmIn,
)

router = APIRouter(prefix="/v1", dependencies=[Depends(authorized)], responses={**E401, **E403, **E503})
BackendDep = Annotated[Backend, Depends(backend)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReleaseBody(Model):
    reviewer: str | None = Field(default=None, max_length=100, description="complaint: the reviewer releasing it")
    resolution: str = Field(default="", max_length=200)


async def update(be: Backend, loan_id: str, arg: BaseModel):
    client = await be.client()
    return await answered(lambda: inputs.send(client, loan_id, arg))


@router.post(
    "/loans/{loan_id}/promises",
    **guard("promise"),
    tags=["inputs"],
    response_model=UpdateResult,
    summary="A promise to pay: pauses the ladder until the date plus grace",
    responses={**E404, **E422},
)
async def promise(be: BackendDep, loan_id: LoanId, body: PromiseIn) -> Any:
    return await update(be, loan_id, body)


@router.post(
    "/loans/{loan_id}/plans",
    **guard("plan.agree"),
    tags=["inputs"],
    response_model=PlanResult,
    summary="Agree a repayment plan (deferral, instalments, interest waiver)",
    responses={**E404, **E422},
)
async def plan(be: BackendDep, loan_id: LoanId, body: PlanIn) -> Any:
    return await update(be, loan_id, body)


@router.post(
    "/loans/{loan_id}/holds",
    **guard(*HOLD_PLACE),
    tags=["inputs"],
    response_model=UpdateResult,
    summary="Place a hold (dispute, cease_contact, hardship, complaint, bankruptcy, deceased)",
    responses={**E404, **E422},
)
async def hold(be: BackendDep, loan_id: LoanId, body: HoldIn) -> Any:
    client = await be.client()
    return await answered(lambda: inputs.place_hold(client, be.repo(), loan_id, body))


@router.post(
    "/loans/{loan_id}/holds/{kind}/release",
    **guard(*HOLD_RELEASE),
    tags=["inputs"],
    response_model=UpdateResult,
    summary="Release a hold (a complaint needs a reviewer)",
    responses={**E404, **E422},
)
async def release(be: BackendDep, loan_id: LoanId, kind: HoldKind, body: ReleaseBody) -> Any:
    return await update(be, loan_id, errors.build(ReleaseIn, kind=kind, **body.model_dump()))


@router.post(
    "/loans/{loan_id}/outcomes",
    **guard("outcome.call", "outcome.visit", "outcome.court"),
    tags=["inputs"],
    response_model=UpdateResult,
    summary="A call or visit outcome, or a court event",
    responses={**E404, **E422},
)
async def outcome(be: BackendDep, loan_id: LoanId, body: OutcomeIn) -> Any:
    return await update(be, loan_id, body)


@router.post(
    "/loans/{loan_id}/limitation/suspension",
    **guard("limitation.suspend"),
    tags=["inputs"],
    response_model=UpdateResult,
    summary="Record an obstacle that suspends the limitation period (民法典 art. 194): cause, start, end, reference",
    responses={**E404, **E422},
)
async def suspend(be: BackendDep, loan_id: LoanId, body: SuspensionIn) -> Any:
    return await update(be, loan_id, body)


@router.post(
    "/loans/{loan_id}/closure",
    **guard("case.close"),
    tags=["inputs"],
    response_model=UpdateResult,
    summary="Close a case by an operator's decision, with a reason (settled_by_agreement, uncollectable, sold, error)",
    responses={**E404, **E422},
)
async def close(be: BackendDep, loan_id: LoanId, body: CloseIn) -> Any:
    return await update(be, loan_id, body)


@router.post(
    "/loans/{loan_id}/write-off/confirmation",
    **guard("writeoff.confirm"),
    tags=["inputs"],
    response_model=UpdateResult,
    summary="Confirm a proposed write-off (核销): an accounting event, the case stays open",
    responses={**E404, **E422},
)
async def confirm_write_off(be: BackendDep, loan_id: LoanId, body: WriteOffConfirmIn) -> Any:
    return await update(be, loan_id, body)


class DecisionBody(Model):
    decision: Literal["approve", "reject"]
    note: str = Field(default="", max_length=200)


@router.post(
    "/loans/{loan_id}/approval",
    **guard(*sorted(set(TWO_PERSON.values()))),
    tags=["approvals"],
    response_model=UpdateResult,
    summary="Approve or reject what waits for approval in the case (never by its maker; the role depends on its kind)",
    responses={**E404, **E422},
)
async def decide(be: BackendDep, loan_id: LoanId, body: DecisionBody) -> Any:
    client = await be.client()
    return await answered(lambda: inputs.decide(client, be.repo(), loan_id, body.decision, body.note))


@router.get(
    "/approvals",
    **guard("approvals.list"),
    tags=["approvals"],
    response_model=list[inputs.WaitingApproval],
    summary="What waits for approval that the caller's roles may decide",
    responses={**E422},
)
async def approvals(be: BackendDep) -> Any:
    return await within_timeout(inputs.list_approvals(await be.client(), be.repo()))
