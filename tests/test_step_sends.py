"""A step in two transactions (activities/case.py run_step): the gate's check and every allowed send's beginning in
one, the gateway's answers in another, the sends themselves concurrent; the same rows as the gate and one channel
activity per send, and the same guarantees after a crash."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections import Counter

import pytest
from sqlalchemy import event
from temporalio.api.enums.v1 import EventType
from temporalio.testing import ActivityEnvironment

from activities.case import CaseActivities
from activities.contracts import ChannelRequest, GateCheck, StepRun, StepSend, case_key
from activities.gateway import GatewayClient, GatewaySettings
from db.engine import make_engine, migrate
from db.repo import Repo
from domain.dates import local_date
from tests.conftest import LADDER_POLICY
from tests.pg import fresh_postgres_url, pg_server  # noqa: F401  (fixtures)

ACTIONS = ["sms", "email", "letter"]


def borrower(repo, loan: str) -> str:
    bid = f"B-{loan}"
    repo.upsert_borrower(
        id=bid,
        name="张伟",
        phone="13812345678",
        email="zhang.wei@example.cn",
        address="上海市黄浦区南京东路1号",
        timezone="Asia/Shanghai",
        language="zh",
    )
    return bid


def step_run(loan: str, bid: str, now: dt.datetime) -> StepRun:
    wid = f"loan-{loan}"
    key = case_key(wid, now)
    check = GateCheck(
        workflow_id=wid,
        case_key=key,
        loan_id=loan,
        borrower_id=bid,
        step="reminder_notice",
        actions=ACTIONS,
        now=now,
        rules=LADDER_POLICY.contact,
    )
    request = ChannelRequest(
        workflow_id=wid,
        case_key=key,
        loan_id=loan,
        borrower_id=bid,
        step="reminder_notice",
        action="sms",
        idempotency_key=f"{key}:reminder_notice:sms",
        policy="default",
        stage="reminder",
        dpd=3,
        currency="CNY",
        outstanding_minor={"principal": 1_000_000, "interest": 50_000, "fees": 2_000, "total": 1_052_000},
        due_date=local_date(now, "Asia/Shanghai") - dt.timedelta(days=3),
        next_step="First call",
        next_dpd=7,
        now=now,
        rules=LADDER_POLICY.contact,
    )
    sends = [StepSend(action=a, letter="reminder_notice" if a == "letter" else None) for a in ACTIONS]
    return StepRun(check=check, request=request, sends=sends)


def activity_env(now: dt.datetime) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, scheduled_time=now, current_attempt_scheduled_time=now)
    return env


class Commits:
    def __init__(self, engine) -> None:
        self.engine, self.n = engine, 0

    def __enter__(self) -> Commits:
        event.listen(self.engine, "commit", self._count)
        return self

    def __exit__(self, *exc) -> None:
        event.remove(self.engine, "commit", self._count)

    def _count(self, _conn) -> None:
        self.n += 1


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, repo):
    """The suite's SQLite database, or a fresh PostgreSQL one (tests/pg.py)."""
    if request.param == "sqlite":
        yield repo
        return
    url = request.getfixturevalue("fresh_postgres_url")
    migrate(url)
    engine = make_engine(url)
    yield Repo(engine)
    engine.dispose()


@pytest.fixture
async def client(gateway):
    c = GatewayClient(GatewaySettings(url=gateway.url, api_key=gateway.api_key, timeout=5))
    yield c
    await c.aclose()


async def test_a_step_of_three_sends_takes_two_transactions_where_gate_and_sends_took_ten(db, gateway, client):
    repo = db
    now = dt.datetime.now(dt.UTC)
    acts = CaseActivities(repo, client)
    loan = f"STEP-{uuid.uuid4().hex[:8]}"
    run = step_run(loan, borrower(repo, loan), now)
    with Commits(repo.engine) as one_go:
        out = await activity_env(now).run(acts.run_step, run)
    assert [d.allowed for d in out.decisions] == [True, True, True]
    assert [(s.action, s.result and s.result.status) for s in out.sent] == [(a, "delivered") for a in ACTIONS]
    rows = {r.channel: r for r in repo.contacts(loan_id=loan)}
    assert {c: (r.status, r.attempts) for c, r in rows.items()} == {a: ("delivered", 1) for a in ACTIONS}
    assert {r.reference for r in rows.values()} == {s.result.reference for s in out.sent if s.result}
    kinds = Counter(e.kind for e in repo.events(f"loan-{loan}"))
    assert kinds["contact_allowed"] == 3 and kinds["contact_delivered"] == 3
    assert len(gateway.outbox(loan_id=loan)) == 3
    assert one_go.n == 2

    # the same step the way a case from before runs it: the gate, then one channel activity per send
    loan = f"STEP-{uuid.uuid4().hex[:8]}"
    run = step_run(loan, borrower(repo, loan), now)
    with Commits(repo.engine) as apart:
        await activity_env(now).run(acts.check_contacts, run.check)
        for s in run.sends:
            req = run.request.model_copy(
                update=dict(action=s.action, letter=s.letter, idempotency_key=f"{run.check.case_key}:reminder_notice:{s.action}")
            )
            await activity_env(now).run(
                getattr(acts, {"sms": "send_sms", "email": "send_email"}.get(s.action, "send_letter")), req
            )
    assert {r.status for r in repo.contacts(loan_id=loan)} == {"delivered"}
    print(f"\ncommits per step of three sends: {apart.n} apart, {one_go.n} in one go")
    assert apart.n >= 7


async def test_a_step_rerun_after_a_crash_delivers_each_send_once(db, gateway, client):
    """The state a SIGKILL after the first transaction and the gateway's acceptance leaves: the reservations and
    contact rows begun, the gateway holding the requests. The re-run finds its reservations (already allowed),
    sends the same bodies under the same keys, and records the gateway's first answers."""
    repo = db
    now = dt.datetime.now(dt.UTC)
    loan = f"STEP-{uuid.uuid4().hex[:8]}"
    run = step_run(loan, borrower(repo, loan), now)
    acts = CaseActivities(repo, client)
    requests = {
        s.action: run.request.model_copy(
            update=dict(action=s.action, letter=s.letter, idempotency_key=f"{run.check.case_key}:reminder_notice:{s.action}")
        )
        for s in run.sends
    }
    decided, begun = acts._open_step(run, requests, now)
    firsts = {b.req.action: await client.send(b.channel, b.body, b.req.idempotency_key) for b in begun}
    assert {r.status for r in repo.contacts(loan_id=loan)} == {"pending"}

    later = now + dt.timedelta(seconds=30)
    rerun = run.model_copy(update={"check": run.check.model_copy(update={"now": later})})
    out = await activity_env(now).run(acts.run_step, rerun)
    assert [d.rule for d in out.decisions] == ["already_allowed"] * 3
    assert {s.action: s.result.reference for s in out.sent if s.result} == {a: firsts[a]["id"] for a in ACTIONS}
    items = gateway.outbox(loan_id=loan)
    assert len(items) == 3 and max(Counter(i["idempotency_key"] for i in items).values()) == 1
    rows = repo.contacts(loan_id=loan)
    assert all(r.status == "delivered" and r.attempts == 2 for r in rows), [(r.status, r.attempts) for r in rows]
    # and a third run, after the outcomes were recorded, reports them without a request
    again = await activity_env(now).run(acts.run_step, rerun)
    assert [s.result.status for s in again.sent if s.result] == ["delivered"] * 3
    assert len(gateway.outbox(loan_id=loan)) == 3


async def test_a_send_the_gateway_cannot_take_comes_back_to_the_workflow_with_its_error_noted(repo, gateway, client):
    now = dt.datetime.now(dt.UTC)
    loan = f"STEP-{uuid.uuid4().hex[:8]}"
    run = step_run(loan, borrower(repo, loan), now)
    gateway.set_faults(error_rate=1.0)
    try:
        out = await activity_env(now).run(CaseActivities(repo, client).run_step, run)
    finally:
        gateway.clear_faults()
    assert all(s.result is None and s.deferred is None and s.retry_after is not None for s in out.sent), out.sent
    rows = repo.contacts(loan_id=loan)
    assert all(r.status == "pending" and r.reason for r in rows), [(r.status, r.reason) for r in rows]


async def test_a_step_is_one_local_activity_in_the_history(cases, repo):
    h = await cases.start(dpd=1, loan_id=f"STEP-WF-{uuid.uuid4().hex[:6]}")
    await cases.advance(days=1)
    st = await cases.status(h)
    assert "reminder_notice" in st.steps_done and st.contacts == {"sms": 1, "email": 1, "letter": 1}
    history = await h.fetch_history()
    markers = [
        e.marker_recorded_event_attributes.details["data"].payloads[0].data
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and e.marker_recorded_event_attributes.marker_name == "core_local_activity"
    ]
    assert markers and all(b"check_contacts" not in m and b"send_sms" not in m for m in markers)
    assert sum(b"run_step" in m for m in markers) == 1
    # the case row went with the step's outcomes: no projection of its own after the step
    after = markers[[i for i, m in enumerate(markers) if b"run_step" in m][0] + 1 :]
    assert not any(b"project_case" in m for m in after), after
    row = repo.case_row(h.id)
    assert row is not None and (row.stage, row.status, row.outstanding) == (st.stage, "active", 1052000)
