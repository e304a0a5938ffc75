"""Opening cases: validate what opens a case, write the borrower and loan, start the workflow."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass

from pydantic import BaseModel, Field
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from access.permissions import require
from app.errors import EARLIEST_DUE, KEYWORD_RE, LATEST_DUE, POLICY_NAME_RE, BadInput, build, check_date, rejection
from domain.case import Case
from domain.dates import zone
from domain.errors import InvalidInput
from domain.models import CaseInput, PaymentIn, PaymentResult
from domain.money import check_currency, format_amount, parse_amount
from domain.policy import POLICY_DIR, Policy, load_policy
from infra.config import settings
from workflows.case import CollectionCase

_POLICIES: dict[str, Policy] = {}


def dev_stack() -> bool:
    """The local development stack (devstack/stack.py sets COLLECTIONS_DEV_STACK=1 for its children)."""
    return settings().dev_stack


def check_not_demo(policy: Policy, field: str) -> Policy:
    """A demo policy (days compressed, contact at any hour) is refused outside the dev stack when it comes
    from the API or a CSV's segment: a real case sent `segment: "demo"` would otherwise be worked at demo speed."""
    if policy.day_seconds < 86400 and not dev_stack():
        raise BadInput(
            field,
            f"policy {policy.name!r} is a demo policy (a day of {policy.day_seconds}s, contact at "
            "any hour): refused outside the local dev stack",
        )
    return policy


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


def case_input(
    *,
    loan_id: str,
    borrower_id: str,
    principal: str,
    interest: str = "0",
    fees: str = "0",
    currency: str = "CNY",
    due_date: dt.date | str,
    timezone: str = "Asia/Shanghai",
    segment: str = "retail",
    product: str = "personal_loan",
    guarantor_id: str | None = None,
    policy: str | Policy | None = None,
    allow_policy_paths: bool = True,
) -> CaseInput:
    """Validate what opens a case; amounts are decimal strings in major units."""
    try:
        check_currency(currency)
        amounts = {
            f: parse_amount(v, currency, f, allow_zero=True)
            for f, v in (("principal", principal), ("interest", interest), ("fees", fees))
        }
        zone(timezone)
    except InvalidInput as exc:
        raise BadInput(exc.field, exc.reason) from None
    if isinstance(due_date, str):
        due_date = check_date(due_date, "due_date")
    if not EARLIEST_DUE <= due_date <= LATEST_DUE:
        raise BadInput("due_date", f"{due_date.isoformat()} is outside {EARLIEST_DUE}..{LATEST_DUE}")
    if not isinstance(policy, Policy):
        if not isinstance(segment, str) or not KEYWORD_RE.fullmatch(segment):
            raise BadInput("segment", f"{segment!r} is not a segment name (1-32 letters, digits, _ or -)")
        named = policy
        policy = policy_for(segment, policy, allow_paths=allow_policy_paths)
        if not allow_policy_paths:  # the API: the bank's systems, not an operator's explicit choice
            check_not_demo(policy, "policy" if named is not None else "segment")
    return build(
        CaseInput,
        loan_id=loan_id,
        borrower_id=borrower_id,
        currency=currency,
        due_date=due_date,
        timezone=timezone,
        segment=segment,
        product=product,
        guarantor_id=guarantor_id,
        policy=policy,
        **amounts,
    )


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
        repo.upsert_borrower(
            id=inp.borrower_id,
            name=contact.name,
            phone=contact.phone,
            email=contact.email,
            address=contact.address,
            id_number=contact.id_number,
            timezone=inp.timezone,
            language=contact.language,
        )
    repo.upsert_loan(
        id=inp.loan_id,
        borrower_id=inp.borrower_id,
        guarantor_id=inp.guarantor_id,
        currency=inp.currency,
        principal=inp.principal,
        interest=inp.interest,
        fees=inp.fees,
        due_date=inp.due_date,
        product=inp.product,
        segment=inp.segment,
        policy=inp.policy.name,
    )


def _start_options(inp: CaseInput, task_queue: str | None) -> dict:
    """How a case's workflow is started: its id, queue, and the Web UI's summary and details."""
    total = format_amount(inp.principal + inp.interest + inp.fees, inp.currency)
    return dict(
        id=inp.workflow_id,
        task_queue=task_queue or settings().task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        static_summary=f"Loan {inp.loan_id} · opening balance {inp.currency} {total} · policy {inp.policy.name}",
        static_details=f"Opening balance (when the case opened; the current one is in the case's status and the "
        f"OutstandingAmount search attribute): principal {format_amount(inp.principal, inp.currency)}, "
        f"interest {format_amount(inp.interest, inp.currency)}, fees {format_amount(inp.fees, inp.currency)}. "
        f"Borrower {inp.borrower_id}, due {inp.due_date} ({inp.timezone}), segment {inp.segment}, "
        f"product {inp.product}, policy {inp.policy.name} {inp.policy.version}",
    )


async def start_case(client: Client, inp: CaseInput, task_queue: str | None = None) -> bool:
    """Start the case for a loan; False when one is already running (nothing started)."""
    try:
        await client.start_workflow(
            CollectionCase.run, inp, id_conflict_policy=WorkflowIDConflictPolicy.FAIL, **_start_options(inp, task_queue)
        )
    except WorkflowAlreadyStartedError:
        return False
    return True


async def start_with_payment(client: Client, inp: CaseInput, payment: PaymentIn, task_queue: str | None = None) -> PaymentResult:
    """Open the case and apply a payment in one request (update-with-start): both happen, or neither. A case
    already running takes the payment instead (nothing started), and a payment id it knows changes nothing."""
    op = WithStartWorkflowOperation(
        CollectionCase.run, inp, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING, **_start_options(inp, task_queue)
    )
    try:
        return await client.execute_update_with_start_workflow(
            CollectionCase.record_payment, payment, start_workflow_operation=op
        )
    except WorkflowUpdateFailedError as exc:
        raise (rejection(exc) or BadInput("payment", f"update rejected: {exc.cause or exc}")) from None


FROZEN_TERMS = ("borrower_id", "currency", "principal", "due_date")


def frozen_difference(loan, inp: CaseInput) -> tuple[str, str] | None:
    """The first loan term of `inp` that differs from the loan row of a running case, as (field, reason)."""
    for name in FROZEN_TERMS:
        have, want = getattr(loan, name), getattr(inp, name)
        if have != want:
            if name == "principal":
                have, want = format_amount(have, loan.currency), format_amount(want, inp.currency)
            return name, (
                f"{want} differs from {have} of loan {inp.loan_id}, whose case is open: its terms are frozen "
                "while the case runs (contact details change through a contact update); nothing was changed"
            )
    return None


def check_frozen(loan, inp: CaseInput) -> None:
    """A repeated open of a running case must not change the loan's terms (the case runs on those it was opened
    with): the first difference is refused, naming the term."""
    diff = frozen_difference(loan, inp)
    if diff is not None:
        raise BadInput(*diff)


class StartResult(BaseModel):
    workflow_id: str
    started: bool
    message: str
    unapplied_payments: list[str] = Field(
        default=[],
        description="payments kept for this loan while it had no open case; not applied automatically (see apply-unapplied)",
    )
    payment: PaymentResult | None = Field(default=None, description="the payment sent with the opening data, as applied")


async def open_case(
    client: Client,
    repo,
    inp: CaseInput,
    contact: Contact | None,
    task_queue: str | None = None,
    *,
    require_borrower: bool = False,
    payment: PaymentIn | None = None,
) -> StartResult:
    """Write the borrower and loan, then start the case (idempotent).

    Without contact details the borrower must already be in the system of record when
    `require_borrower` (the API: a case nobody can contact helps no one); the command line
    then opens the case without touching the database, as it always has.

    With `payment` (received with the opening data), the case opens and applies it atomically
    (update-with-start); sent again, the same payment id changes nothing.
    """
    require("case.open")
    if payment is not None:
        from app.inputs import with_actor

        payment = with_actor(payment, require("payment.record"))  # type: ignore[assignment]
        if payment.currency != inp.currency:
            raise BadInput("payment.currency", f"{payment.currency} does not match the loan's currency {inp.currency}")
    if contact is None and require_borrower:
        if await asyncio.to_thread(repo.borrower, inp.borrower_id) is None:
            raise BadInput(
                "borrower", f"{inp.borrower_id} is not in the system of record: send the borrower's contact details with the case"
            )
    from app.inputs import open_run

    running = await open_run(client, inp.loan_id) is not None
    frozen = False
    if repo is not None and running:
        loan = await asyncio.to_thread(repo.loan, inp.loan_id)
        if loan is not None:
            check_frozen(loan, inp)
            frozen = True  # the running case's loan and borrower rows stay as they are
    if payment is not None and not running:  # the case's own check first: a payment it would refuse starts nothing
        now = dt.datetime.now(dt.UTC)
        try:
            Case(inp, now).check(payment, now)
        except InvalidInput as exc:
            raise BadInput(f"payment.{exc.field}", exc.reason) from None
    if (contact is not None or require_borrower) and not frozen:
        await asyncio.to_thread(save_borrower_and_loan, repo, inp, contact)
    paid: PaymentResult | None = None
    if payment is None:
        started = await start_case(client, inp, task_queue)
    else:
        paid = await start_with_payment(client, inp, payment, task_queue)
        started = not running
    msg = f"started {inp.workflow_id}" if started else f"{inp.workflow_id} is already running; nothing started"
    if paid is not None:
        dup = " (duplicate, nothing changed)" if paid.duplicate else ""
        msg += f"; payment {paid.payment_id}: applied {paid.applied}{dup}, outstanding {paid.outstanding}"
    if frozen and contact is not None:
        msg += (
            "; its borrower's contact details were not changed (send a contact update for that: "
            "POST /v1/borrowers/{borrower_id}/contact)"
        )
    waiting = await asyncio.to_thread(repo.payments, loan_id=inp.loan_id, status="unapplied") if repo is not None else []
    if waiting:
        msg += (
            f"; the loan has {len(waiting)} unapplied payment(s) ({', '.join(p.payment_id for p in waiting)}): if the "
            f"opening balance does not count them, apply them with `starter.py apply-unapplied {inp.loan_id}`"
        )
    return StartResult(
        workflow_id=inp.workflow_id,
        started=started,
        message=msg,
        unapplied_payments=[p.payment_id for p in waiting],
        payment=paid,
    )
