"""A new year's official calendar as data, without a deploy.

Compliance adds a year's file (`starter.py calendars add FILE`, or the console's calendar page): it is validated
exactly as the loader validates a file in policies/calendars/ (domain.calendar.parse_text), and stored as a pending
change. A second operator with the role compliance approves it (four-eyes: never the one who added it). Every worker
and API process reads the approved years every minute (`watch`) and hands them to domain.calendar, where an approved
database year wins over the shipped file of the same year; `in_force` names which one is used. Nothing is copied to
hosts and nothing restarts. The rows are never deleted: who added each version and who approved or rejected it stays.

Bad input names its field and stores nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import structlog
from sqlalchemy import select
from sqlmodel import Session, col

from access.permissions import require
from app.errors import BadInput
from db.repo import Repo
from db.tables import CalendarYearRow, utcnow
from domain import calendar
from domain.dates import utc_text
from domain.errors import InvalidInput
from domain.text import clean_text

log = structlog.get_logger("calendar")

REFRESH_SECONDS = 60.0  # how often a worker or API process reads the approved years (infra/config.py overrides)
MAX_BYTES = 64 * 1024


@dataclass(frozen=True)
class CalendarChange:
    """One row: a year's calendar as added, and what became of it."""

    id: int
    year: int
    status: str  # pending | approved | rejected | superseded
    sha256: str
    maker: str  # operator id:role
    made_at: datetime
    checker: str | None
    decided_at: datetime | None
    note: str
    title: str
    number: str
    rest_days: int
    working_days: int

    @property
    def source(self) -> str:
        """How `in_force` names it once approved."""
        return f"database, approved by {self.checker} at {utc_text(self.decided_at)}Z" if self.decided_at else "database"


def _change(row: CalendarYearRow) -> CalendarChange:
    try:
        cal = calendar.parse_text(row.toml, Path(f"cn-{row.year}.toml"), row.year)
        title, number, rest, working = cal.title, cal.number, len(cal.rest), len(cal.working)
    except InvalidInput as exc:  # a row the loader no longer accepts is still listed (the audit trail)
        title, number, rest, working = f"does not load: {exc}", "", 0, 0
    assert row.id is not None
    return CalendarChange(
        row.id,
        row.year,
        row.status,
        row.sha256,
        row.maker,
        row.made_at,
        row.checker,
        row.decided_at,
        row.note,
        title,
        number,
        rest,
        working,
    )


def _note(note: str) -> str:
    if not note:
        return ""
    try:
        return clean_text(note, "note", 500)
    except InvalidInput as exc:
        raise BadInput(exc.field, exc.reason) from None


def validate(name: str, data: bytes) -> tuple[int, str]:
    """The year (from the name, cn-YYYY.toml) and the text of a calendar file, validated as the loader does."""
    try:
        year = calendar.year_of_name(name)
        if len(data) > MAX_BYTES:
            raise InvalidInput("file", f"{len(data)} bytes: a calendar file is a few kilobytes (at most {MAX_BYTES})")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput("file", f"{name}: not UTF-8 text") from None
        calendar.parse_text(text, Path(name), year)
    except InvalidInput as exc:
        raise BadInput(exc.field, exc.reason) from None
    return year, text


def add(repo: Repo, name: str, data: bytes, note: str = "") -> CalendarChange:
    """Store a year's calendar as a pending change (role compliance); nothing is in force until a second person
    approves it."""
    actor = require("calendars.add")
    year, text = validate(name, data)
    note = _note(note)
    digest = hashlib.sha256(text.encode()).hexdigest()
    with repo.session() as s:
        rows = list(s.scalars(select(CalendarYearRow).where(col(CalendarYearRow.year) == year)))
        pending = [r for r in rows if r.status == "pending"]
        if pending:
            raise BadInput(
                "year",
                f"a calendar for {year} already waits for approval (added by {pending[0].maker} at "
                f"{utc_text(pending[0].made_at)}Z): approve or reject it first",
            )
        if any(r.status == "approved" and r.sha256 == digest for r in rows):
            raise BadInput("file", f"{name} is the calendar for {year} already approved; nothing to add")
        row = CalendarYearRow(
            year=year, toml=text, sha256=digest, status="pending", maker=f"{actor.operator_id}:{actor.role}", note=note
        )
        s.add(row)
        s.commit()
        s.refresh(row)
    log.info("calendar added", year=year, maker=row.maker, sha256=digest, status="pending")
    return _change(row)


def _pending(s: Session, year: int) -> CalendarYearRow:
    row = s.scalar(select(CalendarYearRow).where(col(CalendarYearRow.year) == year, col(CalendarYearRow.status) == "pending"))
    if row is None:
        raise BadInput("year", f"no calendar for {year} waits for approval (starter.py calendars list)")
    return row


def decide(repo: Repo, year: int, decision: str, note: str = "") -> CalendarChange:
    """Approve or reject the pending calendar of `year` (role compliance, never its maker: four-eyes). An approval
    supersedes the year's earlier approved row; every process has it in force within a minute."""
    actor = require("calendars.approve")
    note = _note(note)
    with repo.session() as s:
        row = _pending(s, year)
        if row.maker.split(":", 1)[0] == actor.operator_id:
            raise BadInput(
                "checker",
                f"{actor.operator_id} added this calendar for {year}, so cannot {decision} it: a second operator "
                "with the role compliance must (four-eyes)",
            )
        if decision == "approve":
            try:  # the loader may have become stricter since it was added
                calendar.parse_text(row.toml, Path(f"cn-{year}.toml"), year)
            except InvalidInput as exc:
                raise BadInput(exc.field, exc.reason) from None
            for old in s.scalars(
                select(CalendarYearRow).where(col(CalendarYearRow.year) == year, col(CalendarYearRow.status) == "approved")
            ):
                old.status = "superseded"
                s.add(old)
        row.status = "approved" if decision == "approve" else "rejected"
        row.checker, row.decided_at = f"{actor.operator_id}:{actor.role}", utcnow()
        if note:
            row.note = f"{row.note}; {note}" if row.note else note
        s.add(row)
        s.commit()
        s.refresh(row)
    log.info(f"calendar {row.status}", year=year, maker=row.maker, checker=row.checker, sha256=row.sha256)
    return _change(row)


def changes(repo: Repo, status: str | None = None) -> list[CalendarChange]:
    """Every row (the audit trail), newest first; `status` keeps one kind (pending: what waits for approval)."""
    require("calendars.read")
    with repo.session() as s:
        q = select(CalendarYearRow).order_by(col(CalendarYearRow.id).desc())
        if status:
            q = q.where(col(CalendarYearRow.status) == status)
        return [_change(r) for r in s.scalars(q)]


def approved(repo: Repo) -> list[calendar.YearCalendar]:
    """The approved years (one per year: the latest approved row), parsed as the loader parses a file. A row the
    loader no longer accepts is left out, with a warning: the file (if any) is then in force."""
    with repo.session() as s:
        rows = list(
            s.scalars(select(CalendarYearRow).where(col(CalendarYearRow.status) == "approved").order_by(col(CalendarYearRow.id)))
        )
    out: dict[int, calendar.YearCalendar] = {}
    for r in rows:
        try:
            cal = calendar.parse_text(r.toml, Path(f"cn-{r.year}.toml"), r.year)
        except InvalidInput as exc:
            log.warning("approved calendar does not load", year=r.year, id=r.id, detail=str(exc))
            continue
        assert r.decided_at is not None  # an approved row has its decision's time
        source = f"database, approved by {r.checker} at {utc_text(r.decided_at)}Z (added by {r.maker})"
        out[r.year] = calendar.YearCalendar(
            cal.year, cal.title, cal.number, cal.published, cal.breaks, cal.rest, cal.working, cal.path, source
        )
    return [out[y] for y in sorted(out)]


def refresh(repo: Repo, announce: bool = True) -> list[int]:
    """Read the approved years and put them in force in this process; the years. `announce`: log a change (a
    long-running process; the command line prints its own output instead)."""
    years = approved(repo)
    before = {y: c.in_force for y, c in calendar.database_years().items()}
    calendar.use_database(years)
    now = {c.year: c.in_force for c in years}
    if announce and now != before:
        log.info("calendars in force from the database", years={str(y): s for y, s in sorted(now.items())})
    return sorted(now)


def refresh_quietly(repo: Repo, announce: bool = True) -> None:
    """`refresh`, a failed read logged (the years in force stay) instead of raised."""
    try:
        refresh(repo, announce)
    except Exception as exc:  # noqa: BLE001 - the database away for a while: keep the years in force
        log.warning("calendar refresh failed; the years in force stay", error=f"{type(exc).__name__}: {exc}")


async def watch(repo: Repo, every: float = REFRESH_SECONDS) -> None:
    """Keep this process's calendar current: the approved database years, read every `every` seconds (the worker
    and the API run it). A failed read keeps what was in force and is tried again."""
    while True:
        await asyncio.to_thread(refresh_quietly, repo)
        await asyncio.sleep(every)
