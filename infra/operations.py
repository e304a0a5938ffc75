"""Case operations shared by the operator's command line (starter.py) and the HTTP API (api/).

One implementation of each thing a person or a bank system does to cases: open a case, send
it an input (payment, promise, plan, hold, release, outcome), read its status, list cases
through Temporal visibility, and import a portfolio from CSV. The CLI and the API only turn
their arguments into calls here and the results into text, JSON or HTTP.

Errors:
- `BadInput(field, reason)`: the input was wrong; nothing was changed. CLI exit 2, HTTP 422.
- `NotFound(field, reason)`: no such loan or case; nothing was changed. CLI exit 2, HTTP 404.
Anything else (Temporal or the database unreachable) propagates: CLI exit 1, HTTP 503/500.
"""

from __future__ import annotations

import asyncio
import codecs
import csv
import datetime as dt
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from domain.case import CLOSED_FIELD, CLOSED_REASON, Case
from domain.dates import zone
from domain.errors import InvalidInput
from domain.models import (
    CLOSING_HOLDS, CaseInput, CaseStatus, CloseIn, HoldIn, OutcomeIn, PaymentIn, PaymentResult, PlanIn, PromiseIn,
    ReleaseIn, ReopenIn, ReversalIn, UpdateResult, WriteOffConfirmIn, workflow_id,
)
from domain.money import check_currency, format_amount, parse_amount
from domain.policy import POLICY_DIR, Policy, load_policy
from infra.config import settings
from workflows import search
from workflows.case import CollectionCase

# --------------------------------------------------------------------------- errors


class BadInput(InvalidInput):
    """Bad input: 'field: reason'; nothing was changed (CLI exit 2, HTTP 422)."""


class NotFound(BadInput):
    """No such loan or case; nothing was changed (CLI exit 2, HTTP 404)."""


class Busy(Exception):
    """The case is open but cannot take input just now (its workflow task is being retried, e.g. after a
    worker crash); nothing was changed; send the same input again (CLI exit 1, HTTP 503)."""


# How long an input waits for a case whose workflow task is being retried before the caller is told to retry.
BUSY_WAIT = (0.2, 0.5, 1.0, 2.0, 3.0)


ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
KEYWORD_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")
POLICY_NAME_RE = re.compile(r"[a-z][a-z0-9_-]{0,63}")
DECIMAL_RE = re.compile(r"[0-9]{1,15}(\.[0-9]{1,6})?")
DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# A due date outside these years is a data error (and would overflow the case's date maths).
EARLIEST_DUE, LATEST_DUE = dt.date(2000, 1, 1), dt.date(2099, 12, 31)


def check_id(value: str, field: str = "loan_id") -> str:
    if not isinstance(value, str) or not ID_RE.fullmatch(value):
        raise BadInput(field, f"{value!r} is not an id (1-64 letters, digits or _.:- starting with a letter or digit)")
    return value


def field_and_reason(errors: list[dict], skip: tuple[str, ...] = ()) -> tuple[str, str]:
    """The first pydantic error as (field, reason), in words an operator reads."""
    err = errors[0]
    loc = [str(p) for p in err.get("loc", ()) if str(p) not in skip]
    name = ".".join(loc) or "input"
    kind = err.get("type", "")
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    if kind == "string_type" and loc and loc[-1] == "amount":
        msg = "must be a decimal string such as '1234.56' (not a JSON number: money is never a float)"
    elif kind == "string_pattern_mismatch" and loc and loc[-1].endswith("_id"):
        msg = f"{err.get('input')!r} is not an id (1-64 letters, digits or _.:- starting with a letter or digit)"
    elif kind == "missing":
        msg = "is required"
    elif kind == "extra_forbidden":
        msg = "is not a known field"
    elif not loc and ": " in msg:  # a model-level check names its field: "principal: the loan owes nothing"
        name, msg = msg.split(": ", 1)
    return name, msg


def build(model: type[BaseModel], **fields: Any) -> Any:
    """Validate fields into a model; a validation error becomes BadInput naming the field."""
    try:
        return model.model_validate({k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        raise BadInput(*field_and_reason(exc.errors())) from None


def _date(text: str, field: str) -> dt.date:
    if not DATE_RE.fullmatch(text):
        raise BadInput(field, f"{text!r} is not a date (YYYY-MM-DD)")
    try:
        value = dt.date.fromisoformat(text)
    except ValueError:
        raise BadInput(field, f"{text!r} is not a date (YYYY-MM-DD)") from None
    return value


# --------------------------------------------------------------------------- opening cases

_POLICIES: dict[str, Policy] = {}


def policy_for(segment: str, policy: str | None = None, *, allow_paths: bool = True) -> Policy:
    """The named policy, or the segment's own (policies/<segment>.toml) if there is one, else `default`."""
    if policy is None:
        name = segment if KEYWORD_RE.fullmatch(segment or "") and (POLICY_DIR / f"{segment}.toml").exists() else "default"
    else:
        name = policy
        if not allow_paths and not POLICY_NAME_RE.fullmatch(name):
            raise BadInput("policy", f"{name!r} is not a policy name (e.g. default)")
    if name not in _POLICIES:
        try:
            _POLICIES[name] = load_policy(name)
        except InvalidInput as exc:
            raise BadInput(exc.field, exc.reason) from None
    return _POLICIES[name]


def case_input(*, loan_id: str, borrower_id: str, principal: str, interest: str = "0", fees: str = "0",
               currency: str = "CNY", due_date: dt.date | str, timezone: str = "Asia/Shanghai",
               segment: str = "retail", product: str = "personal_loan", guarantor_id: str | None = None,
               policy: str | Policy | None = None, allow_policy_paths: bool = True) -> CaseInput:
    """Validate what opens a case; amounts are decimal strings in major units."""
    try:
        check_currency(currency)
        amounts = {f: parse_amount(v, currency, f, allow_zero=True)
                   for f, v in (("principal", principal), ("interest", interest), ("fees", fees))}
        zone(timezone)
    except InvalidInput as exc:
        raise BadInput(exc.field, exc.reason) from None
    if isinstance(due_date, str):
        due_date = _date(due_date, "due_date")
    if not EARLIEST_DUE <= due_date <= LATEST_DUE:
        raise BadInput("due_date", f"{due_date.isoformat()} is outside {EARLIEST_DUE}..{LATEST_DUE}")
    if not isinstance(policy, Policy):
        if not isinstance(segment, str) or not KEYWORD_RE.fullmatch(segment):
            raise BadInput("segment", f"{segment!r} is not a segment name (1-32 letters, digits, _ or -)")
        policy = policy_for(segment, policy, allow_paths=allow_policy_paths)
    return build(CaseInput, loan_id=loan_id, borrower_id=borrower_id, currency=currency, due_date=due_date,
                 timezone=timezone, segment=segment, product=product, guarantor_id=guarantor_id, policy=policy,
                 **amounts)


@dataclass
class Contact:
    """Borrower details: kept in the database only, never in Temporal."""

    name: str
    phone: str | None = None
    email: str | None = None
    address: str | None = None
    id_number: str | None = None
    language: str = "zh"


def save_borrower_and_loan(repo, inp: CaseInput, contact: Contact | None) -> None:
    """The borrower (when given) and the loan, in the system of record (insert or update)."""
    if contact is not None:
        repo.upsert_borrower(id=inp.borrower_id, name=contact.name, phone=contact.phone, email=contact.email,
                             address=contact.address, id_number=contact.id_number, timezone=inp.timezone,
                             language=contact.language)
    repo.upsert_loan(id=inp.loan_id, borrower_id=inp.borrower_id, guarantor_id=inp.guarantor_id, currency=inp.currency,
                     principal=inp.principal, interest=inp.interest, fees=inp.fees, due_date=inp.due_date,
                     product=inp.product, segment=inp.segment, policy=inp.policy.name)


async def start_case(client: Client, inp: CaseInput, task_queue: str | None = None) -> bool:
    """Start the case for a loan; False when one is already running (nothing started)."""
    total = format_amount(inp.principal + inp.interest + inp.fees, inp.currency)
    try:
        await client.start_workflow(
            CollectionCase.run, inp, id=inp.workflow_id, task_queue=task_queue or settings().task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL, id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            static_summary=f"Loan {inp.loan_id} · {inp.currency} {total} · policy {inp.policy.name}",
            static_details=f"Borrower {inp.borrower_id}, due {inp.due_date} ({inp.timezone}), segment {inp.segment}, "
                           f"product {inp.product}, policy {inp.policy.name} {inp.policy.version}",
        )
    except WorkflowAlreadyStartedError:
        return False
    return True


class StartResult(BaseModel):
    workflow_id: str
    started: bool
    message: str
    unapplied_payments: list[str] = Field(default=[], description="payments kept for this loan while it had no open "
                                          "case; not applied automatically (see apply-unapplied)")


async def open_case(client: Client, repo, inp: CaseInput, contact: Contact | None,
                    task_queue: str | None = None, *, require_borrower: bool = False) -> StartResult:
    """Write the borrower and loan, then start the case (idempotent).

    Without contact details the borrower must already be in the system of record when
    `require_borrower` (the API: a case nobody can contact helps no one); the command line
    then opens the case without touching the database, as it always has.
    """
    if contact is None and require_borrower:
        if await asyncio.to_thread(repo.borrower, inp.borrower_id) is None:
            raise BadInput("borrower", f"{inp.borrower_id} is not in the system of record: "
                                       "send the borrower's contact details with the case")
    if contact is not None or require_borrower:
        await asyncio.to_thread(save_borrower_and_loan, repo, inp, contact)
    started = await start_case(client, inp, task_queue)
    msg = f"started {inp.workflow_id}" if started else f"{inp.workflow_id} is already running; nothing started"
    waiting = await asyncio.to_thread(repo.payments, loan_id=inp.loan_id, status="unapplied") if repo is not None else []
    if waiting:
        msg += (f"; the loan has {len(waiting)} unapplied payment(s) ({', '.join(p.payment_id for p in waiting)}): if the "
                f"opening balance does not count them, apply them with `starter.py apply-unapplied {inp.loan_id}`")
    return StartResult(workflow_id=inp.workflow_id, started=started, message=msg,
                       unapplied_payments=[p.payment_id for p in waiting])


# --------------------------------------------------------------------------- inputs to a case

UPDATES: dict[str, tuple[Any, type[BaseModel]]] = {
    "pay": (CollectionCase.record_payment, PaymentIn),
    "promise": (CollectionCase.promise_to_pay, PromiseIn),
    "plan": (CollectionCase.agree_plan, PlanIn),
    "hold": (CollectionCase.place_hold, HoldIn),
    "release": (CollectionCase.release_hold, ReleaseIn),
    "outcome": (CollectionCase.record_outcome, OutcomeIn),
    "reverse": (CollectionCase.reverse_payment, ReversalIn),
    "close": (CollectionCase.close_case, CloseIn),
    "confirm-write-off": (CollectionCase.confirm_write_off, WriteOffConfirmIn),
}


def _causes(exc: BaseException) -> Iterator[BaseException]:
    cause = exc.__cause__ or getattr(exc, "cause", None)
    seen = 0
    while cause is not None and seen < 20:
        yield cause
        cause = cause.__cause__ or getattr(cause, "cause", None)
        seen += 1


def rejection(exc: BaseException) -> BadInput | None:
    """The workflow validator's (or handler's) refusal as BadInput(field, reason), if it was one."""
    for cause in _causes(exc):
        if isinstance(cause, ApplicationError):
            details = cause.details[0] if cause.details else None
            if isinstance(details, dict) and details.get("field") and details.get("reason"):
                return BadInput(str(details["field"]), str(details["reason"]))
            msg = cause.message or str(cause)
            head, sep, tail = msg.partition(": ")
            if sep and head.replace(".", "_").replace("[", "_").replace("]", "").isidentifier():
                return BadInput(head, tail)
            return BadInput("input", msg)
    return None


def closed_refusal(exc: BadInput) -> bool:
    """The case's refusal of any input because it has closed (domain/case.py Case.check_open)."""
    return exc.field == CLOSED_FIELD and exc.reason.startswith(CLOSED_REASON)


def no_open_case(loan_id: str) -> NotFound:
    return NotFound("loan_id", f"no open case for loan {loan_id} (closed or never started); nothing was changed")


async def send_update(client: Client, loan_id: str, command: str, fields: dict[str, Any] | BaseModel) -> Any:
    """Send one input to the loan's open case; the workflow's validator may refuse it (BadInput)."""
    check_id(loan_id)
    update, model = UPDATES[command]
    arg = fields if isinstance(fields, model) else build(model, **dict(fields))
    handle = client.get_workflow_handle(workflow_id(loan_id))
    for pause in (*BUSY_WAIT, None):
        try:
            return await handle.execute_update(update, arg)
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
                raise Busy(f"the case for loan {loan_id} is open but recovering ({exc.message}); nothing was "
                           "changed; send the same input again") from None
            await asyncio.sleep(pause)
    raise AssertionError("unreachable")


async def place_hold(client: Client, repo, loan_id: str, fields: dict[str, Any] | HoldIn) -> Any:
    """A hold on the loan's case. A bankruptcy or death concerns the borrower, not one loan: once the named
    case has taken it, the borrower's other open cases get the same hold at once (each closes).

    Sent again (an answer lost, a timeout half way), it carries on: the named case, already closed by this
    hold, counts as done and the other loans are sent it again. A case not reached (recovering from a crash)
    is named in the answer; it also closes by itself at its next step, when the contact gate meets the hold."""
    hold = fields if isinstance(fields, HoldIn) else build(HoldIn, **dict(fields))
    if hold.kind not in CLOSING_HOLDS:
        return await send_update(client, loan_id, "hold", hold)
    outcome = CLOSING_HOLDS[hold.kind]
    try:
        result = await send_update(client, loan_id, "hold", hold)
    except BadInput as exc:
        if not await _closed_as(client, loan_id, outcome, exc):
            raise
        result = UpdateResult(message=f"the case was already closed as {outcome} (this hold, sent before)",
                              status="closed", outcome=outcome)
    closed, missed = [], []
    for other in await asyncio.to_thread(repo.other_loans, loan_id):
        note = f"recorded on loan {loan_id}" + (f": {hold.reference}" if hold.reference else "")
        try:
            await send_update(client, other, "hold", HoldIn(kind=hold.kind, reference=note[:200]))
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
        message += (f"; not reached yet: {'; '.join(missed)}: send the hold again (or each closes at its next step)")
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
        desc = await client.workflow_service.describe_workflow_execution(DescribeWorkflowExecutionRequest(
            namespace=client.namespace, execution=WorkflowExecution(workflow_id=workflow_id(loan_id))))
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    info = desc.workflow_execution_info
    if info.status != WorkflowExecutionStatus.RUNNING.value:
        return None
    return OpenRun(run_id=info.execution.run_id, started_at=info.start_time.ToDatetime(tzinfo=dt.timezone.utc))


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
                raise BadInput("payment_id", f"{pid} is not an unapplied payment of loan {loan_id} (unapplied: "
                                             f"{', '.join(w.payment_id for w in waiting) or 'none'}); nothing applied")
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
            out.append(_applied(loan_id, amount, r.currency, await send_update(client, loan_id, "pay", p)))
        except BadInput as exc:
            if isinstance(exc, NotFound):
                raise
            out.append(PaymentOutcome(payment_id=r.payment_id, loan_id=loan_id, status="unapplied", duplicate=False,
                                      amount=amount, currency=r.currency,
                                      message=f"payment {r.payment_id} refused by the case ({exc}); still unapplied"))
    return out


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.timezone.utc)


def _payment_row(repo, payment_id: str):
    from db.tables import PaymentRow

    with repo.session() as s:
        return s.get(PaymentRow, payment_id)


def _applied(loan_id: str, amount: str, currency: str, r: PaymentResult) -> PaymentOutcome:
    msg = (f"payment {r.payment_id}: applied {r.applied}{' (duplicate, nothing changed)' if r.duplicate else ''}, "
           f"outstanding {r.outstanding}, case {r.status}" + (f" ({r.outcome})" if r.outcome else ""))
    return PaymentOutcome(payment_id=r.payment_id, loan_id=loan_id, status="applied", duplicate=r.duplicate,
                          amount=amount, currency=currency, applied=r.applied, allocation=r.allocation,
                          outstanding=r.outstanding, case_status=r.status, case_outcome=r.outcome, message=msg)


async def record_payment(client: Client, repo, loan_id: str, *, payment_id: str, amount: str,
                         currency: str | None = None, paid_at: dt.datetime | None = None) -> PaymentOutcome:
    """A payment notification, idempotent by payment id.

    Applied to the loan's open case; for a loan with no open case it is kept in the ledger as
    unapplied (never dropped). A payment id already in the ledger changes nothing.
    """
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

    known = await asyncio.to_thread(_payment_row, repo, p.payment_id)
    if known is not None:
        if known.loan_id != loan_id:
            raise BadInput("payment_id", f"{p.payment_id} was already recorded for another loan; payment ids are unique")
        if known.amount != minor or known.currency != p.currency:
            raise BadInput("payment_id", f"{p.payment_id} was already recorded with amount {known.currency} "
                           f"{format_amount(known.amount, known.currency)}; a payment id cannot be reused")
        if known.status == "unapplied" or run is None or known.recorded_at < run.started_at:
            status = "unapplied" if known.status == "unapplied" else "applied"
            return PaymentOutcome(
                payment_id=p.payment_id, loan_id=loan_id, status=status, duplicate=True,
                amount=format_amount(minor, p.currency), currency=p.currency,
                message=(f"no open case for loan {loan_id}: payment {p.payment_id} kept as unapplied (already recorded)"
                         if status == "unapplied" else
                         f"payment {p.payment_id} was already applied (duplicate, nothing changed)"))
    if run is not None:
        try:
            result = await send_update(client, loan_id, "pay", p)
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
    written = await asyncio.to_thread(
        repo.record_payment, payment_id=p.payment_id, loan_id=loan_id, workflow_id=None, amount=minor,
        currency=p.currency, paid_at=p.paid_at or dt.datetime.now(dt.timezone.utc), status="unapplied",
        note="no open case when received")
    return PaymentOutcome(
        payment_id=p.payment_id, loan_id=loan_id, status="unapplied", duplicate=not written,
        amount=format_amount(minor, p.currency), currency=p.currency,
        message=f"no open case for loan {loan_id}: payment {p.payment_id} kept as unapplied"
                + ("" if written else " (already recorded)"))


async def case_status(client: Client, loan_id: str) -> CaseStatus:
    check_id(loan_id)
    try:
        return await client.get_workflow_handle(workflow_id(loan_id)).query(CollectionCase.status)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise NotFound("loan_id", f"no case for loan {loan_id}") from None
        raise


def payments(repo, loan_id: str | None = None, unapplied: bool = False) -> list[dict[str, Any]]:
    if loan_id is not None:
        check_id(loan_id)
    rows = repo.payments(loan_id=loan_id, status="unapplied" if unapplied else None)
    return [{"payment_id": r.payment_id, "loan_id": r.loan_id, "amount": format_amount(r.amount, r.currency),
             "currency": r.currency, "status": r.status, "paid_at": r.paid_at.isoformat(), "note": r.note} for r in rows]


# --------------------------------------------------------------------------- lists (visibility)

class CaseSummary(BaseModel):
    """One case as Temporal visibility sees it (its search attributes)."""

    workflow_id: str
    loan_id: str
    run_id: str
    execution: str = Field(description="the workflow's own state: Running, Completed, Terminated, ...")
    stage: str | None
    status: str | None = Field(description="active, paused or closed")
    on_hold: bool | None
    outstanding: str | None = Field(description="outstanding amount in major units (OutstandingAmount)")
    next_action_at: dt.datetime | None
    delinquent_since: dt.datetime | None
    policy: str | None
    segment: str | None
    started_at: dt.datetime | None


STATUSES = ("active", "paused", "closed")


def visibility_query(*, stage: str | None = None, status: str | None = None, on_hold: bool | None = None,
                     min_amount: str | None = None, segment: str | None = None, policy: str | None = None,
                     query: str | None = None) -> str:
    """A Temporal visibility query over collection cases from the filters (all ANDed)."""
    parts = ['WorkflowType = "CollectionCase"']
    if stage is not None:
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", stage):
            raise BadInput("stage", f"{stage!r} is not a stage name (e.g. first_call, litigation)")
        parts.append(f'{search.STAGE.name} = "{stage}"')
    if status is not None:
        if status not in STATUSES:
            raise BadInput("status", f"{status!r} is not one of {', '.join(STATUSES)}")
        parts.append(f'{search.STATUS.name} = "{status}"')
    if on_hold is not None:
        parts.append(f"{search.ON_HOLD.name} = {'true' if on_hold else 'false'}")
    if min_amount is not None:
        if not isinstance(min_amount, str) or not DECIMAL_RE.fullmatch(min_amount.strip()):
            raise BadInput("min_amount", f"{min_amount!r} is not a plain decimal amount (e.g. 10000 or 2500.50)")
        parts.append(f"{search.OUTSTANDING.name} >= {min_amount.strip()}")
    for name, value, key in (("segment", segment, search.SEGMENT), ("policy", policy, search.POLICY)):
        if value is not None:
            if not KEYWORD_RE.fullmatch(value):
                raise BadInput(name, f"{value!r} is not a {name} name (1-32 letters, digits, _ or -)")
            parts.append(f'{key.name} = "{value}"')
    if query is not None:
        q = query.strip()
        if not q:
            raise BadInput("query", "is empty")
        if len(q) > 2000 or any(ord(c) < 32 for c in q):
            raise BadInput("query", "must be one line of at most 2000 characters")
        parts.append(f"({q})")
    return " AND ".join(parts)


async def list_cases(client: Client, query: str, limit: int = 100) -> list[CaseSummary]:
    if not 1 <= limit <= 10_000:
        raise BadInput("limit", f"{limit} is not between 1 and 10000")
    out: list[CaseSummary] = []
    try:
        async for wf in client.list_workflows(query, limit=limit, page_size=min(limit, 1000)):
            sa = wf.typed_search_attributes
            amount = sa.get(search.OUTSTANDING)
            out.append(CaseSummary(
                workflow_id=wf.id, loan_id=wf.id.removeprefix("loan-"), run_id=wf.run_id,
                execution=wf.status.name.title() if wf.status else "Unknown",
                stage=sa.get(search.STAGE), status=sa.get(search.STATUS), on_hold=sa.get(search.ON_HOLD),
                outstanding=None if amount is None else f"{amount:.2f}",
                next_action_at=sa.get(search.NEXT_ACTION_AT), delinquent_since=sa.get(search.DELINQUENT_SINCE),
                policy=sa.get(search.POLICY), segment=sa.get(search.SEGMENT), started_at=wf.start_time,
            ))
    except RPCError as exc:
        if exc.status == RPCStatusCode.INVALID_ARGUMENT:
            raise BadInput("query", f"Temporal refused the query: {exc.message} (the query was: {query})") from None
        raise
    return out


# --------------------------------------------------------------------------- import from CSV

COLUMNS = ("loan_id", "borrower_id", "name", "phone", "email", "address", "timezone", "currency",
           "principal", "interest", "fees", "due_date", "product", "segment")
PHONE_RE = re.compile(r"\+?[0-9][0-9 ()-]{4,30}")
EMAIL_RE = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


class Rejection(BaseModel):
    line: int = Field(description="line of the file (the header is line 1)")
    column: str | None
    reason: str
    loan_id: str | None = None

    def __str__(self) -> str:
        return f"line {self.line}: " + (f"{self.column}: " if self.column else "") + self.reason


class ImportSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")
    file: str
    dry_run: bool = False
    rows: int = Field(0, description="data rows read")
    started: int = 0
    already_running: int = 0
    valid: int = Field(0, description="rows that passed validation (a dry run starts nothing)")
    rejected: int = Field(0, description="rows rejected (bad data); the others were still imported")
    failed: int = Field(0, description="valid rows whose case could not be started (Temporal error); rerun")
    seconds: float = 0.0
    rows_per_second: float = 0.0
    rejections: list[Rejection] = []
    rejections_not_listed: int = Field(0, description="rejections beyond the first 10,000, counted only")


MAX_LISTED_REJECTIONS = 10_000


@dataclass
class ImportRow:
    line: int
    inp: CaseInput
    contact: Contact
    product: str


class _Lines:
    """Decodes a binary file line by line as UTF-8 (a BOM is dropped), remembering bad lines.

    Splitting on b'\\n' is safe for UTF-8 (no multi-byte sequence contains it), so a bad byte is
    pinned to its line; the line is passed on with U+FFFD so that the csv reader stays in step.
    """

    def __init__(self, f) -> None:
        self.f = f
        self.n = 0
        self.bad: dict[int, str] = {}

    def __iter__(self) -> Iterator[str]:
        for raw in self.f:
            self.n += 1
            if self.n == 1:
                raw = raw.removeprefix(codecs.BOM_UTF8)
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                self.bad[self.n] = f"byte 0x{raw[exc.start]:02x} at position {exc.start + 1}"
                yield raw.decode("utf-8", "replace")


def _check_header(header: list[str]) -> dict[str, int]:
    names = [h.strip().lower() for h in header]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise BadInput("header", f"column(s) {', '.join(dupes)} appear more than once")
    missing = [c for c in COLUMNS if c not in names]
    unknown = [n for n in names if n not in COLUMNS]
    if missing or unknown:
        reason = "; ".join(x for x in (f"missing column(s): {', '.join(missing)}" if missing else "",
                                       f"unknown column(s): {', '.join(unknown)}" if unknown else "") if x)
        raise BadInput("header", f"{reason} (expected: {', '.join(COLUMNS)})")
    return {n: i for i, n in enumerate(names)}


class _PolicyChooser:
    def __init__(self, policy: str | None) -> None:
        self.fixed = policy_for("retail", policy) if policy is not None else None
        self.by_segment: dict[str, Policy | BadInput] = {}

    def __call__(self, segment: str) -> Policy:
        if self.fixed is not None:
            return self.fixed
        if segment not in self.by_segment:
            try:
                self.by_segment[segment] = policy_for(segment)
            except BadInput as exc:
                self.by_segment[segment] = BadInput("segment", f"its policy cannot be loaded: {exc}")
        found = self.by_segment[segment]
        if isinstance(found, BadInput):
            raise found
        return found


def _validate_row(line: int, v: dict[str, str], choose: _PolicyChooser) -> ImportRow | list[Rejection]:
    errors: list[tuple[str, str]] = []

    def bad(col: str, reason: str) -> None:
        errors.append((col, reason))

    for col in ("loan_id", "borrower_id"):
        if not v[col]:
            bad(col, "is empty")
        elif not ID_RE.fullmatch(v[col]):
            bad(col, f"{v[col]!r} is not an id (1-64 letters, digits or _.:- starting with a letter or digit)")
    for col, limit, required in (("name", 200, True), ("address", 500, False)):
        if not v[col]:
            if required:
                bad(col, "is empty")
        elif len(v[col]) > limit:
            bad(col, f"is longer than {limit} characters")
        elif CONTROL_RE.search(v[col]):
            bad(col, "contains a control character")
    if v["phone"] and (len(v["phone"]) > 32 or not PHONE_RE.fullmatch(v["phone"])):
        bad("phone", f"{v['phone']!r} is not a phone number (digits, optional leading +)")
    if v["email"] and (len(v["email"]) > 254 or not EMAIL_RE.fullmatch(v["email"])):
        bad("email", f"{v['email']!r} is not an email address")
    if not v["timezone"]:
        bad("timezone", "is empty")
    else:
        try:
            zone(v["timezone"])
        except InvalidInput as exc:
            bad("timezone", exc.reason)
    currency_ok = False
    if not v["currency"]:
        bad("currency", "is empty")
    else:
        try:
            check_currency(v["currency"])
            currency_ok = True
        except InvalidInput as exc:
            bad("currency", exc.reason)
    amounts: dict[str, int] = {}
    for col in ("principal", "interest", "fees"):
        text = v[col] or ("" if col == "principal" else "0")
        if currency_ok:
            try:
                amounts[col] = parse_amount(text, v["currency"], col, allow_zero=True)
            except InvalidInput as exc:
                bad(col, exc.reason)
    if len(amounts) == 3 and sum(amounts.values()) <= 0:
        bad("principal", "the loan owes nothing (principal + interest + fees must be above zero)")
    due = None
    if not v["due_date"]:
        bad("due_date", "is empty")
    else:
        try:
            due = _date(v["due_date"], "due_date")
            if not EARLIEST_DUE <= due <= LATEST_DUE:
                bad("due_date", f"{due.isoformat()} is outside {EARLIEST_DUE}..{LATEST_DUE}")
        except BadInput as exc:
            bad("due_date", exc.reason)
    product = v["product"] or "personal_loan"
    segment = v["segment"] or "retail"
    for col, value in (("product", product), ("segment", segment)):
        if not KEYWORD_RE.fullmatch(value):
            bad(col, f"{value!r} is not a {col} name (1-32 letters, digits, _ or -)")
    policy = None
    if not errors:
        try:
            policy = choose(segment)
        except BadInput as exc:
            bad(exc.field, exc.reason)
    loan_id = v["loan_id"] or None
    if errors:
        return [Rejection(line=line, column=c, reason=r, loan_id=loan_id) for c, r in errors]
    try:
        inp = CaseInput(loan_id=v["loan_id"], borrower_id=v["borrower_id"], currency=v["currency"], due_date=due,
                        timezone=v["timezone"], segment=segment, product=product, policy=policy, **amounts)
    except ValidationError as exc:
        col, reason = field_and_reason(exc.errors())
        return [Rejection(line=line, column=col, reason=reason, loan_id=loan_id)]
    contact = Contact(name=v["name"], phone=v["phone"] or None, email=v["email"] or None, address=v["address"] or None)
    return ImportRow(line=line, inp=inp, contact=contact, product=product)


def read_portfolio(path: str | Path, policy: str | None = None) -> Iterator[ImportRow | list[Rejection]]:
    """Stream a portfolio CSV: one validated ImportRow, or the row's rejections, per data row.

    Reads the file row by row and never holds it whole. A missing or unreadable file, a bad
    header or an unknown --policy raise BadInput before anything is yielded. A loan id seen
    before in the file is rejected (the first occurrence wins).
    """
    choose = _PolicyChooser(policy)
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed in the generator's finally
    except FileNotFoundError:
        raise BadInput("file", f"{path}: no such file") from None
    except OSError as exc:
        raise BadInput("file", f"{path}: cannot be read ({exc.strerror or exc})") from None
    lines = _Lines(f)
    reader = csv.reader(lines)
    try:
        try:
            header = next(reader)
        except StopIteration:
            raise BadInput("file", f"{path}: is empty (a header row is needed: {', '.join(COLUMNS)})") from None
        except csv.Error as exc:
            raise BadInput("header", f"line 1: {exc}") from None
        if 1 in lines.bad:
            raise BadInput("header", f"line 1: not valid UTF-8 ({lines.bad[1]}); save the file as UTF-8")
        index = _check_header(header)
    except BaseException:
        f.close()
        raise
    return _rows(f, lines, reader, index, choose)


def _rows(f, lines: _Lines, reader, index: dict[str, int], choose: _PolicyChooser) -> Iterator[ImportRow | list[Rejection]]:
    seen: dict[str, int] = {}
    width = len(index)
    try:
        last = reader.line_num
        while True:
            try:
                record = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                start, last = last + 1, reader.line_num
                yield [Rejection(line=start, column=None, reason=f"not a CSV row: {exc}")]
                continue
            start, last = last + 1, reader.line_num
            bad = [lines.bad.pop(n) for n in range(start, last + 1) if n in lines.bad]
            if not record or (len(record) == 1 and not record[0].strip()):
                continue  # a blank line
            if bad:
                col = next((c for c in index if index[c] < len(record) and "\ufffd" in record[index[c]]), None)
                yield [Rejection(line=start, column=col, reason=f"not valid UTF-8 ({bad[0]}); save the file as UTF-8")]
                continue
            if len(record) != width:
                yield [Rejection(line=start, column=None,
                                 reason=f"has {len(record)} fields but the header has {width}")]
                continue
            values = {c: record[i].strip() for c, i in index.items()}
            result = _validate_row(start, values, choose)
            if isinstance(result, ImportRow):
                first = seen.get(result.inp.loan_id)
                if first is not None:
                    yield [Rejection(line=start, column="loan_id", loan_id=result.inp.loan_id,
                                     reason=f"{result.inp.loan_id} already appears on line {first}; each loan once")]
                    continue
                seen[result.inp.loan_id] = start
            yield result
    finally:
        f.close()


def count_rows(path: str | Path) -> int:
    """A quick upper bound on the data rows (for a progress bar): newlines, streamed."""
    n = 0
    last = b"\n"
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            n += chunk.count(b"\n")
            last = chunk[-1:]
    return max(0, n - 1 + (last != b"\n"))


def _upsert(repo, batch: list[ImportRow]) -> None:
    """Borrowers and loans of a batch in one transaction (insert, or update what the file says)."""
    from sqlalchemy.dialects import postgresql, sqlite

    from db.tables import BorrowerRow, LoanRow, utcnow

    now = utcnow()
    borrowers: dict[str, dict[str, Any]] = {}
    for r in batch:
        c = r.contact
        borrowers[r.inp.borrower_id] = dict(id=r.inp.borrower_id, name=c.name, phone=c.phone, email=c.email,
                                            address=c.address, timezone=r.inp.timezone, updated_at=now)
    loans = [dict(id=r.inp.loan_id, borrower_id=r.inp.borrower_id, guarantor_id=None, currency=r.inp.currency,
                  principal=r.inp.principal, interest=r.inp.interest, fees=r.inp.fees, due_date=r.inp.due_date,
                  product=r.inp.product, segment=r.inp.segment, policy=r.inp.policy.name, updated_at=now)
             for r in batch]
    with repo.session() as s:
        dialect = postgresql if s.bind.dialect.name == "postgresql" else sqlite
        b = dialect.insert(BorrowerRow.__table__)
        s.execute(b.on_conflict_do_update(index_elements=["id"], set_={k: b.excluded[k] for k in
                  ("name", "phone", "email", "address", "timezone", "updated_at")}),
                  [{**row, "created_at": now, "language": "zh", "id_number": None} for row in borrowers.values()])
        ln = dialect.insert(LoanRow.__table__)
        s.execute(ln.on_conflict_do_update(index_elements=["id"], set_={k: ln.excluded[k] for k in
                  ("borrower_id", "currency", "principal", "interest", "fees", "due_date", "product", "segment",
                   "policy", "updated_at")}),
                  [{**row, "created_at": now} for row in loans])
        s.commit()


async def import_portfolio(client: Client | None, repo, path: str | Path, *, policy: str | None = None,
                           task_queue: str | None = None, concurrency: int = 50, batch_size: int = 200,
                           dry_run: bool = False, progress: Callable[[int], None] | None = None) -> ImportSummary:
    """Import a portfolio CSV: upsert borrowers and loans, start one case per loan (idempotent).

    Streams the file; at most `batch_size` rows wait for the database and `concurrency` case
    starts are in flight. Rejected rows are reported and the good ones still imported. A dry
    run validates the whole file and changes nothing. `progress(n)` is called as rows finish.
    """
    if not 1 <= concurrency <= 500:
        raise BadInput("concurrency", f"{concurrency} is not between 1 and 500")
    rows = read_portfolio(path, policy)  # header, file and policy errors raise here, before any change
    summary = ImportSummary(file=str(path), dry_run=dry_run)
    started_at = time.perf_counter()
    tick = progress or (lambda n: None)

    def reject(rs: list[Rejection]) -> None:
        summary.rejected += 1
        for r in rs:
            if len(summary.rejections) < MAX_LISTED_REJECTIONS:
                summary.rejections.append(r)
            else:
                summary.rejections_not_listed += 1
        tick(1)

    queue: asyncio.Queue[ImportRow | None] = asyncio.Queue(maxsize=concurrency * 2)

    async def starter() -> None:
        while (row := await queue.get()) is not None:
            try:
                if await start_case(client, row.inp, task_queue):
                    summary.started += 1
                else:
                    summary.already_running += 1
            except Exception as exc:  # noqa: BLE001 - reported per row; the import goes on
                summary.failed += 1
                reject_reason = f"case not started: {getattr(exc, 'message', None) or exc}"
                if len(summary.rejections) < MAX_LISTED_REJECTIONS:
                    summary.rejections.append(Rejection(line=row.line, column=None, reason=reject_reason,
                                                        loan_id=row.inp.loan_id))
            tick(1)

    workers = [] if dry_run else [asyncio.create_task(starter()) for _ in range(concurrency)]
    batch: list[ImportRow] = []

    async def flush() -> None:
        if batch:
            await asyncio.to_thread(_upsert, repo, list(batch))
            for r in batch:
                await queue.put(r)
            batch.clear()

    try:
        for n, item in enumerate(rows, 1):
            summary.rows += 1
            if isinstance(item, list):
                reject(item)
                continue
            summary.valid += 1
            if dry_run:
                tick(1)
                continue
            batch.append(item)
            if len(batch) >= batch_size:
                await flush()
            elif n % 500 == 0:
                await asyncio.sleep(0)  # let the starters run while a batch fills
        await flush()
        for _ in workers:
            await queue.put(None)
        await asyncio.gather(*workers)
    finally:
        for w in workers:
            w.cancel()
        rows.close()
    summary.rejections.sort(key=lambda r: r.line)
    summary.seconds = round(time.perf_counter() - started_at, 3)
    summary.rows_per_second = round(summary.rows / summary.seconds, 1) if summary.seconds else 0.0
    return summary


# --------------------------------------------------------------------------- payment reversal
# (a separate use case here until the application layer moves out of infra/; it moves with the rest)

class ReversalOutcome(BaseModel):
    loan_id: str
    payment_id: str
    reopened: bool = Field(description="the case had closed as paid; a new run of it opened for the reversal")
    previous_run_id: str | None = None
    status: Literal["active", "paused", "closed"]
    outstanding: str
    message: str


async def reverse_payment(client: Client, loan_id: str, *, payment_id: str, reason: str,
                          at: dt.datetime | None = None, task_queue: str | None = None) -> ReversalOutcome:
    """Take back a payment (a returned transfer, a failed debit) by its payment id, with a reason.

    The loan's open case takes it as an update (its validator refuses an unknown id, a payment already reversed,
    a missing reason). A case closed as paid (or settled, recovered) by it opens again: a new run of the same
    workflow id starts from the closed run's state, carrying that run's id, and applies the reversal first.
    A case closed otherwise (bankrupt, deceased, an operator's closure) is not reopened: refused, nothing changed."""
    check_id(loan_id)
    check_id(payment_id, "payment_id")
    r: ReversalIn = build(ReversalIn, payment_id=payment_id, reason=reason, at=at)
    if not r.reason.strip():
        raise BadInput("reason", "is required: why the payment was taken back (returned transfer, failed debit, ...)")
    if await open_run(client, loan_id) is not None:
        try:
            result = await send_update(client, loan_id, "reverse", r)
        except BadInput as exc:
            if not (closed_refusal(exc) and "reopens it" in exc.reason):
                raise
            # closed as paid while we asked; its run is finishing: reopen it as below
        else:
            status = await case_status(client, loan_id)
            return ReversalOutcome(loan_id=loan_id, payment_id=payment_id, reopened=False, status=result.status,
                                   outstanding=status.outstanding["total"], message=result.message)
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
        Case(snap, dt.datetime.now(dt.timezone.utc)).check_reversal(r, dt.datetime.now(dt.timezone.utc), reopening=True)
    except InvalidInput as exc:
        raise BadInput(exc.field, exc.reason) from None
    reopened = snap.model_copy(update={"reopen": ReopenIn(previous_run_id=desc.run_id, reversal=r)})
    try:
        new = await client.start_workflow(
            CollectionCase.run, reopened, id=reopened.workflow_id, task_queue=task_queue or settings().task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL, id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            static_summary=f"Loan {loan_id} · reopened: payment {payment_id} reversed",
            static_details=f"reopened from run {desc.run_id} ({snap.state.outcome if snap.state else '?'}): "
                           f"payment {payment_id} reversed: {r.reason}",
        )
    except WorkflowAlreadyStartedError:
        return await reverse_payment(client, loan_id, payment_id=payment_id, reason=reason, at=at, task_queue=task_queue)
    for pause in (*BUSY_WAIT, None):  # the new run answers queries once its first workflow task is done
        try:
            st = await new.query(CollectionCase.status)
            break
        except RPCError as exc:
            if pause is None or exc.status != RPCStatusCode.FAILED_PRECONDITION:
                raise
            await asyncio.sleep(pause)
    return ReversalOutcome(loan_id=loan_id, payment_id=payment_id, reopened=True, previous_run_id=desc.run_id,
                           status=st.status, outstanding=st.outstanding["total"],
                           message=f"payment {payment_id} reversed; the case had closed as "
                                   f"{snap.state.outcome if snap.state else '?'} and is open again (run {new.result_run_id},"
                                   f" reopened from {desc.run_id}); outstanding {st.outstanding['total']}")
