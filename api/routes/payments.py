"""/v1/loans/{loan_id}/payments: payment notifications and applying the unapplied ones."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from api.deps import E401, E403, E404, E422, E503, Backend, LoanId, answered, authorized, backend, guard, within_timeout
from app import inputs, reversal
from domain.models import ID_PATTERN

router = APIRouter(prefix="/v1", dependencies=[Depends(authorized)], responses={**E401, **E403, **E503})
BackendDep = Annotated[Backend, Depends(backend)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PaymentBody(Model):
    payment_id: str = Field(pattern=ID_PATTERN, description="the bank's payment id: sending it again changes nothing")
    amount: str = Field(description="decimal string in major units, e.g. '500.00'")
    currency: str | None = Field(default=None, description="defaults to the loan's currency")
    paid_at: AwareDatetime | None = Field(default=None, description="when it was paid (with UTC offset)")


class ReversalBody(Model):
    reason: str = Field(
        min_length=1, max_length=200, description="why the payment was taken back (returned transfer, failed debit)"
    )
    at: AwareDatetime | None = Field(default=None, description="when the bank learnt of it (with UTC offset); default now")


class ApplyUnappliedBody(Model):
    payment_ids: list[Annotated[str, Field(pattern=ID_PATTERN)]] = Field(
        default=[], max_length=100, description="only these unapplied payments; empty: all of the loan's"
    )


@router.post(
    "/loans/{loan_id}/payments",
    **guard("payment.record"),
    tags=["inputs"],
    response_model=inputs.PaymentOutcome,
    summary="A payment notification (idempotent by payment_id)",
    responses={
        200: {"description": "applied to the open case (or a duplicate of an applied one)"},
        202: {"model": inputs.PaymentOutcome, "description": "no open case: kept in the ledger as unapplied"},
        **E404,
        **E422,
    },
)
async def payment(be: BackendDep, loan_id: LoanId, body: PaymentBody) -> JSONResponse:
    client = await be.client()
    outcome = await answered(
        lambda: inputs.record_payment(
            client,
            be.repo(),
            loan_id,
            payment_id=body.payment_id,
            amount=body.amount,
            currency=body.currency,
            paid_at=body.paid_at,
        )
    )
    return JSONResponse(outcome.model_dump(mode="json"), status_code=200 if outcome.status == "applied" else 202)


@router.post(
    "/loans/{loan_id}/payments/apply-unapplied",
    **guard("payment.apply_unapplied"),
    tags=["inputs"],
    response_model=list[inputs.PaymentOutcome],
    summary="Apply the loan's unapplied payments to its open case (never done automatically: the case's "
    "opening balance may already count them)",
    responses={**E404, **E422},
)
async def apply_unapplied(be: BackendDep, loan_id: LoanId, body: ApplyUnappliedBody) -> Any:
    client = await be.client()
    return await answered(lambda: inputs.apply_unapplied(client, be.repo(), loan_id, body.payment_ids or None))


@router.post(
    "/loans/{loan_id}/payments/{payment_id}/reversal",
    **guard("payment.reverse"),
    tags=["inputs"],
    response_model=reversal.ReversalOutcome,
    summary="Reverse a payment (returned transfer, failed debit): the balance comes back; a case closed as paid by it "
    "reopens as a new run",
    responses={**E404, **E422},
)
async def reverse(
    be: BackendDep, loan_id: LoanId, payment_id: Annotated[str, Path(pattern=ID_PATTERN)], body: ReversalBody
) -> Any:
    return await within_timeout(
        reversal.reverse_payment(await be.client(), loan_id, payment_id=payment_id, reason=body.reason, at=body.at)
    )
