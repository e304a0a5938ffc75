"""POST /v1/<channel>: one route per provider, each with the same rules (the contract in sandbox/gateway/__init__.py):
the API key, the Idempotency-Key, the faults in their order, the body against the provider's model, the outbox."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Iterable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from sandbox.gateway.common import ApiError, Channel, dumps, parse, utcnow
from sandbox.gateway.state import Gateway


def delivery_router(gw: Gateway, channels: Iterable[Channel]) -> APIRouter:
    router = APIRouter()
    for channel in channels:
        _add_channel(router, gw, channel)
    return router


def _add_channel(router: APIRouter, gw: Gateway, channel: Channel) -> None:
    async def deliver(request: Request) -> JSONResponse:
        gw.stats.requests += 1
        try:
            return await _deliver(gw, request, channel)
        except ApiError as exc:
            if exc.status in (400, 401, 409, 422):
                gw.stats.rejected += 1
            raise

    deliver.__name__ = f"deliver_{channel.name}"
    router.add_api_route(
        channel.path,
        deliver,
        methods=["POST"],
        name=f"deliver_{channel.name}",
        summary=f"Deliver through the {channel.name} channel",
        openapi_extra={
            "requestBody": {"required": True, "content": {"application/json": {"schema": channel.model.model_json_schema()}}}
        },
    )


async def _deliver(gw: Gateway, request: Request, channel: Channel) -> JSONResponse:
    gw.check_key(request)
    key = request.headers.get("idempotency-key")
    if key is None or not key.strip():
        raise ApiError(400, "Idempotency-Key", "header Idempotency-Key is required (1-200 characters)")
    if len(key) > 200:
        raise ApiError(400, "Idempotency-Key", f"header Idempotency-Key is {len(key)} characters; at most 200")

    faults = gw.faults
    if faults.latency_ms:
        await asyncio.sleep(faults.latency_ms / 1000)
    if gw.burst_left > 0:
        gw.burst_left -= 1
        gw.stats.faults["429"] += 1
        raise ApiError(429, None, "rate limited (injected fault)", headers={"Retry-After": str(faults.retry_after_s)})
    if gw.roll(faults.error_rate):
        gw.stats.faults["503"] += 1
        raise ApiError(503, None, "service unavailable (injected fault); nothing was delivered")

    body_model = parse(channel.model, await request.body())
    body = body_model.model_dump(mode="json", exclude_unset=True)  # as sent: defaults not added
    fingerprint = hashlib.sha256(dumps({"channel": channel.name, "body": body}).encode()).hexdigest()

    def make_response() -> dict:
        now = utcnow()
        return {
            "id": f"{channel.prefix}_{uuid.uuid4().hex[:20]}",
            "channel": channel.name,
            "idempotency_key": key,
            "accepted_at": now.isoformat(),
            "duplicate": False,
            "loan_id": body_model.loan_id,
            **channel.fields(body_model, now, gw),
        }

    status, response = gw.store.record(channel.name, body_model.loan_id, key, fingerprint, body, make_response)
    if status == "conflict":
        raise ApiError(409, "Idempotency-Key", "reused with a different request")
    if status == "duplicate":
        gw.stats.duplicates += 1
        response["duplicate"] = True
    else:
        gw.stats.accepted += 1
    if gw.roll(faults.lost_response_rate):
        gw.stats.faults["502"] += 1
        raise ApiError(502, None, "bad gateway (injected fault): the request was processed but the response was lost")
    return JSONResponse(response)
