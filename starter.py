"""The operator's command line for collection cases.

Examples:
  python starter.py start --loan-id L1001 --borrower-id B77 --principal 12000.00 --interest 640.50 \\
      --fees 30 --due-date 2026-10-15 --timezone Asia/Shanghai
  python starter.py pay L1001 --payment-id BANK-889 --amount 500.00
  python starter.py promise L1001 --amount 2000 --date 2026-12-05
  python starter.py plan L1001 --kind instalments --instalments 6 --first-due 2026-12-15
  python starter.py plan L1001 --kind deferral --until 2027-01-31
  python starter.py plan L1001 --kind interest_waiver --waiver-percent 30 --pay-by 2026-12-20
  python starter.py hold L1001 --kind hardship --until 2027-02-01 --reference "lost job"
  python starter.py release L1001 --kind complaint --reviewer "Wang Li"
  python starter.py outcome L1001 --kind court --outcome judgment --reference "(2026)沪0101民初123号"
  python starter.py status L1001 --json
  python starter.py payments --unapplied

A payment for a loan with no open case is kept in the ledger as unapplied (never dropped);
`payments --unapplied` lists them. Borrower contact details given to `start` go to the
database only, never into Temporal.

Amounts are written in major units with at most the currency's decimals (CNY: 1234.56).
Dates are the borrower's calendar dates, YYYY-MM-DD. Exit codes: 0 done, 1 cannot reach
Temporal or another failure, 2 bad input (nothing was changed).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import sys
from typing import Any

from pydantic import BaseModel, ValidationError
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from domain.errors import InvalidInput
from domain.models import CaseInput, HoldIn, OutcomeIn, PaymentIn, PlanIn, PromiseIn, ReleaseIn, workflow_id
from domain.money import format_amount, parse_amount
from domain.policy import load_policy
from infra.config import settings
from infra.temporal import connect
from workflows.case import CollectionCase


class BadInput(Exception):
    """Bad input: printed as 'error: field: reason', exit code 2, nothing changed."""


def pydantic_error(exc: ValidationError) -> BadInput:
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or "input"
    msg = err["msg"].removeprefix("Value error, ")
    if ": " in msg and field == "input":
        field, msg = msg.split(": ", 1)
    return BadInput(f"{field}: {msg}")


def build(model: type[BaseModel], **fields: Any) -> BaseModel:
    try:
        return model.model_validate({k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        raise pydantic_error(exc) from None


def case_input(a: argparse.Namespace) -> CaseInput:
    try:
        policy = load_policy(a.policy)
        amounts = {f: parse_amount(getattr(a, f), a.currency, f, allow_zero=True) for f in ("principal", "interest", "fees")}
    except InvalidInput as exc:
        raise BadInput(str(exc)) from None
    return build(CaseInput, loan_id=a.loan_id, borrower_id=a.borrower_id, currency=a.currency, due_date=a.due_date,
                 timezone=a.timezone, segment=a.segment, product=a.product, guarantor_id=a.guarantor_id,
                 policy=policy, **amounts)


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


UPDATES = {
    "pay": (CollectionCase.record_payment, PaymentIn),
    "promise": (CollectionCase.promise_to_pay, PromiseIn),
    "plan": (CollectionCase.agree_plan, PlanIn),
    "hold": (CollectionCase.place_hold, HoldIn),
    "release": (CollectionCase.release_hold, ReleaseIn),
    "outcome": (CollectionCase.record_outcome, OutcomeIn),
}
FIELDS = {
    "pay": ("payment_id", "amount", "currency", "paid_at"),
    "promise": ("amount", "date"),
    "plan": ("kind", "until", "instalments", "first_due", "interval_months", "waiver_percent", "pay_by"),
    "hold": ("kind", "until", "reference"),
    "release": ("kind", "reviewer", "resolution"),
    "outcome": ("kind", "outcome", "amount", "date", "reference"),
}


def _rejection(exc: BaseException) -> str | None:
    """The validator's message if an update was rejected as bad input."""
    cause = exc.__cause__ or getattr(exc, "cause", None)
    while cause is not None:
        if isinstance(cause, ApplicationError) and cause.type == "InvalidInput":
            return cause.message
        cause = cause.__cause__ or getattr(cause, "cause", None)
    return None


async def send_update(handle: WorkflowHandle, command: str, fields: dict[str, Any]) -> Any:
    update, model = UPDATES[command]
    arg = build(model, **fields)
    try:
        return await handle.execute_update(update, arg)
    except WorkflowUpdateFailedError as exc:
        msg = _rejection(exc)
        raise BadInput(msg or f"update rejected: {exc.cause or exc}") from None
    except RPCError as exc:
        if exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
            raise BadInput(f"loan: no open case {handle.id} (closed or never started); nothing was changed") from None
        raise


def repo():
    from db.engine import make_engine
    from db.repo import Repo

    return Repo(make_engine())


async def is_open(handle: WorkflowHandle) -> bool:
    """Is the loan's case running? (Raw describe: only the status is needed.)"""
    try:
        desc = await handle._client.workflow_service.describe_workflow_execution(DescribeWorkflowExecutionRequest(
            namespace=handle._client.namespace, execution=WorkflowExecution(workflow_id=handle.id)))
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return desc.workflow_execution_info.status == WorkflowExecutionStatus.RUNNING.value


def record_unapplied(a: argparse.Namespace, fields: dict[str, Any]) -> int:
    """A payment for a loan with no open case: kept in the ledger as unapplied, never dropped."""
    r = repo()
    loan = r.loan(a.loan_id)
    if loan is None:
        raise BadInput(f"loan: {a.loan_id} is unknown (no open case and not in the system of record); nothing recorded")
    fields["currency"] = fields["currency"] or loan.currency
    p = build(PaymentIn, **fields)
    if p.currency != loan.currency:
        raise BadInput(f"currency: {p.currency} does not match the loan's currency {loan.currency}")
    try:
        minor = parse_amount(p.amount, p.currency, "amount")
    except InvalidInput as exc:
        raise BadInput(str(exc)) from None
    written = r.record_payment(payment_id=p.payment_id, loan_id=a.loan_id, workflow_id=None, amount=minor,
                               currency=p.currency, paid_at=p.paid_at or dt.datetime.now(dt.timezone.utc),
                               status="unapplied", note="no open case when received")
    result = {"payment_id": p.payment_id, "status": "unapplied", "recorded": written}
    print(dump(result) if a.json else f"no open case for loan {a.loan_id}: payment {p.payment_id} kept as unapplied"
          + ("" if written else " (already recorded)"))
    return 0


def save_borrower_and_loan(inp: CaseInput, a: argparse.Namespace) -> None:
    r = repo()
    r.upsert_borrower(id=inp.borrower_id, name=a.name, phone=a.phone, email=a.email, address=a.address,
                      id_number=a.id_number, timezone=inp.timezone, language=a.language)
    r.upsert_loan(id=inp.loan_id, borrower_id=inp.borrower_id, guarantor_id=inp.guarantor_id, currency=inp.currency,
                  principal=inp.principal, interest=inp.interest, fees=inp.fees, due_date=inp.due_date,
                  product=inp.product, segment=inp.segment, policy=inp.policy.name)


def dump(obj: Any) -> str:
    if isinstance(obj, BaseModel):
        return obj.model_dump_json(indent=2)
    return json.dumps(obj, indent=2, ensure_ascii=False, default=str)


def show_status(st) -> str:
    lines = [
        f"{st.workflow_id}  {st.status.upper()}  stage={st.stage}" + (f"  outcome={st.outcome}" if st.outcome else ""),
        f"  DPD {st.dpd} ({st.bucket}) · policy {st.policy} {st.policy_version} · segment {st.segment}",
        f"  outstanding {st.currency} {st.outstanding['total']} (principal {st.outstanding['principal']}, "
        f"interest {st.outstanding['interest']}, fees {st.outstanding['fees']}) · paid {st.total_paid}",
        f"  next: {st.next_action.what}" + (f" at {st.next_action.at:%Y-%m-%d %H:%M} UTC" if st.next_action.at else ""),
    ]
    if st.holds:
        lines.append("  holds: " + ", ".join(h.kind for h in st.holds))
    if st.plan:
        lines.append(f"  plan: {st.plan.kind} {st.plan.status}, {len(st.plan.schedule)} payment(s)")
    if st.promise:
        lines.append(f"  promise: {st.promise.status}, due {st.promise.date}")
    if st.contacts:
        lines.append("  contacts: " + ", ".join(f"{k}={v}" for k, v in sorted(st.contacts.items())))
    lines.append("  latest events:")
    lines += [f"    {e.at:%Y-%m-%d %H:%M} {e.kind} {e.detail}" for e in st.events[-8:]]
    return "\n".join(lines)


async def run(a: argparse.Namespace) -> int:
    if a.command == "payments":
        rows = repo().payments(loan_id=a.loan, status="unapplied" if a.unapplied else None)
        items = [{"payment_id": r.payment_id, "loan_id": r.loan_id, "amount": format_amount(r.amount, r.currency),
                  "currency": r.currency, "status": r.status, "paid_at": r.paid_at.isoformat(), "note": r.note} for r in rows]
        if a.json:
            print(dump(items))
        else:
            print(f"{'payment':<20} {'loan':<14} {'amount':>14} {'status':<10} paid at")
            for i in items:
                print(f"{i['payment_id']:<20} {i['loan_id']:<14} {i['currency'] + ' ' + i['amount']:>14} {i['status']:<10} {i['paid_at']}")
            print(f"{len(items)} payment(s)")
        return 0
    if a.command == "start":
        inp = case_input(a)  # validate before connecting
        if a.name:
            save_borrower_and_loan(inp, a)
        client = await connect()
        started = await start_case(client, inp)
        msg = f"started {inp.workflow_id}" if started else f"{inp.workflow_id} is already running; nothing started"
        print(dump({"workflow_id": inp.workflow_id, "started": started}) if a.json else msg)
        return 0
    client = await connect()
    handle = client.get_workflow_handle(workflow_id(a.loan_id))
    if a.command == "status":
        try:
            st = await handle.query(CollectionCase.status)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise BadInput(f"loan: no case for {a.loan_id}") from None
            raise
        print(dump(st) if a.json else show_status(st))
        return 0
    fields = {f: getattr(a, f, None) for f in FIELDS[a.command]}
    if a.command == "pay" and not await is_open(handle):
        return record_unapplied(a, fields)
    if a.command == "pay" and fields["currency"] is None:
        fields["currency"] = (await handle.query(CollectionCase.status)).currency
    result = await send_update(handle, a.command, fields)
    print(dump(result) if a.json else getattr(result, "message", None) or
          f"payment {result.payment_id}: applied {result.applied}{' (duplicate, nothing changed)' if result.duplicate else ''}, "
          f"outstanding {result.outstanding}, case {result.status}" + (f" ({result.outcome})" if result.outcome else ""))
    return 0


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _datetime(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO date-time (2026-11-28T10:15:00+08:00)") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset (add +08:00 or Z)")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="starter.py", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def cmd(name: str, help: str, loan: bool = True) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help, description=help)
        if loan:
            c.add_argument("loan_id", metavar="LOAN_ID", help="the loan's id (the case is loan-LOAN_ID)")
        c.add_argument("--json", action="store_true", help="print the result as JSON")
        return c

    c = cmd("start", "open the collection case of one delinquent loan", loan=False)
    c.add_argument("--loan-id", required=True)
    c.add_argument("--borrower-id", required=True)
    c.add_argument("--guarantor-id")
    c.add_argument("--principal", required=True, help="outstanding principal, e.g. 12000.00")
    c.add_argument("--interest", default="0", help="outstanding interest")
    c.add_argument("--fees", default="0", help="outstanding fees")
    c.add_argument("--currency", default="CNY")
    c.add_argument("--due-date", required=True, type=_date, help="the missed due date, YYYY-MM-DD")
    c.add_argument("--timezone", default="Asia/Shanghai", help="the borrower's IANA time zone")
    c.add_argument("--segment", default="retail")
    c.add_argument("--product", default="personal_loan")
    c.add_argument("--policy", default="default", help="a policy name from policies/ or a path to a .toml file")
    c.add_argument("--name", help="borrower's name (kept in the database only)")
    c.add_argument("--phone", help="borrower's mobile, e.g. 13812345678")
    c.add_argument("--email")
    c.add_argument("--address")
    c.add_argument("--id-number", help="resident identity card number")
    c.add_argument("--language", default="zh", choices=["zh", "en"], help="language of messages and letters")

    c = cmd("pay", "record a payment received from the borrower (idempotent by payment id)")
    c.add_argument("--payment-id", required=True)
    c.add_argument("--amount", required=True)
    c.add_argument("--currency", help="defaults to the loan's currency")
    c.add_argument("--paid-at", type=_datetime, help="when it was paid, ISO date-time with offset")

    c = cmd("promise", "record a promise to pay: pauses the ladder until the date plus grace")
    c.add_argument("--amount", required=True)
    c.add_argument("--date", required=True, type=_date)

    c = cmd("plan", "agree a repayment plan: deferral, instalments or interest waiver")
    c.add_argument("--kind", required=True, choices=["deferral", "instalments", "interest_waiver"])
    c.add_argument("--until", type=_date, help="deferral: new due date for the whole balance")
    c.add_argument("--instalments", type=int, help="instalments: how many")
    c.add_argument("--first-due", type=_date, help="instalments: date of the first")
    c.add_argument("--interval-months", type=int, default=1)
    c.add_argument("--waiver-percent", type=int, default=0, help="share of outstanding interest waived on completion")
    c.add_argument("--pay-by", type=_date, help="interest_waiver: pay the rest by this date")

    kinds = ["dispute", "cease_contact", "hardship", "complaint", "bankruptcy", "deceased"]
    c = cmd("hold", "stop contact: dispute, cease_contact, hardship (with --until), complaint; bankruptcy and deceased close the case")
    c.add_argument("--kind", required=True, choices=kinds)
    c.add_argument("--until", type=_date, help="hardship: end date")
    c.add_argument("--reference", help="ticket or document reference")

    c = cmd("release", "release a hold (a complaint needs --reviewer)")
    c.add_argument("--kind", required=True, choices=kinds)
    c.add_argument("--reviewer")
    c.add_argument("--resolution")

    c = cmd("outcome", "record a call or visit outcome, or a court event")
    c.add_argument("--kind", required=True, choices=["call", "visit", "court"])
    c.add_argument("--outcome", required=True, help="call: answered|no_answer|wrong_number|promise|dispute; "
                   "visit: met_borrower|not_home|refused|moved|promise|dispute; court: lawsuit_filed|"
                   "payment_order_issued|objection_filed|judgment|enforcement_result|enforcement_closed")
    c.add_argument("--amount", help="promise amount, or amount recovered by enforcement")
    c.add_argument("--date", type=_date, help="promise date")
    c.add_argument("--reference")

    cmd("status", "show a case: stage, status, balances, holds, plan, next action, latest events")

    c = cmd("payments", "list the payments ledger (e.g. payments received for loans with no open case)", loan=False)
    c.add_argument("--unapplied", action="store_true", help="only payments that found no open case")
    c.add_argument("--loan", help="only this loan")
    return p


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    try:
        return asyncio.run(run(a))
    except BadInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        if "connect" in str(exc).lower():
            print(f"error: cannot reach Temporal at {settings().temporal_address}: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Leave without interpreter finalisation: the Temporal client's core threads may still call
    # back into Python while it tears down, which aborts the process (seen as exit -6).
    os._exit(code)
