"""Agent mode (issue 15): a policy gives a step's call or visit to the floor as a task. Assignment by segment,
region and load, re-queueing when a task is not worked in time, the wait's timeout moving the ladder on, the
outcome closing the task, and a visit slot inside the allowed days and hours: the rules of domain/tasks.py
on the time-skipping server, each case with a worker and a database of the test's own (the load counts)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from sqlmodel import select
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from activities.case import CaseActivities
from activities.gateway import GatewayClient, GatewaySettings
from db.engine import make_engine, migrate
from db.repo import Repo
from db.tables import EventRow, TaskRow
from domain import tasks
from domain.errors import InvalidInput
from domain.models import OutcomeIn, PaymentIn
from domain.policy import ContactRules, load_policy, parse_policy
from tests.conftest import Cases, open_hours, today_in
from tests.workflow_helpers import assert_rejected
from worker import build_worker
from workflows.case import CollectionCase

TASK_QUEUE = "collections-tasks-test"
TEAMS = tasks.Teams.model_validate(
    {
        "teams": [
            {"name": "SME desk", "segments": ["sme"], "members": ["Chen Jie"]},  # first: a team matches in file order
            {"name": "East calls", "actions": ["call"], "regions": ["上海", "浙江"], "members": ["Li Na", "Wang Fang"]},
            {"name": "Shanghai field", "actions": ["visit"], "regions": ["上海"], "members": ["Zhou Min"]},
            {"name": "National", "members": ["Sun Li"]},
        ]
    }
)
SHANGHAI = {"address": "上海市黄浦区南京东路1号"}
BEIJING = {"address": "北京市东城区王府井大街2号"}


def agent_policy(visit_await: int = 14):
    """The default ladder, any hour, with the first call and the home visit given to the floor."""
    data = open_hours(load_policy("default")).model_dump(mode="json")
    for s in data["steps"]:
        if s["key"] == "first_call":
            s["modes"] = {"call": "agent"}
        if s["key"] == "home_visit":
            s["modes"] = {"visit": "agent"}
            s["await_outcome_days"] = visit_await
    data["min_gap_days"] = 0  # a case opened at DPD 7 or 30 reaches its call or visit at once
    data["agent"] = {"call_due_hours": 8, "call_await_days": 3, "max_requeues": 2, "visit_due_days": 2}
    return parse_policy(data)


POLICY = agent_policy()


@pytest_asyncio.fixture
async def floor(env, gateway, tmp_path):
    """A worker with the test's teams and a database of its own; yields (cases, repo)."""
    url = f"sqlite:///{tmp_path / 'floor.db'}"
    migrate(url)
    repo = Repo(make_engine(url))
    gw = GatewayClient(GatewaySettings(url=gateway.url, api_key=gateway.api_key, timeout=5))
    w = build_worker(
        env.client,
        CaseActivities(repo, gw, teams=TEAMS),
        task_queue=TASK_QUEUE,
        workflow_failure_exception_types=[Exception],
        workflow_runner=SandboxedWorkflowRunner(),
    )
    async with w:
        cases = Cases(env, repo, task_queue=TASK_QUEUE)
        yield cases, repo
        await cases.terminate_all()
    await gw.aclose()


def open_tasks(repo: Repo, loan_id: str | None = None) -> list[TaskRow]:
    with repo.session() as s:
        q = select(TaskRow).order_by(TaskRow.id)
        if loan_id:
            q = q.where(TaskRow.loan_id == loan_id)
        return list(s.exec(q).all())


def events(repo: Repo, loan_id: str, kind: str) -> list[str]:
    with repo.session() as s:
        return [e.detail for e in s.exec(select(EventRow).where(EventRow.loan_id == loan_id, EventRow.kind == kind)).all()]


def loan(h) -> str:
    return h.id.removeprefix("loan-")


# ------------------------------------------------------------------ the rules, pure


def test_a_team_is_chosen_by_action_segment_and_region_and_a_member_by_load():
    def pick(action, segment, address, load=None, exclude=None):
        province, city, _ = tasks.region_of(address)
        return tasks.assign(TEAMS, action=action, segment=segment, province=province, city=city, load=load or {}, exclude=exclude)

    assert pick("call", "retail", SHANGHAI["address"]) == ("East calls", "Li Na")  # ties by name
    assert pick("call", "retail", SHANGHAI["address"], {"Li Na": 3, "Wang Fang": 1}) == ("East calls", "Wang Fang")
    assert pick("call", "retail", SHANGHAI["address"], exclude="Li Na") == ("East calls", "Wang Fang")
    assert pick("visit", "retail", SHANGHAI["address"]) == ("Shanghai field", "Zhou Min")
    assert pick("call", "sme", BEIJING["address"]) == ("SME desk", "Chen Jie")  # Beijing is not an East team's region
    assert pick("visit", "retail", "浙江省杭州市西湖区文三路") == ("National", "Sun Li")  # East calls do no visits
    only_shanghai = tasks.Teams.model_validate({"teams": [TEAMS.teams[1]]})
    assert tasks.assign(only_shanghai, action="call", segment="", province="北京", city="北京", load={}) == (
        "unassigned",
        None,
    )


def test_the_region_and_district_come_from_the_address():
    assert tasks.region_of("上海市黄浦区南京东路1号") == ("上海", "上海", "黄浦区")
    assert tasks.region_of("广东省深圳市南山区科技园") == ("广东", "深圳", "南山区")
    assert tasks.region_of("内蒙古自治区呼和浩特市新城区") == ("内蒙古", "呼和浩特", "新城区")
    assert tasks.region_of(None) == ("", "", "")


def test_a_visit_slot_lies_inside_the_window_on_an_allowed_day_and_fills_the_day_before_the_next():
    """Days from the State Council's notice for 2026 (国办发明电〔2025〕7号, policies/calendars/cn-2026.toml):
    "六、中秋节：9月25日（周五）至27日（周日）放假，共3天。" and "七、国庆节：10月1日（周四）至7日（周三）放假调休，
    共7天。9月20日（周日）、10月10日（周六）上班。"
    """
    rules = ContactRules(window_start="08:00", window_end="21:00")
    sh = ZoneInfo("Asia/Shanghai")
    # Thursday 24 September, evening: the next three days are the Mid-Autumn break; Monday 28th is the first
    now = datetime(2026, 9, 24, 22, 0, tzinfo=sh)
    start, end = tasks.visit_slot(now, "Asia/Shanghai", rules, 120, {})
    assert start == datetime(2026, 9, 28, 8, 0, tzinfo=sh) and end - start == timedelta(hours=2)
    # six two-hour slots fit in 08:00-21:00 (the last starts at 18:00 and ends at 20:00); a full day moves on
    start, _ = tasks.visit_slot(now, "Asia/Shanghai", rules, 120, {date(2026, 9, 28): 5})
    assert start == datetime(2026, 9, 28, 18, 0, tzinfo=sh)
    start, _ = tasks.visit_slot(now, "Asia/Shanghai", rules, 120, {date(2026, 9, 28): 6})
    assert start == datetime(2026, 9, 29, 8, 0, tzinfo=sh)
    # from 30 September the National Day break (1-7 October) is skipped: Thursday 8 October
    start, _ = tasks.visit_slot(datetime(2026, 9, 30, 12, 0, tzinfo=sh), "Asia/Shanghai", rules, 120, {})
    assert start == datetime(2026, 10, 8, 8, 0, tzinfo=sh)
    # no visit on any rest day (weekends=false): Sunday 20 September is a make-up working day, so it is booked
    workdays = ContactRules(window_start="09:00", window_end="18:00", weekends=False)
    start, _ = tasks.visit_slot(datetime(2026, 9, 19, 10, 0, tzinfo=sh), "Asia/Shanghai", workdays, 120, {})
    assert start == datetime(2026, 9, 20, 9, 0, tzinfo=sh)
    start, _ = tasks.visit_slot(datetime(2026, 9, 12, 10, 0, tzinfo=sh), "Asia/Shanghai", workdays, 120, {})
    assert start == datetime(2026, 9, 14, 9, 0, tzinfo=sh)  # Sunday 13th is an ordinary rest day


def test_a_policy_gives_only_its_steps_own_call_or_visit_to_the_floor():
    data = load_policy("default").model_dump(mode="json")
    data["steps"][0]["modes"] = {"call": "agent"}  # the reminder step has no call
    with pytest.raises(InvalidInput) as e:
        parse_policy(data)
    assert "steps[0].modes" in e.value.field and "not one of the step's actions" in e.value.reason
    data["steps"][0]["modes"] = {"sms": "agent"}
    with pytest.raises(InvalidInput):
        parse_policy(data)


# ------------------------------------------------------------------ on the time-skipping server


async def test_a_call_in_agent_mode_opens_a_task_for_the_region_team_instead_of_a_send(floor, gateway):
    cases, repo = floor
    h = await cases.start(dpd=7, policy=POLICY, contact=SHANGHAI)
    st = await cases.status(h)
    assert "first_call" in st.steps_done
    assert st.awaiting is not None and st.awaiting.kind == "call" and st.awaiting.task_id is not None
    [t] = open_tasks(repo, loan(h))
    assert (t.action, t.status, t.team, t.assignee) == ("call", "open", "East calls", "Li Na")
    assert (t.province, t.district, t.dpd) == ("上海", "黄浦区", 7)
    assert t.due_at == st.awaiting.task_due
    assert (t.due_at - await cases.now()) <= timedelta(hours=8)
    assert events(repo, loan(h), "task_opened")
    assert gateway.outbox(loan_id=loan(h), channel="call") == []  # no provider's call
    assert gateway.outbox(loan_id=loan(h), channel="sms")  # (the gateway did hear of the case: its reminder)
    # a second case in the same region goes to the member with fewer open tasks
    h2 = await cases.start(dpd=7, policy=POLICY, contact=SHANGHAI)
    [t2] = open_tasks(repo, loan(h2))
    assert t2.assignee == "Wang Fang"
    # the SME desk is listed first: an SME loan in Shanghai goes there
    h3 = await cases.start(dpd=7, policy=POLICY, contact=SHANGHAI, segment="sme")
    assert open_tasks(repo, loan(h3))[0].team == "SME desk"


async def test_a_task_not_worked_in_time_is_requeued_then_the_wait_ends_and_the_ladder_moves_on(floor):
    cases, repo = floor
    h = await cases.start(dpd=7, policy=POLICY, contact=SHANGHAI)
    [t] = open_tasks(repo, loan(h))
    assert t.assignee == "Li Na" and t.requeues == 0
    await cases.advance(hours=9)  # past the 8-hour due time: another member of the team
    [t] = open_tasks(repo, loan(h))
    assert (t.assignee, t.requeues, t.status) == ("Wang Fang", 1, "open")
    assert (await cases.status(h)).awaiting.requeues == 1
    await cases.advance(hours=9)
    [t] = open_tasks(repo, loan(h))
    assert (t.assignee, t.requeues) == ("Li Na", 2)
    await cases.advance(hours=9)  # max_requeues = 2: no third
    assert open_tasks(repo, loan(h))[0].requeues == 2
    assert len(events(repo, loan(h), "task_requeued")) == 2
    await cases.advance(days=3)  # call_await_days = 3: the wait ends, the task expires
    st = await cases.status(h)
    assert st.awaiting is None or st.awaiting.kind != "call"
    assert open_tasks(repo, loan(h))[0].status == "expired"
    assert any("no call outcome for first_call" in d for d in events(repo, loan(h), "outcome_timeout"))


async def test_the_outcome_of_the_task_ends_it_and_a_promise_pauses_the_case(floor):
    cases, repo = floor
    h = await cases.start(dpd=7, policy=POLICY, contact=SHANGHAI)
    [t] = open_tasks(repo, loan(h))
    today = today_in(await cases.now())
    await assert_rejected(
        h, CollectionCase.record_outcome, OutcomeIn(kind="call", outcome="answered", task_id=t.id + 99), "task_id"
    )
    r = await h.execute_update(
        CollectionCase.record_outcome,
        OutcomeIn(kind="call", outcome="promise", amount="300.00", date=today + timedelta(days=5), task_id=t.id),
    )
    assert r.status == "paused"
    await cases.settle(h)
    st = await cases.status(h)
    assert st.awaiting is None and st.promise is not None and st.promise.status == "active"
    assert open_tasks(repo, loan(h))[0].status == "done"


async def test_a_visit_task_gets_a_slot_and_a_paid_case_cancels_its_open_task(floor):
    cases, repo = floor
    h = await cases.start(dpd=30, policy=POLICY, contact=SHANGHAI)
    st = await cases.status(h)
    assert st.awaiting is not None and st.awaiting.kind == "visit"
    [t] = [x for x in open_tasks(repo, loan(h)) if x.action == "visit"]
    assert (t.team, t.assignee, t.status) == ("Shanghai field", "Zhou Min", "open")
    sh = ZoneInfo("Asia/Shanghai")
    assert t.slot_start is not None and t.slot_end is not None
    assert t.slot_start.astimezone(sh).date() > today_in(await cases.now())  # from the next day on
    assert t.due_at > t.slot_end
    await h.execute_update(CollectionCase.record_payment, PaymentIn(payment_id=f"P-{loan(h)}", amount="10520.00", currency="CNY"))
    await cases.result(h)
    assert [x.status for x in open_tasks(repo, loan(h))] == ["cancelled"]


# ------------------------------------------------------------------ the floor's use cases (app/tasks.py)


@pytest.fixture
def as_collector():
    """Act as the collector Li Na (the caller every use case checks), then as nobody again."""
    from access.permissions import Caller, acting_as

    def act(name: str = "Li Na", roles=("collector",)) -> None:
        acting_as(Caller("op-0123456789ab", roles, name=name))

    yield act
    acting_as(None)


def gate_policy():
    """Agent mode with the default contact rules (08:00-21:00, an hour between contacts, 3 calls a day)."""
    data = POLICY.model_dump(mode="json")
    data["contact"] = load_policy("default").contact.model_dump(mode="json")
    data["contact"]["public_holidays"] = False  # the day this runs on may be any day; the window is what is tested
    return parse_policy(data)


def at_local(now: datetime, hour: int, tz: str = "Asia/Shanghai") -> datetime:
    """The next instant after `now` at `hour`:15 on the borrower's clock."""
    local = now.astimezone(ZoneInfo(tz))
    t = local.replace(hour=hour, minute=15, second=0, microsecond=0)
    return t if t > local else t + timedelta(days=1)


async def to_morning(cases) -> None:
    """Move the server's clock to the next 09:15 on the borrower's clock, so the reminder goes out at once."""
    now = await cases.now()
    await cases.advance(hours=(at_local(now, 9) - now).total_seconds() / 3600)


async def test_click_to_call_asks_the_gate_then_shows_the_number_and_records_the_attempt_with_the_actor(floor, as_collector):
    from app import tasks as floor_tasks

    cases, repo = floor
    await to_morning(cases)
    h = await cases.start(dpd=7, policy=gate_policy(), contact=SHANGHAI, settle=True)
    await cases.settle(h)
    [t] = open_tasks(repo, loan(h))
    as_collector()
    now = await cases.now()
    # after 21:00 borrower time: refused, with the rule and when the window opens again; no number, no attempt
    late = at_local(now, 21)
    refused = floor_tasks.open_call(repo, t.id, now=late)
    assert not refused.allowed and refused.rule == "contact_window" and refused.phone is None
    assert refused.retry_at is not None and refused.retry_at.astimezone(ZoneInfo("Asia/Shanghai")).hour == 8
    assert open_tasks(repo, loan(h))[0].attempts == 0
    # at 10:15 the next morning: allowed, the number is shown, the attempt is in the ledger with the actor
    ten = at_local(late, 10)
    ok = floor_tasks.open_call(repo, t.id, now=ten)
    assert ok.allowed and ok.phone == "13812345678" and ok.attempt == 1
    with repo.session() as s:
        from db.tables import ContactRow

        [row] = s.exec(select(ContactRow).where(ContactRow.idempotency_key == f"task:{t.id}:call:1")).all()
        assert (row.status, row.channel, row.actor) == ("delivered", "call", "op-0123456789ab:collector")
    assert events(repo, loan(h), "contact_details_viewed")
    # a second click ten minutes later: the policy's hour between two contacts holds for people too
    again = floor_tasks.open_call(repo, t.id, now=ten + timedelta(minutes=10))
    assert not again.allowed and again.rule == "min_interval"
    # another collector's task is not Li Na's to call
    as_collector("Wang Fang")
    with pytest.raises(InvalidInput) as e:
        floor_tasks.open_call(repo, t.id, now=ten + timedelta(hours=2))
    assert e.value.field == "task_id" and "assigned to Li Na" in e.value.reason


async def test_the_outcome_form_sends_the_same_update_and_a_promise_pauses_the_case(floor, as_collector, env):
    from app import tasks as floor_tasks

    cases, repo = floor
    h = await cases.start(dpd=7, policy=POLICY, contact=SHANGHAI)
    [t] = open_tasks(repo, loan(h))
    as_collector()
    body = floor_tasks.TaskOutcome(outcome="promise", amount="200.00", date=today_in(await cases.now()) + timedelta(days=3))
    with pytest.raises(InvalidInput) as e:  # not called yet: the gate has not been asked
        await floor_tasks.record_outcome(env.client, repo, t.id, body)
    assert e.value.field == "task_id"
    assert floor_tasks.open_call(repo, t.id, now=await cases.now()).allowed
    bad = body.model_copy(update={"outcome": "met_borrower"})
    with pytest.raises(InvalidInput) as e:
        await floor_tasks.record_outcome(env.client, repo, t.id, bad)
    assert e.value.field == "outcome" and open_tasks(repo, loan(h))[0].status == "open"
    r = await floor_tasks.record_outcome(env.client, repo, t.id, body.model_copy(update={"notes": "will pay Friday"}))
    assert r.status == "paused"
    [t] = open_tasks(repo, loan(h))
    assert (t.status, t.outcome, t.notes, t.worked_by) == ("done", "promise", "will pay Friday", "op-0123456789ab:collector")
    await cases.settle(h)
    with repo.session() as s:
        from db.tables import ContactRow

        rows = s.exec(select(ContactRow).where(ContactRow.loan_id == loan(h), ContactRow.channel == "call")).all()
    assert [(r.outcome, r.actor) for r in rows] == [("promise", "op-0123456789ab:collector")]  # one call, not two


async def test_my_tasks_lists_todays_calls_by_urgency_and_visits_by_district(floor, as_collector):
    from app import tasks as floor_tasks

    cases, repo = floor
    await cases.start(dpd=7, policy=POLICY, contact=SHANGHAI)
    await cases.start(dpd=7, policy=POLICY, contact={"address": "上海市徐汇区漕溪北路8号"}, principal=9_000_000)
    as_collector()
    rows, more = floor_tasks.my_tasks(repo, now=await cases.now())
    assert not more and [r.action for r in rows] == ["call"]  # Li Na has one of the two calls (by load)
    as_collector("Zhou Min")
    for address in ("上海市徐汇区漕溪北路8号", "上海市黄浦区南京东路1号", "上海市长宁区延安西路3号"):
        await cases.start(dpd=30, policy=POLICY, contact={"address": address})
    visits = [x for x in open_tasks(repo) if x.action == "visit"]
    day = visits[0].slot_start.astimezone(ZoneInfo("Asia/Shanghai")).date()
    rows, _ = floor_tasks.my_tasks(repo, now=await cases.now(), day=day)
    assert [r.district for r in rows] == sorted(r.district for r in rows) and len(rows) == 3
    with pytest.raises(InvalidInput) as e:
        floor_tasks.my_tasks(repo, assignee="Li Na")
    assert e.value.field == "assignee"


async def test_a_supervisor_gives_a_task_to_another_operator_who_can_work_it(floor, as_collector):
    from access.operators import Operators
    from access.permissions import Forbidden
    from app import tasks as floor_tasks

    cases, repo = floor
    store = Operators(repo)
    store.ensure("Wang Fang", ["collector"])
    store.ensure("Viewer Wu", ["viewer"])
    h = await cases.start(dpd=7, policy=POLICY, contact=SHANGHAI)
    [t] = open_tasks(repo, loan(h))
    as_collector()
    with pytest.raises(Forbidden):  # a collector may not
        floor_tasks.reassign(repo, t.id, floor_tasks.Reassign(assignee="Wang Fang"))
    as_collector("Zhang Sup", roles=("supervisor",))
    for who, fragment in (("Nobody Here", "no active operator"), ("Viewer Wu", "no role that records a call")):
        with pytest.raises(InvalidInput) as e:
            floor_tasks.reassign(repo, t.id, floor_tasks.Reassign(assignee=who))
        assert e.value.field == "assignee" and fragment in e.value.reason
        assert open_tasks(repo, loan(h))[0].assignee == "Li Na"  # nothing changed
    view = floor_tasks.reassign(repo, t.id, floor_tasks.Reassign(assignee="Wang Fang", reason="Li Na is off today"))
    assert view.assignee == "Wang Fang" and open_tasks(repo, loan(h))[0].assignee == "Wang Fang"
    assert any("from Li Na to Wang Fang: Li Na is off today" in d for d in events(repo, loan(h), "task_reassigned"))


def test_a_task_id_beyond_the_column_is_not_found_not_a_server_error(repo, as_collector):
    from app import tasks as floor_tasks
    from app.errors import NotFound

    as_collector()
    for bad in (0, 2**31, 45238295496862071162667008):  # the last one a fuzzer sent
        with pytest.raises(NotFound) as e:
            floor_tasks.open_call(repo, bad)
        assert e.value.field == "task_id"


def test_the_direct_simulator_places_agent_mode_calls_as_the_provider_would(tmp_path):
    """The simulator has no floor (sim/direct.py): a policy's agent-mode first call is placed and answered as the
    provider's would be, so the champion with it makes as many calls as the same policy without it."""
    from domain.policy import POLICY_DIR
    from sim.run import Options, simulate_direct

    text = (POLICY_DIR / "default.toml").read_text(encoding="utf-8").replace('name = "default"', 'name = "agent"')
    assert 'actions = ["call"]' in text

    def champion_calls(policy_text: str, name: str) -> int:
        path = tmp_path / f"{name}.toml"
        path.write_text(policy_text, encoding="utf-8")
        opts = Options(
            champion=str(path), challenger="default", out=tmp_path / name, progress=False, workers=1, loans=60, days=60, seed=3
        )
        return simulate_direct(opts)["arms"]["champion"]["actions"].get("call", 0)

    provider = champion_calls(text, "provider")
    agent = champion_calls(text.replace('actions = ["call"]', 'actions = ["call"]\nmodes = { call = "agent" }', 1), "agent")
    assert provider > 0 and agent == provider, (agent, provider)


def test_the_policy_formula_puts_a_broken_promise_and_a_legal_clock_before_a_larger_balance():
    from domain.policy import Urgency
    from domain.tasks import live_dpd, urgency

    w = Urgency()
    plain = urgency(40, 5_000_000, 0, None, w)  # DPD 40, 50,000.00
    assert urgency(40, 50_000_000, 0, None, w) - plain == 100  # a tenfold balance: one point
    assert urgency(70, 5_000_000, 0, None, w) - plain == 100  # a month later: one point
    assert urgency(40, 5_000_000, 1, None, w) - plain == 200  # a broken promise: two points
    assert urgency(40, 5_000_000, 0, 10, w) - plain == 300  # a legal clock ending within 30 days: three points
    assert urgency(40, 5_000_000, 0, 31, w) == plain  # ... and not beyond
    heavier = Urgency(per_broken_promise=25)
    assert urgency(10, 100_000, 1, None, heavier) > urgency(300, 900_000_000, 0, 5, heavier)  # the policy decides
    opened = datetime(2026, 12, 1, tzinfo=UTC)
    assert live_dpd(12, opened, opened + timedelta(seconds=6 * 28 + 5), 6) == 40  # the demo's 6-second days
    assert live_dpd(12, opened, opened + timedelta(hours=23), 86400) == 12


async def test_my_call_list_is_ordered_by_urgency_and_shows_days_past_due_as_of_now(floor, as_collector):
    from app import tasks as floor_tasks

    cases, repo = floor
    small = await cases.start(dpd=7, policy=POLICY, contact=SHANGHAI, principal=100_000)
    large = await cases.start(dpd=7, policy=POLICY, contact=SHANGHAI, principal=90_000_000)
    as_collector()
    mine = {r.loan_id: r for r in open_tasks(repo)}
    ids = {loan(small), loan(large)}
    assert ids <= set(mine), mine
    assert mine[loan(large)].urgency > mine[loan(small)].urgency
    for name in {mine[i].assignee for i in ids}:
        as_collector(name)
        rows, _ = floor_tasks.my_tasks(repo, now=await cases.now())
        calls = [r for r in rows if r.loan_id in ids]
        assert [r.urgency for r in calls] == sorted((r.urgency for r in calls), reverse=True)
    later = (await cases.now()) + timedelta(days=3)
    as_collector(mine[loan(large)].assignee)
    view = floor_tasks.task(repo, mine[loan(large)].id)
    rows, _ = floor_tasks.my_tasks(repo, now=later, day=later.date())
    assert view.dpd == 7 and [r.dpd for r in rows if r.loan_id == loan(large)] == [10]
