"""In-memory activities with the real ones' names and types: every contact delivered, every record
accepted, no database and no HTTP. Item 4 runs with them beside the real ones, to show what the
workflows cost on their own and what the system of record and the gateway add."""

from __future__ import annotations

from temporalio import activity

from activities.contracts import (
    CHANNEL_FOR_ACTION, AuditEvents, CaseClosed, ChannelRequest, GateCheck, GateDecision, HoldChange, LedgerEntry,
)
from domain.models import ContactResult


def _contact(req: ChannelRequest) -> ContactResult:
    return ContactResult(action=req.action, channel=CHANNEL_FOR_ACTION[req.action],
                         outcome="answered" if req.action == "call" else None, reference=req.idempotency_key[-40:])


class StubActivities:
    @activity.defn(name="check_contacts")
    async def check_contacts(self, check: GateCheck) -> list[GateDecision]:
        return [GateDecision(action=a, allowed=True, rule="stub", reason="stub gate") for a in check.actions]

    @activity.defn(name="record_hold")
    async def record_hold(self, change: HoldChange) -> None:
        return None

    @activity.defn(name="send_sms")
    async def send_sms(self, req: ChannelRequest) -> ContactResult:
        return _contact(req)

    @activity.defn(name="send_email")
    async def send_email(self, req: ChannelRequest) -> ContactResult:
        return _contact(req)

    @activity.defn(name="send_letter")
    async def send_letter(self, req: ChannelRequest) -> ContactResult:
        return _contact(req)

    @activity.defn(name="place_call")
    async def place_call(self, req: ChannelRequest) -> ContactResult:
        return _contact(req)

    @activity.defn(name="schedule_field_visit")
    async def schedule_field_visit(self, req: ChannelRequest) -> ContactResult:
        return _contact(req)

    @activity.defn(name="instruct_law_firm")
    async def instruct_law_firm(self, req: ChannelRequest) -> ContactResult:
        return _contact(req)

    @activity.defn(name="credit_bureau")
    async def credit_bureau(self, req: ChannelRequest) -> ContactResult:
        return _contact(req)

    @activity.defn(name="collection_agency")
    async def collection_agency(self, req: ChannelRequest) -> ContactResult:
        return _contact(req)

    @activity.defn(name="court_filing")
    async def court_filing(self, req: ChannelRequest) -> ContactResult:
        return _contact(req)

    @activity.defn(name="record_payment")
    async def record_payment(self, entry: LedgerEntry) -> bool:
        return True

    @activity.defn(name="record_events")
    async def record_events(self, batch: AuditEvents) -> None:
        return None

    @activity.defn(name="record_case_closed")
    async def record_case_closed(self, closed: CaseClosed) -> None:
        return None

    def all(self) -> list:
        return [getattr(self, n) for n in (
            "check_contacts", "record_hold", "send_sms", "send_email", "send_letter", "place_call",
            "schedule_field_visit", "instruct_law_firm", "credit_bureau", "collection_agency", "court_filing",
            "record_payment", "record_events", "record_case_closed")]


def missing_from_stubs(real_names: list[str]) -> list[str]:
    ours = {a.__temporal_activity_definition.name for a in StubActivities().all()}  # type: ignore[attr-defined]
    return sorted(set(real_names) - ours)
