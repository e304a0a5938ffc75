"""CollectionCase: one durable workflow per delinquent loan (id `loan-<loan_id>`).

Orchestration only. The rules live in `domain.case.Case`; this class feeds it the workflow
clock and the inputs, runs the activities it asks for, and keeps the search attributes and
the Web UI text current. Deterministic: time from workflow.now(), waits through
wait_condition, every side effect through an activity.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from activities.case import CaseActivities
    from activities.contracts import (
        GATEWAY_BACKOFF,
        LOCAL_RETRY_SECONDS,
        WINDOW_CLOSED,
        AuditEvents,
        CaseClosed,
        CaseProjection,
        ChannelRequest,
        GateCheck,
        GateDecision,
        HoldChange,
        LedgerEntry,
        RejectedInput,
        ReversalEntry,
        StepRun,
        StepSend,
        UnappliedPayment,
        WindowClosed,
        base_action,
        case_key,
        for_guarantor,
    )
    from domain import approvals, channels
    from domain import inputs as registered_inputs
    from domain import status as shown
    from domain.actor import Actor
    from domain.case import CLOSED_FIELD, Case
    from domain.dates import dpd_start, utc_text
    from domain.errors import InvalidInput, field_and_reason
    from domain.inputs import payments
    from domain.legal import LEGAL_RULES
    from domain.models import (
        ApprovalDecisionIn,
        ApprovalKind,
        CaseInput,
        CaseStatus,
        CloseIn,
        ContactResult,
        GateRecord,
        HoldIn,
        OutcomeIn,
        PaymentIn,
        PaymentResult,
        PlanIn,
        PlanResult,
        PromiseIn,
        ReleaseIn,
        ReversalIn,
        SuspensionIn,
        TaskInfo,
        TaskOpen,
        UpdateResult,
        WriteOffConfirmIn,
    )
    from domain.money import format_amount, parse_amount, to_major
    from domain.policy import Step
    from domain.policy import shared as shared_policy
    from encryption.codec import UNDECRYPTABLE
    from infra import metrics
    from infra.sender import sender

from workflows import search
from workflows import versioning as v
from workflows.versioning import Versions

TASK_QUEUE = "collections"

CHANNEL_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
    non_retryable_error_types=["InvalidRequest"],
)
# Every activity of a case runs as a local activity: in the worker that runs the workflow task,
# recorded as one marker event, with no task queue round trip. A case that walks the whole ladder
# keeps a short history, and a step's sends take one workflow task. Each one is idempotent
# (idempotency keys, unique rows), so the re-execution after a worker crash changes nothing.
# Backoffs longer than this wait on a durable timer instead of in the worker.
LOCAL_RETRY_THRESHOLD = timedelta(seconds=LOCAL_RETRY_SECONDS)
# A send's attempts within one local activity (0.5 s, then 1 s apart); after them the workflow waits on its own
# durable timer (SEND_BACKOFF, doubling up to SEND_BACKOFF_MAX) and schedules the send again with its clock, so
# that every attempt, however late, re-checks the contact window (versioning.SEND_RECHECK).
SEND_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    backoff_coefficient=2.0,
    maximum_interval=LOCAL_RETRY_THRESHOLD,
    maximum_attempts=3,
    non_retryable_error_types=["InvalidRequest"],
)
SEND_BACKOFF = timedelta(seconds=15)
SEND_BACKOFF_MAX = timedelta(minutes=10)
T = TypeVar("T")
LOCAL_TIMEOUT = timedelta(seconds=30)  # an attempt of one of the case's local activities
RECORD_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))


def _reject(check: Callable[[Any, datetime], Any], arg: Any) -> None:
    """Run a domain check in a validator; bad input becomes a rejection that names the field."""
    try:
        check(arg, workflow.now())
    except InvalidInput as exc:
        raise ApplicationError(
            str(exc), {"field": exc.field, "reason": exc.reason}, type="InvalidInput", non_retryable=True
        ) from None


class SendDeferred(Exception):
    """A send found the contact window closed when its attempt came: nothing went out. Carries the refusal,
    which the step takes as the gate's (it waits until `retry_at` and asks the gate again)."""

    def __init__(self, record: GateRecord) -> None:
        super().__init__(record.reason)
        self.record = record


def _tag(actor: Actor | None) -> str | None:
    return None if actor is None else f"{actor.operator_id}:{actor.role}"


@workflow.defn(name="CollectionCase")
class CollectionCase:
    @workflow.init
    def __init__(self, inp: CaseInput) -> None:
        # the worker's one copy of this policy (same content), in place: the SDK keeps the decoded input for the run
        object.__setattr__(inp, "policy", shared_policy(inp.policy))
        self.inp = inp
        # The case opens at the run's start time, not at workflow.now(): if the worker dies during the first
        # workflow task (whose local activities already sent messages), the task runs again later, and the
        # idempotency keys, built from the opening time, must come out the same.
        # which rules this run follows, decided here, before any activity (workflows/versioning.py): a case whose
        # history began before a change keeps the rule it ran with, so that it replays as it ran
        self.versions = Versions(inp)
        self.case = Case(inp, workflow.info().workflow_start_time, self.versions.regime())
        self.case.write_off_closes = lambda: not self.versions.mid_run(v.WRITE_OFF_PROPOSAL)
        self.case_key = case_key(inp.workflow_id, self.case.state.opened_at)
        # a case closed as paid whose payment was reversed: this run reopens it (app: reverse a payment)
        self._reopened: str | None = None
        if inp.reopen is not None and self.case.state.closed:
            payments.reopen(self.case, inp.reopen, workflow.info().workflow_start_time)
            self._reopened = inp.reopen.reversal.payment_id
        self._changed = False
        self._hold_syncs = 0  # hold changes on their way to the database, which the gate reads
        self._published: dict[str, Any] = {}
        self._projected: CaseProjection | None = None
        self._rejections = 0  # signals refused in this run (a replay counts them again, as they replay)

    # ------------------------------------------------------------------ main loop

    @workflow.run
    async def run(self, inp: CaseInput) -> CaseStatus:
        case = self.case
        if self._reopened:  # the reversal that reopened the case goes to the ledger first
            await self._ledger_reversal(self._reopened, reopened=True)
        while True:
            now = workflow.now()
            if years := case.calendar_years_to_ask(now):  # the calendar years this run counts with, recorded
                await self._record_calendars(years, now)
                continue
            move = case.next_move(now)  # the loop's decision is the domain's (Case.next_move), shared with the simulator
            self._publish()
            if self.versions.projection and not case.state.closed:
                await self._project()
            if case.state.task_ends:  # agent tasks the case ended (outcome, timeout, closure) go to the database
                await self._end_tasks()
            if move.closes:
                break
            if self._continue_as_new_due():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(self.inp.model_copy(update={"state": case.state}))
            if move.runs_step:
                assert move.step is not None  # a step move names its step
                await self._run_step(move.step)
                continue
            if move.requeues:
                await self._requeue_task()
                continue
            await self._sleep_until(move.until, now)
        await workflow.wait_condition(workflow.all_handlers_finished)
        metrics.count(
            workflow.metric_meter(), "collections_cases_closed", "Cases closed, by outcome", outcome=case.state.outcome or "none"
        )  # the loop ends closed: an outcome is set
        # undo what a closed case must (credit report correction, agency recall) while recording the closure
        await asyncio.gather(
            *(self._act("closing", case.state.stage, action) for action in case.closing_actions()), self._record_closed()
        )
        return shown.of(case, workflow.now())

    async def _local(self, activity: Callable[..., Awaitable[T]], arg: Any, *, summary: str) -> T:
        """One of the case's own local activities (activities/case.py CaseActivities), by method: 30 s an attempt,
        tried again until it answers (RECORD_RETRY); its name in history is its `activity.defn`'s (domain/channels.py),
        so a history recorded when it was called by name replays the same."""
        return await workflow.execute_local_activity_method(
            activity, arg, start_to_close_timeout=LOCAL_TIMEOUT, retry_policy=RECORD_RETRY, summary=summary
        )

    async def _record_calendars(self, years: list[int], now: datetime) -> None:
        """Ask which of `years` are in force (a local activity: its answer is in history, so a replay counts with the
        same days whatever calendars the worker holds by then) and keep them in the case's state."""
        got = await self._local(
            CaseActivities.calendar_years,
            years,
            summary=f"calendar years {', '.join(map(str, years))}",
        )
        self.case.record_calendars(years, got, now)

    def _continue_as_new_due(self) -> bool:
        info = workflow.info()
        limit = self.inp.history_limit
        return info.is_continue_as_new_suggested() or (limit is not None and info.get_current_history_length() > limit)

    async def _sleep_until(self, wake: datetime | None, now: datetime) -> None:
        """Sleep until `wake` (at least a second ahead: Case.next_move), or until an update changes the case,
        or until a waiting proposal expires."""
        self._changed = False
        pending = self.case.state.pending
        if pending is not None and (wake is None or pending.expires_at < wake):
            wake = max(pending.expires_at, now + timedelta(seconds=1))
        timeout = None if wake is None else wake - now
        try:
            await workflow.wait_condition(
                lambda: self._changed, timeout=timeout, timeout_summary=shown.next_action(self.case).what[:200]
            )
        except TimeoutError:
            pass
        await self._expire_proposal()

    # ------------------------------------------------------------------ four-eyes

    def _stamp(self, actor: Actor | None, since: int) -> None:
        """The actor (operator id and role, never a name) on the events an update made; a signal's sender
        ("system:<identity>") on those a signal made."""
        tag = _tag(actor) or SIGNAL_ACTOR.get()
        if tag is None:
            return
        for e in self.case.state.events:
            if e.seq > since and e.actor is None:
                e.actor = tag

    def _approval_needed(self, arg: Any) -> ApprovalKind | None:
        """The approval this input needs by its content (its four-eyes rule, domain/inputs): a large waiver, a long
        deferral, a closing hold, ..."""
        return registered_inputs.approval_needed(arg, self.case.policy, self.case.clock.today(workflow.now()))

    def _proposal_kind(self, arg: Any) -> ApprovalKind | None:
        """The approval this input waits for, if it came from an operator (the application layer sets the actor)."""
        if getattr(arg, "actor", None) is None:
            return None
        kind = self._approval_needed(arg)
        if kind is None or not self.versions.mid_run(v.FOUR_EYES):
            return None
        return kind

    def _check_no_proposal_waiting(self, arg: Any) -> None:
        """Validator part: a second proposal while one waits is refused before it touches history."""
        s = self.case.state
        if s.pending is not None and getattr(arg, "actor", None) is not None and self._approval_needed(arg) is not None:
            _reject(lambda a, now: approvals.propose("plan", a, a.actor, now, self.case.policy, s.pending), arg)

    async def _propose(self, kind: ApprovalKind, arg: Any) -> UpdateResult:
        now, s = workflow.now(), self.case.state
        before = s.event_seq
        try:
            p = approvals.propose(kind, arg, arg.actor, now, self.case.policy, s.pending)
        except InvalidInput as exc:
            raise ApplicationError(
                str(exc), {"field": exc.field, "reason": exc.reason}, type="InvalidInput", non_retryable=True
            ) from None
        s.pending = p
        self.case.event(
            now, "approval_proposed", f"{p.summary}: waits for a second person until {p.expires_at:%Y-%m-%d %H:%M} UTC"
        )
        self._stamp(arg.actor, before)
        self._touch(force=True)
        await self._record_events()
        return UpdateResult(
            accepted=False,
            status=self.case.status_name(),
            message=f"proposed: {p.summary}; nothing takes effect until another operator with the "
            f"right role approves it (before {p.expires_at:%Y-%m-%d %H:%M} UTC)",
        )

    async def _expire_proposal(self) -> None:
        s, now = self.case.state, workflow.now()
        p = s.pending
        if p is None or p.expires_at > now:
            return
        s.pending = None
        self.case.event(
            now,
            "approval_expired",
            f"{p.summary} (proposed by {p.maker.operator_id}): nobody approved it in time; dropped, nothing changed",
        )
        self._touch(force=True)
        await self._record_events()

    def _closure_waiting(self) -> bool:
        p = self.case.state.pending
        return p is not None and p.kind == "closure"

    async def _hold_contact_for_closure(self) -> bool:
        """A proposed closure for bankruptcy or death stops contact at once: no step runs until it is decided
        or expires. True when it waited."""
        waited = False
        while self._closure_waiting() and not self.case.state.closed:
            waited = True
            pending = self.case.state.pending
            assert pending is not None  # _closure_waiting() holds
            wait = max(pending.expires_at - workflow.now(), timedelta(seconds=1))
            try:
                await workflow.wait_condition(
                    lambda: not self._closure_waiting(),
                    timeout=wait,
                    timeout_summary="closure proposed: contact stopped until decided",
                )
            except TimeoutError:
                pass
            await self._expire_proposal()
        return waited

    @workflow.update
    async def decide_approval(self, d: ApprovalDecisionIn) -> UpdateResult:
        now, s = workflow.now(), self.case.state
        p = s.pending
        # the validator (approvals.check_decision) has refused an update with nothing pending or no actor
        assert p is not None and d.actor is not None
        before = s.event_seq
        s.pending = None
        note = f": {d.note}" if d.note else ""
        if d.decision == "reject":
            self.case.event(now, "approval_rejected", f"{p.summary} (proposed by {p.maker.operator_id}) rejected{note}")
            self._stamp(d.actor, before)
            self._touch(force=True)
            await self._record_events()
            return UpdateResult(message=f"rejected: {p.summary}; nothing changed", status=self.case.status_name())
        self.case.event(now, "approval_approved", f"{p.summary} (proposed by {p.maker.operator_id}) approved{note}")
        result = await self._take(approvals.approved_input(p, d.actor), d.actor, before)
        return UpdateResult(
            message=f"approved: {p.summary} (proposed by {p.maker.operator_id}); {result.message}",
            status=self.case.status_name(),
            outcome=result.outcome,
        )

    @decide_approval.validator
    def _validate_decision(self, d: ApprovalDecisionIn) -> None:
        s = self.case.state
        _reject(lambda a, now: approvals.check_decision(s.pending, a.actor, now), d)
        if d.decision == "approve":
            p, actor = s.pending, d.actor
            assert p is not None and actor is not None  # check_decision above refused the update otherwise
            _reject(self.case.check, approvals.approved_input(p, actor))

    async def _run_step(self, idx: int) -> None:
        """Run the step's actions that the legal clocks and the contact gate allow now."""
        if await self._hold_contact_for_closure() and self.case.state.closed:
            return
        await workflow.wait_condition(lambda: self._hold_syncs == 0)  # the gate must see the holds as they are
        case, now = self.case, workflow.now()
        if case.state.deferred_until is None:
            metrics.count(
                workflow.metric_meter(), "collections_steps", "Ladder steps started, by stage", stage=case.steps[idx].stage
            )
        step = case.begin_step(idx, now)
        self._details()  # search attributes follow once the step is done: one upsert per step
        plan = case.plan_step(idx, now)  # the actions not done yet: legal clocks' refusals, the rest to the gate
        nxt, refusals = plan.next_step, list(plan.refusals)
        outs: list[ContactResult | GateRecord] = []
        one_go = bool(plan.gated) and self.versions.step_sends
        if one_go:  # the gate and the sends' first attempts in one local activity (versioning.STEP_SENDS)
            outs = await self._gate_and_send(step, plan.gated, refusals, nxt)
        allowed = await self._gate(step.key, plan.gated, refusals) if plan.gated and not one_go else []

        async def send(action: str) -> ContactResult | GateRecord:
            try:
                return await self._act(step.key, step.stage, action, letter=step.letter, next_step=nxt)
            except SendDeferred as deferred:  # the window closed before it went out: deferred like a gate refusal
                return deferred.record

        for action in plan.tasks:  # agent mode: a task for the floor instead of a send (domain/tasks.py)
            info = await self._task(CaseActivities.open_task, self._task_request(step.key, action), f"{step.key}: {action} task")
            case.task_opened(idx, info, workflow.now())
        outs += await asyncio.gather(*(send(action) for action in allowed))
        results = [o for o in outs if isinstance(o, ContactResult)]
        refusals += [o for o in outs if isinstance(o, GateRecord)]
        case.settle_step(idx, results, refusals, workflow.now())
        closure = case.borrower_closure(refusals)
        if closure is not None and not case.state.closed and self.versions.mid_run(v.BORROWER_CLOSURE):
            case.close_for_borrower(closure, workflow.now())
        if plan.tasks or any(r.rule in LEGAL_RULES for r in refusals):
            # a legal clock's refusal, or a task opened for the floor, goes to the audit trail now, not with the next send
            await self._record_events()

    # ------------------------------------------------------------------ agent mode (domain/tasks.py)

    def _task_request(self, step_key: str, action: str, **extra: Any) -> TaskOpen:
        case, now = self.case, workflow.now()
        return TaskOpen.model_validate(
            dict(
                workflow_id=self.inp.workflow_id,
                case_key=self.case_key,
                loan_id=self.inp.loan_id,
                borrower_id=self.inp.borrower_id,
                step=step_key,
                action=action,
                now=now,
                dpd=case.dpd(now),
                outstanding_minor=case.state.balances.total,
                segment=self.inp.segment,
                rules=case.policy.contact,
                day_seconds=case.policy.day_seconds,
                agent=case.policy.agent,
                broken_promises=sum(1 for e in case.state.events if e.kind == "promise_broken"),
                legal_days_left=shown.legal_days_left(case, now),
                **extra,
            )
        )

    async def _task(self, activity: Callable[..., Awaitable[TaskInfo]], req: TaskOpen, summary: str) -> TaskInfo:
        return await self._local(activity, req, summary=summary)

    async def _requeue_task(self) -> None:
        a = self.case.state.awaiting
        assert a is not None and a.task_id is not None  # Case.requeue_due said so
        req = self._task_request(a.step, a.kind, task_id=a.task_id, requeues=a.requeues + 1)
        info = await self._task(CaseActivities.requeue_task, req, f"{a.step}: {a.kind} task re-queued")
        self.case.task_requeued(info, workflow.now())
        await self._record_events()

    async def _end_tasks(self) -> None:
        ends, self.case.state.task_ends = self.case.state.task_ends, []
        await self._local(
            CaseActivities.end_tasks,
            ends,
            summary=f"{len(ends)} task(s) ended",
        )
        await self._record_events()  # why they ended (an outcome, the wait's end, the closure) with them

    def _audited(self, events: list) -> None:
        if events:
            self.case.audited(events[-1].seq)

    def _gate_check(self, step_key: str, actions: list[str], now: datetime) -> GateCheck:
        return GateCheck(
            workflow_id=self.inp.workflow_id,
            case_key=self.case_key,
            loan_id=self.inp.loan_id,
            borrower_id=self.inp.borrower_id,
            guarantor_id=self.inp.guarantor_id,
            step=step_key,
            actions=[channels.action_name(a) for a in actions],
            now=now,
            rules=self.case.policy.contact,
            day_seconds=self.case.policy.day_seconds,
        )

    async def _gate(self, step_key: str, actions: list[str], refusals: list) -> list[str]:
        """Ask the contact gate (a local activity: one marker in history) about `actions`; return the allowed ones."""
        now = workflow.now()
        decisions = await self._local(
            CaseActivities.check_contacts,
            self._gate_check(step_key, actions, now),
            summary=f"{step_key}: contact gate",
        )
        return self._take_decisions(step_key, decisions, now, refusals)

    def _take_decisions(self, step_key: str, decisions: list[GateDecision], now: datetime, refusals: list) -> list[str]:
        """The gate's decisions into the case (allowed) and `refusals` (refused); the allowed actions."""
        allowed: list[str] = []
        for d in decisions:
            if d.allowed:
                allowed.append(d.action)
                self.case.decide(GateRecord(at=now, step=step_key, action=d.action, allowed=True, rule=d.rule, reason=d.reason))
            else:
                refusals.append(
                    GateRecord(
                        at=now,
                        step=step_key,
                        action=d.action,
                        allowed=False,
                        rule=d.rule,
                        reason=d.reason,
                        retry_at=d.retry_at,
                        final=d.final,
                    )
                )
        return allowed

    async def _gate_and_send(
        self, step: Step, actions: list[str], refusals: list, next_step: Step | None
    ) -> list[ContactResult | GateRecord]:
        """The contact gate and the first attempt at every send it allows, in one local activity (one marker in
        history, two database transactions: versioning.STEP_SENDS). A send the gateway could not take is sent again
        on its own (`_act`), re-checking the window at every attempt, as a send always was."""
        case, now = self.case, workflow.now()
        events = case.unaudited()
        req = self._channel_request(step.key, step.stage, actions[0], step.letter, next_step, now, events)
        # the case row goes with the step's outcomes: the loop's next projection finds it written when nothing else
        # changed, and costs no local activity of its own
        projection = self._projection_row() if self.versions.projection and not case.state.closed else None
        out = await self._local(
            CaseActivities.run_step,
            StepRun(
                check=self._gate_check(step.key, actions, now),
                request=req.model_copy(update={"now": now, "rules": case.policy.contact}),
                sends=[StepSend(action=channels.action_name(a), letter=_letter(a, step.letter)) for a in actions],
                projection=projection,
            ),
            summary=f"{step.key}: contact gate and sends",
        )
        self._audited(events)
        if projection is not None:
            self._projected = projection
        self._take_decisions(step.key, out.decisions, now, refusals)
        outs: list[ContactResult | GateRecord] = []
        again = []
        for s in out.sent:
            if s.result is not None:
                outs.append(s.result)
            elif s.deferred is not None:  # the window closed before it went out: deferred like a gate refusal
                d = s.deferred
                outs.append(
                    GateRecord(
                        at=workflow.now(),
                        step=step.key,
                        action=s.action,
                        allowed=False,
                        rule=d.rule,
                        reason=d.reason,
                        retry_at=d.retry_at,
                    )
                )
            else:
                again.append(s)

        async def send_again(action: str, retry_after: float) -> ContactResult | GateRecord:
            if retry_after > LOCAL_RETRY_SECONDS:  # the gateway asked for a wait longer than a local retry's
                await workflow.sleep(timedelta(seconds=retry_after), summary=f"{step.key}: {action}: gateway asked to wait")
            try:
                return await self._act(step.key, step.stage, action, letter=step.letter, next_step=next_step)
            except SendDeferred as deferred:
                return deferred.record

        outs += await asyncio.gather(*(send_again(s.action, s.retry_after or 0.0) for s in again))
        return outs

    def _channel_request(
        self,
        step_key: str,
        stage: str,
        action: str,
        letter: str | None,
        next_step: Step | None,
        now: datetime,
        events: list,
    ) -> ChannelRequest:
        case, b = self.case, self.case.state.balances
        return ChannelRequest(
            workflow_id=self.inp.workflow_id,
            case_key=self.case_key,
            loan_id=self.inp.loan_id,
            borrower_id=self.inp.borrower_id,
            guarantor_id=self.inp.guarantor_id,
            step=step_key,
            action=channels.action_name(action),
            idempotency_key=f"{self.case_key}:{step_key}:{action}",
            policy=case.policy.name,
            stage=stage,
            dpd=case.dpd(now),
            currency=self.inp.currency,
            outstanding_minor={"principal": b.principal, "interest": b.interest, "fees": b.fees, "total": b.total},
            due_date=self.inp.due_date,
            letter=_letter(action, letter),
            next_step=(next_step.title or next_step.key) if next_step else None,
            next_dpd=next_step.dpd if next_step else None,
            events=events,
            notice_days=case.policy.legal.bureau_notice_days,
            reply_keywords=case.policy.replies.promise_keywords,
            links=case.policy.selfservice.links,
            time_barred=case.regime.barred_stays and case.limitation_over(now) is not None,
        )

    async def _act(
        self, step_key: str, stage: str, action: str, letter: str | None = None, next_step: Step | None = None
    ) -> ContactResult:
        case, now = self.case, workflow.now()
        letter = _letter(action, letter)
        events = self.case.unaudited()
        req = self._channel_request(step_key, stage, action, letter, next_step, now, events)
        summary = (
            f"{step_key}: {channels.channel_of(action)}"
            + (f" ({letter})" if letter else "")
            + (" to the guarantor" if for_guarantor(action) else "")
        )
        if not self.versions.mid_run(v.SEND_RECHECK):  # a case begun before: its retries as they were recorded
            result = await workflow.execute_local_activity(
                channels.activity_of(action),
                req,
                result_type=ContactResult,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=CHANNEL_RETRY,
                local_retry_threshold=LOCAL_RETRY_THRESHOLD,
                summary=summary,
            )
            self._audited(events)
            return result
        result = await self._send(action, req.model_copy(update={"now": now, "rules": case.policy.contact}), summary)
        self._audited(events)
        return result

    async def _send(self, action: str, req: ChannelRequest, summary: str) -> ContactResult:
        """Run a send; while the gateway is down, wait on durable timers and send again with the case's clock.
        Every attempt re-checks the contact window in the activity; a closed one raises SendDeferred."""
        wait = SEND_BACKOFF
        while True:
            try:
                return await workflow.execute_local_activity(
                    channels.activity_of(action),
                    req,
                    result_type=ContactResult,
                    start_to_close_timeout=timedelta(seconds=30),
                    retry_policy=SEND_RETRY,
                    local_retry_threshold=LOCAL_RETRY_THRESHOLD,
                    summary=summary,
                )
            except FailureError as exc:  # a local activity's failure comes as the error itself or wrapped
                cause = exc.cause if isinstance(exc, ActivityError) else exc
                if isinstance(cause, ApplicationError) and cause.type == WINDOW_CLOSED:
                    d = WindowClosed.model_validate(cause.details[0])
                    raise SendDeferred(
                        GateRecord(
                            at=workflow.now(),
                            step=req.step,
                            action=action,
                            allowed=False,
                            rule=d.rule,
                            reason=d.reason,
                            retry_at=d.retry_at,
                        )
                    ) from None
                delay = wait
                if isinstance(cause, ApplicationError) and cause.type == GATEWAY_BACKOFF:
                    delay = max(wait, timedelta(seconds=float((cause.details or [{}])[0].get("retry_after") or 0)))
                elif isinstance(cause, ApplicationError) and cause.type in (SEND_RETRY.non_retryable_error_types or ()):
                    raise  # the request itself is wrong: as before, not retried
            await workflow.sleep(delay, summary=f"{summary}: gateway unavailable, sends again")
            wait = min(wait * 2, SEND_BACKOFF_MAX)
            req = req.model_copy(update={"now": workflow.now()})

    async def _record_events(self) -> None:
        """Write the case's new events (an input was just applied) to the audit trail."""
        events = self.case.unaudited()
        if not events:
            return
        await self._local(
            CaseActivities.record_events,
            AuditEvents(workflow_id=self.inp.workflow_id, case_key=self.case_key, loan_id=self.inp.loan_id, events=events),
            summary="audit trail",
        )
        self._audited(events)

    async def _project(self) -> None:
        """The case row follows the case (versioning.PROJECTION): written when its stage, status or balances
        changed, at the top of the loop, so within the workflow task that changed them."""
        row = self._projection_row()
        if row == self._projected:
            return
        await self._local(
            CaseActivities.project_case,
            row,
            summary=f"case row: {row.stage}, {row.status}",
        )
        self._projected = row

    def _projection_row(self) -> CaseProjection:
        case, s = self.case, self.case.state
        return CaseProjection(
            workflow_id=self.inp.workflow_id,
            loan_id=self.inp.loan_id,
            currency=self.inp.currency,
            stage=s.stage,
            status="paused" if case.status_name() == "paused" else "active",
            outstanding_minor=s.balances.total,
            total_paid_minor=s.total_paid,
        )

    async def _record_closed(self) -> None:
        s = self.case.state
        assert s.outcome is not None and s.closed_at is not None  # recorded once the case has closed
        events = self.case.unaudited()
        await self._local(
            CaseActivities.record_case_closed,
            CaseClosed(
                workflow_id=self.inp.workflow_id,
                case_key=self.case_key,
                loan_id=self.inp.loan_id,
                outcome=s.outcome,
                outstanding_minor=s.balances.total,
                total_paid_minor=s.total_paid,
                currency=self.inp.currency,
                closed_at=s.closed_at,
                events=events,
            ),
            summary=f"closed: {s.outcome}",
        )

    # ------------------------------------------------------------------ UI: search attributes and details

    def _publish(self, force: bool = False) -> None:
        case, s = self.case, self.case.state
        nxt = shown.next_action(case)
        values: dict[Any, Any] = {
            search.STAGE: s.stage,
            search.STATUS: case.status_name(),
            search.ON_HOLD: bool(s.holds),
            search.OUTSTANDING: to_major(s.balances.total, self.inp.currency),
            search.DELINQUENT_SINCE: dpd_start(self.inp.due_date, self.inp.timezone, 1),
            # never unset (an unset Datetime attribute breaks describe() on some servers): a closed case shows
            # when it closed
            search.NEXT_ACTION_AT: nxt.at or s.closed_at or workflow.now(),
            search.POLICY: case.policy.name,
            search.SEGMENT: self.inp.segment,
        }
        updates = []
        for key, value in values.items():
            if self._published.get(key.name, ...) != value:
                self._published[key.name] = value
                updates.append(key.value_unset() if value is None else key.value_set(value))
        # The attributes added later ride along with an upsert the case makes anyway (so a running case emits no
        # command its history lacks), or go out at once from the updates that did not exist before them (force).
        if updates or force:
            for key, value in self._later_attributes().items():
                if self._published.get(key.name, None) != value:
                    self._published[key.name] = value
                    updates.append(key.value_unset() if value is None else key.value_set(value))
        if updates:
            workflow.upsert_search_attributes(updates)
        self._details()

    def _later_attributes(self) -> dict[Any, Any]:
        case, s = self.case, self.case.state
        outcome = s.outcome if s.closed else ("written_off" if s.write_off == "confirmed" else None)
        values: dict[Any, Any] = {
            search.CASE_OUTCOME: outcome,
            search.RISK_CLASS: shown.risk_class(case, workflow.now()),
            search.WRITE_OFF: s.write_off,
        }
        # only a case that has had a proposal sets it (so no running case upserts an attribute it never had)
        if s.pending is not None or search.PENDING_APPROVAL.name in self._published:
            values[search.PENDING_APPROVAL] = s.pending is not None
        return values

    def _details(self) -> None:
        """The Web UI's current details (markdown); costs no history event."""
        case, s = self.case, self.case.state
        nxt = shown.next_action(case)
        b, cur = s.balances, self.inp.currency
        now = workflow.now()
        workflow.set_current_details(
            f"**{case.status_name()}** at stage **{s.stage}**"
            + (f", outcome **{s.outcome}**" if s.outcome else "")
            + f" · DPD {case.dpd(now)}\n\n"
            f"Outstanding {cur} {format_amount(b.total, cur)} (principal {format_amount(b.principal, cur)},"
            f" interest {format_amount(b.interest, cur)}, fees {format_amount(b.fees, cur)})"
            f" · paid {format_amount(s.total_paid, cur)}\n\n"
            f"Next: {nxt.what}"
            + (f" at {utc_text(nxt.at)} UTC" if nxt.at else "")
            + (f"\n\nHolds: {', '.join(h.kind for h in s.holds)}" if s.holds else "")
        )

    def _touch(self, force: bool = False) -> None:
        self._changed = True
        self._publish(force)

    # ------------------------------------------------------------------ queries and updates

    # One path for every input: the update's handler and validator below, the approved proposal, and the signal
    # all come here, and the rule is looked up by the input's type (domain/inputs).

    def _validate(self, arg: BaseModel) -> None:
        """Every update's validator: the case's check (bad input becomes a rejection naming the field, before it
        touches history), and for an input that may need a second person, no proposal waiting."""
        _reject(self.case.check, arg)
        if registered_inputs.of(arg).four_eyes:
            self._check_no_proposal_waiting(arg)

    async def _handle(self, arg: BaseModel) -> Any:
        """Every update's handler: proposed for approval when four-eyes asks for it, else taken now."""
        kind = self._proposal_kind(arg) if registered_inputs.of(arg).four_eyes else None
        if kind is not None:
            return await self._propose(kind, arg)
        return await self._take(arg, getattr(arg, "actor", None), self.case.state.event_seq)

    async def _take(self, arg: BaseModel, actor: Actor | None, before: int) -> Any:
        """An input applied to the case now: its events (those since `before`) stamped with the actor, the search
        attributes brought up to date (at once for one that closes or reopens a case), then what it asks of the
        world: the ledger, the holds the gate reads, the audit trail."""
        now = workflow.now()
        paid_before = set(self.case.state.payments)
        result = self.case.apply(arg, now)
        self._stamp(actor, before)
        self._touch(force=registered_inputs.of(arg).at_once)
        await AFTER[type(arg)](self, arg, paid_before)
        return result

    async def _after_change(self, _arg: Any, paid_before: set[str]) -> None:
        await self._record_events()

    async def _after_close(self, _arg: Any, paid_before: set[str]) -> None:
        """Nothing yet: the run loop sees the case closed and records the closure."""

    async def _after_payment(self, _arg: Any, paid_before: set[str]) -> None:
        """Every payment the input applied (a payment not seen before; an enforcement result's), to the ledger."""
        for pid in sorted(set(self.case.state.payments) - paid_before):
            await self._ledger(pid)

    async def _after_outcome(self, o: OutcomeIn, paid_before: set[str]) -> None:
        await self._after_payment(o, paid_before)  # an enforcement result is a payment
        await self._record_events()

    async def _after_reversal(self, r: ReversalIn, paid_before: set[str]) -> None:
        await self._ledger_reversal(r.payment_id)

    async def _after_hold(self, h: HoldIn, paid_before: set[str]) -> None:
        hold = next((x for x in self.case.state.holds if x.kind == h.kind), None)
        if hold is None:  # a closing hold closed the case at once
            await self._hold_change(h.kind, workflow.now(), reference=h.reference)
            return
        await self._hold_change(h.kind, workflow.now(), until=hold.until, reference=h.reference)
        if h.kind == "complaint" and self.case.recall_needed():  # a complaint recalls any agency placement
            recall = await self._act("complaint", self.case.state.stage, "agency_recall")
            self.case.state.agency_recalled = recall.status == "delivered"

    async def _after_release(self, r: ReleaseIn, paid_before: set[str]) -> None:
        await self._hold_change(r.kind, workflow.now(), released=True, released_by=r.reviewer)

    async def _ledger(self, payment_id: str) -> None:
        """Write an applied payment to the ledger (exactly once: the payment id is unique there)."""
        case, rec = self.case, self.case.state.payments[payment_id]
        events = self.case.unaudited()
        await self._local(
            CaseActivities.record_payment,
            LedgerEntry(
                workflow_id=self.inp.workflow_id,
                case_key=self.case_key,
                loan_id=self.inp.loan_id,
                payment_id=payment_id,
                amount_minor=rec.amount,
                currency=self.inp.currency,
                paid_at=rec.at,
                allocation_minor=rec.allocation,
                outstanding_minor=case.state.balances.total,
                total_paid_minor=case.state.total_paid,
                events=events,
            ),
            summary=f"ledger: payment {payment_id}",
        )
        self._audited(events)

    async def _hold_change(
        self,
        kind: str,
        at: datetime,
        until: datetime | None = None,
        reference: str = "",
        released_by: str | None = None,
        released: bool = False,
    ) -> None:
        """Holds live in the database too: the contact gate applies them to every loan of the borrower."""
        events = self.case.unaudited()
        self._hold_syncs += 1
        try:
            await self._local(
                CaseActivities.record_hold,
                HoldChange(
                    workflow_id=self.inp.workflow_id,
                    case_key=self.case_key,
                    loan_id=self.inp.loan_id,
                    borrower_id=self.inp.borrower_id,
                    kind=kind,
                    at=at,
                    until=until,
                    reference=reference,
                    released=released,
                    released_by=released_by,
                    events=events,
                ),
                summary=f"{'release' if released else 'place'} {kind} hold",
            )
        finally:
            self._hold_syncs -= 1
        self._audited(events)

    @workflow.query
    def status(self) -> CaseStatus:
        return shown.of(self.case, workflow.now()).model_copy(update={"pending_approval": self.case.state.pending})

    # The updates: each its model's one-line handler and validator over the path above (docs/workflow-contract.md).

    @workflow.update
    async def record_payment(self, p: PaymentIn) -> PaymentResult:
        return await self._handle(p)

    @record_payment.validator
    def _validate_payment(self, p: PaymentIn) -> None:
        self._validate(p)

    @workflow.update
    async def reverse_payment(self, r: ReversalIn) -> UpdateResult:
        return await self._handle(r)

    @reverse_payment.validator
    def _validate_reversal(self, r: ReversalIn) -> None:
        self._validate(r)

    @workflow.update
    async def promise_to_pay(self, p: PromiseIn) -> UpdateResult:
        return await self._handle(p)

    @promise_to_pay.validator
    def _validate_promise(self, p: PromiseIn) -> None:
        self._validate(p)

    @workflow.update
    async def agree_plan(self, p: PlanIn) -> PlanResult:
        result = await self._handle(p)
        if isinstance(result, PlanResult):
            return result
        # proposed: a plan waiting for approval does not pause the ladder, and has no schedule yet
        return PlanResult(**result.model_dump(), total="", waived="", schedule=[])

    @agree_plan.validator
    def _validate_plan(self, p: PlanIn) -> None:
        self._validate(p)

    @workflow.update
    async def place_hold(self, h: HoldIn) -> UpdateResult:
        return await self._handle(h)  # a proposed closure stops contact at once (_hold_contact_for_closure)

    @place_hold.validator
    def _validate_hold(self, h: HoldIn) -> None:
        self._validate(h)

    @workflow.update
    async def release_hold(self, r: ReleaseIn) -> UpdateResult:
        return await self._handle(r)

    @release_hold.validator
    def _validate_release(self, r: ReleaseIn) -> None:
        self._validate(r)

    @workflow.update
    async def record_outcome(self, o: OutcomeIn) -> UpdateResult:
        return await self._handle(o)

    @record_outcome.validator
    def _validate_outcome(self, o: OutcomeIn) -> None:
        self._validate(o)

    @workflow.update
    async def record_suspension(self, x: SuspensionIn) -> UpdateResult:
        return await self._handle(x)

    @record_suspension.validator
    def _validate_suspension(self, x: SuspensionIn) -> None:
        self._validate(x)

    @workflow.update
    async def confirm_write_off(self, c: WriteOffConfirmIn) -> UpdateResult:
        return await self._handle(c)

    @confirm_write_off.validator
    def _validate_confirm_write_off(self, c: WriteOffConfirmIn) -> None:
        self._validate(c)

    @workflow.update
    async def close_case(self, c: CloseIn) -> UpdateResult:
        return await self._handle(c)

    @close_case.validator
    def _validate_close(self, c: CloseIn) -> None:
        self._validate(c)

    async def _ledger_reversal(self, payment_id: str, reopened: bool = False) -> None:
        """Write a payment reversal to the ledger (exactly once: the payment id is its key there)."""
        case, rec = self.case, self.case.state.payments[payment_id]
        assert rec.reversed_at is not None  # written once the reversal was applied
        events = case.unaudited()
        await self._local(
            CaseActivities.record_reversal,
            ReversalEntry(
                workflow_id=self.inp.workflow_id,
                run_id=workflow.info().run_id,
                case_key=self.case_key,
                loan_id=self.inp.loan_id,
                payment_id=payment_id,
                amount_minor=rec.amount,
                currency=self.inp.currency,
                reason=rec.reversal_reason,
                reversed_at=rec.reversed_at,
                outstanding_minor=case.state.balances.total,
                total_paid_minor=case.state.total_paid,
                reopened=reopened,
                events=events,
            ),
            summary=f"ledger: reversal of {payment_id}",
        )
        self._audited(events)

    # ------------------------------------------------------------------ signals (docs/workflow-contract.md)

    @workflow.signal(
        dynamic=True,
        description="An input from a bank's system, by name (record_payment, agree_plan, ...; docs/workflow-contract.md), "
        "with the update's JSON input. One the case refuses or cannot read is recorded as input_rejected.",
    )
    async def signalled(self, name: str, args: Sequence[RawValue]) -> None:
        """Every signal comes here, known or not: applied as its update would be, or recorded as rejected (an event,
        a database row, a metric, the console's worklist). Never fails the workflow task."""
        if not self.versions.signals:  # a run from before signals were inputs ignores them, as it did (versioning)
            workflow.logger.warning("signal %r not taken: this case began before signals were inputs", name)
            _count_rejected("run_predates_signals")  # a metric is no command: counted as it happens, skipped on replay
            return
        who = f"system:{sender()}"
        if name not in SIGNALLED:
            known = ", ".join(sorted(SIGNALLED))
            reason = f"{name!r} is not an input of this case (inputs: {known})"
            return await self._reject_signal(name, None, "signal", reason, who)
        if len(args) == 1 and args[0].payload.metadata.get("encoding") == UNDECRYPTABLE:
            why = args[0].payload.metadata.get("reason", b"").decode(errors="replace")
            return await self._reject_signal(name, None, "input", f"the payload cannot be decrypted ({why})", who)
        value: Any = None
        try:
            value = workflow.payload_converter().from_payload(args[0].payload) if len(args) == 1 else None
        except Exception:  # noqa: BLE001 - whatever the sender's bytes are, the signal is recorded, not dropped
            return await self._reject_signal(name, None, "input", "the payload does not decode as JSON", who)
        if len(args) != 1 or not isinstance(value, dict):
            got = f"{len(args)} arguments" if len(args) != 1 else f"a JSON {type(value).__name__}"
            reason = f"must be one JSON object with the update's fields (got {got})"
            return await self._reject_signal(name, None, "input", reason, who)
        input_id = _input_id(value)
        for key in APPLICATION_FIELDS:  # who acted, and a closure already approved, are never a sender's to say
            if key in value:
                reason = "is set by the bank's application layer for an operator, never by a signal"
                return await self._reject_signal(name, input_id, key, reason, who)
        model = SIGNALLED[name]
        try:
            arg = model.model_validate(value)
        except ValidationError as exc:
            return await self._reject_signal(name, input_id, *field_and_reason(exc.errors()), who)
        kind = self._approval_needed(arg)
        if kind is not None:
            return await self._reject_signal(
                name,
                input_id,
                "approval",
                f"{approvals.summary_of(kind, arg)} needs a second person's approval: an operator sends it through the "
                "API or the console, never a signal",
                who,
            )
        before = self.case.state.event_seq
        SIGNAL_ACTOR.set(who[:40])  # this handler's task only: its events carry the sender (_stamp)
        try:
            self._validate(arg)
            await self._handle(arg)
        except ApplicationError as exc:
            details = exc.details[0] if exc.details and isinstance(exc.details[0], dict) else {}
            if self.case.state.event_seq != before:  # refused after it changed the case: not bad input, and not lost
                workflow.logger.error("signal %s refused after it was applied in part: %s", name, exc)
                return
            field, reason = details.get("field") or "input", details.get("reason") or str(exc)
            kept = self._kept_unapplied(arg, field)
            if kept is not None:
                reason += "; the payment is kept as unapplied (worklist Unapplied payments) unless the ledger holds its id"
            await self._reject_signal(name, input_id, field, reason, who, kept)

    async def _reject_signal(
        self, name: str, input_id: str | None, field: str, reason: str, who: str, unapplied: UnappliedPayment | None = None
    ) -> None:
        """An input the case did not take, kept where people look: the case's events, the rejected-inputs table
        and worklist, and the collections_inputs_rejected metric. Nothing else changes. Past the run's cap
        (versioning.SIGNAL_FLOOD) a flood of them costs a count each, not an event and a local activity: one notice
        says so, and the history's growth wakes the loop to continue as new."""
        now = workflow.now()
        shown = name if len(name) <= 64 else f"{name[:64]}..."
        metric = name if name in SIGNALLED else "unknown"
        # money is always recorded one by one: a refused payment, whatever the reason, is never only a count
        capped = self.versions.signal_flood and name != "record_payment"
        self._rejections += 1 if capped else 0
        cap = self.inp.rejections_recorded or REJECTIONS_RECORDED
        flood = capped and self._rejections > cap
        if flood and self._rejections > cap + 1:
            _count_rejected(metric)
            self._wake_if_history_is_long()
            return
        if flood:  # the one notice, in place of the rest
            name, input_id, field = "(flood)", None, "signal"
            reason = (
                f"more than {cap} signals were refused in this run: the rest are counted (metric "
                f"collections_inputs_rejected), not recorded one by one, until the case continues as new; the last "
                f"was {shown}: {reason}"
            )
            shown = name
        self.case.event(
            now, "input_rejected", f"signal {shown}" + (f" {input_id}" if input_id else "") + f" refused: {field}: {reason}"
        )
        seq = self.case.state.event_seq
        self.case.state.events[-1].actor = who[:40]  # the audit trail keeps 40 characters of an actor
        _count_rejected(metric)
        events = self.case.unaudited()
        await self._local(
            CaseActivities.record_rejected_input,
            RejectedInput(
                workflow_id=self.inp.workflow_id,
                case_key=self.case_key,
                loan_id=self.inp.loan_id,
                signal=shown,
                input_id=input_id,
                field=field[:64],
                reason=reason[:500],
                sender=who[:200],
                received_at=now,
                seq=seq,
                events=events,
                unapplied=unapplied,
            ),
            summary=f"rejected input: {shown}",
        )
        self._audited(events)
        self._wake_if_history_is_long()

    def _wake_if_history_is_long(self) -> None:
        """Signals grow the history while the case sleeps: wake the loop, which continues as new, when it is due."""
        if self.versions.signal_flood and self._continue_as_new_due():
            self._changed = True

    def _kept_unapplied(self, arg: BaseModel, field: str) -> UnappliedPayment | None:
        """A signalled payment refused only because the case has closed is money received: kept as unapplied."""
        if not isinstance(arg, PaymentIn) or field != CLOSED_FIELD or arg.currency != self.inp.currency:
            return None
        if arg.payment_id in self.case.state.payments:
            return None
        try:
            minor = parse_amount(arg.amount, arg.currency, "amount")
        except InvalidInput:
            return None
        return UnappliedPayment(
            payment_id=arg.payment_id, amount=minor, currency=arg.currency, paid_at=arg.paid_at or workflow.now()
        )

    @workflow.query
    def snapshot(self) -> CaseInput:
        """The case's input with its state as it is now: what a reopened run starts from (app: reverse a payment)."""
        return self.inp.model_copy(update={"state": self.case.state, "reopen": None})


# What each input asks of the world once applied (CollectionCase._take), in the order its commands are recorded:
# the ledger, the holds the gate reads, the audit trail. A closure is recorded by the run loop.
AFTER: dict[type[BaseModel], Callable[[CollectionCase, Any, set[str]], Awaitable[None]]] = {
    PaymentIn: CollectionCase._after_payment,
    ReversalIn: CollectionCase._after_reversal,
    PromiseIn: CollectionCase._after_change,
    PlanIn: CollectionCase._after_change,
    HoldIn: CollectionCase._after_hold,
    ReleaseIn: CollectionCase._after_release,
    OutcomeIn: CollectionCase._after_outcome,
    SuspensionIn: CollectionCase._after_change,
    CloseIn: CollectionCase._after_close,
    WriteOffConfirmIn: CollectionCase._after_change,
}

# The signals' inputs: the model of each (the update's of the same name). docs/workflow-contract.md is written from it.
SIGNALLED = registered_inputs.SIGNALLED
# Refused signals recorded one by one in a run (CaseInput.rejections_recorded overrides it); the rest are counted.
REJECTIONS_RECORDED = 100
# Fields of the inputs that only the application layer sets (SkipJsonSchema in domain/models.py): refused in a signal.
APPLICATION_FIELDS = ("actor", "approved")
# The sender of the signal a handler's task is applying: "system:<identity>", set in `signalled`, read by _stamp.
SIGNAL_ACTOR: ContextVar[str | None] = ContextVar("signal_actor", default=None)


def _letter(action: str, letter: str | None) -> str | None:
    """Which letter a send carries: the step's for a letter, the notice for the bureau's notice, none otherwise."""
    if action == "bureau_notice":
        return "bureau_notice"
    return letter if base_action(action) == "letter" else None


def _count_rejected(signal: str) -> None:
    metrics.count(
        workflow.metric_meter(),
        "collections_inputs_rejected",
        "Signalled inputs the case refused or could not read, by signal",
        signal=signal,
    )


def _input_id(value: dict[str, Any]) -> str | None:
    """The id an input carries (a payment's, a task's, a hold's reference), for the rejection's row."""
    for key in ("payment_id", "reference", "task_id"):
        v = value.get(key)
        if isinstance(v, str | int) and not isinstance(v, bool) and str(v):
            return str(v)[:64]
    return None
