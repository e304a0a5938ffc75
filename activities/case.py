"""The case's activities: channels over HTTP, the payments ledger, the case projection, the audit trail.

One instance per worker, holding the worker's one gateway client and database engine.
Idempotent under retries and crashes: the contact row is keyed by the idempotency key,
the gateway delivers once per key, the ledger once per payment id, the audit trail once
per event (dedupe key). A 4xx from the gateway is final: the attempt is recorded as
failed with the reason and the case moves on.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Literal

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import messages, visits
from activities.calendars import in_force_years
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
    StepOutcome,
    StepRun,
    StepSent,
    WindowClosed,
    for_guarantor,
)
from activities.gateway import GatewayClient, GatewayRejected, GatewayRetryable
from db.records import CaseRecord, ContactFinish, ContactStart, EventRecord, OperatorContact, PaymentRecord, ReversalRecord
from db.repo import GateRequest, GateStore, Repo, rules_decider
from db.selfservice import LinkStore
from db.tables import BorrowerRow, RejectedInputRow
from db.tasks import TaskStore
from domain import channels
from domain.dates import local_date
from domain.models import CALL_OUTCOMES, VISIT_OUTCOMES, ContactResult, Event, RecordedCalendar, TaskEnd, TaskInfo, TaskOpen
from domain.money import format_amount, to_major
from domain.tasks import Teams, load_teams
from infra import metrics
from infra.config import settings
from infra.link_secret import link_secret

log = structlog.get_logger("activities")

VISIT_REBOOKS = 1  # a visit booked outside the allowed dates and hours is asked for again once, then refused
# What an operator records (the record_outcome update) that is a contact with the borrower: it joins the
# contact ledger the gate reads, so the no-call-after-a-conversation rule and the caps count it.
OPERATOR_CONTACTS = {"call_outcome": ("call", CALL_OUTCOMES), "visit_outcome": ("visit", VISIT_OUTCOMES)}
# an outcome that reports a task (Case.apply_outcome): its call placed through the console is in the ledger already
TASK_MARK = re.compile(r"\[task ([0-9]+)\]$")


def _freeze(req: ChannelRequest, today: date) -> str:
    """What a message is rendered from, besides the borrower's record: no PII, no audit events."""
    return json.dumps({"req": req.model_dump(mode="json", exclude={"events"}), "today": today.isoformat()})


def _thaw(frozen: str | None, req: ChannelRequest, today: date) -> tuple[ChannelRequest, date]:
    if not frozen:  # a row begun before requests were kept
        return req, today
    data = json.loads(frozen)
    return ChannelRequest.model_validate(data["req"]), date.fromisoformat(data["today"])


def _bound(**kw):
    info = activity.info()
    return log.bind(
        workflow_id=info.workflow_id, run_id=info.workflow_run_id, activity=info.activity_type, attempt=info.attempt, **kw
    )


# a contact row's finished status as a ContactResult's (KeyError names any other, as validation did)
LINKED_CHANNELS = frozenset({"sms", "email", "letter"})  # the messages that carry the borrower page's link
_FINISHED: dict[str, Literal["delivered", "failed", "refused"]] = {
    "delivered": "delivered",
    "failed": "failed",
    "refused": "refused",
}


def _attempt_now(req: ChannelRequest) -> datetime:
    """The case's clock at this attempt: the workflow's time when it scheduled the send, plus what has passed
    since (the local activity's retries run in the worker, on its clock). Time skipping in tests moves only
    the workflow's clock, which is why the request carries it."""
    assert req.now is not None
    elapsed = datetime.now(UTC) - activity.info().scheduled_time
    return req.now + max(elapsed, timedelta(0))


class CaseActivities:
    def __init__(self, repo: Repo, gateway: GatewayClient, teams: Teams | None = None) -> None:
        self.repo = repo
        self.gateway = gateway
        self.gate = GateStore(repo)
        self._teams = teams
        self._tasks: TaskStore | None = None
        # one activity per name of the channel registry (several actions may share one: `action` tells which)
        for name in channels.ACTIVITIES:
            setattr(self, name, self._channel_activity(name))

    def _channel_activity(self, name: str):
        async def send(req: ChannelRequest) -> ContactResult:
            return await self._deliver(req)

        send.__name__ = send.__qualname__ = name
        return activity.defn(name=name)(send)

    def _link(self, req: ChannelRequest, recipient_id: str, channel: str, now: datetime, session=None) -> str | None:  # noqa: ANN001
        """The borrower page's link the message carries (behind a one-time code: borrower/, domain/selfservice.py),
        when its channel carries one and the policy links it ([selfservice] links); None otherwise."""
        if channel not in LINKED_CHANNELS or not req.links:
            return None
        return LinkStore(self.repo).issue(
            link_secret(),
            settings().public_url,
            idempotency_key=req.idempotency_key,
            workflow_id=req.workflow_id,
            loan_id=req.loan_id,
            borrower_id=req.borrower_id,
            recipient_id=recipient_id,
            audience="guarantor" if for_guarantor(req.action) else "borrower",
            channel=channel,
            now=now,
            session=session,
        )

    # ------------------------------------------------------------------ the contact gate

    @activity.defn(name=channels.CHECK_CONTACTS)
    async def check_contacts(self, check: GateCheck) -> list[GateDecision]:
        """Decide every action of a step before it is made (run as a local activity).

        Reads the borrower's holds and contacts across all their loans and channels inside one
        transaction that locks the borrower, reserves the allowed contacts, and records every
        decision with its rule and inputs in the audit trail.
        """

        decide = rules_decider(check.now, check.rules, check.day_seconds)
        decided = []
        for person, actions, requests in _gate_calls(check):
            decided.append((actions, await asyncio.to_thread(self.gate.check, person, check.now, requests, decide)))
        return self._gate_answer(check, decided)

    def _gate_answer(self, check: GateCheck, decided: list[tuple[list, list]]) -> list[GateDecision]:
        """The gate's decisions (each person's actions with their `Decision`s) as the workflow takes them, counted
        and logged."""
        out = [
            GateDecision(action=a, allowed=d.allowed, rule=d.rule, reason=d.reason, retry_at=d.retry_at, final=d.final)
            for actions, decisions in decided
            for a, d in zip(actions, decisions, strict=False)
        ]
        for d in out:
            if not d.allowed:
                metrics.count(activity.metric_meter(), "collections_refusals", "Contacts refused, by rule", rule=d.rule)
        refused = [f"{d.action}:{d.rule}" for d in out if not d.allowed]
        if refused:
            _bound(loan_id=check.loan_id, step=check.step).info("contacts refused", refused=refused)
        return out

    @activity.defn(name=channels.RECORD_HOLD)
    async def record_hold(self, change: HoldChange) -> None:
        def write() -> None:
            if change.released:
                self.gate.release_hold(
                    workflow_id=change.workflow_id, kind=change.kind, released_at=change.at, released_by=change.released_by
                )
            else:
                self.gate.place_hold(
                    borrower_id=change.borrower_id,
                    loan_id=change.loan_id,
                    workflow_id=change.workflow_id,
                    kind=change.kind,
                    placed_at=change.at,
                    until=change.until,
                    reference=change.reference,
                )
                actor = next((e.actor for e in change.events if e.actor), None)
                if actor is not None:  # who placed it (the actor of the update that placed it)
                    self.gate.hold_placed_by(workflow_id=change.workflow_id, kind=change.kind, placed_at=change.at, actor=actor)
            self._audit(change.workflow_id, change.loan_id, change.case_key, change.events)

        await asyncio.to_thread(write)

    # ------------------------------------------------------------------ audit

    def _audit(self, workflow_id: str, loan_id: str, case_key: str, events: list[Event]) -> None:
        """The workflow's own events (inputs, decisions) into the audit trail, once each.

        Contacts are written by the channel activity itself, with their key and cause, so the
        workflow's copy of them is left out here.
        """
        self.repo.record_events(self._audit_rows(workflow_id, loan_id, case_key, events))
        self._conversations(workflow_id, loan_id, case_key, events)

    def _conversations(self, workflow_id: str, loan_id: str, case_key: str, events: list[Event], session=None) -> None:
        """Call and visit outcomes an operator recorded (CLI, API: the record_outcome update) into the contact
        ledger, once each (keyed by the case and the event's sequence number), at the time they were recorded."""
        rows = []
        for e in events:
            kind = OPERATOR_CONTACTS.get(e.kind)
            if kind is None:
                continue
            channel, outcomes = kind
            outcome = (e.detail.split() or [""])[0]  # "<outcome>[ <reference>]" (Case.apply_outcome)
            if outcome not in outcomes:
                log.warning("operator outcome not understood; not in the contact ledger", kind=e.kind, seq=e.seq)
                continue
            task = TASK_MARK.search(e.detail)
            rows.append(
                OperatorContact(
                    task_id=int(task.group(1)) if task else None,
                    idempotency_key=f"{case_key}:operator:{e.seq}",
                    workflow_id=workflow_id,
                    loan_id=loan_id,
                    step="operator",
                    channel=channel,
                    action=channel,
                    outcome=outcome,
                    at=e.at,
                )
            )
        if rows:
            self.repo.record_operator_contacts(rows, session=session)

    @staticmethod
    def _audit_rows(workflow_id: str, loan_id: str, case_key: str, events: list[Event]) -> list[EventRecord]:
        """The audit trail's lines of the workflow's events, deduplicated by case key and sequence number."""
        return [
            EventRecord(
                workflow_id=workflow_id,
                loan_id=loan_id,
                at=e.at,
                kind=e.kind,
                detail=e.detail,
                cause={"source": "workflow", "seq": e.seq},
                dedupe_key=f"{case_key}:{e.seq}",
                actor=e.actor,
            )
            for e in events
            if not e.kind.startswith("contact_")
        ]

    # ------------------------------------------------------------------ a step in two transactions

    @activity.defn(name=channels.RUN_STEP)
    async def run_step(self, run: StepRun) -> StepOutcome:
        """A step's contacts (run as a local activity): the gate's check and the beginning of every send it allows
        in one transaction, the first attempt at each send concurrently over the worker's one gateway client, and
        every outcome in one more transaction.

        The same rows as `check_contacts` and a channel activity per send, with the same guarantees: the borrower's
        row is locked from the gate's check until the allowed contacts are reserved; each send is keyed by its
        idempotency key, so a re-run after a crash finds its reservation and its contact row and sends the body its
        first attempt froze, which the gateway delivers once. A send the gateway could not take comes back to the
        workflow, which sends it again on its own (the channel activity), re-checking the window at every attempt."""
        check = run.check
        now = _attempt_now(run.request)
        requests: dict[str, ChannelRequest] = {
            s.action: run.request.model_copy(
                update=dict(action=s.action, letter=s.letter, idempotency_key=f"{check.case_key}:{check.step}:{s.action}")
            )
            for s in run.sends
        }
        decided, begun = await asyncio.to_thread(self._open_step, run, requests, now)
        decisions = self._gate_answer(check, decided)
        lg = _bound(loan_id=check.loan_id, step=check.step)
        await asyncio.gather(*(self._first_attempt(b, now, lg) for b in begun if b.body is not None))
        await asyncio.to_thread(self._close_step, run, begun)
        for b in begun:
            if b.recorded and b.result is not None:
                if b.result.status == "failed":
                    lg.warning("contact failed", action=b.req.action, channel=b.channel, reason=b.result.reason)
                metrics.count(
                    activity.metric_meter(),
                    "collections_contacts",
                    "Contacts made, by channel and outcome",
                    channel=b.channel,
                    outcome=b.result.outcome or b.result.status,
                )
        return StepOutcome(
            decisions=decisions,
            sent=[StepSent(action=b.req.action, result=b.result, deferred=b.deferred, retry_after=b.retry_after) for b in begun],
        )

    def _open_step(
        self, run: StepRun, requests: dict[str, ChannelRequest], now: datetime
    ) -> tuple[list[tuple[list, list]], list[_Begun]]:
        """The first transaction of a step: the gate's check of each person (their rows locked in the order of their
        ids), then each allowed send's contact row and its link; then, outside it, each body rendered."""
        check = run.check
        decide = rules_decider(check.now, check.rules, check.day_seconds)
        calls = list(_gate_calls(check))
        with self.repo.tx() as s:
            answers: dict[int, list] = {}
            for i in sorted(range(len(calls)), key=lambda i: calls[i][0]):
                person, _, gate_requests = calls[i]
                answers[i] = self.gate.check(person, check.now, gate_requests, decide, session=s)
            decided = [(calls[i][1], answers[i]) for i in range(len(calls))]
            allowed = {a for actions, ds in decided for a, d in zip(actions, ds, strict=False) if d.allowed}
            begun = [self._begin(s, requests[a], now) for a in requests if a in allowed]
        for b in begun:
            if b.extra is not None:
                assert b.borrower is not None and b.first is not None and b.today is not None  # _begin set them
                b.body = messages.body(b.channel, b.first, b.borrower, b.today, debtor=b.debtor, extra=b.extra, link=b.link)
        return decided, begun

    def _begin(self, s, req: ChannelRequest, now: datetime) -> _Begun:
        """A send's part of the step's first transaction, as `_deliver` begins it: its contact row (attempts
        counted, what it is rendered from frozen by its first attempt), the checks that need no gateway, and its link.
        Its body is rendered once the transaction has committed (from `extra`)."""
        spec = channels.row(req.action)
        b = _Begun(req=req, channel=spec.channel)
        recipient_id = req.guarantor_id if for_guarantor(req.action) else req.borrower_id
        if recipient_id is None:
            return b.failed("the loan names no guarantor")

        def today_for(borrower) -> date:
            return local_date(now, borrower.timezone if borrower else "UTC")

        borrower, debtor, row = self.repo.begin_send(
            _contact_start(req, recipient_id, b.channel),
            frozen=lambda r: _freeze(req, today_for(r)),
            debtor_id=req.borrower_id if for_guarantor(req.action) else None,
            session=s,
        )
        if row.status == "deferred":  # an earlier attempt gave the gate's reservation back: ask the gate first
            b.deferred = WindowClosed(rule="gate_again", reason="the send was deferred; the gate decides anew", retry_at=now)
            return b
        if row.status != "pending":  # a rerun after the first attempt finished: report what happened
            b.result = ContactResult(
                action=req.action,
                channel=b.channel,
                status=_FINISHED[row.status],
                outcome=row.outcome,
                reason=row.reason,
                reference=row.reference,
            )
            return b
        if borrower is None:
            return b.failed(f"borrower {recipient_id} is not in the system of record")
        if spec.needs and not getattr(borrower, spec.needs):
            return b.failed(f"borrower has no {spec.needs} on record")
        assert req.rules is not None  # a step's request carries the check's rules
        refused = visits.time_refusal(b.channel, now, borrower.timezone, req.rules)
        if refused is not None:
            self.repo.defer_contact(req.idempotency_key, event=_deferral(req, b.channel, row.attempts, refused, now), session=s)
            b.deferred = WindowClosed(rule=refused.rule, reason=refused.reason, retry_at=refused.retry_at)
            return b
        b.first, b.today = _thaw(row.frozen, req, today_for(borrower))
        b.borrower, b.debtor, b.extra = borrower, debtor, {}
        if b.channel == "visit":
            b.windows = _visit_windows(b.first, borrower.timezone)
            b.extra = {"windows": [{"start": x.isoformat(), "end": y.isoformat()} for x, y in b.windows]}
        b.link = self._link(req, recipient_id, b.channel, now, session=s)
        return b

    async def _first_attempt(self, b: _Begun, now: datetime, lg) -> None:
        """The send's first attempt at the gateway; what it came to is left on `b`."""
        req, channel = b.req, b.channel
        assert b.body is not None and b.first is not None and b.today is not None  # rendered by _open_step
        lg = lg.bind(action=req.action, channel=channel)
        try:
            resp = await self.gateway.send(channel, b.body, req.idempotency_key)
            if channel == "visit":
                resp = await self._booked_inside(req, b.borrower, b.debtor, b.first, b.today, resp, b.windows, now, lg)
        except (GatewayRejected, _VisitRefused) as exc:
            b.failed(str(exc))
            return
        except GatewayRetryable as exc:
            b.error, b.retry_after = str(exc), exc.retry_after or 0.0
            lg.warning("gateway unavailable, will retry", reason=str(exc), retry_after=exc.retry_after)
            return
        except Exception as exc:  # noqa: BLE001 - the send is the workflow's to run again, on its own, as before
            b.error, b.retry_after = f"{type(exc).__name__}: {exc}", 0.0
            lg.exception("send failed; the workflow sends it again")
            return
        b.recorded = True
        b.result = ContactResult(
            action=req.action,
            channel=channel,
            outcome=resp.get("outcome"),
            reference=resp.get("id"),
            promise_amount=resp.get("promise_amount"),
            promise_date=resp.get("promise_date"),
        )
        lg.info("delivered", outcome=b.result.outcome, duplicate=resp.get("duplicate", False))

    def _close_step(self, run: StepRun, begun: list[_Begun]) -> None:
        """The second transaction of a step: every send's result with its audit event, the gateway's errors on the
        sends it could not take, the case projection and the workflow's events."""
        req, p = run.request, run.projection
        finished = [b for b in begun if b.recorded]
        case = _case_row(req) if finished else None
        if p is not None:  # the whole row, as the workflow's projection would write it next
            case = _projection(p)
        with self.repo.tx() as s:
            self.repo.finish_sends(
                contacts=[_finished_rows(b.req, b.channel, b.result) for b in finished if b.result is not None],
                case=case,
                events=self._audit_rows(req.workflow_id, req.loan_id, req.case_key, req.events),
                notes=[(b.req.idempotency_key, b.error) for b in begun if b.error is not None],
                session=s,
            )
            if req.events:
                self._conversations(req.workflow_id, req.loan_id, req.case_key, req.events, session=s)

    # ------------------------------------------------------------------ channels

    async def _deliver(self, req: ChannelRequest) -> ContactResult:
        spec = channels.row(req.action)
        channel = spec.channel
        recipient_id = req.guarantor_id if for_guarantor(req.action) else req.borrower_id
        lg = _bound(loan_id=req.loan_id, step=req.step, action=req.action, channel=channel)
        if recipient_id is None:  # a guarantor's letter on a request that names no guarantor: nobody to send it to
            return await self._failed(req, channel, "the loan names no guarantor", lg)
        scheduled = activity.info().current_attempt_scheduled_time
        rules = req.rules if req.now is not None else None  # sent by a case that re-checks every attempt
        rechecked = rules is not None
        now = _attempt_now(req) if rechecked else None

        def today_for(borrower) -> date:
            return local_date(now or scheduled, borrower.timezone if borrower else "UTC")

        # What the message is rendered from is kept by the first attempt: a re-run after a crash (its DPD,
        # date and balance read later) must send the very body the gateway may already hold under this key.
        # The recipient (and, for a guarantor, the debtor) is read in the transaction that begins the contact.
        borrower, debtor, row = await asyncio.to_thread(
            self.repo.begin_send,
            _contact_start(req, recipient_id, channel),
            frozen=lambda b: _freeze(req, today_for(b)),
            debtor_id=req.borrower_id if for_guarantor(req.action) else None,
        )
        today = today_for(borrower)
        if row.status == "deferred":  # an earlier attempt gave the gate's reservation back: ask the gate first
            raise _window_closed(
                WindowClosed(rule="gate_again", reason="the send was deferred; the gate decides anew", retry_at=now or scheduled)
            )
        if row.status != "pending":  # a rerun after the first attempt finished: report what happened
            lg.info("contact already finished", status=row.status)
            return ContactResult(
                action=req.action,
                channel=channel,
                status=_FINISHED[row.status],
                outcome=row.outcome,
                reason=row.reason,
                reference=row.reference,
            )
        if borrower is None:
            return await self._failed(req, channel, f"borrower {recipient_id} is not in the system of record", lg)
        if spec.needs and not getattr(borrower, spec.needs):
            return await self._failed(req, channel, f"borrower has no {spec.needs} on record", lg)
        if rules is not None and now is not None:
            # every attempt of a timed send, not only the first, goes out only inside the window and on a contact day
            refused = visits.time_refusal(channel, now, borrower.timezone, rules)
            if refused is not None:
                await asyncio.to_thread(
                    self.repo.defer_contact, req.idempotency_key, event=_deferral(req, channel, row.attempts, refused, now)
                )
                lg.info("window closed: not sent", rule=refused.rule, retry_at=refused.retry_at.isoformat())
                raise _window_closed(WindowClosed(rule=refused.rule, reason=refused.reason, retry_at=refused.retry_at))
        first, today = _thaw(row.frozen, req, today)
        extra: dict = {}
        windows: list = []
        if channel == "visit":
            windows = _visit_windows(first, borrower.timezone)
            extra = {"windows": [{"start": s.isoformat(), "end": e.isoformat()} for s, e in windows]}
        link = await asyncio.to_thread(self._link, req, recipient_id, channel, now or scheduled)
        body = messages.body(channel, first, borrower, today, debtor=debtor, extra=extra, link=link)
        resp = await self._through_gateway(req, channel, body, borrower, debtor, first, today, windows, now, lg)
        if isinstance(resp, ContactResult):  # refused by the provider: failed, recorded
            return resp
        result = ContactResult(
            action=req.action,
            channel=channel,
            outcome=resp.get("outcome"),
            reference=resp.get("id"),
            promise_amount=resp.get("promise_amount"),
            promise_date=resp.get("promise_date"),
        )
        await self._record(req, channel, result)
        lg.info("delivered", outcome=result.outcome, duplicate=resp.get("duplicate", False))
        return result

    async def _through_gateway(
        self, req: ChannelRequest, channel: str, body, borrower, debtor, first, today, windows, now, lg
    ) -> dict | ContactResult:
        """The message through the provider's gateway (and a visit's booking kept inside its windows): its answer,
        or the failed contact when the provider refuses it. Unavailable: retried here (a short wait) or, past
        LOCAL_RETRY_SECONDS, by the workflow's durable timer, after which the window is checked again."""
        rechecked = req.rules is not None and req.now is not None
        try:
            resp = await self.gateway.send(channel, body, req.idempotency_key)
            if channel == "visit":
                resp = await self._booked_inside(req, borrower, debtor, first, today, resp, windows, now, lg)
        except GatewayRejected as exc:
            return await self._failed(req, channel, str(exc), lg)
        except GatewayRetryable as exc:
            await asyncio.to_thread(self.repo.note_contact_error, req.idempotency_key, str(exc))
            lg.warning("gateway unavailable, will retry", reason=str(exc), retry_after=exc.retry_after)
            if rechecked and exc.retry_after and exc.retry_after > LOCAL_RETRY_SECONDS:
                # a wait this long is the workflow's durable timer, after which the window is checked again
                raise ApplicationError(
                    f"{channel} gateway: {exc}", {"retry_after": exc.retry_after}, type=GATEWAY_BACKOFF, non_retryable=True
                ) from None
            raise ApplicationError(
                f"{channel} gateway: {exc}",
                type="GatewayUnavailable",
                next_retry_delay=timedelta(seconds=exc.retry_after) if exc.retry_after else None,
            ) from None
        except _VisitRefused as exc:
            return await self._failed(req, channel, str(exc), lg)
        return resp

    async def _booked_inside(
        self,
        req: ChannelRequest,
        borrower,
        debtor,
        first: ChannelRequest,
        today: date,
        resp: dict,
        windows: list,
        now: datetime | None,
        lg,
    ) -> dict:
        """The provider's `scheduled_for` must fall inside the dates and hours the request offered (and not in the
        past). A booking outside them is asked for again (under its own key, offering the windows from now), and
        after VISIT_REBOOKS tries refused. Each outside booking is an audit event."""
        if not windows:  # nothing was offered (a case begun before visits carried their dates): nothing to hold to
            return resp
        at = now or datetime.now(UTC)
        for n in range(VISIT_REBOOKS + 1):
            scheduled = _parse_time(resp.get("scheduled_for"))
            if scheduled is not None and scheduled >= at and visits.inside(scheduled, windows):
                return resp
            last = n == VISIT_REBOOKS
            visit = resp.get("visit_id") or resp.get("id")
            detail = (
                f"{req.step}/{req.action}: the provider booked visit {visit} for "
                f"{resp.get('scheduled_for')}, outside the allowed dates and hours"
                + ("; refused" if last else "; booking it again")
            )
            await asyncio.to_thread(
                self.repo.record_event,
                EventRecord(
                    workflow_id=req.workflow_id,
                    loan_id=req.loan_id,
                    kind="visit_refused" if last else "visit_rebooked",
                    detail=detail,
                    cause={"key": req.idempotency_key, "visit": visit, "scheduled_for": resp.get("scheduled_for"), "try": n + 1},
                    at=at,
                    dedupe_key=f"visit:{req.idempotency_key}:{n + 1}",
                ),
            )
            lg.warning(
                "visit booked outside the allowed dates and hours", scheduled_for=resp.get("scheduled_for"), rebook=not last
            )
            if last:
                raise _VisitRefused(
                    f"the provider booked the visit outside the allowed dates and hours "
                    f"{VISIT_REBOOKS + 1} times (last for {resp.get('scheduled_for')}); refused"
                )
            windows = _visit_windows(first.model_copy(update={"now": at}), borrower.timezone)
            extra = {"windows": [{"start": s.isoformat(), "end": e.isoformat()} for s, e in windows], "replaces": visit}
            body = messages.body("visit", first, borrower, today, debtor=debtor, extra=extra)
            resp = await self.gateway.send("visit", body, f"{req.idempotency_key}:rebook-{n + 1}")
        return resp

    async def _failed(self, req: ChannelRequest, channel: str, reason: str, lg) -> ContactResult:
        result = ContactResult(action=req.action, channel=channel, status="failed", reason=reason)
        await self._record(req, channel, result)
        lg.warning("contact failed", reason=reason)
        return result

    async def _record(self, req: ChannelRequest, channel: str, r: ContactResult) -> None:
        await asyncio.to_thread(self._finish, req, channel, r)
        if req.events:
            await asyncio.to_thread(self._conversations, req.workflow_id, req.loan_id, req.case_key, req.events)
        metrics.count(
            activity.metric_meter(),
            "collections_contacts",
            "Contacts made, by channel and outcome",
            channel=channel,
            outcome=r.outcome or r.status,
        )

    def _finish(self, req: ChannelRequest, channel: str, r: ContactResult) -> None:
        """The contact's result, its audit event, the case projection and the workflow's events: one transaction."""
        contact, event = _finished_rows(req, channel, r)
        self.repo.finish_send(
            contact=contact,
            event=event,
            case=_case_row(req),
            events=self._audit_rows(req.workflow_id, req.loan_id, req.case_key, req.events),
        )

    # ------------------------------------------------------------------ ledger, projection, audit

    @activity.defn(name=channels.RECORD_PAYMENT)
    async def record_payment(self, entry: LedgerEntry) -> bool:
        def write() -> bool:  # the ledger row, the case projection and the workflow's events: one transaction
            return self.repo.record_payment_of_case(
                payment=PaymentRecord(
                    payment_id=entry.payment_id,
                    loan_id=entry.loan_id,
                    workflow_id=entry.workflow_id,
                    amount=entry.amount_minor,
                    currency=entry.currency,
                    paid_at=entry.paid_at,
                    allocation=entry.allocation_minor,
                    recorded_by=next((e.actor for e in entry.events if e.actor), None),
                ),
                case=CaseRecord(
                    workflow_id=entry.workflow_id,
                    loan_id=entry.loan_id,
                    currency=entry.currency,
                    outstanding=entry.outstanding_minor,
                    total_paid=entry.total_paid_minor,
                ),
                events=self._audit_rows(entry.workflow_id, entry.loan_id, entry.case_key, entry.events),
            )

        written = await asyncio.to_thread(write)
        await asyncio.to_thread(self._conversations, entry.workflow_id, entry.loan_id, entry.case_key, entry.events)
        if written:
            meter = activity.metric_meter()
            metrics.count(meter, "collections_payments", "Payments written to the ledger", currency=entry.currency)
            metrics.count(
                meter,
                "collections_payment_amount",
                "Amount of payments, major units",
                to_major(entry.amount_minor, entry.currency),
                currency=entry.currency,
            )
        _bound(loan_id=entry.loan_id).info(
            "payment recorded",
            payment_id=entry.payment_id,
            amount=format_amount(entry.amount_minor, entry.currency),
            first_write=written,
        )
        return written

    @activity.defn(name=channels.RECORD_REVERSAL)
    async def record_reversal(self, entry: ReversalEntry) -> bool:
        cur = entry.currency

        def write() -> bool:  # the reversal row, the case projection and the workflow's events: one transaction
            return self.repo.record_reversal_of_case(
                reversal=ReversalRecord(
                    payment_id=entry.payment_id,
                    loan_id=entry.loan_id,
                    workflow_id=entry.workflow_id,
                    run_id=entry.run_id,
                    amount=entry.amount_minor,
                    currency=cur,
                    reason=entry.reason,
                    reversed_at=entry.reversed_at,
                ),
                case=CaseRecord(
                    workflow_id=entry.workflow_id,
                    loan_id=entry.loan_id,
                    currency=cur,
                    outstanding=entry.outstanding_minor,
                    total_paid=entry.total_paid_minor,
                ),
                events=self._audit_rows(entry.workflow_id, entry.loan_id, entry.case_key, entry.events),
                reopened=entry.reopened,
            )

        written = await asyncio.to_thread(write)
        _bound(loan_id=entry.loan_id).info(
            "payment reversal recorded",
            payment_id=entry.payment_id,
            amount=format_amount(entry.amount_minor, cur),
            first_write=written,
            reopened=entry.reopened,
        )
        return written

    @activity.defn(name=channels.RECORD_EVENTS)
    async def record_events(self, batch: AuditEvents) -> None:
        await asyncio.to_thread(self._audit, batch.workflow_id, batch.loan_id, batch.case_key, batch.events)

    @activity.defn(name=channels.RECORD_REJECTED_INPUT)
    async def record_rejected_input(self, r: RejectedInput) -> None:
        """A signalled input the case refused, kept for the console's worklist, with the case's event saying so."""
        row = RejectedInputRow(
            dedupe_key=f"{r.case_key}:{r.seq}",
            workflow_id=r.workflow_id,
            loan_id=r.loan_id,
            signal=r.signal,
            input_id=r.input_id,
            field=r.field,
            reason=r.reason,
            sender=r.sender,
            received_at=r.received_at,
        )
        events = self._audit_rows(r.workflow_id, r.loan_id, r.case_key, r.events)
        kept = None
        if (u := r.unapplied) is not None:  # the ledger's unapplied row, in the same transaction as the rejection's
            kept = PaymentRecord(
                payment_id=u.payment_id,
                loan_id=r.loan_id,
                workflow_id=None,
                amount=u.amount,
                currency=u.currency,
                paid_at=u.paid_at,
                status="unapplied",
                note=f"signalled by {r.sender} after the case closed",
            )
        if await asyncio.to_thread(self.repo.record_rejected_input, row, events, kept):
            log.warning(
                "signalled input rejected", loan_id=r.loan_id, signal=r.signal, field=r.field, reason=r.reason, sender=r.sender
            )

    @activity.defn(name=channels.PROJECT_CASE)
    async def project_case(self, p: CaseProjection) -> None:
        """The case row follows the case: stage, status (paused too) and balances, as the workflow has them."""
        await asyncio.to_thread(self.repo.project_case, _projection(p))

    @activity.defn(name=channels.RECORD_CASE_CLOSED)
    async def record_case_closed(self, closed: CaseClosed) -> None:
        cur = closed.currency

        def write() -> None:
            self.repo.project_case(
                CaseRecord(
                    workflow_id=closed.workflow_id,
                    loan_id=closed.loan_id,
                    currency=cur,
                    status="closed",
                    outcome=closed.outcome,
                    outstanding=closed.outstanding_minor,
                    total_paid=closed.total_paid_minor,
                    closed_at=closed.closed_at,
                )
            )
            self._audit(closed.workflow_id, closed.loan_id, closed.case_key, closed.events)
            self.tasks.cancel_for_case(closed.workflow_id, closed.closed_at)  # a closed case leaves no task open

        await asyncio.to_thread(write)
        _bound(loan_id=closed.loan_id).info("case closed", outcome=closed.outcome)

    # ------------------------------------------------------------------ agent mode (domain/tasks.py)

    @property
    def tasks(self) -> TaskStore:
        if self._tasks is None:
            from infra.config import settings

            self._tasks = TaskStore(self.repo, self._teams or load_teams(settings().teams_file))
        return self._tasks

    @activity.defn(name=channels.OPEN_TASK)
    async def open_task(self, req: TaskOpen) -> TaskInfo:
        """Open a call or visit task for the floor, once per case run, step and action."""
        info = await asyncio.to_thread(self.tasks.open, req, f"{req.case_key}:{req.step}:{req.action}:task")
        _bound(loan_id=req.loan_id, step=req.step).info(
            "task opened", task_id=info.task_id, team=info.team, assignee=info.assignee
        )
        return info

    @activity.defn(name=channels.REQUEUE_TASK)
    async def requeue_task(self, req: TaskOpen) -> TaskInfo:
        """A task not worked by its due time goes to the queue again (`req.requeues`: its count after this one)."""
        assert req.task_id is not None
        return await asyncio.to_thread(self.tasks.requeue, req, req.requeues)

    @activity.defn(name=channels.END_TASKS)
    async def end_tasks(self, ends: list[TaskEnd]) -> None:
        await asyncio.to_thread(self.tasks.end, ends)

    @activity.defn(name=channels.CALENDAR_YEARS)
    async def calendar_years(self, years: list[int]) -> list[RecordedCalendar]:
        """Which of `years` have a calendar in force on this worker, with their days (run as a local activity)."""
        return in_force_years(years)

    def all(self) -> list:
        return [
            self.check_contacts,
            self.run_step,
            self.calendar_years,
            self.record_hold,
            *(getattr(self, n) for n in channels.ACTIVITIES),
            self.record_payment,
            self.record_reversal,
            self.record_events,
            self.record_case_closed,
            self.project_case,
            self.open_task,
            self.requeue_task,
            self.end_tasks,
            self.record_rejected_input,
        ]


class _VisitRefused(Exception):
    pass


@dataclass
class _Begun:
    """One send of a step (CaseActivities.run_step) on its way: what its first transaction read, and what it came to."""

    req: ChannelRequest
    channel: str
    borrower: BorrowerRow | None = None
    debtor: BorrowerRow | None = None
    first: ChannelRequest | None = None  # what the message is rendered from (the first attempt's, frozen)
    today: date | None = None
    link: str | None = None
    windows: list = field(default_factory=list)
    extra: dict | None = None  # set: the send is rendered and goes to the gateway
    body: dict | None = None
    result: ContactResult | None = None
    recorded: bool = False  # `result` is this attempt's, to be written
    deferred: WindowClosed | None = None
    error: str | None = None  # the gateway could not take it: the workflow sends it again
    retry_after: float | None = None

    def failed(self, reason: str) -> _Begun:
        self.result = ContactResult(action=self.req.action, channel=self.channel, status="failed", reason=reason)
        self.recorded, self.extra = True, None
        return self


def _gate_calls(check: GateCheck) -> Iterator[tuple[str, list, list[GateRequest]]]:
    """The gate's questions of a step, one per person, in the order their decisions come back: the borrower's
    contacts are judged on the borrower's record, the guarantor's on the guarantor's."""
    for person, actions in (
        (check.borrower_id, [a for a in check.actions if not for_guarantor(a)]),
        (check.guarantor_id, [a for a in check.actions if for_guarantor(a)]),
    ):
        if not actions or person is None:
            continue
        yield (
            person,
            actions,
            [
                GateRequest(
                    idempotency_key=f"{check.case_key}:{check.step}:{a}",
                    workflow_id=check.workflow_id,
                    loan_id=check.loan_id,
                    step=check.step,
                    action=a,
                    channel=channels.channel_of(a),
                )
                for a in actions
            ],
        )


def _finished_rows(req: ChannelRequest, channel: str, r: ContactResult) -> tuple[ContactFinish, EventRecord]:
    """A finished send's contact row update and its audit event (Repo.finish_send's `contact` and `event`)."""
    return (
        ContactFinish(
            idempotency_key=req.idempotency_key, status=r.status, outcome=r.outcome, reason=r.reason, reference=r.reference
        ),
        EventRecord(
            workflow_id=req.workflow_id,
            loan_id=req.loan_id,
            kind=f"contact_{r.status}",
            detail=f"{req.step}/{req.action} via {channel}"
            + (f": {r.outcome}" if r.outcome else "")
            + (f" ({r.reason})" if r.reason else ""),
            cause={"step": req.step, "action": req.action, "key": req.idempotency_key, "dpd": req.dpd},
            dedupe_key=f"contact:{req.idempotency_key}",
        ),
    )


def _contact_start(req: ChannelRequest, recipient_id: str, channel: str) -> ContactStart:
    """A send's contact row as its first attempt begins it (Repo.begin_send)."""
    return ContactStart(
        idempotency_key=req.idempotency_key,
        workflow_id=req.workflow_id,
        loan_id=req.loan_id,
        borrower_id=recipient_id,
        step=req.step,
        channel=channel,
        action=req.action,
    )


def _case_row(req: ChannelRequest) -> CaseRecord:
    """The case row as a send leaves it: its stage and outstanding balance (the request's, in minor units)."""
    return CaseRecord(
        workflow_id=req.workflow_id,
        loan_id=req.loan_id,
        currency=req.currency,
        stage=req.stage,
        outstanding=req.outstanding_minor["total"],
    )


def _projection(p: CaseProjection) -> CaseRecord:
    """The whole case row as the workflow's projection has it."""
    return CaseRecord(
        workflow_id=p.workflow_id,
        loan_id=p.loan_id,
        currency=p.currency,
        stage=p.stage,
        status=p.status,
        outstanding=p.outstanding_minor,
        total_paid=p.total_paid_minor,
    )


def _deferral(req: ChannelRequest, channel: str, attempt: int, refused, now: datetime | None) -> EventRecord:
    """The audit event of a send not made because its window had closed when its attempt came."""
    return EventRecord(
        workflow_id=req.workflow_id,
        loan_id=req.loan_id,
        kind="contact_deferred",
        detail=f"{req.step}/{req.action} via {channel}: not sent on attempt {attempt}: {refused.rule}: "
        f"{refused.reason}; asks the gate again at {refused.retry_at.isoformat()}",
        cause={
            "step": req.step,
            "action": req.action,
            "key": req.idempotency_key,
            "rule": refused.rule,
            "attempt": attempt,
            "retry_at": refused.retry_at.isoformat(),
        },
        at=now,
        dedupe_key=f"deferred:{req.idempotency_key}:{attempt}",
    )


def _window_closed(details: WindowClosed) -> ApplicationError:
    return ApplicationError(
        f"not sent: {details.rule}: {details.reason}", details.model_dump(mode="json"), type=WINDOW_CLOSED, non_retryable=True
    )


def _parse_time(value) -> datetime | None:
    try:
        t = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return t if t is not None and t.tzinfo is not None else None


def _visit_windows(req: ChannelRequest, tz: str) -> list:
    """The dates and hours a visit may take place, from the case's contact rules at the request's time. A case
    that does not send its rules (begun before they were sent) offers none, and the provider chooses as before."""
    if req.now is None or req.rules is None:
        return []
    return visits.visit_windows(req.now, tz, req.rules)
