"""Legal precision, from each source's wording: the days a borrower pays by across rest days (民法典 arts. 203, 204),
the limitation period's suspension (art. 194), the enforcement period restarted by part payment (民事诉讼法 art. 250;
执行程序解释 art. 28), and a restructured loan's class (商业银行金融资产风险分类办法 (2023))."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest

from domain import calendar
from domain import status as shown
from domain.dates import zone
from tests.test_case_rules import DEFAULT, SH, Runner


def at(d: date, h: int = 0, m: int = 0) -> datetime:
    return datetime.combine(d, time(h, m), tzinfo=zone(SH)).astimezone(UTC)


def opened(on: date, dpd: int = 10, policy=DEFAULT) -> Runner:
    return Runner.open(dpd=dpd, now=at(on, 10), policy=policy)


def keeping_dates():
    """A policy whose terms keep the dates on rest days (民法典 art. 204: 当事人另有约定的除外)."""
    return DEFAULT.model_copy(
        update={
            "plans": DEFAULT.plans.model_copy(update={"keep_dates_on_rest_days": True}),
            "promise": DEFAULT.promise.model_copy(update={"keep_dates_on_rest_days": True}),
        }
    )


@pytest.fixture
def only_2025_2026(tmp_path, monkeypatch):
    for y in (2025, 2026):
        (tmp_path / f"cn-{y}.toml").write_text(calendar.calendar_path(y).read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.setattr(calendar, "CALENDAR_DIR", Path(tmp_path))
    calendar.clear_cache()
    yield
    calendar.clear_cache()


# ---------------------------------------------------------------- 民法典 art. 203: the last day on a rest day


def test_an_instalment_whose_last_day_falls_in_the_national_day_break_runs_to_24_00_on_the_first_working_day():
    # due Wed 1 October 2025 + 5 days of grace = Mon 6 October, inside the break (1-8 October): moved to Thu 9 October
    r = opened(date(2025, 9, 20))
    res = r.plan(kind="instalments", instalments=2, first_due=date(2025, 10, 1))
    first = r.state.plan.schedule[0]
    assert first.last_day == date(2025, 10, 9) and first.moved_from == date(2025, 10, 6)
    assert first.deadline == at(date(2025, 10, 10)) and first.waits_for_year is None
    assert "art. 203" in r.state.plan.terms and "art. 203" in res.message
    r.run_until(at(date(2025, 10, 7)))  # where plain days broke it
    r.run_until(at(date(2025, 10, 9), 23, 59))
    assert r.state.plan.status == "active"
    r.run_until(at(date(2025, 10, 10), 0, 1))
    assert r.state.plan.status == "broken"
    assert any(e.kind == "plan_broken" for e in r.state.events)


def test_a_promise_whose_last_day_is_an_ordinary_saturday_runs_to_monday():
    # promised for Wed 5 November 2025 + 3 days of grace = Sat 8 November: a rest day, moved to Mon 10 November
    r = opened(date(2025, 10, 25))
    res = r.promise("100.00", date(2025, 11, 5))
    p = r.state.promise
    assert (p.last_day, p.moved_from, p.deadline) == (date(2025, 11, 10), date(2025, 11, 8), at(date(2025, 11, 11)))
    assert "art. 203" in res.message
    r.run_until(at(date(2025, 11, 10), 23, 59))
    assert r.state.promise.status == "active"
    r.run_until(at(date(2025, 11, 11), 0, 1))
    assert r.state.promise.status == "broken"


def test_a_last_day_on_a_make_up_working_saturday_does_not_move():
    # promised for Wed 8 October 2025 (a rest day itself) + 3 = Sat 11 October, a make-up working day (调休上班)
    r = opened(date(2025, 9, 30))
    r.promise("100.00", date(2025, 10, 8))
    p = r.state.promise
    assert (p.last_day, p.moved_from, p.deadline) == (date(2025, 10, 11), None, at(date(2025, 10, 12)))
    r.run_until(at(date(2025, 10, 12), 0, 1))
    assert r.state.promise.status == "broken"


def test_an_interest_waivers_pay_by_date_and_a_deferrals_date_move_past_the_break():
    # pay by Fri 26 September 2025 + 5 = Wed 1 October (break): moved to Thu 9 October
    w = opened(date(2025, 9, 20))
    w.plan(kind="interest_waiver", waiver_percent=10, pay_by=date(2025, 9, 26))
    assert w.state.plan.schedule[0].last_day == date(2025, 10, 9)
    # deferred until Fri 3 October + 5 = Wed 8 October (break): moved to Thu 9 October
    d = opened(date(2025, 9, 20))
    d.plan(kind="deferral", until=date(2025, 10, 3))
    only = d.state.plan.schedule[0]
    assert (only.moved_from, only.last_day) == (date(2025, 10, 8), date(2025, 10, 9))


def test_terms_that_keep_the_dates_break_on_the_plain_day_and_say_so():
    # 民法典 art. 204: the parties agreed otherwise; the terms the borrower is given say the dates stand
    r = opened(date(2025, 9, 20), policy=keeping_dates())
    res = r.plan(kind="instalments", instalments=2, first_due=date(2025, 10, 1))
    first = r.state.plan.schedule[0]
    assert (first.last_day, first.moved_from, first.deadline) == (date(2025, 10, 6), None, at(date(2025, 10, 7)))
    assert "art. 204" in r.state.plan.terms and "art. 204" in res.message
    r.run_until(at(date(2025, 10, 7), 0, 1))
    assert r.state.plan.status == "broken"
    p = opened(date(2025, 10, 25), policy=keeping_dates())
    p.promise("100.00", date(2025, 11, 5))
    assert p.state.promise.deadline == at(date(2025, 11, 9))  # Sat 8 November stands


def test_a_run_from_before_the_change_counts_plain_days():
    r = opened(date(2025, 9, 20))
    r.case.regime = replace(r.case.regime, pay_by_counted=False)  # versioning.PAY_BY_REST_DAYS: begun before it
    r.plan(kind="instalments", instalments=2, first_due=date(2025, 10, 1))
    first = r.state.plan.schedule[0]
    assert first.deadline == at(date(2025, 10, 7)) and first.last_day is None and r.state.plan.terms == ""
    r.run_until(at(date(2025, 10, 7), 0, 1))
    assert r.state.plan.status == "broken"


def test_a_last_day_in_a_year_with_no_calendar_never_breaks_until_the_year_is_known(only_2025_2026, tmp_path):
    # promised for Wed 30 December 2026 + 3 = Sat 2 January 2027: no 2027 calendar, so whether it moves is unknown
    r = opened(date(2026, 12, 20))
    r.promise("100.00", date(2026, 12, 30))
    p = r.state.promise
    assert p.waits_for_year == 2027 and p.last_day == date(2027, 1, 2) and p.deadline == at(date(2027, 1, 3))
    r.run_until(at(date(2027, 1, 5), 12))
    assert r.state.promise.status == "active" and r.state.promise.deadline > r.now  # waits, counted again daily
    # the 2027 calendar arrives (its New Year break 1-3 January, the 4th a working day): the promise ran to the 4th
    (tmp_path / "cn-2027.toml").write_text(
        'year = 2027\n[source]\ntitle = "测试用：2027年（非官方）"\nnumber = "test"\ndate = 2026-11-01\n'
        '[[breaks]]\nname = "元旦"\nrest = [2027-01-01, 2027-01-02, 2027-01-03]\n',
        encoding="utf-8",
    )
    calendar.clear_cache()
    r.run_until(at(date(2027, 1, 6), 13))
    assert r.state.promise.status == "broken" and r.state.promise.last_day == date(2027, 1, 4)
    assert r.state.promise.waits_for_year is None


# ---------------------------------------------------------------- 执行程序解释 art. 28: the enforcement period restarted


def judged() -> Runner:
    """A case with a judgment in force: effective Sun 20 September 2026, its performance period to Tue 20 October."""
    r = Runner.open(dpd=1)
    r.run_until(r.now + timedelta(days=130))  # 9 October 2026, in litigation
    r.outcome("court", "judgment", effective_on=date(2026, 9, 20), performance_ends=date(2026, 10, 20))
    return r


def enforcement_clock(r: Runner):
    return next(c for c in shown.of(r.case, r.now).legal_clocks if c.name == "enforcement_deadline")


def test_a_part_payment_after_the_performance_period_restarts_the_two_years_to_apply_for_enforcement():
    r = judged()
    # 民事诉讼法 art. 250: two years from Tue 20 October 2026: Fri 20 October 2028
    assert enforcement_clock(r).last_day == date(2028, 10, 20)
    r.now = at(date(2027, 3, 1), 10)
    r.pay("100.00", "P-PART")
    assert r.state.enforcement_restarted_on == date(2027, 3, 1)
    assert enforcement_clock(r).last_day == date(2029, 3, 1)  # counted again from the payment's day (a Thursday)
    assert any(e.kind == "enforcement_period_restarted" and "art. 28" in e.detail for e in r.state.events)
    f = r.case.legal_facts()
    from domain import legal

    assert legal.check("enforcement", at(date(2028, 10, 23)), r.case.policy.legal, f) is None  # past the old end
    assert legal.check("enforcement", at(date(2029, 3, 2)), r.case.policy.legal, f).rule == "enforcement_deadline"
    # a promise later still restarts it again
    r.now = at(date(2027, 6, 1), 10)
    r.promise("100.00", date(2027, 6, 7))
    assert enforcement_clock(r).last_day == date(2029, 6, 1)


def test_a_payment_inside_the_performance_period_or_before_judgment_restarts_nothing_of_enforcement():
    r = judged()
    r.now = at(date(2026, 10, 15), 10)  # inside the performance period: the enforcement period has not begun
    r.pay("100.00", "P-EARLY")
    assert r.state.enforcement_restarted_on is None and enforcement_clock(r).last_day == date(2028, 10, 20)
    before = Runner.open(dpd=30)
    before.pay("100.00")
    assert before.state.enforcement_restarted_on is None  # no judgment or payment order yet


def test_a_payment_after_the_enforcement_period_ended_does_not_revive_it():
    r = judged()
    r.now = at(date(2028, 10, 23), 10)  # the period ended at 24:00 on 20 October 2028
    r.pay("100.00", "P-LATE")
    assert r.state.enforcement_restarted_on is None and enforcement_clock(r).last_day == date(2028, 10, 20)
    assert any(e.kind == "enforcement_period_not_restarted" for e in r.state.events)


def test_a_run_from_before_the_change_keeps_the_enforcement_period_from_the_performance_period():
    r = judged()
    r.case.regime = replace(r.case.regime, enforcement_interrupts=False)  # workflows/versioning.py ENFORCEMENT_RESTART
    r.now = at(date(2027, 3, 1), 10)
    r.pay("100.00", "P-PART")
    assert enforcement_clock(r).last_day == date(2028, 10, 20)


# ---------------------------------------------------------------- a restructured loan's class (domain/risk.py)


def pay_instalments(r: Runner, through: date) -> None:
    """Pay each instalment due on or before `through` on its due day."""
    for i, inst in enumerate(r.state.plan.schedule):
        if inst.due > through:
            return
        r.run_until(at(inst.due, 9))
        r.now = at(inst.due, 9)
        r.pay(f"{inst.amount // 100}.{inst.amount % 100:02d}", f"P-INST-{i}")


def test_a_non_performing_loan_restructured_is_not_upgraded_in_its_observation_period_and_is_after_it():
    r = Runner.open(dpd=100)  # 次级 (more than 90 days overdue)
    assert shown.risk_class(r.case, r.now) == "substandard"
    first = r.today() + timedelta(days=10)
    r.plan(kind="instalments", instalments=24, first_due=first)
    rs = r.state.restructuring
    assert rs.before == "substandard" and rs.observation_ends == date(first.year + 1, first.month, first.day)
    assert any(e.kind == "restructured" for e in r.state.events)
    pay_instalments(r, rs.observation_ends - timedelta(days=40))
    st = shown.of(r.case, r.now)
    assert st.risk_class == "substandard" and "observation" in st.risk_basis and st.dpd > 360  # not 损失 by the old DPD
    pay_instalments(r, rs.observation_ends + timedelta(days=40))
    r.now = at(rs.observation_ends + timedelta(days=41), 12)
    st = shown.of(r.case, r.now)
    assert st.risk_class == "normal" and "ended" in st.risk_basis  # the changed terms kept: no day overdue on them


def test_a_performing_loan_restructured_is_at_least_special_mention_while_observed():
    r = Runner.open(dpd=20)  # 关注
    first = r.today() + timedelta(days=5)
    r.plan(kind="instalments", instalments=24, first_due=first)
    pay_instalments(r, first + timedelta(days=100))
    assert shown.risk_class(r.case, r.now) == "special_mention"


def test_a_restructuring_broken_in_its_observation_period_is_non_performing():
    r = Runner.open(dpd=5)
    first = r.today() + timedelta(days=5)
    r.plan(kind="instalments", instalments=12, first_due=first)
    r.run_until(at(first + timedelta(days=20)))  # the first instalment never paid: broken after its grace days
    assert r.state.plan.status == "broken" and r.state.restructuring.broken_on is not None
    st = shown.of(r.case, r.now)
    assert r.case.dpd(r.now) <= 90 and st.risk_class == "substandard" and "not kept" in st.risk_basis


def test_a_policy_that_does_not_treat_plans_as_restructurings_classes_by_dpd():
    policy = DEFAULT.model_copy(update={"risk": DEFAULT.risk.model_copy(update={"plans_are_restructurings": False})})
    r = Runner.open(dpd=100, policy=policy)
    r.plan(kind="instalments", instalments=24, first_due=r.today() + timedelta(days=10))
    assert r.state.restructuring is None and shown.risk_class(r.case, r.now) == "substandard"


# ---------------------------------------------------------------- 民法典 art. 194: the limitation period suspended


def due_2023(today: date = date(2026, 4, 20)) -> Runner:
    """A loan due Thu 1 June 2023: its three years end at 24:00 on Mon 1 June 2026; the last six months from 1 December
    2025."""
    return Runner.open(dpd=(today - date(2023, 6, 1)).days, now=at(today, 10))


def suspend(r: Runner, **kw):
    from domain.models import SuspensionIn

    x = SuspensionIn(**{"cause": "force_majeure", "reference": "通知-1", **kw})
    r.case.check(x, r.now)
    return r.case.apply(x, r.now)


def limitation_clock(r: Runner):
    return next(c for c in shown.of(r.case, r.now).legal_clocks if c.name == "limitation")


def test_an_obstacle_in_the_last_six_months_suspends_the_period_to_six_months_after_it_ends():
    r = due_2023()
    assert limitation_clock(r).last_day == date(2026, 6, 1)
    assert r.case.legal_refusal("lawsuit", at(date(2026, 6, 2))).rule == "limitation_period"
    res = suspend(r, starts_on=date(2026, 3, 1), ends_on=date(2026, 4, 15))
    # 自中止时效的原因消除之日起满六个月: six months from Wed 15 April 2026 = Thu 15 October 2026, to 24:00
    c = limitation_clock(r)
    assert c.last_day == date(2026, 10, 15) and "art. 194" in c.source and "suspended" in c.note
    assert "art. 194" in res.message and any(e.kind == "limitation_suspended" for e in r.state.events)
    assert r.case.legal_refusal("lawsuit", at(date(2026, 10, 15), 23, 59)) is None
    assert r.case.legal_refusal("lawsuit", at(date(2026, 10, 16))).rule == "limitation_period"
    st = shown.of(r.case, r.now)
    assert [x.reference for x in st.limitation_suspensions] == ["通知-1"]


def test_an_obstacle_that_ended_before_the_last_six_months_has_no_effect():
    r = due_2023()
    res = suspend(r, starts_on=date(2025, 5, 1), ends_on=date(2025, 10, 31))
    assert limitation_clock(r).last_day == date(2026, 6, 1) and "no effect" in res.message
    assert any(e.kind == "limitation_suspension_no_effect" for e in r.state.events)


def test_an_obstacle_that_arose_earlier_and_lasted_into_the_last_six_months_suspends_it():
    r = due_2023()
    suspend(r, cause="no_heir_or_administrator", starts_on=date(2025, 10, 1), ends_on=date(2026, 1, 10))
    assert limitation_clock(r).last_day == date(2026, 7, 10)  # Fri 10 July 2026


def test_the_same_reference_corrects_the_record_and_bad_dates_name_their_field():
    from domain.errors import InvalidInput

    r = due_2023()
    suspend(r, starts_on=date(2026, 3, 1), ends_on=date(2026, 4, 15))
    suspend(r, starts_on=date(2026, 3, 1), ends_on=date(2026, 4, 18))  # to Sun 18 October 2026, a rest day: Mon 19th
    assert len(r.state.limitation_suspensions) == 1 and limitation_clock(r).last_day == date(2026, 10, 19)
    with pytest.raises(InvalidInput) as e:
        suspend(r, starts_on=date(2026, 3, 1), ends_on=date(2026, 2, 1), reference="通知-2")
    assert e.value.field == "ends_on"
    with pytest.raises(InvalidInput) as e:
        suspend(r, starts_on=date(2026, 5, 1), ends_on=date(2026, 6, 1), reference="通知-3")
    assert e.value.field == "starts_on"
    assert len(r.state.limitation_suspensions) == 1  # nothing changed


# ---------------------------------------------------------------- told before an agency is given the case


def test_every_shipped_policy_that_places_with_an_agency_tells_the_borrower_first():
    from domain.policy import POLICY_DIR, load_policy

    for name in sorted(f.stem for f in POLICY_DIR.glob("*.toml")):
        p = load_policy(name)
        keys = [s.key for s in p.steps]
        for i, step in enumerate(p.steps):
            if "agency_place" not in step.actions:
                continue
            before = [s for s in p.steps[:i] if s.letter == "agency_notice"]
            assert before, f"{name}: {step.key} places the case with an agency without a notice before it ({keys})"
            assert before[-1].mandatory, f"{name}: a case opened past the notice would skip it (catch-up)"
            assert step.min_days_after_previous >= 3, f"{name}: the placement may follow the notice too closely"


def test_the_agency_notice_says_who_may_be_contacted_and_how_in_both_languages():
    from activities.messages import context, render
    from tests.test_legal import DUE_2022, channel_request, zh_borrower

    req = channel_request("agency_notice", "letter", dpd=95, due_date=DUE_2022, next_step="委托催收", next_dpd=100)
    zh = zh_borrower()
    text = render("letter_agency_notice", "zh", **context(req, zh, date(2026, 3, 2)))
    assert "委托催收告知函" in text and "第三人" in text and "逾期第100天起" in text and "异议" in text
    en = render("letter_agency_notice", "en", **context(req, zh.model_copy(update={"language": "en"}), date(2026, 3, 2)))
    assert "collection agency" in en and "day 100" in en and "disclose" in en
    barred = render("letter_agency_notice", "zh", **context(req.model_copy(update={"time_barred": True}), zh, date(2026, 3, 2)))
    assert "自愿" in barred and "委托具有资质" not in barred


def test_the_cli_status_names_the_last_day_the_restructuring_and_the_suspension():
    from starter import show_status

    r = opened(date(2025, 9, 20))
    r.plan(kind="instalments", instalments=2, first_due=date(2025, 10, 1))
    text = show_status(shown.of(r.case, r.now))
    assert "pay by 24:00 on 2025-10-09, moved from 2025-10-06 (a rest day)" in text and "art. 203" in text
    assert "restructured 2025-09-20: observation period to 2026-10-01" in text
    s = due_2023()
    suspend(s, starts_on=date(2026, 3, 1), ends_on=date(2026, 4, 15))
    text = show_status(shown.of(s.case, s.now))
    assert "limitation suspended (民法典 art. 194): force_majeure 2026-03-01 to 2026-04-15 (通知-1)" in text
    assert "suspended (民法典 art. 194): last day 2026-10-15" in text


@pytest.mark.parametrize(
    "last,expected",
    [
        (date(2025, 10, 6), date(2025, 10, 9)),  # inside the National Day break (1-8 October): Thu 9 October
        (date(2025, 11, 8), date(2025, 11, 10)),  # an ordinary Saturday: Monday
        (date(2025, 10, 11), date(2025, 10, 11)),  # a make-up working Saturday (调休上班): stands
        (date(2025, 10, 14), date(2025, 10, 14)),  # an ordinary Tuesday: stands
    ],
)
@pytest.mark.parametrize("kind", ["promise", "instalment", "pay_by"])
def test_each_date_a_borrower_pays_by_runs_to_24_00_of_its_last_day_moved_past_rest_days(kind, last, expected):
    grace = DEFAULT.promise.grace_days if kind == "promise" else DEFAULT.plans.grace_days
    day = last - timedelta(days=grace)
    for policy, want in ((DEFAULT, expected), (keeping_dates(), last)):  # art. 204: the terms keep the date
        r = opened(day - timedelta(days=10), policy=policy)
        if kind == "promise":
            r.promise("100.00", day)
            item = r.state.promise
        elif kind == "instalment":
            r.plan(kind="instalments", instalments=3, first_due=day)
            item = r.state.plan.schedule[0]
        else:
            r.plan(kind="interest_waiver", waiver_percent=10, pay_by=day)
            item = r.state.plan.schedule[0]
        assert item.last_day == want and item.deadline == at(want + timedelta(days=1)), (kind, policy.promise)
        assert item.moved_from == (last if want != last else None)


def test_the_sandbox_letter_service_takes_every_letter_a_shipped_policy_sends():
    import typing

    from domain.policy import POLICY_DIR, load_policy
    from sandbox.gateway import LetterRequest

    kinds = set(typing.get_args(LetterRequest.model_fields["kind"].annotation))
    named = {s.letter for f in POLICY_DIR.glob("*.toml") for s in load_policy(f.stem).steps if s.letter}
    assert "agency_notice" in named and named <= kinds, named - kinds


def test_a_run_from_before_restructuring_keeps_its_class_by_days_past_due():
    r = Runner.open(dpd=100)
    r.case.regime = replace(r.case.regime, restructures=False)  # workflows/versioning.py RESTRUCTURING: a run begun before it
    r.plan(kind="instalments", instalments=24, first_due=r.today() + timedelta(days=10))
    assert r.state.restructuring is None and not any(e.kind == "restructured" for e in r.state.events)
    assert shown.risk_class(r.case, r.now) == "substandard"


def test_a_new_plan_after_a_broken_restructuring_does_not_upgrade_the_loan():
    r = Runner.open(dpd=5)
    first = r.today() + timedelta(days=5)
    r.plan(kind="instalments", instalments=12, first_due=first)
    r.run_until(at(first + timedelta(days=20)))  # broken: non-performing (次级)
    assert shown.risk_class(r.case, r.now) == "substandard"
    r.plan(kind="instalments", instalments=12, first_due=r.today() + timedelta(days=5))
    assert r.state.restructuring.before == "substandard" and shown.risk_class(r.case, r.now) == "substandard"


def test_a_suspension_corrected_to_end_sooner_says_so():
    r = due_2023()
    suspend(r, starts_on=date(2026, 3, 1), ends_on=date(2026, 4, 15))
    res = suspend(r, starts_on=date(2026, 3, 1), ends_on=date(2026, 3, 20))  # the obstacle ended sooner than recorded
    assert "sooner" in res.message and limitation_clock(r).last_day == date(2026, 9, 20)  # Sun 20 Sept: a make-up working day
    assert any(e.kind == "limitation_suspension_shortened" for e in r.state.events)


def test_an_obstacle_on_the_day_a_rest_day_moved_the_period_to_still_counts():
    # a loan due Sat 6 June 2020 would end Sat 6 June 2026 (moved to Mon 8 June); an obstacle from Sun 7 June
    r = Runner.open(dpd=(date(2026, 6, 1) - date(2023, 6, 6)).days, now=at(date(2026, 6, 1), 10))
    assert limitation_clock(r).last_day == date(2026, 6, 8)
    suspend(r, starts_on=date(2026, 6, 1), ends_on=date(2026, 6, 1))
    assert limitation_clock(r).last_day == date(2026, 12, 1)


def test_a_pay_by_year_that_never_gets_a_calendar_breaks_at_the_latest_day_it_could_have_run_to(only_2025_2026):
    r = opened(date(2026, 12, 20))
    r.promise("100.00", date(2026, 12, 30))  # last day Sat 2 January 2027: no 2027 calendar, ever
    r.run_until(at(date(2027, 1, 20), 12))
    assert r.state.promise.status == "broken" and r.state.promise.waits_for_year is None
    assert any(e.kind == "pay_by_calendar_missing" for e in r.state.events)
