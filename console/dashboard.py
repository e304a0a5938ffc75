"""The portfolio dashboard from the database projection (cases, loans, case_events, contact_attempts):
a handful of GROUP BY queries, never one Temporal query per case.

Days past due are counted from the loan's due date to today's date in UTC (the projection keeps no
zone per case; a case whose borrower is ahead of UTC can show one day less near midnight). Buckets
follow the usual M-notation: M1 1-30 days, M2 31-60, M3 61-90, M3+ over 90 (M0: not yet due).

Roll rates over the last 30 days: each case open 30 days ago is put in the bucket its days past due
gave it then; where it is now (a later bucket = rolled, the same = stayed, closed by payment = cured,
closed otherwise) is counted per bucket. Everything derives from the due date and the open/close times,
so no column had to be added to the projection.

A policy whose day is shorter than a real one (the demo's lasts seconds) counts its cases' days past due as the case
does (domain/dates.py CaseClock): from the DPD at opening, one day every `day_seconds`; its buckets are the buckets of
that DPD, and its roll window is 30 of its own days.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import and_, case, func, literal, or_, select, true

from db.tables import CaseRow, ContactRow, EventRow, LoanRow
from domain.display import stage_rank
from domain.models import PAID_OUTCOMES

BUCKETS = ("M0", "M1", "M2", "M3", "M3+")
ROLL_FROM = ("M1", "M2", "M3")
WINDOW_DAYS = 30


def bucket_expr(due, today: dt.date):
    """SQL CASE: the M-bucket of a due date on `today` (portable: date comparisons only)."""
    return case(
        (due >= today, literal("M0")),
        (due >= today - dt.timedelta(days=30), literal("M1")),
        (due >= today - dt.timedelta(days=60), literal("M2")),
        (due >= today - dt.timedelta(days=90), literal("M3")),
        else_=literal("M3+"),
    )


def bucket_of(dpd: int) -> str:
    """The M-bucket of a number of days past due: bucket_expr's buckets, for a DPD counted in Python."""
    return "M0" if dpd <= 0 else "M1" if dpd <= 30 else "M2" if dpd <= 60 else "M3" if dpd <= 90 else "M3+"


@dataclass
class Row:
    key: str
    cases: int = 0
    amounts: dict[str, int] = field(default_factory=dict)  # currency -> minor units


@dataclass
class Dashboard:
    as_of: dt.datetime
    total_cases: int = 0
    open_cases: int = 0
    by_stage: list[Row] = field(default_factory=list)  # open cases
    by_bucket: list[Row] = field(default_factory=list)  # open cases
    by_status: list[Row] = field(default_factory=list)  # all cases (closed: by outcome)
    roll: dict[str, dict[str, int]] = field(default_factory=dict)  # bucket then -> where now -> cases
    promises: dict[str, int] = field(default_factory=dict)  # made / kept / broken, last 30 days
    contacts: dict[str, int] = field(default_factory=dict)  # channel/status -> attempts, last 30 days
    refused: dict[str, int] = field(default_factory=dict)  # gate rule -> refusals, last 30 days
    cures: dict[str, int] = field(default_factory=dict)  # stage at closing -> cases closed by payment, 30 days
    write_offs: dict[str, int] = field(default_factory=dict)  # proposed / confirmed (events), written_off (closed)
    write_off_amounts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def roll_rate(self, frm: str) -> float | None:
        """Share of the cases in `frm` 30 days ago that are in a later bucket now."""
        row = self.roll.get(frm) or {}
        n = sum(row.values())
        if not n:
            return None
        later = BUCKETS[BUCKETS.index(frm) + 1 :]
        return sum(v for k, v in row.items() if k in later) / n


def _rows(result, key_index: int = 0) -> list[Row]:
    out: dict[str, Row] = {}
    for key, currency, n, amount in result:
        r = out.setdefault(key or "-", Row(key or "-"))
        r.cases += n
        r.amounts[currency] = r.amounts.get(currency, 0) + int(amount or 0)
    return list(out.values())


def _rule_expr(dialect: str):
    if dialect == "postgresql":
        return func.cast(EventRow.cause, _json_type()).op("->>")("rule")
    return func.json_extract(EventRow.cause, "$.rule")


def _json_type():
    from sqlalchemy.dialects.postgresql import JSONB

    return JSONB


def _short_days(s) -> dict[str, int]:
    """The policies of the book's loans whose day is shorter than a real day: name -> day_seconds."""
    from domain.policy import load_policy

    out = {}
    for name in s.scalars(select(LoanRow.policy).distinct()):
        try:
            seconds = load_policy(name).day_seconds
        except Exception:  # noqa: BLE001 - a policy no longer on disk: counted on the real calendar
            continue
        if seconds < 86400:
            out[name] = seconds
    return out


def _short_day_figures(s, d: Dashboard, short: dict[str, int], now: dt.datetime) -> None:
    """Buckets and roll rates of the cases on short-day policies, their DPD counted as their cases count it."""
    c, ln = CaseRow, LoanRow
    rows = s.execute(
        select(ln.due_date, ln.policy, c.opened_at, c.closed_at, c.status, c.outcome, c.currency, c.outstanding)
        .join(ln, ln.id == c.loan_id)
        .where(ln.policy.in_(list(short)))
    ).all()
    buckets: dict[str, Row] = {r.key: r for r in d.by_bucket}
    for due, policy, opened, closed, status, outcome, currency, outstanding in rows:
        seconds = short[policy]
        opened_dpd = (opened.astimezone(dt.UTC).date() - due).days

        def dpd_at(t: dt.datetime, opened=opened, opened_dpd=opened_dpd, seconds=seconds) -> int:
            return opened_dpd + int((t - opened).total_seconds() // seconds)

        if status != "closed":
            row = buckets.setdefault(bucket_of(dpd_at(now)), Row(bucket_of(dpd_at(now))))
            row.cases += 1
            row.amounts[currency] = row.amounts.get(currency, 0) + int(outstanding or 0)
        since = now - dt.timedelta(seconds=WINDOW_DAYS * seconds)
        if opened <= since and (closed is None or closed > since):
            frm = bucket_of(dpd_at(since))
            to = ("cured" if outcome in PAID_OUTCOMES else "closed") if status == "closed" else bucket_of(dpd_at(now))
            d.roll.setdefault(frm, {})[to] = d.roll.setdefault(frm, {}).get(to, 0) + 1
    d.by_bucket = sorted(buckets.values(), key=lambda r: BUCKETS.index(r.key) if r.key in BUCKETS else 99)


def build(repo, now: dt.datetime | None = None) -> Dashboard:
    """The dashboard as of `now` (UTC), in one database session."""
    import time

    started = time.perf_counter()
    now = now or dt.datetime.now(dt.UTC)
    today = now.astimezone(dt.UTC).date()
    since = now - dt.timedelta(days=WINDOW_DAYS)
    d = Dashboard(as_of=now)
    with repo.session() as s:
        short = _short_days(s)
        real_days = LoanRow.policy.not_in(list(short)) if short else true()
        _book(s, d, today, real_days)
        _rolls(s, d, today, since, real_days)
        if short:
            _short_day_figures(s, d, short, now)
        _last_window(s, d, since)
    d.seconds = time.perf_counter() - started
    return d


def _book(s, d: Dashboard, today: dt.date, real_days) -> None:
    """The book now: cases in all and open, the open ones by stage and by bucket (real-day policies only: the
    short-day ones are bucketed by _short_day_figures), and every case by status."""
    c, ln = CaseRow, LoanRow
    is_open = c.status != "closed"
    d.total_cases = s.scalar(select(func.count()).select_from(c)) or 0
    d.open_cases = s.scalar(select(func.count()).select_from(c).where(is_open)) or 0
    d.by_stage = sorted(  # in the ladder's order (domain/display.py), not the alphabet's
        _rows(
            s.execute(
                select(c.stage, c.currency, func.count(), func.sum(c.outstanding))
                .where(is_open)
                .group_by(c.stage, c.currency)
                .order_by(c.stage)
            )
        ),
        key=lambda r: (stage_rank(r.key), r.key),
    )
    bucket_now = bucket_expr(ln.due_date, today)
    d.by_bucket = sorted(
        _rows(
            s.execute(
                select(bucket_now, c.currency, func.count(), func.sum(c.outstanding))
                .join(ln, ln.id == c.loan_id)
                .where(is_open, real_days)
                .group_by(bucket_now, c.currency)
            )
        ),
        key=lambda r: BUCKETS.index(r.key) if r.key in BUCKETS else 99,
    )
    status_key = case((c.status == "closed", func.coalesce(literal("closed: ") + c.outcome, literal("closed"))), else_=c.status)
    d.by_status = _rows(
        s.execute(
            select(status_key, c.currency, func.count(), func.sum(c.outstanding))
            .group_by(status_key, c.currency)
            .order_by(status_key)
        )
    )


def _rolls(s, d: Dashboard, today: dt.date, since: dt.datetime, real_days) -> None:
    """Roll rates of the real-day policies' cases: the cases open 30 days ago, by their bucket then and where they
    are now."""
    c, ln = CaseRow, LoanRow
    bucket_now = bucket_expr(ln.due_date, today)
    bucket_then = bucket_expr(ln.due_date, since.date())
    where_now = case(
        (and_(c.status == "closed", c.outcome.in_(PAID_OUTCOMES)), literal("cured")),
        (c.status == "closed", literal("closed")),
        else_=bucket_now,
    )
    for frm, to, n in s.execute(
        select(bucket_then, where_now, func.count())
        .join(ln, ln.id == c.loan_id)
        .where(c.opened_at <= since, or_(c.closed_at.is_(None), c.closed_at > since), real_days)
        .group_by(bucket_then, where_now)
    ):
        d.roll.setdefault(frm, {})[to] = n


def _last_window(s, d: Dashboard, since: dt.datetime) -> None:
    """What happened in the last 30 days: promises and write-offs, contacts by channel and status, the gate's
    refusals by rule, cures by stage; and the cases closed as written off, with their amounts."""
    c = CaseRow
    ev = EventRow
    for kind, n in s.execute(
        select(ev.kind, func.count())
        .where(
            ev.at >= since,
            ev.kind.in_(("promise", "promise_kept", "promise_broken", "write_off_proposed", "write_off_confirmed")),
        )
        .group_by(ev.kind)
    ):
        if kind.startswith("promise"):
            d.promises[{"promise": "made", "promise_kept": "kept", "promise_broken": "broken"}[kind]] = n
        else:
            d.write_offs[kind.removeprefix("write_off_")] = n
    for channel, status, n in s.execute(
        select(ContactRow.channel, ContactRow.status, func.count())
        .where(ContactRow.created_at >= since)
        .group_by(ContactRow.channel, ContactRow.status)
    ):
        d.contacts[f"{channel} {status}"] = n
    rule = _rule_expr(s.bind.dialect.name)
    for r, n in s.execute(select(rule, func.count()).where(ev.at >= since, ev.kind == "contact_refused").group_by(rule)):
        d.refused[r or "-"] = n
    for stage, n in s.execute(
        select(c.stage, func.count())
        .where(c.status == "closed", c.outcome.in_(PAID_OUTCOMES), c.closed_at >= since)
        .group_by(c.stage)
    ):
        d.cures[stage] = n
    for currency, n, amount in s.execute(
        select(c.currency, func.count(), func.sum(c.outstanding)).where(c.outcome == "written_off").group_by(c.currency)
    ):
        d.write_offs["closed as written off"] = d.write_offs.get("closed as written off", 0) + n
        d.write_off_amounts[currency] = int(amount or 0)
