"""The demo's life (devstack/life.py) moves cases through the doors people use, over real HTTP: a simulated borrower
pays through the borrower page and the gateway's payment page (its signed webhook), another promises by an SMS reply,
the demo's collector works a call task (click to call, then the outcome), and demo-legal records the court's
judgment after a lawsuit. The API is served by uvicorn on a free loopback port, the cases run on the time-skipping
server with a worker whose floor is the demo's (every task to demo-collector)."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest_asyncio
import uvicorn
from sqlmodel import select
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from access.operators import Operators
from activities.case import CaseActivities
from activities.gateway import GatewayClient, GatewaySettings
from api.server import create_app
from db.engine import make_engine, migrate
from db.repo import Repo
from db.tables import TaskRow
from devstack.life import Endpoints, Life, Options, real_dates
from devstack.watch import Window
from domain import tasks
from domain.models import PromiseIn
from domain.policy import load_policy, parse_policy
from sandbox.gateway.process import free_port
from sim.behaviour import Update
from tests.conftest import Cases, open_hours
from tests.test_borrower_pays import environ
from worker import build_worker

TASK_QUEUE = "collections-life-test"
FLOOR = tasks.Teams.model_validate({"teams": [{"name": "Demo floor", "members": ["demo-collector"]}]})
ROLES = {
    "demo-collector": ("collector",),
    "demo-supervisor": ("supervisor",),
    "demo-viewer": ("viewer",),
    "demo-payments": ("payments",),
    "demo-legal": ("legal",),
    "demo-compliance": ("compliance",),
    "demo-checker": ("supervisor",),
}


def ladder(name: str, *steps: dict):
    data = open_hours(load_policy("default")).model_dump(mode="json")
    data.update(
        name=name, min_gap_days=0, steps=[{"key": "reminder_notice", "stage": "reminder", "dpd": 1, "actions": ["sms"]}, *steps]
    )
    data["agent"] = {"call_due_hours": 8, "call_await_days": 3, "max_requeues": 2}
    return open_hours(parse_policy(data))


CALLS = ladder(
    "life-calls", {"key": "first_call", "stage": "first_call", "dpd": 2, "actions": ["call"], "modes": {"call": "agent"}}
)
COURT = ladder(
    "life-court",
    {"key": "litigation", "stage": "litigation", "dpd": 3, "actions": ["lawsuit"], "await_outcome_days": 60},
    {"key": "enforcement", "stage": "enforcement", "dpd": 4, "actions": ["enforcement"], "requires": "judgment"},
)


@pytest_asyncio.fixture
async def life(env, gateway, tmp_path):
    """The API on a free port over a database of the test's own, a worker with the demo's floor, and a Life with
    the demo operators' tokens; yields (life, cases, repo)."""
    url = f"sqlite:///{tmp_path / 'life.db'}"
    migrate(url)
    repo = Repo(make_engine(url))
    store = Operators(repo)
    tokens = {name: store.issue_token(store.ensure(name, roles).id, days=1).token for name, roles in ROLES.items()}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with environ(COLLECTIONS_PUBLIC_URL=base, GATEWAY_API_KEY=gateway.api_key, GATEWAY_URL=gateway.url):
        gw = GatewayClient(GatewaySettings(url=gateway.url, api_key=gateway.api_key, timeout=10))
        w = build_worker(
            env.client,
            CaseActivities(repo, gw, teams=FLOOR),
            task_queue=TASK_QUEUE,
            workflow_failure_exception_types=[Exception],
            workflow_runner=SandboxedWorkflowRunner(),
        )
        app = create_app(["life-test-bootstrap"], client=env.client, repo=repo)
        app.state.borrower_gateway = gw
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        serving = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.02)
        cases = Cases(env, repo, task_queue=TASK_QUEUE)
        lf = Life(Endpoints(api=base, gateway=gateway.url, gateway_key=gateway.api_key, tokens=tokens), Options(feed=False))
        try:
            async with w:
                yield lf, cases, repo
                await cases.terminate_all()
        finally:
            await lf.aclose()
            server.should_exit = True
            await serving
            await gw.aclose()


async def seen(lf: Life, loan: str):
    """Follow the outbox until the loan's borrower has a link (its reminder SMS arrived)."""
    for _ in range(100):
        await lf.follow_outbox()
        b = lf.borrowers.get(loan)
        if b is not None and b.link is not None:
            return b
        await asyncio.sleep(0.05)
    raise AssertionError(f"no link reached {loan}'s borrower")


async def test_the_life_pays_by_the_page_promises_by_reply_works_a_call_task_and_answers_for_the_court(life):
    lf, cases, repo = life
    # a borrower who pays in full: the behaviour model's action, through the page and the gateway's payment page
    payer = await cases.start(dpd=1, policy=CALLS)
    loan = payer.id.removeprefix("loan-")
    b = await seen(lf, loan)
    b.schedule(lf.day() - b.born, "pay", share=1.0, why="test")
    await lf._act(b, lf.day() - b.born)
    st = await cases.status(payer)
    assert st.status == "closed" and st.outcome == "paid" and st.total_paid == "10520.00"
    assert lf.stats["test by payment link"] == 1 and lf.stats["page sign-in"] == 1

    # a promise through the page's form: the date the case reads on the real calendar is today
    promiser = await cases.start(dpd=1, policy=CALLS)
    b2 = await seen(lf, promiser.id.removeprefix("loan-"))
    ok, _, how = await lf.send(
        b2,
        real_dates(Update("promise_to_pay", PromiseIn(amount="500.00", date=dt.date(2099, 1, 1)), "p"), dt.date.today()),
        await cases.status(promiser),
    )
    st = await cases.status(promiser)
    # 500.00 is under the page's 10% of 10,520.00: the borrower promises the least the page takes
    assert ok and how == "page" and st.promise is not None and st.promise.amount == 105_200 and st.status == "paused"

    # a reply "1" to the reminder SMS: the keyword's promise of the whole amount
    replier = await cases.start(dpd=1, policy=CALLS)
    b3 = await seen(lf, replier.id.removeprefix("loan-"))
    got = await lf.reply(b3, "1")
    st = await cases.status(replier)
    assert got is not None and st.promise is not None and st.promise.amount == 1_052_000

    # the collector's call task: opened at DPD 2, called through the gate, its outcome the borrower's
    called = await cases.start(dpd=2, policy=CALLS)
    loan = called.id.removeprefix("loan-")
    await seen(lf, loan)
    lf.borrowers[loan].calls = [{"outcome": "answered"}]
    r = await lf.api("GET", "/v1/tasks", "demo-collector", params={"action": "call"})
    [task] = [t for t in r.json()["tasks"] if t["loan_id"] == loan]
    assert await lf.work_call(task) == "answered"
    with repo.session() as s:
        row = s.exec(select(TaskRow).where(TaskRow.id == task["id"])).one()
    assert row.status == "done" and row.outcome == "answered" and row.worked_by.endswith(":collector")
    assert (await cases.status(called)).awaiting is None

    # the court: the lawsuit reaches the borrower's outbox, the model schedules the judgment, demo-legal records it
    sued = await cases.start(dpd=1, policy=COURT)
    loan = sued.id.removeprefix("loan-")
    b5 = await seen(lf, loan)
    await cases.advance(days=3)
    for _ in range(100):
        await lf.follow_outbox()
        if any(a.kind == "court" for a in b5.queue):
            break
        await asyncio.sleep(0.05)
    [court] = [a for a in b5.queue if a.kind == "court"]
    assert court.args["outcome"] == "judgment" and court.day - (lf.day() - b5.born) <= 24  # the demo's court answers in days
    b5.queue = [court]  # the court's answer alone (the model may also have the borrower pay on its own)
    await lf._act(b5, court.day)
    st = await cases.status(sued)
    assert any(e.kind == "court_outcome" and "judgment" in e.detail for e in st.events)
    assert lf.stats["court_judgment by demo-legal"] == 1

    # enforcement ends with the balance unpaid: the floor closes the case as uncollectable, four-eyes
    await cases.advance(days=2)
    st = await cases.status(sued)
    assert "enforcement" in st.steps_done, st.next_action
    b5.queue = []
    b5.schedule(lf.day() - b5.born, "court", outcome="enforcement_closed")
    await lf._act(b5, lf.day() - b5.born)
    [close] = [a for a in b5.queue if a.kind == "close"]
    b5.queue = [close]
    await lf._act(b5, close.day)
    st = await cases.status(sued)
    assert st.status == "closed" and st.outcome == "uncollectable", st.events[-3:]
    assert lf.stats["close_uncollectable by demo-supervisor and demo-checker"] == 1


def test_the_watch_counts_a_case_that_changed_in_the_window_and_not_the_new_ones():
    w = Window({"A": ("reminder", "active"), "B": ("litigation", "active"), "C": ("paid", "closed")})
    w.see({"A": ("first_call", "active"), "B": ("litigation", "active")})
    w.see({"A": ("reminder", "active"), "B": ("litigation", "paused"), "D": ("reminder", "active")})
    row = w.row({"A": ("reminder", "active"), "B": ("litigation", "closed"), "D": ("reminder", "active")}, ["reminder"])
    # A moved and came back (changed, not net), B paused then closed, C was closed already, D is new
    assert (row["open"], row["changed"], row["net"], row["closed"], row["new"]) == (2, 2, 1, 1, 1)
    assert row["stages"] == "reminder 2"


def test_the_dashboard_counts_a_short_day_policys_buckets_and_rolls_in_its_own_days(tmp_path):
    """The demo's day lasts 6 s: a case opened 10 minutes ago at DPD 20 is at DPD 120 now (M3+) and was at DPD 90
    (M3) 30 demo days (180 s) ago; one opened 100 s ago is not in the roll window; a paid one was cured; a case on the
    default policy keeps the real calendar."""
    from console import dashboard
    from db.tables import BorrowerRow, CaseRow, LoanRow

    url = f"sqlite:///{tmp_path / 'dash.db'}"
    migrate(url)
    repo = Repo(make_engine(url))
    now = dt.datetime.now(dt.UTC)
    with repo.session() as s:
        s.add(BorrowerRow(id="B1", name="x", phone="13800000000"))
        for loan, policy, dpd, ago, closed in (
            ("D1", "demo", 20, 600, False),
            ("D2", "demo", 5, 100, False),
            ("D3", "demo", 3, 400, True),
            ("R1", "default", 45, 40 * 86400, False),
        ):
            due = (now - dt.timedelta(seconds=ago)).date() - dt.timedelta(days=dpd)
            s.add(
                LoanRow(
                    id=loan, borrower_id="B1", currency="CNY", principal=100_00, interest=0, fees=0, due_date=due, policy=policy
                )
            )
            s.add(
                CaseRow(
                    workflow_id=f"loan-{loan}",
                    loan_id=loan,
                    stage="reminder",
                    status="closed" if closed else "active",
                    outcome="paid" if closed else None,
                    currency="CNY",
                    outstanding=0 if closed else 100_00,
                    opened_at=now - dt.timedelta(seconds=ago),
                    closed_at=now - dt.timedelta(seconds=10) if closed else None,
                )
            )
        s.commit()
    d = dashboard.build(repo, now)
    assert {r.key: r.cases for r in d.by_bucket} == {"M1": 1, "M3": 1, "M3+": 1}  # D2 at DPD 21, R1 at 85, D1 at 120
    # D1 from M3 (DPD 90) to M3+; D3 from M2 (DPD 3 + 36 = 39) to cured; R1 on the real calendar from M2 (55) to M3 (85)
    assert d.roll == {"M3": {"M3+": 1}, "M2": {"cured": 1, "M3": 1}}
