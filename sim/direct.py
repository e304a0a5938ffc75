"""The direct engine: the pure `Case` on a simulated clock, with no Temporal server, database or HTTP.

What it shares with the real run (`sim.run`, `--engine temporal`), so that the two agree
(tests/test_simulate_agreement.py):

- the run loop: `Case.next_move`, the very decision the workflow's `run()` turns; a step's legal
  refusals and gate questions: `Case.plan_step`;
- the contact gate: `domain.compliance.decide`, over an in-memory copy of what the database gate
  reads for each person (their holds, and their contacts of the last 8 days, pending or delivered);
- the channels: a call is answered by the sandbox gateway's own rule (`sandbox.gateway.play_call`,
  the loan's call script played in order), and a send fails for the same missing contact detail as
  the channel activity (the channel registry's `needs`, or `activities.case.REQUIRED` before it);
- the borrowers: `sim.behaviour.Borrower`, unchanged, seeing their contacts at the next daily
  checkpoint and answering through the same inputs (check_* then apply_*, as the updates' validators
  and handlers do), one per loan per checkpoint.

What it does in its own words, because there it is the I/O: the update handlers' side effects (a hold
to the gate's data, a payment to the ledger, a complaint recalling an agency placement), the sends of a
step and of a closure, and which of the case's events reach the audit trail (those the workflow's
activities would carry).

Time: an event queue (heapq), not a day-by-day walk. Each case wakes exactly when its next move is due
(the `until` of `next_move`); each borrower wakes only at the checkpoints (11:00 Beijing time, as in
`sim.run`) at which it has something to see or do. At one instant, the case's own wake goes before the
borrower's checkpoint, as on the time-skipping server, where every checkpoint is set a little after
the previous day's updates (and so after any timer they set a whole number of days ahead).

Borrowers are independent: the gate's data are per person, and a person belongs to the loans of one
borrower. So the portfolio is split by borrower over processes (`workers`), each borrower's loans run
on their own queue, and the results, merged and sorted, do not depend on the number of workers.
"""

from __future__ import annotations

import heapq
import os
import time
from collections import Counter, defaultdict, namedtuple
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import count

from activities.contracts import base_action, case_key, for_guarantor
from domain import calendar, compliance
from domain.case import Case
from domain.compliance import ActiveHold, Decision, PastContact
from domain.errors import InvalidInput
from domain.legal import LEGAL_RULES
from domain.models import CaseInput, ContactResult, GateRecord, HoldIn, OutcomeIn, PaymentIn, PlanIn, PromiseIn, ReleaseIn
from domain.money import parse_amount
from domain.policy import Policy
from sandbox.gateway import CallScript, play_call
from sim.behaviour import Borrower, call_script
from sim.generate import SimLoan, assign_arm, guarantor_row, make_loan
from sim.seeds import loan_rng

try:  # the channel registry (domain/channels.py): each action's channel and the contact detail it needs
    from domain.channels import channel_of
    from domain.channels import row as _channel_row

    def needs_of(action: str) -> str | None:
        return _channel_row(action).needs
except ImportError:  # before the registry: the channel activity's own tables
    from activities.case import REQUIRED
    from activities.contracts import CHANNEL_FOR_ACTION

    def channel_of(action: str) -> str:
        return CHANNEL_FOR_ACTION[base_action(action)]

    def needs_of(action: str) -> str | None:
        return REQUIRED.get(channel_of(action))


try:  # call and visit outcomes an operator records join the contact ledger, where the activities do so
    from activities.case import OPERATOR_CONTACTS
except ImportError:
    OPERATOR_CONTACTS = {}

DAY = timedelta(days=1)
GATE_LOOKBACK = timedelta(days=8)  # what the database gate reads of a person's contacts (db/repo.py GateStore)
NO_TIME = datetime.min.replace(tzinfo=UTC)  # a contact never put to the gate (closing, recall): SQL NULL
WAKE, CHECKPOINT = 0, 1  # at one instant the case goes first
# the case events the report reads from the audit trail (sim/report.py `read`)
REPORT_EVENTS = {"promise", "promise_kept", "promise_broken", "plan_agreed", "plan_completed", "plan_broken", "hold_placed"}

# rows as sim/report.py reads them from the database
PaymentRow = namedtuple("PaymentRow", "payment_id loan_id amount paid_at")
ContactRow = namedtuple("ContactRow", "loan_id step channel action status outcome at")
RefusalRow = namedtuple("RefusalRow", "loan_id rule n")
LegalRow = namedtuple("LegalRow", "loan_id detail")
EventRow = namedtuple("EventRow", "loan_id kind detail at")
CaseRow = namedtuple("CaseRow", "loan_id status outcome closed_at outstanding total_paid")
# what the report reads of each loan of the portfolio (sim.report.compute), sent back by the worker that drew it,
# so that the parent does not draw the whole portfolio again
LoanRow = namedtuple("LoanRow", "index loan_id arm total start_dpd")
# what the borrower model reads of the case's `status` query (sim.behaviour: status, outstanding, plan, promise,
# holds), with the query's values; the whole CaseStatus (next action, legal clocks, risk class) was a seventh of the run
StatusView = namedtuple("StatusView", "status outstanding plan promise holds")


def status_view(case: Case) -> StatusView:
    """The fields of `domain.status.of(case, now)` the borrower reads, computed as it computes them."""
    s, amount = case.state, case.amount
    b = s.balances
    outstanding = {
        "principal": amount(b.principal),
        "interest": amount(b.interest),
        "fees": amount(b.fees),
        "total": amount(b.total),
    }
    return StatusView(case.status_name(), outstanding, s.plan, s.promise, s.holds)


@dataclass(slots=True)
class _Contact:
    """One contact attempt (a contact_attempts row)."""

    loan_id: str
    step: str
    channel: str
    action: str
    at: datetime | None  # when the gate reserved it; None for a send the gate is not asked about
    bundle: str = ""
    status: str = "pending"
    outcome: str | None = None
    reason: str | None = None
    past: PastContact | None = None  # as the gate reads it (kept: only its outcome changes after it is made)

    def as_past(self) -> PastContact:
        p = self.past
        if p is None or p.outcome != self.outcome:
            assert self.at is not None  # only contacts put to the gate (or conversations) are in its history
            p = self.past = PastContact(
                at=_utc(self.at), channel=self.channel, outcome=self.outcome, loan_id=self.loan_id, bundle=self.bundle
            )
        return p


@dataclass(slots=True)
class _Hold:
    kind: str
    loan_id: str
    workflow_id: str
    until: datetime | None
    released: bool = False


@dataclass(frozen=True, slots=True)
class _Person:
    timezone: str
    phone: str | None
    email: str | None
    address: str | None


def _utc(t: datetime) -> datetime:
    return t if t.tzinfo is UTC else t.astimezone(UTC)


class GateData:
    """What the database gate reads of each person: their holds and their recent contacts (db/repo.py GateStore)."""

    def __init__(self) -> None:
        self.holds: dict[str, list[_Hold]] = defaultdict(list)
        self.contacts: dict[str, list[_Contact]] = defaultdict(list)

    def check(
        self, person: str, tz: str, now: datetime, requests: list[tuple[str, str, str]], rules, run: _Loan, step: str
    ) -> list[Decision]:
        """`requests`: (idempotency key, action, channel). Allowed contacts are reserved (a pending row)."""
        holds = [ActiveHold(kind=h.kind, loan_id=h.loan_id, until=h.until) for h in self.holds.get(person, ()) if not h.released]
        since = now - GATE_LOOKBACK
        mine = self.contacts[person] = [c for c in self.contacts.get(person, ()) if c.at >= since]  # time only moves on
        # in UTC, as decide() takes them (it would convert each, at every question)
        history = [c.as_past() for c in mine if c.status in ("pending", "delivered")]
        bundle = f"{run.workflow_id}:{step}"
        out = []
        for key, action, channel in requests:
            if key in run.sent:  # asked again after it was allowed (the gate's rerun path)
                out.append(Decision(True, "already_allowed", f"allowed earlier ({run.sent[key].status})"))
                continue
            d = compliance.decide(
                action=base_action(action),
                channel=channel,
                loan_id=run.loan_id,
                now=now,
                tz=tz,
                rules=rules,
                holds=holds,
                history=history,
                bundle=bundle,
                day_seconds=run.case.policy.day_seconds,
            )
            if d.allowed:
                c = _Contact(run.loan_id, step, channel, action, at=now, bundle=bundle)
                mine.append(c)
                run.sent[key] = c
                run.contacts.append(c)
                history.append(c.as_past())
            out.append(d)
        return out


class _Loan:
    """One loan's case, borrower and rows."""

    def __init__(self, ln: SimLoan, policy: Policy, seed: int, start: date, days: int, anchor: datetime) -> None:
        self.ln = ln
        self.loan_id = ln.loan_id
        self.arm = ln.arm
        inp = CaseInput(
            loan_id=ln.loan_id,
            borrower_id=ln.borrower_id,
            guarantor_id=ln.guarantor_id,
            currency="CNY",
            principal=ln.principal,
            interest=ln.interest,
            fees=ln.fees,
            due_date=start - timedelta(days=ln.start_dpd),
            timezone=ln.timezone,
            segment=ln.segment,
            policy=policy,
        )
        self.workflow_id = inp.workflow_id
        self.case = Case(inp, anchor)
        # the simulator has no collections floor: a step's call or visit in agent mode is placed as the provider
        # would place it (the borrower model answers it), never left waiting for a person
        self.case.agents = False
        self.key = case_key(self.workflow_id, self.case.state.opened_at)
        self.borrower = Borrower(ln, seed, policy, start, days)
        self.people = {ln.borrower_id: _Person(ln.timezone, ln.phone, ln.email, ln.address)}
        if ln.guarantor_id:
            g = guarantor_row(seed, ln)
            self.people[ln.guarantor_id] = _Person(g["timezone"], g["phone"], g["email"], g["address"])
        self.seed = seed
        self._calls: list[CallScript] | None = None  # drawn at the first call (their own generator: the same script)
        self.sent: dict[str, _Contact] = {}  # idempotency key -> contact row
        self.contacts: list[_Contact] = []
        self.inbox: list[tuple[int, datetime, str, str, str]] = []  # (checkpoint day it is read, at, action, status, outcome)
        self.payments: list[PaymentRow] = []
        self.refusals: Counter = Counter()
        self.legal: list[LegalRow] = []
        self.events: list[EventRow] = []
        self.audited = 0
        self.wake_token = 0
        self.cp_day = 0
        self.cp_pushed: set[int] = set()
        self.read_day = 1  # the checkpoint at which what happens now is seen

    @property
    def calls(self) -> list[CallScript]:
        """The loan's call script, as the sandbox gateway holds it (sim.run scripts every loan before it starts)."""
        if self._calls is None:
            rng = loan_rng(self.seed, self.loan_id, "calls")
            self._calls = [CallScript.model_validate(s) for s in call_script(self.ln.profile, rng)]
        return self._calls


@dataclass
class ChunkResult:
    payments: list = field(default_factory=list)
    contacts: list = field(default_factory=list)
    refusals: list = field(default_factory=list)
    legal_refusals: list = field(default_factory=list)
    events: list = field(default_factory=list)
    cases: list = field(default_factory=list)
    finals: dict = field(default_factory=dict)  # loan id -> what the agreement test compares
    accepted: dict = field(default_factory=lambda: defaultdict(Counter))
    rejected: dict = field(default_factory=lambda: defaultdict(Counter))
    rejections: list = field(default_factory=list)  # (day, loan id, text)
    recoveries: dict = field(default_factory=lambda: defaultdict(list))
    loans: list = field(default_factory=list)  # LoanRow, one per loan run
    cpu: float = 0.0

    def merge(self, other: ChunkResult) -> None:
        for name in ("payments", "contacts", "refusals", "legal_refusals", "events", "cases", "rejections", "loans"):
            getattr(self, name).extend(getattr(other, name))
        self.finals.update(other.finals)
        for name in ("accepted", "rejected"):
            for arm, c in getattr(other, name).items():
                getattr(self, name)[arm].update(c)
        for k, v in other.recoveries.items():
            self.recoveries[k].extend(v)
        self.cpu += other.cpu

    def sort(self) -> None:
        """One order whatever the split over workers: the order of the report's SQL."""
        self.payments.sort(key=lambda p: (p.loan_id, p.paid_at, p.payment_id))
        self.contacts.sort(key=lambda c: (c.loan_id, c.at or NO_TIME, c.action))
        self.refusals.sort(key=lambda r: (r.loan_id, r.rule))
        self.legal_refusals.sort(key=lambda r: r.loan_id)  # stable: each loan's in its own order
        self.events.sort(key=lambda r: r.loan_id)
        self.cases.sort(key=lambda r: r.loan_id)
        self.rejections.sort(key=lambda r: (r[0], r[1]))
        self.loans.sort()  # by index: the portfolio's order

    def data(self) -> dict:
        """The rows sim.report.compute reads."""
        return {
            "payments": self.payments,
            "contacts": self.contacts,
            "refusals": self.refusals,
            "legal_refusals": self.legal_refusals,
            "events": self.events,
            "cases": self.cases,
        }


class Engine:
    """Runs loans (all of each borrower's) on the pure case; see the module's docstring."""

    def __init__(
        self, policies: dict[str, Policy], seed: int, days: int, start: date, anchor: datetime, finals: bool = False
    ) -> None:
        self.policies, self.seed, self.days, self.start, self.anchor = policies, seed, days, start, anchor
        self.finals = finals
        self.end = anchor + days * DAY
        self.out = ChunkResult()
        self._seq = count()

    # ---------------------------------------------------------------- the queue

    def run(self, loans: list[SimLoan]) -> ChunkResult:
        t0 = time.process_time()
        by_borrower: dict[str, list[SimLoan]] = defaultdict(list)
        for ln in loans:
            by_borrower[ln.borrower_id].append(ln)
        for group in by_borrower.values():
            self._run_borrower(group)
        self.out.cpu += time.process_time() - t0
        return self.out

    def _run_borrower(self, loans: list[SimLoan]) -> None:
        self.gate = GateData()
        self.heap: list = []
        runs = [_Loan(ln, self.policies[ln.arm], self.seed, self.start, self.days, self.anchor) for ln in loans]
        for i, r in enumerate(runs):
            r.index = i
            self._turn(r, self.anchor, read_day=1)  # the case starts: what is due at once goes out
            self._schedule_checkpoint(r)
        heap, end = self.heap, self.end
        while heap:
            at, kind, _, i, token = heapq.heappop(heap)
            if at > end:
                break
            r = runs[i]
            if kind == WAKE:
                if token != r.wake_token:
                    continue  # an input woke the case since, and it set another timer
                self._turn(r, at, read_day=max(1, -((self.anchor - at) // DAY)))
            else:
                if token <= r.cp_day:
                    continue
                self._checkpoint(r, token, at)
            self._schedule_checkpoint(r)
        for r in runs:
            self._collect(r)

    def _push(self, at: datetime, kind: int, r: _Loan, token: int) -> None:
        heapq.heappush(self.heap, (at, kind, next(self._seq), r.index, token))

    def _schedule_checkpoint(self, r: _Loan) -> None:
        """The next checkpoint at which the borrower has a contact to see or something to do."""
        if r.case.state.closed:
            return  # the borrower learns it at the next checkpoint and does nothing more
        days = [d for d, *_ in r.inbox]
        b = r.borrower
        if b.queue and not b.closed:
            days.append(max(r.cp_day + 1, b.queue[0].day))
        if not days:
            return
        day = min(days)
        if day <= self.days and day not in r.cp_pushed:
            r.cp_pushed.add(day)
            self._push(self.anchor + day * DAY, CHECKPOINT, r, day)

    # ---------------------------------------------------------------- the case's loop (CollectionCase.run)

    def _turn(self, r: _Loan, now: datetime, read_day: int) -> None:
        case = r.case
        r.read_day = read_day
        while True:
            move = case.next_move(now)
            if move.closes:
                self._close(r, now, read_day)
                r.wake_token += 1
                return
            if move.runs_step:
                self._step(r, move.step, now, read_day)
                continue
            break
        r.wake_token += 1
        if move.until is not None:
            self._push(move.until, WAKE, r, r.wake_token)

    def _step(self, r: _Loan, idx: int, now: datetime, read_day: int) -> None:
        """CollectionCase._run_step without the I/O."""
        case = r.case
        step = case.begin_step(idx, now)
        plan = case.plan_step(idx, now)
        refusals = list(plan.refusals)
        allowed = self._gate(r, step.key, plan.gated, refusals, now) if plan.gated else []
        if allowed:
            self._audit(r)  # the sends carry the case's events so far
        results = [self._send(r, step.key, action, now, read_day) for action in allowed]
        case.settle_step(idx, results, refusals, now)
        closure = case.borrower_closure(refusals)
        if closure is not None and not case.state.closed:
            case.close_for_borrower(closure, now)
        if any(d.rule in LEGAL_RULES for d in refusals):
            self._audit(r)

    def _gate(self, r: _Loan, step_key: str, actions: list[str], refusals: list[GateRecord], now: datetime) -> list[str]:
        """CollectionCase._gate with the check_contacts activity: the borrower's contacts judged on the borrower's
        record, the guarantor's on the guarantor's."""
        ln, case = r.ln, r.case
        decided: list[tuple[str, Decision]] = []
        for person, mine in (
            (ln.borrower_id, [a for a in actions if not for_guarantor(a)]),
            (ln.guarantor_id, [a for a in actions if for_guarantor(a)]),
        ):
            if not mine or person is None:
                continue
            requests = [(f"{r.key}:{step_key}:{a}", a, channel_of(a)) for a in mine]
            tz = r.people[person].timezone if person in r.people else "Asia/Shanghai"
            decided += zip(mine, self.gate.check(person, tz, now, requests, case.policy.contact, r, step_key), strict=False)
        allowed = []
        for action, d in decided:
            if d.allowed:
                allowed.append(action)
                case.decide(GateRecord(at=now, step=step_key, action=action, allowed=True, rule=d.rule, reason=d.reason))
            else:
                r.refusals[d.rule] += 1  # the gate's contact_refused row
                refusals.append(
                    GateRecord(
                        at=now,
                        step=step_key,
                        action=action,
                        allowed=False,
                        rule=d.rule,
                        reason=d.reason,
                        retry_at=d.retry_at,
                        final=d.final,
                    )
                )
        return allowed

    def _send(self, r: _Loan, step_key: str, action: str, now: datetime, read_day: int) -> ContactResult:
        """A channel activity (CaseActivities._deliver) with the sandbox gateway's answer."""
        channel = channel_of(action)
        key = f"{r.key}:{step_key}:{action}"
        row = r.sent.get(key)
        if row is None:
            row = r.sent[key] = _Contact(r.loan_id, step_key, channel, action, at=None)
            r.contacts.append(row)
        elif row.status != "pending":  # the same key again: what happened the first time
            return ContactResult(action=action, channel=channel, status=row.status, outcome=row.outcome, reason=row.reason)
        recipient = r.ln.guarantor_id if for_guarantor(action) else r.ln.borrower_id
        person = r.people.get(recipient)
        missing = needs_of(action)
        if person is None:
            result = ContactResult(
                action=action, channel=channel, status="failed", reason=f"borrower {recipient} is not in the system of record"
            )
        elif missing and not getattr(person, missing):
            result = ContactResult(action=action, channel=channel, status="failed", reason=f"borrower has no {missing} on record")
        else:
            resp = play_call(r.calls) if channel == "call" else {}
            result = ContactResult(
                action=action,
                channel=channel,
                outcome=resp.get("outcome"),
                promise_amount=resp.get("promise_amount"),
                promise_date=resp.get("promise_date"),
            )
        row.status, row.outcome, row.reason = result.status, result.outcome, result.reason
        r.inbox.append((read_day, row.at or NO_TIME, action, row.status, row.outcome or ""))
        return result

    def _close(self, r: _Loan, now: datetime, read_day: int) -> None:
        """What a closed case undoes (credit report correction, agency recall), and the closure recorded."""
        for action in r.case.closing_actions():
            self._send(r, "closing", action, now, read_day)
        self._audit(r)

    # ---------------------------------------------------------------- the borrower's checkpoint (sim.run.Simulation.run)

    def _checkpoint(self, r: _Loan, day: int, now: datetime) -> None:
        r.cp_day = day
        b = r.borrower
        if r.case.state.closed:
            b.closed = True
            return
        seen = sorted((at, action, status, outcome) for d, at, action, status, outcome in r.inbox if d <= day)
        r.inbox = [x for x in r.inbox if x[0] > day]
        for _at, action, status, outcome in seen:
            b.on_contact(day, action, status, outcome or None)
        if b.has_due(day):
            self._act(r, day, now)

    def _act(self, r: _Loan, day: int, now: datetime) -> None:
        """The borrower's first due action today, through the case's inputs; the rest wait for tomorrow."""
        b, case, arm = r.borrower, r.case, r.arm
        actions = b.due(day)
        for later in actions[1:]:
            b.schedule(day + 1, later.kind, **later.args)
        a = actions[0]
        r.read_day = day + 1
        update = b.answer(a, status_view(case))  # the status query
        if update is None:
            return
        try:
            case.check(update.arg, now)  # the update's validator
        except InvalidInput as exc:
            why = str(exc).split(":", 1)[0]
            self.out.rejected[arm][f"{update.label}: {why}"] += 1
            self.out.rejections.append((day, r.loan_id, f"{r.loan_id} day {day} {update.label}: {exc}"))
            return
        result = HANDLERS[type(update.arg)](self, r, update.arg, now, day + 1)
        self.out.accepted[arm][update.label] += 1
        if update.label == "court_enforcement_result":
            self.out.recoveries[r.loan_id].append((now, parse_amount(update.arg.amount, "CNY")))
        b.accepted(a, update, result)
        self._turn(r, now, read_day=day + 1)  # the update woke the case's loop

    # ---- the update handlers' side effects (CollectionCase.record_payment, place_hold, ...)

    def _payment(self, r: _Loan, p, now: datetime, read_day: int):
        result = r.case.apply(p, now)
        if not result.duplicate:
            self._ledger(r, p.payment_id)
        return result

    def _ledger(self, r: _Loan, payment_id: str) -> None:
        rec = r.case.state.payments[payment_id]
        r.payments.append(PaymentRow(payment_id, r.loan_id, rec.amount, rec.at))
        self._audit(r)

    def _place_hold(self, r: _Loan, h, now: datetime, read_day: int):
        case = r.case
        result = case.apply(h, now)
        hold = next(x for x in case.state.holds if x.kind == h.kind)
        self.gate.holds[r.ln.borrower_id].append(_Hold(h.kind, r.loan_id, r.workflow_id, hold.until))
        self._audit(r)
        if h.kind == "complaint" and case.recall_needed():
            recall = self._send(r, "complaint", "agency_recall", now, read_day)
            case.state.agency_recalled = recall.status == "delivered"
        return result

    def _release_hold(self, r: _Loan, rel, now: datetime, read_day: int):
        result = r.case.apply(rel, now)
        for h in self.gate.holds.get(r.ln.borrower_id, ()):
            if h.workflow_id == r.workflow_id and h.kind == rel.kind:
                h.released = True
        self._audit(r)
        return result

    def _outcome(self, r: _Loan, o, now: datetime, read_day: int):
        before = set(r.case.state.payments)
        result = r.case.apply(o, now)
        for pid in sorted(set(r.case.state.payments) - before):  # an enforcement result is a payment
            self._ledger(r, pid)
        self._audit(r)
        return result

    # ---------------------------------------------------------------- rows

    def _audit(self, r: _Loan) -> None:
        """The case's new events reach the audit trail (as they ride on the workflow's next activity)."""
        for e in r.case.state.events:
            if e.seq <= r.audited:
                continue
            if e.kind in REPORT_EVENTS:
                r.events.append(EventRow(r.loan_id, e.kind, e.detail, e.at))
            elif e.kind == "legal_refused":
                r.legal.append(LegalRow(r.loan_id, e.detail))
            elif e.kind in OPERATOR_CONTACTS:
                self._conversation(r, e)
        r.audited = r.case.state.event_seq

    def _conversation(self, r: _Loan, e) -> None:
        """A call or visit outcome an operator recorded: a delivered contact at that time (CaseActivities._conversations)."""
        channel, outcomes = OPERATOR_CONTACTS[e.kind]
        outcome = (e.detail.split() or [""])[0]
        if outcome not in outcomes:
            return
        c = _Contact(
            r.loan_id,
            "operator",
            channel,
            channel,
            at=e.at,
            bundle=f"{r.workflow_id}:operator",
            status="delivered",
            outcome=outcome,
        )
        self.gate.contacts[r.ln.borrower_id].append(c)
        r.contacts.append(c)  # not to the borrower's inbox: sim.run skips these rows too (OPERATOR_STEP)

    def _collect(self, r: _Loan) -> None:
        out, s, case = self.out, r.case.state, r.case
        out.payments += r.payments
        out.contacts += [ContactRow(c.loan_id, c.step, c.channel, c.action, c.status, c.outcome, c.at) for c in r.contacts]
        out.refusals += [RefusalRow(r.loan_id, rule, n) for rule, n in sorted(r.refusals.items())]
        out.legal_refusals += r.legal
        out.events += r.events
        out.cases.append(
            CaseRow(
                r.loan_id, "closed" if s.closed else case.status_name(), s.outcome, s.closed_at, s.balances.total, s.total_paid
            )
        )
        if self.finals:
            out.finals[r.loan_id] = final_of(case)


def final_of(case: Case) -> dict:
    """What the agreement test compares of a case at the end."""
    s = case.state
    return {
        "status": case.status_name(),
        "outcome": s.outcome,
        "total_paid": s.total_paid,
        "steps_done": list(s.steps_done),
        "contacts": dict(sorted(s.contacts.items())),
    }


def _recorded(engine: Engine, r: _Loan, arg, now: datetime, read_day: int):
    """An update whose handler records only the case's events (promise_to_pay, agree_plan)."""
    result = r.case.apply(arg, now)
    engine._audit(r)
    return result


# the updates a simulated borrower sends, by their input's type -> the handler's side effects (the workflow's _after)
HANDLERS = {
    PaymentIn: Engine._payment,
    PromiseIn: _recorded,
    PlanIn: _recorded,
    HoldIn: Engine._place_hold,
    ReleaseIn: Engine._release_hold,
    OutcomeIn: Engine._outcome,
}


# ------------------------------------------------------------------------------------------ over processes


@dataclass(frozen=True)
class Job:
    policies: dict  # arm -> Policy
    seed: int
    days: int
    start: date
    anchor: datetime
    split: str = "alternate"
    arm: str | None = None  # every loan to this arm (a sweep's variant), else the split
    finals: bool = False  # keep each case's final figures (the agreement test)


def loans_of(job: Job, indices) -> list[SimLoan]:
    return [make_loan(job.seed, i, job.arm or assign_arm(job.seed, i, job.split)) for i in indices]


def _run_chunk(args: tuple[Job, range]) -> ChunkResult:
    job, indices = args
    loans = loans_of(job, indices)
    with calendar.frozen():  # the calendar files do not change during a run: a missing year is looked for once
        out = Engine(job.policies, job.seed, job.days, job.start, job.anchor, job.finals).run(loans)
    out.loans = [LoanRow(i, ln.loan_id, ln.arm, ln.total, ln.start_dpd) for i, ln in zip(indices, loans, strict=True)]
    return out


@contextmanager
def fork_pool(workers: int) -> Iterator:
    """A pool of `workers` forked processes, forked with the parent's objects out of the children's garbage collector.

    A child must never finalize what it inherited: a process that ran Temporal before (the test suite's earlier
    modules, the agreement test's real run) holds objects of the SDK's runtime whose finalizer waits on a thread
    that does not exist in a forked child, and a child whose garbage collector reached one hung for good. So the
    parent's garbage is collected in the parent first, and what it still holds is frozen (gc.freeze: never
    examined by a collection, in the parent or a child, until the pool is done). The children's collections also
    skip the inherited objects, which is less to walk and fewer pages copied."""
    import gc
    import multiprocessing as mp

    gc.collect()
    gc.freeze()
    try:
        with mp.get_context("fork").Pool(workers) as pool:
            yield pool
    finally:
        gc.unfreeze()


def chunks(n: int, size: int) -> list[range]:
    """Loan indices 1..n in runs of `size`. Each simulated loan has its own borrower (and guarantor), so a
    run of loans never splits a borrower; a portfolio whose borrowers hold several loans would group them first."""
    return [range(i, min(n, i + size - 1) + 1) for i in range(1, n + 1, size)]


def run(job: Job, n: int, workers: int | None = None, chunk: int | None = None) -> ChunkResult:
    """Loans 1..n over `workers` processes (default: the core count); merged and sorted. The chunks are a few per
    worker (at most 250 loans), so their size, like the number of workers, must not change any result."""
    workers = workers or os.cpu_count() or 1
    parts = chunks(n, chunk or max(1, min(250, -(-n // (4 * workers)))))
    total = ChunkResult()
    with calendar.frozen():  # for the whole run: the forked workers keep what they learn from chunk to chunk
        if workers == 1 or len(parts) == 1:
            for part in parts:
                total.merge(_run_chunk((job, part)))
        else:
            with fork_pool(workers) as pool:
                for res in pool.imap_unordered(_run_chunk, [(job, p) for p in parts]):
                    total.merge(res)
    total.sort()
    return total
