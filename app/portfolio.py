"""Importing a portfolio from CSV: stream, validate each row, upsert borrowers and loans, start cases."""

from __future__ import annotations

import asyncio
import codecs
import csv
import datetime as dt
import re
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from temporalio.client import Client

from access.permissions import require
from app.errors import EARLIEST_DUE, ID_RE, KEYWORD_RE, LATEST_DUE, BadInput, check_date, field_and_reason
from app.opening import Contact, check_not_demo, frozen_difference, policy_for, start_case
from domain.dates import zone
from domain.errors import InvalidInput
from domain.models import CaseInput
from domain.money import check_currency, parse_amount
from domain.policy import Policy

COLUMNS = (
    "loan_id",
    "borrower_id",
    "name",
    "phone",
    "email",
    "address",
    "timezone",
    "currency",
    "principal",
    "interest",
    "fees",
    "due_date",
    "product",
    "segment",
)
PHONE_RE = re.compile(r"\+?[0-9][0-9 ()-]{4,30}")
EMAIL_RE = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


class Rejection(BaseModel):
    line: int = Field(description="line of the file (the header is line 1)")
    column: str | None
    reason: str
    loan_id: str | None = None

    def __str__(self) -> str:
        return f"line {self.line}: " + (f"{self.column}: " if self.column else "") + self.reason


class ImportSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")
    file: str
    dry_run: bool = False
    rows: int = Field(0, description="data rows read")
    started: int = 0
    already_running: int = 0
    valid: int = Field(0, description="rows that passed validation (a dry run starts nothing)")
    rejected: int = Field(0, description="rows rejected (bad data); the others were still imported")
    failed: int = Field(0, description="valid rows whose case could not be started (Temporal error); rerun")
    seconds: float = 0.0
    rows_per_second: float = 0.0
    rejections: list[Rejection] = []
    rejections_not_listed: int = Field(0, description="rejections beyond the first 10,000, counted only")


MAX_LISTED_REJECTIONS = 10_000


@dataclass
class ImportRow:
    line: int
    inp: CaseInput
    contact: Contact
    product: str


class _Lines:
    """Decodes a binary file line by line as UTF-8 (a BOM is dropped), remembering bad lines.

    Splitting on b'\\n' is safe for UTF-8 (no multi-byte sequence contains it), so a bad byte is
    pinned to its line; the line is passed on with U+FFFD so that the csv reader stays in step.
    """

    def __init__(self, f) -> None:
        self.f = f
        self.n = 0
        self.bad: dict[int, str] = {}

    def __iter__(self) -> Iterator[str]:
        for raw in self.f:
            self.n += 1
            if self.n == 1:
                raw = raw.removeprefix(codecs.BOM_UTF8)
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                self.bad[self.n] = f"byte 0x{raw[exc.start]:02x} at position {exc.start + 1}"
                yield raw.decode("utf-8", "replace")


def _check_header(header: list[str]) -> dict[str, int]:
    names = [h.strip().lower() for h in header]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise BadInput("header", f"column(s) {', '.join(dupes)} appear more than once")
    missing = [c for c in COLUMNS if c not in names]
    unknown = [n for n in names if n not in COLUMNS]
    if missing or unknown:
        reason = "; ".join(
            x
            for x in (
                f"missing column(s): {', '.join(missing)}" if missing else "",
                f"unknown column(s): {', '.join(unknown)}" if unknown else "",
            )
            if x
        )
        raise BadInput("header", f"{reason} (expected: {', '.join(COLUMNS)})")
    return {n: i for i, n in enumerate(names)}


class _PolicyChooser:
    def __init__(self, policy: str | None) -> None:
        self.fixed = policy_for("retail", policy) if policy is not None else None
        self.by_segment: dict[str, Policy | BadInput] = {}

    def __call__(self, segment: str) -> Policy:
        if self.fixed is not None:
            return self.fixed
        if segment not in self.by_segment:
            try:
                self.by_segment[segment] = check_not_demo(policy_for(segment), "segment")
            except BadInput as exc:
                self.by_segment[segment] = BadInput("segment", f"its policy cannot be loaded: {exc}")
        found = self.by_segment[segment]
        if isinstance(found, BadInput):
            raise found
        return found


_Bad = Callable[[str, str], None]  # records a rejection: (column, reason)


def _validate_row(line: int, v: dict[str, str], choose: _PolicyChooser) -> ImportRow | list[Rejection]:
    """One CSV row checked column by column, every fault in it reported (not only the first): its ImportRow, or its
    rejections in the columns' order."""
    errors: list[tuple[str, str]] = []

    def bad(col: str, reason: str) -> None:
        errors.append((col, reason))

    _check_borrower(v, bad)
    amounts = _check_amounts(v, bad)
    due = _check_due(v, bad)
    product = v["product"] or "personal_loan"
    segment = v["segment"] or "retail"
    for col, value in (("product", product), ("segment", segment)):
        if not KEYWORD_RE.fullmatch(value):
            bad(col, f"{value!r} is not a {col} name (1-32 letters, digits, _ or -)")
    policy = None
    if not errors:
        try:
            policy = choose(segment)
        except BadInput as exc:
            bad(exc.field, exc.reason)
    loan_id = v["loan_id"] or None
    if errors:
        return [Rejection(line=line, column=c, reason=r, loan_id=loan_id) for c, r in errors]
    assert due is not None and policy is not None  # both set whenever no error was found
    try:
        inp = CaseInput(
            loan_id=v["loan_id"],
            borrower_id=v["borrower_id"],
            currency=v["currency"],
            due_date=due,
            timezone=v["timezone"],
            segment=segment,
            product=product,
            policy=policy,
            principal=amounts["principal"],
            interest=amounts["interest"],
            fees=amounts["fees"],
        )
    except ValidationError as exc:
        col, reason = field_and_reason(exc.errors())
        return [Rejection(line=line, column=col, reason=reason, loan_id=loan_id)]
    contact = Contact(name=v["name"], phone=v["phone"] or None, email=v["email"] or None, address=v["address"] or None)
    return ImportRow(line=line, inp=inp, contact=contact, product=product)


def _check_borrower(v: dict[str, str], bad: _Bad) -> None:
    """The ids, the borrower's name, address, phone and email, and their time zone."""
    for col in ("loan_id", "borrower_id"):
        if not v[col]:
            bad(col, "is empty")
        elif not ID_RE.fullmatch(v[col]):
            bad(col, f"{v[col]!r} is not an id (1-64 letters, digits or _.:- starting with a letter or digit)")
    for col, limit, required in (("name", 200, True), ("address", 500, False)):
        if not v[col]:
            if required:
                bad(col, "is empty")
        elif len(v[col]) > limit:
            bad(col, f"is longer than {limit} characters")
        elif CONTROL_RE.search(v[col]):
            bad(col, "contains a control character")
    if v["phone"] and (len(v["phone"]) > 32 or not PHONE_RE.fullmatch(v["phone"])):
        bad("phone", f"{v['phone']!r} is not a phone number (digits, optional leading +)")
    if v["email"] and (len(v["email"]) > 254 or not EMAIL_RE.fullmatch(v["email"])):
        bad("email", f"{v['email']!r} is not an email address")
    if not v["timezone"]:
        bad("timezone", "is empty")
    else:
        try:
            zone(v["timezone"])
        except InvalidInput as exc:
            bad("timezone", exc.reason)


def _check_amounts(v: dict[str, str], bad: _Bad) -> dict[str, int]:
    """The currency and the three amounts in its minor units (read only in a known currency: its decimals decide
    them); column -> amount for each one that reads."""
    currency_ok = False
    if not v["currency"]:
        bad("currency", "is empty")
    else:
        try:
            check_currency(v["currency"])
            currency_ok = True
        except InvalidInput as exc:
            bad("currency", exc.reason)
    amounts: dict[str, int] = {}
    for col in ("principal", "interest", "fees"):
        text = v[col] or ("" if col == "principal" else "0")
        if currency_ok:
            try:
                amounts[col] = parse_amount(text, v["currency"], col, allow_zero=True)
            except InvalidInput as exc:
                bad(col, exc.reason)
    if len(amounts) == 3 and sum(amounts.values()) <= 0:
        bad("principal", "the loan owes nothing (principal + interest + fees must be above zero)")
    return amounts


def _check_due(v: dict[str, str], bad: _Bad) -> dt.date | None:
    """The due date, within the window the import accepts; None when it is missing or does not read."""
    due = None
    if not v["due_date"]:
        bad("due_date", "is empty")
    else:
        try:
            due = check_date(v["due_date"], "due_date")
            if not EARLIEST_DUE <= due <= LATEST_DUE:
                bad("due_date", f"{due.isoformat()} is outside {EARLIEST_DUE}..{LATEST_DUE}")
        except BadInput as exc:
            bad("due_date", exc.reason)
    return due


def read_portfolio(path: str | Path, policy: str | None = None) -> Generator[ImportRow | list[Rejection], None, None]:
    """Stream a portfolio CSV: one validated ImportRow, or the row's rejections, per data row.

    Reads the file row by row and never holds it whole. A missing or unreadable file, a bad
    header or an unknown --policy raise BadInput before anything is yielded. A loan id seen
    before in the file is rejected (the first occurrence wins).
    """
    choose = _PolicyChooser(policy)
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed in the generator's finally
    except FileNotFoundError:
        raise BadInput("file", f"{path}: no such file") from None
    except OSError as exc:
        raise BadInput("file", f"{path}: cannot be read ({exc.strerror or exc})") from None
    lines = _Lines(f)
    reader = csv.reader(lines)
    try:
        try:
            header = next(reader)
        except StopIteration:
            raise BadInput("file", f"{path}: is empty (a header row is needed: {', '.join(COLUMNS)})") from None
        except csv.Error as exc:
            raise BadInput("header", f"line 1: {exc}") from None
        if 1 in lines.bad:
            raise BadInput("header", f"line 1: not valid UTF-8 ({lines.bad[1]}); save the file as UTF-8")
        index = _check_header(header)
    except BaseException:
        f.close()
        raise
    return _rows(f, lines, reader, index, choose)


def _rows(
    f, lines: _Lines, reader, index: dict[str, int], choose: _PolicyChooser
) -> Generator[ImportRow | list[Rejection], None, None]:
    seen: dict[str, int] = {}
    width = len(index)
    try:
        last = reader.line_num
        while True:
            try:
                record = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                start, last = last + 1, reader.line_num
                yield [Rejection(line=start, column=None, reason=f"not a CSV row: {exc}")]
                continue
            start, last = last + 1, reader.line_num
            bad = [lines.bad.pop(n) for n in range(start, last + 1) if n in lines.bad]
            if not record or (len(record) == 1 and not record[0].strip()):
                continue  # a blank line
            if bad:
                col = next((c for c in index if index[c] < len(record) and "\ufffd" in record[index[c]]), None)
                yield [Rejection(line=start, column=col, reason=f"not valid UTF-8 ({bad[0]}); save the file as UTF-8")]
                continue
            if len(record) != width:
                yield [Rejection(line=start, column=None, reason=f"has {len(record)} fields but the header has {width}")]
                continue
            values = {c: record[i].strip() for c, i in index.items()}
            result = _validate_row(start, values, choose)
            if isinstance(result, ImportRow):
                first = seen.get(result.inp.loan_id)
                if first is not None:
                    yield [
                        Rejection(
                            line=start,
                            column="loan_id",
                            loan_id=result.inp.loan_id,
                            reason=f"{result.inp.loan_id} already appears on line {first}; each loan once",
                        )
                    ]
                    continue
                seen[result.inp.loan_id] = start
            yield result
    finally:
        f.close()


def count_rows(path: str | Path) -> int:
    """A quick upper bound on the data rows (for a progress bar): newlines, streamed."""
    n = 0
    last = b"\n"
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            n += chunk.count(b"\n")
            last = chunk[-1:]
    return max(0, n - 1 + (last != b"\n"))


def _upsert(repo, batch: list[ImportRow]) -> list[Rejection]:
    """Borrowers and loans of a batch in one transaction (insert, or update what the file says).

    A loan whose case is open (by the case projection) keeps its rows: the same terms are left alone (the
    row counts as already running), different ones are returned as rejections naming the field, since a running
    case's terms are pinned in it and rows that disagreed with it would mislead every reader of the database; they
    are taken out of `batch`."""
    from db.tables import utcnow

    now = utcnow()
    rejected, keep, frozen = _against_open_cases(repo, batch)
    batch[:] = keep + frozen
    if not keep:
        return rejected
    _write_rows(repo, _borrower_rows(keep, now), _loan_rows(keep, now), now)
    return rejected


def _against_open_cases(repo, batch: list[ImportRow]) -> tuple[list[Rejection], list[ImportRow], list[ImportRow]]:
    """(rejections, rows to write, rows of open cases with the same terms): the batch against the open cases."""
    from sqlalchemy import select
    from sqlmodel import col

    from db.tables import CaseRow, LoanRow

    rejected: list[Rejection] = []
    with repo.session() as s:
        ids = [r.inp.workflow_id for r in batch]
        open_ids = set(
            s.scalars(select(col(CaseRow.loan_id)).where(col(CaseRow.workflow_id).in_(ids), col(CaseRow.status) != "closed"))
        )
        loans_open = {ln.id: ln for ln in s.scalars(select(LoanRow).where(col(LoanRow.id).in_(open_ids)))} if open_ids else {}
    keep, frozen = [], []
    for r in batch:
        loan = loans_open.get(r.inp.loan_id)
        if loan is None:
            keep.append(r)
            continue
        diff = frozen_difference(loan, r.inp)
        if diff is not None:
            rejected.append(Rejection(line=r.line, column=diff[0], reason=diff[1], loan_id=r.inp.loan_id))
        else:
            frozen.append(r)
    return rejected, keep, frozen


def _borrower_rows(writes: list[ImportRow], now) -> dict[str, dict[str, Any]]:
    """borrower id -> its row's columns from the file (a borrower on several rows: the last row's details)."""
    borrowers: dict[str, dict[str, Any]] = {}
    for r in writes:
        c = r.contact
        borrowers[r.inp.borrower_id] = dict(
            id=r.inp.borrower_id,
            name=c.name,
            phone=c.phone,
            email=c.email,
            address=c.address,
            timezone=r.inp.timezone,
            updated_at=now,
        )
    return borrowers


def _loan_rows(writes: list[ImportRow], now) -> list[dict[str, Any]]:
    """Each loan's row columns from the file."""
    return [
        dict(
            id=r.inp.loan_id,
            borrower_id=r.inp.borrower_id,
            guarantor_id=None,
            currency=r.inp.currency,
            principal=r.inp.principal,
            interest=r.inp.interest,
            fees=r.inp.fees,
            due_date=r.inp.due_date,
            product=r.inp.product,
            segment=r.inp.segment,
            policy=r.inp.policy.name,
            updated_at=now,
        )
        for r in writes
    ]


def _write_rows(repo, borrowers: dict[str, dict[str, Any]], loans: list[dict[str, Any]], now) -> None:
    """Inserts the borrowers, then the loans, or updates what the file says of those already there, in one transaction."""
    from sqlalchemy.dialects import postgresql, sqlite

    from db.tables import BorrowerRow, LoanRow, table_of

    with repo.session() as s:
        dialect = postgresql if s.get_bind().dialect.name == "postgresql" else sqlite
        b = dialect.insert(table_of(BorrowerRow))
        s.execute(
            b.on_conflict_do_update(
                index_elements=["id"],
                set_={k: b.excluded[k] for k in ("name", "phone", "email", "address", "timezone", "updated_at")},
            ),
            [{**row, "created_at": now, "language": "zh", "id_number": None} for row in borrowers.values()],
        )
        ln = dialect.insert(table_of(LoanRow))
        s.execute(
            ln.on_conflict_do_update(
                index_elements=["id"],
                set_={
                    k: ln.excluded[k]
                    for k in (
                        "borrower_id",
                        "currency",
                        "principal",
                        "interest",
                        "fees",
                        "due_date",
                        "product",
                        "segment",
                        "policy",
                        "updated_at",
                    )
                },
            ),
            [{**row, "created_at": now} for row in loans],
        )
        s.commit()


async def import_portfolio(
    client: Client | None,
    repo,
    path: str | Path,
    *,
    policy: str | None = None,
    task_queue: str | None = None,
    concurrency: int = 50,
    batch_size: int = 200,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportSummary:
    """Import a portfolio CSV: upsert borrowers and loans, start one case per loan (idempotent).

    Streams the file; at most `batch_size` rows wait for the database and `concurrency` case
    starts are in flight. Rejected rows are reported and the good ones still imported. A dry
    run validates the whole file and changes nothing. `progress(n)` is called as rows finish.
    """
    require("case.open")
    if not 1 <= concurrency <= 500:
        raise BadInput("concurrency", f"{concurrency} is not between 1 and 500")
    if client is None and not dry_run:
        raise BadInput("client", "a Temporal client is needed to start cases (only a dry run goes without)")
    rows = read_portfolio(path, policy)  # header, file and policy errors raise here, before any change
    summary = ImportSummary(file=str(path), dry_run=dry_run)
    started_at = time.perf_counter()
    run = _Import(summary, repo, task_queue, progress or (lambda n: None), concurrency)
    workers = [] if dry_run or client is None else [asyncio.create_task(run.starter(client)) for _ in range(concurrency)]
    try:
        await run.feed(rows, dry_run, batch_size)
        for _ in workers:
            await run.queue.put(None)
        await asyncio.gather(*workers)
    finally:
        for w in workers:
            w.cancel()
        rows.close()
    summary.rejections.sort(key=lambda r: r.line)
    summary.seconds = round(time.perf_counter() - started_at, 3)
    summary.rows_per_second = round(summary.rows / summary.seconds, 1) if summary.seconds else 0.0
    return summary


class _Import:
    """One import under way: its summary, the batch waiting for the database, and the queue of rows written and
    waiting for a case start (bounded, so a large file never sits in memory whole)."""

    def __init__(self, summary: ImportSummary, repo, task_queue: str | None, tick: Callable[[int], None], concurrency: int):
        self.summary, self.repo, self.task_queue, self.tick = summary, repo, task_queue, tick
        self.queue: asyncio.Queue[ImportRow | None] = asyncio.Queue(maxsize=concurrency * 2)
        self.batch: list[ImportRow] = []

    def reject(self, rs: list[Rejection]) -> None:
        """A row refused: counted, and its reasons listed up to MAX_LISTED_REJECTIONS (then only counted)."""
        summary = self.summary
        summary.rejected += 1
        for r in rs:
            if len(summary.rejections) < MAX_LISTED_REJECTIONS:
                summary.rejections.append(r)
            else:
                summary.rejections_not_listed += 1
        self.tick(1)

    async def starter(self, client: Client) -> None:
        """Starts the queued rows' cases until it takes None; a start that fails is reported on its row."""
        summary = self.summary
        while (row := await self.queue.get()) is not None:
            try:
                if await start_case(client, row.inp, self.task_queue):
                    summary.started += 1
                else:
                    summary.already_running += 1
            except Exception as exc:  # noqa: BLE001 - reported per row; the import goes on
                summary.failed += 1
                reject_reason = f"case not started: {getattr(exc, 'message', None) or exc}"
                if len(summary.rejections) < MAX_LISTED_REJECTIONS:
                    summary.rejections.append(
                        Rejection(line=row.line, column=None, reason=reject_reason, loan_id=row.inp.loan_id)
                    )
            self.tick(1)

    async def flush(self) -> None:
        """Writes the batch's borrowers and loans, then queues its rows for their cases (those refused against an open
        case are rejected instead)."""
        if self.batch:
            refused = await asyncio.to_thread(_upsert, self.repo, self.batch)
            for rej in refused:
                self.summary.valid -= 1
                self.reject([rej])
            for r in self.batch:
                await self.queue.put(r)
            self.batch.clear()

    async def feed(self, rows: Iterator[ImportRow | list[Rejection]], dry_run: bool, batch_size: int) -> None:
        """Reads every row: a rejected one is reported, a valid one batched (or, in a dry run, only counted)."""
        summary = self.summary
        for n, item in enumerate(rows, 1):
            summary.rows += 1
            if isinstance(item, list):
                self.reject(item)
                continue
            summary.valid += 1
            if dry_run:
                self.tick(1)
                continue
            self.batch.append(item)
            if len(self.batch) >= batch_size:
                await self.flush()
            elif n % 500 == 0:
                await asyncio.sleep(0)  # let the starters run while a batch fills
        await self.flush()
