"""The Case state machine, driven directly with datetimes (no Temporal).

`Runner` plays the workflow's part with the workflow's own loop (`Case.next_move`): run the due step
(every action delivered) or sleep until the next deadline. Updates are applied with check_* then apply_*,
as the workflow's validators do.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from domain import status as shown
from domain.case import MIN_SLEEP, Case
from domain.dates import local_date
from domain.errors import InvalidInput
from domain.inputs import payments
from domain.models import (
    CaseInput,
    ContactResult,
    HoldIn,
    OutcomeIn,
    PaymentIn,
    PlanIn,
    PromiseIn,
    ReleaseIn,
)
from domain.money import format_amount
from domain.policy import load_policy

UTC = UTC
US = timedelta(microseconds=1)
SH = "Asia/Shanghai"
NY = "America/New_York"
T0 = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)  # 10:00 on 1 June in Shanghai
DEFAULT = load_policy("default")
DEMO = load_policy("demo")
PRINCIPAL, INTEREST, FEES = 1_000_000, 50_000, 2_000
TOTAL = PRINCIPAL + INTEREST + FEES
LADDER = [s.key for s in DEFAULT.steps]


def make_case(
    dpd: int = 1,
    now: datetime = T0,
    policy=DEFAULT,
    tz: str = SH,
    principal: int = PRINCIPAL,
    interest: int = INTEREST,
    fees: int = FEES,
) -> Case:
    return Case(
        CaseInput(
            loan_id="L1",
            borrower_id="B1",
            currency="CNY",
            principal=principal,
            interest=interest,
            fees=fees,
            due_date=local_date(now, tz) - timedelta(days=dpd),
            timezone=tz,
            policy=policy,
        ),
        now,
    )


def delivered(step, outcome=None, **kw) -> list[ContactResult]:
    return [ContactResult(action=a, channel=a, outcome=outcome if a == "call" else None, **kw) for a in step.actions]


class Runner:
    """Drives a Case the way workflows/case.py does, recording which step ran when."""

    def __init__(self, case: Case, now: datetime = T0):
        self.case, self.now = case, now
        self.ran: list[tuple[str, datetime]] = []
        self.results = delivered

    @classmethod
    def open(cls, dpd: int = 1, now: datetime = T0, **kw) -> Runner:
        return cls(make_case(dpd, now, **kw), now)

    @property
    def state(self):
        return self.case.state

    def keys(self) -> list[str]:
        return [k for k, _ in self.ran]

    def when(self, key: str) -> datetime:
        return next(t for k, t in self.ran if k == key)

    def run_until(self, until: datetime) -> Runner:
        case = self.case
        for _ in range(10_000):
            move = case.next_move(self.now)  # the workflow's own loop decision
            if move.closes:
                return self
            if move.runs_step:
                step = case.begin_step(move.step, self.now)
                case.settle_step(move.step, self.results(step), [], self.now)
                self.ran.append((step.key, self.now))
                continue
            # nothing left undone at `now`: the next deadline lies ahead (no busy loop); the sleep is the
            # workflow's, at least a second
            wake = case.wake_at()
            assert wake is None or wake > self.now, (wake, self.now, case.deadlines())
            assert move.until == (None if wake is None else max(wake, self.now + MIN_SLEEP)), (move, wake)
            if move.until is None or move.until > until:
                if self.now >= until:
                    return self
                self.now = until  # one more turn at `until`, as when an input wakes the workflow then
                continue
            self.now = move.until
        raise AssertionError("the case never settled")

    def run_for(self, **delta) -> Runner:
        return self.run_until(self.now + timedelta(**delta))

    def dpd_at(self, dpd: int) -> datetime:
        return self.case.clock.dpd_instant(dpd)

    def pay(self, amount: str, pid: str = "P1", currency: str = "CNY", paid_at: datetime | None = None):
        p = PaymentIn(payment_id=pid, amount=amount, currency=currency, paid_at=paid_at)
        self.case.check(p, self.now)
        return self.case.apply(p, self.now)

    def promise(self, amount: str, day: date):
        p = PromiseIn(amount=amount, date=day)
        self.case.check(p, self.now)
        return self.case.apply(p, self.now)

    def plan(self, **kw):
        p = PlanIn(**kw)
        self.case.check(p, self.now)
        return self.case.apply(p, self.now)

    def hold(self, kind: str, **kw):
        h = HoldIn(kind=kind, **kw)
        self.case.check(h, self.now)
        return self.case.apply(h, self.now)

    def release(self, kind: str, **kw):
        r = ReleaseIn(kind=kind, **kw)
        self.case.check(r, self.now)
        return self.case.apply(r, self.now)

    def outcome(self, kind: str, outcome: str, **kw):
        o = OutcomeIn(kind=kind, outcome=outcome, **kw)
        self.case.check(o, self.now)
        return self.case.apply(o, self.now)

    def today(self) -> date:
        return self.case.clock.today(self.now)

    def events(self, kind: str) -> list[str]:
        return [e.detail for e in self.state.events if e.kind == kind]


def rejected(r: Runner, call, field: str, fragment: str, *args, **kw) -> None:
    """The update is refused naming `field`, and the case is exactly as before."""
    before = r.state.model_dump()
    with pytest.raises(InvalidInput) as exc:
        call(*args, **kw)
    assert exc.value.field == field, str(exc.value)
    assert fragment in exc.value.reason, str(exc.value)
    assert r.state.model_dump() == before


def assert_books_balance(case: Case) -> None:
    s = case.state
    waived = s.plan.waived if s.plan is not None and s.plan.status in ("active", "completed") else 0
    surplus = sum(rec.allocation.get("surplus", 0) for rec in s.payments.values())
    assert min(s.balances.principal, s.balances.interest, s.balances.fees) >= 0
    assert s.total_paid == sum(rec.amount for rec in s.payments.values())
    assert s.total_paid - surplus + s.balances.total == s.original.total - waived


# ---------------------------------------------------------------- opening, due_step, step_at, wake_at


def test_new_case_opens_at_its_dpd_and_the_reminder_is_due():
    r = Runner.open(dpd=1)
    s = r.state
    assert s.opened_dpd == 1 and s.opened_at == T0 and s.stage == "new"
    assert s.original.total == TOTAL and s.balances == s.original
    assert r.events("opened") and "DPD 1" in r.events("opened")[0]
    assert r.case.due_step(T0) == 0
    assert r.case.status_name() == "active"
    st_ = shown.of(r.case, T0)
    assert (st_.dpd, st_.bucket, st_.outstanding["total"]) == (1, "M1", "10520.00")


def test_a_case_opened_before_its_first_step_waits_for_the_dpd():
    r = Runner.open(dpd=0)
    first = r.dpd_at(1)
    assert r.case.due_step(T0) is None
    assert r.case.step_at(0) == first == datetime(2026, 6, 1, 16, 0, tzinfo=UTC)  # midnight in Shanghai
    assert r.case.wake_at() == first
    assert r.case.due_step(first - US) is None
    assert r.case.due_step(first) == 0
    assert shown.next_action(r.case).what == "step reminder_notice" and shown.next_action(r.case).at == first


def test_step_at_is_the_dpd_and_the_gap_after_the_previous_step():
    r = Runner.open(dpd=1).run_until(T0)
    assert r.keys() == ["reminder_notice"]
    assert r.state.last_step_at == T0
    at = r.case.step_at(1)
    assert at == r.dpd_at(7)
    assert r.case.due_step(at - US) is None
    assert r.case.due_step(at) == 1
    assert r.case.wake_at() == at
    # a late step is held back by the gap after the previous one
    r2 = Runner.open(dpd=75).run_until(T0)
    assert r2.case.step_at(4) == T0 + timedelta(days=DEFAULT.min_gap_days)


def test_whole_ladder_on_the_real_calendar():
    r = Runner.open(dpd=1).run_until(T0 + timedelta(days=130))
    assert r.keys() == LADDER[:8]
    assert r.when("reminder_notice") == T0
    for key, dpd in [
        ("first_call", 7),
        ("home_visit", 30),
        ("overdue_letter", 45),
        ("lawyers_letter", 60),
        ("bureau_notice", 76),
        # the notice reached the borrower on Saturday 15 August: its 14th day, Saturday the 29th, is a rest day, so
        # the last day is Monday the 31st and the report follows its 24:00 (民法典 arts. 201, 203): DPD 93, not 90
        ("bureau_report", 93),
        ("litigation", 120),
    ]:
        assert r.when(key) == r.dpd_at(dpd), key
    assert r.state.stage == "litigation"
    assert r.state.contacts == {
        "sms": 1,
        "email": 1,
        "letter": 2,
        "call": 1,
        "visit": 1,
        "law_firm": 1,
        "bureau_notice": 1,
        "bureau_report": 1,
        "lawsuit": 1,
    }
    # the lawsuit waits for the court (180 days), then for a judgment before enforcement
    assert r.state.awaiting.kind == "court" and r.state.awaiting.until == r.dpd_at(120) + timedelta(days=180)
    assert "awaiting court outcome" in shown.next_action(r.case).what
    # effective the day before; its performance period ends on DPD 149 (a Tuesday), so enforcement opens at its 24:00
    r.outcome(
        "court",
        "judgment",
        reference="(2026)沪0101民初1号",
        effective_on=r.case.clock.today(r.now) - timedelta(days=1),
        performance_ends=r.case.inp.due_date + timedelta(days=149),
    )
    assert r.state.awaiting is None and r.state.judgment_at == r.now
    r.run_until(r.dpd_at(151))
    assert r.keys()[-1] == "enforcement" and r.when("enforcement") == r.dpd_at(150)
    assert r.state.stage == "enforcement"
    res = r.outcome("court", "enforcement_result", amount=format_amount(r.state.balances.total, "CNY"))
    assert res.status == "closed" and res.outcome == "recovered"
    assert r.state.outcome == "recovered" and r.state.balances.total == 0
    assert_books_balance(r.case)


def test_enforcement_waits_for_the_judgment():
    r = Runner.open(dpd=1).run_until(T0 + timedelta(days=400))
    assert "enforcement" not in r.keys()
    assert r.state.awaiting is None  # the court wait timed out
    assert r.events("outcome_timeout")
    assert shown.next_action(r.case).what.startswith("awaiting the judgment before enforcement")
    assert r.case.due_step(r.now) is None


def test_home_visit_waits_for_the_report_and_a_report_ends_the_wait():
    r = Runner.open(dpd=1).run_until(T0 + timedelta(days=31))
    assert r.keys()[-1] == "home_visit"
    assert r.state.awaiting.kind == "visit"
    assert r.case.due_step(r.dpd_at(45)) is None  # still awaiting the report
    r.outcome("visit", "met_borrower", reference="V-1")
    assert r.state.awaiting is None
    assert r.case.step_at(3) == r.dpd_at(45)


def notice_over(r) -> datetime:
    """24:00 (Beijing) of the bureau notice's 14th day after the day it was delivered, moved past rest days."""
    from domain import calendar
    from domain.dates import local_date, local_midnight

    last = calendar.next_working_day(local_date(r.state.bureau_notice_delivered_at, "Asia/Shanghai") + timedelta(days=14))
    return local_midnight(last + timedelta(days=1), "Asia/Shanghai")


def test_late_start_at_dpd_75_sends_the_reminder_then_jumps_to_the_lawyers_letter():
    r = Runner.open(dpd=75).run_until(T0 + timedelta(days=3))
    assert r.keys() == ["reminder_notice", "lawyers_letter"]
    assert r.when("reminder_notice") == T0
    assert r.when("lawyers_letter") == T0 + timedelta(days=2)
    assert [d.split(":")[0] for d in r.events("step_skipped")] == ["first_call", "home_visit", "overdue_letter"]
    assert all("case opened at DPD 75" in d for d in r.events("step_skipped"))
    assert r.state.steps_done == ["reminder_notice", "lawyers_letter"]
    assert r.state.stage == "lawyers_letter" and r.state.catch_up_to is None
    r.run_for(days=30)
    assert r.keys()[2:] == ["bureau_notice", "bureau_report"]
    assert r.when("bureau_notice") == T0 + timedelta(days=4)  # DPD 76 had passed: two days after the letter
    assert r.when("bureau_report") == notice_over(r)  # the notice period, counted as the law counts it


def test_late_start_at_dpd_95_never_skips_the_mandatory_bureau_steps():
    r = Runner.open(dpd=95).run_until(T0 + timedelta(days=20))
    assert r.keys() == ["reminder_notice", "bureau_notice", "bureau_report"]
    assert r.when("reminder_notice") == T0
    assert r.when("bureau_notice") == T0 + timedelta(days=2)
    assert r.when("bureau_report") == notice_over(r)
    assert [d.split(":")[0] for d in r.events("step_skipped")] == ["first_call", "home_visit", "overdue_letter", "lawyers_letter"]


@pytest.mark.parametrize(
    ("dpd", "expected"),
    [
        (10, ["reminder_notice", "first_call"]),  # one step behind: nothing skipped
        (35, ["reminder_notice", "home_visit"]),
        (50, ["reminder_notice", "overdue_letter"]),
    ],
)
def test_late_start_catches_up_to_the_step_its_dpd_calls_for(dpd, expected):
    r = Runner.open(dpd=dpd).run_until(T0 + timedelta(days=3))
    assert r.keys() == expected
    assert r.when(expected[1]) == T0 + timedelta(days=2)


def test_late_start_past_enforcement_files_the_lawsuit_first():
    r = Runner.open(dpd=200).run_until(T0 + timedelta(days=60))
    assert "litigation" in r.keys()
    today = r.case.clock.today(r.now)  # rejected today: "no lawsuit or payment order has been filed"
    r.outcome("court", "judgment", effective_on=today, performance_ends=today + timedelta(days=3))
    r.run_for(days=10)
    assert r.keys()[-1] == "enforcement"


# ---------------------------------------------------------------- payments


def test_partial_payment_is_allocated_fees_interest_principal():
    r = Runner.open(dpd=10).run_until(T0)
    res = r.pay("30.00")
    assert res.payment_id == "P1" and res.applied == "30.00" and not res.duplicate
    assert res.allocation == {"fees": "20.00", "interest": "10.00"}
    assert res.outstanding == "10490.00" and res.status == "active" and res.outcome is None
    assert r.state.balances.fees == 0 and r.state.balances.interest == INTEREST - 1_000
    assert r.state.total_paid == 3_000
    res2 = r.pay("500.00", "P2")
    assert res2.allocation == {"interest": "490.00", "principal": "10.00"}
    assert_books_balance(r.case)


def test_full_payoff_closes_the_case_as_paid():
    r = Runner.open(dpd=10).run_until(T0)
    res = r.pay("10520.00")
    assert res.status == "closed" and res.outcome == "paid" and res.outstanding == "0.00"
    assert r.state.closed and r.state.closed_at == T0
    assert r.case.due_step(T0 + timedelta(days=100)) is None
    assert r.case.deadlines() == [] and r.case.wake_at() is None
    assert shown.next_action(r.case).what == "none: closed as paid"


def test_partial_payments_then_payoff():
    r = Runner.open(dpd=10).run_until(T0)
    for i, amount in enumerate(["100.00", "0.01", "5000.00", "5419.99"]):
        r.pay(amount, f"P{i}")
        assert_books_balance(r.case)
    assert r.state.outcome == "paid" and r.state.total_paid == TOTAL


def test_duplicate_payment_id_returns_the_first_result_and_changes_nothing():
    r = Runner.open(dpd=10).run_until(T0)
    first = r.pay("30.00", "PAY-7")
    before = r.state.model_dump()
    dup = PaymentIn(payment_id="PAY-7", amount="30.00", currency="CNY")  # (another amount is refused: see below)
    assert r.case.check(dup, r.now) is None
    again = r.case.apply(dup, r.now)
    assert again.duplicate and again.applied == first.applied == "30.00"
    assert again.allocation == first.allocation and again.outstanding == first.outstanding
    assert r.state.model_dump() == before


def test_duplicate_payment_id_after_closure_is_still_idempotent():
    r = Runner.open(dpd=10).run_until(T0)
    r.pay("10520.00", "ALL")
    again = r.case.apply(PaymentIn(payment_id="ALL", amount="10520.00", currency="CNY"), r.now)
    assert again.duplicate and again.status == "closed" and again.outcome == "paid"
    rejected(r, r.pay, "case", "is closed (paid)", "1.00", "OTHER")


@pytest.mark.parametrize(
    ("amount", "field", "fragment"),
    [
        ("10520.01", "amount", "more than the outstanding 10520.00"),
        ("99999", "amount", "more than the outstanding"),
        ("-1", "amount", "negative"),
        ("0", "amount", "greater than zero"),
        ("1.001", "amount", "3 decimals"),
        ("NaN", "amount", "not a plain decimal"),
        ("", "amount", "empty"),
    ],
)
def test_bad_payment_amounts_rejected(amount, field, fragment):
    r = Runner.open(dpd=10).run_until(T0)
    rejected(r, r.pay, field, fragment, amount)
    assert r.state.total_paid == 0 and r.state.payments == {}


def test_currency_mismatch_rejected():
    r = Runner.open(dpd=10).run_until(T0)
    rejected(r, r.pay, "currency", "USD does not match the loan's currency CNY", "10.00", currency="USD")


def test_payment_dated_in_the_future_rejected_beyond_clock_skew():
    r = Runner.open(dpd=10).run_until(T0)
    rejected(r, r.pay, "paid_at", "is in the future", "10.00", paid_at=T0 + timedelta(hours=1))
    res = r.pay("10.00", paid_at=T0 + timedelta(minutes=4))
    assert res.applied == "10.00"
    assert r.state.payments["P1"].at == T0 + timedelta(minutes=4)


def test_overpayment_within_the_policy_tolerance_is_kept_as_surplus():
    lenient = DEFAULT.model_copy(update={"allocation": DEFAULT.allocation.model_copy(update={"overpayment_tolerance": "1.00"})})
    r = Runner(make_case(10, policy=lenient))
    rejected(r, r.pay, "amount", "plus the tolerance 1.00", "10521.01")
    res = r.pay("10521.00")
    assert res.allocation["surplus"] == "1.00" and res.outcome == "paid"
    assert_books_balance(r.case)


def test_payment_during_a_hold_is_accepted():
    r = Runner.open(dpd=10).run_until(T0)
    r.hold("dispute", reference="D-1")
    assert r.pay("100.00").applied == "100.00"
    assert r.case.status_name() == "paused"


# ---------------------------------------------------------------- promises


def test_promise_pauses_the_ladder_and_is_kept_by_a_payment_in_time():
    r = Runner.open(dpd=5).run_until(T0)
    assert r.keys() == ["reminder_notice"]
    res = r.promise("2000.00", r.today() + timedelta(days=10))
    assert res.status == "paused"
    deadline = r.state.promise.deadline
    assert r.case.wake_at() == deadline  # the first_call (DPD 7) is not a deadline while paused
    r.run_until(deadline - timedelta(hours=1))
    assert r.keys() == ["reminder_notice"]  # nothing ran while the promise stood
    r.pay("1500.00", "A")
    assert r.state.promise.status == "active"
    r.pay("500.00", "B")
    assert r.state.promise.status == "kept" and r.events("promise_kept")
    assert r.case.status_name() == "active"
    assert r.case.due_step(r.now) == 1  # the ladder resumes where it stood


def test_broken_promise_resumes_the_ladder_at_its_deadline():
    r = Runner.open(dpd=5).run_until(T0)
    r.promise("2000.00", r.today() + timedelta(days=3))
    deadline = r.state.promise.deadline
    r.pay("1999.99", "A")
    r.run_until(deadline - US)
    assert r.state.promise.status == "active"
    r.run_until(deadline)
    assert r.state.promise.status == "broken" and r.events("promise_broken")
    assert r.keys() == ["reminder_notice", "first_call"]
    assert r.when("first_call") == deadline  # overdue since DPD 7, runs the moment the promise breaks
    r.pay("0.01", "B")  # too late: a broken promise stays broken
    assert r.state.promise.status == "broken"


@pytest.mark.parametrize(
    ("day_offset", "field", "fragment"),
    [
        (-1, "date", "is in the past"),
        (15, "date", "at most 14"),
    ],
)
def test_bad_promise_rejected(day_offset, field, fragment):
    r = Runner.open(dpd=5).run_until(T0)
    rejected(r, r.promise, field, fragment, "100.00", r.today() + timedelta(days=day_offset))


def test_promise_rejected_while_another_or_a_plan_is_active():
    r = Runner.open(dpd=5).run_until(T0)
    r.promise("100.00", r.today() + timedelta(days=3))
    rejected(r, r.promise, "case", "a promise is already active", "50.00", r.today() + timedelta(days=4))
    r1 = Runner.open(dpd=5).run_until(T0)
    rejected(r1, r1.promise, "amount", "more than the outstanding", "10520.01", r1.today())
    r2 = Runner.open(dpd=5).run_until(T0)
    r2.plan(kind="deferral", until=r2.today() + timedelta(days=30))
    rejected(r2, r2.promise, "case", "a repayment plan is active", "50.00", r2.today())


def test_promise_from_a_call_outcome():
    r = Runner.open(dpd=5)
    day = r.today() + timedelta(days=5)
    r.results = lambda step: delivered(step, outcome="promise", promise_amount="300.00", promise_date=day)
    r.run_until(T0 + timedelta(days=2))  # the call: DPD 7 and two days after the reminder
    assert r.keys() == ["reminder_notice", "first_call"]
    assert r.state.promise is not None and r.state.promise.amount == 30_000 and r.state.promise.date == day


# ---------------------------------------------------------------- plans


def pay_schedule(r: Runner, upto: int | None = None) -> None:
    for i, inst in enumerate(r.state.plan.schedule[:upto]):
        r.run_until(max(r.now, r.case.clock.date_deadline(inst.due, 0) - timedelta(hours=12)))  # midday on the due date
        r.pay(format_amount(inst.amount, "CNY"), f"I{i}")
        assert_books_balance(r.case)


def test_instalment_plan_kept_closes_the_case_as_settled():
    r = Runner.open(dpd=20).run_until(T0)
    res = r.plan(kind="instalments", instalments=3, first_due=r.today() + timedelta(days=5))
    assert res.status == "paused" and res.total == "10520.00" and len(res.schedule) == 3
    assert sum(int(a.replace(".", "")) for _, a in res.schedule) == TOTAL
    pay_schedule(r)
    assert r.state.closed and r.state.outcome == "settled"
    assert r.state.plan.status == "completed" and r.events("plan_completed")
    assert r.keys() == ["reminder_notice"]  # the ladder never moved while the plan stood


def test_interest_waiver_plan_kept_forgives_the_interest():
    r = Runner.open(dpd=20).run_until(T0)
    res = r.plan(kind="interest_waiver", pay_by=r.today() + timedelta(days=10), waiver_percent=50)
    assert res.waived == "250.00" and res.total == "10270.00"
    assert r.state.balances.interest == INTEREST - 25_000
    assert_books_balance(r.case)
    r.run_for(days=5)
    r.pay("10270.00")
    assert r.state.outcome == "settled"
    assert r.state.total_paid == TOTAL - 25_000
    assert "interest waived CNY 250.00" in r.events("plan_completed")[0]
    assert_books_balance(r.case)


def test_deferral_kept():
    r = Runner.open(dpd=20).run_until(T0)
    r.plan(kind="deferral", until=r.today() + timedelta(days=60))
    r.run_for(days=59)
    assert r.state.plan.status == "active" and r.keys() == ["reminder_notice"]
    r.pay("10520.00")
    assert r.state.outcome == "settled"


def test_broken_plan_restores_the_waiver_and_resumes_the_ladder():
    r = Runner.open(dpd=20).run_until(T0)
    r.plan(kind="instalments", instalments=4, first_due=r.today() + timedelta(days=5), waiver_percent=40)
    plan = r.state.plan
    assert plan.waived == 20_000 and r.state.balances.interest == INTEREST - 20_000
    pay_schedule(r, upto=1)
    missed = plan.schedule[1].deadline
    r.run_until(missed - US)
    assert r.state.plan.status == "active" and r.keys() == ["reminder_notice"]
    r.run_until(missed)
    assert r.state.plan.status == "broken" and r.events("plan_broken")
    # the waived interest is owed again: total paid + outstanding == the original debt
    assert r.state.total_paid + r.state.balances.total == TOTAL
    assert_books_balance(r.case)
    # and the ladder resumes at its next step, the first call, overdue since DPD 7
    assert r.keys() == ["reminder_notice", "first_call"] and r.when("first_call") == missed
    assert r.case.status_name() == "active"


def test_broken_interest_waiver_plan_restores_all_the_interest():
    r = Runner.open(dpd=20).run_until(T0)
    r.plan(kind="interest_waiver", pay_by=r.today() + timedelta(days=3), waiver_percent=50)
    r.pay("100.00")
    r.run_until(r.state.plan.schedule[0].deadline)
    assert r.state.plan.status == "broken"
    assert r.state.balances.interest == INTEREST - (10_000 - FEES)
    assert r.state.balances.total == TOTAL - 10_000


def test_plan_supersedes_a_promise():
    r = Runner.open(dpd=20).run_until(T0)
    r.promise("100.00", r.today() + timedelta(days=2))
    r.plan(kind="deferral", until=r.today() + timedelta(days=10))
    assert r.state.promise is None and r.events("promise_superseded")
    assert r.case.pause_reason() == "repayment plan (deferral)"


def test_plan_rejections_change_nothing():
    r = Runner.open(dpd=20).run_until(T0)
    rejected(
        r, r.plan, "instalments", "at most 60 months", kind="instalments", instalments=24, interval_months=3, first_due=r.today()
    )
    rejected(r, r.plan, "waiver_percent", "outside 0..50%", kind="interest_waiver", pay_by=r.today(), waiver_percent=60)
    rejected(r, r.plan, "until", "more than 90 days", kind="deferral", until=r.today() + timedelta(days=91))
    rejected(r, r.plan, "first_due", "is required", kind="instalments", instalments=3)
    r.plan(kind="deferral", until=r.today() + timedelta(days=10))
    rejected(r, r.plan, "case", "a deferral plan is already active", kind="deferral", until=r.today() + timedelta(days=20))


def test_an_active_plan_holds_off_the_write_off_until_it_breaks():
    r = Runner.open(dpd=700).run_until(T0)
    r.plan(kind="instalments", instalments=6, first_due=r.today() + timedelta(days=30))
    write_off = r.case.write_off_at()
    assert write_off == r.dpd_at(720)
    r.run_until(write_off + timedelta(days=1))
    assert not r.state.closed  # first deadline is DPD 735
    assert r.state.write_off is None
    r.run_until(r.state.plan.schedule[0].deadline)
    assert r.state.plan.status == "broken"
    assert r.state.write_off == "proposed" and not r.state.closed  # write-off is proposed; the case stays open


# ---------------------------------------------------------------- holds


def test_hardship_hold_pauses_and_is_released_at_its_end_date():
    r = Runner.open(dpd=5).run_until(T0)
    until = r.today() + timedelta(days=30)
    res = r.hold("hardship", until=until, reference="job loss")
    assert res.status == "paused" and "contact stopped" in res.message
    end = r.state.holds[0].until
    assert end == r.case.clock.date_deadline(until, 0)  # the end of the end date, in the borrower's zone
    r.run_until(end - US)
    assert r.keys() == ["reminder_notice"] and r.state.holds
    r.run_until(end)
    assert r.state.holds == [] and "hardship ended on its end date" in r.events("hold_released")
    assert r.keys() == ["reminder_notice", "first_call"] and r.when("first_call") == end


@pytest.mark.parametrize(
    ("kind", "until_days", "field", "fragment"),
    [
        ("hardship", None, "until", "needs its end date"),
        ("hardship", 0, "until", "is not after today"),
        ("hardship", -3, "until", "is not after today"),
        ("hardship", 181, "until", "at most 180"),
        ("dispute", 10, "until", "only a hardship hold has an end date"),
        ("bankruptcy", 10, "until", "only a hardship hold has an end date"),
    ],
)
def test_bad_holds_rejected(kind, until_days, field, fragment):
    r = Runner.open(dpd=5).run_until(T0)
    until = None if until_days is None else r.today() + timedelta(days=until_days)
    rejected(r, r.hold, field, fragment, kind, until=until)


def test_complaint_hold_is_released_only_by_a_reviewer():
    r = Runner.open(dpd=5).run_until(T0)
    r.hold("complaint", reference="C-9")
    r.run_for(days=400)
    assert r.state.holds and r.keys() == ["reminder_notice"]  # no end date: it stays until reviewed
    rejected(r, r.release, "reviewer", "compliance reviewer", "complaint")
    res = r.release("complaint", reviewer="compliance-7", resolution="unfounded")
    assert res.status == "active" and r.state.holds == []
    assert r.events("hold_released")[-1] == "complaint by compliance-7: unfounded"


def test_dispute_hold_and_release():
    r = Runner.open(dpd=5).run_until(T0)
    r.hold("dispute", reference="amount disputed")
    rejected(r, r.hold, "kind", "already on a dispute hold", "dispute")
    rejected(r, r.release, "kind", "there is no cease_contact hold", "cease_contact")
    r.run_for(days=10)
    assert r.keys() == ["reminder_notice"]
    r.release("dispute", resolution="confirmed")
    r.run_for(days=0)
    assert r.keys() == ["reminder_notice", "first_call"]


def test_dispute_raised_on_a_call_places_a_hold():
    r = Runner.open(dpd=5)
    r.results = lambda step: delivered(step, outcome="dispute")
    r.run_until(T0 + timedelta(days=2))  # the call: DPD 7 and two days after the reminder
    assert [h.kind for h in r.state.holds] == ["dispute"]
    assert r.case.status_name() == "paused"


@pytest.mark.parametrize(("kind", "outcome"), [("bankruptcy", "bankrupt"), ("deceased", "deceased")])
def test_closing_holds_close_the_case(kind, outcome):
    r = Runner.open(dpd=50).run_until(T0)
    res = r.hold(kind, reference="court notice")
    assert res.status == "closed" and res.outcome == outcome
    assert r.state.closed and r.state.outcome == outcome and r.state.closed_at == T0
    assert r.case.wake_at() is None
    rejected(r, r.pay, "case", f"is closed ({outcome})", "1.00", "LATE")
    rejected(r, r.release, "case", "is closed", kind)


# ---------------------------------------------------------------- outcomes


def test_outcomes_need_their_step():
    r = Runner.open(dpd=5).run_until(T0)
    rejected(r, r.outcome, "kind", "no home visit has been scheduled", "visit", "met_borrower")
    rejected(r, r.outcome, "kind", "no lawsuit or payment order", "court", "judgment")
    rejected(r, r.outcome, "outcome", "is not a call outcome", "call", "judgment")
    rejected(r, r.outcome, "amount", "carries the promised amount", "call", "promise")


def test_enforcement_result_is_never_swallowed_by_a_payment_id():
    r = Runner.open(dpd=1).run_until(T0 + timedelta(days=130))
    today = r.case.clock.today(r.now)
    r.outcome("court", "judgment", effective_on=today, performance_ends=today + timedelta(days=10))
    r.run_until(r.dpd_at(151))
    r.pay("100.00", payments.enforcement_payment_id(r.case, 2))  # an id the ledger already holds
    paid = r.state.total_paid
    r.outcome("court", "enforcement_result", amount="500.00")
    assert r.state.total_paid == paid + 50_000


def test_enforcement_recoveries_of_two_cases_have_distinct_ledger_ids():
    """Payment ids are unique across the whole ledger: `enforcement-1` of every case was one row."""
    import re

    from domain.models import ID_PATTERN

    a, b = Runner.open(dpd=1), Runner.open(dpd=1)
    b.case.inp = b.case.inp.model_copy(update={"loan_id": "OTHER"})
    ids = {
        payments.enforcement_payment_id(a.case, 1),
        payments.enforcement_payment_id(b.case, 1),
        payments.enforcement_payment_id(a.case, 2),
    }
    assert len(ids) == 3 and all(re.fullmatch(ID_PATTERN, i) for i in ids)


# ---------------------------------------------------------------- write-off


def test_write_off_at_the_policy_dpd():
    r = Runner.open(dpd=1).run_until(T0 + timedelta(days=715))
    assert not r.state.closed
    write_off = r.dpd_at(DEFAULT.write_off_dpd)
    assert r.case.wake_at() == write_off
    r.run_until(write_off - US)
    assert not r.state.closed
    r.run_until(write_off)
    assert not r.state.closed and r.state.write_off == "proposed" and r.state.write_off_proposed_at == write_off
    assert "DPD 720 reached with CNY 10520.00 outstanding" in r.events("write_off_proposed")[0]


def test_a_hold_defers_the_write_off_proposal_until_it_is_released():
    r = Runner.open(dpd=700).run_until(T0)
    r.hold("dispute")
    r.run_for(days=30)
    assert not r.state.closed and r.state.write_off is None and r.state.write_off_deferred == "on hold: dispute"
    r.release("dispute")
    r.run_for(hours=1)
    assert r.state.write_off == "proposed" and not r.state.closed


# ---------------------------------------------------------------- other zones and the demo clock


def test_new_york_borrower_steps_at_local_midnight_across_dst():
    now = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # 10:00 EST on 2 March
    r = Runner.open(dpd=1, now=now, tz=NY).run_until(now + timedelta(days=10))
    assert r.keys() == ["reminder_notice", "first_call"]
    # due 1 March; DPD 7 begins 8 March 00:00 EST, the day DST begins
    assert r.when("first_call") == datetime(2026, 3, 8, 5, 0, tzinfo=UTC)
    assert r.case.step_at(2) == datetime(2026, 3, 31, 4, 0, tzinfo=UTC)  # DPD 30 at 00:00 EDT


def test_new_york_promise_deadline_is_local_midnight_across_dst():
    now = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    r = Runner.open(dpd=1, now=now, tz=NY).run_until(now)
    r.promise("100.00", date(2026, 3, 6))
    assert r.state.promise.deadline == datetime(2026, 3, 10, 4, 0, tzinfo=UTC)  # 00:00 EDT after 3 days' grace


def test_demo_policy_runs_the_ladder_in_minutes():
    r = Runner.open(dpd=1, policy=DEMO).run_until(T0 + timedelta(minutes=16))
    keys = [s.key for s in DEMO.steps]
    assert r.keys() == keys[: keys.index("litigation") + 1]
    assert r.when("first_call") == T0 + timedelta(seconds=6 * 6)
    assert r.when("home_visit") == T0 + timedelta(seconds=29 * 6)
    assert r.state.stage == "litigation"
    assert r.case.dpd(r.now) == 1 + 16 * 60 // 6
    r.run_until(r.dpd_at(DEMO.write_off_dpd))
    assert r.state.write_off == "proposed" and not r.state.closed
    assert r.now - T0 < timedelta(hours=1)


# ---------------------------------------------------------------- property: the books always balance


ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("pay"),
            st.one_of(st.integers(min_value=1, max_value=1000), st.just(990)),
            st.integers(min_value=0, max_value=6),
        ),
        st.tuples(st.just("pay_instalment"), st.integers(min_value=0, max_value=10**6), st.just(0)),
        st.tuples(st.just("wait"), st.integers(min_value=1, max_value=24 * 60), st.just(0)),
        st.tuples(st.just("promise"), st.integers(min_value=1, max_value=1000), st.integers(min_value=0, max_value=16)),
        st.tuples(st.just("plan"), st.integers(min_value=0, max_value=60), st.integers(min_value=0, max_value=2)),
        st.tuples(st.just("hold"), st.integers(min_value=0, max_value=1), st.just(0)),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    dpd=st.integers(min_value=-5, max_value=700),
    principal=st.integers(min_value=1, max_value=10**9),
    interest=st.integers(min_value=0, max_value=10**7),
    fees=st.integers(min_value=0, max_value=10**5),
    ops=ops,
)
def test_balances_never_negative_and_the_books_balance(dpd, principal, interest, fees, ops):
    r = Runner(make_case(dpd, principal=principal, interest=interest, fees=fees))
    r.run_until(T0)
    original = r.state.original.total
    for op, a, b in ops:
        before = r.state.model_dump()
        try:
            if op == "pay":  # a share (in permille) of what is left, sometimes more; ids repeat
                amount = max(1, r.state.balances.total * a // 990) if r.state.balances.total else a
                r.pay(format_amount(amount, "CNY"), f"P{b}")
            elif op == "pay_instalment":  # the next instalment of the plan, or the whole plan
                plan = r.state.plan
                if plan is None or plan.status != "active":
                    continue
                paid, cumulative = r.state.total_paid - plan.paid_before, 0
                for inst in plan.schedule:
                    cumulative += inst.amount
                    if paid < cumulative:
                        break
                r.pay(format_amount(cumulative - paid, "CNY"), f"I{a}")
            elif op == "wait":
                r.run_for(hours=a)
            elif op == "promise":
                r.promise(format_amount(max(1, r.state.balances.total * a // 1000), "CNY"), r.today() + timedelta(days=b))
            elif op == "plan":
                kind = ["deferral", "instalments", "interest_waiver"][b]
                extra = {
                    "deferral": {"until": r.today() + timedelta(days=1 + a)},
                    "instalments": {"instalments": 2 + a % 10, "first_due": r.today() + timedelta(days=a % 31)},
                    "interest_waiver": {"pay_by": r.today() + timedelta(days=a % 30)},
                }[kind]
                r.plan(kind=kind, waiver_percent=a % 51 if (interest and kind != "deferral") else 0, **extra)
            else:
                kind = ["dispute", "complaint"][a]
                if any(h.kind == kind for h in r.state.holds):
                    r.release(kind, reviewer="qa")
                else:
                    r.hold(kind)
        except InvalidInput:
            assert r.state.model_dump() == before  # a rejection leaves nothing half-written
            event(f"{op} rejected")
        else:
            event(f"{op} accepted")
        s = r.state
        assert_books_balance(r.case)
        assert s.original.total == original
        # a case is paid off exactly when nothing is outstanding
        if s.closed and s.outcome in ("paid", "settled", "recovered"):
            assert s.balances.total == 0
        if s.balances.total == 0:
            assert s.closed and s.outcome in ("paid", "settled", "recovered")
        # steps run in the policy's order, each at most once
        idx = [LADDER.index(k) for k in s.steps_done]
        assert idx == sorted(set(idx))
    event(f"outcome {r.state.outcome}")
    if r.state.plan is not None:
        event(f"plan {r.state.plan.status}")


def test_a_payment_id_names_one_amount_and_a_resend_with_another_is_refused():
    r = Runner.open(dpd=10)
    r.pay("100.00", "P-ONCE")
    paid = r.state.total_paid
    assert r.pay("100.00", "P-ONCE").duplicate  # the same payment again: idempotent
    with pytest.raises(InvalidInput) as e:
        r.pay("250.00", "P-ONCE")
    assert e.value.field == "amount" and "already recorded with CNY 100.00" in e.value.reason
    with pytest.raises(InvalidInput) as e:
        r.pay("100.00", "P-ONCE", currency="USD")
    assert e.value.field == "currency"
    assert r.state.total_paid == paid and len(r.state.payments) == 1  # nothing changed
    old = Runner.open(dpd=10)
    old.case.regime = replace(old.case.regime, payment_keys_checked=False)  # versioning.PAYMENT_KEYS: a run begun before it
    old.pay("100.00", "P-ONCE")
    assert old.pay("250.00", "P-ONCE").duplicate


def test_a_resent_enforcement_result_with_its_reference_applies_nothing_again():
    r = Runner.open(dpd=1).run_until(T0 + timedelta(days=130))
    today = r.case.clock.today(r.now)
    r.outcome("court", "judgment", effective_on=today, performance_ends=today + timedelta(days=10))
    r.run_until(r.dpd_at(151))
    paid = r.state.total_paid
    ref = "(2026)沪0101执123号"  # the court's case number: shared by every distribution of the enforcement
    r.outcome("court", "enforcement_result", amount="500.00", reference=ref)
    res = r.outcome("court", "enforcement_result", amount="500.00", reference=ref)  # the feed resends it that day
    assert r.state.total_paid == paid + 50_000 and "already recorded" in res.message
    r.outcome("court", "enforcement_result", amount="700.00", reference=ref)  # another distribution, another amount
    assert r.state.total_paid == paid + 120_000
    r.now += timedelta(days=1)
    r.outcome("court", "enforcement_result", amount="500.00", reference=ref)  # the same amount on another day
    assert r.state.total_paid == paid + 170_000
    r.outcome("court", "enforcement_result", amount="10.00")  # no reference: each one a new recovery, as before
    r.outcome("court", "enforcement_result", amount="10.00")
    assert r.state.total_paid == paid + 172_000
    assert r.state.enforcement_restarted_on is None  # recovered by force, not paid by the debtor: no restart
