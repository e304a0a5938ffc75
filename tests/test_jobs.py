"""The daily jobs (workflows/jobs.py) and their schedules (app/schedules.py), on the dev server (visibility lists
and schedules, as production has them): the reconciliation repairs a row a test corrupted and leaves a correct one
alone; the retention job erases contact details only past the period; the calendar watch warns from 1 November;
`schedules apply` creates the three schedules, changes nothing the second time and keeps a paused one paused; the
local stack applies them at start."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import pytest_asyncio
import structlog
from sqlalchemy import update
from sqlmodel import select
from temporalio.client import ScheduleCalendarSpec, ScheduleRange, ScheduleUpdate
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RPCError
from temporalio.testing import ActivityEnvironment

from activities.job_contracts import JobRun
from activities.jobs import OPEN_CASES, JobActivities
from app import schedules
from console import worklists
from db.engine import make_engine, migrate
from db.jobs import CALENDAR_MISSING, RETENTION_ERASED, JobStore
from db.records import CaseRecord, PaymentRecord
from db.repo import Repo
from db.tables import CaseRow, ContactChangeRow
from domain import calendar
from domain.dates import local_date, local_midnight
from domain.legal import add_years
from domain.money import parse_amount
from domain.policy import load_policy
from infra.config import ROOT
from tests.conftest import TASK_QUEUE
from tests.workflow_helpers import free_port
from workflows.jobs import CalendarWatch, Reconcile, Retention

JOBS_QUEUE = "collections-jobs-test"
BEIJING = "Asia/Shanghai"


@pytest.fixture(scope="module")
def env(dev_env):
    """The dev server: visibility lists (the reconciliation's) and schedules, as in production."""
    return dev_env


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A database of this module's rows only (the jobs look at every row)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('jobs') / 'j.db'}"
    migrate(url)
    return Repo(make_engine(url))


@pytest.fixture(scope="module")
def prometheus():
    """A runtime whose meter the jobs' worker counts on, and its endpoint."""
    address = f"127.0.0.1:{free_port()}"
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address))), address


@pytest_asyncio.fixture(scope="module")
async def jobs(env, repo, gateway, prometheus):
    """A worker for the jobs on its own task queue, counting on `prometheus`'s meter (worker.py passes the
    runtime's meter the same way)."""
    from activities.case import CaseActivities
    from activities.gateway import GatewayClient, GatewaySettings
    from worker import build_worker

    client = GatewayClient(GatewaySettings(url=gateway.url, api_key=gateway.api_key, timeout=5))
    acts = JobActivities(repo, env.client, prometheus[0].metric_meter)
    async with build_worker(
        env.client, CaseActivities(repo, client), task_queue=JOBS_QUEUE, jobs=acts, workflow_failure_exception_types=[Exception]
    ):
        yield acts
    await client.aclose()


def metric(address: str, name: str) -> float:
    text = httpx.get(f"http://{address}/metrics", timeout=10).text
    return sum(
        float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + "{") or line.startswith(name + " ")
    )


async def run_job(env, workflow):
    return await env.client.execute_workflow(  # a broken activity fails the test within a minute, not never
        workflow.run, id=f"test-{uuid.uuid4().hex[:8]}", task_queue=JOBS_QUEUE, execution_timeout=timedelta(seconds=60)
    )


# ---------------------------------------------------------------- reconciliation


async def test_reconcile_repairs_a_corrupted_row_and_leaves_a_correct_one(env, cases, repo, jobs, prometheus):
    a, b = await cases.start(dpd=1), await cases.start(dpd=1)
    for h in (a, b):
        await cases.settle(h)
    live = {h.id: await cases.status(h) for h in (a, b)}
    for _ in range(100):  # visibility lists them within a moment
        if (await env.client.count_workflows(OPEN_CASES)).count >= 2:
            break
        await asyncio.sleep(0.1)
    untouched = repo.case_row(b.id)
    assert untouched is not None and untouched.stage == live[b.id].stage == "reminder"
    with repo.session() as s:  # the console's row of `a` no longer says what the case says
        s.execute(update(CaseRow).where(CaseRow.workflow_id == a.id).values(stage="enforcement", outstanding=1, total_paid=7))
        s.commit()

    first = await run_job(env, Reconcile)

    assert (first.checked, first.repaired, first.unreadable, first.repaired_cases) == (2, 1, 0, [a.id])
    row, st = repo.case_row(a.id), live[a.id]
    assert row is not None and (row.stage, row.status) == (st.stage, st.status)
    assert row.outstanding == parse_amount(st.outstanding["total"], "CNY", allow_zero=True) == 1_052_000
    assert row.total_paid == 0
    again = repo.case_row(b.id)
    assert again is not None and again.updated_at == untouched.updated_at  # the correct row was not rewritten
    repaired = [e for e in repo.events(a.id) if e.kind == "projection_repaired"]
    assert len(repaired) == 1 and "stage enforcement" in repaired[0].detail
    assert metric(prometheus[1], "collections_projection_repairs") == 1

    second = await run_job(env, Reconcile)
    assert (second.checked, second.repaired) == (2, 0)
    assert metric(prometheus[1], "collections_projection_repairs") == 1


# ---------------------------------------------------------------- retention


def person(repo: Repo, pid: str, **extra) -> None:
    repo.upsert_borrower(
        id=pid,
        name="张伟",
        phone="13812345678",
        email="zhang.wei@example.cn",
        address="上海市黄浦区南京东路1号",
        id_number="310101199001011234",
        timezone=BEIJING,
        language="zh",
        **extra,
    )


def loan(repo: Repo, loan_id: str, borrower: str, closed_at: datetime | None, guarantor: str | None = None) -> None:
    repo.upsert_loan(
        id=loan_id,
        borrower_id=borrower,
        guarantor_id=guarantor,
        currency="CNY",
        principal=1_000_000,
        interest=0,
        fees=0,
        due_date=datetime(2020, 1, 1).date(),
        policy="default",
    )
    wid = f"loan-{loan_id}"
    if closed_at is None:
        repo.project_case(CaseRecord(wid, loan_id, "CNY", stage="reminder", status="active", outstanding=1_000_000))
    else:
        repo.project_case(
            CaseRecord(
                wid, loan_id, "CNY", stage="litigation", status="closed", outstanding=0, total_paid=1_000_000, closed_at=closed_at
            )
        )
        repo.record_payment(
            PaymentRecord(
                payment_id=f"P-{loan_id}", loan_id=loan_id, workflow_id=wid, amount=1_000_000, currency="CNY", paid_at=closed_at
            )
        )


async def test_retention_erases_contact_details_only_past_the_period(env, repo, jobs):
    years = load_policy("default").retention.years
    assert years == 3 and "art. 188" in load_policy("default").retention.source
    today = local_date(datetime.now(UTC), BEIJING)
    # closed on the day whose period's last day was yesterday (it ended at 24:00): due; closed a day later, the
    # period's last day is today, which has not ended yet: not due, even at the day's last second
    day_past = add_years(today, -years) - timedelta(days=1)
    just_past = local_midnight(day_past + timedelta(days=1), BEIJING) - timedelta(seconds=1)  # 23:59:59 that day
    not_yet = local_midnight(day_past + timedelta(days=1), BEIJING)  # 00:00 the next day
    tag = uuid.uuid4().hex[:6]
    old, young, mixed, guarantor = (f"{k}-{tag}" for k in ("OLD", "YOUNG", "MIXED", "GUAR"))
    for p in (old, young, mixed, guarantor):
        person(repo, p)
    loan(repo, f"L{old}", old, just_past, guarantor=guarantor)
    loan(repo, f"L{young}", young, not_yet)
    loan(repo, f"L{mixed}a", mixed, just_past - timedelta(days=400))  # long closed, but another case is open
    loan(repo, f"L{mixed}b", mixed, None)
    with repo.session() as s:
        s.add(ContactChangeRow(borrower_id=old, field="phone", old_value="13900000000", new_value="13812345678", actor="op-x"))
        s.commit()

    result = await run_job(env, Retention)

    assert (result.erased, result.due) == (2, 2)  # the borrower and the guarantor of the old case
    for pid in (old, guarantor):
        b = repo.borrower(pid)
        assert b is not None and (b.phone, b.email, b.address) == (None, None, None)
        assert b.name == "张*" and b.id_number == "**************1234" and b.erased_at is not None
    for pid in (young, mixed):
        b = repo.borrower(pid)
        assert b is not None and (b.phone, b.name, b.erased_at) == ("13812345678", "张伟", None)
    with repo.session() as s:
        change = s.exec(select(ContactChangeRow).where(ContactChangeRow.borrower_id == old)).one()
    assert (change.old_value, change.new_value, change.field) == (None, None, "phone")
    # amounts and the audit trail stay; the trail says what was erased and why, without the values
    closed = repo.case_row(f"loan-L{old}")
    assert closed is not None and (closed.total_paid, closed.outstanding) == (1_000_000, 0)
    assert [p.amount for p in repo.payments(loan_id=f"L{old}")] == [1_000_000]
    erased = [e for e in repo.events(f"loan-L{old}") if e.kind == "contact_details_erased"]
    assert len(erased) == 2 and all("art. 188" in e.detail and "138" not in e.detail for e in erased)
    notices = JobStore(repo).notices(RETENTION_ERASED)
    assert len(notices) == 1 and '"erased": 2' in notices[0].cause

    again = await run_job(env, Retention)  # idempotent: nothing more to erase
    assert (again.erased, again.due) == (0, 0)
    assert len(JobStore(repo).notices(RETENTION_ERASED)) == 1


async def test_retention_deletes_ended_borrower_sessions_and_long_expired_links(env, repo, jobs):
    from db.selfservice import LinkStore
    from db.tables import BorrowerLinkRow, BorrowerSessionRow
    from domain import selfservice as rules

    now = datetime.now(UTC)
    tag = uuid.uuid4().hex[:6]
    store = LinkStore(repo)
    with repo.session() as s:
        for name, expires in (
            ("gone", now - rules.LINK_KEPT_AFTER_EXPIRY - timedelta(days=1)),
            ("kept", now - timedelta(days=1)),
        ):
            s.add(
                BorrowerLinkRow(
                    token_hash=f"{name}-{tag}", workflow_id=f"loan-P{tag}", loan_id=f"P{tag}", borrower_id="B", recipient_id="B",
                    audience="borrower", channel="sms", expires_at=expires, code_hash="c" * 64,
                    code_expires_at=now - timedelta(minutes=1),
                )
            )  # fmt: skip
        s.commit()
        gone, kept = (
            s.exec(select(BorrowerLinkRow).where(BorrowerLinkRow.token_hash == f"{n}-{tag}")).one().id for n in ("gone", "kept")
        )
    store.start_session(kept, f"ended-{tag}", now - timedelta(hours=1))  # ended 40 minutes ago
    store.start_session(kept, f"live-{tag}", now)
    store.start_session(gone, f"old-{tag}", now - timedelta(days=200))

    result = await run_job(env, Retention)

    assert result.links_purged >= 1 and result.sessions_purged >= 2
    with repo.session() as s:
        links = {r.token_hash: r for r in s.exec(select(BorrowerLinkRow).where(BorrowerLinkRow.loan_id == f"P{tag}"))}
        sessions = {
            r.session_hash for r in s.exec(select(BorrowerSessionRow).where(BorrowerSessionRow.link_id.in_([gone, kept])))
        }
    assert set(links) == {f"kept-{tag}"} and links[f"kept-{tag}"].code_hash is None  # an expired code's hash is gone too
    assert sessions == {f"live-{tag}"}


# ---------------------------------------------------------------- calendar watch


@pytest.fixture
def only_2026(tmp_path, monkeypatch):
    """The calendars as they stand in autumn 2026: 2026's file, none for 2027."""
    monkeypatch.setattr(calendar, "CALENDAR_DIR", tmp_path)
    monkeypatch.setattr(calendar, "_loaded", {})
    (tmp_path / "cn-2026.toml").write_text((calendar.OFFICIAL_DIR / "cn-2026.toml").read_text(encoding="utf-8"), "utf-8")


async def test_the_calendar_watch_warns_from_1_november_beijing(only_2026, repo, prometheus):
    acts = JobActivities(repo, None, prometheus[0].metric_meter)  # type: ignore[arg-type]  # no client needed
    watch = ActivityEnvironment()
    job = "calendar-watch-test"
    eve = datetime(2026, 10, 31, 15, 59, 59, tzinfo=UTC)  # 23:59:59 on 31 October in Beijing

    with structlog.testing.capture_logs() as logs:
        before = await watch.run(acts.calendar_watch, JobRun(now=eve, job=job))
    assert before.warning is None and before.days_left == 62 and str(before.today) == "2026-10-31"
    assert not [e for e in logs if e["log_level"] == "warning"]
    assert not [n for n in JobStore(repo).notices(CALENDAR_MISSING) if n.workflow_id == job]

    with structlog.testing.capture_logs() as logs:
        first = await watch.run(acts.calendar_watch, JobRun(now=eve + timedelta(seconds=1), job=job))  # 1 November
        later = await watch.run(acts.calendar_watch, JobRun(now=eve + timedelta(hours=20), job=job))  # same day
    assert first.days_left == 61 and "cn-2027.toml" in (first.warning or "") and later.warning == first.warning
    assert [e["log_level"] for e in logs] == ["warning", "warning"] and "cn-2027.toml" in logs[0]["detail"]
    notices = [n for n in JobStore(repo).notices(CALENDAR_MISSING) if n.workflow_id == job]
    assert len(notices) == 1 and "cn-2027.toml" in notices[0].detail  # once a day on the compliance worklist
    rows, _ = worklists.LISTS["compliance"].fetch(repo, None, "", 1)  # the console's compliance worklist
    assert [r[1] for r in rows if r[0] == CALENDAR_MISSING] == [notices[0].detail]
    assert metric(prometheus[1], "collections_calendar_days_left") == 61  # the gauge


async def test_the_calendar_watch_workflow_sets_the_gauge_for_today(env, jobs, prometheus):
    result = await run_job(env, CalendarWatch)
    today = local_date(datetime.now(UTC), BEIJING)
    assert result.today == today and result.days_left == calendar.days_of_calendar_left(today)
    assert metric(prometheus[1], "collections_calendar_days_left") == result.days_left


# ---------------------------------------------------------------- the schedules


async def delete_schedules(client) -> None:
    for job in schedules.JOBS:
        try:
            await client.get_schedule_handle(job.id).delete()
        except RPCError:
            pass


async def described(client) -> dict:
    out = {}
    for job in schedules.JOBS:
        d = await client.get_schedule_handle(job.id).describe()
        out[job.id] = (d.schedule.spec, d.schedule.state.paused, d.schedule.state.note, d.info.last_updated_at)
    return out


async def test_apply_creates_the_three_schedules_and_twice_changes_nothing(env):
    client = env.client
    await delete_schedules(client)
    ids = {"collections-calendar-watch", "collections-reconcile", "collections-retention"}

    assert await schedules.apply(client, TASK_QUEUE) == dict.fromkeys(ids, "created")
    listed = await schedules.listing(client)
    assert {s.id for s in listed} == ids and not any(s.paused for s in listed)
    assert {s.workflow for s in listed} == {"CalendarWatch", "Reconcile", "Retention"}
    for job in schedules.JOBS:
        d = await client.get_schedule_handle(job.id).describe()
        assert d.schedule.spec.time_zone_name == BEIJING
        assert [(c.hour, c.minute) for c in d.schedule.spec.calendars] == [
            ((ScheduleRange(job.hour),), (ScheduleRange(job.minute),))
        ]
        nxt = d.info.next_action_times[0].astimezone(schedules_zone())
        assert (nxt.hour, nxt.minute) == (job.hour, job.minute)
    before = await described(client)

    assert await schedules.apply(client, TASK_QUEUE) == dict.fromkeys(ids, "unchanged")
    assert await described(client) == before


def schedules_zone():
    from zoneinfo import ZoneInfo

    return ZoneInfo(BEIJING)


async def test_a_paused_schedule_stays_paused_after_apply(env):
    client = env.client
    await schedules.apply(client, TASK_QUEUE)
    handle = client.get_schedule_handle("collections-retention")
    await handle.pause(note="legal hold: keep everything until the audit ends")
    assert (await schedules.apply(client, TASK_QUEUE))["collections-retention"] == "unchanged"

    # a definition that changed (here: by hand, to 05:00) is brought back, the operator's pause kept
    def five(inp):
        s = inp.description.schedule
        s.spec.calendars = [ScheduleCalendarSpec(hour=[ScheduleRange(5)], minute=[ScheduleRange(0)])]
        return ScheduleUpdate(schedule=s)

    await handle.update(five)
    assert (await schedules.apply(client, TASK_QUEUE))["collections-retention"] == "updated"
    d = await handle.describe()
    assert [(c.hour, c.minute) for c in d.schedule.spec.calendars] == [((ScheduleRange(3),), (ScheduleRange(30),))]
    assert d.schedule.state.paused and d.schedule.state.note == "legal hold: keep everything until the audit ends"
    await handle.unpause(note="audit over")


async def test_the_stack_applies_the_schedules_at_start(env):
    """make demo's start path: the stack's `schedules` step (after the worker, before the API) is the same apply."""
    from devstack import stack

    names = [c.name for c in stack.children()]
    assert names.index("worker") < names.index("schedules") < names.index("api")
    step = next(c for c in stack.children() if c.name == "schedules")
    assert step.oneshot
    await delete_schedules(env.client)
    address = env.client.service_client.config.target_host
    run = subprocess.run(
        step.argv,
        cwd=ROOT,
        env=dict(os.environ, TEMPORAL_ADDRESS=address, TEMPORAL_NAMESPACE="default", TEMPORAL_TASK_QUEUE=TASK_QUEUE),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert {s.id for s in await schedules.listing(env.client)} == {j.id for j in schedules.JOBS}
    assert "collections-reconcile: created" in run.stdout


def test_the_starter_lists_what_apply_made(env, monkeypatch, capsys):
    import starter

    address = env.client.service_client.config.target_host
    monkeypatch.setenv("TEMPORAL_ADDRESS", address)
    monkeypatch.setenv("TEMPORAL_TASK_QUEUE", TASK_QUEUE)
    assert starter.main(["schedules", "apply"]) == 0
    assert starter.main(["schedules", "list"]) == 0
    out = capsys.readouterr().out
    assert "collections-retention" in out and "3 schedule(s) of 3" in out
