"""4. Portfolio: N loans walking 365 days of the default ladder (open contact hours) on the
time-skipping test server, with payments, promises, plans and holds, real activities (database and
sandbox gateway). The loans fall delinquent over the first `spread` days (a daily intake), and the
day loop sends each day's inputs, then moves the server's clock a day with env.sleep (never
handle.result(), which would unlock time skipping and jump the clock)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from temporalio.api.testservice.v1 import SleepRequest
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError

from app.opening import start_case
from bench.harness import OPEN_DEFAULT, TZ, WorkerProcess, calendar_stand_ins, case_inputs, target, time_skipping_server
from bench.live import cpu_seconds
from bench.profiling import Profiler
from bench.report import Row, Table
from db.tables import CaseRow, ContactRow
from domain.dates import local_date
from domain.models import CaseInput, HoldIn, OutcomeIn, PaymentIn, PlanIn, PromiseIn, ReleaseIn, workflow_id
from infra.config import settings
from workflows.case import CollectionCase

FULL = "10520.00"  # 10,000.00 principal + 500.00 interest + 20.00 fees (harness.case_inputs)
# cohort per loan index modulo 20: what happens to the loan after it falls delinquent
COHORTS = (
    ["ladder"] * 6
    + ["ladder_no_judgment"] * 2
    + ["paid"] * 3
    + ["partial"] * 2
    + ["promise_kept", "promise_broken", "plan_kept", "plan_broken", "hardship", "dispute", "deferral_kept"]
)


@dataclass
class Loan:
    inp: CaseInput
    cohort: str
    start_day: int
    n: int = 0
    plan: list[tuple[dt.date, str]] = field(default_factory=list)


def pay(pid: str, amount: str) -> PaymentIn:
    return PaymentIn(payment_id=pid, amount=amount, currency="CNY")


class Simulation:
    def __init__(self, client: Client, task_queue: str, loans: list[Loan], day0: dt.date, concurrency: int) -> None:
        self.client = client
        self.tq = task_queue
        self.loans = loans
        self.day0 = day0
        self.sem = asyncio.Semaphore(concurrency)
        self.agenda: dict[int, list[tuple[Loan, str, Any]]] = {}
        self.sent = Counter()
        self.refused = Counter()
        for loan in loans:
            self._plan(loan)

    def at(self, day: int, loan: Loan, what: str, arg: Any = None) -> None:
        self.agenda.setdefault(day, []).append((loan, what, arg))

    def date(self, day: int) -> dt.date:
        return self.day0 + dt.timedelta(days=day)

    def _plan(self, loan: Loan) -> None:
        s, c, i = loan.start_day, loan.cohort, loan.n
        self.at(s, loan, "start")
        if c == "ladder":
            # effective the day it is recorded, performance within 10 days (the dates the enforcement clock counts from)
            self.at(
                s + 128,
                loan,
                "outcome",
                OutcomeIn(
                    kind="court",
                    outcome="judgment",
                    reference=f"(2026)沪0101民初{i}号",
                    effective_on=self.date(s + 128),
                    performance_ends=self.date(s + 138),
                ),
            )
        elif c == "paid":
            self.at(s + 3 + (i * 7) % 170, loan, "pay", FULL)
        elif c == "partial":
            for d in (5, 35, 65):
                self.at(s + d, loan, "pay", "500.00")
        elif c in ("promise_kept", "promise_broken"):
            self.at(s + 3, loan, "promise", PromiseIn(amount="2000.00", date=self.date(s + 10)))
            if c == "promise_kept":
                self.at(s + 9, loan, "pay", "2000.00")
        elif c in ("plan_kept", "plan_broken"):
            self.at(
                s + 5,
                loan,
                "plan",
                PlanIn(kind="instalments", instalments=3 if c == "plan_kept" else 4, first_due=self.date(s + 12)),
            )
        elif c == "hardship":
            self.at(s + 8, loan, "hold", HoldIn(kind="hardship", until=self.date(s + 68), reference="lost job"))
        elif c == "dispute":
            self.at(s + 20, loan, "hold", HoldIn(kind="dispute", reference="amount disputed"))
            self.at(s + 50, loan, "release", ReleaseIn(kind="dispute", resolution="amount confirmed"))
        elif c == "deferral_kept":
            self.at(s + 4, loan, "plan", PlanIn(kind="deferral", until=self.date(s + 60)))
            self.at(s + 55, loan, "pay", FULL)

    async def _do(self, day: int, loan: Loan, what: str, arg: Any) -> None:
        async with self.sem:
            if what == "start":
                assert await start_case(self.client, loan.inp, self.tq)
                self.sent[what] += 1
                return
            h = self.client.get_workflow_handle(workflow_id(loan.inp.loan_id))
            try:
                if what == "pay":
                    await h.execute_update(CollectionCase.record_payment, pay(f"P{loan.inp.loan_id}-{day}", arg))
                elif what == "promise":
                    await h.execute_update(CollectionCase.promise_to_pay, arg)
                elif what == "plan":
                    r = await h.execute_update(CollectionCase.agree_plan, arg)
                    if loan.cohort == "plan_kept":
                        for due, amount in r.schedule:
                            self.at(day + (due - self.date(day)).days, loan, "pay", amount)
                    elif loan.cohort == "plan_broken" and r.schedule:
                        due, amount = r.schedule[0]
                        self.at(day + (due - self.date(day)).days, loan, "pay", amount)
                elif what == "hold":
                    await h.execute_update(CollectionCase.place_hold, arg)
                elif what == "release":
                    await h.execute_update(CollectionCase.release_hold, arg)
                elif what == "outcome":
                    await h.execute_update(CollectionCase.record_outcome, arg)
                self.sent[what] += 1
            except (WorkflowUpdateFailedError, RPCError) as exc:  # e.g. the case already closed
                self.refused[f"{what}: {type(exc).__name__}"] += 1

    async def run(self, days: int, sleep) -> None:
        for day in range(days + 1):
            todo = self.agenda.pop(day, [])
            if todo:
                await asyncio.gather(*(self._do(day, *item) for item in todo))
            if day < days:
                await sleep()


async def run(
    n: int,
    days: int,
    spread: int,
    concurrency: int,
    db_factory,
    gw,
    tuning: dict,
    history_sample: int = 20,
    worker_kw: dict | None = None,
    profile: bool = False,
    profiles: dict | None = None,
    activities: str = "real",
) -> Table:
    """Item 4: `n` loans opened over `spread` days, walked through `days` days on the time-skipping server by the
    simulated borrowers (Simulation), with the worker's CPU, the outcome and the cases' history lengths."""
    tag = uuid.uuid4().hex[:6]
    calendars, stand_ins = _calendars()
    async with time_skipping_server() as env:
        with db_factory() as db:
            task_queue = f"portfolio-{tag}"
            async with WorkerProcess(
                target(env.client),
                task_queue,
                db.url,
                gw.url,
                gw.api_key,
                tuning=tuning,
                name=f"portfolio-worker-{activities}",
                activities=activities,
                env={"COLLECTIONS_CALENDAR_DIR": calendars},
                **(worker_kw or {}),
            ) as worker:
                now = await env.get_current_time()
                day0 = local_date(now, TZ)
                loans = _loans(tag, n, now, day0, spread)
                await asyncio.to_thread(db.seed, [x.inp for x in loans])
                sim = Simulation(env.client, task_queue, loans, day0, concurrency)
                prof = Profiler(f"worker-portfolio-{activities}", worker.pid) if profile else None
                wall, cpu = await _the_year(env, worker, sim, days, prof)
                if prof is not None and profiles is not None:
                    profiles[prof.name] = prof.summary_path
                by_status, contacts = _outcome(db)
                sizes, stages = await _histories(env, loans, history_sample)
    if stand_ins is not None:
        stand_ins.cleanup()
    table = _table(n, days, activities, wall, cpu, sizes)
    table.facts = {
        "loans": n,
        "intake spread (days)": spread,
        "updates sent": dict(sim.sent),
        "updates refused (case closed or not due)": dict(sim.refused),
        "cases by status:outcome": dict(by_status),
        "contacts recorded": contacts,
        "ladder cases' stage at the end (sample)": dict(stages),
        "history events per cohort (max)": {k: max(v) for k, v in sizes.items()},
        "concurrency": concurrency,
        "worker CPU (s)": round(cpu, 1),
        "calendars": "official files, with BENCH ONLY stand-ins for the later years" if stand_ins is not None else calendars,
    }
    return table


def _calendars() -> tuple[str | None, tempfile.TemporaryDirectory | None]:
    """The worker's calendar folder, and the temporary folder of stand-ins made for it (None when the caller named one).

    The time-skipping clock runs a year ahead, past the last official calendar: stand-ins for the later years
    (unless the caller, the test suite, already names a folder of its own)."""
    configured = settings().calendar_dir
    calendars = str(configured) if configured else None
    stand_ins = None if calendars else tempfile.TemporaryDirectory(prefix="bench-calendars-")
    if stand_ins is not None:
        calendars = str(calendar_stand_ins(Path(stand_ins.name)))
    return calendars, stand_ins


def _loans(tag: str, n: int, now: dt.datetime, day0: dt.date, spread: int) -> list[Loan]:
    """The portfolio: loan i starts on day i % spread, in cohort i % len(COHORTS)."""
    loans = []
    for i, inp in enumerate(case_inputs(f"F{tag}", n, now, dpd=1, policy=OPEN_DEFAULT)):
        start_day = i % spread
        # due one day before its start day: the case opens at DPD 1 on that day
        inp = inp.model_copy(update={"due_date": day0 + dt.timedelta(days=start_day - 1)})
        loans.append(Loan(inp, COHORTS[i % len(COHORTS)], start_day, i))
    return loans


async def _the_year(env, worker: WorkerProcess, sim: Simulation, days: int, prof: Profiler | None) -> tuple[float, float]:
    """Runs the simulation day by day, skipping the server's clock a day at a time: (wall seconds, worker CPU seconds)."""

    async def one_day() -> None:
        req = SleepRequest()
        req.duration.FromTimedelta(dt.timedelta(days=1))
        await env.client.test_service.unlock_time_skipping_with_sleep(req, timeout=dt.timedelta(minutes=30))

    cpu0 = cpu_seconds(worker.pid)
    t = time.perf_counter()
    with prof or contextlib.nullcontext():
        await sim.run(days, one_day)
    wall = time.perf_counter() - t
    return wall, cpu_seconds(worker.pid) - cpu0


def _outcome(db) -> tuple[Counter, int | None]:
    """The cases by status and outcome and the contacts recorded, from the database's projection (no query per case)."""
    with db.repo.session() as s:
        by_status = Counter(
            {
                f"{st}:{oc or '-'}": k
                for st, oc, k in s.execute(
                    select(CaseRow.status, CaseRow.outcome, func.count()).group_by(CaseRow.status, CaseRow.outcome)
                )
            }
        )
        contacts = s.scalar(select(func.count()).select_from(ContactRow))
    return by_status, contacts


async def _histories(env, loans: list[Loan], history_sample: int) -> tuple[dict[str, list[int]], Counter]:
    """History lengths of cases that walked the whole ladder (to enforcement) and of every cohort, and the stage a
    few ladder cases ended at."""
    sizes: dict[str, list[int]] = {}
    for cohort in dict.fromkeys(COHORTS):
        picked = [x for x in loans if x.cohort == cohort][: history_sample if cohort == "ladder" else 3]
        for x in picked:
            h = env.client.get_workflow_handle(workflow_id(x.inp.loan_id))
            events = [e async for e in h.fetch_history_events()]
            sizes.setdefault(cohort, []).append(len(events))
    ladder_done = [x for x in loans if x.cohort == "ladder"][:history_sample]
    stages: Counter = Counter()
    for x in ladder_done[:5]:
        st = await env.client.get_workflow_handle(workflow_id(x.inp.loan_id)).query(CollectionCase.status)
        stages[st.stage] += 1
    return sizes, stages


def _table(n: int, days: int, activities: str, wall: float, cpu: float, sizes: dict[str, list[int]]) -> Table:
    """Item 4's rows: throughput, the 10-minute extrapolation, CPU per loan-year and the ladder's history length."""
    ladder = sizes.get("ladder", [0])
    cps = n / wall
    fit = 600 * cps  # loans this machine walks through 365 days in 10 minutes at this rate
    what = (
        "real activities: SQLite/PostgreSQL and the sandbox gateway"
        if activities == "real"
        else "in-memory activities (bench/stubs.py): the workflows alone"
    )
    table = Table(f"4. Portfolio: {n:,} loans × {days} days of the default ladder, time-skipping server, {what}").add(
        Row("wall time", wall, None, "s"),
        Row("cases per second (whole year each)", cps, None, "/s"),
        Row(
            "loans walked in 10 minutes at this rate",
            fit,
            10_000,
            "loans",
            ">= 1.0",
            note="extrapolated linearly from this run" if n < 10_000 else "",
        ),
        Row(
            "worker CPU per loan-year",
            cpu / n * 1000,
            None,
            "ms",
            "<= 200" if activities == "real" else "",
            goal_on="ours",
            note="the worker process's own CPU time (/proc) over the year, divided by the loans",
        ),
        Row("history events, case walking the whole ladder (max)", max(ladder), None, "events", "<= 150", goal_on="ours"),
        Row("history events, case walking the whole ladder (mean)", sum(ladder) / len(ladder), None, "events"),
    )
    return table
