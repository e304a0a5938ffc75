"""One count, whoever asks: the console's dashboard (the case rows in the database), `starter.py count` and the
API's case list (Temporal visibility) agree after stage changes, pauses and closures, within PROJECTION_LAG."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import pytest
import pytest_asyncio

from app import visibility
from console import dashboard
from db.engine import make_engine, migrate
from db.repo import Repo
from domain.models import HoldIn, PaymentIn, PromiseIn
from domain.policy import parse_policy
from tests.conftest import LADDER_POLICY, today_in
from workflows.case import CollectionCase as W

PROJECTION_LAG = 5.0  # seconds: the README's bound (the case row is written in the workflow task that changed it)
OPEN = 'WorkflowType = "CollectionCase" AND CaseStatus != "closed"'


@pytest.fixture(scope="module")
def env(dev_env):
    """The dev server: counts come from its visibility store (the time-skipping server has none)."""
    return dev_env


@pytest_asyncio.fixture(scope="module")
def repo(tmp_path_factory):
    """A database of this module's cases only (the dashboard counts every row)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('counts') / 'c.db'}"
    migrate(url)
    return Repo(make_engine(url))


async def three_counts(client, repo) -> tuple[dict, dict, dict]:
    """(dashboard, starter.py count, API list): open cases by stage and every case by status."""
    d = await asyncio.to_thread(dashboard.build, repo)
    console = {
        "stage": {r.key: r.cases for r in d.by_stage},
        "status": dict(Counter({r.key.split(":")[0]: 0 for r in d.by_status})),
    }
    for r in d.by_status:
        console["status"][r.key.split(":")[0]] += r.cases
    by_stage = await visibility.count_by(client, repo, "stage", OPEN)
    by_status = await visibility.count_by(client, repo, "status", 'WorkflowType = "CollectionCase"')
    listed = {
        s: len(await visibility.list_cases(client, visibility.visibility_query(status=s), 1000)) for s in visibility.STATUSES
    }
    cli = {"stage": {k: n for k, n in by_stage.counts.items() if n}, "status": {k: n for k, n in by_status.counts.items() if n}}
    api = {"status": {k: n for k, n in listed.items() if n}}
    return console, cli, api


async def agree(client, repo) -> tuple[dict, dict, dict]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PROJECTION_LAG
    while True:
        console, cli, api = await three_counts(client, repo)
        if console == cli and console["status"] == api["status"]:
            return console, cli, api
        if loop.time() > deadline:
            raise AssertionError(f"after {PROJECTION_LAG}s: console {console}, count {cli}, API {api}")
        await asyncio.sleep(0.25)


async def test_dashboard_count_and_api_agree_through_stages_pauses_and_closure(env, cases):
    client = env.client
    data = LADDER_POLICY.model_dump(mode="json")
    data.update(day_seconds=2)  # a policy day in 2 s: late cases catch up through the ladder while the test reads
    policy = parse_policy(data)
    handles = [await cases.start(dpd=d, policy=policy) for d in (1, 1, 8, 31, 46, 61, 91, 121)]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:  # stage changes (agent-mode first calls among them) while the three are read
        console, _, _ = await agree(client, cases.repo)
        if len(console["stage"]) >= 3 or loop.time() > deadline:
            break
        await asyncio.sleep(0.5)
    assert sum(console["stage"].values()) == 8 and len(console["stage"]) >= 3, console
    today = today_in(await cases.now())
    await handles[0].execute_update(W.promise_to_pay, PromiseIn(amount="100.00", date=today + timedelta(days=5)))
    await handles[2].execute_update(W.place_hold, HoldIn(kind="dispute", reference="disputes the fees"))
    total = (await handles[1].query(W.status)).outstanding["total"]
    await handles[1].execute_update(W.record_payment, PaymentIn(payment_id="COUNT-P1", amount=total, currency="CNY"))
    console, cli, api = await agree(client, cases.repo)
    assert console["status"] == {"active": 5, "paused": 2, "closed": 1}, console
    assert sum(console["stage"].values()) == 7, console
    # a payment that leaves the case open changes its balance in the row the dashboard sums
    await handles[3].execute_update(W.record_payment, PaymentIn(payment_id="COUNT-P2", amount="1000.00", currency="CNY"))
    wid = handles[3].id
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PROJECTION_LAG
    while cases.repo.case_row(wid).total_paid != 100_000:
        assert loop.time() < deadline, cases.repo.case_row(wid)
        await asyncio.sleep(0.25)
