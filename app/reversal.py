"""Reverse a payment (a returned transfer, a failed debit): the open case takes it as an update; a case closed
as paid by it reopens as a new run of the same workflow id, from the closed run's state."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from access.permissions import require
from app.errors import BadInput, NotFound, build, check_id, closed_refusal
from app.inputs import BUSY_WAIT, open_run, send
from app.visibility import case_status
from domain.case import Case
from domain.errors import InvalidInput
from domain.inputs import payments
from domain.models import CaseInput, ReopenIn, ReversalIn, workflow_id
from infra.config import settings
from workflows.case import CollectionCase


class ReversalOutcome(BaseModel):
    loan_id: str
    payment_id: str
    reopened: bool = Field(description="the case had closed as paid; a new run of it opened for the reversal")
    previous_run_id: str | None = None
    status: Literal["active", "paused", "closed"]
    outstanding: str
    message: str


async def reverse_payment(
    client: Client, loan_id: str, *, payment_id: str, reason: str, at: dt.datetime | None = None, task_queue: str | None = None
) -> ReversalOutcome:
    """Take back a payment (a returned transfer, a failed debit) by its payment id, with a reason.

    The loan's open case takes it as an update (its validator refuses an unknown id, a payment already reversed,
    a missing reason). A case closed as paid (or settled, recovered) by it opens again: a new run of the same
    workflow id starts from the closed run's state, carrying that run's id, and applies the reversal first.
    A case closed otherwise (bankrupt, deceased, an operator's closure) is not reopened: refused, nothing changed."""
    require("payment.reverse")
    check_id(loan_id)
    check_id(payment_id, "payment_id")
    r: ReversalIn = build(ReversalIn, payment_id=payment_id, reason=reason, at=at)
    if not r.reason.strip():
        raise BadInput("reason", "is required: why the payment was taken back (returned transfer, failed debit, ...)")
    if await open_run(client, loan_id) is not None:
        try:
            result = await send(client, loan_id, r)
        except BadInput as exc:
            if not (closed_refusal(exc) and "reopens it" in exc.reason):
                raise
            # closed as paid while we asked; its run is finishing: reopen it as below
        else:
            status = await case_status(client, loan_id)
            return ReversalOutcome(
                loan_id=loan_id,
                payment_id=payment_id,
                reopened=False,
                status=result.status,
                outstanding=status.outstanding["total"],
                message=result.message,
            )
    handle = client.get_workflow_handle(workflow_id(loan_id))
    try:
        desc = await handle.describe()
        snap: CaseInput = await handle.query(CollectionCase.snapshot)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise NotFound("loan_id", f"no case for loan {loan_id}; nothing reversed") from None
        raise
    if desc.status == WorkflowExecutionStatus.RUNNING:  # a run started in between (reopened by another call)
        return await reverse_payment(client, loan_id, payment_id=payment_id, reason=reason, at=at, task_queue=task_queue)
    try:
        now = dt.datetime.now(dt.UTC)
        payments.check_reversal(Case(snap, now), r, now, reopening=True)
    except InvalidInput as exc:
        raise BadInput(exc.field, exc.reason) from None
    return await _reopen(client, loan_id, r, desc.run_id, snap, task_queue)


async def _reopen(
    client: Client, loan_id: str, r: ReversalIn, previous_run_id: str, snap: CaseInput, task_queue: str | None
) -> ReversalOutcome:
    """A new run of the closed case, from its state, that applies the reversal first; answered once it answers."""
    payment_id = r.payment_id
    reopened = snap.model_copy(update={"reopen": ReopenIn(previous_run_id=previous_run_id, reversal=r)})
    try:
        new = await client.start_workflow(
            CollectionCase.run,
            reopened,
            id=reopened.workflow_id,
            task_queue=task_queue or settings().task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            static_summary=f"Loan {loan_id} · reopened: payment {payment_id} reversed",
            static_details=f"reopened from run {previous_run_id} ({snap.state.outcome if snap.state else '?'}): "
            f"payment {payment_id} reversed: {r.reason}",
        )
    except WorkflowAlreadyStartedError:
        return await reverse_payment(client, loan_id, payment_id=payment_id, reason=r.reason, at=r.at, task_queue=task_queue)
    for pause in (*BUSY_WAIT, None):  # the new run answers queries once its first workflow task is done
        try:
            st = await new.query(CollectionCase.status)
            break
        except RPCError as exc:
            if pause is None or exc.status != RPCStatusCode.FAILED_PRECONDITION:
                raise
            await asyncio.sleep(pause)
    return ReversalOutcome(
        loan_id=loan_id,
        payment_id=payment_id,
        reopened=True,
        previous_run_id=previous_run_id,
        status=st.status,
        outstanding=st.outstanding["total"],
        message=f"payment {payment_id} reversed; the case had closed as "
        f"{snap.state.outcome if snap.state else '?'} and is open again (run {new.result_run_id},"
        f" reopened from {previous_run_id}); outstanding {st.outstanding['total']}",
    )
