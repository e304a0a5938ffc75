"""Webhooks from the channel gateway, taken as the bank's payment feed is: a payment confirmed on the gateway's
payment page (the borrower paid by the link on their page) becomes a payment of the loan, idempotent by its id.
The signature, the time and the event id are checked first (domain/webhooks.py); nothing is applied otherwise."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import TypeVar

import structlog
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from sqlmodel import col, select
from temporalio.client import Client

from app import inputs
from app.errors import BadInput
from db.repo import Repo, _insert
from db.tables import WebhookEventRow
from domain import webhooks
from domain.errors import field_and_reason
from domain.models import ID_PATTERN
from infra.link_secret import webhook_secret

log = structlog.get_logger("webhooks")
M = TypeVar("M", bound=BaseModel)


class Unsigned(Exception):
    """The request is not the gateway's (no or wrong signature, or replayed): 401, nothing applied."""


class PaymentConfirmed(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(pattern=ID_PATTERN, description="the gateway's id of this notification")
    payment_id: str = Field(pattern=ID_PATTERN)
    loan_id: str = Field(pattern=ID_PATTERN)
    amount: str = Field(description="decimal string in major units")
    currency: str = Field(min_length=3, max_length=3)
    paid_at: AwareDatetime


def _seen(repo: Repo, event_id: str) -> bool:
    with repo.session() as s:
        return s.exec(select(WebhookEventRow).where(col(WebhookEventRow.event_id) == event_id)).first() is not None


def _taken(repo: Repo, event_id: str, loan_id: str, result: str) -> None:
    with repo.session() as s:
        values = dict(event_id=event_id, kind="payment", loan_id=loan_id, received_at=dt.datetime.now(dt.UTC), result=result)
        s.execute(_insert(s, WebhookEventRow).on_conflict_do_nothing(index_elements=["event_id"]), values)
        s.commit()


def verified(model: type[M], signature: str | None, body: bytes, now: dt.datetime) -> M:
    """The webhook's body as `model`, once its signature and time are the gateway's (Unsigned otherwise); a body that
    is not the model is BadInput naming the field."""
    why = webhooks.problem(webhook_secret(), signature, body, now)
    if why is not None:
        log.warning("webhook refused", reason=why)
        raise Unsigned(why)
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise BadInput(*field_and_reason(exc.errors())) from None


async def payment_confirmed(client: Client, repo: Repo, signature: str | None, body: bytes, now: dt.datetime) -> dict:
    event = verified(PaymentConfirmed, signature, body, now)
    if await asyncio.to_thread(_seen, repo, event.event_id):
        return {"status": "duplicate", "event_id": event.event_id, "payment_id": event.payment_id}
    # applied first, then the event noted: a delivery that failed half way is applied by the next one (the payment
    # is idempotent by its id), never lost because its event id was already taken
    outcome = await inputs.record_payment(
        client,
        repo,
        event.loan_id,
        payment_id=event.payment_id,
        amount=event.amount,
        currency=event.currency,
        paid_at=event.paid_at,
    )
    await asyncio.to_thread(_taken, repo, event.event_id, event.loan_id, f"{outcome.status}: {outcome.message}"[:200])
    log.info("payment webhook", loan_id=event.loan_id, payment_id=event.payment_id, status=outcome.status)
    return {"status": outcome.status, "event_id": event.event_id, "payment_id": event.payment_id, "duplicate": outcome.duplicate}
