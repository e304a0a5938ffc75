"""Sign-in to the console with an operator's token, sessions, and CSRF protection.

- The token is checked once, at sign-in, against its hash (access.operators); the session keeps the
  operator id, roles and the token's id, never the token. Every request re-checks in the database
  that the token is still live (not revoked or expired) and the operator still active, so revoking
  a token or disabling an operator ends their console sessions too.
- The session id is 32 random bytes in a cookie that is HttpOnly, SameSite=Strict, Path=/console,
  and Secure when the request came over HTTPS (directly, or X-Forwarded-Proto from a proxy the API
  trusts: CONSOLE_TRUST_PROXY=1) or CONSOLE_COOKIE_SECURE=1. Sessions are kept in the database (by the
  SHA-256 of the id, so every API replica knows them), last 8 hours, and end at sign-out: the old
  cookie is then worth nothing.
- CSRF: each session has a random token that every form carries (and htmx sends as X-CSRF-Token); a
  POST without it, or from another origin (Origin/Referer not this host), is refused with 403.
- Sign-in attempts are limited per client address (10 a minute) and forms are read up to 64 KiB.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi import Request
from sqlalchemy import delete, select
from sqlmodel import col

from access.permissions import Caller
from db.tables import ConsoleSessionRow, OperatorRow, OperatorTokenRow

COOKIE = "console_session"
SESSION_SECONDS = 8 * 3600
MAX_FORM_BYTES = 64 * 1024
LOGIN_ATTEMPTS_PER_MINUTE = 10


class CsrfError(Exception):
    pass


class FormTooLarge(Exception):
    pass


@dataclass
class Session:
    operator_id: str
    name: str
    roles: tuple[str, ...]
    token_id: str
    csrf: str
    expires: float
    checked: float = 0.0

    def caller(self) -> Caller:
        return Caller(self.operator_id, self.roles, via="console", token_id=self.token_id, name=self.name)


@dataclass
class Sessions:
    """Sessions by the SHA-256 of their id, in the database (table console_sessions) when the console has one,
    so that any API replica behind a load balancer knows them and a restart keeps them; in this process otherwise."""

    repo: Callable[[], Any] | None = None
    items: dict[str, Session] = field(default_factory=dict)
    attempts: dict[str, deque] = field(default_factory=dict)

    @staticmethod
    def _key(sid: str) -> str:
        return hashlib.sha256(sid.encode()).hexdigest()

    def create(self, caller: Caller) -> str:
        self.expire()
        sid = secrets.token_urlsafe(32)
        sess = Session(
            caller.operator_id,
            caller.name or caller.operator_id,
            caller.roles,
            caller.token_id or "",
            secrets.token_urlsafe(32),
            time.time() + SESSION_SECONDS,
        )
        if self.repo is None:
            self.items[self._key(sid)] = sess
            return sid
        with self.repo().session() as s:
            s.add(
                ConsoleSessionRow(
                    key=self._key(sid),
                    operator_id=sess.operator_id,
                    name=sess.name,
                    roles=",".join(sess.roles),
                    token_id=sess.token_id,
                    csrf=sess.csrf,
                    expires_at=datetime.fromtimestamp(sess.expires, UTC),
                )
            )
            s.commit()
        return sid

    def get(self, sid: str | None) -> Session | None:
        if not sid or len(sid) > 100:
            return None
        if self.repo is None:
            sess = self.items.get(self._key(sid))
        else:
            with self.repo().session() as s:
                row = s.get(ConsoleSessionRow, self._key(sid))
            sess = (
                None
                if row is None
                else Session(
                    row.operator_id,
                    row.name,
                    tuple(r for r in row.roles.split(",") if r),
                    row.token_id,
                    row.csrf,
                    row.expires_at.timestamp(),
                )
            )
        if sess is None or sess.expires <= time.time():
            return None
        return sess

    def end(self, sid: str | None) -> None:
        if not sid:
            return
        if self.repo is None:
            self.items.pop(self._key(sid), None)
            return
        with self.repo().session() as s:
            s.execute(delete(ConsoleSessionRow).where(col(ConsoleSessionRow.key) == self._key(sid)))
            s.commit()

    def expire(self) -> None:
        if self.repo is None:
            now = time.time()
            for k in [k for k, v in self.items.items() if v.expires <= now]:
                del self.items[k]
            return
        with self.repo().session() as s:
            s.execute(delete(ConsoleSessionRow).where(col(ConsoleSessionRow.expires_at) <= datetime.now(UTC)))
            s.commit()

    def may_try(self, client: str) -> bool:
        now = time.monotonic()
        q = self.attempts.setdefault(client, deque())
        while q and q[0] < now - 60:
            q.popleft()
        if len(q) >= LOGIN_ATTEMPTS_PER_MINUTE:
            return False
        q.append(now)
        return True


def still_live(repo, sess: Session) -> bool:
    """The session's token is neither revoked nor expired and its operator is active (read from the database)."""
    with repo.session() as s:
        tok = s.get(OperatorTokenRow, sess.token_id)
        if tok is None or tok.revoked_at is not None or tok.expires_at <= datetime.now(UTC):
            return False
        op = s.scalar(select(OperatorRow).where(OperatorRow.id == tok.operator_id))
        return op is not None and op.active and op.id == sess.operator_id


def secure_request(request: Request) -> bool:
    from console.config import console_settings

    cfg = console_settings()
    if cfg.cookie_secure or request.url.scheme == "https":
        return True
    return cfg.trust_proxy and request.headers.get("x-forwarded-proto", "").lower() == "https"


def set_cookie(response, request: Request, sid: str) -> None:
    response.set_cookie(
        COOKIE, sid, max_age=SESSION_SECONDS, path="/console", httponly=True, samesite="strict", secure=secure_request(request)
    )


def clear_cookie(response, request: Request) -> None:
    response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="strict", secure=secure_request(request))


def same_origin(request: Request) -> bool:
    """A POST's Origin (or else Referer) names this host; browsers send Origin on every form POST."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source:
        return False
    parts = urlsplit(source)
    return parts.netloc == request.headers.get("host", "") and parts.scheme in ("http", "https")


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form, at most MAX_FORM_BYTES (refused by Content-Length before reading), one value a key."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_FORM_BYTES):
        raise FormTooLarge()
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise FormTooLarge()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise FormTooLarge() from None
    return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True, max_num_fields=100).items()}


def check_csrf(request: Request, sess: Session, form: dict[str, str]) -> None:
    given = form.get("csrf") or request.headers.get("x-csrf-token") or ""
    if not same_origin(request) or not hmac.compare_digest(given.encode(), sess.csrf.encode()):
        raise CsrfError()
