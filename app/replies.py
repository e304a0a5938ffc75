"""A borrower's SMS reply, as the SMS provider delivers it (a signed webhook, domain/webhooks.py): matched to its case
by the message it answers, written on the case's timeline, acted on when it is one of the policy's keywords ("1": the
whole amount within 3 days, a promise through the same application layer as the page's), else left for a person on
the console's replies worklist. Nothing is acted on twice (the event id), nor lost (a reply that matches no case, or
whose keyword the case refuses, still reaches the worklist)."""

from __future__ import annotations

import asyncio
import datetime as dt

import structlog
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlmodel import col, select
from temporalio.client import Client

from access.permissions import as_borrower
from app import inputs, visibility
from app.errors import BadInput
from app.webhooks import verified
from db.records import EventRecord
from db.repo import Repo, _insert
from db.tables import ContactRow, InboundMessageRow
from domain.models import ID_PATTERN
from domain.policy import load_policy

log = structlog.get_logger("replies")
TEXT_KEPT = 500


class SmsReply(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(pattern=ID_PATTERN)
    in_reply_to: str | None = Field(default=None, max_length=100, description="the provider's id of the SMS it answers")
    sender: str = Field(min_length=4, max_length=20, description="the number it came from")
    text: str = Field(max_length=2000)
    received_at: AwareDatetime


def _match(repo: Repo, message_id: str | None) -> ContactRow | None:
    if not message_id:
        return None
    with repo.session() as s:
        return s.exec(select(ContactRow).where(col(ContactRow.reference) == message_id, col(ContactRow.channel) == "sms")).first()


def _seen(repo: Repo, event_id: str) -> InboundMessageRow | None:
    with repo.session() as s:
        return s.exec(select(InboundMessageRow).where(col(InboundMessageRow.event_id) == event_id)).first()


def _keep(repo: Repo, row: InboundMessageRow, event: EventRecord | None) -> None:
    """The reply, and its line on the case's timeline, in one transaction (once per event id)."""
    with repo.session() as s:
        values = row.model_dump(exclude={"id"})
        s.execute(_insert(s, InboundMessageRow).on_conflict_do_nothing(index_elements=["event_id"]), values)
        if event is not None:
            repo.record_events([event], session=s)
        s.commit()


def replies(repo: Repo, status: str = "needs_person", limit: int = 500) -> list[InboundMessageRow]:
    with repo.session() as s:
        q = select(InboundMessageRow).where(col(InboundMessageRow.status) == status)
        return list(s.scalars(q.order_by(col(InboundMessageRow.received_at).desc()).limit(limit)))


async def _promise(client: Client, loan_id: str, days: int, today: dt.date) -> str:
    with as_borrower(loan_id):
        st = await visibility.case_status(client, loan_id)
        result = await inputs.send_update(
            client, loan_id, "promise", {"amount": st.outstanding["total"], "date": today + dt.timedelta(days=days)}
        )
    return result.message


async def sms_reply(client: Client, repo: Repo, signature: str | None, body: bytes, now: dt.datetime) -> dict:
    reply = verified(SmsReply, signature, body, now)
    if (known := await asyncio.to_thread(_seen, repo, reply.event_id)) is not None:
        return {"status": known.status, "event_id": reply.event_id, "duplicate": True}
    text = reply.text.strip()
    sent = await asyncio.to_thread(_match, repo, reply.in_reply_to)
    keyword: str | None = None
    status, result = "needs_person", "no case matches the message it answers"
    if sent is not None:
        loan = await asyncio.to_thread(repo.loan, sent.loan_id)
        rules = _reply_rules(sent.workflow_id, loan)
        person = await asyncio.to_thread(repo.borrower, sent.borrower_id)
        today = now.astimezone(_zone(person.timezone if person else "Asia/Shanghai")).date()
        if text in rules:
            keyword = text
            try:
                result = await _promise(client, sent.loan_id, rules[text], today)
                status = "acted"
            except BadInput as exc:  # the case refused the promise (a plan in force, closed): a person decides
                result = f"keyword {text}: the case refused the promise: {exc.field}: {exc.reason}"
        else:
            result = "not a keyword: for a person to read and answer"
    row = InboundMessageRow(
        event_id=reply.event_id,
        in_reply_to=reply.in_reply_to,
        loan_id=sent.loan_id if sent else None,
        workflow_id=sent.workflow_id if sent else None,
        sender_tail=reply.sender[-4:],
        text=text[:TEXT_KEPT],
        keyword=keyword,
        status=status,
        result=result[:1000],
        received_at=reply.received_at,
    )
    event = None
    if sent is not None:
        event = EventRecord(
            workflow_id=sent.workflow_id,
            loan_id=sent.loan_id,
            at=reply.received_at,
            kind="reply_received",
            detail=f"SMS reply to {sent.step}/{sent.action}: {text[:140]!r}"
            + (f" (keyword {keyword})" if keyword else "")
            + f"; {'acted on' if status == 'acted' else 'for a person'}",
            cause={"in_reply_to": reply.in_reply_to, "event_id": reply.event_id},
            dedupe_key=f"reply:{reply.event_id}",
            actor=f"borrower:{sent.loan_id}",
        )
    await asyncio.to_thread(_keep, repo, row, event)
    log.info("sms reply", loan_id=row.loan_id, status=status, keyword=keyword)  # never the text or the number
    return {"status": status, "event_id": reply.event_id, "loan_id": row.loan_id, "result": result}


def _reply_rules(workflow_id: str, loan) -> dict[str, int]:  # noqa: ANN001 - a LoanRow or None
    """The keywords of the case's policy (the loan's, from its policy file; the default's when unknown)."""
    name = getattr(loan, "policy", None) or "default"
    try:
        policy = load_policy(name)
    except Exception:  # noqa: BLE001 - an unknown policy name: the default's keywords
        policy = load_policy("default")
    return {k: min(d, policy.promise.max_days_ahead) for k, d in policy.replies.promise_keywords.items()}


def _zone(tz: str):  # noqa: ANN202
    from domain.dates import zone

    return zone(tz)
