"""Load a demo portfolio into a running local stack (`python -m devstack.stack start` first).

    python -m devstack.demo                  # 40 loans on the `demo` policy, then a few updates
    python -m devstack.demo --no-wait        # skip waiting for a lawsuit to record a judgment

Due dates lie in the past so that cases open at every stage of the ladder; the demo policy
runs a policy day in a few seconds, so they keep moving while you watch the Web UI. After the
first steps have run, some cases get a payment, a promise, a plan, a hold or a judgment.
Idempotent: loans already loaded are left alone (their workflow ids are fixed), and updates
go only to cases this run started.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from domain import calendar
from domain.calendar import missing_warning
from domain.dates import local_date
from domain.models import CaseInput, CaseStatus, HoldIn, OutcomeIn, PaymentIn, PlanIn, PromiseIn
from domain.money import format_amount
from domain.policy import Policy, load_policy
from infra.config import StackSettings, load, settings
from infra.temporal import connect
from workflows.case import CollectionCase

SEGMENTS = ["retail", "retail", "sme", "student"]
ZONES = ["Asia/Shanghai", "Asia/Shanghai", "Asia/Hong_Kong", "Asia/Urumqi"]
PREFIX = "DEMO-"
CURRENCY = "CNY"
UPDATE_TIMEOUT = 30.0


def say(msg: str = "") -> None:
    print(msg, flush=True)


def dpds(policy: Policy, count: int = 40) -> list[int]:
    """Days past due at which the demo cases open: at and just after every step, and between."""
    steps = sorted({s.dpd for s in policy.steps})
    chosen: set[int] = set()
    for d in steps:
        chosen |= {d, d + 1}
    for a, b in zip(steps, steps[1:], strict=False):
        chosen.add((a + b) // 2)
    last, end = steps[-1], policy.write_off_dpd
    extra = [last + (end - last) * k // 6 for k in range(1, 6)] + [end - 2]  # late cases, one about to be written off
    chosen |= {d for d in extra if 0 < d < end}
    fill = 2
    while len(chosen) < count:
        chosen.add(fill)
        fill += 3
    return sorted(chosen)[:count]


def amount(minor: int) -> str:
    return format_amount(minor, CURRENCY)


def pretty(minor: int) -> str:
    return f"{Decimal(minor).scaleb(-2):,.2f}"


def portfolio(policy: Policy, now: datetime, count: int = 40) -> list[CaseInput]:
    cases = []
    for i, dpd in enumerate(dpds(policy, count), start=1):
        rng = random.Random(f"demo-loan-{i}")
        segment = SEGMENTS[i % len(SEGMENTS)]
        tz = ZONES[(i * 7) % len(ZONES)]
        low, high = {"retail": (5_000, 80_000), "sme": (50_000, 500_000), "student": (2_000, 30_000)}[segment]
        principal = rng.randrange(low, high) * 100 + rng.choice([0, 0, 50, 88])
        interest = principal * rng.randrange(3, 12) // 100
        fees = rng.choice([0, 5_000, 15_000, 30_000, 50_000])
        loan_id = f"{PREFIX}{i:04d}"
        cases.append(
            CaseInput(
                loan_id=loan_id,
                borrower_id=f"BOR-{i:04d}",
                currency=CURRENCY,
                principal=principal,
                interest=interest,
                fees=fees,
                due_date=local_date(now, tz) - timedelta(days=dpd),
                timezone=tz,
                segment=segment,
                policy=policy,
            )
        )
    return cases


def seed_records(cases: list[CaseInput], repo: Any = None) -> str:
    """Borrowers and loans into the system of record (activities read contact details there).

    Synthetic people only: reserved example.com addresses, 1380000xxxx numbers. Loans already
    recorded are left as they are. Skipped when the project has no database layer.
    """
    try:
        from db.engine import make_engine
        from db.repo import Repo
    except ImportError:
        return "no database layer in this checkout; borrowers not recorded"
    try:
        repo = repo or Repo(make_engine())
        added = 0
        for i, c in enumerate(cases, start=1):
            if repo.loan(c.loan_id) is not None:
                continue
            repo.upsert_borrower(
                id=c.borrower_id,
                name=f"演示借款人{i:02d}",
                phone=f"1380000{i:04d}",
                email=f"borrower{i:02d}@example.com",
                address=f"演示市演示路{i}号",
                timezone=c.timezone,
                language="zh",
            )
            repo.upsert_loan(
                id=c.loan_id,
                borrower_id=c.borrower_id,
                currency=c.currency,
                principal=c.principal,
                interest=c.interest,
                fees=c.fees,
                due_date=c.due_date,
                product=c.product,
                segment=c.segment,
                policy=c.policy.name,
            )
            added += 1
        return f"{added} borrower(s) and loan(s) recorded, {len(cases) - added} already there"
    except Exception as exc:  # the demo goes on: the cases run, their contacts fail
        return f"could not record borrowers and loans ({exc.__class__.__name__}: {str(exc)[:200]})"


async def start_all(client: Client, cases: list[CaseInput]) -> tuple[dict[str, WorkflowHandle], set[str]]:
    """Start every case; the ids already taken (running or closed) are left as they are."""
    queue = settings().task_queue

    async def start(inp: CaseInput) -> tuple[WorkflowHandle, bool]:
        total = inp.principal + inp.interest + inp.fees
        try:
            handle = await client.start_workflow(
                CollectionCase.run,
                inp,
                id=inp.workflow_id,
                task_queue=queue,
                static_summary=f"Loan {inp.loan_id} · CNY {pretty(total)} · demo policy",
                static_details=f"Segment {inp.segment}, due {inp.due_date} ({inp.timezone}); demo portfolio (devstack/demo.py)",
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
            return handle, True
        except WorkflowAlreadyStartedError:
            return client.get_workflow_handle(inp.workflow_id), False

    results = await asyncio.gather(*(start(c) for c in cases))
    handles = {c.loan_id: h for c, (h, _) in zip(cases, results, strict=False)}
    new = {c.loan_id for c, (_, started) in zip(cases, results, strict=False) if started}
    return handles, new


async def worker_polling(client: Client) -> bool:
    resp = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=settings().task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    return bool(resp.pollers)


async def status_of(handle: WorkflowHandle) -> CaseStatus | None:
    try:
        return await asyncio.wait_for(handle.query(CollectionCase.status), timeout=15)
    except Exception:
        return None


async def statuses(handles: dict[str, WorkflowHandle]) -> dict[str, CaseStatus | None]:
    got = await asyncio.gather(*(status_of(h) for h in handles.values()))
    return dict(zip(handles, got, strict=False))


async def wait_first_steps(handles: dict[str, WorkflowHandle], limit: float = 20.0) -> None:
    """Until every case has run its first step (or `limit` seconds)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        st = await statuses(handles)
        if all(s is not None and s.steps_done for s in st.values()):
            return
        await asyncio.sleep(1)


@dataclass
class Outcome:
    loan_id: str
    what: str
    ok: bool
    message: str


# The demo's human decisions (promise, plans, holds, the court's judgment) are taken by a named operator, as every
# human decision is (the bank's payment feed is a system: no actor); created once in the system of record.
DEMO_DESK = ("demo-desk", ("collector", "supervisor", "legal"))
_DESK: Any = None  # the desk's Caller, set by use_desk()


def use_desk(repo: Any = None) -> str | None:
    """The demo's inputs from here on carry demo-desk's actor; its operator id, or None without a database."""
    global _DESK
    try:
        from access.operators import Operators
        from access.permissions import Caller
        from db.engine import make_engine
        from db.repo import Repo

        op = Operators(repo or Repo(make_engine())).ensure(*DEMO_DESK)
        _DESK = Caller(op.id, op.roles, via="demo", name=op.display_name)
    except Exception:  # noqa: BLE001 - no database: the inputs go without an actor, as a bank system's would
        _DESK = None
        return None
    return op.id


def stamped(arg: Any) -> Any:
    """The input with demo-desk's actor for its use case (app/inputs.py), when the desk may take it."""
    from access.permissions import Forbidden
    from app import inputs
    from domain import inputs as registered

    if _DESK is None:
        return arg
    try:
        actor = _DESK.actor(registered.use_case(arg))
    except Forbidden:
        return arg
    return inputs.with_actor(arg, actor)


async def send(handle: WorkflowHandle, loan_id: str, what: str, update, arg) -> Outcome:
    arg = stamped(arg)
    try:
        result = await asyncio.wait_for(handle.execute_update(update, arg), timeout=UPDATE_TIMEOUT)
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        return Outcome(loan_id, what, False, getattr(cause, "message", None) or str(cause or exc))
    except TimeoutError:
        return Outcome(loan_id, what, False, f"no answer within {UPDATE_TIMEOUT:.0f}s (is the worker running?)")
    except Exception as exc:
        return Outcome(loan_id, what, False, f"{exc.__class__.__name__}: {exc}")
    message = getattr(result, "message", None)
    if message is None and hasattr(result, "outstanding"):
        message = f"applied {result.applied}, outstanding {result.outstanding}, status {result.status}" + (
            f", outcome {result.outcome}" if result.outcome else ""
        )
    return Outcome(loan_id, what, True, message or str(result))


async def signal(handle: WorkflowHandle, loan_id: str, what: str, name: str, arg: dict) -> Outcome:
    """A bank feed's input by signal (fire and forget): the case applies it, or records it as rejected."""
    try:
        await asyncio.wait_for(handle.signal(name, arg), timeout=UPDATE_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - the demo says what failed and goes on
        return Outcome(loan_id, what, False, f"{exc.__class__.__name__}: {exc}")
    return Outcome(loan_id, what, True, f"signalled {name} (no answer: the case's events say what became of it)")


def by_dpd(cases: list[CaseInput], now: datetime, new: set[str]) -> dict[int, CaseInput]:
    out: dict[int, CaseInput] = {}
    for c in cases:
        if c.loan_id in new:
            out.setdefault((local_date(now, c.timezone) - c.due_date).days, c)
    return out


def pick(index: dict[int, CaseInput], wanted: int, used: set[str]) -> CaseInput | None:
    """The newly started case that opened nearest to `wanted` DPD (at or after it preferred)."""
    options = sorted((d, c) for d, c in index.items() if c.loan_id not in used)
    if not options:
        return None
    d, c = min(options, key=lambda dc: abs(dc[0] - wanted) + (0 if dc[0] >= wanted else 0.5))
    used.add(c.loan_id)
    return c


async def updates(
    client: Client, cases: list[CaseInput], handles: dict[str, WorkflowHandle], new: set[str], now: datetime, judgment_wait: float
) -> list[Outcome]:
    """One of each kind of input, each sent to a case at the DPD where the floor would meet it, then a court judgment
    once the litigation case has filed its lawsuit (waiting up to `judgment_wait` seconds for it)."""
    index = by_dpd(cases, now, new)
    used: set[str] = set()
    sent: list[asyncio.Future] = [
        asyncio.ensure_future(send(handles[c.loan_id], c.loan_id, what, update, arg))
        for c, what, update, arg in _planned_updates(index, used)
    ]
    sent += _signalled_payments(index, used, handles)
    results = list(await asyncio.gather(*sent))
    for r in results:
        say(f"  {'ok ' if r.ok else 'NO '} {r.loan_id:<10} {r.what}: {r.message}")
    r = await _judgment(cases, index, used, handles, judgment_wait)
    if r is not None:
        results.append(r)
    return results


def _today(c: CaseInput) -> date:
    """The case's own date now, in its borrower's time zone (inputs are dated in it)."""
    return local_date(datetime.now(UTC), c.timezone)


def _total(c: CaseInput) -> int:
    """What the loan owes at the start, in minor units."""
    return c.principal + c.interest + c.fees


def _planned_updates(index: dict[int, CaseInput], used: set[str]) -> list[tuple[CaseInput, str, object, object]]:
    """(case, what, update, its input): payments, a promise, a plan and holds, each at the DPD where it is typical."""
    plan: list[tuple[CaseInput, str, object, object]] = []
    if c := pick(index, 20, used):
        part = _total(c) * 3 // 10
        plan.append(
            (
                c,
                f"partial payment CNY {pretty(part)}",
                CollectionCase.record_payment,
                PaymentIn(payment_id=f"demo-{c.loan_id}-p1", amount=amount(part), currency=CURRENCY),
            )
        )
    if c := pick(index, 8, used):
        plan.append(
            (
                c,
                f"full payment CNY {pretty(_total(c))}",
                CollectionCase.record_payment,
                PaymentIn(payment_id=f"demo-{c.loan_id}-p1", amount=amount(_total(c)), currency=CURRENCY),
            )
        )
    if c := pick(index, 31, used):
        half = _total(c) // 2
        plan.append(
            (
                c,
                f"promise to pay CNY {pretty(half)} in 7 days",
                CollectionCase.promise_to_pay,
                PromiseIn(amount=amount(half), date=_today(c) + timedelta(days=7)),
            )
        )
    if c := pick(index, 46, used):
        plan.append(
            (
                c,
                "plan: 6 monthly instalments from today+10",
                CollectionCase.agree_plan,
                PlanIn(kind="instalments", instalments=6, first_due=_today(c) + timedelta(days=10)),
            )
        )
    if c := pick(index, 61, used):
        plan.append(
            (
                c,
                "dispute hold",
                CollectionCase.place_hold,
                HoldIn(kind="dispute", reference="borrower disputes the interest charged"),
            )
        )
    if c := pick(index, 91, used):
        plan.append(
            (
                c,
                "hardship hold for 30 days",
                CollectionCase.place_hold,
                HoldIn(kind="hardship", until=_today(c) + timedelta(days=30), reference="job loss"),
            )
        )
    return plan


def _signalled_payments(index: dict[int, CaseInput], used: set[str], handles: dict[str, WorkflowHandle]) -> list[asyncio.Future]:
    """The bank's payment feed by signal, as a feed written to the workflow contract sends it: one payment applied,
    and one whose amount the feed garbled, which the case records in the console's "Inputs rejected" worklist."""
    sent: list[asyncio.Future] = []
    if c := pick(index, 12, used):
        part = _total(c) // 5
        pay = {"payment_id": f"demo-{c.loan_id}-s1", "amount": amount(part), "currency": CURRENCY}
        sent.append(
            asyncio.ensure_future(
                signal(handles[c.loan_id], c.loan_id, f"signalled payment CNY {pretty(part)}", "record_payment", pay)
            )
        )
        bad = {"payment_id": f"demo-{c.loan_id}-s2", "amount": f"{pretty(part)},00", "currency": CURRENCY}
        sent.append(
            asyncio.ensure_future(
                signal(handles[c.loan_id], c.loan_id, "signalled payment, amount garbled", "record_payment", bad)
            )
        )
    return sent


async def _judgment(
    cases: list[CaseInput], index: dict[int, CaseInput], used: set[str], handles: dict[str, WorkflowHandle], judgment_wait: float
) -> Outcome | None:
    """A court judgment for the case opened past the litigation DPD, sent once it has filed its lawsuit (a judgment
    needs one) or the wait is over; None when the policy has no lawsuit step or no case is there."""
    lit_dpd = next((s.dpd for s in cases[0].policy.steps if "lawsuit" in s.actions), None)
    c = pick(index, lit_dpd + 1, used) if lit_dpd is not None else None
    if c is None:
        return None
    handle = handles[c.loan_id]
    if judgment_wait > 0:
        await _wait_for_lawsuit(handle, c, cases[0].policy.day_seconds, judgment_wait)
    r = await send(
        handle,
        c.loan_id,
        "court judgment",
        CollectionCase.record_outcome,
        OutcomeIn(
            kind="court",
            outcome="judgment",
            reference="(2026)沪0101民初1234号",
            # the law's dates are real days, not the demo's short ones: a judgment whose
            # performance period ended 5 days ago, so that enforcement may follow in the demo
            effective_on=_today(c) - timedelta(days=15),
            performance_ends=_today(c) - timedelta(days=5),
        ),
    )
    say(f"  {'ok ' if r.ok else 'NO '} {r.loan_id:<10} {r.what}: {r.message}")
    return r


async def _wait_for_lawsuit(handle: WorkflowHandle, c: CaseInput, day: float, judgment_wait: float) -> None:
    """Polls the case until it has filed its lawsuit (or awaits the court, or closed), saying where it is now and then."""
    say(
        f"\nWaiting up to {judgment_wait:.0f}s for {c.loan_id} to file its lawsuit (it sends the bureau notice "
        f"first and waits its notice period: ~{(14 + 2) * day}s at {day}s a policy day) ..."
    )
    deadline, shown = time.monotonic() + judgment_wait, 0.0
    while time.monotonic() < deadline:
        st = await status_of(handle)
        if (
            st is None
            or st.status == "closed"
            or "litigation" in st.steps_done
            or (st.awaiting is not None and st.awaiting.kind == "court")
        ):
            break
        if time.monotonic() - shown > 15:
            shown = time.monotonic()
            say(f"  {c.loan_id}: stage {st.stage}, next: {st.next_action.what}")
        await asyncio.sleep(2)


def summary(cases: list[CaseInput], st: dict[str, CaseStatus | None]) -> None:
    policy = cases[0].policy
    order = ["new"] + list(dict.fromkeys(s.stage for s in policy.steps))
    table: dict[str, Counter] = defaultdict(Counter)
    outcomes: Counter = Counter()
    unknown = 0
    for s in st.values():
        if s is None:
            unknown += 1
            continue
        table[s.stage][s.status] += 1
        if s.outcome:
            outcomes[s.outcome] += 1
    stages = order + sorted(set(table) - set(order))
    say(f"\n  {'stage':<16}{'active':>8}{'paused':>8}{'closed':>8}{'cases':>8}")
    say("  " + "-" * 48)
    for stage in stages:
        row = table.get(stage)
        if not row:
            continue
        say(f"  {stage:<16}{row['active']:>8}{row['paused']:>8}{row['closed']:>8}{sum(row.values()):>8}")
    say("  " + "-" * 48)
    totals = Counter()
    for row in table.values():
        totals.update(row)
    say(f"  {'all':<16}{totals['active']:>8}{totals['paused']:>8}{totals['closed']:>8}{sum(totals.values()):>8}")
    if outcomes:
        say("  closed as: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
    if unknown:
        say(f"  ({unknown} case(s) did not answer the status query)")


QUERIES = [
    'CollectionStage = "litigation"',
    "OnHold = true",
    "OutstandingAmount > 10000",
    'CaseStatus = "paused"',
    'PolicyName = "demo" AND Segment = "sme" ORDER BY OutstandingAmount DESC',
]


def calendar_warning(now: datetime) -> str | None:
    return missing_warning(now.astimezone(ZoneInfo("Asia/Shanghai")).date())


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=40, help="how many loans (default 40)")
    parser.add_argument("--policy", default="demo", help="policy name or file (default demo)")
    parser.add_argument(
        "--judgment-wait",
        type=float,
        default=150.0,
        help="seconds to wait for a case to file its lawsuit before recording a judgment (default 150)",
    )
    parser.add_argument("--no-wait", action="store_true", help="do not wait for the lawsuit (same as --judgment-wait 0)")
    args = parser.parse_args(argv)
    cfg = settings()
    calendar.use_folder(cfg.calendar_dir)
    try:
        client = await asyncio.wait_for(connect(), timeout=15)
    except Exception as exc:
        say(
            f"demo: cannot reach Temporal at {cfg.temporal_address} ({exc.__class__.__name__}: {exc}).\n"
            "Start the local stack first: `python -m devstack.stack start` (or `make demo`)."
        )
        return 1
    policy = load_policy(args.policy)
    now = datetime.now(UTC)
    warning = calendar_warning(now)  # warn ahead: next year's official holiday calendar
    if warning:
        say(f"demo: WARNING {warning}")
    cases = portfolio(policy, now, args.count)
    say(f"demo: system of record: {await asyncio.to_thread(seed_records, cases)}")
    desk = await asyncio.to_thread(use_desk)
    if desk:
        say(f"demo: the demo's promise, plans, holds and judgment are taken by operator {DEMO_DESK[0]} ({desk})")
    handles, new = await start_all(client, cases)
    say(
        f"demo: {len(new)} case(s) started, {len(cases) - len(new)} already loaded "
        f"(policy {policy.name} {policy.version}, a policy day lasts {policy.day_seconds}s)"
    )

    results: list[Outcome] = []
    if new:
        if not await worker_polling(client):
            say(
                f"demo: no worker polls task queue {cfg.task_queue!r}; cases will wait for one "
                "(`python worker.py`). Skipping the updates."
            )
        else:
            say("demo: waiting for the first steps to run ...")
            await wait_first_steps({k: v for k, v in handles.items() if k in new})
            say("demo: updates")
            results = await updates(client, cases, handles, new, now, 0 if args.no_wait else args.judgment_wait)
            failed = [r for r in results if not r.ok]
            if failed:
                say(f"demo: {len(failed)} update(s) were refused (see above); the rest applied")
    else:
        say("demo: the portfolio is already loaded; no updates sent (rerun after `make clean` for a fresh one)")

    summary(cases, await statuses(handles))
    ui = f"http://localhost:{load(StackSettings).ui_port}"
    ns = cfg.temporal_namespace
    say(f"\nWeb UI: {ui}/namespaces/{ns}/workflows")
    say("Try these visibility queries in the UI's search box (or `temporal workflow list --query '...'`):")
    for q in QUERIES:
        say(f"  {q}")
        say(f"      {ui}/namespaces/{ns}/workflows?query={quote(q)}")
    return 0


if __name__ == "__main__":
    from infra.process import leave

    try:
        code = asyncio.run(main())
    except BrokenPipeError:  # piped into head
        code = 0
    except KeyboardInterrupt:
        code = 130
    leave(code)
