"""Inputs to an open case (payment, promise, plan, hold, release, outcome), sent as workflow updates,
and payments kept for loans with no open case."""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import hashlib
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.service import RPCError, RPCStatusCode

from access.permissions import TWO_PERSON, USE_CASES, current, require
from app.errors import EARLIEST_DUE, BadInput, Busy, NotFound, build, check_id, closed_refusal, no_open_case, rejection
from app.visibility import case_status
from db.records import PaymentRecord
from domain import inputs as registered
from domain.actor import Actor
from domain.dates import CLOCK_SKEW
from domain.errors import InvalidInput
from domain.inputs import INPUTS
from domain.models import (
    CLOSING_HOLDS,
    ApprovalDecisionIn,
    HoldIn,
    PaymentIn,
    PaymentResult,
    ReleaseIn,
    UpdateResult,
    workflow_id,
)
from domain.money import format_amount, parse_amount
from workflows.case import CollectionCase

# How long an input waits for a case whose workflow task is being retried before the caller is told to retry
# (outside `answered`, which retries until its own deadline).
BUSY_WAIT = (0.2, 0.5, 1.0, 2.0, 3.0)

# The request an input belongs to: its updates get ids derived from it, so that an update sent again within one
# request (after a timeout, a restart of the server, a case that was recovering) is the same update, answered once.
_request_key: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_key", default=None)
# What an attempt of the request learnt that a later attempt needs (an input decided on what it read first).
_request_memo: contextvars.ContextVar[dict | None] = contextvars.ContextVar("request_memo", default=None)


# an input's model -> the workflow update that carries it, from the one table of inputs (domain/inputs)
UPDATES: dict[type[BaseModel], Any] = {i.model: getattr(CollectionCase, i.update) for i in INPUTS}


def with_actor(arg: BaseModel, actor: Actor, *, approved: bool = False) -> BaseModel:
    """The input as the case gets it: the actor is the authenticated operator's, whatever a client sent (None for
    an in-process caller, which acts as before); a complaint's reviewer is that operator; `approved` only from
    the approval path."""
    operator = None if actor.operator_id == "system" else actor
    update: dict[str, Any] = {}
    if "actor" in type(arg).model_fields:
        update["actor"] = operator
    if "approved" in type(arg).model_fields:
        update["approved"] = approved
    if operator is not None and isinstance(arg, ReleaseIn) and arg.kind == "complaint":
        update["reviewer"] = operator.operator_id  # the reviewer is the authenticated operator, not a typed name
    return arg.model_copy(update=update) if update else arg


async def send_update(
    client: Client,
    loan_id: str,
    command: str,
    fields: dict[str, Any] | BaseModel,
    *,
    approved: bool = False,
    use_case_name: str | None = None,
) -> Any:
    """An input named as a person or a form names it (the command line's and the API's command, its fields as
    typed): built into its model, refused with the field and the reason when it does not fit, then sent."""
    check_id(loan_id)
    if command not in registered.BY_COMMAND:
        raise BadInput("command", f"{command!r} is not an input of a case (one of: {', '.join(registered.BY_COMMAND)})")
    model = registered.BY_COMMAND[command].model
    if isinstance(fields, model):
        arg = fields
    else:
        fields = dict(fields)
        if command == "release" and fields.get("kind") == "complaint" and current().operator_id != "system":
            fields.setdefault("reviewer", current().operator_id)
        arg = build(model, **fields)
    return await send(client, loan_id, arg, approved=approved, use_case_name=use_case_name)


async def send(client: Client, loan_id: str, arg: BaseModel, *, approved: bool = False, use_case_name: str | None = None) -> Any:
    """Send one input to the loan's open case, by its model's type: the caller's permission for its use case,
    the actor stamped, the update its model's; the workflow's validator may refuse it (BadInput)."""
    check_id(loan_id)
    command = registered.of(arg).command
    name = use_case_name or registered.use_case(arg)
    if name not in USE_CASES:  # e.g. releasing a bankruptcy or a death: nobody may; the case would refuse it too
        raise BadInput("kind", f"{getattr(arg, 'kind', command)!r} cannot be {command}d by anyone; nothing was changed")
    arg = with_actor(arg, require(name), approved=approved)
    update = UPDATES[type(arg)]
    handle = client.get_workflow_handle(workflow_id(loan_id))
    update_id = _update_id(loan_id, command, arg)
    # within `answered`: each call bounded by the RPC deadline itself (not only by cancelling it), tried again after
    rpc_timeout = ATTEMPT_RPC_TIMEOUT if update_id is not None else None
    for pause in (*BUSY_WAIT, None):
        try:
            return await handle.execute_update(update, arg, id=update_id, rpc_timeout=rpc_timeout)
        except WorkflowUpdateFailedError as exc:
            raise (rejection(exc) or BadInput("input", f"update rejected: {exc.cause or exc}")) from None
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise no_open_case(loan_id) from None
            if exc.status != RPCStatusCode.FAILED_PRECONDITION:
                raise
            # FAILED_PRECONDITION is either a closed case or an open one whose workflow task is failing
            # ("Workflow Task in failed state", transient): only the first is "no open case"
            if await open_run(client, loan_id) is None:
                raise no_open_case(loan_id) from None
            if pause is None:
                raise Busy(
                    f"the case for loan {loan_id} is open but recovering ({exc.message}); nothing was "
                    "changed; send the same input again"
                ) from None
            await asyncio.sleep(pause)
    raise AssertionError("unreachable")


def _update_id(loan_id: str, command: str, arg: BaseModel) -> str | None:
    """Within `answered`: the same id for the same input to the same loan (its attempts are one update); else
    None (the SDK draws one)."""
    key = _request_key.get()
    if key is None:
        return None
    digest = hashlib.sha256(f"{loan_id}\0{command}\0{arg.model_dump_json()}".encode()).hexdigest()[:24]
    return f"{key}:{digest}"


class Unanswered(Exception):
    """No answer within the deadline (the case recovering, Temporal or the database unreachable): nothing is
    known to have changed; send the same input again after `retry_after` seconds."""

    def __init__(self, reason: str, retry_after: int) -> None:
        super().__init__(reason)
        self.reason, self.retry_after = reason, retry_after


# CANCELLED: the server cancelled the call while shutting down (a restart); ABORTED: a conflict retried by the next call
ATTEMPT_RPC_TIMEOUT = dt.timedelta(seconds=10)
TRANSIENT_RPC = (
    RPCStatusCode.UNAVAILABLE,
    RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.RESOURCE_EXHAUSTED,
    RPCStatusCode.CANCELLED,
    RPCStatusCode.ABORTED,
)


def transient(exc: BaseException) -> bool:
    """An error that a later attempt of the same input may not meet: a recovering case, Temporal or the database
    unreachable (restarting, a dropped connection), one attempt's own timeout."""
    if isinstance(exc, Busy | TimeoutError | ConnectionError | WorkflowUpdateRPCTimeoutOrCancelledError):
        return True
    if isinstance(exc, RPCError):  # UNKNOWN "transport error": the connection dropped as the server stopped
        return exc.status in TRANSIENT_RPC or (exc.status == RPCStatusCode.UNKNOWN and "transport error" in exc.message)
    if isinstance(exc, DBAPIError):
        return bool(exc.connection_invalidated) or type(exc.orig).__name__ in ("OperationalError", "InterfaceError")
    return False


async def answered(
    make: Callable[[], Awaitable[Any]], deadline: float, *, attempt_timeout: float = 10.0, request_key: str | None = None
) -> Any:
    """`make()` (one input: a payment, a hold, ...) until it answers, for at most `deadline` seconds: a
    transient failure (see `transient`) or an attempt longer than `attempt_timeout` is tried again, the updates
    of every attempt under the same ids (one request, one update), so that an attempt whose answer was lost
    counts as the answer of the next. Refusals (BadInput) and other errors are answered at once. After the
    deadline: Unanswered, with a Retry-After in seconds."""
    token = _request_key.set(request_key or uuid.uuid4().hex)
    memo = _request_memo.set({})
    try:
        end = time.monotonic() + deadline
        pause, last = 0.2, "no attempt"
        while True:
            left = end - time.monotonic()
            try:
                async with asyncio.timeout(max(0.5, min(attempt_timeout, left))):
                    return await make()
            except Exception as exc:  # noqa: BLE001 - sorted below
                if not transient(exc):
                    raise
                last = f"{type(exc).__name__}: {str(exc)[:200]}" if str(exc) else type(exc).__name__
            if time.monotonic() + pause >= end:
                raise Unanswered(f"no answer within {deadline:.0f}s ({last})", retry_after=max(1, round(pause * 2)))
            await asyncio.sleep(pause)
            pause = min(pause * 2, 2.0)
    finally:
        _request_key.reset(token)
        _request_memo.reset(memo)


async def place_hold(client: Client, repo, loan_id: str, fields: dict[str, Any] | HoldIn, *, approved: bool = False) -> Any:
    """A hold on the loan's case. A bankruptcy or death concerns the borrower, not one loan: once the named
    case has taken it, the borrower's other open cases get the same hold at once (each closes).

    Sent again (an answer lost, a timeout half way), it carries on: the named case, already closed by this
    hold, counts as done and the other loans are sent it again. A case not reached (recovering from a crash)
    is named in the answer; it also closes by itself at its next step, when the contact gate meets the hold."""
    hold = fields if isinstance(fields, HoldIn) else build(HoldIn, **dict(fields))
    if hold.kind not in CLOSING_HOLDS:
        return await send(client, loan_id, hold)
    outcome = CLOSING_HOLDS[hold.kind]
    try:
        result = await send(client, loan_id, hold, approved=approved)
        if not result.accepted:  # proposed: the other loans follow once a second person approves it
            return result
    except BadInput as exc:
        if not await _closed_as(client, loan_id, outcome, exc):
            raise
        result = UpdateResult(
            message=f"the case was already closed as {outcome} (this hold, sent before)", status="closed", outcome=outcome
        )
    closed, missed = [], []
    for other in await asyncio.to_thread(repo.other_loans, loan_id):
        note = f"recorded on loan {loan_id}" + (f": {hold.reference}" if hold.reference else "")
        try:
            await send(client, other, HoldIn(kind=hold.kind, reference=note[:200]), approved=approved)
        except BadInput as exc:
            if isinstance(exc, NotFound) or closed_refusal(exc):
                continue  # no open case for that loan
            raise
        except Exception as exc:  # noqa: BLE001 - Busy, Temporal unavailable: named, and the gate closes it later
            missed.append(f"{other} ({exc})")
            continue
        closed.append(other)
    message = result.message
    if closed:
        message += f"; the borrower's other open cases closed too: {', '.join(closed)}"
    if missed:
        message += f"; not reached yet: {'; '.join(missed)}: send the hold again (or each closes at its next step)"
    return result.model_copy(update={"message": message})


async def _closed_as(client: Client, loan_id: str, outcome: str, exc: BadInput) -> bool:
    """The named case refused the hold because it is already closed with this outcome (a hold sent again)."""
    if closed_refusal(exc):
        return f"({outcome})" in exc.reason
    if isinstance(exc, NotFound):
        try:
            return (await case_status(client, loan_id)).outcome == outcome
        except Exception:  # noqa: BLE001 - no case at all, or it cannot be queried: the refusal stands
            return False
    return False


@dataclass(frozen=True)
class OpenRun:
    run_id: str
    started_at: dt.datetime


async def open_run(client: Client, loan_id: str) -> OpenRun | None:
    """The loan's running case, if any (a raw describe: only status and start time are needed)."""
    try:
        desc = await client.workflow_service.describe_workflow_execution(
            DescribeWorkflowExecutionRequest(
                namespace=client.namespace, execution=WorkflowExecution(workflow_id=workflow_id(loan_id))
            )
        )
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    info = desc.workflow_execution_info
    if info.status != WorkflowExecutionStatus.RUNNING.value:
        return None
    return OpenRun(run_id=info.execution.run_id, started_at=info.start_time.ToDatetime(tzinfo=dt.UTC))


class PaymentOutcome(BaseModel):
    """What became of a payment notification: applied to the open case, or kept as unapplied."""

    payment_id: str
    loan_id: str
    status: Literal["applied", "unapplied"]
    duplicate: bool = Field(description="the payment id was already known: nothing changed")
    amount: str
    currency: str
    applied: str | None = Field(default=None, description="amount applied to the case")
    allocation: dict[str, str] = {}
    outstanding: str | None = Field(default=None, description="the case's outstanding balance after it")
    case_status: Literal["active", "paused", "closed"] | None = None
    case_outcome: str | None = None
    message: str


async def apply_unapplied(client: Client, repo, loan_id: str, payment_ids: list[str] | None = None) -> list[PaymentOutcome]:
    """Apply the loan's unapplied payments (all, or the ones named) to its open case, oldest first: one
    outcome each.

    Never automatic: they arrived while the loan had no open case, and the balance a new case opens with
    comes from the loan system, which may already count them. An operator who has checked says so here.
    Each is applied once (by payment id) and its ledger row becomes applied to the case; one the case
    refuses (more than the balance left) stays unapplied, with the case's reason, and the rest go on.
    Sent again, a payment this call already applied answers as a duplicate."""
    require("payment.apply_unapplied")
    check_id(loan_id)
    for pid in payment_ids or []:
        check_id(pid, "payment_id")
    run = await open_run(client, loan_id)
    if run is None:
        raise no_open_case(loan_id)
    rows = {r.payment_id: r for r in await asyncio.to_thread(repo.payments, loan_id=loan_id)}
    waiting = [r for r in rows.values() if r.status == "unapplied"]
    if payment_ids:
        for pid in payment_ids:
            r = rows.get(pid)
            if r is None or (r.status != "unapplied" and r.workflow_id != workflow_id(loan_id)):
                raise BadInput(
                    "payment_id",
                    f"{pid} is not an unapplied payment of loan {loan_id} (unapplied: "
                    f"{', '.join(w.payment_id for w in waiting) or 'none'}); nothing applied",
                )
        chosen = [rows[pid] for pid in dict.fromkeys(payment_ids)]
    elif waiting:
        chosen = waiting
    else:
        raise BadInput("loan_id", f"loan {loan_id} has no unapplied payments; nothing applied")
    out = []
    for r in chosen:
        amount = format_amount(r.amount, r.currency)
        p = PaymentIn(payment_id=r.payment_id, amount=amount, currency=r.currency, paid_at=_utc(r.paid_at))
        try:
            out.append(_applied(loan_id, amount, r.currency, await send(client, loan_id, p)))
        except BadInput as exc:
            if isinstance(exc, NotFound):
                raise
            out.append(
                PaymentOutcome(
                    payment_id=r.payment_id,
                    loan_id=loan_id,
                    status="unapplied",
                    duplicate=False,
                    amount=amount,
                    currency=r.currency,
                    message=f"payment {r.payment_id} refused by the case ({exc}); still unapplied",
                )
            )
    return out


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _payment_row(repo, payment_id: str):
    from db.tables import PaymentRow

    with repo.session() as s:
        return s.get(PaymentRow, payment_id)


def _applied(loan_id: str, amount: str, currency: str, r: PaymentResult) -> PaymentOutcome:
    msg = (
        f"payment {r.payment_id}: applied {r.applied}{' (duplicate, nothing changed)' if r.duplicate else ''}, "
        f"outstanding {r.outstanding}, case {r.status}" + (f" ({r.outcome})" if r.outcome else "")
    )
    return PaymentOutcome(
        payment_id=r.payment_id,
        loan_id=loan_id,
        status="applied",
        duplicate=r.duplicate,
        amount=amount,
        currency=currency,
        applied=r.applied,
        allocation=r.allocation,
        outstanding=r.outstanding,
        case_status=r.status,
        case_outcome=r.outcome,
        message=msg,
    )


# How far a payment's paid_at may lie before the missed due date: a year, the longest a payment can belong to this
# delinquency (the policies have no setting for it).
PAID_AT_BEFORE_DUE = dt.timedelta(days=366)


def check_paid_at(paid_at: dt.datetime, due: dt.date | None, now: dt.datetime | None = None) -> None:
    """A paid_at of year 1 or 1970 would be applied as such: it is bounded by the loan's due date less a year and
    by now (a few minutes of clock skew allowed)."""
    now = now or dt.datetime.now(dt.UTC)
    if paid_at > now + CLOCK_SKEW:
        raise BadInput("paid_at", f"{paid_at.isoformat()} is in the future")
    earliest = (
        dt.datetime.combine(due, dt.time(), dt.UTC) - PAID_AT_BEFORE_DUE
        if due is not None
        else dt.datetime.combine(EARLIEST_DUE, dt.time(), dt.UTC)
    )
    if paid_at < earliest:
        raise BadInput(
            "paid_at",
            f"{paid_at.isoformat()} is before {earliest.date()} "
            f"({'a year before the loan is due' if due is not None else 'the earliest date taken'})",
        )


async def record_payment(
    client: Client,
    repo,
    loan_id: str,
    *,
    payment_id: str,
    amount: str,
    currency: str | None = None,
    paid_at: dt.datetime | None = None,
) -> PaymentOutcome:
    """A payment notification, idempotent by payment id.

    Applied to the loan's open case; for a loan with no open case it is kept in the ledger as
    unapplied (never dropped). A payment id already in the ledger changes nothing.
    """
    require("payment.record")
    check_id(loan_id)
    loan, run = await asyncio.gather(asyncio.to_thread(repo.loan, loan_id), open_run(client, loan_id))
    if loan is None and run is None:
        raise NotFound("loan_id", f"{loan_id} is unknown (no open case and not in the system of record); nothing recorded")
    if currency is None:
        currency = loan.currency if loan is not None else (await case_status(client, loan_id)).currency
    p: PaymentIn = build(PaymentIn, payment_id=payment_id, amount=amount, currency=currency, paid_at=paid_at)
    try:
        minor = parse_amount(p.amount, p.currency, "amount")
    except InvalidInput as exc:
        raise BadInput(exc.field, exc.reason) from None
    if loan is not None and p.currency != loan.currency:
        raise BadInput("currency", f"{p.currency} does not match the loan's currency {loan.currency}")
    if p.paid_at is not None:
        check_paid_at(p.paid_at, loan.due_date if loan is not None else None)

    known = await asyncio.to_thread(_payment_row, repo, p.payment_id)
    if known is not None:
        duplicate = _known_payment(loan_id, p, minor, known, run)
        if duplicate is not None:
            return duplicate
    if run is not None:
        try:
            result = await send(client, loan_id, p)
        except NotFound:
            if loan is None:
                raise
            run = None  # the case closed in between: keep the payment as unapplied
        except BadInput as exc:
            if loan is None or not closed_refusal(exc):
                raise
            run = None  # closed, its workflow still finishing its closing actions: kept as unapplied too
        else:
            return _applied(loan_id, format_amount(minor, p.currency), p.currency, result)
        # applied to this run before it closed (its workflow finished between open_run and the update, as the chaos
        # run found): the same answer, not "kept as unapplied" beside the applied row
        if known is not None:
            return _payment_outcome(loan_id, p, minor, "applied", True, f"payment {p.payment_id} was already applied")
    return await _keep_unapplied(repo, loan_id, p, minor)


def _payment_outcome(
    loan_id: str, p: PaymentIn, minor: int, status: Literal["applied", "unapplied"], duplicate: bool, message: str
) -> PaymentOutcome:
    return PaymentOutcome(
        payment_id=p.payment_id,
        loan_id=loan_id,
        status=status,
        duplicate=duplicate,
        amount=format_amount(minor, p.currency),
        currency=p.currency,
        message=message + (" (duplicate, nothing changed)" if duplicate and status == "applied" else ""),
    )


def _known_payment(loan_id: str, p: PaymentIn, minor: int, known, run) -> PaymentOutcome | None:
    """A payment id the ledger holds already: refused when it names another payment (another loan, another
    amount); answered as a duplicate when it needs nothing more; None when the open run must still take it."""
    if known.loan_id != loan_id:
        raise BadInput("payment_id", f"{p.payment_id} was already recorded for another loan; payment ids are unique")
    if known.amount != minor or known.currency != p.currency:
        raise BadInput(
            "payment_id",
            f"{p.payment_id} was already recorded with amount {known.currency} "
            f"{format_amount(known.amount, known.currency)}; a payment id cannot be reused",
        )
    if known.status == "unapplied":
        message = f"no open case for loan {loan_id}: payment {p.payment_id} kept as unapplied (already recorded)"
        return _payment_outcome(loan_id, p, minor, "unapplied", True, message)
    if run is None or known.recorded_at < run.started_at:
        return _payment_outcome(loan_id, p, minor, "applied", True, f"payment {p.payment_id} was already applied")
    return None


async def _keep_unapplied(repo, loan_id: str, p: PaymentIn, minor: int) -> PaymentOutcome:
    """No open case to take it: the payment is kept in the ledger as unapplied (never dropped)."""
    written = await asyncio.to_thread(
        repo.record_payment,
        PaymentRecord(
            payment_id=p.payment_id,
            loan_id=loan_id,
            workflow_id=None,
            amount=minor,
            currency=p.currency,
            paid_at=p.paid_at or dt.datetime.now(dt.UTC),
            status="unapplied",
            note="no open case when received",
        ),
    )
    message = f"no open case for loan {loan_id}: payment {p.payment_id} kept as unapplied" + (
        "" if written else " (already recorded)"
    )
    return _payment_outcome(loan_id, p, minor, "unapplied", not written, message)


def payments(repo, loan_id: str | None = None, unapplied: bool = False) -> list[dict[str, Any]]:
    require("payments.read")
    if loan_id is not None:
        check_id(loan_id)
    rows = repo.payments(loan_id=loan_id, status="unapplied" if unapplied else None)
    return [
        {
            "payment_id": r.payment_id,
            "loan_id": r.loan_id,
            "amount": format_amount(r.amount, r.currency),
            "currency": r.currency,
            "status": r.status,
            "paid_at": r.paid_at.isoformat(),
            "note": r.note,
        }
        for r in rows
    ]


# --------------------------------------------------------------------------- four-eyes


async def decide(client: Client, repo, loan_id: str, decision: str, note: str = "") -> UpdateResult:
    """Approve or reject what waits for approval in the loan's case. The caller needs the role that approves
    that kind (access.permissions.TWO_PERSON) and must not be its maker (the case refuses that). An approved
    closure for bankruptcy or death then closes the borrower's other open cases too."""
    check_id(loan_id)
    st = await case_status(client, loan_id)
    pending = st.pending_approval
    seen = _request_memo.get()
    if pending is None and seen is not None:
        # an earlier attempt of this request sent the decision, its answer lost: the same update again (its id is
        # the same) answers with that attempt's outcome
        pending = seen.get(("decide", loan_id))
    if pending is None:
        raise BadInput("approval", f"nothing waits for approval in the case of loan {loan_id}; nothing was changed")
    if seen is not None:
        seen[("decide", loan_id)] = pending
    use = TWO_PERSON[pending.kind if pending.kind in TWO_PERSON else "close"]
    d = build(ApprovalDecisionIn, decision=decision, note=note)
    result = await send(client, loan_id, d, use_case_name=use)
    if decision == "approve" and pending.kind == "closure" and pending.hold is not None and repo is not None:
        more = await place_hold(client, repo, loan_id, pending.hold.model_copy(update={"actor": None}), approved=True)
        extra = more.message.split("; ", 1)[1] if "; " in more.message else ""
        if extra:
            result = result.model_copy(update={"message": f"{result.message}; {extra}"})
    return result


class WaitingApproval(BaseModel):
    loan_id: str
    kind: str
    summary: str
    maker: str = Field(description="operator id of the maker")
    maker_name: str | None = None
    at: dt.datetime
    expires_at: dt.datetime
    approver_roles: list[str]


async def list_approvals(client: Client, repo=None, limit: int = 200) -> list[WaitingApproval]:
    """What waits for approval among the cases, for the caller's roles (those the caller may decide)."""
    from access.permissions import roles_for

    caller = current()
    require("approvals.list")
    from workflows import search

    out: list[WaitingApproval] = []
    query = f'WorkflowType = "CollectionCase" AND {search.PENDING_APPROVAL.name} = true AND ExecutionStatus = "Running"'
    async for wf in client.list_workflows(query, limit=limit):
        loan_id = wf.id.removeprefix("loan-")
        try:
            st = await client.get_workflow_handle(wf.id).query(CollectionCase.status)
        except RPCError:
            continue
        p = st.pending_approval
        if p is None:
            continue
        use = TWO_PERSON.get(p.kind, "approval.close")
        if not caller.may(use):
            continue
        out.append(
            WaitingApproval(
                loan_id=loan_id,
                kind=p.kind,
                summary=p.summary,
                maker=p.maker.operator_id,
                at=p.at,
                expires_at=p.expires_at,
                approver_roles=list(roles_for(use)),
            )
        )
    if repo is not None and out:
        from access.operators import Operators

        names = await asyncio.to_thread(Operators(repo).names, {w.maker for w in out})
        out = [w.model_copy(update={"maker_name": names.get(w.maker)}) for w in out]
    return out
