"""Operators and their API tokens, in the system of record.

A token is `ct_<id>_<secret>`: the id is public (it names the token in lists and revocations), the
secret is 32 random bytes shown once and stored only as its SHA-256. Checking a token reads the row
by id and compares the hashes with hmac.compare_digest (constant time); an unknown id is compared
against a dummy hash, so the time taken says nothing about which part was wrong.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlmodel import col

from access.permissions import ROLES, Caller
from db.tables import OperatorRow, OperatorTokenRow
from domain.errors import InvalidInput
from domain.text import clean_text

TOKEN_RE = re.compile(r"ct_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
DEFAULT_TOKEN_DAYS = 90
MAX_TOKEN_DAYS = 366
_DUMMY_HASH = hashlib.sha256(b"no such token").hexdigest()


class OperatorError(ValueError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


def _now() -> datetime:
    return datetime.now(UTC)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def clean_name(value: str, field: str = "name", max_length: int = 100) -> str:
    """A person's name: NFKC-normalised, trimmed, not blank, no control or format characters (domain.text)."""
    try:
        return clean_text(value, field, max_length)
    except InvalidInput as exc:
        raise OperatorError(exc.field, exc.reason) from None


def check_roles(roles: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    unknown = [r for r in roles if r not in ROLES]
    if unknown or not roles:
        raise OperatorError("role", f"{', '.join(unknown) or 'none given'}: roles are {', '.join(ROLES)}")
    return tuple(r for r in ROLES if r in roles)


@dataclass(frozen=True)
class IssuedToken:
    token: str  # shown once, never stored
    token_id: str
    operator_id: str
    expires_at: datetime


@dataclass(frozen=True)
class OperatorInfo:
    id: str
    display_name: str
    roles: tuple[str, ...]
    active: bool
    created_at: datetime
    disabled_at: datetime | None
    tokens: tuple[tuple[str, datetime, datetime | None], ...] = ()  # (id, expires_at, revoked_at)


class Operators:
    def __init__(self, repo) -> None:
        self.repo = repo

    def add(self, name: str, roles: list[str] | tuple[str, ...]) -> OperatorInfo:
        name = clean_name(name)
        roles = check_roles(list(roles))
        with self.repo.session() as s:
            if s.scalar(select(OperatorRow).where(col(OperatorRow.display_name) == name)) is not None:
                raise OperatorError("name", f"an operator named {name!r} exists already")
            row = OperatorRow(id=f"op-{secrets.token_hex(6)}", display_name=name, roles=",".join(roles))
            s.add(row)
            s.commit()
            return self._info(row)

    def find(self, name_or_id: str) -> OperatorRow | None:
        with self.repo.session() as s:
            row = s.get(OperatorRow, name_or_id)
            if row is None:
                key = unicodedata.normalize("NFKC", name_or_id).strip()
                row = s.scalar(select(OperatorRow).where(col(OperatorRow.display_name) == key))
            return row

    def ensure(self, name: str, roles: list[str] | tuple[str, ...]) -> OperatorInfo:
        """The operator of this name (created with these roles when missing): the dev stack's `dev`."""
        row = self.find(name)
        return self._info(row) if row is not None else self.add(name, roles)

    def issue_token(self, name_or_id: str, days: int = DEFAULT_TOKEN_DAYS) -> IssuedToken:
        if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= MAX_TOKEN_DAYS:
            raise OperatorError("days", f"must be a whole number of days from 1 to {MAX_TOKEN_DAYS}")
        row = self.find(name_or_id)
        if row is None:
            raise OperatorError("operator", f"no operator {name_or_id!r}")
        if not row.active:
            raise OperatorError("operator", f"{row.id} is disabled")
        token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        expires = _now() + timedelta(days=days)
        with self.repo.session() as s:
            s.add(OperatorTokenRow(id=token_id, operator_id=row.id, secret_hash=_hash(secret), expires_at=expires))
            s.commit()
        return IssuedToken(token=f"ct_{token_id}_{secret}", token_id=token_id, operator_id=row.id, expires_at=expires)

    def revoke(self, token_id: str) -> bool:
        """Revoke a token by its id (or by the whole token); False when there was no such live token."""
        m = TOKEN_RE.fullmatch(token_id)
        token_id = m.group(1) if m else token_id
        with self.repo.session() as s:
            n = s.execute(
                update(OperatorTokenRow)
                .where(col(OperatorTokenRow.id) == token_id, col(OperatorTokenRow.revoked_at).is_(None))
                .values(revoked_at=_now())
            ).rowcount
            s.commit()
        return bool(n)

    def disable(self, name_or_id: str) -> bool:
        row = self.find(name_or_id)
        if row is None:
            return False
        with self.repo.session() as s:
            s.execute(update(OperatorRow).where(col(OperatorRow.id) == row.id).values(active=False, disabled_at=_now()))
            s.commit()
        return True

    def list(self) -> list[OperatorInfo]:
        with self.repo.session() as s:
            ops = list(s.scalars(select(OperatorRow).order_by(col(OperatorRow.created_at), col(OperatorRow.id))))
            toks = list(s.scalars(select(OperatorTokenRow).order_by(col(OperatorTokenRow.created_at))))
        by_op: dict[str, list] = {}
        for t in toks:
            by_op.setdefault(t.operator_id, []).append((t.id, t.expires_at, t.revoked_at))
        return [self._info(o, tuple(by_op.get(o.id, ()))) for o in ops]

    def names(self, ids: Iterable[str]) -> dict[str, str]:  # `list` here would name the method above
        """Display names by operator id (for status: names are never in workflow history)."""
        ids = {i for i in ids if i}
        if not ids:
            return {}
        with self.repo.session() as s:
            return {o.id: o.display_name for o in s.scalars(select(OperatorRow).where(col(OperatorRow.id).in_(ids)))}

    def set_language(self, operator_id: str, code: str) -> None:
        """The console language the operator chose, kept on their record (it follows them to another browser)."""
        with self.repo.session() as s:
            s.execute(update(OperatorRow).where(col(OperatorRow.id) == operator_id).values(language=code))
            s.commit()

    def language(self, operator_id: str) -> str | None:
        with self.repo.session() as s:
            row = s.get(OperatorRow, operator_id)
            return row.language if row is not None else None

    def authenticate(self, token: str) -> Caller | None:
        """The caller a token belongs to, or None (unknown, wrong secret, expired, revoked, operator disabled)."""
        m = TOKEN_RE.fullmatch(token or "")
        token_id, secret = (m.group(1), m.group(2)) if m else ("", token or "")
        row = op = None
        if token_id:
            with self.repo.session() as s:
                row = s.get(OperatorTokenRow, token_id)
                op = s.get(OperatorRow, row.operator_id) if row is not None else None
        good = hmac.compare_digest(_hash(secret), row.secret_hash if row is not None else _DUMMY_HASH)
        if not good or row is None or op is None:
            return None
        if row.revoked_at is not None or row.expires_at <= _now() or not op.active:
            return None
        return Caller(op.id, op.roles.split(","), via="token", token_id=row.id, name=op.display_name)

    @staticmethod
    def _info(o: OperatorRow, tokens: tuple = ()) -> OperatorInfo:
        return OperatorInfo(
            id=o.id,
            display_name=o.display_name,
            roles=tuple(o.roles.split(",")),
            active=o.active,
            created_at=o.created_at,
            disabled_at=o.disabled_at,
            tokens=tokens,
        )
