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
from datetime import date, timedelta

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import messages
from activities.contracts import (
    CHANNEL_FOR_ACTION, base_action, for_guarantor, AuditEvents, CaseClosed, ChannelRequest, GateCheck, GateDecision, HoldChange, LedgerEntry,
    ReversalEntry,
)
from domain import compliance
from infra import metrics
from activities.gateway import GatewayClient, GatewayRejected, GatewayRetryable
from db.repo import GateRequest, GateStore, Repo
from domain.dates import local_date
from domain.models import ContactResult, Event
from domain.money import parse_amount

log = structlog.get_logger("activities")

REQUIRED = {"sms": "phone", "call": "phone", "email": "email", "letter": "address", "visit": "address",
            "law_firm": "address", "court": "address"}


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
    return log.bind(workflow_id=info.workflow_id, run_id=info.workflow_run_id, activity=info.activity_type,
                    attempt=info.attempt, **kw)


class CaseActivities:
    def __init__(self, repo: Repo, gateway: GatewayClient) -> None:
        self.repo = repo
        self.gateway = gateway
        self.gate = GateStore(repo)

    # ------------------------------------------------------------------ the contact gate

    @activity.defn(name="check_contacts")
    async def check_contacts(self, check: GateCheck) -> list[GateDecision]:
        """Decide every action of a step before it is made (run as a local activity).

        Reads the borrower's holds and contacts across all their loans and channels inside one
        transaction that locks the borrower, reserves the allowed contacts, and records every
        decision with its rule and inputs in the audit trail.
        """
        def decide(q: GateRequest, tz: str, holds, history):
            return compliance.decide(action=base_action(q.action), channel=q.channel, loan_id=q.loan_id, now=check.now,
                                     tz=tz, rules=check.rules, holds=holds, history=history,
                                     bundle=f"{q.workflow_id}:{q.step}", day_seconds=check.day_seconds)

        out = []
        # the borrower's contacts are judged on the borrower's record, the guarantor's on the guarantor's
        for person, actions in ((check.borrower_id, [a for a in check.actions if not for_guarantor(a)]),
                                (check.guarantor_id, [a for a in check.actions if for_guarantor(a)])):
            if not actions or person is None:
                continue
            requests = [GateRequest(idempotency_key=f"{check.case_key}:{check.step}:{a}", workflow_id=check.workflow_id,
                                    loan_id=check.loan_id, step=check.step, action=a,
                                    channel=CHANNEL_FOR_ACTION[base_action(a)]) for a in actions]
            decisions = await asyncio.to_thread(self.gate.check, person, check.now, requests, decide)
            out += [GateDecision(action=q.action, allowed=d.allowed, rule=d.rule, reason=d.reason,
                                 retry_at=d.retry_at, final=d.final) for q, d in zip(requests, decisions)]
        for d in out:
            if not d.allowed:
                metrics.count(activity.metric_meter(), "collections_refusals", "Contacts refused, by rule", rule=d.rule)
        refused = [f"{d.action}:{d.rule}" for d in out if not d.allowed]
        if refused:
            _bound(loan_id=check.loan_id, step=check.step).info("contacts refused", refused=refused)
        return out

    @activity.defn(name="record_hold")
    async def record_hold(self, change: HoldChange) -> None:
        def write() -> None:
            if change.released:
                self.gate.release_hold(workflow_id=change.workflow_id, kind=change.kind, released_at=change.at,
                                       released_by=change.released_by)
            else:
                self.gate.place_hold(borrower_id=change.borrower_id, loan_id=change.loan_id,
                                     workflow_id=change.workflow_id, kind=change.kind, placed_at=change.at,
                                     until=change.until, reference=change.reference)
                actor = next((e.actor for e in change.events if e.actor), None)
                if actor is not None:  # who placed it (the actor of the update that placed it)
                    self.gate.hold_placed_by(workflow_id=change.workflow_id, kind=change.kind, placed_at=change.at,
                                             actor=actor)
            self._audit(change.workflow_id, change.loan_id, change.case_key, change.events)

        await asyncio.to_thread(write)

    # ------------------------------------------------------------------ audit

    def _audit(self, workflow_id: str, loan_id: str, case_key: str, events: list[Event]) -> None:
        """The workflow's own events (inputs, decisions) into the audit trail, once each.

        Contacts are written by the channel activity itself, with their key and cause, so the
        workflow's copy of them is left out here.
        """
        self.repo.record_events(self._audit_rows(workflow_id, loan_id, case_key, events))

    @staticmethod
    def _audit_rows(workflow_id: str, loan_id: str, case_key: str, events: list[Event]) -> list[dict]:
        """`Repo.record_event` arguments for the workflow's events, deduplicated by case key and sequence number."""
        return [dict(workflow_id=workflow_id, loan_id=loan_id, at=e.at, kind=e.kind, detail=e.detail,
                     cause={"source": "workflow", "seq": e.seq}, dedupe_key=f"{case_key}:{e.seq}", actor=e.actor)
                for e in events if not e.kind.startswith("contact_")]

    # ------------------------------------------------------------------ channels

    async def _deliver(self, req: ChannelRequest) -> ContactResult:
        channel = CHANNEL_FOR_ACTION[base_action(req.action)]
        recipient_id = req.guarantor_id if for_guarantor(req.action) else req.borrower_id
        lg = _bound(loan_id=req.loan_id, step=req.step, action=req.action, channel=channel)
        scheduled = activity.info().current_attempt_scheduled_time

        def today_for(borrower) -> date:
            return local_date(scheduled, borrower.timezone if borrower else "UTC")

        # What the message is rendered from is kept by the first attempt: a re-run after a crash (its DPD,
        # date and balance read later) must send the very body the gateway may already hold under this key.
        # The recipient (and, for a guarantor, the debtor) is read in the transaction that begins the contact.
        borrower, debtor, row = await asyncio.to_thread(
            self.repo.begin_send, idempotency_key=req.idempotency_key, workflow_id=req.workflow_id,
            loan_id=req.loan_id, borrower_id=recipient_id, step=req.step, channel=channel, action=req.action,
            frozen=lambda b: _freeze(req, today_for(b)),
            debtor_id=req.borrower_id if for_guarantor(req.action) else None)
        today = today_for(borrower)
        if row.status != "pending":  # a rerun after the first attempt finished: report what happened
            lg.info("contact already finished", status=row.status)
            return ContactResult(action=req.action, channel=channel, status=row.status, outcome=row.outcome,
                                 reason=row.reason, reference=row.reference)
        if borrower is None:
            return await self._failed(req, channel, f"borrower {recipient_id} is not in the system of record", lg)
        missing = REQUIRED.get(channel)
        if missing and not getattr(borrower, missing):
            return await self._failed(req, channel, f"borrower has no {missing} on record", lg)
        first, today = _thaw(row.frozen, req, today)
        body = messages.body(channel, first, borrower, today, debtor=debtor)
        try:
            resp = await self.gateway.send(channel, body, req.idempotency_key)
        except GatewayRejected as exc:
            return await self._failed(req, channel, str(exc), lg)
        except GatewayRetryable as exc:
            await asyncio.to_thread(self.repo.note_contact_error, req.idempotency_key, str(exc))
            lg.warning("gateway unavailable, will retry", reason=str(exc), retry_after=exc.retry_after)
            raise ApplicationError(f"{channel} gateway: {exc}", type="GatewayUnavailable",
                                   next_retry_delay=timedelta(seconds=exc.retry_after) if exc.retry_after else None) from None
        result = ContactResult(action=req.action, channel=channel, outcome=resp.get("outcome"),
                               reference=resp.get("id"), promise_amount=resp.get("promise_amount"),
                               promise_date=resp.get("promise_date"))
        await self._record(req, channel, result)
        lg.info("delivered", outcome=result.outcome, duplicate=resp.get("duplicate", False))
        return result

    async def _failed(self, req: ChannelRequest, channel: str, reason: str, lg) -> ContactResult:
        result = ContactResult(action=req.action, channel=channel, status="failed", reason=reason)
        await self._record(req, channel, result)
        lg.warning("contact failed", reason=reason)
        return result

    async def _record(self, req: ChannelRequest, channel: str, r: ContactResult) -> None:
        await asyncio.to_thread(self._finish, req, channel, r)
        metrics.count(activity.metric_meter(), "collections_contacts", "Contacts made, by channel and outcome",
                      channel=channel, outcome=r.outcome or r.status)

    def _finish(self, req: ChannelRequest, channel: str, r: ContactResult) -> None:
        """The contact's result, its audit event, the case projection and the workflow's events: one transaction."""
        self.repo.finish_send(
            contact=dict(idempotency_key=req.idempotency_key, status=r.status, outcome=r.outcome, reason=r.reason,
                         reference=r.reference),
            event=dict(workflow_id=req.workflow_id, loan_id=req.loan_id, kind=f"contact_{r.status}",
                       detail=f"{req.step}/{req.action} via {channel}" + (f": {r.outcome}" if r.outcome else "")
                       + (f" ({r.reason})" if r.reason else ""),
                       cause={"step": req.step, "action": req.action, "key": req.idempotency_key, "dpd": req.dpd},
                       dedupe_key=f"contact:{req.idempotency_key}"),
            case=dict(workflow_id=req.workflow_id, loan_id=req.loan_id, currency=req.currency, stage=req.stage,
                      outstanding=parse_amount(req.outstanding["total"], req.currency, allow_zero=True)),
            events=self._audit_rows(req.workflow_id, req.loan_id, req.case_key, req.events))

    @activity.defn(name="send_sms")
    async def send_sms(self, req: ChannelRequest) -> ContactResult:
        return await self._deliver(req)

    @activity.defn(name="send_email")
    async def send_email(self, req: ChannelRequest) -> ContactResult:
        return await self._deliver(req)

    @activity.defn(name="send_letter")
    async def send_letter(self, req: ChannelRequest) -> ContactResult:
        return await self._deliver(req)

    @activity.defn(name="place_call")
    async def place_call(self, req: ChannelRequest) -> ContactResult:
        return await self._deliver(req)

    @activity.defn(name="schedule_field_visit")
    async def schedule_field_visit(self, req: ChannelRequest) -> ContactResult:
        return await self._deliver(req)

    @activity.defn(name="instruct_law_firm")
    async def instruct_law_firm(self, req: ChannelRequest) -> ContactResult:
        return await self._deliver(req)

    @activity.defn(name="credit_bureau")
    async def credit_bureau(self, req: ChannelRequest) -> ContactResult:
        return await self._deliver(req)

    @activity.defn(name="collection_agency")
    async def collection_agency(self, req: ChannelRequest) -> ContactResult:
        return await self._deliver(req)

    @activity.defn(name="court_filing")
    async def court_filing(self, req: ChannelRequest) -> ContactResult:
        return await self._deliver(req)

    # ------------------------------------------------------------------ ledger, projection, audit

    @activity.defn(name="record_payment")
    async def record_payment(self, entry: LedgerEntry) -> bool:
        amount = parse_amount(entry.amount, entry.currency)

        def write() -> bool:  # the ledger row, the case projection and the workflow's events: one transaction
            return self.repo.record_payment_of_case(
                payment=dict(payment_id=entry.payment_id, loan_id=entry.loan_id, workflow_id=entry.workflow_id,
                             amount=amount, currency=entry.currency, paid_at=entry.paid_at,
                             allocation={k: parse_amount(v, entry.currency) for k, v in entry.allocation.items()},
                             recorded_by=next((e.actor for e in entry.events if e.actor), None)),
                case=dict(workflow_id=entry.workflow_id, loan_id=entry.loan_id, currency=entry.currency,
                          outstanding=parse_amount(entry.outstanding, entry.currency, allow_zero=True),
                          total_paid=parse_amount(entry.total_paid, entry.currency, allow_zero=True)),
                events=self._audit_rows(entry.workflow_id, entry.loan_id, entry.case_key, entry.events))

        written = await asyncio.to_thread(write)
        if written:
            meter = activity.metric_meter()
            metrics.count(meter, "collections_payments", "Payments written to the ledger", currency=entry.currency)
            metrics.count(meter, "collections_payment_amount", "Amount of payments, major units",
                          float(entry.amount), currency=entry.currency)
        _bound(loan_id=entry.loan_id).info("payment recorded", payment_id=entry.payment_id, amount=entry.amount,
                                           first_write=written)
        return written

    @activity.defn(name="record_reversal")
    async def record_reversal(self, entry: ReversalEntry) -> bool:
        cur = entry.currency

        def write() -> bool:  # the reversal row, the case projection and the workflow's events: one transaction
            return self.repo.record_reversal_of_case(
                reversal=dict(payment_id=entry.payment_id, loan_id=entry.loan_id, workflow_id=entry.workflow_id,
                              run_id=entry.run_id, amount=parse_amount(entry.amount, cur), currency=cur,
                              reason=entry.reason, reversed_at=entry.reversed_at),
                case=dict(workflow_id=entry.workflow_id, loan_id=entry.loan_id, currency=cur,
                          outstanding=parse_amount(entry.outstanding, cur, allow_zero=True),
                          total_paid=parse_amount(entry.total_paid, cur, allow_zero=True)),
                events=self._audit_rows(entry.workflow_id, entry.loan_id, entry.case_key, entry.events),
                reopened=entry.reopened)

        written = await asyncio.to_thread(write)
        _bound(loan_id=entry.loan_id).info("payment reversal recorded", payment_id=entry.payment_id,
                                           amount=entry.amount, first_write=written, reopened=entry.reopened)
        return written

    @activity.defn(name="record_events")
    async def record_events(self, batch: AuditEvents) -> None:
        await asyncio.to_thread(self._audit, batch.workflow_id, batch.loan_id, batch.case_key, batch.events)

    @activity.defn(name="record_case_closed")
    async def record_case_closed(self, closed: CaseClosed) -> None:
        cur = closed.currency

        def write() -> None:
            self.repo.project_case(closed.workflow_id, closed.loan_id, cur, status="closed", outcome=closed.outcome,
                                   outstanding=parse_amount(closed.outstanding, cur, allow_zero=True),
                                   total_paid=parse_amount(closed.total_paid, cur, allow_zero=True),
                                   closed_at=closed.closed_at)
            self._audit(closed.workflow_id, closed.loan_id, closed.case_key, closed.events)

        await asyncio.to_thread(write)
        _bound(loan_id=closed.loan_id).info("case closed", outcome=closed.outcome)

    def all(self) -> list:
        return [self.check_contacts, self.record_hold, self.send_sms, self.send_email, self.send_letter, self.place_call, self.schedule_field_visit,
                self.instruct_law_firm, self.credit_bureau, self.collection_agency, self.court_filing,
                self.record_payment, self.record_reversal, self.record_events, self.record_case_closed]

