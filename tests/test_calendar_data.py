"""A new year's official calendar as data (issue 19 part 5): added through `starter.py calendars`, approved by a
second compliance operator, in force on the running worker within its refresh, without a restart or a file on disk.

And the workflow side: a case run's legal clocks count with the calendar years it recorded (a local activity's answer
in its history), so a year approved while the case runs does not change what a replay of the run computes."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from access.operators import Operators
from access.permissions import Caller, acting_as
from app import calendars
from app.errors import BadInput
from db.engine import make_engine, migrate
from db.repo import Repo
from db.tables import CalendarYearRow
from domain import calendar as cal
from domain import compliance
from domain import status as shown
from domain.case import Case
from domain.legal import add_years
from domain.models import CaseInput, RecordedCalendar
from domain.policy import ContactRules, parse_policy
from tests.conftest import DATA_CONVERTER, LADDER_POLICY, TASK_QUEUE, today_in
from tests.workflow_helpers import run_starter
from workflows.case import CollectionCase

OFFICIAL_2026 = (cal.OFFICIAL_DIR / "cn-2026.toml").read_text(encoding="utf-8")


def calendar_text(year: int, rest: date) -> str:
    """A valid file for `year` with one break of one day (test data, not from any notice)."""
    return (
        f'year = {year}\n[source]\ntitle = "国务院办公厅关于{year}年部分节假日安排的通知"\nnumber = "test data"\n'
        f'date = {year - 1}-11-01\n[[breaks]]\nname = "test"\nrest = [{rest.isoformat()}]\n'
    )


@pytest.fixture
def no_calendars(tmp_path, monkeypatch):
    """No calendar file at all, and no database year in force in this process (restored after)."""
    folder = tmp_path / "calendars"
    folder.mkdir()
    monkeypatch.setattr(cal, "CALENDAR_DIR", folder)
    monkeypatch.setattr(cal, "_loaded", {})
    monkeypatch.setattr(cal, "_database", {})
    return folder


@pytest.fixture
def db(tmp_path) -> Repo:
    """A database of the test's own for the calendar rows (the session's is shared by every test)."""
    url = f"sqlite:///{tmp_path / 'calendars.db'}"
    migrate(url)
    return Repo(make_engine(url))


@pytest.fixture
def two_compliance(db):
    """Two operators with the role compliance (maker and checker) and their tokens."""
    store = Operators(db)
    tag = uuid.uuid4().hex[:6]
    out = []
    for who in ("maker", "checker"):
        op = store.add(f"{who} {tag}", ["compliance"])
        out.append((op.id, store.issue_token(op.id).token))
    return out


def as_operator(db, op_id: str):
    return acting_as(Caller(op_id, ["compliance"], via="test"))


def rows(db, year: int) -> list[CalendarYearRow]:
    with db.session() as s:
        return [r for r in s.scalars(select(CalendarYearRow)) if r.year == year]


async def cli(env, db, *args: str):
    url = db.engine.url.render_as_string(hide_password=False)
    return await run_starter(env.client.service_client.config.target_host, TASK_QUEUE, url, *args, timeout=60)


# ---------------------------------------------------------------- end to end: through the CLI, no restart


async def test_a_year_added_and_approved_through_the_cli_releases_a_refused_case(
    cases, env, db, no_calendars, two_compliance, tmp_path
):
    """A contact bound to rest days waits (calendar_missing); compliance adds the year with the CLI, its maker
    cannot approve it, a second operator does; the running worker reads it on its next refresh and the case's
    daily ask sends the reminder. The audit keeps both people; the history replays with the year now in force."""
    (maker, maker_token), (checker, checker_token) = two_compliance
    contact = LADDER_POLICY.contact.model_copy(update={"public_holidays": True})  # any hour, but bound to rest days
    policy = LADDER_POLICY.model_copy(update={"contact": contact})
    h = await cases.start(dpd=1, loan_id=f"CALDATA-{uuid.uuid4().hex[:6]}", policy=policy)
    refresh = asyncio.create_task(calendars.watch(db, every=0.1))  # what worker.py runs, every minute
    try:
        await cases.advance(hours=2)
        st = await cases.status(h)
        assert "reminder_notice" not in st.steps_done
        refused = [d for d in st.decisions if not d.allowed]
        assert refused and {d.rule for d in refused} == {"calendar_missing"}
        assert "no database calendar" in refused[0].reason and "starter.py calendars add" in refused[0].reason

        now = await cases.now()
        years = sorted({now.year, (now + timedelta(days=3)).year})
        upload = tmp_path / "upload"
        upload.mkdir()
        for year in years:
            far = date(year, 7, 1) if now.month < 4 or now.month > 9 else date(year, 1, 1)
            (upload / f"cn-{year}.toml").write_text(calendar_text(year, far), encoding="utf-8")
            r = await cli(env, db, "calendars", "add", str(upload / f"cn-{year}.toml"), "--token", maker_token)
            assert r.returncode == 0, r.stderr
            assert "waits" in r.stdout or "approves" in r.stdout
            # the maker cannot approve it (four-eyes), and nothing is in force after the refusal
            r = await cli(env, db, "calendars", "approve", str(year), "--token", maker_token)
            assert r.returncode == 3 and r.stderr.startswith("error: checker:") and "four-eyes" in r.stderr, r.stderr
            assert [x.status for x in rows(db, year)] == ["pending"]
        await asyncio.sleep(0.5)  # a refresh or more: still nothing approved
        assert not cal.database_years()
        await cases.advance(days=1, hours=1)
        assert "reminder_notice" not in (await cases.status(h)).steps_done

        for year in years:
            r = await cli(env, db, "calendars", "approve", str(year), "--token", checker_token, "--note", "checked")
            assert r.returncode == 0, r.stderr
        await asyncio.sleep(0.5)  # the worker's next refresh (every minute in production)
        assert cal.in_force(years[0]).startswith(f"database, approved by {checker}:compliance at ")
        await cases.advance(days=1, hours=1)  # the case asks again daily (compliance.INDEFINITE_RECHECK)
        st = await cases.status(h)
        assert "reminder_notice" in st.steps_done

        # the audit trail: who added it and who approved it, on the row
        r = await cli(env, db, "calendars", "list", "--json", "--token", checker_token)
        assert r.returncode == 0, r.stderr
        listed = json.loads(r.stdout)
        row = next(c for c in listed["changes"] if c["year"] == years[0])
        assert row["status"] == "approved" and row["maker"] == f"{maker}:compliance" and row["checker"] == f"{checker}:compliance"
        assert listed["in_force"][str(years[0])].startswith("database, approved by")
    finally:
        refresh.cancel()
    # the history replays with the year in force now (the gate's answers are in it; no legal clock read it)
    history = await h.fetch_history()
    result = await Replayer(workflows=[CollectionCase], data_converter=DATA_CONVERTER).replay_workflow(history)
    assert result.replay_failure is None


async def test_a_bad_file_is_refused_naming_the_field_and_nothing_is_stored(env, db, two_compliance, tmp_path):
    (maker, token), _ = two_compliance
    bad = tmp_path / "cn-2031.toml"
    bad.write_text(calendar_text(2031, date(2031, 7, 1)).replace("[2031-07-01]", '["2031-07-01"]'), encoding="utf-8")
    r = await cli(env, db, "calendars", "add", str(bad), "--token", token)
    assert r.returncode == 2 and r.stderr.startswith("error: cn-2031.toml: breaks[0].rest:"), r.stderr
    assert "TOML dates, not strings" in r.stderr
    assert rows(db, 2031) == []
    # each of the loader's checks, through the same use case the console posts to
    as_operator(db, maker)
    cases_ = {
        "cn-2031.toml": (calendar_text(2030, date(2030, 7, 1)), "cn-2031.toml: year"),  # the file's year is not its name's
        "2031.toml": (calendar_text(2031, date(2031, 7, 1)), "file"),  # not named as the loader names files
        "cn-2032.toml": ("year = 2032\n[source", "cn-2032.toml"),  # not TOML
    }
    for name, (text, field) in cases_.items():
        with pytest.raises(BadInput) as e:
            calendars.add(db, name, text.encode())
        assert e.value.field == field, (name, e.value)
    assert rows(db, 2030) == [] and rows(db, 2031) == [] and rows(db, 2032) == []


def test_an_approved_database_year_wins_over_the_file_and_is_named(db, two_compliance, tmp_path, monkeypatch):
    (maker, _), (checker, _) = two_compliance
    folder = tmp_path / "calendars"
    folder.mkdir()
    (folder / "cn-2026.toml").write_text(OFFICIAL_2026, encoding="utf-8")
    monkeypatch.setattr(cal, "CALENDAR_DIR", folder)
    monkeypatch.setattr(cal, "_loaded", {})
    monkeypatch.setattr(cal, "_database", {})
    assert cal.in_force(2026) == "file cn-2026.toml" and cal.is_rest_day(date(2026, 10, 1))
    # a corrected 2026 (test data: one break on 6 July only) added and approved: it wins
    token = as_operator(db, maker)
    calendars.add(db, "cn-2026.toml", calendar_text(2026, date(2026, 7, 6)).encode(), "a correction")
    acting_as(Caller(checker, ["compliance"], via="test"))
    with monkeypatch.context() as m:
        m.setattr(cal, "_database", {})
        calendars.refresh(db)
        assert cal.in_force(2026) == "file cn-2026.toml"  # pending: the file is still in force
    calendars.decide(db, 2026, "approve")
    calendars.refresh(db)
    assert cal.in_force(2026).startswith(f"database, approved by {checker}:compliance at ")
    assert f"added by {maker}:compliance" in cal.in_force(2026)
    assert cal.is_rest_day(date(2026, 7, 6)) and not cal.is_rest_day(date(2026, 10, 1))
    # the gate's refusal names it
    at = datetime(2026, 7, 6, 10, 0, tzinfo=compliance.zone("Asia/Shanghai"))
    d = compliance.check_window("sms", at, "Asia/Shanghai", ContactRules(public_holidays=True))
    assert d is not None and d.rule == "holiday" and "calendar: database, approved by" in d.reason
    # the watch's warning names what is in force for this year
    warning = cal.missing_warning(date(2026, 11, 2))
    assert warning is not None and "In force for 2026: database, approved by" in warning
    acting_as(None)
    del token


# ---------------------------------------------------------------- the workflow side: what a run counts with


def lawsuit_case(today: date, recorded: bool) -> Case:
    """A case whose limitation period's nominal last day was five days ago (so its calendar decides the lawsuit)."""
    due = add_years(today - timedelta(days=5), -3)
    data = LADDER_POLICY.model_dump(mode="json")
    data["write_off_dpd"] = 2000
    inp = CaseInput(
        loan_id="REC-1",
        borrower_id="B-REC-1",
        currency="CNY",
        principal=100_000,
        interest=0,
        fees=0,
        due_date=due,
        timezone="Asia/Shanghai",
        policy=parse_policy(data),
    )
    from domain.dates import local_midnight

    case = Case(inp, local_midnight(today, "Asia/Shanghai") + timedelta(hours=10))
    case.regime = replace(case.regime, recorded_calendar=recorded)
    return case


def test_a_run_counts_only_with_the_years_it_recorded(no_calendars, monkeypatch):
    """The process-wide calendar may gain (or change) a year at any time; a recording run does not see it until it
    records it, and then keeps what it recorded. The process-wide reader (the simulator) sees it at once."""
    today = date(2026, 12, 7)
    from domain.dates import local_midnight

    now = local_midnight(today, "Asia/Shanghai") + timedelta(hours=10)
    run, plain = lawsuit_case(today, True), lawsuit_case(today, False)
    assert run.legal_refusal("lawsuit", now).rule == "calendar_missing"
    assert run.calendar_years_to_ask(now) == [2026]  # a decision waits for it: asked at once
    run.record_calendars([2026], [], now)  # not in force anywhere yet
    assert run.calendar_years_to_ask(now + timedelta(hours=23)) == []  # asked again daily, not sooner
    # 2026 comes into force in the process (a database year): the plain reader sees it, the run does not
    cal.use_database([cal.parse_text(OFFICIAL_2026, Path("cn-2026.toml"), 2026)])
    assert plain.legal_refusal("lawsuit", now).rule == "limitation_period"
    assert run.legal_refusal("lawsuit", now).rule == "calendar_missing"
    later = now + timedelta(days=1)
    assert run.calendar_years_to_ask(later) == [2026]
    from activities.calendars import in_force_years

    got = in_force_years([2026])
    assert got and got[0].source == "file cn-2026.toml" or got[0].source.startswith("database")
    run.record_calendars([2026], got, later)
    refusal = run.legal_refusal("lawsuit", later)
    assert refusal.rule == "limitation_period" and refusal.final
    assert any(e.kind == "calendar_recorded" for e in run.state.events)
    # a changed 2026 in the process afterwards: the run keeps the year it counted with
    cal.use_database([cal.parse_text(calendar_text(2026, date(2026, 12, 2)), Path("cn-2026.toml"), 2026)])
    assert run.legal_refusal("lawsuit", later).rule == "limitation_period"
    run.record_calendars([2026], [RecordedCalendar(year=2026, rest=[date(2026, 12, 2)], source="other")], later)
    assert [c.source for c in run.state.calendars] == [got[0].source]
    assert shown.of(run, later).calendars == [f"2026: {got[0].source}"]
    # a new run (continue-as-new) learns again
    again = Case(run.inp.model_copy(update={"state": run.state}), later)
    assert again.state.calendars == [] and again.state.calendar_asked_at is None


def test_a_year_no_decision_waits_for_is_asked_weekly_not_daily(no_calendars):
    """A limitation period three years out: its year is asked a week after opening, then weekly."""
    from domain.dates import local_midnight

    today = date(2026, 12, 7)
    now = local_midnight(today, "Asia/Shanghai") + timedelta(hours=10)
    case = lawsuit_case(today, True)
    case.state.limitation_start = today  # restarted today: ends in 2029
    assert case.calendar_years_to_ask(now) == []
    assert case.calendar_years_to_ask(now + timedelta(days=7)) == [2029]
    case.record_calendars([2029], [], now + timedelta(days=7))
    assert case.calendar_years_to_ask(now + timedelta(days=13)) == []
    assert case.calendar_years_to_ask(now + timedelta(days=14)) == [2029]


async def _lawsuit_waits_for_a_year_then_is_time_barred(cases, db, two_compliance, recorded: bool):
    """The lawsuit waits for the year of its limitation period's last day (calendar_missing); the year is approved as
    data and refreshed into the worker; a day later the lawsuit is refused as time-barred. The history, replayed."""
    (maker, _), (checker, _) = two_compliance
    today = today_in(await cases.now())
    due = add_years(today - timedelta(days=5), -3)
    data = LADDER_POLICY.model_dump(mode="json")
    data["write_off_dpd"] = 2000
    # no bureau steps: the report's notice period needs the year's calendar too, and would hold the ladder before the
    # lawsuit this test is about (tests/test_legal.py counts the notice period)
    data["steps"] = [s for s in data["steps"] if not {"bureau_notice", "bureau_report"} & set(s["actions"])]
    h = await cases.start(dpd=(today - due).days, loan_id=f"RECLAW-{uuid.uuid4().hex[:6]}", policy=parse_policy(data))
    await cases.advance(days=20)
    st = await cases.status(h)
    lawsuit = [d for d in st.decisions if d.action == "lawsuit"]
    assert lawsuit and lawsuit[-1].rule == "calendar_missing", lawsuit
    assert st.calendars == []
    year = (today - timedelta(days=5)).year
    text = OFFICIAL_2026 if year == 2026 else calendar_text(year, date(year, 7, 1))
    as_operator(db, maker)
    calendars.add(db, f"cn-{year}.toml", text.encode())
    acting_as(Caller(checker, ["compliance"], via="test"))
    calendars.decide(db, year, "approve")
    acting_as(None)
    calendars.refresh(db)  # the worker's refresh
    await cases.advance(days=1, hours=1)
    st = await cases.status(h)
    if recorded:
        assert st.calendars and st.calendars[0].startswith(f"{year}: database, approved by {checker}:compliance")
    lawsuit = [d for d in st.decisions if d.action == "lawsuit"]
    assert lawsuit[-1].rule == "limitation_period" and lawsuit[-1].final, lawsuit
    history = WorkflowHistory.from_json(h.id, (await h.fetch_history()).to_json())
    replayer = Replayer(workflows=[CollectionCase], data_converter=DATA_CONVERTER)
    return await replayer.replay_workflow(history, raise_on_replay_failure=False)


async def test_a_legal_clock_waiting_for_a_year_records_it_and_the_run_replays(cases, db, no_calendars, two_compliance):
    """The run records the year when its daily ask finds it in force: the history, replayed with the year in force
    from its first event, computes what the run computed."""
    result = await _lawsuit_waits_for_a_year_then_is_time_barred(cases, db, two_compliance, recorded=True)
    assert result.replay_failure is None


async def test_without_recording_the_same_history_does_not_replay(cases, db, no_calendars, two_compliance, monkeypatch):
    """Why the run records its years: with the workflow reading the worker's calendar (the code before
    CALENDAR_RECORDED), the year approved mid-run changes what the replay computes on its first day, and the
    replay fails with a non-determinism error (a case stuck in production)."""
    monkeypatch.setattr(Case, "calendar_view", lambda self: None)
    monkeypatch.setattr(Case, "calendar_years_to_ask", lambda self, now: [])
    result = await _lawsuit_waits_for_a_year_then_is_time_barred(cases, db, two_compliance, recorded=False)
    assert isinstance(result.replay_failure, workflow.NondeterminismError), repr(result.replay_failure)


# ---------------------------------------------------------------- the console's calendar page (role compliance)


async def test_the_console_page_adds_and_a_second_person_approves(db, two_compliance, no_calendars):
    import httpx

    from api.server import create_app
    from tests.test_console import BASE, ORIGIN, csrf_of, sign_in

    (maker, maker_token), (checker, checker_token) = two_compliance
    app = create_app(tokens=["calendar-test-bootstrap-0123456789"], repo=db)

    def client() -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)

    text = calendar_text(2033, date(2033, 7, 1))
    async with client() as c:
        assert (await sign_in(c, maker_token)).status_code == 303
        page = await c.get("/console/calendars")
        assert page.status_code == 200 and 'data-testid="add-calendar"' in page.text
        bad = await c.post(
            "/console/calendars/add",
            data={"csrf": csrf_of(page.text), "name": "cn-2033.toml", "toml": text.replace("2033-07-01", "2032-07-01")},
            headers=ORIGIN,
        )
        assert bad.status_code == 422 and "breaks[0].rest" in bad.text and rows(db, 2033) == []
        r = await c.post(
            "/console/calendars/add", data={"csrf": csrf_of(page.text), "name": "cn-2033.toml", "toml": text}, headers=ORIGIN
        )
        assert r.status_code == 200 and 'data-testid="pending-2033"' in r.text
        assert 'data-testid="approve-2033"' not in r.text  # not offered to its maker
        r = await c.post("/console/calendars/2033/approve", data={"csrf": csrf_of(page.text)}, headers=ORIGIN)
        assert r.status_code == 422 and "checker" in r.text and "four-eyes" in r.text
    async with client() as c:
        assert (await sign_in(c, checker_token)).status_code == 303
        page = await c.get("/console/calendars")
        assert 'data-testid="approve-2033"' in page.text
        r = await c.post("/console/calendars/2033/approve", data={"csrf": csrf_of(page.text), "note": "ok"}, headers=ORIGIN)
        assert r.status_code == 200 and "2033 年的节假日安排已批准" in r.text  # the console speaks Chinese by default
        assert f"database, approved by {checker}:compliance" in r.text
    assert [(x.status, x.maker, x.checker) for x in rows(db, 2033)] == [
        ("approved", f"{maker}:compliance", f"{checker}:compliance")
    ]
