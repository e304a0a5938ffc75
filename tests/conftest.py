"""Shared fixtures: a time-skipping Temporal test server and a worker for each test module."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import tempfile
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType as ET
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from activities.case import CaseActivities
from activities.gateway import GatewayClient, GatewaySettings
from db.engine import make_engine, migrate
from db.repo import Repo
from devstack.binaries import find
from domain import calendar
from domain.dates import local_date
from domain.models import CaseInput, workflow_id
from domain.policy import load_policy, parse_policy
from encryption import codec
from infra import config
from sandbox.gateway import running_gateway
from worker import build_worker
from workflows import search
from workflows.case import CollectionCase

TYPES = {
    "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "Bool": IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
    "Double": IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
    "Datetime": IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
}
TASK_QUEUE = "collections-test"

# The whole suite runs with payload encryption on (encryption/codec.py), with a key for tests only that is
# never deployed: 32 bytes reading "TEST ONLY - never use this key!!". It is in the environment so that
# the processes the tests start (the CLI, the stack, the worker) encrypt with it too, and it is fixed so
# that the encrypted histories in tests/histories/ stay readable.
TEST_KEY_ID = "test-only-2026"
os.environ["PAYLOAD_KEYS"] = f"{TEST_KEY_ID}:VEVTVCBPTkxZIC0gbmV2ZXIgdXNlIHRoaXMga2V5ISE="
os.environ["PAYLOAD_KEY_ID"] = TEST_KEY_ID
DATA_CONVERTER = codec.data_converter(codec.Keyring.from_env())

# The test server's clock starts today and runs years ahead as the suite skips time, into years whose State Council
# notice is not out. The gate and the legal clocks fail closed in such a year (domain/calendar.py), which is right in
# production and tested as such (tests/test_calendar.py, each with a folder of its own). For everything else the
# suite reads a folder holding copies of the official files and, for every later year up to 2075, a TEST ONLY
# stand-in (1 January the only holiday, weekends rest days), never in policies/calendars/. The processes the tests
# start read it through COLLECTIONS_CALENDAR_DIR.
TEST_ONLY_CALENDAR = """# TEST ONLY: a stand-in for a year whose notice is not on file; not from any notice.
year = {year}

[source]
title = "国务院办公厅关于{year}年部分节假日安排的通知"
number = "TEST-ONLY"
date = {prev}-11-01

[[breaks]]
name = "元旦"
notice = "test only"
days = 1
rest = [{year}-01-01]
working = []
"""


def _suite_calendars() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="lc-calendars-"))
    atexit.register(shutil.rmtree, folder, True)
    official = sorted(calendar.OFFICIAL_DIR.glob("cn-*.toml"))
    for f in official:
        shutil.copy(f, folder)
    last = max(int(f.stem.split("-")[1]) for f in official)
    for year in range(last + 1, 2076):
        (folder / f"cn-{year}.toml").write_text(TEST_ONLY_CALENDAR.format(year=year, prev=year - 1), encoding="utf-8")
    return folder


SUITE_CALENDARS = _suite_calendars()
os.environ["COLLECTIONS_CALENDAR_DIR"] = str(SUITE_CALENDARS)
calendar.use_folder(SUITE_CALENDARS)  # as an entry point hands the configured folder to the domain


@pytest.fixture(autouse=True)
def fresh_settings(monkeypatch):
    """infra.config.settings() is read once per process: each test starts from the environment as it is, and a
    variable the test sets or removes with monkeypatch is seen at the next settings() call."""
    config.settings.cache_clear()
    for name in ("setenv", "delenv"):
        change = getattr(monkeypatch, name)

        def changed(*args, _change=change, **kwargs):
            _change(*args, **kwargs)
            config.settings.cache_clear()

        setattr(monkeypatch, name, changed)
    yield
    config.settings.cache_clear()


def open_hours(policy):
    """The policy with contact allowed at any hour and on any day, so that ladder tests do not depend on
    the time of day the test server's clock happens to show. The gate's own tests use the real rules."""
    data = policy.model_dump(mode="json")
    data["contact"].update(
        window_start="00:00", window_end="24:00", public_holidays=False, weekends=True, min_minutes_between_contacts=0
    )
    return parse_policy(data)


LADDER_POLICY = open_hours(load_policy("default"))


async def register_search_attributes(client: Client) -> None:
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=client.namespace,
            search_attributes={key.name: TYPES[t] for key, t in search.CLI_TYPES.items()},
        )
    )


@pytest_asyncio.fixture(scope="module")
async def env():
    """A time-skipping test server for each test module (it starts in about 0.3 s).

    One server for the whole session built up a clock years ahead and thousands of finished workflows over
    1,200 tests; late in a full run its time skips and updates outlasted the client's 30-second call deadline
    ("Timeout expired") though every test passed alone. A module's server starts at today's date and holds
    only that module's cases."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=DATA_CONVERTER,
        test_server_existing_path=find("temporal-test-server"),
    )
    await register_search_attributes(env.client)
    yield env
    await env.shutdown()


@pytest_asyncio.fixture(scope="module")
async def dev_env():
    """The dev server, as make demo runs it, for a module that needs what the time-skipping server lacks
    (visibility counts, the query race, the temporal CLI); such a module's own `env` fixture returns it."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=find("temporal"),
        search_attributes=search.ALL,
        data_converter=DATA_CONVERTER,
        ip="127.0.0.1",
        ui=False,
        dev_server_log_level="error",
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
def repo(tmp_path_factory) -> Repo:
    """The system of record for the session: a migrated SQLite file."""
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'collections.db'}"
    migrate(url)
    return Repo(make_engine(url))


@pytest.fixture(scope="session")
def gateway():
    """The sandbox channel gateway, a real HTTP server on a free loopback port."""
    with running_gateway(api_key="test-key") as gw:
        yield gw


@contextlib.asynccontextmanager
async def suite_worker(env, repo, gateway, **tuning):
    """The suite's worker on TASK_QUEUE with the real activities; `tuning` overrides its options."""
    client = GatewayClient(GatewaySettings(url=gateway.url, api_key=gateway.api_key, timeout=5))
    # a bug in workflow code fails the test's workflow at once instead of retrying its task for ever.
    # The suite runs the SDK's strict default sandbox, not production's (worker.workflow_runner passes
    # workflows/ through to save memory): a restricted call (datetime.now, random, I/O) added to workflows/
    # fails every workflow test here instead of reaching production unnoticed.
    options = {"workflow_failure_exception_types": [Exception], "workflow_runner": SandboxedWorkflowRunner(), **tuning}
    w = build_worker(env.client, CaseActivities(repo, client), task_queue=TASK_QUEUE, **options)
    try:
        async with w:
            yield w
    finally:
        await client.aclose()


@pytest_asyncio.fixture(scope="module")
async def worker(env, repo, gateway):
    async with suite_worker(env, repo, gateway) as w:
        yield w


@pytest.fixture(scope="session")
def default_policy():
    return load_policy("default")


async def terminate(handles) -> None:
    """End these cases (those already closed stay as they are)."""
    for h in handles:
        try:
            await h.terminate("test finished")
        except Exception:  # already closed
            pass


class Cases:
    """Starts cases on the test server; due dates are relative to the server's clock.

    Each case's borrower and loan are written to the system of record first, as an import would.
    """

    def __init__(self, env: WorkflowEnvironment, repo: Repo | None = None, task_queue: str = TASK_QUEUE):
        self.env = env
        self.repo = repo
        self.task_queue = task_queue
        self.started: list[WorkflowHandle] = []

    async def terminate_all(self) -> None:
        """End the test's cases so that later time skipping does not drive them on."""
        await terminate(self.started)

    async def now(self) -> datetime:
        return await self.env.get_current_time()

    async def start(
        self, dpd: int = 1, policy=None, tz: str = "Asia/Shanghai", contact: dict | None = None, settle: bool = True, **fields
    ) -> WorkflowHandle:
        now = await self.now()
        loan_id = fields.pop("loan_id", f"T{uuid.uuid4().hex[:10]}")
        inp = CaseInput(
            loan_id=loan_id,
            borrower_id=fields.pop("borrower_id", f"B{loan_id}"),
            currency=fields.pop("currency", "CNY"),
            principal=fields.pop("principal", 1_000_000),
            interest=fields.pop("interest", 50_000),
            fees=fields.pop("fees", 2_000),
            due_date=local_date(now, tz) - timedelta(days=dpd),
            timezone=tz,
            policy=policy or LADDER_POLICY,
            **fields,
        )
        if self.repo is not None:
            borrower = {
                "name": "张伟",
                "phone": "13812345678",
                "email": "zhang.wei@example.cn",
                "address": "上海市黄浦区南京东路1号",
                "language": "zh",
                **(contact or {}),
            }
            self.repo.upsert_borrower(id=inp.borrower_id, timezone=tz, **borrower)
            if inp.guarantor_id:
                self.repo.upsert_borrower(
                    id=inp.guarantor_id,
                    timezone=tz,
                    name="李强",
                    phone="13900001111",
                    email="li.qiang@example.cn",
                    address="北京市东城区王府井大街2号",
                    language="zh",
                )
            self.repo.upsert_loan(
                id=loan_id,
                borrower_id=inp.borrower_id,
                guarantor_id=inp.guarantor_id,
                currency=inp.currency,
                principal=inp.principal,
                interest=inp.interest,
                fees=inp.fees,
                due_date=inp.due_date,
                policy=inp.policy.name,
            )
        handle = await self.env.client.start_workflow(
            CollectionCase.run,
            inp,
            id=workflow_id(loan_id),
            task_queue=self.task_queue,
        )
        self.started.append(handle)
        if settle:
            await self.settle(handle, must=False)
        return handle

    async def settle(self, handle: WorkflowHandle, must: bool = True, timeout: float = 5.0) -> None:
        """Wait (real time, briefly) until the case has no activity or workflow task in flight.

        An activity waiting for a retry counts as in flight; with `must=False` give up quietly
        (time skipping will move the retries on).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            events = [e.event_type for e in (await handle.fetch_history()).events]
            open_activities = events.count(ET.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED) - sum(
                events.count(t)
                for t in (
                    ET.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
                    ET.EVENT_TYPE_ACTIVITY_TASK_FAILED,
                    ET.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
                    ET.EVENT_TYPE_ACTIVITY_TASK_CANCELED,
                )
            )
            tasks = events.count(ET.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED) - sum(
                events.count(t)
                for t in (
                    ET.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
                    ET.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
                    ET.EVENT_TYPE_WORKFLOW_TASK_FAILED,
                )
            )
            if open_activities == 0 and tasks == 0:
                return
            await asyncio.sleep(0.02)
        if must:
            raise AssertionError(f"{handle.id} did not settle: {[ET.Name(e) for e in events][-12:]}")

    async def result(self, handle: WorkflowHandle):
        """The case's result, waited for in real time: `handle.result()` unlocks time skipping, and with
        an activity in flight and no timer the test server then jumps the clock ten years ahead."""
        for _ in range(600):
            raw = await self.env.client.workflow_service.describe_workflow_execution(
                DescribeWorkflowExecutionRequest(
                    namespace=self.env.client.namespace, execution=WorkflowExecution(workflow_id=handle.id)
                )
            )
            if raw.workflow_execution_info.status != 1:  # no longer RUNNING
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"{handle.id} did not close")
        # the result is the final status; read it by query, since result() would unlock time skipping too
        return await handle.query(CollectionCase.status)

    async def status(self, handle: WorkflowHandle):
        return await handle.query(CollectionCase.status)

    async def advance(self, days: float = 0, hours: float = 0) -> None:
        """Skip time, in slices: each slice is one RPC to the test server, which must return before its
        deadline even when the machine is busy and many activities run within the slice."""
        left = timedelta(days=days, hours=hours)
        while left > timedelta(0):
            step = min(left, timedelta(days=10))
            await self.env.sleep(step)
            left -= step


@pytest_asyncio.fixture
async def cases(env, worker, repo):
    c = Cases(env, repo)
    yield c
    await c.terminate_all()


def today_in(now: datetime, tz: str = "Asia/Shanghai") -> date:
    return local_date(now, tz)
