"""The legal clocks (domain/legal.py) and what the case does with them, each edge from the source's wording:

- 民事诉讼法 art. 85 / 民法典 art. 201: 期间开始的时和日，不计算在期间内 (the day of service is not counted);
- 民法典 art. 203: 期间的最后一日的截止时间为二十四时 (the last day ends at 24:00);
- 民法典 art. 203 / 民事诉讼法 art. 85: a last day on a 法定休假日 moves to the first day after it (the official calendar);
- 民事诉讼法 art. 227: 债务人应当自收到支付令之日起十五日内 ... 提出书面异议;
- 民事诉讼法 art. 250: 申请执行的期间为二年 ... 从法律文书规定履行期间的最后一日起计算;
- 民法典 art. 195: the limitation period restarts from a demand, an acknowledgement (payment, promise), a filing;
- 征信业管理条例 art. 15: the borrower is told before a negative report.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest

from domain import calendar, legal
from domain import status as shown
from domain.dates import zone
from domain.errors import InvalidInput
from domain.models import ContactResult, GateRecord, OutcomeIn
from domain.policy import LegalRules
from tests.test_case_rules import DEFAULT, SH, T0, Runner

UTC = UTC
RULES = LegalRules()


def at(d: date, h: int = 0, m: int = 0, tz: str = SH) -> datetime:
    return datetime.combine(d, time(h, m), tzinfo=zone(tz))


def facts(**kw) -> legal.Facts:
    return legal.Facts(**{"tz": SH, "limitation_start": date(2026, 1, 1), **kw})


def check(action: str, now: datetime, **kw):
    return legal.check(action, now, RULES, facts(**kw))


@pytest.fixture
def calendar_2028(tmp_path, monkeypatch):
    """A test-only calendar for 2028 (no notice exists yet): weekends rest, one invented break, so that clocks ending
    in 2028 can be counted; 2026's real file beside it."""
    (tmp_path / "cn-2026.toml").write_text(calendar.calendar_path(2026).read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "cn-2028.toml").write_text(
        'year = 2028\n[source]\ntitle = "测试用：2028年（非官方）"\nnumber = "test"\ndate = 2027-11-01\n'
        '[[breaks]]\nname = "元旦"\nrest = [2028-01-01, 2028-01-02, 2028-01-03]\n',
        encoding="utf-8",
    )
    monkeypatch.setattr(calendar, "CALENDAR_DIR", Path(tmp_path))
    calendar.clear_cache()
    yield
    calendar.clear_cache()


@pytest.fixture
def only_2026(tmp_path, monkeypatch):
    """2026's official file alone: the years after it have no file (the suite's own folder has test-only stand-ins
    for them, tests/conftest.py)."""
    (tmp_path / "cn-2026.toml").write_text(calendar.calendar_path(2026).read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.setattr(calendar, "CALENDAR_DIR", Path(tmp_path))
    calendar.clear_cache()
    yield
    calendar.clear_cache()


# ---------------------------------------------------------------- counting


def test_the_start_day_is_not_counted_and_the_last_day_ends_at_24_00():
    p = legal.period(date(2026, 6, 1), SH, days=15)  # served Monday 1 June 2026
    assert p.last_day == date(2026, 6, 16)  # 15 days from 2 June: 16 June (a Tuesday)
    assert p.ends == at(date(2026, 6, 17))  # 24:00 of 16 June, Beijing time
    assert p.ends.tzinfo is UTC or p.ends.utcoffset() == timedelta(0)


def test_a_last_day_inside_the_national_day_break_moves_to_the_first_working_day_after_it():
    p = legal.period(date(2026, 9, 16), SH, days=15)  # would end on 1 October 2026
    assert p.nominal == date(2026, 10, 1)
    assert p.last_day == date(2026, 10, 8) and p.moved  # 1-7 October rest (国办发明电〔2025〕7号), the 8th works
    assert p.ends == at(date(2026, 10, 9))


def test_a_last_day_on_a_saturday_moves_to_monday_but_a_make_up_saturday_does_not_move():
    assert legal.period(date(2026, 6, 5), SH, days=15).last_day == date(2026, 6, 22)  # Sat 20 June -> Mon 22
    assert legal.period(date(2026, 9, 26), SH, days=14).last_day == date(2026, 10, 10)  # Sat 10 Oct is a working day


def test_a_period_of_years_ends_on_the_corresponding_day_or_the_months_last_day():
    assert legal.nominal_last_day(date(2023, 3, 1), years=3) == date(2026, 3, 1)
    assert legal.nominal_last_day(date(2024, 2, 29), years=2) == date(2026, 2, 28)  # 民法典 art. 202


@pytest.mark.usefixtures("only_2026")
def test_a_missing_calendar_year_leaves_the_end_unknown():
    p = legal.period(date(2026, 12, 25), SH, days=15)  # ends in 2027, no file
    assert p.nominal == date(2027, 1, 9) and p.last_day is None and p.ends is None
    assert "cn-2027.toml" in p.missing


# ---------------------------------------------------------------- payment order (民事诉讼法 art. 227)


def test_enforcement_of_a_payment_order_waits_for_24_00_of_the_15th_day_after_service():
    kw = dict(payment_order=True, served_on=date(2026, 6, 1))
    d = check("enforcement", at(date(2026, 6, 16), 23, 59), **kw)
    assert d.rule == "objection_window" and not d.final and d.retry_at == at(date(2026, 6, 17))
    assert "2026-06-16" in d.reason and "art. 227" in d.reason
    assert check("enforcement", at(date(2026, 6, 17)), **kw) is None
    # counted from issue (the old rule) or with the service day counted, it would have opened on the 16th
    assert check("enforcement", at(date(2026, 6, 16), 12), **kw) is not None


def test_the_objection_window_ending_in_the_national_day_break_runs_to_8_october():
    kw = dict(payment_order=True, served_on=date(2026, 9, 16))
    assert check("enforcement", at(date(2026, 10, 8), 23, 0), **kw).retry_at == at(date(2026, 10, 9))
    assert check("enforcement", at(date(2026, 10, 9)), **kw) is None


def test_a_payment_order_without_its_service_date_or_with_an_objection_never_enforces():
    d = check("enforcement", at(date(2026, 8, 1)), payment_order=True)
    assert d.rule == "payment_order_service" and not d.final
    d = check("enforcement", at(date(2026, 8, 1)), payment_order=True, served_on=date(2026, 6, 1), objection=True)
    assert d.rule == "payment_order_objection" and d.final


@pytest.mark.usefixtures("only_2026")
def test_an_objection_window_ending_in_a_year_with_no_calendar_fails_closed():
    d = check("enforcement", at(date(2027, 1, 12)), payment_order=True, served_on=date(2026, 12, 25))
    assert d.rule == "calendar_missing" and not d.final and "cn-2027.toml" in d.reason
    assert d.retry_at == at(date(2027, 1, 12)) + timedelta(days=1)


# ---------------------------------------------------------------- judgment (民事诉讼法 art. 250)


def test_enforcement_not_before_the_performance_period_ends():
    kw = dict(judgment=True, effective_on=date(2026, 5, 20), performance_ends=date(2026, 6, 10))
    d = check("enforcement", at(date(2026, 6, 10), 23, 59), **kw)
    assert d.rule == "performance_period" and d.retry_at == at(date(2026, 6, 11)) and not d.final
    assert check("enforcement", at(date(2026, 6, 11)), **kw) is None


def test_a_judgment_without_its_dates_never_enforces():
    d = check("enforcement", at(date(2027, 6, 1)), judgment=True)
    assert d.rule == "judgment_dates" and not d.final and "performance_ends" in d.reason


def test_enforcement_is_refused_after_two_years_from_the_performance_periods_last_day(calendar_2028):
    # performance period to Wed 10 June 2026: two years end on Sat 10 June 2028, moved to Mon 12 June (art. 85)
    kw = dict(judgment=True, effective_on=date(2026, 5, 20), performance_ends=date(2026, 6, 10))
    assert check("enforcement", at(date(2028, 6, 12), 23, 59), **kw) is None
    d = check("enforcement", at(date(2028, 6, 13)), **kw)
    assert d.rule == "enforcement_deadline" and d.final and "2028-06-12" in d.reason and "art. 250" in d.reason


@pytest.mark.usefixtures("only_2026")
def test_the_enforcement_deadline_in_a_year_with_no_calendar_is_never_declared_run_out():
    kw = dict(judgment=True, effective_on=date(2026, 5, 20), performance_ends=date(2026, 6, 10))
    assert check("enforcement", at(date(2028, 6, 10), 12), **kw) is None  # before the nominal end: known open
    d = check("enforcement", at(date(2028, 6, 13)), **kw)
    assert d.rule == "calendar_missing" and not d.final and "cn-2028.toml" in d.reason


# ---------------------------------------------------------------- limitation (民法典 arts. 188, 195)


def test_the_limitation_period_ends_at_24_00_three_years_after_the_start_day(calendar_2028):
    # a loan due Thu 1 June 2028 - 3 years = 1 June 2025: last day Thu 1 June 2028 (working)
    kw = dict(limitation_start=date(2025, 6, 1))
    assert check("lawsuit", at(date(2028, 6, 1), 23, 59), **kw) is None
    d = check("payment_order", at(date(2028, 6, 2)), **kw)
    assert d.rule == "limitation_period" and d.final and "art. 188" in d.reason


def test_a_case_payment_restarts_the_limitation_on_the_day_it_was_paid_in_the_borrowers_zone():
    r = Runner.open(dpd=100)
    paid_at = datetime(2026, 5, 20, 17, 30, tzinfo=UTC)  # 21 May 01:30 in Shanghai, recorded on 1 June
    r.pay("100.00", paid_at=paid_at)
    assert r.state.limitation_start == date(2026, 5, 21)
    assert r.state.limitation_restarts[-1].cause == "payment" and r.state.limitation_restarts[-1].on == date(2026, 5, 21)
    clock = next(c for c in shown.of(r.case, r.now).legal_clocks if c.name == "limitation")
    assert clock.restarted_on == date(2026, 5, 21) and clock.restart_cause == "payment" and "188" in clock.source
    assert clock.last_day == date(2029, 5, 21) or clock.last_day is None  # 2029 has no calendar file yet
    assert any(e.kind == "limitation_restarted" and "2026-05-21" in e.detail for e in r.state.events)


def test_a_payment_made_before_the_last_restart_restarts_nothing():
    r = Runner.open(dpd=100)
    r.pay("100.00", "P1")
    r.pay("100.00", "P2", paid_at=T0 - timedelta(days=300))  # before the due date
    assert r.state.limitation_start == date(2026, 6, 1) and len(r.state.limitation_restarts) == 1


def _lawyers_letter(status: str):
    def results(step):
        return [ContactResult(action=a, channel=a, status=status if a == "law_firm" else "delivered") for a in step.actions]

    return results


def test_a_delivered_lawyers_letter_restarts_the_limitation_and_a_failed_one_does_not():
    r = Runner.open(dpd=1)
    r.run_until(r.dpd_at(61))
    when = r.when("lawyers_letter")
    restart = r.state.limitation_restarts[-1]
    assert restart.cause.startswith("lawyer's letter") and restart.on == r.case.clock.today(when)
    f = Runner.open(dpd=1)
    f.results = _lawyers_letter("failed")
    f.run_until(f.dpd_at(61))
    assert "lawyers_letter" in f.keys() and f.state.limitation_restarts == []
    assert f.state.limitation_start is None and f.case.limitation_start() == f.case.inp.due_date


def test_a_promise_and_a_filed_lawsuit_restart_it_too():
    r = Runner.open(dpd=1)
    r.run_until(r.dpd_at(121))
    causes = [x.cause for x in r.state.limitation_restarts]
    assert causes[0].startswith("lawyer's letter") and causes[-1] == "lawsuit filed"


# ---------------------------------------------------------------- the case: judgment, payment order


def test_a_judgment_without_dates_waits_with_a_next_action_asking_for_them_and_never_enforces_at_once():
    r = LegalRunner(Runner.open(dpd=1).case).run_until(T0 + timedelta(days=130))
    r.outcome("court", "judgment", reference="(2026)沪0101民初1号")
    r.run_until(r.dpd_at(180))  # 27 November 2026: a month past the enforcement step's DPD
    assert "enforcement" not in r.keys()
    assert "effective_on" in shown.next_action(r.case).what and "performance_ends" in shown.next_action(r.case).what
    # a later court outcome supplies them; enforcement follows once the performance period has ended
    today = r.case.clock.today(r.now)
    r.outcome("court", "judgment", effective_on=today - timedelta(days=20), performance_ends=today + timedelta(days=2))
    r.run_until(r.now + timedelta(days=1))
    assert "enforcement" not in r.keys()
    r.run_until(r.now + timedelta(days=10))
    ran = r.when("enforcement")
    assert today + timedelta(days=2) == date(2026, 11, 29)  # a Sunday: the period's last day moves to Monday 30th
    opens = at(date(2026, 12, 1))
    assert ran == opens
    views = {c.name: c for c in shown.of(r.case, r.now).legal_clocks}
    assert views["enforcement_opens"].at == opens and "art. 250" in views["enforcement_opens"].source


def test_judgment_dates_are_checked_and_name_their_field():
    r = Runner.open(dpd=1).run_until(T0 + timedelta(days=130))
    today = r.case.clock.today(r.now)
    cases = [
        (dict(effective_on=today), "performance_ends"),
        (dict(effective_on=today + timedelta(days=1), performance_ends=today + timedelta(days=5)), "effective_on"),
        (dict(effective_on=today, performance_ends=today - timedelta(days=1)), "performance_ends"),
    ]
    for kw, field in cases:
        with pytest.raises(InvalidInput) as e:
            r.outcome("court", "judgment", **kw)
        assert e.value.field == field
    with pytest.raises(InvalidInput) as e:
        r.outcome("court", "lawsuit_filed", served_on=today)
    assert e.value.field == "served_on"
    assert r.state.judgment_at is None  # nothing changed


def test_a_payment_order_waits_for_its_service_date_then_the_objection_window():
    data = DEFAULT.model_dump()
    data["steps"] = [s for s in data["steps"] if s["key"] not in ("litigation",)]
    i = next(n for n, s in enumerate(data["steps"]) if s["key"] == "enforcement")
    data["steps"].insert(
        i, {"key": "payment_order", "stage": "litigation", "dpd": 100, "actions": ["payment_order"], "await_outcome_days": 30}
    )
    from domain.policy import parse_policy
    from tests.test_case_rules import make_case

    r = LegalRunner(make_case(1, policy=parse_policy(data)))
    r.run_until(r.dpd_at(105))
    r.outcome("court", "payment_order_issued")
    r.run_until(r.dpd_at(200))
    assert "enforcement" not in r.keys() and "served_on" in shown.next_action(r.case).what
    served = r.case.clock.today(r.now) - timedelta(days=3)
    r.outcome("court", "payment_order_served", served_on=served)
    r.run_until(r.now + timedelta(days=30))
    assert r.when("enforcement") == legal.period(served, SH, days=15).ends


# ---------------------------------------------------------------- the credit-bureau notice (征信业管理条例 art. 15)


def legal_channel(action: str) -> str:
    return {v: k for k, v in legal.NOTICE_ACTIONS.items()}.get(action, action)


class LegalRunner(Runner):
    """Runs a step as workflows/case.py does: the case's pending actions (the notice by its current channel), each
    first asked of the legal clocks (case.legal_refusal); the allowed ones come back with `statuses` (else delivered)."""

    statuses: dict[str, str] = {}

    def run_until(self, until):
        case = self.case
        for _ in range(10_000):
            case.tick(self.now)
            if case.state.closed:
                return self
            idx = case.due_step(self.now)
            if idx is not None:
                step = case.begin_step(idx, self.now)
                refusals, results = [], []
                for a in case.pending_actions(idx):
                    d = case.legal_refusal(a, self.now)
                    if d is None:
                        results.append(
                            ContactResult(action=a, channel=legal_channel(a), status=self.statuses.get(a, "delivered"))
                        )
                    else:
                        refusals.append(
                            GateRecord(
                                at=self.now,
                                step=step.key,
                                action=a,
                                allowed=False,
                                rule=d.rule,
                                reason=d.reason,
                                retry_at=d.retry_at,
                                final=d.final,
                            )
                        )
                case.settle_step(idx, results, refusals, self.now)
                if results:
                    self.ran.append((step.key, self.now))
                continue
            wake = case.wake_at()
            assert wake is None or wake > self.now
            if wake is None or wake > until:
                self.now = max(self.now, until)
                return self
            self.now = wake
        raise AssertionError("never settled")


def notice_runner(statuses: dict[str, str]) -> LegalRunner:
    r = LegalRunner(Runner.open(dpd=1).case)
    r.statuses = statuses
    return r


def test_a_failed_notice_blocks_the_report_and_tries_the_next_channel():
    r = notice_runner({"bureau_notice": "failed"})
    r.run_until(r.dpd_at(110))
    assert r.state.bureau_notice_failed == ["letter"]
    notice_at = [t for k, t in r.ran if k == "bureau_notice"]
    assert len(notice_at) == 2 and notice_at[0] == notice_at[1] == r.dpd_at(76)  # the letter failed, the SMS at once
    assert r.state.bureau_notice_delivered_at == r.dpd_at(76)
    # 14 days after the day the SMS was delivered (Saturday 15 August, DPD 76): the 29th is a Saturday, so the last
    # day is Monday the 31st, and the report follows its 24:00 (DPD 93; 民法典 arts. 201, 203)
    assert r.when("bureau_report") == r.dpd_at(93)
    assert any(e.kind == "bureau_notice_failed" and "trying sms" in e.detail for e in r.state.events)


def test_no_channel_left_the_report_never_goes_and_the_case_asks_to_verify_the_address():
    r = notice_runner({a: "failed" for a in legal.NOTICE_ACTION_SET})
    r.run_until(r.dpd_at(200))
    assert r.state.bureau_notice_failed == ["letter", "sms", "email"]
    assert "bureau_report" not in r.keys() and "bureau_notice" not in r.state.steps_done
    assert shown.next_action(r.case).what.startswith("notice undeliverable: verify the address")
    assert r.case.due_step(r.now) is None


def test_the_report_falls_due_after_the_notice_period_from_the_day_it_was_delivered_not_sent():
    r = notice_runner({"bureau_notice": "failed"})
    r.run_until(r.dpd_at(77))
    assert r.case.step_at(r.state.next_step) == r.dpd_at(93)
    # and the report action itself is refused while no notice was delivered (the clock's own safety net)
    d = legal.check("bureau_report", r.now, RULES, facts())
    assert d.rule == "bureau_notice" and "verify the address" in d.reason


def test_a_disputes_answer_is_due_20_days_after_it_was_received():
    due = legal.dispute_answer_due(date(2026, 9, 20), SH, RULES)
    assert due == at(date(2026, 10, 11))  # received 20 Sep (not counted): last day 10 Oct, 24:00


# ---------------------------------------------------------------- the event text's zone


def test_a_retry_time_in_beijing_time_is_written_in_utc_with_z():
    r = Runner.open(dpd=1)
    step = r.case.begin_step(0, r.now)
    retry = datetime(2026, 12, 1, 0, 0, tzinfo=zone(SH))  # 00:00 in Beijing = 30 Nov 16:00 UTC
    refusal = GateRecord(at=r.now, step=step.key, action="sms", allowed=False, rule="holiday", reason="test", retry_at=retry)
    r.case.settle_step(0, [], [refusal], r.now)
    detail = r.state.events[-1].detail
    assert "asks again at 2026-11-30 16:00Z" in detail and "2026-12-01 00:00Z" not in detail


# ---------------------------------------------------------------- on the time-skipping server


async def test_enforcement_waits_for_the_judgments_dates_and_its_performance_period_in_the_workflow(cases):
    from domain.policy import parse_policy
    from tests.conftest import open_hours, today_in
    from workflows.case import CollectionCase as W

    today = today_in(await cases.now())
    try:  # the server's clock is the wall clock: the clocks below must end in a year with a calendar file
        calendar.next_working_day(today + timedelta(days=25))
    except calendar.CalendarMissing as exc:
        pytest.skip(f"{exc} (the case's clocks would wait for it, as they must)")
    data = DEFAULT.model_dump(mode="json")
    data.update(
        name="fast-court",
        steps=[
            {"key": "reminder_notice", "stage": "reminder", "dpd": 1, "actions": ["sms"]},
            {"key": "litigation", "stage": "litigation", "dpd": 3, "actions": ["lawsuit"], "await_outcome_days": 60},
            {
                "key": "enforcement",
                "stage": "enforcement",
                "dpd": 4,
                "actions": ["enforcement"],
                "requires": "judgment",
                "await_outcome_days": 30,
            },
        ],
    )
    h = await cases.start(dpd=1, policy=open_hours(parse_policy(data)))
    await cases.advance(days=3)
    assert (await cases.status(h)).steps_done[-1] == "litigation"
    # a judgment recorded without its dates: the case never applies for enforcement, and says what it needs
    await h.execute_update(W.record_outcome, OutcomeIn(kind="court", outcome="judgment", reference="(2026)沪0101民初9号"))
    await cases.advance(days=5)
    st = await cases.status(h)
    assert "enforcement" not in st.steps_done
    assert "effective_on" in st.next_action.what and "performance_ends" in st.next_action.what
    # the dates arrive: enforcement waits for 24:00 of the performance period's last day (moved past rest days)
    today = today_in(await cases.now())
    ends = today + timedelta(days=10)
    await h.execute_update(
        W.record_outcome, OutcomeIn(kind="court", outcome="judgment", effective_on=today, performance_ends=ends)
    )
    opens = legal.period(ends, SH).ends
    st = await cases.status(h)
    clock = next(c for c in st.legal_clocks if c.name == "enforcement_opens")
    assert clock.at == opens and "art. 250" in clock.source
    await cases.advance(hours=(opens - await cases.now()).total_seconds() / 3600 - 1)
    st = await cases.status(h)
    assert "enforcement" not in st.steps_done
    refused = [e for e in st.events if e.kind == "legal_refused" and "performance_period" in e.detail]
    assert refused and f"asks again at {opens:%Y-%m-%d %H:%M}Z" in refused[-1].detail
    await cases.advance(hours=2)
    st = await cases.status(h)
    assert st.steps_done[-1] == "enforcement"
    limitation = next(c for c in st.legal_clocks if c.name == "limitation")
    assert limitation.restart_cause == "lawsuit filed" and "195" in limitation.source


async def test_a_notice_without_an_address_goes_by_sms_and_with_no_channel_the_report_never_goes(cases):
    from domain.policy import parse_policy
    from tests.conftest import open_hours
    from workflows.case import CollectionCase as W  # noqa: F401

    data = DEFAULT.model_dump(mode="json")
    data.update(
        name="fast-bureau",
        steps=[
            {"key": "reminder_notice", "stage": "reminder", "dpd": 1, "actions": ["email"]},
            {"key": "bureau_notice", "stage": "credit_bureau", "dpd": 2, "actions": ["bureau_notice"], "mandatory": True},
            {"key": "bureau_report", "stage": "credit_bureau", "dpd": 3, "actions": ["bureau_report"], "mandatory": True},
        ],
    )
    policy = open_hours(parse_policy(data))
    by_sms = await cases.start(dpd=1, policy=policy, contact={"address": None})
    nowhere = await cases.start(dpd=1, policy=policy, contact={"address": None, "phone": None, "email": None})
    await cases.advance(days=4)
    st = await cases.status(by_sms)
    assert "bureau_notice" in st.steps_done and "bureau_report" not in st.steps_done  # 14 days from delivery
    assert st.contacts.get("sms") == 1 and any(e.kind == "bureau_notice_failed" and "trying sms" in e.detail for e in st.events)
    gone = await cases.status(nowhere)
    assert gone.next_action.what.startswith("notice undeliverable: verify the address")
    await cases.advance(days=13)  # the notice went on the third day: the report on the 17th
    assert "bureau_report" in (await cases.status(by_sms)).steps_done
    gone = await cases.status(nowhere)
    assert "bureau_report" not in gone.steps_done and gone.contacts.get("credit_bureau") is None


# ---------------------------------------------------------------- the credit-bureau notice's days (issue 25, gap 2)
# The notice says "如在14日内仍未归还，我行将…报送": counted as 民法典 arts. 201-203 count days, the borrower has until
# 24:00 of the 14th day after the day it reached them, and a 14th day on a rest day moves to the first working day
# after it (art. 203: 以法定休假日结束的次日为期间的最后一日).


def report_check(now: datetime, delivered: datetime, rules: LegalRules = RULES) -> legal.Refusal | None:
    return legal.check("bureau_report", now, rules, facts(notice_delivered_at=delivered, notice_counted=True))


def test_the_report_waits_for_24_00_of_the_notices_14th_day():
    delivered = at(date(2026, 3, 2), 10)  # a Monday; the 14th day after it, 16 March, is a working day
    for early in (at(date(2026, 3, 16), 10), at(date(2026, 3, 16), 23, 59)):
        r = report_check(early, delivered)
        assert r is not None and r.rule == "bureau_notice" and r.retry_at == at(date(2026, 3, 17)), (early, r)
        assert "last day 2026-03-16" in r.reason
    assert report_check(at(date(2026, 3, 17)), delivered) is None
    # the same case's step: not before that 24:00 (the old count, delivery + 14 x 24 h, reported at 10:00 on the 16th)
    n = legal.notice_period(facts(notice_delivered_at=delivered, notice_counted=True), RULES)
    assert n is not None and n.ends == at(date(2026, 3, 17)) and not n.moved


def test_a_14th_day_inside_a_break_moves_the_report_past_it():
    delivered = at(date(2025, 9, 17), 10)  # 14 days on: 1 October, National Day; the break runs to 8 October
    n = legal.notice_period(facts(notice_delivered_at=delivered, notice_counted=True), RULES)
    assert n is not None and n.nominal == date(2025, 10, 1) and n.last_day == date(2025, 10, 9) and n.moved
    assert report_check(at(date(2025, 10, 1), 10), delivered) is not None  # the old count reported here
    assert report_check(at(date(2025, 10, 9), 23, 59), delivered) is not None
    assert report_check(at(date(2025, 10, 10)), delivered) is None


def channel_request(step: str, action: str, **kw):
    """A send of loan L1 as the workflow asks for it (activities/contracts.py ChannelRequest), for the templates."""
    from activities.contracts import ChannelRequest

    fields = dict(
        workflow_id="loan-L1",
        case_key="k",
        loan_id="L1",
        borrower_id="B1",
        step=step,
        action=action,
        idempotency_key=f"k:{step}:{action}",
        policy="p",
        stage=step,
        dpd=1,
        currency="CNY",
        outstanding={"total": "1.00", "principal": "1.00", "interest": "0.00", "fees": "0.00"},
        due_date=date(2026, 1, 1),
    )
    return ChannelRequest(**{**fields, **kw})


def zh_borrower():
    from db.tables import BorrowerRow

    return BorrowerRow(id="B1", name="张伟", timezone=SH, language="zh")


def test_a_policy_with_10_notice_days_reports_after_10_and_its_letter_says_10():
    from activities.messages import context, render

    ten = LegalRules(bureau_notice_days=10)
    delivered = at(date(2026, 3, 2), 10)
    assert report_check(at(date(2026, 3, 12), 23, 59), delivered, ten) is not None
    assert report_check(at(date(2026, 3, 13)), delivered, ten) is None
    req = channel_request("bureau_notice", "bureau_notice", stage="credit_bureau", dpd=76, notice_days=10)
    borrower = zh_borrower()
    ctx = context(req, borrower, date(2026, 3, 2))
    assert "如在10日内仍未归还" in render("letter_bureau_notice", "zh", **ctx)
    assert "10日内仍未归还" in render("sms_bureau_notice", "zh", **ctx)
    assert "within 10 days" in render(
        "letter_bureau_notice", "en", **context(req, borrower.model_copy(update={"language": "en"}), date(2026, 3, 2))
    )


def test_a_notice_period_ending_in_a_year_with_no_calendar_waits_as_calendar_missing(only_2026):
    delivered = at(date(2026, 12, 28), 10)  # 14 days on: 11 January 2027, no calendar file for 2027
    r = report_check(at(date(2027, 1, 12)), delivered)
    assert r is not None and r.rule == "calendar_missing" and not r.final


def test_a_run_from_before_counts_the_notice_as_it_did():
    r = LegalRunner(Runner.open(dpd=1).case)
    r.case.regime = replace(r.case.regime, notice_counted=False)  # workflows/versioning.py NOTICE_PERIOD: a run begun before it
    r.run_until(r.dpd_at(100))
    assert r.when("bureau_report") == r.dpd_at(90)  # delivery + 14 x 24 h
    assert report_check(at(date(2026, 3, 16), 10), at(date(2026, 3, 2), 10)) is not None  # the new count refuses it
    assert (
        legal.check("bureau_report", at(date(2026, 3, 16), 10), RULES, facts(notice_delivered_at=at(date(2026, 3, 2), 10)))
        is None
    )


# ---------------------------------------------------------------- a time-barred debt stays time-barred (issue 25, gap 1)
# 民法典 art. 192: 诉讼时效期间届满的，义务人可以提出不履行义务的抗辩。诉讼时效期间届满后，义务人同意履行的，不得以诉讼
# 时效期间届满为由抗辩. Art. 195 interrupts a period that is still running; after it has run out a creditor's demand has
# nothing left to interrupt. 最高人民法院 诉讼时效规定 art. 19: the debtor's agreement or voluntary performance waives it.

DUE_2022 = date(2022, 10, 12)  # its period ends at 24:00 on 2025-10-13 (the 12th is a Sunday: art. 203 moves it)


def barred_runner(now: datetime) -> LegalRunner:
    """A case of a loan due 2022-10-12 at `now`, on the default ladder with the lawyer's letter mandatory (a case
    opened late skips it otherwise): as the issue's case, held by a dispute until 2026-03-02, resumes at it."""
    from domain.policy import parse_policy
    from tests.test_case_rules import make_case

    data = DEFAULT.model_dump(mode="json")
    for s in data["steps"]:
        if "law_firm" in s["actions"]:
            s["mandatory"] = True
    policy = parse_policy(data)
    return LegalRunner(make_case(dpd=(now.astimezone(zone(SH)).date() - DUE_2022).days, now=now, policy=policy), now)


def test_the_period_of_a_loan_due_2022_10_12_ends_at_24_00_on_2025_10_13():
    r = barred_runner(at(date(2025, 10, 13), 23, 59))
    assert r.case.limitation_over(r.now) is None
    over = r.case.limitation_over(at(date(2025, 10, 14)))
    assert over is not None and "24:00 on 2025-10-13" in over


def test_our_own_letter_after_the_period_restarts_nothing_and_legal_steps_are_refused():
    r = barred_runner(at(date(2026, 3, 2), 10))  # the hold of the issue released on 2026-03-02: the ladder resumes
    assert "time-barred" in (shown.of(r.case, r.now).time_barred or "")  # the case says so from the start
    r.run_until(r.now + timedelta(days=200))
    refused = {d.action: d.rule for d in r.state.decisions if not d.allowed}
    assert refused.get("law_firm") == "time_barred", r.state.decisions  # the lawyer's letter was never sent
    assert "law_firm" not in r.state.contacts
    assert refused.get("lawsuit") == "limitation_period"
    assert r.state.limitation_start is None and r.state.limitation_restarts == []
    assert r.case.limitation_over(r.now) is not None  # still time-barred
    st = shown.of(r.case, r.now)
    assert st.outcome == "time_barred" or "time-barred" in (st.time_barred or ""), st
    # a delivered demand, recorded anyway (an operator's letter, a filing): nothing restarts
    r.case.restart_limitation("lawyer's letter delivered (a demand)", r.case.clock.today(r.now), r.now, demand=True)
    assert r.state.limitation_start is None
    assert any(e.kind == "limitation_not_restarted" and "time-barred" in e.detail for e in r.state.events)


def test_the_debtors_own_promise_after_the_period_waives_the_defence():
    r = barred_runner(at(date(2026, 3, 2), 10))
    today = r.case.clock.today(r.now)
    r.promise("100.00", today + timedelta(days=5))
    assert r.state.limitation_start == today  # 民法典 art. 192: 义务人同意履行的，不得以诉讼时效期间届满为由抗辩
    assert r.case.limitation_over(r.now) is None and r.case.legal_refusal("law_firm", r.now) is None


def test_a_run_from_before_lets_the_letter_restart_the_period_as_it_did():
    r = barred_runner(at(date(2026, 3, 2), 10))
    r.case.regime = replace(r.case.regime, barred_stays=False)  # workflows/versioning.py TIME_BARRED: a run begun before it
    assert r.case.legal_refusal("law_firm", r.now) is None
    r.case.restart_limitation("lawyer's letter delivered (a demand)", date(2026, 3, 2), r.now, demand=True)
    assert r.state.limitation_start == date(2026, 3, 2)


def test_messages_about_a_time_barred_debt_ask_for_voluntary_repayment_and_threaten_nothing():
    from activities.messages import context, render

    req = channel_request(
        "overdue_letter", "letter", dpd=1237, due_date=DUE_2022, next_step="律师函", next_dpd=1240, time_barred=True
    )
    zh = zh_borrower()
    en = zh.model_copy(update={"language": "en"})
    for tpl in ("sms", "email_body", "letter_reminder_notice", "letter_overdue_letter"):
        text = render(tpl, "zh", **context(req, zh, date(2026, 3, 2)))
        assert "超过诉讼时效" in text and "自愿" in text, (tpl, text)
        assert "法律行动" not in text and "律师函" not in text and "否则" not in text, (tpl, text)
        english = render(tpl, "en", **context(req, en, date(2026, 3, 2)))
        assert "limitation period" in english and "legal action" not in english, (tpl, english)
    ordinary = render("sms", "zh", **context(req.model_copy(update={"time_barred": False}), zh, date(2026, 3, 2)))
    assert "否则" in ordinary and "诉讼时效" not in ordinary
