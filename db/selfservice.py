"""The database side of the borrower's page: the links messages carried, their one-time codes and the sessions behind
them (db.tables.BorrowerLinkRow, BorrowerSessionRow). The rules are domain/selfservice.py's; this module reads and
writes what they need, each in one transaction."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal, cast

from sqlalchemy import CursorResult, func, update
from sqlmodel import Session, col, select

from db.repo import Repo, _insert
from db.tables import BorrowerLinkRow, BorrowerSessionRow, ContactRow, table_of
from domain import selfservice as rules

LINKS = table_of(BorrowerLinkRow)
TRANSACTIONAL = "transactional"  # a contact row's status for a code the borrower asked for: never a collection contact


class LinkStore:
    def __init__(self, repo: Repo) -> None:
        self.repo = repo

    def issue(
        self,
        secret: bytes,
        base_url: str,
        *,
        idempotency_key: str,
        workflow_id: str,
        loan_id: str,
        borrower_id: str,
        recipient_id: str,
        audience: rules.Audience,
        channel: str,
        now: datetime,
        session: Session | None = None,
    ) -> str:
        """The link the message sent under `idempotency_key` carries (its every attempt the same), recorded by its
        token's keyed hash only; returns the URL."""
        token = rules.link_token(secret, idempotency_key)
        values = dict(
            token_hash=rules.keyed_hash(secret, "link", token),
            workflow_id=workflow_id,
            loan_id=loan_id,
            borrower_id=borrower_id,
            recipient_id=recipient_id,
            audience=audience,
            channel=channel,
            created_at=now,
            expires_at=now + timedelta(days=rules.LINK_DAYS),
            wrong_codes=0,
            secret_fp=rules.fingerprint(secret),
        )
        with self.repo.tx(session) as s:  # once: a send's every attempt makes the same token
            s.execute(_insert(s, BorrowerLinkRow).on_conflict_do_nothing(index_elements=["token_hash"]), values)
        return f"{base_url.rstrip('/')}/b/{token}"

    def latest_fingerprint(self) -> str | None:
        """The secret's fingerprint on the newest link (None: no link yet, or made before fingerprints were kept)."""
        with self.repo.session() as s:
            return s.scalar(select(LINKS.c.secret_fp).order_by(LINKS.c.id.desc()).limit(1))

    def link(self, token_hash: str) -> BorrowerLinkRow | None:
        with self.repo.session() as s:
            return s.exec(select(BorrowerLinkRow).where(col(BorrowerLinkRow.token_hash) == token_hash)).first()

    def links_of(self, loan_id: str) -> list[BorrowerLinkRow]:
        with self.repo.session() as s:
            return list(s.exec(select(BorrowerLinkRow).where(col(BorrowerLinkRow.loan_id) == loan_id)).all())

    def revoke(self, link_id: int, now: datetime) -> None:
        with self.repo.session() as s:
            s.execute(update(LINKS).where(LINKS.c.id == link_id).values(revoked_at=now))
            s.commit()

    def codes_sent_to(self, recipient_id: str, since: datetime) -> int:
        """Codes sent to this person (their phone on file) since then, by any link: the contact ledger counts them."""
        with self.repo.session() as s:
            return int(
                s.exec(
                    select(func.count()).where(
                        col(ContactRow.borrower_id) == recipient_id,
                        col(ContactRow.status) == TRANSACTIONAL,
                        col(ContactRow.created_at) >= since,
                    )
                ).one()
            )

    def reserve_code(self, link_id: int, now: datetime) -> bool:
        """Take the link's next code send, atomically: True for one request only, however many arrive at once (two
        parallel requests cannot both pass the resend wait and send two codes)."""
        with self.repo.session() as s:
            c = LINKS.c
            done = s.execute(
                update(LINKS)
                .where(
                    c.id == link_id,
                    (c.code_sent_at.is_(None)) | (c.code_sent_at <= now - rules.RESEND_AFTER),
                    (c.locked_until.is_(None)) | (c.locked_until <= now),
                )
                .values(code_sent_at=now)
            )
            s.commit()
            return bool(getattr(done, "rowcount", 0))

    def code_sent(
        self, link: BorrowerLinkRow, code_hash: str, now: datetime, *, idempotency_key: str, reference: str | None
    ) -> None:
        """The code is out: kept (hashed) on the link, and the message in the contact ledger as transactional, which
        the contact gate does not count (it counts pending and delivered collection contacts)."""
        with self.repo.session() as s:
            s.execute(
                update(LINKS)
                .where(LINKS.c.id == link.id)
                .values(code_hash=code_hash, code_sent_at=now, code_expires_at=now + rules.CODE_TTL)
            )
            s.add(
                ContactRow(
                    idempotency_key=idempotency_key,
                    workflow_id=link.workflow_id,
                    loan_id=link.loan_id,
                    borrower_id=link.recipient_id,
                    step="self_service",
                    channel="sms",
                    action="access_code",
                    status=TRANSACTIONAL,
                    reference=reference,
                    attempts=1,
                    at=now,
                )
            )
            s.commit()

    def check_code(self, link_id: int, code_hash: str, now: datetime) -> Literal["ok", "wrong", "expired", "locked"]:
        """One try of a code (the link row locked while it is judged, so two tries cannot both count as the first)."""
        with self.repo.session() as s:
            link = s.exec(select(BorrowerLinkRow).where(col(BorrowerLinkRow.id) == link_id).with_for_update()).one()
            if link.locked_until is not None and now < link.locked_until:
                return "locked"
            if link.code_hash is None or link.code_expires_at is None or now >= link.code_expires_at:
                return "expired"
            if link.code_hash == code_hash:
                s.execute(update(LINKS).where(LINKS.c.id == link_id).values(code_hash=None, code_expires_at=None, wrong_codes=0))
                s.commit()
                return "ok"
            wrong = link.wrong_codes + 1
            locked = rules.lock_after(now, wrong)
            values: dict = {"wrong_codes": 0 if locked else wrong, "locked_until": locked}
            if locked is not None:
                values.update(code_hash=None, code_expires_at=None)  # a locked link's code is spent too
            s.execute(update(LINKS).where(LINKS.c.id == link_id).values(**values))
            s.commit()
            return "locked" if locked else "wrong"

    def start_session(self, link_id: int, session_hash: str, now: datetime) -> None:
        with self.repo.session() as s:
            s.add(
                BorrowerSessionRow(session_hash=session_hash, link_id=link_id, created_at=now, expires_at=now + rules.SESSION_TTL)
            )
            s.commit()

    def session(self, session_hash: str, now: datetime) -> BorrowerLinkRow | None:
        """The link of a live session, or None (unknown, expired, or its link revoked or expired)."""
        with self.repo.session() as s:
            row = s.exec(
                select(BorrowerLinkRow)
                .join(BorrowerSessionRow, col(BorrowerSessionRow.link_id) == col(BorrowerLinkRow.id))
                .where(col(BorrowerSessionRow.session_hash) == session_hash, col(BorrowerSessionRow.expires_at) > now)
            ).first()
        if row is None or row.revoked_at is not None or now >= row.expires_at:
            return None
        return row

    def purge(self, now: datetime) -> tuple[int, int]:
        """Delete the sessions that ended and the links expired longer ago than LINK_KEPT_AFTER_EXPIRY (with their
        sessions); clear the hashes of codes that expired. Returns (links, sessions) deleted."""
        from sqlalchemy import delete

        sessions = table_of(BorrowerSessionRow)
        with self.repo.session() as s:
            old = select(LINKS.c.id).where(LINKS.c.expires_at < now - rules.LINK_KEPT_AFTER_EXPIRY)
            ended = delete(sessions).where((sessions.c.expires_at <= now) | sessions.c.link_id.in_(old))
            gone_sessions = cast(CursorResult[Any], s.execute(ended)).rowcount
            expired = delete(LINKS).where(LINKS.c.expires_at < now - rules.LINK_KEPT_AFTER_EXPIRY)
            gone_links = cast(CursorResult[Any], s.execute(expired)).rowcount
            s.execute(update(LINKS).where(LINKS.c.code_hash.is_not(None), LINKS.c.code_expires_at < now).values(code_hash=None))
            s.commit()
        return gone_links or 0, gone_sessions or 0
