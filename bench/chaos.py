"""Chaos run: many cases on a real Temporal dev server while the worker is SIGKILLed and restarted,
the server is stopped and restarted, and the channel gateway fails, loses responses, stalls and rate
limits; payments (with duplicates), promises, plans and holds arrive throughout. At the end every
case must be in the state its inputs imply, with nothing lost and nothing sent twice.

    python -m bench.chaos                                   # full size: 1,000 cases, 20 kills, 2 restarts
    python -m bench.chaos --cases 100 --kills 3 --server-restarts 1 --seed 7
    python -m bench.chaos --faults 0.3 --day-seconds 2 --window 300 --keep
    python -m bench.chaos --database postgresql --workers 3 --via http --clients 3   # where a bank runs it

What runs (all on loopback, under a fresh work directory):
  - `temporal server start-dev --db-filename <dir>/temporal.db --sqlite-pragma journal_mode=wal ...`
    with the search attributes registered (the local stack's server, headless);
  - the application database (SQLite, migrated) and the sandbox gateway (its outbox in <dir>/gateway.db);
    or, with --database postgresql, PostgreSQL: DATABASE_URL's server, else a cluster of the run's own (the tests'
    embedded PostgreSQL), stopped and started --pg-restarts times, the last one down for --pg-down seconds;
  - --workers `python worker.py` processes at once (each kill SIGKILLs one of them at random, restarted at once or
    after a pause);
  - this process: opens the cases through app.opening.start_case and sends the inputs through
    app.inputs.record_payment / send_update (each within app.inputs.answered), as the CLI does; with --via http,
    the API (`python -m api`) and --clients client processes send them over HTTP as a bank's feed would. An
    input that gets no answer (worker dead, server down, timeout, 503) is sent again until it gets one; payments
    are idempotent by payment id, and a repeated hold, plan or promise is refused ("already ..."), which after
    an unanswered first attempt counts as its answer. The table gives the attempts per acknowledged input.

The cases run on the `demo` ladder with a policy day of --day-seconds (default 6 s, the demo's) and open at
DPD 1..130, so they are spread over the ladder and keep moving during the run. Each case gets one
script (quiet, partial payments, full payment then a late one, promise kept or not, interest-waiver
plan paid off, instalment plan, dispute hold, complaint hold released, bad inputs).

Checks, once the last input has its answer and the gateway is healthy again:
  1. state: every case is as its inputs imply (paid in full -> closed `paid`; waiver plan paid ->
     closed `settled`; hold -> paused; promise or instalment plan -> paused; ...), and total_paid is
     the sum of the distinct payment ids it acknowledged;
  2. balances: original - total_paid - waived = outstanding, for every case;
  3. ledger: the payments table holds each acknowledged payment id once, with its amount, applied or
     unapplied as answered, and nothing for a refused one; applied rows add up to total_paid;
  4. deliveries: the gateway's outbox holds at most one delivery per case, step and action (one case
     key per loan), every delivery the database records as delivered is in the outbox, and every
     outbox row has its contact row; the case's contact counts agree with them;
  5. holds: no contact was decided for a disputed case after its dispute hold was placed;
  5b. caps: no borrower got more contacts than the policy's caps across their loans (four borrowers in ten have
     two or three);
  6. not stuck: every open case has a next action time, and none is overdue by more than a tolerance.

A step re-run after a worker crash sends the body its first attempt rendered (kept in its contact row),
so the gateway answers it as a duplicate and it is recorded as the delivery it was (check "rerun recorded as
delivered"); an input to an open case whose workflow task is being retried is answered "busy" (Busy, HTTP
503) and sent again.

Exit code 0 when every check passes, 1 otherwise; the table goes to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402
from temporalio.api.enums.v1 import TaskQueueType  # noqa: E402
from temporalio.api.taskqueue.v1 import TaskQueue  # noqa: E402
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, DescribeTaskQueueRequest  # noqa: E402
from temporalio.client import Client  # noqa: E402

from app import opening  # noqa: E402
from app.replay import replay_every_history  # noqa: E402
from bench.chaos_inputs import (  # noqa: E402
    CUR,
    INPUT_GIVE_UP,
    INPUTS_PER_KIND,
    KEY_ID,
    KINDS,
    TASK_QUEUE,
    TZ,
    Counters,
    Driver,
    InProcess,
    Model,
    script,
)
from db.engine import make_engine, migrate  # noqa: E402
from db.repo import Repo  # noqa: E402
from db.tables import BorrowerRow, ContactRow, LoanRow, PaymentRow, utcnow  # noqa: E402
from devstack.binaries import find  # noqa: E402
from domain import compliance  # noqa: E402
from domain.dates import local_date  # noqa: E402
from domain.models import CaseInput, CaseStatus  # noqa: E402
from domain.money import format_amount, parse_amount  # noqa: E402
from domain.policy import Policy, load_policy, parse_policy  # noqa: E402
from encryption import codec  # noqa: E402
from infra import deployments  # noqa: E402
from infra.config import BenchSettings, load, settings  # noqa: E402
from sandbox.gateway import RunningGateway  # noqa: E402
from workflows import search  # noqa: E402
from workflows.case import CollectionCase  # noqa: E402


def say(msg: str) -> None:
    print(f"{dt.datetime.now():%H:%M:%S} chaos: {msg}", flush=True)


# ---------------------------------------------------------------------------- configuration


@dataclass
class ChaosConfig:
    cases: int = 1000
    kills: int = 20
    server_restarts: int = 2
    faults: float = 0.3
    seed: int = 20261128
    day_seconds: int = 6  # the demo policy's day
    window: float | None = None  # seconds of chaos; default grows with the number of cases
    settle_timeout: float | None = None  # how long the cases get to catch up after the chaos
    tolerance: float | None = None  # how overdue an open case's next action may be at the end
    workdir: Path | None = None
    keep: bool = False
    quiet: bool = False
    database: str = "sqlite"  # or "postgresql": DATABASE_URL's server, else the tests' embedded one (restarted)
    pg_restarts: int | None = None  # PostgreSQL stops and starts (default 2 on a server of our own)
    pg_down: float = 20.0  # the last PostgreSQL restart stays down this long (a send's retries run out meanwhile)
    workers: int = 1  # worker processes on the task queue at once, each killed at random
    via: str = "inprocess"  # or "http": inputs through the API, from `clients` processes
    clients: int = 3
    multi_loan: float = 0.4  # share of borrowers with two or three loans (the contact caps count across them)

    def __post_init__(self) -> None:
        if self.pg_restarts is None:
            self.pg_restarts = 2 if self.database == "postgresql" else 0
        if self.window is None:
            self.window = min(600.0, max(60.0, self.cases * 0.6))
        if self.settle_timeout is None:
            self.settle_timeout = min(300.0, max(60.0, self.cases * 0.25))
        if self.tolerance is None:
            self.tolerance = max(20.0, 5.0 * self.day_seconds)


def chaos_policy(day_seconds: int) -> Policy:
    """The demo ladder (open contact hours), with a `day_seconds` day and a write-off far beyond the run."""
    data = load_policy("demo").model_dump(mode="json")
    data.update(
        name="chaos",
        day_seconds=day_seconds,
        write_off_dpd=3000,
        description=f"chaos run: the demo ladder with a {day_seconds}-second day",
    )
    return parse_policy(data, "chaos")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------- processes


class DevServer:
    """`temporal server start-dev` on a SQLite file: stopped and started again on the same file and port."""

    def __init__(self, workdir: Path, port: int) -> None:
        self.db = workdir / "temporal.db"
        self.port = port
        self.address = f"127.0.0.1:{port}"
        self.log = workdir / "temporal.log"
        self.proc: subprocess.Popen | None = None
        self.restarts: list[float] = []  # seconds of downtime per restart

    def argv(self) -> list[str]:
        argv = [
            find("temporal"),
            "server",
            "start-dev",
            "--headless",
            "--db-filename",
            str(self.db),
            "--sqlite-pragma",
            "journal_mode=wal",
            "--sqlite-pragma",
            "synchronous=normal",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--namespace",
            "default",
            "--log-level",
            "error",
        ]
        for key, typ in search.CLI_TYPES.items():
            argv += ["--search-attribute", f"{key.name}={typ}"]
        return argv

    async def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.argv(), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        deadline = time.monotonic() + 90
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"temporal dev server exited with {self.proc.returncode}; see {self.log}")
            try:
                c = await asyncio.wait_for(Client.connect(self.address), 5)
                await c.workflow_service.describe_namespace(
                    DescribeNamespaceRequest(namespace="default"), timeout=dt.timedelta(seconds=5)
                )
                return
            except Exception:  # noqa: BLE001 - not up yet
                if time.monotonic() > deadline:
                    raise RuntimeError(f"temporal dev server not ready after 90 s; see {self.log}") from None
                await asyncio.sleep(0.3)

    async def stop(self, timeout: float = 30) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(self.proc.wait, timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            await asyncio.to_thread(self.proc.wait)

    async def restart(self) -> float:
        began = time.monotonic()
        await self.stop()
        await self.start()
        self.restarts.append(time.monotonic() - began)
        return self.restarts[-1]


class WorkerProc:
    """`python worker.py` as the stack runs it; SIGKILLed and started again."""

    def __init__(self, workdir: Path, env: dict[str, str], index: int = 0) -> None:
        self.env = env
        self.index = index
        self.log = workdir / ("worker.log" if index == 0 else f"worker-{index}.log")
        self.proc: subprocess.Popen | None = None
        self.kills = 0
        self.starts = 0

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def start(self, client: Client) -> None:
        with open(self.log, "ab") as out:
            out.write(f"\n==== start {dt.datetime.now().isoformat()}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                [sys.executable, str(ROOT / "worker.py")],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.starts += 1
        identity = f"{self.proc.pid}@{socket.gethostname()}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode} while starting; see {self.log}")
            with contextlib.suppress(Exception):
                resp = await client.workflow_service.describe_task_queue(
                    DescribeTaskQueueRequest(
                        namespace="default",
                        task_queue=TaskQueue(name=TASK_QUEUE),
                        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
                    ),
                    timeout=dt.timedelta(seconds=5),
                )
                poller = next((p for p in resp.pollers if p.identity == identity), None)
                if poller is not None:
                    # its build made current (Worker Versioning), as the local stack does; a restart is the same build
                    await deployments.make_current(client, poller.deployment_options)
                    return
            await asyncio.sleep(0.2)
        say(f"worker {self.proc.pid} not seen polling within 60 s (going on)")

    def kill(self) -> None:
        if self.alive:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self.kills += 1

    async def stop(self) -> None:
        if self.alive:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.proc.wait, 20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                await asyncio.to_thread(self.proc.wait)


# ---------------------------------------------------------------------------- the model of each case


@dataclass
class Check:
    name: str
    checked: int = 0
    failures: list[str] = field(default_factory=list)
    # a finding is shown and its evidence kept, but does not fail the run: a defect already filed (its issue named)
    finding: str | None = None

    def fail(self, msg: str) -> None:
        self.failures.append(msg)


def expected_state(m: Model, st: CaseStatus, ck: Check) -> None:
    """The state the inputs imply."""

    def bad(msg: str) -> None:
        ck.fail(f"{m.loan_id} ({m.kind}): {msg}")

    paid = parse_amount(st.total_paid, CUR, allow_zero=True)
    holds = {h.kind for h in st.holds}
    if paid != m.paid:
        bad(f"total_paid {st.total_paid}, but the acknowledged payments add up to {format_amount(m.paid, CUR)}")
    if holds != m.holds:
        bad(f"holds {sorted(holds)}, expected {sorted(m.holds)}")
    want_status, want_outcome = "active", None
    if m.kind == "full" and m.paid == m.total:
        want_status, want_outcome = "closed", "paid"
    elif m.kind == "waiver" and m.plan and m.paid == m.total - m.waived:
        want_status, want_outcome = "closed", "settled"
        if st.plan is None or st.plan.status != "completed" or st.plan.waived != m.waived:
            bad(f"plan {st.plan and (st.plan.kind, st.plan.status, st.plan.waived)}, expected a completed waiver of {m.waived}")
    elif m.kind == "instalments" and m.plan:
        want_status = "paused"
        if st.plan is None or (st.plan.kind, st.plan.status) != ("instalments", "active"):
            bad(f"plan {st.plan and (st.plan.kind, st.plan.status)}, expected an active instalment plan")
    elif m.kind in ("promise", "promise_kept") and m.promise is not None:
        kept = m.kind == "promise_kept" and m.paid >= m.promise
        want_status = "active" if kept else "paused"
        if st.promise is None or st.promise.amount != m.promise or st.promise.status != ("kept" if kept else "active"):
            bad(
                f"promise {st.promise and (st.promise.amount, st.promise.status)}, "
                f"expected {(m.promise, 'kept' if kept else 'active')}"
            )
    elif m.holds & {"dispute", "complaint"}:
        want_status = "paused"
    if (st.status, st.outcome) != (want_status, want_outcome):
        bad(f"status {st.status}/{st.outcome}, expected {want_status}/{want_outcome}")
    if m.kind in ("quiet", "partial", "bad", "hold", "hold_release") and (st.plan or st.promise):
        bad(f"has a plan or promise it was never given: {st.plan} {st.promise}")


def balances(m: Model, st: CaseStatus, ck: Check) -> None:
    paid = parse_amount(st.total_paid, CUR, allow_zero=True)
    outstanding = parse_amount(st.outstanding["total"], CUR, allow_zero=True)
    waived = st.plan.waived if st.plan is not None and st.plan.status in ("active", "completed") else 0
    parts = sum(parse_amount(st.outstanding[k], CUR, allow_zero=True) for k in ("principal", "interest", "fees"))
    if m.total - paid - waived != outstanding or parts != outstanding:
        ck.fail(
            f"{m.loan_id}: original {format_amount(m.total, CUR)} - paid {st.total_paid} - waived "
            f"{format_amount(waived, CUR)} != outstanding {st.outstanding}"
        )


def ledger(models: dict[str, Model], statuses: dict[str, CaseStatus], rows: list[PaymentRow], ck: Check) -> None:
    by_loan: dict[str, list[PaymentRow]] = defaultdict(list)
    ids = Counter(r.payment_id for r in rows)
    for pid, n in ids.items():
        if n > 1:
            ck.fail(f"payment id {pid} is in the ledger {n} times")
    for r in rows:
        by_loan[r.loan_id].append(r)
    for loan, m in models.items():
        got_applied = {r.payment_id: r.amount for r in by_loan.get(loan, []) if r.status == "applied"}
        got_unapplied = {r.payment_id: r.amount for r in by_loan.get(loan, []) if r.status == "unapplied"}
        if got_applied != m.applied:
            ck.fail(f"{loan}: ledger applied {got_applied}, acknowledged {m.applied}")
        if got_unapplied != m.unapplied:
            ck.fail(f"{loan}: ledger unapplied {got_unapplied}, acknowledged {m.unapplied}")
        stray = m.refused_payment_ids & set(ids)
        if stray:
            ck.fail(f"{loan}: refused payment ids in the ledger: {sorted(stray)}")
        st = statuses.get(loan)
        if st is not None and sum(got_applied.values()) != parse_amount(st.total_paid, CUR, allow_zero=True):
            ck.fail(f"{loan}: ledger applied sum {format_amount(sum(got_applied.values()), CUR)} != total_paid {st.total_paid}")
        ck.checked += 1


def deliveries(
    models: dict[str, Model],
    statuses: dict[str, CaseStatus],
    contacts: list[ContactRow],
    outbox: list[dict],
    later: list[ContactRow],
    policy: Policy,
    ck: Check,
    b1: Check,
) -> dict[str, int]:
    """At most one delivery per case, step and action; the database and the gateway agree.

    Read in this order while the cases go on: statuses, `contacts`, the outbox, `later` (the contact rows
    again). A contact recorded delivered was accepted by the gateway before, so delivered(contacts) is in
    the outbox; a delivery's contact row is written before the request, so the outbox is in `later`."""
    keys_by_loan: dict[str, set[str]] = defaultdict(set)
    per_action: Counter = Counter()
    outbox_keys = set()
    for item in outbox:
        key = item["idempotency_key"]
        outbox_keys.add(key)
        wf, opened, step, action = key.split(":", 3)
        loan = item["loan_id"]
        if wf != f"loan-{loan}":
            ck.fail(f"outbox key {key} is not for loan {loan}")
        keys_by_loan[loan].add(f"{wf}:{opened}")
        per_action[(loan, step, action)] += 1
    for (loan, step, action), n in per_action.items():
        if n > 1:
            ck.fail(f"{loan}: {n} deliveries of {step}/{action}")
    for loan, case_keys in keys_by_loan.items():
        if len(case_keys) > 1:
            ck.fail(f"{loan}: deliveries under {len(case_keys)} case keys {sorted(case_keys)} (a case opened twice?)")
    db_keys = Counter(c.idempotency_key for c in contacts)
    delivered = {c.idempotency_key for c in contacts if c.status == "delivered"}
    pending = {c.idempotency_key for c in contacts if c.status == "pending"}
    for key in sorted(delivered - outbox_keys):
        ck.fail(f"contact {key} is recorded delivered but the gateway has no such delivery")
    by_key = {c.idempotency_key: c for c in later}
    for key in sorted(outbox_keys - {c.idempotency_key for c in later if c.status in ("delivered", "pending")}):
        row = by_key.get(key)
        if row is not None and row.status == "failed" and "HTTP 409" in (row.reason or ""):
            b1.fail(f"{key}: delivered once by the gateway, recorded as failed: {row.reason}")
        else:
            ck.fail(f"the gateway delivered {key} but the database has no delivered or pending contact for it")
    b1.checked = len(outbox_keys)
    for key, n in db_keys.items():
        if n > 1:
            ck.fail(f"contact {key} has {n} rows")
    step_keys = {s.key for s in policy.steps}
    by_loan: dict[str, list[ContactRow]] = defaultdict(list)
    later_by_loan: dict[str, list[ContactRow]] = defaultdict(list)
    for c in contacts:
        by_loan[c.loan_id].append(c)
    for c in later:
        later_by_loan[c.loan_id].append(c)
    for loan, st in statuses.items():
        rows = [c for c in by_loan.get(loan, []) if c.status == "delivered" and c.step in step_keys]
        after = [c for c in later_by_loan.get(loan, []) if c.status == "delivered" and c.step in step_keys]
        done = set(st.steps_done)
        for channel in {c.channel for c in after} | set(st.contacts):
            low = sum(1 for c in rows if c.channel == channel and c.step in done)
            high = sum(1 for c in after if c.channel == channel)
            if not low <= st.contacts.get(channel, 0) <= high:
                ck.fail(
                    f"{loan}: the case counts {st.contacts.get(channel, 0)} {channel} contact(s); "
                    f"the database has {low} for its finished steps and {high} in all"
                )
        ck.checked += 1
    return {
        "outbox": len(outbox),
        "contacts": len(contacts),
        "pending": len(pending),
        "orphans": len(pending & outbox_keys),
        "failed": sum(1 for c in contacts if c.status == "failed"),
    }


def holds_honoured(models: dict[str, Model], statuses: dict[str, CaseStatus], contacts: list[ContactRow], ck: Check) -> None:
    by_loan: dict[str, list[ContactRow]] = defaultdict(list)
    for c in contacts:
        by_loan[c.loan_id].append(c)
    for loan, m in models.items():
        st = statuses.get(loan)
        if "dispute" not in m.holds or st is None:
            continue
        placed = next((h.placed_at for h in st.holds if h.kind == "dispute"), None)
        if placed is None:
            continue
        ck.checked += 1
        late = [f"{c.step}/{c.action} at {c.at:%H:%M:%S}" for c in by_loan.get(loan, []) if c.at is not None and c.at > placed]
        if late:
            ck.fail(f"{loan}: contact(s) decided after the dispute hold of {placed:%H:%M:%S}: {late}")


def caps_across_loans(models: dict[str, Model], contacts: list[ContactRow], policy: Policy, ck: Check, tz: str = TZ) -> None:
    """No borrower got more contacts than the policy's caps allow, counted across all their loans as the gate counts
    them (reserved or delivered contacts; per channel and policy day, and calls in any 7 policy days). Two workers
    deciding for two loans of one borrower at once is what the borrower's row lock in the gate is for."""
    rules, day = policy.contact, policy.day_seconds
    mine = {m.borrower_id for m in models.values()}
    per_day: Counter = Counter()
    calls: dict[str, list[dt.datetime]] = defaultdict(list)
    loans_of: dict[str, set[str]] = defaultdict(set)
    for c in contacts:
        if c.borrower_id not in mine or c.status not in ("pending", "delivered") or c.at is None:
            continue
        at = c.at if c.at.tzinfo else c.at.replace(tzinfo=dt.UTC)
        per_day[(c.borrower_id, c.channel, compliance._policy_day(at, tz, day))] += 1
        loans_of[c.borrower_id].add(c.loan_id)
        if c.channel == "call":
            calls[c.borrower_id].append(at)
    for (borrower, channel, d), n in sorted(per_day.items()):
        cap = rules.daily_caps.get(channel)
        if cap is not None and n > cap:
            ck.fail(f"{borrower}: {n} {channel} contacts on policy day {d} across loans {sorted(loans_of[borrower])}; cap {cap}")
    week = dt.timedelta(seconds=7 * day)
    for borrower, ts in calls.items():
        ts.sort()
        for i in range(len(ts)):
            n = sum(1 for t in ts[i:] if t - ts[i] < week)
            if n > rules.call_cap_7d:
                ck.fail(f"{borrower}: {n} calls within 7 policy days; cap {rules.call_cap_7d}")
                break
    ck.checked = len(mine)


def not_stuck(statuses: dict[str, CaseStatus], tolerance: float) -> tuple[list[str], float]:
    stuck, worst = [], 0.0
    for loan, st in statuses.items():
        if st.status == "closed":
            continue
        if st.next_action.at is None:
            stuck.append(f"{loan}: open ({st.status}) with no next action time: {st.next_action.what}")
            continue
        lag = (st.as_of - st.next_action.at).total_seconds()
        worst = max(worst, lag)
        if lag > tolerance:
            stuck.append(f"{loan}: next action '{st.next_action.what}' was due {lag:.0f}s ago (stage {st.stage})")
    return stuck, worst


# ---------------------------------------------------------------------------- the run


@dataclass
class Report:
    config: ChaosConfig
    checks: list[Check]
    rows: list[tuple[str, str]]
    workdir: Path
    seconds: float
    attempts: tuple[float, int] = (0.0, 0)  # attempts per acknowledged input: mean, p99

    @property
    def failures(self) -> list[str]:
        return [f"{c.name}: {f}" for c in self.checks if c.finding is None for f in c.failures]

    def table(self, limit: int = 8) -> str:
        w = max(len(k) for k, _ in self.rows)
        lines = [f"{k:<{w}}  {v}" for k, v in self.rows]
        lines.append("")
        lines.append(f"{'check':<28} {'checked':>7}  result")
        lines.append(f"{'-' * 28} {'-' * 7}  {'-' * 40}")
        for c in self.checks:
            verdict = "PASS" if not c.failures else f"FAIL ({len(c.failures)})"
            if c.failures and c.finding:
                verdict = f"FOUND ({len(c.failures)}; {c.finding})"
            lines.append(f"{c.name:<28} {c.checked:>7}  {verdict}")
            for f in c.failures[:limit]:
                lines.append(f"{'':<38}- {f}")
            if len(c.failures) > limit:
                lines.append(f"{'':<38}- ... {len(c.failures) - limit} more")
        lines.append("")
        lines.append(f"{'RESULT':<28} {'':>7}  {'PASS' if not self.failures else 'FAIL'} in {self.seconds:.0f}s")
        return "\n".join(lines)


def chaos_events(cfg: ChaosConfig, rng: random.Random) -> list[tuple[float, str]]:
    w = cfg.window
    events = []
    for i in range(cfg.server_restarts):
        events.append((w * (i + 1) / (cfg.server_restarts + 1) + rng.uniform(-0.05, 0.05) * w, "server"))
    for i in range(cfg.pg_restarts or 0):
        events.append((w * (i + 0.5) / ((cfg.pg_restarts or 0) + 1), "pg"))
    restarts = [t for t, what in events if what == "server"]
    kills: list[float] = []
    while len(kills) < cfg.kills:
        t = rng.uniform(0.03 * w, 0.92 * w)
        if all(abs(t - r) > 6 for r in restarts) and all(abs(t - k) > min(4.0, w / (cfg.kills * 2 + 1)) for k in kills):
            kills.append(t)
    events += [(t, "kill") for t in kills]
    return sorted(events)


async def query_all(client: Client, loans: list[str], concurrency: int = 32) -> dict[str, CaseStatus]:
    sem = asyncio.Semaphore(concurrency)
    out: dict[str, CaseStatus] = {}

    async def one(loan: str) -> None:
        async with sem:
            for attempt in range(10):
                try:
                    out[loan] = await asyncio.wait_for(
                        client.get_workflow_handle(f"loan-{loan}").query(CollectionCase.status), 30
                    )
                    return
                except Exception:  # noqa: BLE001
                    if attempt == 9:
                        raise
                    await asyncio.sleep(1 + attempt)

    await asyncio.gather(*(one(loan) for loan in loans))
    return out


def seed_records(repo: Repo, models: list[Model], policy: Policy) -> None:
    """Borrowers (with contact details: the activities read them) and loans, in one transaction."""
    now = utcnow()
    with repo.session() as s:
        borrowers = list(dict.fromkeys(m.borrower_id for m in models))
        for i, b in enumerate(borrowers):
            s.add(
                BorrowerRow(
                    id=b,
                    name=f"混沌借款人{i:04d}",
                    phone=f"1390000{i:04d}",
                    email=f"chaos{i:04d}@example.com",
                    address=f"混沌市测试路{i}号",
                    id_number=None,
                    timezone=TZ,
                    language="zh" if i % 3 else "en",
                    created_at=now,
                    updated_at=now,
                )
            )
        s.flush()
        for m in models:
            s.add(
                LoanRow(
                    id=m.loan_id,
                    borrower_id=m.borrower_id,
                    currency=CUR,
                    principal=m.principal,
                    interest=m.interest,
                    fees=m.fees,
                    due_date=local_date(dt.datetime.now(dt.UTC), TZ) - dt.timedelta(days=m.dpd),
                    policy=policy.name,
                    created_at=now,
                    updated_at=now,
                )
            )
        s.commit()


def fetch_outbox(gw: RunningGateway, loans: list[str]) -> list[dict]:
    """Every delivery, by loan (GET /outbox?loan_id=...)."""
    items: list[dict] = []
    with gw.client(timeout=60) as http:
        for loan in loans:
            r = http.get("/outbox", params={"loan_id": loan, "limit": 10_000})
            r.raise_for_status()
            items += [
                {k: i[k] for k in ("idempotency_key", "loan_id", "channel", "accepted_at", "presented")}
                for i in r.json()["items"]
            ]
    return items


async def run(cfg: ChaosConfig) -> Report:
    """One chaos run: the stack up, the cases opened, inputs sent under faults, worker kills and server restarts, the
    cases left to settle, then every check on a snapshot; the work directory kept when a check fails."""
    began = time.monotonic()
    rng = random.Random(cfg.seed)
    own_dir = cfg.workdir is None
    workdir = _workdir(cfg)
    log = (lambda msg: None) if cfg.quiet else say
    log(
        f"{cfg.cases} cases, {cfg.kills} worker kills, {cfg.server_restarts} server restarts, faults {cfg.faults:.0%}, "
        f"seed {cfg.seed}, a day is {cfg.day_seconds}s, chaos for {cfg.window:.0f}s; work directory {workdir}"
    )

    converter, keys_env = _payload_keys()
    stack = contextlib.ExitStack()
    db_url, pg, db_note = await _database(stack, cfg, workdir)
    await asyncio.to_thread(migrate, db_url)
    repo = Repo(make_engine(db_url))
    policy = chaos_policy(cfg.day_seconds)

    server = DevServer(workdir, free_port())
    gw = RunningGateway(api_key="chaos-gateway-key", db_path=workdir / "gateway.db")
    pool: Pool | None = None
    api = None
    checks: list[Check] = []
    rows: list[tuple[str, str]] = []
    attempts = (0.0, 0)
    try:
        await server.start()
        await asyncio.to_thread(gw.start)
        client = await Client.connect(server.address, data_converter=converter)
        env = worker_environment(server, gw, db_url, keys_env)
        pool = Pool([WorkerProc(workdir, env, i) for i in range(max(1, cfg.workers))])
        await pool.start(client)
        log(
            f"server {server.address}, gateway {gw.url}, {db_note}, {len(pool.workers)} worker(s) ready "
            f"({time.monotonic() - began:.1f}s)"
        )
        http = None
        if cfg.via == "http":
            from bench import chaos_http

            feed, approver = await asyncio.to_thread(chaos_http.operator_tokens, repo)
            api = chaos_http.ApiProc(workdir, env, free_port())
            await api.start()
            http = {"url": api.url, "feed": feed, "approver": approver, "workdir": str(workdir)}
            log(f"API {api.url}; inputs from {cfg.clients} client processes")

        kinds, models = draw_models(cfg, rng)
        await asyncio.to_thread(seed_records, repo, models, policy)
        t_open = time.monotonic()
        await open_cases(client, models, policy)
        log(f"{cfg.cases} cases opened in {time.monotonic() - t_open:.1f}s")

        chaos = await inputs_under_chaos(cfg, rng, client, repo, models, server, gw, pool, log, pg, http)
        loans = [m.loan_id for m in models]
        await settle(cfg, client, repo, loans, log)
        settled = time.monotonic() - chaos.end
        log(f"settled in {settled:.0f}s; checking")

        snap = await snapshot(client, repo, gw, loans)
        checks, worst, dstats = await check_all(cfg, client, models, snap, chaos.counters, policy, workdir, keys_env)
        rows = summary_rows(cfg, kinds, models, snap, dstats, chaos, pool, server, t_open, settled, worst, pg, db_note)
        attempts = chaos.counters.attempts_per_input()
    finally:
        if api is not None:
            await api.stop()
        if pool is not None:
            await pool.stop()
        await server.stop()
        await asyncio.to_thread(gw.stop)
        repo.engine.dispose()
        stack.close()
    report = Report(cfg, checks, rows, workdir, time.monotonic() - began, attempts)
    if not checks:
        report.checks = [Check("run completed", failures=["the run did not get to its checks"])]
    _leave_workdir(gw, workdir, keep=not (own_dir and not cfg.keep and not report.failures))
    return report


def _workdir(cfg: ChaosConfig) -> Path:
    """The run's work directory: the one asked for, or a new one (under BENCH_CHAOS_DIR's folder when set)."""
    chaos_dir = load(BenchSettings).chaos_dir
    workdir = Path(cfg.workdir or tempfile.mkdtemp(prefix="chaos-", dir=str(chaos_dir) if chaos_dir else None))
    workdir.mkdir(parents=True, exist_ok=True)
    return workdir


def _payload_keys() -> tuple[Any, dict[str, str]]:
    """The data converter with the payload codec, and the environment the workers need for its key: the
    environment's own keys when it has them (nothing to pass on), else a new key made for this run."""
    keyring = codec.Keyring.from_env()
    keys_env = {}
    if keyring is None:
        keys_env = {"PAYLOAD_KEYS": codec.new_key_entry(KEY_ID), "PAYLOAD_KEY_ID": KEY_ID}
        keyring = codec.Keyring.from_env(keys_env)
    return codec.data_converter(keyring), keys_env


async def _database(stack: contextlib.ExitStack, cfg: ChaosConfig, workdir: Path) -> tuple[str, Postgres | None, str]:
    """(URL, the PostgreSQL cluster the run owns if any, how the report names it): PostgreSQL as asked, else a SQLite
    file in the work directory."""
    if cfg.database == "postgresql":
        return await asyncio.to_thread(postgres_database, stack, cfg)
    return f"sqlite:///{workdir / 'collections.db'}", None, "SQLite"


def _leave_workdir(gw: RunningGateway, workdir: Path, keep: bool) -> None:
    """Removes a work directory the run made, or keeps it (asked for, or a check failed) with the gateway's log
    copied in, since that log is what explains a failed delivery check."""
    if not keep:
        with contextlib.suppress(OSError):
            gw.close()
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            log_copy = workdir / "gateway.log"
            if gw.log_path.exists():
                shutil.copy(gw.log_path, log_copy)
            gw.close()


def postgres_database(stack: contextlib.ExitStack, cfg: ChaosConfig) -> tuple[str, Postgres | None, str]:
    """A new database for the run: on DATABASE_URL's PostgreSQL server (not restarted: this run does not own it),
    else on a cluster of its own from the tests' embedded PostgreSQL (tests/pg.py), which the run restarts."""
    from tests import pg as testpg

    settings.cache_clear()  # as the environment is now (a test clears DATABASE_URL to own its cluster)
    env_url = settings().database_url or ""  # DATABASE_URL, through the settings model
    if env_url.split(":", 1)[0].split("+", 1)[0] in ("postgres", "postgresql"):
        srv = testpg.PgServer(url=testpg.sqlalchemy_url(env_url), source="DATABASE_URL")
        url = srv.create_database("chaos")

        def drop() -> None:
            with contextlib.suppress(Exception):
                srv.drop_database(url)

        stack.callback(drop)
        if cfg.pg_restarts:
            say("DATABASE_URL names a server this run does not own: no PostgreSQL restarts")
            cfg.pg_restarts = 0
        return url, None, "PostgreSQL (DATABASE_URL)"
    cluster, srv = stack.enter_context(testpg.restartable_postgres())
    url = srv.create_database("chaos")
    return url, Postgres(cluster), f"PostgreSQL {srv.version.split()[1]} (embedded, port {cluster.port})"


def worker_environment(server: DevServer, gw: RunningGateway, db_url: str, keys_env: dict[str, str]) -> dict[str, str]:
    """The worker's environment: this process's, with the run's server, database, gateway (and key, if made here)."""
    return dict(
        os.environ,
        **keys_env,
        TEMPORAL_ADDRESS=server.address,
        TEMPORAL_NAMESPACE="default",
        TEMPORAL_TASK_QUEUE=TASK_QUEUE,
        DATABASE_URL=db_url,
        GATEWAY_URL=gw.url,
        GATEWAY_API_KEY=gw.api_key,
        GATEWAY_TIMEOUT="5",
        WORKER_METRICS_ADDRESS="",
        LOG_FORMAT="json",
        LOG_LEVEL="warning",
        PYTHONUNBUFFERED="1",
    )


def draw_models(cfg: ChaosConfig, rng: random.Random) -> tuple[list[str], list[Model]]:
    """The cases: a script kind each (an even mix, shuffled) and their amounts and DPD, from the run's generator."""
    kinds = [KINDS[i % len(KINDS)] for i in range(cfg.cases)]
    rng.shuffle(kinds)
    models: list[Model] = []
    borrower, left = "", 0
    for i, kind in enumerate(kinds):
        if left == 0:  # a new borrower: with one loan, or (multi_loan of them) with two or three
            borrower, left = f"B-CH-{cfg.seed % 10000:04d}-{i:05d}", (rng.choice([2, 3]) if rng.random() < cfg.multi_loan else 1)
        left -= 1
        principal = rng.randrange(2_000, 60_000) * 100 + rng.choice([0, 50, 88])
        models.append(
            Model(
                loan_id=f"CH-{cfg.seed % 10000:04d}-{i:05d}",
                kind=kind,
                principal=principal,
                interest=principal * rng.randrange(3, 12) // 100,
                fees=rng.choice([0, 5_000, 15_000, 30_000]),
                dpd=rng.randint(1, 130),
                borrower_id=borrower,
            )
        )
    return kinds, models


async def open_cases(client: Client, models: list[Model], policy: Policy) -> None:
    """One case per model (its borrower and loan already in the database), 32 at a time, each start retried."""
    today = local_date(dt.datetime.now(dt.UTC), TZ)
    sem = asyncio.Semaphore(32)

    async def open_case(m: Model) -> None:
        inp = CaseInput(
            loan_id=m.loan_id,
            borrower_id=m.borrower_id,
            currency=CUR,
            principal=m.principal,
            interest=m.interest,
            fees=m.fees,
            due_date=today - dt.timedelta(days=m.dpd),
            timezone=TZ,
            policy=policy,
        )
        async with sem:
            for attempt in range(20):
                try:
                    await opening.start_case(client, inp, TASK_QUEUE)
                    return
                except Exception:  # noqa: BLE001
                    await asyncio.sleep(1 + attempt)
            raise RuntimeError(f"could not start {m.loan_id}")

    await asyncio.gather(*(open_case(m) for m in models))


@dataclass
class ChaosPhase:
    """What the chaos phase did: its start and end, the inputs' counters, the gateway's figures, the fault settings
    it went through and the pauses after each worker kill."""

    start: float
    end: float
    counters: Counters
    gateway_stats: dict
    fault_log: list[str]
    kill_pauses: list[float]


class Pool:
    """The worker processes on the task queue at once; a kill takes one of the living ones, at random."""

    def __init__(self, workers: list[WorkerProc]) -> None:
        self.workers = workers
        self.starting: set[WorkerProc] = set()

    @property
    def kills(self) -> int:
        return sum(w.kills for w in self.workers)

    @property
    def starts(self) -> int:
        return sum(w.starts for w in self.workers)

    async def start(self, client: Client) -> None:
        for w in self.workers:
            await w.start(client)

    async def stop(self) -> None:
        await asyncio.gather(*(w.stop() for w in self.workers))

    def killable(self) -> list[WorkerProc]:
        """The workers a kill may take: alive and not being started (two starts of one would leave one untracked)."""
        return [w for w in self.workers if w.alive and w not in self.starting]

    async def restart(self, w: WorkerProc, client: Client) -> None:
        """Started again; a worker that exits while starting (the database down at that moment) is tried again."""
        self.starting.add(w)
        try:
            for attempt in range(10):
                try:
                    await w.start(client)
                    return
                except RuntimeError:
                    if attempt == 9:
                        raise
                    await asyncio.sleep(2)
        finally:
            self.starting.discard(w)


class Postgres:
    """The application database's server, when this run owns it: stopped and started on the same data and port."""

    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster
        self.restarts: list[float] = []  # seconds down

    async def restart(self, down: float, how: str) -> float:
        began = time.monotonic()
        await asyncio.to_thread(self.cluster.stop, how)
        await asyncio.sleep(down)
        await asyncio.to_thread(self.cluster.start)
        self.restarts.append(time.monotonic() - began)
        return self.restarts[-1]


async def inputs_under_chaos(
    cfg: ChaosConfig,
    rng: random.Random,
    client: Client,
    repo: Repo,
    models: list[Model],
    server: DevServer,
    gw: RunningGateway,
    pool: Pool,
    log: Callable[[str], None],
    pg: Postgres | None = None,
    http: dict | None = None,
) -> ChaosPhase:
    """Every case's inputs at their scripted times, while the gateway's faults change every few seconds, workers are
    killed and the Temporal and PostgreSQL servers restarted as `chaos_events` says; over when every input has its
    answer. `http` (api_url, tokens): the inputs go through the API from `cfg.clients` client processes."""
    counters = Counters()
    t0 = time.monotonic()
    w = cfg.window
    times_of = [sorted(rng.uniform(0.02 * w, 0.85 * w) for _ in range(INPUTS_PER_KIND[m.kind])) for m in models]
    driver, scripts = _start_scripts(cfg, client, repo, models, times_of, t0, counters, server, http)
    chaos = _Chaos(cfg, rng, client, server, gw, pool, log, pg, t0)
    events = chaos_events(cfg, rng)
    fault_task = asyncio.create_task(chaos.faults())
    await chaos.run(events)
    if driver is not None:
        driver.give_up_at = time.monotonic() + INPUT_GIVE_UP
        await scripts
    else:
        done = await scripts
        by_loan = {m.loan_id: i for i, m in enumerate(models)}
        for shard_models, shard_counters in done:
            counters.merge(shard_counters)
            for m in shard_models:  # the client processes' copies, with what they were answered
                models[by_loan[m.loan_id]] = m
    chaos_end = time.monotonic()
    log(
        f"chaos over and every input answered at t={chaos_end - t0:.0f}s ({counters.inputs} inputs, {counters.attempts} attempts)"
    )
    fault_task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await fault_task
    gw_stats = await asyncio.to_thread(gw.stats)
    await asyncio.to_thread(gw.clear_faults)
    for wp in pool.workers:
        if not wp.alive:
            await pool.restart(wp, client)
    return ChaosPhase(t0, chaos_end, counters, gw_stats, chaos.fault_log, chaos.kill_pauses)


def _start_scripts(
    cfg: ChaosConfig,
    client: Client,
    repo: Repo,
    models: list[Model],
    times_of: list[list[float]],
    t0: float,
    counters: Counters,
    server: DevServer,
    http: dict | None,
) -> tuple[Driver | None, Awaitable[Any]]:
    """Starts every case's script: in this process (its driver returned, to be told when to give up), or, given
    `http`, through the API from `cfg.clients` client processes, each with a shard of the cases (no driver here)."""
    if http is None:
        driver = Driver(InProcess(client, repo), counters)
        return driver, asyncio.gather(*(script(driver, m, t, t0) for m, t in zip(models, times_of, strict=True)))
    from bench import chaos_http

    n = max(1, cfg.clients)
    shards = [
        chaos_http.Shard(
            api_url=http["url"],
            feed=http["feed"],
            approver=http["approver"],
            temporal_address=server.address,
            models=models[i::n],
            times=times_of[i::n],
            t0=t0,
            give_up_at=t0 + cfg.window + 120 + INPUT_GIVE_UP,
            stalls=str(Path(http["workdir"]) / f"client-{i}-stalled.txt"),
        )
        for i in range(n)
    ]
    return None, asyncio.ensure_future(chaos_http.drive_all(shards))


class _Chaos:
    """The chaos of one phase: the gateway's faults, the workers' kills and the servers' restarts, all drawing on the
    run's one seeded `rng` (so a seed replays the same run), with what they did kept for the report."""

    def __init__(
        self,
        cfg: ChaosConfig,
        rng: random.Random,
        client: Client,
        server: DevServer,
        gw: RunningGateway,
        pool: Pool,
        log: Callable[[str], None],
        pg: Postgres | None,
        t0: float,
    ) -> None:
        self.cfg = cfg
        self.rng = rng
        self.client = client
        self.server = server
        self.gw = gw
        self.pool = pool
        self.log = log
        self.pg = pg
        self.t0 = t0
        self.fault_log: list[str] = []
        self.kill_pauses: list[float] = []
        self.background: list[asyncio.Task] = []

    async def faults(self) -> None:
        """New gateway faults every 5 to 12 s, until cancelled: errors and lost responses, latency, bursts of 429."""
        rng = self.rng
        half = self.cfg.faults / 2
        while True:
            settings = {
                "error_rate": half,
                "lost_response_rate": half,
                "latency_ms": rng.choice([0, 50, 150, 300]),
                "burst_429": rng.choice([0, 0, 5, 20]),
                "retry_after_s": 1,
                "seed": rng.randrange(1 << 30),
            }
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.gw.set_faults, **settings)
                self.fault_log.append(f"{settings['latency_ms']}ms/{settings['burst_429']}")
            await asyncio.sleep(rng.uniform(5, 12))

    async def pg_restart(self, last: bool) -> None:
        """Stops PostgreSQL and starts it again: a crash (immediate) for a moment, or, the last time, a clean stop for
        `cfg.pg_down` seconds."""
        assert self.pg is not None
        t0 = self.t0
        down, how = (self.cfg.pg_down, "fast") if last else (self.rng.uniform(1.0, 4.0), "immediate")
        self.log(f"t={time.monotonic() - t0:5.1f}s stopping PostgreSQL ({how}) for {down:.0f}s")
        took = await self.pg.restart(down, how)
        self.log(f"t={time.monotonic() - t0:5.1f}s PostgreSQL back after {took:.1f}s")

    async def kill(self, wp: WorkerProc) -> None:
        """SIGKILL one worker, and start a new one in its place after a drawn pause (none, or up to 8 s)."""
        pid = wp.proc.pid if wp.proc else None
        self.pool.starting.add(wp)  # from the kill to the end of its restart: not chosen again
        wp.kill()
        pause = self.rng.choice([0.0, 0.0, 1.0, 3.0, 8.0])
        self.kill_pauses.append(pause)
        self.log(f"t={time.monotonic() - self.t0:5.1f}s SIGKILL worker {wp.index} ({pid}); a new one in {pause:.0f}s")
        await asyncio.sleep(pause)
        await self.pool.restart(wp, self.client)

    async def run(self, events: list[tuple[float, str]]) -> None:
        """Each event at its time (a kill, a PostgreSQL restart or a Temporal restart), then waits for those still
        under way."""
        t0 = self.t0
        pg_events = [e for e in events if e[1] == "pg"]
        for at, what in events:
            delay = t0 + at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if what == "kill":
                choice = self.pool.killable()
                if not choice:  # every worker is down or starting: this kill has nothing to take
                    self.log(f"t={time.monotonic() - t0:5.1f}s no worker up to kill (all restarting)")
                    continue
                wp = self.rng.choice(choice)
                if len(self.pool.workers) == 1:
                    await self.kill(wp)
                else:  # the others go on meanwhile; kills are independent of each other
                    self.background.append(asyncio.create_task(self.kill(wp)))
            elif what == "pg":
                self.background.append(asyncio.create_task(self.pg_restart(last=(at, what) == pg_events[-1])))
            else:
                self.log(f"t={time.monotonic() - t0:5.1f}s stopping the Temporal server")
                down = await self.server.restart()
                self.log(f"t={time.monotonic() - t0:5.1f}s Temporal server back after {down:.1f}s")
        await asyncio.gather(*self.background)


async def settle(cfg: ChaosConfig, client: Client, repo: Repo, loans: list[str], log: Callable[[str], None]) -> None:
    """Until no case is behind and no contact has been in flight for a while (a contact row left pending by a
    workflow task that was lost with its worker, and never re-run, stays pending: the checks count it), or the
    settle timeout."""
    deadline = time.monotonic() + cfg.settle_timeout
    while True:
        statuses = await query_all(client, loans)
        stuck, worst = not_stuck(statuses, cfg.tolerance)
        quiet_since = utcnow() - dt.timedelta(seconds=8)
        with repo.session() as s:
            busy = len(
                list(s.scalars(select(ContactRow.id).where(ContactRow.status == "pending", ContactRow.updated_at > quiet_since)))
            )
        if (not stuck and busy == 0) or time.monotonic() > deadline:
            break
        log(f"settling: {len(stuck)} case(s) behind (worst {worst:.0f}s), {busy} contact(s) in flight")
        await asyncio.sleep(3)


@dataclass
class Snapshot:
    statuses: dict[str, CaseStatus]
    contacts: list[ContactRow]
    payments: list[PaymentRow]
    outbox: list[dict]
    later: list[ContactRow]  # the contact rows read again after the outbox (see `deliveries`)


async def snapshot(client: Client, repo: Repo, gw: RunningGateway, loans: list[str]) -> Snapshot:
    """Statuses first, then the database, then the gateway, then the contact rows again (see `deliveries`)."""
    statuses = await query_all(client, loans)
    with repo.session() as s:
        contacts = list(s.scalars(select(ContactRow)))
        payments = list(s.scalars(select(PaymentRow)))
    outbox = await asyncio.to_thread(fetch_outbox, gw, loans)
    with repo.session() as s:
        later = list(s.scalars(select(ContactRow)))
    return Snapshot(statuses, contacts, payments, outbox, later)


async def check_all(
    cfg: ChaosConfig,
    client: Client,
    models: list[Model],
    snap: Snapshot,
    counters: Counters,
    policy: Policy,
    workdir: Path,
    keys_env: dict[str, str],
) -> tuple[list[Check], float, dict]:
    """Every check on the snapshot, and every history replayed; with the most overdue next action (seconds) and the
    deliveries' figures."""
    by_loan = {m.loan_id: m for m in models}
    statuses = snap.statuses
    state = Check("state as inputs imply")
    bal = Check("balances add up")
    for m in models:
        st = statuses[m.loan_id]
        expected_state(m, st, state)
        balances(m, st, bal)
        state.checked += 1
        bal.checked += 1
    answers = Check("inputs answered as expected", checked=counters.inputs)
    for m in models:
        for u in m.unresolved + m.unexpected:
            answers.fail(f"{m.loan_id} ({m.kind}): {u}")
    led = Check("ledger once per payment id")
    ledger(by_loan, statuses, snap.payments, led)
    dl = Check("one delivery per step/action")
    b1 = Check("rerun recorded as delivered")
    dstats = deliveries(by_loan, statuses, snap.contacts, snap.outbox, snap.later, policy, dl, b1)
    hh = Check("no contact under a dispute")
    holds_honoured(by_loan, statuses, snap.contacts, hh)
    caps = Check("caps across a borrower's loans")
    caps_across_loans(by_loan, snap.later, policy, caps)
    sk = Check("no case stuck", checked=sum(1 for s in statuses.values() if s.status != "closed"))
    stuck, worst = not_stuck(statuses, cfg.tolerance)
    for s_ in stuck:
        sk.fail(s_)
    # every history, open and closed, every run, replayed with this checkout's code (app/replay.py)
    replayed, replay_failures = await replay_every_history(client, keep=workdir / "replay-failures")
    if replay_failures:  # with the run's key, so that they can be replayed by hand (python -m tests.import_history)
        (workdir / "replay-failures" / "payload-keys.env").write_text("".join(f"{k}={v}\n" for k, v in keys_env.items()))
    # Under worker kills and a server restart a few histories (0 to 2 of 100 in a small run) do not replay: the
    # worker that wrote their last task decided otherwise than a replay of the same history does. Found by this
    # check; the histories are kept in replay-failures/ and the defect is written up in docs/replay-divergence.md.
    rp = Check(
        "every history replays",
        checked=replayed,
        failures=replay_failures,
        finding="known, docs/replay-divergence.md: histories kept in replay-failures/",
    )
    return [answers, state, bal, led, dl, hh, caps, sk, b1, rp], worst, dstats


def summary_rows(
    cfg: ChaosConfig,
    kinds: list[str],
    models: list[Model],
    snap: Snapshot,
    dstats: dict,
    chaos: ChaosPhase,
    worker: Pool,
    server: DevServer,
    t_open: float,
    settled: float,
    worst: float,
    pg: Postgres | None = None,
    db_note: str = "SQLite",
) -> list[tuple[str, str]]:
    """The report's table: what was done to the cases, and what they came to."""
    return _what_was_done(cfg, kinds, models, chaos, worker, server, t_open, settled, pg, db_note) + _what_came_of_it(
        cfg, models, snap, dstats, chaos, worst
    )


def _what_was_done(
    cfg: ChaosConfig,
    kinds: list[str],
    models: list[Model],
    chaos: ChaosPhase,
    worker: Pool,
    server: DevServer,
    t_open: float,
    settled: float,
    pg: Postgres | None,
    db_note: str,
) -> list[tuple[str, str]]:
    """The rows on the run itself: the cases and borrowers, the database, the inputs' way in, the kills, restarts and
    faults."""
    gw_stats = chaos.gateway_stats
    return [
        (
            "cases",
            f"{cfg.cases} on policy chaos (demo ladder, {cfg.day_seconds}s day), "
            f"opened at DPD 1..130 in {chaos.start - t_open:.0f}s",
        ),
        ("scripts", ", ".join(f"{k} {n}" for k, n in sorted(Counter(kinds).items()))),
        (
            "borrowers",
            f"{len({m.borrower_id for m in models})} "
            f"({sum(1 for n in Counter(m.borrower_id for m in models).values() if n > 1)} with two or three loans)",
        ),
        (
            "database",
            db_note
            + (
                f"; {len(pg.restarts)} PostgreSQL restart(s) (down " + ", ".join(f"{d:.1f}s" for d in pg.restarts) + ")"
                if pg is not None
                else ""
            ),
        ),
        (
            "inputs via",
            "in process (app.inputs)"
            if cfg.via != "http"
            else f"the HTTP API, {cfg.clients} client processes (keep-alive, read timeout 40s; the API answers within 30s)",
        ),
        (
            "chaos window",
            f"{cfg.window:.0f}s; inputs all answered at {chaos.end - chaos.start:.0f}s; settled in {settled:.0f}s",
        ),
        (
            "worker SIGKILLs",
            f"{worker.kills} ({len(worker.workers)} worker process(es) at once, each killed at random; pauses before restart: "
            f"{', '.join(f'{p:.0f}s' for p in chaos.kill_pauses)}); {worker.starts} worker starts",
        ),
        ("server restarts", f"{len(server.restarts)} (down " + ", ".join(f"{d:.1f}s" for d in server.restarts) + ")"),
        (
            "gateway faults",
            f"503 {gw_stats['faults']['503']}, lost responses {gw_stats['faults']['502']}, "
            f"429 {gw_stats['faults']['429']} of {gw_stats['requests']} requests "
            f"({cfg.faults / 2:.0%} errors + {cfg.faults / 2:.0%} lost; latency/burst settings "
            f"changed {len(chaos.fault_log)} times)",
        ),
    ]


def _what_came_of_it(
    cfg: ChaosConfig, models: list[Model], snap: Snapshot, dstats: dict, chaos: ChaosPhase, worst: float
) -> list[tuple[str, str]]:
    """The rows on the outcome: what the gateway and the inputs were answered, the ledger, the deliveries, the cases'
    final states and stages, and the most overdue next action."""
    statuses, payments, gw_stats, counters = snap.statuses, snap.payments, chaos.gateway_stats, chaos.counters
    finals = Counter((statuses[m.loan_id].status, statuses[m.loan_id].outcome or "") for m in models)
    stages = Counter(statuses[m.loan_id].stage for m in models)
    applied = sum(1 for p in payments if p.status == "applied")
    return [
        (
            "gateway",
            f"accepted {gw_stats['accepted']}, duplicates answered from the outbox {gw_stats['duplicates']}, "
            f"rejected {gw_stats['rejected']}",
        ),
        (
            "inputs",
            f"{counters.inputs} sent in {counters.attempts} attempts; {counters.retried} needed a retry; "
            f"{counters.refused} refused as bad input; {counters.duplicates} duplicate payments; "
            f"{counters.unresolved} unresolved",
        ),
        (
            "attempts per input",
            "mean {:.2f}, p99 {} (goal: mean <= 1.2, p99 <= 3), max {}".format(
                *counters.attempts_per_input(), max(counters.per_input, default=0)
            ),
        ),
        ("no answer (retried)", ", ".join(f"{k} {n}" for k, n in counters.errors.most_common()) or "none"),
        ("ledger", f"{len(payments)} rows ({applied} applied, {len(payments) - applied} unapplied)"),
        (
            "deliveries",
            f"{dstats['outbox']} in the outbox; {dstats['contacts']} contact rows "
            f"({dstats['failed']} failed, {dstats['pending']} pending, of which {dstats['orphans']} "
            f"delivered in a workflow task lost with its worker and not run again)",
        ),
        ("final states", ", ".join(f"{s}{'/' + o if o else ''} {n}" for (s, o), n in sorted(finals.items()))),
        ("stages", ", ".join(f"{s} {n}" for s, n in sorted(stages.items(), key=lambda x: -x[1]))),
        ("most overdue next action", f"{worst:.1f}s (tolerance {cfg.tolerance:.0f}s)"),
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.chaos",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--cases", type=int, default=1000)
    p.add_argument("--kills", type=int, default=20, help="worker SIGKILLs during the run")
    p.add_argument("--server-restarts", type=int, default=2, help="Temporal dev server stops and starts")
    p.add_argument(
        "--faults", type=float, default=0.3, help="share of gateway requests that fail (half 503, half lost responses)"
    )
    p.add_argument("--seed", type=int, default=20261128)
    p.add_argument("--day-seconds", type=int, default=6, help="length of a policy day (the demo's: 6)")
    p.add_argument("--window", type=float, help="seconds of chaos (default: grows with --cases)")
    p.add_argument("--settle", type=float, help="seconds the cases get to catch up after the chaos")
    p.add_argument("--workdir", type=Path, help="where the server's, gateway's and app's databases and logs go")
    p.add_argument("--keep", action="store_true", help="keep the work directory (it is always kept after a failure)")
    p.add_argument(
        "--database",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="the application database: SQLite, or PostgreSQL (DATABASE_URL's server, else the embedded one, restarted)",
    )
    p.add_argument("--pg-restarts", type=int, help="PostgreSQL stops and starts (default 2; the last one long)")
    p.add_argument("--pg-down", type=float, default=20.0, help="seconds the last PostgreSQL restart stays down")
    p.add_argument("--workers", type=int, default=1, help="worker processes at once, killed independently")
    p.add_argument("--via", choices=("inprocess", "http"), default="inprocess", help="how inputs are sent")
    p.add_argument("--clients", type=int, default=3, help="client processes sending inputs through the API (--via http)")
    a = p.parse_args(argv)
    if a.workers < 1 or a.clients < 1:
        p.error("--workers, --clients: at least 1")
    if not 0 <= a.faults < 1:
        p.error("--faults: between 0 and 1")
    cfg = ChaosConfig(
        cases=a.cases,
        kills=a.kills,
        server_restarts=a.server_restarts,
        faults=a.faults,
        seed=a.seed,
        day_seconds=a.day_seconds,
        window=a.window,
        settle_timeout=a.settle,
        workdir=a.workdir,
        keep=a.keep,
        database=a.database,
        pg_restarts=a.pg_restarts,
        pg_down=a.pg_down,
        workers=a.workers,
        via=a.via,
        clients=a.clients,
    )
    report = asyncio.run(run(cfg))
    print()
    print(report.table())
    if report.failures:
        print(f"\nwork directory kept: {report.workdir}")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
