"""Signed webhooks from the channel gateway (a payment confirmed on its payment page, an SMS reply): the signature
rule, pure. The gateway sends `X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA-256 of "<t>.<body>">`, as payment
providers do; a request is taken only when its signature matches, its time is within TOLERANCE of ours (a replay of
an old request is refused), and its event id was not taken before (a duplicate delivery changes nothing)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta

TOLERANCE = timedelta(minutes=5)
HEADER = "X-Signature"


def sign(secret: bytes, at: datetime, body: bytes) -> str:
    t = int(at.timestamp())
    mac = hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def problem(secret: bytes, header: str | None, body: bytes, now: datetime) -> str | None:
    """Why a signed request is refused, or None when it may be taken."""
    if not header:
        return f"no {HEADER} header"
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    t, given = parts.get("t", ""), parts.get("v1", "")
    if not t.isdigit() or not given:
        return f"{HEADER} is not t=<seconds>,v1=<hex>"
    want = hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(want.encode(), given.encode()):
        return "the signature does not match"
    if abs(now.timestamp() - int(t)) > TOLERANCE.total_seconds():
        return f"signed at {t}, more than {int(TOLERANCE.total_seconds())} s from now: a replay, or a clock far off"
    return None


def derived_secret(api_key: str) -> bytes:
    """The signing secret when none is configured: derived from the gateway's API key, which the worker, the API
    and the gateway already share (a real provider issues its own signing secret: GATEWAY_WEBHOOK_SECRET)."""
    return hmac.new(api_key.encode(), b"collections-webhooks", hashlib.sha256).digest()
