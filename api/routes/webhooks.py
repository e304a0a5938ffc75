"""/webhooks/...: what the channel gateway tells us (signed, not bearer-authenticated: app/webhooks.py)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from api.deps import E422, E503, ApiError, Backend, backend
from app import replies, webhooks
from domain.webhooks import HEADER

router = APIRouter(prefix="/webhooks", tags=["webhooks"], responses={**E422, **E503})
BackendDep = Annotated[Backend, Depends(backend)]
BODY_LIMIT = 8 * 1024


async def _signed(request: Request, be: Backend, take) -> Any:  # noqa: ANN001 - app/webhooks.py's or app/replies.py's
    body = await request.body()
    if len(body) > BODY_LIMIT:
        raise ApiError(413, None, f"the body is larger than {BODY_LIMIT} bytes")
    try:
        return await take(await be.client(), be.repo(), request.headers.get(HEADER), body, dt.datetime.now(dt.UTC))
    except webhooks.Unsigned as exc:
        raise ApiError(401, HEADER, str(exc)) from None


@router.post(
    "/payments",
    summary="A payment confirmed on the gateway's payment page (signed: X-Signature t=..,v1=HMAC-SHA-256)",
    responses={401: {"description": "no or wrong signature, or a replay; nothing applied"}},
)
async def payment(request: Request, be: BackendDep) -> Any:
    return await _signed(request, be, webhooks.payment_confirmed)


@router.post(
    "/sms",
    summary="A borrower's SMS reply, as the SMS provider delivers it (signed as /webhooks/payments is)",
    responses={401: {"description": "no or wrong signature, or a replay; nothing recorded"}},
)
async def sms(request: Request, be: BackendDep) -> Any:
    return await _signed(request, be, replies.sms_reply)
