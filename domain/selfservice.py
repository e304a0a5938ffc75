"""The borrower's own door: the link every message carries, the one-time code that opens it, and the limits on both.
Pure rules; the tables are db/selfservice.py's, the flow app/selfservice.py's, the pages borrower/'s.

Sources applied (the articles as read in the published texts; where a number could not be checked it says so):
- 《个人信息保护法》 (PIPL, 2021): art. 6 (no more than the purpose needs: the page shows nothing about the debt before
  the code, and the link carries no loan id, name or amount); art. 28 (financial accounts are sensitive personal
  information: shown only to the person, after a check of who opens the page); art. 51 (security measures: the
  token, the code and the session are kept only as keyed hashes, attempts are limited, a link sent to a guarantor
  never opens the borrower's debt).
- 《银行保险机构消费者权益保护管理办法》 (原银保监会令2022年第9号, in force 1 March 2023): the consumer's rights to be
  informed and to complain, and the protection of their information (article numbers not verified here): the page
  shows the amount by component, the next step and its date, the borrower's rights and how to complain.

A link's token is derived from the message's idempotency key with the deployment's secret (HMAC-SHA-256): a send
re-run after a crash renders the very body the gateway may already hold under that key, and the database keeps
nothing but the token's keyed hash.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from base64 import urlsafe_b64encode
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

Audience = Literal["borrower", "guarantor"]

LINK_DAYS = 30  # a message's link opens the page for this long after it was sent
TOKEN_CHARS = 22  # 132 bits of the HMAC, URL-safe
CODE_DIGITS = 6
CODE_TTL = timedelta(minutes=10)
CODE_ATTEMPTS = 5  # wrong codes per link before it locks
LOCK = timedelta(minutes=30)
CODES_PER_PHONE_PER_DAY = 5  # codes sent to one phone in 24 hours, whatever the link
RESEND_AFTER = timedelta(seconds=60)
SESSION_TTL = timedelta(minutes=20)  # a session ends this long after it began
# An expired link's row is kept this long (its page says "expired" rather than "not valid"), then deleted by the
# retention job with the sessions that ended (PIPL art. 19: kept no longer than the purpose needs).
LINK_KEPT_AFTER_EXPIRY = timedelta(days=90)


def link_token(secret: bytes, idempotency_key: str) -> str:
    """The token of the message sent under `idempotency_key`: the same for every attempt of that send."""
    mac = hmac.new(secret, b"link:" + idempotency_key.encode(), hashlib.sha256).digest()
    return urlsafe_b64encode(mac).decode().rstrip("=")[:TOKEN_CHARS]


def keyed_hash(secret: bytes, kind: str, value: str) -> str:
    """What the database keeps of a token, a code or a session id: a keyed hash, so a copy of the tables opens nothing."""
    return hmac.new(secret, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()


def fingerprint(secret: bytes) -> str:
    """A short, one-way mark of the links' secret, kept on each link: the API can tell that the worker signs links
    with another secret (every link it opens would then be "not valid") without either process revealing it."""
    return hmac.new(secret, b"fingerprint", hashlib.sha256).hexdigest()[:12]


def looks_like_token(token: str) -> bool:
    return len(token) == TOKEN_CHARS and all(c.isascii() and (c.isalnum() or c in "-_") for c in token)


def new_code() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def new_session() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Refusal:
    """Why the page cannot do what was asked (a key of the page's texts), and until when."""

    reason: Literal["expired", "locked", "too_soon", "phone_limit", "wrong_code", "no_code", "no_phone"]
    until: datetime | None = None


def may_send_code(
    now: datetime, expires_at: datetime, locked_until: datetime | None, last_sent: datetime | None, sent_to_phone: int
) -> Refusal | None:
    """May a code be sent for this link now? `sent_to_phone`: codes sent to the link's phone in the last 24 hours."""
    if now >= expires_at:
        return Refusal("expired")
    if locked_until is not None and now < locked_until:
        return Refusal("locked", locked_until)
    if last_sent is not None and now < last_sent + RESEND_AFTER:
        return Refusal("too_soon", last_sent + RESEND_AFTER)
    if sent_to_phone >= CODES_PER_PHONE_PER_DAY:
        return Refusal("phone_limit", now + timedelta(hours=24))
    return None


def lock_after(now: datetime, wrong_so_far: int) -> datetime | None:
    """After CODE_ATTEMPTS wrong codes the link locks for LOCK (the page says until when)."""
    return now + LOCK if wrong_so_far >= CODE_ATTEMPTS else None


def promise_too_small(amount_minor: int, outstanding_minor: int, min_percent: int) -> int | None:
    """The least a borrower may promise on their own (a share of what is due, in minor units, rounded up), when
    `amount_minor` is below it; None when it is enough. A token promise would pause collection for nothing: an
    operator who negotiates one is not bound by this."""
    least = -(-outstanding_minor * min_percent // 100)
    return least if amount_minor < least else None
