"""The direct engine's shortcuts change no answer.

The simulator is fast because it does not ask the same question twice: the calendar folder is taken as it is for
the run (`domain.calendar.frozen`), and while it is, the pure functions of the calendar keep their answers (the legal
periods, the next opening of the contact window); the borrower reads a view of the case's status query instead of
the whole query. Each shortcut is checked here against the answer computed the long way.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from domain import calendar, compliance, legal
from domain import status as shown
from domain.dates import zone
from domain.policy import load_policy
from tests.conftest import TEST_ONLY_CALENDAR


@pytest.fixture
def only_2026(tmp_path, monkeypatch):
    folder = tmp_path / "calendars"
    folder.mkdir()
    (folder / "cn-2026.toml").write_text((calendar.OFFICIAL_DIR / "cn-2026.toml").read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.setattr(calendar, "CALENDAR_DIR", folder)
    calendar.clear_cache()
    yield folder
    calendar.clear_cache()


def test_a_frozen_folder_keeps_a_missing_year_missing_and_thawing_forgets_it(only_2026):
    start = date(2025, 1, 1)  # two years from it end in 2027: no file for that year yet
    with calendar.frozen():
        assert calendar.is_frozen()
        with pytest.raises(calendar.CalendarMissing):
            calendar.year_calendar(2027)
        assert legal.period(start, "Asia/Shanghai", years=2).last_day is None
        (only_2026 / "cn-2027.toml").write_text(TEST_ONLY_CALENDAR.format(year=2027, prev=2026), encoding="utf-8")
        with pytest.raises(calendar.CalendarMissing):  # the run takes the folder as it found it
            calendar.year_calendar(2027)
        assert legal.period(start, "Asia/Shanghai", years=2).last_day is None
    assert not calendar.is_frozen()
    # outside a frozen run, as the worker always is: the file added releases the year at once
    assert calendar.year_calendar(2027).year == 2027
    assert legal.period(start, "Asia/Shanghai", years=2).last_day == date(
        2027, 1, 4
    )  # 1 January (the stand-in's break), then a weekend


def test_unfrozen_answers_are_not_kept(only_2026):
    with pytest.raises(calendar.CalendarMissing):
        calendar.year_calendar(2027)
    (only_2026 / "cn-2027.toml").write_text(TEST_ONLY_CALENDAR.format(year=2027, prev=2026), encoding="utf-8")
    assert calendar.year_calendar(2027).year == 2027


def _instants(first: datetime, days: int, step: timedelta):
    t = first
    while t < first + timedelta(days=days):
        yield t
        t += step


@pytest.mark.parametrize("policy", ["default", "policies/challenger-early-legal.toml", "demo"])
def test_the_kept_window_openings_are_the_computed_ones(only_2026, policy):
    """Across the new year's break, the spring festival, a year with no file and both clocks of a Urumqi borrower,
    at instants in three representations (UTC, the borrower's zone, Beijing time): the memo's answer is the
    computed one, to the zone it is written in."""
    rules = load_policy(policy).contact
    cases = []
    for first, days in (
        (datetime(2025, 12, 29, tzinfo=UTC), 8),
        (datetime(2026, 2, 12, tzinfo=UTC), 14),
        (datetime(2026, 12, 30, tzinfo=UTC), 4),
    ):
        for t in _instants(first, days, timedelta(minutes=97)):
            for tz in ("Asia/Shanghai", "Asia/Urumqi", "Asia/Hong_Kong"):
                for now in (t, t.astimezone(zone(tz)), t.astimezone(zone("Asia/Shanghai"))):
                    for timed in (True, False):
                        cases.append((now, tz, timed))
    expected = [compliance.next_window_open(now, tz, rules, timed) for now, tz, timed in cases]
    with calendar.frozen():
        for _ in range(2):  # the second pass answers from the memo
            got = [compliance.next_window_open(now, tz, rules, timed) for now, tz, timed in cases]
            assert [(g, g.tzinfo) for g in got] == [(e, e.tzinfo) for e in expected]
    assert len(cases) > 5000
    closed = sum(e > now for e, (now, _, _) in zip(expected, cases, strict=True))
    assert closed == 0 if policy == "demo" else closed > 1000  # the demo's window never closes


def test_the_borrower_reads_what_the_status_query_says(monkeypatch):
    """Every time a simulated borrower looks at its case, the view it gets holds the status query's values."""
    from sim import direct
    from sim.clock import checkpoint_anchor

    seen = []
    view_of = direct.status_view

    def checked(case):
        view = view_of(case)
        full = shown.of(case, case.state.opened_at)
        assert view.status == full.status
        assert view.outstanding == full.outstanding
        assert (view.plan, view.promise, view.holds) == (full.plan, full.promise, full.holds)
        seen.append(view.status)
        return view

    monkeypatch.setattr(direct, "status_view", checked)
    start = date(2026, 1, 1)
    policies = {"champion": load_policy("default"), "challenger": load_policy("policies/challenger-early-legal.toml")}
    job = direct.Job(policies=policies, seed=5, days=200, start=start, anchor=checkpoint_anchor(start))
    direct.run(job, 80, workers=1)
    assert len(seen) > 50 and {"active", "paused"} <= set(seen)


def test_a_step_found_by_its_key_is_the_policys():
    from datetime import date

    from domain.case import Case
    from domain.models import CaseInput

    for name in ("default", "policies/challenger-early-legal.toml"):
        policy = load_policy(name)
        inp = CaseInput(
            loan_id="L1", borrower_id="B1", currency="CNY", principal=100_000, due_date=date(2026, 1, 1), policy=policy
        )
        case = Case(inp, datetime(2026, 2, 1, tzinfo=UTC))
        for st in policy.steps:
            assert case.step_named(st.key) is policy.steps[policy.step_index(st.key)]
        with pytest.raises(ValueError):
            case.step_named("no_such_step")
