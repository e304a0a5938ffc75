"""The case's activities: channels, the payments ledger and the case projection.

One instance per worker. Every channel request carries an idempotency key derived from the
workflow id, the case's opening time and the step, so a retry or a rerun after a crash
delivers once.
"""

from __future__ import annotations

import structlog
from temporalio import activity

from activities.contracts import CHANNEL_FOR_ACTION, CaseClosed, ChannelRequest, LedgerEntry
from domain.models import ContactResult

log = structlog.get_logger("activities")


def _bound(**kw):
    info = activity.info()
    return log.bind(workflow_id=info.workflow_id, run_id=info.workflow_run_id, activity=info.activity_type,
                    attempt=info.attempt, **kw)


class CaseActivities:
    """Log-only bodies: each records the step and returns a typed result."""

    async def _deliver(self, req: ChannelRequest) -> ContactResult:
        channel = CHANNEL_FOR_ACTION[req.action]
        _bound(loan_id=req.loan_id, step=req.step, action=req.action).info("delivered", key=req.idempotency_key)
        outcome = "answered" if req.action == "call" else None
        return ContactResult(action=req.action, channel=channel, outcome=outcome, reference=req.idempotency_key)

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

    @activity.defn(name="record_payment")
    async def record_payment(self, entry: LedgerEntry) -> None:
        _bound(loan_id=entry.loan_id).info("payment recorded", payment_id=entry.payment_id, amount=entry.amount)

    @activity.defn(name="record_case_closed")
    async def record_case_closed(self, closed: CaseClosed) -> None:
        _bound(loan_id=closed.loan_id).info("case closed", outcome=closed.outcome)

    def all(self) -> list:
        return [self.send_sms, self.send_email, self.send_letter, self.place_call, self.schedule_field_visit,
                self.instruct_law_firm, self.credit_bureau, self.collection_agency, self.court_filing,
                self.record_payment, self.record_case_closed]
