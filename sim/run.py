"""Run a champion and a challenger policy over one synthetic portfolio, on the real case workflows.

The stack is the real one, in miniature and on a simulated clock: the time-skipping Temporal test
server, a worker with the real `CollectionCase` workflow and activities (contact gate, channels,
ledger, audit trail), a migrated SQLite database in a temporary folder and the sandbox gateway.

The simulated day: the clock is moved to the day's checkpoint (11:00 Beijing time, when every
borrower's contact window is open); on the way, every case runs the steps, gate checks and
deliveries that fall due. At the checkpoint the simulator reads what the cases did (new contact
rows, closed cases) from the database in one query each, lets each borrower decide, and applies
the decisions, in loan-id order and with bounded concurrency, through the updates operators use.
Each loan gets at most one update per checkpoint, so a case has finished reacting to one before
it is queried for the next.

Determinism: everything a case does depends on its own inputs and the simulated clock. The clock
starts on a fixed date (`--start`, default 1 January next year), and each checkpoint is set at
least a day after the previous day's updates ended, so that no timer a case set in reaction to an
update can fire while the next day's updates are being applied: the checkpoint may drift later
by the wall time spent applying updates, never into the night.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from domain.models import CaseInput, CaseStatus
from domain.money import parse_amount
from domain.policy import Policy, load_policy
from infra.config import SimSettings, load, var_dir
from sim import sweep
from sim.behaviour import Action, Borrower, call_script
from sim.clock import (
    CHECKPOINT_AT,
    checkpoint_anchor,
    default_start,
    direct_default_start,
    temporal_refusal,
    warn_calendar,
)
from sim.generate import SimLoan, guarantor_row, portfolio
from sim.seeds import loan_rng

TASK_QUEUE = "simulation"
# contact rows an operator's recorded call or visit outcome adds to the ledger (activities: step "operator"); the
# simulated borrower made them, by its own visit report: showing them to it again as a visit started a loop of reports
OPERATOR_STEP = "operator"
MAX_DRIFT = timedelta(hours=7)
# one simulated day of a large portfolio, on a busy machine;
# past this the checkpoint would come near the end of the contact window
SLICE_DEADLINE = timedelta(hours=2)
SA_TYPES = {
    "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "Bool": IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
    "Double": IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
    "Datetime": IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
}


@dataclass
class Options:
    champion: str = "default"
    challenger: str = "policies/challenger-early-legal.toml"
    loans: int = 1000
    days: int = 365
    seed: int = 7
    out: Path | None = None
    split: str = "alternate"
    start: date | None = None
    concurrency: int = 64
    keep_db: bool = False
    progress: bool = True
    engine: str = "direct"  # direct: the pure cases on an event queue (sim.direct); temporal: the real workflows
    workers: int | None = None  # direct: processes (default: the core count)
    finals: bool = False  # also return each case's final figures (the engines' agreement test)

    def report_dir(self, names: tuple[str, str]) -> Path:
        if self.out is not None:
            return Path(self.out)
        return var_dir() / "sim" / f"{names[0]}-vs-{names[1]}-seed{self.seed}-{self.loans}x{self.days}d"


@dataclass
class Trace:
    """What the run observed, for the report."""

    anchor: datetime
    start: date
    checkpoints: list[datetime] = field(default_factory=list)  # simulated time of each day's checkpoint
    accepted: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))  # arm -> update label
    rejected: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))  # arm -> "label: field"
    rejections: list[str] = field(default_factory=list)  # the first few, in full
    failed_workflows: list[str] = field(default_factory=list)
    recoveries: dict[str, list] = field(default_factory=lambda: defaultdict(list))  # loan -> [(time, minor)]
    wall: dict[str, float] = field(default_factory=dict)
    drift: timedelta = timedelta(0)


# ------------------------------------------------------------------------------------------ setup


async def register_search_attributes(client: Client) -> None:
    from workflows import search

    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=client.namespace, search_attributes={key.name: SA_TYPES[t] for key, t in search.CLI_TYPES.items()}
        )
    )


def seed_database(engine, loans: list[SimLoan], seed: int, start: date) -> None:
    """Borrowers (and guarantors) and loans into the system of record, in batches, before any case starts."""
    from db.tables import BorrowerRow, LoanRow, utcnow

    now = utcnow()
    people, rows = [], []
    for ln in loans:
        people.append(
            {
                "id": ln.borrower_id,
                "name": ln.name,
                "phone": ln.phone,
                "email": ln.email,
                "address": ln.address,
                "timezone": ln.timezone,
                "language": ln.language,
                "created_at": now,
                "updated_at": now,
            }
        )
        if ln.guarantor_id:
            people.append(guarantor_row(seed, ln) | {"created_at": now, "updated_at": now})
        rows.append(
            {
                "id": ln.loan_id,
                "borrower_id": ln.borrower_id,
                "guarantor_id": ln.guarantor_id,
                "currency": "CNY",
                "principal": ln.principal,
                "interest": ln.interest,
                "fees": ln.fees,
                "due_date": due_date(ln, start),
                "product": "personal_loan",
                "segment": ln.segment,
                "policy": ln.arm,
                "created_at": now,
                "updated_at": now,
            }
        )
    with engine.begin() as conn:
        for table, items in ((BorrowerRow.__table__, people), (LoanRow.__table__, rows)):
            for i in range(0, len(items), 500):
                conn.execute(sqlite_insert(table).on_conflict_do_nothing(index_elements=["id"]), items[i : i + 500])


def due_date(loan: SimLoan, start: date) -> date:
    """The missed due date: DPD `start_dpd` on the start date, in the borrower's zone."""
    return start - timedelta(days=loan.start_dpd)


# ------------------------------------------------------------------------------------------ the run


class Simulation:
    def __init__(self, opts: Options, policies: dict[str, Policy], loans: list[SimLoan]) -> None:
        self.opts = opts
        self.policies = policies
        self.loans = loans
        self.by_id = {ln.loan_id: ln for ln in loans}
        self.borrowers: dict[str, Borrower] = {}
        self.closed: set[str] = set()
        self.watermark = 0
        self.pending: set[int] = set()
        self.sem = asyncio.Semaphore(opts.concurrency)

    # ---- the clock

    async def advance_to(self, env: WorkflowEnvironment, target: datetime) -> None:
        """Move the simulated clock to `target`, in slices of at most a day (one RPC each).

        What `env.sleep` does, with a deadline long enough for a busy simulated day: thousands of cases
        may run a step in one slice, and the RPC returns only when they are all done.
        """
        from temporalio.api.testservice.v1 import SleepRequest

        while True:
            now = await env.get_current_time()
            if now >= target:
                return
            req = SleepRequest()
            req.duration.FromTimedelta(min(target - now, timedelta(days=1)))
            await env.client.test_service.unlock_time_skipping_with_sleep(req, timeout=SLICE_DEADLINE)

    # ---- reading what the cases did

    def read_contacts(self, engine) -> dict[str, list[tuple]]:
        """New contact rows since the last checkpoint, by loan; rows still pending are read again next time."""
        ids = ",".join(str(i) for i in sorted(self.pending)) or "-1"
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    f"SELECT id, loan_id, step, action, status, outcome, at FROM contact_attempts WHERE id > :w OR id IN ({ids})"
                ),
                {"w": self.watermark},
            ).all()
        out: dict[str, list[tuple]] = defaultdict(list)
        for r in rows:
            self.watermark = max(self.watermark, r.id)
            if r.step == OPERATOR_STEP:
                continue  # a conversation the borrower's own input recorded (a visit report): not a new contact to answer
            if r.status == "pending":
                self.pending.add(r.id)
                continue
            self.pending.discard(r.id)
            out[r.loan_id].append((str(r.at or ""), r.action, r.status, r.outcome or ""))
        return out

    def read_closed(self, engine) -> None:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT loan_id FROM cases WHERE status = 'closed'")).all()
        for r in rows:
            if r.loan_id not in self.closed:
                self.closed.add(r.loan_id)
                b = self.borrowers.get(r.loan_id)
                if b is not None:
                    b.closed = True

    # ---- acting

    async def act(self, client: Client, b: Borrower, day: int, trace: Trace) -> None:
        """The borrower's first due action today, through the case's update; the rest wait for tomorrow."""
        from workflows.case import CollectionCase

        async with self.sem:
            actions = b.due(day)
            handle = client.get_workflow_handle(b.loan.workflow_id)
            arm = b.loan.arm
            for later in actions[1:]:
                b.schedule(day + 1, later.kind, **later.args)
            a: Action = actions[0]
            try:
                status = await handle.query(CollectionCase.status)
            except RPCError as exc:
                trace.rejected[arm][f"{a.kind}: query failed"] += 1
                self._note(trace, f"{b.loan.loan_id} day {day} query: {exc}")
                return
            update = b.answer(a, status)
            if update is None:
                return
            try:
                result = await handle.execute_update(getattr(CollectionCase, update.name), update.arg)
            except WorkflowUpdateFailedError as exc:
                cause = exc.cause
                why = cause.message.split(":", 1)[0] if isinstance(cause, ApplicationError) else type(cause).__name__
                trace.rejected[arm][f"{update.label}: {why}"] += 1
                self._note(
                    trace,
                    f"{b.loan.loan_id} day {day} {update.label}: "
                    f"{cause.message if isinstance(cause, ApplicationError) else cause}",
                )
                return
            except RPCError as exc:  # the case closed in between
                trace.rejected[arm][f"{update.label}: case closed"] += 1
                self._note(trace, f"{b.loan.loan_id} day {day} {update.label}: {exc}")
                b.closed = True
                return
            trace.accepted[arm][update.label] += 1
            if update.label == "court_enforcement_result":  # to check the ledger against (see sim.report)
                trace.recoveries[b.loan.loan_id].append((trace.checkpoints[-1], parse_amount(update.arg.amount, "CNY")))
            b.accepted(a, update, result)

    @staticmethod
    def _note(trace: Trace, line: str) -> None:
        if len(trace.rejections) < 50:
            trace.rejections.append(line)

    async def start_cases(self, client: Client, start: date) -> None:
        from app.opening import start_case

        async def one(ln: SimLoan) -> None:
            inp = CaseInput(
                loan_id=ln.loan_id,
                borrower_id=ln.borrower_id,
                guarantor_id=ln.guarantor_id,
                currency="CNY",
                principal=ln.principal,
                interest=ln.interest,
                fees=ln.fees,
                due_date=due_date(ln, start),
                timezone=ln.timezone,
                segment=ln.segment,
                policy=self.policies[ln.arm],
            )
            async with self.sem:
                await start_case(client, inp, TASK_QUEUE)

        await asyncio.gather(*(one(ln) for ln in self.loans))

    async def run(self, env: WorkflowEnvironment, engine, trace: Trace, progress=None) -> None:
        client = env.client
        opts = self.opts
        t0 = time.perf_counter()
        await self.start_cases(client, trace.start)
        trace.wall["start_cases"] = time.perf_counter() - t0
        phase_end = await env.get_current_time()
        trace.checkpoints.append(trace.anchor)
        for day in range(1, opts.days + 1):
            nominal = trace.anchor + timedelta(days=day)
            target = max(nominal, phase_end + timedelta(days=1, milliseconds=100))
            await self.advance_to(env, target)
            trace.checkpoints.append(await env.get_current_time())
            trace.drift = max(trace.drift, trace.checkpoints[-1] - nominal)
            if trace.drift > MAX_DRIFT:
                raise RuntimeError(
                    f"the checkpoint drifted {trace.drift} past {CHECKPOINT_AT} Beijing time: "
                    "updates take too long per simulated day (lower --loans or raise --concurrency)"
                )
            contacts = await asyncio.to_thread(self.read_contacts, engine)
            await asyncio.to_thread(self.read_closed, engine)
            for loan_id in sorted(contacts):
                b = self.borrowers[loan_id]
                for _at, action, status, outcome in sorted(contacts[loan_id]):
                    b.on_contact(day, action, status, outcome or None)
            acting = [b for _, b in sorted(self.borrowers.items()) if b.has_due(day)]
            await asyncio.gather(*(self.act(client, b, day, trace) for b in acting))
            phase_end = await env.get_current_time()
            if progress is not None:
                progress(day)
        trace.wall["days"] = time.perf_counter() - t0 - trace.wall["start_cases"]


# ------------------------------------------------------------------------------------------ entry point


def quiet_logs() -> None:
    """The activities log each delivery; a simulation makes hundreds of thousands. Errors only."""
    from infra import logging as applog

    cfg = load(SimSettings)
    applog.configure(cfg.log_format, cfg.sim_log_level)


async def simulate(opts: Options) -> dict:
    """Run the comparison and write the report; returns the summary (also in summary.json)."""
    from activities.gateway import GatewayClient, GatewaySettings
    from app.errors import BadInput
    from db.engine import make_engine, migrate
    from db.repo import Repo
    from devstack.binaries import find
    from encryption import codec
    from sandbox.gateway import running_gateway

    start = opts.start or default_start(datetime.now(UTC))
    refused = temporal_refusal(start, opts.days, datetime.now(UTC))
    if refused is not None:
        raise BadInput("start", refused)
    quiet_logs()
    wall0 = time.perf_counter()
    policies = {"champion": load_policy(opts.champion), "challenger": load_policy(opts.challenger)}
    names = (policies["champion"].name, policies["challenger"].name)
    out = opts.report_dir(names)
    loans = portfolio(opts.seed, opts.loans, opts.split)
    keyring = codec.Keyring.parse(codec.new_key_entry("simulation"))
    tmp = tempfile.TemporaryDirectory(prefix="collections-sim-")
    db_path = (out / "simulation.db") if opts.keep_db else Path(tmp.name) / "simulation.db"
    if opts.keep_db:
        out.mkdir(parents=True, exist_ok=True)
        db_path.unlink(missing_ok=True)
    url = f"sqlite:///{db_path}"
    try:
        await asyncio.to_thread(migrate, url)
        engine = make_engine(url)
        repo = Repo(engine)
        with running_gateway(api_key="simulation-key", db_path=Path(tmp.name) / "outbox.sqlite3") as gw:
            _script_calls(gw, loans, opts.seed)
            env = await WorkflowEnvironment.start_time_skipping(
                data_converter=codec.data_converter(keyring),
                test_server_existing_path=find("temporal-test-server"),
                runtime=_runtime(),
            )
            gateway = GatewayClient(GatewaySettings(url=gw.url, api_key=gw.api_key, timeout=30, max_connections=64))
            try:
                summary, finals = await _run_on(env, engine, repo, gateway, opts, policies, loans, start, out, wall0)
            finally:
                await gateway.aclose()
                await env.shutdown()
        engine.dispose()
    finally:
        tmp.cleanup()
    summary["wall_seconds"] = round(time.perf_counter() - wall0, 1)
    if finals is not None:
        summary["finals"] = finals
    return summary


def _script_calls(gw, loans: list[SimLoan], seed: int) -> None:
    """Tells the gateway how each borrower answers calls (their profile's script, drawn from their own seed), in
    parts of 2,000 loans to keep each request small."""
    gw.script_calls({})  # reachable
    scripts = {ln.loan_id: call_script(ln.profile, loan_rng(seed, ln.loan_id, "calls")) for ln in loans}
    items = sorted(scripts.items())
    for i in range(0, len(items), 2000):
        gw.script_calls(dict(items[i : i + 2000]))


async def _run_on(
    env: WorkflowEnvironment,
    engine,
    repo,
    gateway,
    opts: Options,
    policies: dict,
    loans: list[SimLoan],
    start: date,
    out: Path,
    wall0: float,
) -> tuple[dict, dict[str, dict] | None]:
    """The simulation on the time-skipping server, from the first checkpoint to the last day, then its report:
    (the report's summary, each case's final figures when asked for)."""
    from app.errors import BadInput
    from sim import report

    await register_search_attributes(env.client)
    now = await env.get_current_time()
    refused = temporal_refusal(start, opts.days, now)
    if refused is not None:  # the day turned between the check above and the server's start
        raise BadInput("start", refused)
    anchor = checkpoint_anchor(start)
    await asyncio.to_thread(seed_database, engine, loans, opts.seed, start)
    await env.sleep(anchor - now)
    trace = Trace(anchor=await env.get_current_time(), start=start)
    sim = Simulation(opts, policies, loans)
    sim.borrowers = {ln.loan_id: Borrower(ln, opts.seed, policies[ln.arm], start, opts.days) for ln in loans}
    worker = _sim_worker(env, repo, gateway, len(loans))
    progress = _progress(opts) if opts.progress else None
    finals = None
    async with worker:
        try:
            await sim.run(env, engine, trace, progress.tick if progress else None)
        finally:
            if progress:
                progress.close()
        await asyncio.to_thread(sim.read_closed, engine)
        trace.failed_workflows = await _failed(env.client, sim)
        if opts.finals:
            finals = await _finals(env.client, sim)
    trace.wall["total_sim"] = time.perf_counter() - wall0
    summary = await asyncio.to_thread(report.build, out, opts, policies, loans, engine, trace)
    return summary, finals


def _sim_worker(env: WorkflowEnvironment, repo, gateway, n_loans: int):
    """The production worker, tuned for thousands of cases waking at one simulated instant."""
    from activities.case import CaseActivities
    from worker import build_worker

    return build_worker(
        env.client,
        CaseActivities(repo, gateway),
        task_queue=TASK_QUEUE,
        max_cached_workflows=n_loans + 100,  # every case stays cached: no replays
        # when thousands of cases wake at the same simulated instant (08:00 after a holiday), their
        # tasks queue on this worker's sticky queue longer than the default 10 s; moved to the normal
        # queue they would be replayed from their history
        sticky_queue_schedule_to_start_timeout=timedelta(hours=1),
        # activations run in threads under one GIL: many at once only starve each other (and trip the
        # SDK's 2-second deadlock detector); the local activities overlap their I/O
        max_concurrent_workflow_tasks=16,
        max_concurrent_local_activities=200,
        workflow_failure_exception_types=[Exception],  # a bug fails its case instead of stalling time
    )


async def _finals(client: Client, sim: Simulation) -> dict[str, dict]:
    """Each case's final figures, from its status query (what sim.direct.final_of gives for the direct engine)."""
    from workflows.case import CollectionCase

    async def one(ln: SimLoan) -> tuple[str, dict]:
        handle = client.get_workflow_handle(ln.workflow_id, result_type=CaseStatus)
        async with sim.sem:  # a closed case returned its status; a running one is asked
            st = await (handle.result() if ln.loan_id in sim.closed else handle.query(CollectionCase.status))
        return ln.loan_id, {
            "status": st.status,
            "outcome": st.outcome,
            "total_paid": parse_amount(st.total_paid, "CNY", allow_zero=True),
            "steps_done": list(st.steps_done),
            "contacts": dict(sorted(st.contacts.items())),
        }

    return dict(await asyncio.gather(*(one(ln) for ln in sim.loans)))


def simulate_direct(opts: Options) -> dict:
    """The comparison on the direct engine (sim.direct): the same portfolio, borrowers, rules and report."""
    from sim import direct, report

    wall0 = time.perf_counter()
    policies = {"champion": load_policy(opts.champion), "challenger": load_policy(opts.challenger)}
    names = (policies["champion"].name, policies["challenger"].name)
    out = opts.report_dir(names)
    start = opts.start or direct_default_start(datetime.now(UTC))
    gaps = warn_calendar(start, opts.days)
    anchor = checkpoint_anchor(start)
    job = direct.Job(
        policies=policies, seed=opts.seed, days=opts.days, start=start, anchor=anchor, split=opts.split, finals=opts.finals
    )
    res = direct.run(job, opts.loans, opts.workers)
    trace = trace_of(res, anchor, start, opts.days)
    trace.wall["simulate"] = time.perf_counter() - wall0
    trace.wall["total_sim"] = trace.wall["simulate"]
    summary = report.build(out, opts, policies, res.loans, None, trace, data=res.data())  # the workers drew the loans
    summary["wall_seconds"] = round(time.perf_counter() - wall0, 1)
    summary["cpu_seconds"] = round(res.cpu, 1)
    summary["run"]["calendar_missing"] = gaps
    if opts.finals:
        summary["finals"] = res.finals
    return summary


def trace_of(res, anchor: datetime, start: date, days: int) -> Trace:
    """The direct engine's results as the report reads a run's trace (checkpoints without drift)."""
    trace = Trace(anchor=anchor, start=start)
    trace.checkpoints = [anchor + timedelta(days=d) for d in range(days + 1)]
    for arm, c in res.accepted.items():
        trace.accepted[arm].update(c)
    for arm, c in res.rejected.items():
        trace.rejected[arm].update(c)
    trace.rejections = [text for _, _, text in res.rejections[:50]]
    for loan_id, rec in res.recoveries.items():
        trace.recoveries[loan_id] = list(rec)
    return trace


def _runtime():
    """The SDK core's own log lines (it warns that the test server is old) at errors only, on stderr's side."""
    from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter

    return Runtime(
        telemetry=TelemetryConfig(logging=LoggingConfig(filter=TelemetryFilter(core_level="ERROR", other_level="ERROR")))
    )


async def _failed(client: Client, sim: Simulation) -> list[str]:
    """Cases whose workflow failed (a bug in workflow code), among those not closed as a case.
    (The test server has no visibility queries: each is described.)"""
    from temporalio.client import WorkflowExecutionStatus

    async def one(ln: SimLoan) -> str | None:
        async with sim.sem:
            d = await client.get_workflow_handle(ln.workflow_id).describe()
        return ln.workflow_id if d.status not in (WorkflowExecutionStatus.RUNNING, WorkflowExecutionStatus.COMPLETED) else None

    found = await asyncio.gather(*(one(ln) for ln in sim.loans if ln.loan_id not in sim.closed))
    return sorted(f for f in found if f)


class _progress:
    """A line every 30 simulated days on stderr (a rich progress bar on a terminal)."""

    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.t0 = time.perf_counter()
        self.bar = None
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(
                TextColumn("simulated days"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=Console(stderr=True)
            )
            self.task = self.bar.add_task("days", total=opts.days)
            self.bar.start()

    def tick(self, day: int) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=day)
        elif day % 30 == 0 or day == self.opts.days:
            print(
                f"simulated day {day}/{self.opts.days} after {time.perf_counter() - self.t0:.0f} s", file=sys.stderr, flush=True
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


async def main(a) -> int:
    """`starter.py simulate` (argparse namespace in, exit code out)."""
    from app.errors import BadInput
    from domain.errors import InvalidInput
    from sim import report

    if a.challenger is None and not getattr(a, "sweep", None):
        raise BadInput("challenger", "a challenger policy is required (or --sweep to vary the champion)")
    for fld, name in (("policy", a.policy), ("challenger", a.challenger)):
        if name is None:
            continue
        try:
            load_policy(name)
        except InvalidInput as exc:
            raise BadInput(fld, exc.reason if exc.field == "policy" else str(exc)) from None
    engine = getattr(a, "engine", "direct")
    workers = getattr(a, "workers", None)
    if workers is not None and workers < 1:
        raise BadInput("workers", f"{workers} must be at least 1")
    sweeps = getattr(a, "sweep", None) or []
    if sweeps:
        if engine != "direct":
            raise BadInput("engine", "a sweep runs on the direct engine only (--engine direct)")
        return sweep.main(a, sweeps)
    opts = Options(
        champion=a.policy,
        challenger=a.challenger,
        loans=a.loans,
        days=a.days,
        seed=a.seed,
        out=Path(a.out) if a.out else None,
        split=a.split,
        start=a.start,
        concurrency=a.concurrency,
        keep_db=a.keep_db,
        progress=not a.json,
        engine=engine,
        workers=workers,
    )
    if engine == "direct":
        if a.keep_db:
            raise BadInput("keep-db", "the direct engine keeps no database (use --engine temporal)")
        summary = await asyncio.to_thread(simulate_direct, opts)
    else:
        summary = await simulate(opts)
    if a.json:
        import json

        print(json.dumps(summary, indent=2, ensure_ascii=False, default=str))
    else:
        report.print_table(summary)
        print(f"\nreport: {summary['report']}  ({summary['wall_seconds']} s)")
    return 0
