"""One collection case as a pure state machine.

The workflow owns a `Case`, feeds it the time (`workflow.now()`) and the inputs, runs the
activities it asks for, and reports their results back. Every rule of the ladder lives here:
when the next step is due, what pauses the case, how payments, promises, plans, holds and
outcomes change it, and when it closes. Nothing here does I/O, so it is tested directly.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel

from domain import calendar, compliance, inputs, legacy, legal, risk
from domain.dates import CaseClock, add_months, days_past_due, local_date, local_midnight, utc
from domain.errors import CLOSED_FIELD, CLOSED_REASON, InvalidInput
from domain.inputs import holds
from domain.models import (
    CLOSING_HOLDS,
    PAID_OUTCOMES,
    Awaiting,
    Balances,
    CaseInput,
    CaseState,
    CaseStatusName,
    ContactResult,
    Event,
    GateRecord,
    Hold,
    HoldIn,
    LimitationRestart,
    Outcome,
    PayBy,
    Plan,
    Promise,
    PromiseIn,
    RecordedCalendar,
    Restructuring,
    TaskEnd,
    TaskInfo,
    UpdateResult,
)
from domain.money import format_amount
from domain.plans import evaluate_plan, next_plan_deadline
from domain.policy import Step
from domain.promises import evaluate_promise
from domain.regime import CURRENT, Regime
from domain.status import limitation_ends, risk_class

MAX_EVENTS = 30
from domain.channels import GUARANTOR_ACTIONS, GUARANTOR_SUFFIX  # noqa: E402 - which actions a guarantor may receive: the registry's

CALENDAR_ASK_EVERY = timedelta(days=7)  # a calendar year no decision waits for yet: asked again weekly
# A last day moved by a break ends at most this long after its plain end (the longest official break, 8 days of the
# Spring Festival or National Day, after a weekend: 10 days; two weeks to spare)
PAY_BY_LONGEST_MOVE = timedelta(days=14)
PAY_BY_ASK_WITHIN = timedelta(days=31)  # a date the borrower pays by this soon has its calendar year asked for at once
MAX_RESTARTS = 10  # limitation restarts kept in the state (the events keep all of them)


class Case:
    def __init__(self, inp: CaseInput, now: datetime, regime: Regime = CURRENT) -> None:
        self.inp = inp
        self.policy = inp.policy
        if inp.state is None:
            balances = Balances(principal=inp.principal, interest=inp.interest, fees=inp.fees)
            opened_dpd = days_past_due(inp.due_date, inp.timezone, now)
            self.state = CaseState(opened_at=now, opened_dpd=opened_dpd, original=balances, balances=balances)
            self.state.catch_up_to = self._catch_up_target(opened_dpd)
            self.event(
                now,
                "opened",
                f"DPD {opened_dpd}, outstanding {self.money(balances.total)}, policy {self.policy.name} {self.policy.version}",
            )
        else:
            self.state = inp.state
            self.state.runs += 1
            # a new run learns the calendar years again (a year corrected since counts from here on)
            self.state.calendars, self.state.calendar_asked_at = [], None
        s = self.state
        self.clock = CaseClock(inp.due_date, inp.timezone, self.policy.day_seconds, s.opened_at, s.opened_dpd)
        self._index_for: list[Step] | None = None  # step_named's index: of which list of steps
        self._index: dict[str, int] = {}
        self.regime = regime  # which rules this run follows (domain/regime.py), chosen when it started
        # Asked once, when a case first reaches its write-off DPD: True closes it as written_off, as every case did
        # before write-off became an accounting event. The workflow answers from workflow.patched (a case whose
        # history closed it that way replays the same); everyone else keeps the case open (账销案存).
        self.write_off_closes: Callable[[], bool] = lambda: False
        # agent mode (Step.modes, domain/tasks.py): False runs every action by its provider (the simulator has no floor)
        self.agents = True
        self._recorded: tuple[int, calendar.Recorded] | None = None

    # ---------------------------------------------------------------- reading

    def money(self, minor: int) -> str:
        return f"{self.inp.currency} {format_amount(minor, self.inp.currency)}"

    def amount(self, minor: int) -> str:
        return format_amount(minor, self.inp.currency)

    @property
    def steps(self) -> list[Step]:
        return self.policy.steps

    def dpd(self, now: datetime) -> int:
        return self.clock.dpd(now)

    def holds_pausing(self) -> list[Hold]:
        """Holds that pause the ladder. cease_contact does not: the gate refuses contacts but lets
        legally required notices and legal steps go on."""
        return [h for h in self.state.holds if h.kind not in CLOSING_HOLDS and h.kind != "cease_contact"]

    def step_named(self, key: str) -> Step:
        """The policy's step `key` (its first, as Policy.step_index finds it; ValueError for a key it has not)."""
        steps = self.policy.steps
        if self._index_for is not steps:  # the index of this very list of steps (built once per case)
            self._index_for, self._index = steps, {}
            for n, st in enumerate(steps):
                self._index.setdefault(st.key, n)
        i = self._index.get(key)
        return steps[self.policy.step_index(key) if i is None else i]

    def enforcing(self) -> bool:
        """Enforcement has been applied for: a payoff now is a recovery."""
        return any("enforcement" in self.step_named(k).actions for k in self.state.steps_done)

    def active_plan(self) -> Plan | None:
        plan = self.state.plan
        return plan if plan is not None and plan.status == "active" else None

    def active_promise(self) -> Promise | None:
        promise = self.state.promise
        return promise if promise is not None and promise.status == "active" else None

    def plan_active(self) -> bool:
        return self.active_plan() is not None

    def promise_active(self) -> bool:
        return self.active_promise() is not None

    def pause_reason(self) -> str | None:
        """Why the ladder is paused (a hold, a plan or a promise), or None."""
        holds = self.holds_pausing()
        if holds:
            return "on hold: " + ", ".join(h.kind for h in holds)
        if (plan := self.active_plan()) is not None:
            return f"repayment plan ({plan.kind})"
        if (promise := self.active_promise()) is not None:
            return f"promise to pay {self.money(promise.amount)} by {promise.date}"
        return None

    def status_name(self) -> CaseStatusName:
        if self.state.closed:
            return "closed"
        return "paused" if self.pause_reason() else "active"

    def step_at(self, idx: int) -> datetime:
        """When step `idx` may run: its DPD, not before the gap after the previous step, and not
        before the gate said to ask again."""
        step = self.steps[idx]
        at = self.clock.dpd_instant(step.dpd)
        if self.state.deferred_until is not None:
            at = max(at, self.state.deferred_until)
        if self.state.last_step_at is not None:
            gap = step.min_days_after_previous
            if gap is None:
                gap = self.policy.min_gap_days
            at = max(at, self.state.last_step_at + self.clock.days(gap))
        delivered = self.state.bureau_notice_delivered_at
        if self.regime.legal_clocks and delivered is not None and "bureau_report" in step.actions:
            at = max(at, self.report_opens(delivered))  # 征信业管理条例 art. 15
        return at

    def report_opens(self, delivered: datetime) -> datetime:
        """When the credit-bureau report may follow the notice delivered at `delivered`: after 24:00 of the notice
        period's last day, moved past rest days (domain/legal.py notice_period), or at delivery + N policy days for a
        run from before that count and for a policy with short demo days. A last day in a year with no calendar file
        is not known: the earliest it can be, where the legal check then refuses it as calendar_missing."""
        if self.legal_facts().notice_counted:
            n = legal.notice_period(self.legal_facts(), self.policy.legal)
            assert n is not None  # a notice was delivered
            return n.ends or n.earliest
        return delivered + self.clock.days(self.policy.legal.bureau_notice_days)

    def _pending_step(self) -> int | None:
        s = self.state
        if s.closed or self.pause_reason() or s.awaiting or s.next_step >= len(self.steps):
            return None
        if self.steps[s.next_step].requires == "judgment" and not self.enforceable():
            return None
        if self.notice_undeliverable(s.next_step):
            return None
        return s.next_step

    def enforceable(self) -> bool:
        """A judgment with its dates, or a payment order served and not objected to (before the legal clocks:
        any judgment or payment order). When enforcement may be applied for is legal.check's to say."""
        s = self.state
        if not self.regime.legal_clocks:
            return legacy.enforceable(s)
        if s.judgment_at is not None:
            return s.judgment_effective_on is not None and s.performance_ends is not None
        return s.payment_order_at is not None and s.payment_order_served_on is not None and not s.objection

    def enforcement_wait(self) -> str | None:
        """What enforcement waits for that only a person can supply (a judgment's dates, a service date)."""
        s = self.state
        if not self.regime.legal_clocks:
            return None
        if s.judgment_at is not None and (s.judgment_effective_on is None or s.performance_ends is None):
            return (
                "the judgment's dates: record a court outcome judgment with effective_on (the day it took effect) "
                "and performance_ends (the last day of its performance period)"
            )
        if s.judgment_at is None and s.payment_order_at is not None and s.payment_order_served_on is None and not s.objection:
            return "the payment order's service date: record a court outcome payment_order_served with served_on"
        return None

    # ---------------------------------------------------------------- the credit-bureau notice (征信业管理条例 art. 15)

    def notice_channel(self) -> str | None:
        """The channel the notice goes by next: the first of the policy's that has not failed; None when all have."""
        failed = self.state.bureau_notice_failed
        return next((ch for ch in self.policy.legal.notice_channels if ch not in failed), None)

    def notice_undeliverable(self, idx: int) -> bool:
        """Step `idx` sends the notice, no channel reached the borrower and none is left: the case waits."""
        return (
            self.regime.legal_clocks
            and "bureau_notice" in self.steps[idx].actions
            and self.state.bureau_notice_delivered_at is None
            and self.notice_channel() is None
        )

    def due_step(self, now: datetime) -> int | None:
        """The index of the step to run now, if one is due."""
        idx = self._pending_step()
        if idx is not None and self.step_at(idx) <= now:
            return idx
        return None

    def write_off_at(self) -> datetime:
        return self.clock.dpd_instant(self.policy.write_off_dpd)

    def deadlines(self) -> list[tuple[datetime, str]]:
        """Every future moment at which the case must look at itself again, with what it is."""
        s = self.state
        out: list[tuple[datetime, str]] = []
        if s.closed:
            return out
        idx = self._pending_step()
        if idx is not None:
            out.append((self.step_at(idx), f"step {self.steps[idx].key}"))
        for h in s.holds:
            if h.until is not None:
                out.append((h.until, f"{h.kind} hold ends"))
        if (promise := self.active_promise()) is not None:
            out.append((promise.deadline, "promise deadline"))
        if (plan := self.active_plan()) is not None:
            when = next_plan_deadline(plan, s.total_paid)
            if when is not None:
                out.append((when, "plan instalment deadline"))
        if s.awaiting and s.awaiting.task_due is not None and self.requeues_left():
            out.append((s.awaiting.task_due, f"{s.awaiting.kind} task not worked: re-queue"))
        if s.awaiting and s.awaiting.task_id is not None:  # the floor's task expires when the wait ends
            out.append((s.awaiting.until, f"{s.awaiting.kind} task expires"))
        if s.awaiting:
            nxt = self.steps[s.next_step] if s.next_step < len(self.steps) else None
            if nxt and not self.pause_reason() and (nxt.requires != "judgment" or self.enforceable()):
                # nothing to do when the wait ends but the next step: wake once, for that step
                out.append((max(s.awaiting.until, self.step_at(s.next_step)), f"step {nxt.key}"))
            else:
                out.append((s.awaiting.until, f"{s.awaiting.kind} outcome overdue"))
        if s.dispute_answer_due is not None:
            out.append((s.dispute_answer_due, "answer to the credit report dispute due"))
        if s.write_off is None and not self.plan_active() and s.write_off_deferred is None:
            # once deferred (noted at the write-off DPD), the end of the hold or promise wakes the case instead
            out.append((self.write_off_at(), "write-off proposal"))
        if s.time_bar_check is not None and self._recovery_over():
            # after the write-off proposal, the case looks at itself again when the limitation period runs out
            out.append((s.time_bar_check, "limitation period ends"))
        return out

    def wake_at(self) -> datetime | None:
        d = self.deadlines()
        return min(d)[0] if d else None

    # ---------------------------------------------------------------- writing

    def event(self, now: datetime, kind: str, detail: str = "") -> None:
        s = self.state
        s.event_seq += 1
        s.events.append(Event(at=now, kind=kind, detail=detail, seq=s.event_seq))
        del s.events[:-MAX_EVENTS]

    def unaudited(self) -> list[Event]:
        """Events not yet written to the database's audit trail (the newest MAX_EVENTS at most)."""
        return [e for e in self.state.events if e.seq > self.state.audited_seq]

    def audited(self, upto: int) -> None:
        self.state.audited_seq = max(self.state.audited_seq, upto)

    def recall_needed(self) -> list[str]:
        """An agency placement still out (placed, not yet recalled)."""
        done = {a for k in self.state.steps_done for a in self.step_named(k).actions}
        return ["agency_recall"] if "agency_place" in done and not self.state.agency_recalled else []

    def closing_actions(self) -> list[str]:
        """What a closed case must undo: a credit report corrected after payment, an agency placement recalled."""
        done = {a for k in self.state.steps_done for a in self.step_named(k).actions}
        out = []
        if "bureau_report" in done and self.state.outcome in (*PAID_OUTCOMES, "settled_by_agreement"):
            out.append("bureau_correction")
        return out + self.recall_needed()

    def close(self, outcome: Outcome, now: datetime, detail: str = "") -> None:
        s = self.state
        if s.closed:
            return
        self.end_task("cancelled", now)
        s.closed, s.outcome, s.closed_at, s.awaiting = True, outcome, now, None
        self.event(now, "closed", f"{outcome}" + (f": {detail}" if detail else ""))

    def tick(self, now: datetime) -> None:
        """Handle every deadline that has passed: hold ends, promises, instalments, waits, write-off."""
        s = self.state
        if s.closed:
            return
        for h in [h for h in s.holds if h.until is not None and h.until <= now]:
            s.holds.remove(h)
            self.event(now, "hold_released", f"{h.kind} ended on its end date")
        self._count_waiting_pay_bys(now)
        if (promise := self.active_promise()) is not None:
            verdict = evaluate_promise(promise, s.total_paid, now)
            if verdict != "active":
                promise.status = verdict
                self.event(now, f"promise_{verdict}", f"{self.money(promise.amount)} by {promise.date}")
        if (plan := self.active_plan()) is not None and evaluate_plan(plan, s.total_paid, now) == "broken":
            self.break_plan(plan, now, "an instalment was not paid in time")
        if s.dispute_answer_due is not None and s.dispute_answer_due <= now:
            self.event(
                now,
                "dispute_answer_overdue",
                f"the credit report dispute was not answered within "
                f"{self.policy.legal.bureau_dispute_answer_days} days (征信业管理条例 art. 25); escalate to compliance",
            )
            s.dispute_answer_due = None
        if s.awaiting and s.awaiting.until <= now:
            self.event(s.awaiting.until, "outcome_timeout", f"no {s.awaiting.kind} outcome for {s.awaiting.step}; moving on")
            self.end_task("expired", s.awaiting.until)
            s.awaiting = None
        if not self.plan_active() and now >= self.write_off_at() and s.write_off is None:
            self._write_off_due(now)
        barred = self.time_barred(now)
        if barred:
            self.close("time_barred", now, barred)
        elif self._recovery_over():
            # when to look again: the period's end, and never sooner than a day from now (so a clock that counts
            # a day longer than this estimate costs a daily wake, not a busy loop)
            ends = limitation_ends(self)  # None: its last day is in a year with no calendar file yet
            s.time_bar_check = max(ends or now, now + self.clock.days(1))

    # ---------------------------------------------------------------- write-off (核销) and the end of recovery

    def write_off_deferral(self) -> str | None:
        """What keeps a write-off from being proposed: a hold that pauses the case or an open promise (an active
        plan keeps the write-off DPD from being looked at at all). They end, the proposal follows."""
        holds = self.holds_pausing()
        if holds:
            return "on hold: " + ", ".join(h.kind for h in holds)
        if (promise := self.active_promise()) is not None:
            return f"promise to pay {self.money(promise.amount)} by {promise.date}"
        return None

    def _write_off_due(self, now: datetime) -> None:
        """The write-off DPD is reached. Write-off is an accounting event (核销): it is proposed for an operator to
        confirm, and the case stays open; the claim, the legal clocks and the recovery go on (账销案存)."""
        s = self.state
        detail = f"DPD {self.policy.write_off_dpd} reached with {self.money(s.balances.total)} outstanding"
        if self.write_off_closes():
            self.close("written_off", now, detail)
            return
        why = self.write_off_deferral()
        if why:
            if s.write_off_deferred != why:
                s.write_off_deferred = why
                self.event(now, "write_off_deferred", f"{detail}; proposal deferred: {why}")
            return
        s.write_off, s.write_off_proposed_at, s.write_off_deferred = "proposed", now, None
        self.event(now, "write_off_proposed", f"{detail}; 核销 proposed for confirmation, recovery goes on (账销案存)")

    def time_barred(self, now: datetime) -> str | None:
        """Why the case must close because the limitation period has truly run out, or None.

        The hook on the legal clocks: the case asks `legal_refusal("lawsuit", now)` (domain/legal.py)
        and closes only when that refusal is final for the limitation
        period and nothing else is left: write-off proposed (the ladder is over), no lawsuit or payment order filed
        (a filing interrupts the period, Civil Code art. 195, and the court's clocks take over), nothing awaited,
        no step pending, no hold, promise or plan, and no dispute answer due."""
        if not self._recovery_over():
            return None
        refusal = self.legal_refusal("lawsuit", now)
        if refusal is None or refusal.rule != "limitation_period" or not refusal.final:
            return None
        return refusal.reason

    def _recovery_over(self) -> bool:
        s = self.state
        return not (
            s.closed
            or s.write_off is None
            or s.lawsuit_filed
            or s.awaiting
            or s.dispute_answer_due is not None
            or self.pause_reason()
            or self._pending_step() is not None
        )

    def break_plan(self, plan: Plan, now: datetime, why: str) -> None:
        s = self.state
        plan.status = "broken"
        r = s.restructuring
        if self.regime.restructures and r is not None and r.broken_on is None and self.clock.today(now) <= r.observation_ends:
            r.broken_on = self.clock.today(now)  # not kept inside its observation period: non-performing (domain/risk.py)
        s.balances = s.balances.model_copy(update={"interest": s.balances.interest + plan.waived})
        self.event(now, "plan_broken", f"{plan.kind}: {why}; the ladder resumes")

    @staticmethod
    def _kept_on_catch_up(step: Step) -> bool:
        """Mandatory steps, and filings a later step's judgment depends on, are never skipped."""
        return step.mandatory or bool({"lawsuit", "payment_order"} & set(step.actions))

    def _catch_up_target(self, dpd: int) -> int | None:
        """A case opened late sends step 0 first, then goes to the step its DPD calls for."""
        reached = [i for i, st in enumerate(self.steps) if st.dpd <= dpd]
        return reached[-1] if reached and reached[-1] >= 2 else None

    def begin_step(self, idx: int, now: datetime) -> Step:
        step = self.steps[idx]
        self.state.stage = step.stage
        if self.state.deferred_until is None:  # not again when the gate had deferred it
            self.event(now, "step_started", step.key)
        return step

    def legal_refusal(self, action: str, now: datetime) -> legal.Refusal | None:
        """A court or bureau action outside its legal clock (limitation, performance period, objection window,
        enforcement deadline, the credit-bureau notice); see domain/legal.py for each clock's source."""
        if not self.regime.legal_clocks:
            return legacy.refusal(self, action, now)
        if self.regime.barred_stays and action in legal.DEMAND_ACTIONS:
            barred = self.limitation_over(now)
            if barred is not None:
                return legal.Refusal("time_barred", barred, final=True)
        if action not in legal.CLOCKED_ACTIONS:  # no clock holds it: the facts need not be gathered
            return None
        return legal.check(action, now, self.policy.legal, self.legal_facts())

    def limitation_over(self, now: datetime) -> str | None:
        """Why the limitation period has run out (24:00 of its last day has passed), or None (running, or its end not
        known yet for a missing calendar year). Only the debtor's own acts restart it then (restart_limitation)."""
        if not self.regime.legal_clocks:
            return None
        p = legal.limitation(self.legal_facts(), self.policy.legal)
        if p.ends is None or now < p.ends:
            return None
        return (
            f"the limitation period ended at 24:00 on {p.last_day} ({self.inp.timezone}): the debt is time-barred; "
            f"no demand that presents it as enforceable, no legal step ({legal.SRC_TIME_BARRED})"
        )

    def limitation_start(self) -> date:
        """The day the limitation period counts from, that day not counted (民法典 art. 201): the due date (art. 189:
        自最后一期履行期限届满之日起计算), or the day of its last restart (art. 195). A state from before the legal clocks
        carries its restart as an instant: its local day."""
        s = self.state
        if s.limitation_start is not None:
            return s.limitation_start
        if s.limitation_from is not None:
            return max(self.inp.due_date, local_date(s.limitation_from, self.inp.timezone))
        return self.inp.due_date

    def restart_limitation(self, cause: str, on: date, now: datetime, *, demand: bool = False) -> None:
        """民法典 art. 195: the period restarts from the day of the interruption. A day before the current start (a
        payment made long ago, recorded late) restarts nothing. Once the period has run out, a creditor's `demand` (a
        letter, a filing) has nothing left to interrupt (art. 192, 195); only the debtor's agreement to perform (a
        promise, a plan) or voluntary performance (a payment) waives the defence (诉讼时效规定 art. 19)."""
        if not self.regime.legal_clocks:
            return
        s = self.state
        if on < self.limitation_start():
            return
        if demand and self.regime.barred_stays:
            barred = self.limitation_over(local_midnight(on + timedelta(days=1), self.inp.timezone) - timedelta(microseconds=1))
            if barred is not None:
                self.event(now, "limitation_not_restarted", f"{cause} on {on}: {barred}")
                return
        s.limitation_start = on
        s.limitation_restarts.append(LimitationRestart(cause=cause, on=on, recorded_at=now))
        del s.limitation_restarts[:-MAX_RESTARTS]
        p = legal.limitation(self.legal_facts(), self.policy.legal)
        self.event(now, "limitation_restarted", f"{cause} on {on} (民法典 art. 195): {p.describe(self.inp.timezone)}")

    def restart_enforcement(self, cause: str, on: date, now: datetime) -> None:
        """执行程序解释 art. 28: the debtor's agreement to perform (a part payment, a promise, a plan) interrupts the
        period to apply for enforcement once it runs (after the performance period, or the payment order's 15 days),
        and it is counted again from that day. One that ran out is not revived (nothing left to interrupt)."""
        if not (self.regime.enforcement_interrupts and self.regime.legal_clocks):
            return
        s, rules, tz = self.state, self.policy.legal, self.inp.timezone
        f = self.legal_facts()
        start, before = legal.enforcement_from(f, rules), legal.enforcement_window(f, rules)
        if start is None or before is None or on <= start:  # no document in force yet, or its period not running
            return
        if before.ends is not None and local_midnight(on, tz) >= before.ends:
            self.event(now, "enforcement_period_not_restarted", f"{cause} on {on}: the period had ended ({before.describe(tz)})")
            return
        if s.enforcement_restarted_on is not None and on <= s.enforcement_restarted_on:
            return
        s.enforcement_restarted_on = on
        after = legal.enforcement_window(self.legal_facts(), rules)
        assert after is not None
        self.event(
            now,
            "enforcement_period_restarted",
            f"{cause} on {on} ({legal.SRC_ENFORCEMENT_RESTART}): {after.describe(self.inp.timezone)}",
        )

    # ---------------------------------------------------------------- the days a borrower pays by

    def count_pay_by(self, item: PayBy, day: date, grace_days: int, keep_dates: bool) -> None:
        """When a promise's or an instalment's date runs out: 24:00 of its last day (the date plus the grace days),
        and a last day on a rest day moves to the next working day (民法典 art. 203: 期间的最后一日是法定休假日的, 以
        法定休假日结束的次日为期间的最后一日), unless the terms keep the dates (art. 204, `keep_dates`). A last day in
        a year with no recorded calendar is not final: the deadline is the earliest it can be, and it is counted again
        once the year is known (`_count_waiting_pay_bys`). Compressed demo days and runs from before it keep the plain
        days the item was made with."""
        if not (self.regime.pay_by_counted and self.clock.real_calendar):
            return
        p = legal.period(day, self.inp.timezone, days=grace_days, rest_days_move=not keep_dates, cal=self.calendar_view())
        item.deadline = p.ends or p.earliest
        item.last_day = p.last_day or p.nominal
        item.moved_from = p.nominal if p.moved else None
        item.waits_for_year = p.missing_year

    def _pay_bys(self) -> list[tuple[PayBy, date, int, bool]]:
        """The open promise's and the active plan's dates, with the rules they are counted by."""
        out: list[tuple[PayBy, date, int, bool]] = []
        pr, limits = self.policy.promise, self.policy.plans
        if (promise := self.active_promise()) is not None:
            out.append((promise, promise.date, pr.grace_days, pr.keep_dates_on_rest_days))
        if (plan := self.active_plan()) is not None:
            out += [(i, i.due, limits.grace_days, limits.keep_dates_on_rest_days) for i in plan.schedule]
        return out

    def _count_waiting_pay_bys(self, now: datetime) -> None:
        """Count again the dates whose calendar year was missing. One still missing once its earliest end has passed
        breaks nothing: it waits a day and is counted again (the year is asked for, calendar_years_to_ask)."""
        for item, day, grace, keep in self._pay_bys():
            if item.waits_for_year is None:
                continue
            self.count_pay_by(item, day, grace, keep)
            if item.waits_for_year is None or now < item.deadline:
                continue
            latest = item.deadline + PAY_BY_LONGEST_MOVE  # no break moves a last day further than this
            if now >= latest:  # the year never came: the latest the date could have run to has passed too
                item.deadline, item.waits_for_year = latest, None
                self.event(now, "pay_by_calendar_missing", f"{day}: no calendar for its year; counted to its latest, {latest}")
            else:
                item.deadline = now + legal.RECHECK

    def legal_facts(self) -> legal.Facts:
        s = self.state
        return legal.Facts(
            tz=self.inp.timezone,
            limitation_start=self.limitation_start(),
            judgment=s.judgment_at is not None,
            effective_on=s.judgment_effective_on,
            performance_ends=s.performance_ends,
            payment_order=s.payment_order_at is not None,
            served_on=s.payment_order_served_on,
            objection=s.objection,
            notice_delivered_at=s.bureau_notice_delivered_at,
            enforcement_restart=s.enforcement_restarted_on if self.regime.enforcement_interrupts else None,
            suspensions=tuple((x.starts_on, x.ends_on) for x in s.limitation_suspensions),
            notice_counted=self.regime.notice_counted and self.clock.real_calendar,
            cal=self.calendar_view(),
        )

    # ---------------------------------------------------------------- the calendar years this run counts with

    def calendar_view(self) -> calendar.Recorded | None:
        """The run's recorded years (None: the process-wide calendar, when the run does not record them)."""
        if not self.regime.recorded_calendar:
            return None
        years = self.state.calendars
        if self._recorded is None or self._recorded[0] != len(years):
            view = calendar.Recorded({c.year: calendar.Recorded.of(c.year, c.rest, c.working, c.source) for c in years})
            self._recorded = (len(years), view)
        return self._recorded[1]

    def calendar_years_to_ask(self, now: datetime) -> list[int]:
        """The calendar years the run should ask for now (a local activity records the answer), or [].

        A year is wanted when a running clock's last day needs it and the run has not recorded it. It is asked at
        once and then daily (legal.RECHECK, as the clock's refusal asks again) when a decision waits for it (an
        opening clock, or a clock past its nominal end); otherwise weekly, counted from the case's opening, so a
        limitation period three years out costs a question a week, not a day."""
        if not self.regime.recorded_calendar or not self.regime.legal_clocks:
            return []
        f, rules = self.legal_facts(), self.policy.legal
        urgent: set[int] = set()
        later: set[int] = set()
        clocks: list[tuple[legal.Period | None, bool]] = [
            (legal.limitation(f, rules), False),
            (legal.performance(f), True),
            (legal.objection_window(f, rules), f.payment_order),
            (legal.enforcement_window(f, rules), False),
            (legal.notice_period(f, rules) if f.notice_counted else None, True),  # the report opens with it
        ]
        for p, opens in clocks:
            if p is not None and p.missing_year is not None:
                (urgent if opens or now >= p.earliest else later).add(p.missing_year)
        for item, *_ in self._pay_bys():  # a date the borrower pays by, within a month: asked now
            if item.waits_for_year is not None:
                (urgent if item.deadline <= now + PAY_BY_ASK_WITHIN else later).add(item.waits_for_year)
        asked = self.state.calendar_asked_at
        if urgent and (asked is None or now >= asked + legal.RECHECK):
            return sorted(urgent | later)
        if later and now >= (asked or self.state.opened_at) + CALENDAR_ASK_EVERY:
            return sorted(later)
        return []

    def record_calendars(self, asked: list[int], got: list[RecordedCalendar], now: datetime) -> None:
        """The answer to `calendar_years_to_ask`: the asked years in force now. A year already recorded stays as it
        was (a run never changes a year it counted with); a year not in force is asked again later."""
        s = self.state
        s.calendar_asked_at = now
        known = {c.year for c in s.calendars}
        for c in sorted(got, key=lambda c: c.year):
            if c.year in asked and c.year not in known:
                s.calendars.append(c)
                known.add(c.year)
                self.event(now, "calendar_recorded", f"{c.year}: {c.source}; the legal clocks count with it from now on")

    def step_actions(self, idx: int) -> list[str]:
        """The step's actions, plus its letters to the guarantor (`letter@guarantor`) where the loan names one."""
        step = self.steps[idx]
        actions: list[str] = list(step.actions)
        if self.regime.legal_clocks and "bureau_notice" in actions:  # the notice by the policy's next channel while one fails
            ch = self.notice_channel()
            actions = [a for a in actions if a != "bureau_notice"] + ([legal.NOTICE_ACTIONS[ch]] if ch else [])
        if step.notify_guarantor and self.inp.guarantor_id:
            actions += [f"{a}{GUARANTOR_SUFFIX}" for a in step.actions if a in GUARANTOR_ACTIONS]
        return actions

    def pending_actions(self, idx: int) -> list[str]:
        return [a for a in self.step_actions(idx) if a not in self.state.step_actions_done]

    def settle_step(self, idx: int, results: list[ContactResult], refusals: list[GateRecord], now: datetime) -> bool:
        """Take what a step's actions came back with. True when the step is complete; False when the
        gate deferred some action (the step runs again for those at `deferred_until`)."""
        s, step = self.state, self.steps[idx]
        for d in refusals:
            self.decide(d)
            # the gate writes its own refusals to the audit trail; a legal clock's refusal is the case's to record
            kind = "legal_refused" if d.rule in legal.LEGAL_RULES else "contact_refused"
            self.event(
                now,
                kind,
                f"{step.key}/{d.action}: {d.rule}: {d.reason}"
                + ("" if d.final else f"; asks again at {utc(d.retry_at)}" if d.retry_at else ""),
            )
            if d.final:
                s.step_actions_done.append(d.action)
        for r in results:
            s.step_actions_done.append(r.action)
            if r.status == "delivered":
                key = r.channel + (GUARANTOR_SUFFIX if r.action.endswith(GUARANTOR_SUFFIX) else "")
                s.contacts[key] = s.contacts.get(key, 0) + 1
                if r.action == "visit":
                    s.visit_scheduled = True
                if r.action in ("lawsuit", "payment_order"):
                    s.lawsuit_filed = True
                if r.action == "bureau_report":
                    s.bureau_reported = True
            self.event(
                now,
                f"contact_{r.status}",
                f"{step.key}/{r.action}" + (f": {r.outcome}" if r.outcome else "") + (f" ({r.reason})" if r.reason else ""),
            )
            self._legal_effects(r, now)
        self._take_outcomes(step, results, now)
        deferred = [d for d in refusals if not d.final]
        if deferred and not s.closed:
            s.deferred_until = min(d.retry_at or now + compliance.INDEFINITE_RECHECK for d in deferred)
            return False
        if self.regime.legal_clocks and "bureau_notice" in step.actions and s.bureau_notice_delivered_at is None and not s.closed:
            # the notice failed (征信业管理条例 art. 15: no report before the borrower is told): the next channel now,
            # or, with none left, the case waits (notice_undeliverable) and the step stays open
            s.deferred_until = now if self.notice_channel() else None
            return False
        self.finish_step(idx, now)
        return True

    def _legal_effects(self, r: ContactResult, now: datetime) -> None:
        """What a channel result does to the legal clocks: a delivered lawyer's letter is a demand (民法典 art. 195(一)),
        a filed lawsuit or payment order an interruption (art. 195(三), (四)); the credit-bureau notice reached the
        borrower, or failed and blocks the report."""
        if not self.regime.legal_clocks:
            return
        s, today = self.state, self.clock.today(now)
        if r.action in legal.NOTICE_ACTION_SET:
            if r.status == "delivered":
                if s.bureau_notice_delivered_at is None:
                    s.bureau_notice_delivered_at = now
                    self.event(
                        now,
                        "bureau_notice_delivered",
                        f"by {r.channel}; the report may follow from {utc(self.report_opens(now))} ({legal.SRC_NOTICE})",
                    )
            else:
                s.bureau_notice_failed.append(
                    r.channel
                    if r.channel in legal.NOTICE_ACTIONS
                    else next(k for k, v in legal.NOTICE_ACTIONS.items() if v == r.action)
                )
                nxt = self.notice_channel()
                self.event(
                    now,
                    "bureau_notice_failed",
                    f"by {r.channel}"
                    + (f" ({r.reason})" if r.reason else "")
                    + (f"; trying {nxt}" if nxt else "; no channel left: notice undeliverable, verify the address")
                    + "; the credit report waits",
                )
            return
        if r.status != "delivered":
            return
        if r.action == "law_firm":
            self.restart_limitation("lawyer's letter delivered (a demand)", today, now, demand=True)
        elif r.action in ("lawsuit", "payment_order"):
            self.restart_limitation(f"{r.action.replace('_', ' ')} filed", today, now, demand=True)

    @staticmethod
    def borrower_closure(refusals: list[GateRecord]) -> GateRecord | None:
        """The gate's final refusal because the borrower was recorded bankrupt or deceased (on any of their
        loans): the case closes as if the hold had been placed on it. A guarantor's own bankruptcy or death
        (refusing a letter to the guarantor) does not close the borrower's case."""
        return next(
            (d for d in refusals if d.final and d.rule in CLOSING_HOLDS and not d.action.endswith(GUARANTOR_SUFFIX)), None
        )

    def close_for_borrower(self, d: GateRecord, now: datetime) -> None:
        self.close(CLOSING_HOLDS[d.rule], now, f"recorded on another of the borrower's loans ({d.reason})")

    def decide(self, d: GateRecord) -> None:
        self.state.decisions.append(d)
        del self.state.decisions[:-10]

    def finish_step(self, idx: int, now: datetime) -> None:
        s, step = self.state, self.steps[idx]
        s.steps_done.append(step.key)
        s.last_step_at = now
        s.step_actions_done, s.deferred_until = [], None
        nxt = idx + 1
        if s.catch_up_to is not None:
            while nxt < s.catch_up_to and not self._kept_on_catch_up(self.steps[nxt]):
                self.event(now, "step_skipped", f"{self.steps[nxt].key}: case opened at DPD {s.opened_dpd}")
                nxt += 1
            if nxt >= s.catch_up_to:
                s.catch_up_to = None
        s.next_step = nxt
        filed = {"lawsuit", "payment_order", "enforcement"} & set(step.actions)
        task, s.opened_task = s.opened_task, None
        if task is not None and not s.closed:
            days = step.await_outcome_days or self.policy.agent.call_await_days
            s.awaiting = Awaiting(
                step=step.key,
                kind=task.action,
                until=max(now + self.clock.days(days), task.due_at),
                task_id=task.task_id,
                task_due=task.due_at,
            )
            return
        if step.await_outcome_days and not s.closed and (s.lawsuit_filed if filed else s.visit_scheduled):
            s.awaiting = Awaiting(
                step=step.key, kind="court" if filed else "visit", until=now + self.clock.days(step.await_outcome_days)
            )

    def _take_outcomes(self, step: Step, results: list[ContactResult], now: datetime) -> None:
        for r in results:
            if r.outcome == "dispute":
                holds.place(self, HoldIn(kind="dispute", reference=f"{step.key} {r.channel}"), now)
            elif r.outcome == "promise" and r.promise_amount and r.promise_date:
                promise = PromiseIn(amount=r.promise_amount, date=r.promise_date)
                try:
                    self.check(promise, now)
                except InvalidInput as exc:
                    self.event(now, "promise_not_recorded", str(exc))
                else:
                    self.apply(promise, now)

    # ---------------------------------------------------------------- inputs (domain/inputs/, one module per family)

    def check(self, arg: BaseModel, now: datetime) -> Any:
        """Would the case take this input now? Raises InvalidInput naming the field; changes nothing."""
        return inputs.of(arg).check(self, arg, now)

    def apply(self, arg: BaseModel, now: datetime) -> Any:
        """Take the input now (checked again first): its events, and the answer for the person who sent it."""
        return inputs.of(arg).apply(self, arg, now)

    def refuse_if_closed(self) -> None:
        if self.state.closed:
            raise InvalidInput(CLOSED_FIELD, f"{CLOSED_REASON} ({self.state.outcome}); nothing can change it")

    def result(self, message: str) -> UpdateResult:
        return UpdateResult(message=message, status=self.status_name(), outcome=self.state.outcome)

    # ---------------------------------------------------------------- views

    def restructure(self, plan: Plan, now: datetime) -> None:
        """An agreed plan is a restructuring (policy [risk] plans_are_restructurings): the class before it, and the
        observation period from the first payment day, at least `observation_months` and `observation_periods`."""
        rules = self.policy.risk
        if not (rules.plans_are_restructurings and self.regime.restructures):
            return
        first = plan.schedule[0].due
        months_end = add_months(first, rules.observation_months)
        periods_end = plan.schedule[min(rules.observation_periods, len(plan.schedule)) - 1].due
        s = self.state
        # a new plan after one: never better than the class before the first, nor than the class now (a broken
        # restructuring is non-performing: agreeing another plan does not upgrade it)
        now_class = risk_class(self, now)
        before = now_class if s.restructuring is None else risk.worst(now_class, s.restructuring.before)
        s.restructuring = Restructuring(on=self.clock.today(now), before=before, observation_ends=max(months_end, periods_end))
        self.event(
            now,
            "restructured",
            f"{plan.kind} plan: observation period to {s.restructuring.observation_ends}, class {risk.CHINESE[before]} "
            f"before it ({risk.SOURCE_RESTRUCTURED})",
        )

    # ---------------------------------------------------------------- the run loop every driver shares

    def next_move(self, now: datetime) -> Move:
        """One turn of the run loop: handle the deadlines that have passed (`tick`), then say what comes
        next: close, run step i now, or sleep until the next deadline (or until an input changes the case).

        The workflow's `run()`, the test suite's `Runner` and the direct simulator all turn this one loop,
        so that what they do between two inputs cannot drift apart."""
        self.tick(now)
        if self.state.closed:
            return Move(CLOSE)
        if self.requeue_due(now):
            return Move(REQUEUE)
        idx = self.due_step(now)
        if idx is not None:
            return Move(STEP, step=idx)
        wake = self.wake_at()
        # a timer shorter than a second is not worth one: a deadline at `now` is handled on the next turn
        return Move(SLEEP, until=None if wake is None else max(wake, now + MIN_SLEEP))

    # ---------------------------------------------------------------- agent mode (domain/tasks.py)

    def agent_mode(self, idx: int, action: str) -> bool:
        return self.agents and any(a == action and m == "agent" for a, m in self.steps[idx].modes.items())

    def task_opened(self, idx: int, info: TaskInfo, now: datetime) -> None:
        """A step's call or visit went to the floor as a task: the action is done for the step, and the case awaits
        the task's outcome once the step finishes (re-queued at `due_at`, moving on at the wait's end)."""
        s, step = self.state, self.steps[idx]
        s.step_actions_done.append(info.action)
        if info.action == "visit":
            s.visit_scheduled = True
        s.opened_task = info
        self.event(now, "task_opened", f"{step.key}/{info.action}: {self._task_text(info)}")

    def requeues_left(self) -> bool:
        a = self.state.awaiting
        return a is not None and a.task_id is not None and a.requeues < self.policy.agent.max_requeues

    def requeue_due(self, now: datetime) -> bool:
        a = self.state.awaiting
        return a is not None and a.task_due is not None and a.task_due <= now < a.until and self.requeues_left()

    def task_requeued(self, info: TaskInfo, now: datetime) -> None:
        a = self.state.awaiting
        assert a is not None and a.task_id == info.task_id  # requeue_due said so
        a.requeues += 1
        a.task_due = info.due_at if a.requeues < self.policy.agent.max_requeues else None
        a.until = max(a.until, info.due_at)
        self.event(now, "task_requeued", f"{a.step}/{info.action}: not worked in time; {self._task_text(info)}")

    def _task_text(self, info: TaskInfo) -> str:
        who = f"{info.assignee} ({info.team})" if info.assignee else f"team {info.team}, no member matches"
        slot = f", visit {info.slot_start:%Y-%m-%d %H:%M}-{info.slot_end:%H:%M}" if info.slot_start and info.slot_end else ""
        return f"task {info.task_id} to {who}, due {utc(info.due_at)}{slot}"

    def end_task(self, status: Literal["done", "expired", "cancelled"], now: datetime) -> None:
        a = self.state.awaiting
        if a is not None and a.task_id is not None:
            self.state.task_ends.append(TaskEnd(task_id=a.task_id, status=status, at=now))

    def plan_step(self, idx: int, now: datetime) -> StepPlan:
        """What running step `idx` now asks for, before any I/O: the actions not yet done, split into those
        the legal clocks refuse (as gate records) and those to put to the contact gate. Call after `begin_step`."""
        step = self.steps[idx]
        gated: list[str] = []
        refusals: list[GateRecord] = []
        tasks: list[str] = []
        for action in self.pending_actions(idx):
            legal = self.legal_refusal(action, now)
            if legal is None and self.agent_mode(idx, action):
                tasks.append(action)  # no contact yet: the gate is asked when the collector works the task
            elif legal is None:
                gated.append(action)
            else:
                refusals.append(
                    GateRecord(
                        at=now,
                        step=step.key,
                        action=action,
                        allowed=False,
                        rule=legal.rule,
                        reason=legal.reason,
                        retry_at=legal.retry_at,
                        final=legal.final,
                    )
                )
        nxt = self.steps[idx + 1] if idx + 1 < len(self.steps) else None
        return StepPlan(step=step, gated=gated, refusals=refusals, next_step=nxt, tasks=tasks)


import dataclasses  # noqa: E402 - the run loop's values, kept beside the loop that makes them

MIN_SLEEP = timedelta(seconds=1)
STEP, SLEEP, CLOSE, REQUEUE = "step", "sleep", "close", "requeue"


@dataclasses.dataclass(frozen=True, slots=True)
class Move:
    """What a case does next (`Case.next_move`): run step `step`, sleep until `until` (None: until an
    input), or close (run the closing actions and record the closure)."""

    kind: str
    step: int | None = None
    until: datetime | None = None

    @property
    def closes(self) -> bool:
        return self.kind == CLOSE

    @property
    def runs_step(self) -> bool:
        return self.kind == STEP

    @property
    def requeues(self) -> bool:
        """The open agent task was not worked by its due time: assign it again (domain/tasks.py)."""
        return self.kind == REQUEUE


@dataclasses.dataclass(frozen=True, slots=True)
class StepPlan:
    """A step's decisions before any I/O (`Case.plan_step`)."""

    step: Step
    gated: list[str]  # to ask the contact gate about
    refusals: list[GateRecord]  # refused by a legal clock (limitation, enforcement deadline, objection window)
    next_step: Step | None  # what the messages announce as coming next
    tasks: list[str] = dataclasses.field(default_factory=list)  # agent mode: a task for the floor each (domain/tasks.py)
