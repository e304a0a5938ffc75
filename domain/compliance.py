"""Borrower protection: whether a contact may be made now, and if not, until when.

Pure rules, one function per rule, evaluated in a fixed order by `decide`. The gate activity
(activities/case.py, check_contacts) feeds them what the database knows about the borrower across all of
their loans and channels, inside a lock on the borrower, and records every decision.

A refusal either *defers* the action (it is asked again at `retry_at`, or daily while a hold
without an end lasts) or is *final* for that action (cease_contact: the step goes on without
it; a legal clock that has run out). Nothing is skipped silently and nothing is sent early.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache

import holidays

from domain.dates import zone
from domain.policy import CONTACT_CHANNELS, ContactRules, LegalRules  # noqa: F401 - contacts: the channels that reach a person
# Notices the law requires even when the borrower asked not to be contacted.
LEGAL_NOTICES = {"bureau_notice"}
# Outcomes of a call in which the borrower was actually spoken to.
CONVERSATION = {"answered", "promise", "dispute"}
BORROWER_HOLDS = {"cease_contact", "complaint", "hardship", "bankruptcy", "deceased"}  # dispute: one loan
INDEFINITE_RECHECK = timedelta(days=1)
LEGAL_RULES = {"limitation_period", "enforcement_deadline", "payment_order_objection", "objection_window"}


@dataclass(frozen=True)
class PastContact:
    at: datetime
    channel: str
    outcome: str | None = None
    loan_id: str = ""
    bundle: str = ""  # case and step: the channels of one step are one contact for spacing


@dataclass(frozen=True)
class ActiveHold:
    kind: str
    loan_id: str
    until: datetime | None = None


@dataclass(frozen=True)
class Decision:
    allowed: bool
    rule: str
    reason: str
    retry_at: datetime | None = None
    final: bool = False
    inputs: dict = field(default_factory=dict)


def _allow(rule: str = "allowed", reason: str = "all rules pass") -> Decision:
    return Decision(True, rule, reason)


@lru_cache(maxsize=64)
def _calendar(year: int) -> holidays.HolidayBase:
    return holidays.China(years=year)


def is_public_holiday(day: date) -> bool:
    return day in _calendar(day.year)


def is_working_day(day: date) -> bool:
    """Weekdays, and the Saturdays and Sundays made working days (调休); not public holidays."""
    return _calendar(day.year).is_working_day(day)


def day_allowed(day: date, rules: ContactRules) -> bool:
    if rules.public_holidays and is_public_holiday(day):
        return False
    if not rules.weekends and not is_working_day(day):
        return False
    return True


def _at(day: date, minutes: int, tz: str) -> datetime:
    if minutes >= 1440:
        return datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone(tz))
    return datetime.combine(day, time(minutes // 60, minutes % 60), tzinfo=zone(tz))


def next_window_open(now: datetime, tz: str, rules: ContactRules, timed: bool = True) -> datetime:
    """The first instant at or after `now` at which a contact may start (day and time of day)."""
    start, end = rules.window if timed else (0, 1440)
    local = now.astimezone(zone(tz))
    day = local.date()
    for _ in range(60):
        if day_allowed(day, rules):
            opens, closes = _at(day, start, tz), _at(day, end, tz)
            if now < closes:
                return max(now, opens)
        day += timedelta(days=1)
    raise ValueError("no allowed contact day within 60 days: check the policy's contact rules")


def check_holds(action: str, channel: str, loan_id: str, holds: list[ActiveHold], now: datetime) -> Decision | None:
    contact = channel in CONTACT_CHANNELS
    holds = [h for h in holds if h.until is None or h.until > now]
    # a bankruptcy or death first, whatever else is held: it closes the case (Case.borrower_closure)
    for h in holds:
        if h.kind in ("bankruptcy", "deceased"):
            return Decision(False, h.kind, f"borrower {h.kind}: no collection action", final=True)
    for h in holds:
        mine = h.loan_id == loan_id
        if h.kind == "complaint" and action != "agency_recall":
            return Decision(False, "complaint", "complaint under compliance review: everything stops until a reviewer releases it",
                            retry_at=now + INDEFINITE_RECHECK)
        if h.kind == "dispute" and mine and (contact or action in ("bureau_report", "bureau_notice")):
            return Decision(False, "dispute", "the debt is disputed: no contact or credit reporting until resolved",
                            retry_at=now + INDEFINITE_RECHECK)
        if h.kind == "hardship" and contact:
            return Decision(False, "hardship", "hardship hold", retry_at=h.until or now + INDEFINITE_RECHECK)
        if h.kind == "cease_contact" and contact and action not in LEGAL_NOTICES:
            return Decision(False, "cease_contact", "the borrower asked not to be contacted; only legally required notices go out",
                            final=True)
    return None


def check_window(channel: str, now: datetime, tz: str, rules: ContactRules) -> Decision | None:
    timed = channel in rules.timed_channels
    opens = next_window_open(now, tz, rules, timed)
    if opens <= now:
        return None
    local = now.astimezone(zone(tz))
    if not day_allowed(local.date(), rules):
        why = "public holiday" if rules.public_holidays and is_public_holiday(local.date()) else "weekend"
        return Decision(False, "holiday", f"{local.date()} is a {why} in the borrower's calendar", retry_at=opens)
    return Decision(False, "contact_window",
                    f"{local:%H:%M} local is outside {rules.window_start}-{rules.window_end}", retry_at=opens)


def check_spacing(now: datetime, history: list[PastContact], rules: ContactRules, bundle: str = "") -> Decision | None:
    gap = timedelta(minutes=rules.min_minutes_between_contacts)
    # a contact reserved by another case's gate a moment "later" (its workflow clock ran ahead) counts too
    recent = [c.at for c in history if abs(now - c.at) < gap and not (bundle and c.bundle == bundle)]
    if recent:
        last = max(recent)
        return Decision(False, "min_interval", f"another contact at {last:%Y-%m-%d %H:%M}Z; at least "
                        f"{rules.min_minutes_between_contacts} minutes between contacts", retry_at=last + gap)
    return None


def check_daily_cap(channel: str, now: datetime, tz: str, history: list[PastContact], rules: ContactRules) -> Decision | None:
    cap = rules.daily_caps.get(channel)
    if cap is None:
        return None
    today = now.astimezone(zone(tz)).date()
    used = sum(1 for c in history if c.channel == channel and c.at.astimezone(zone(tz)).date() == today)
    if used >= cap:
        tomorrow = datetime.combine(today + timedelta(days=1), time(0), tzinfo=zone(tz))
        return Decision(False, "daily_cap", f"{used} {channel} contact(s) already today; the cap is {cap}",
                        retry_at=tomorrow)
    return None


def check_calls(now: datetime, history: list[PastContact], rules: ContactRules) -> Decision | None:
    # any 7-day window holding this call must stay under the cap, including calls other cases reserved
    # a moment "after" now on their own workflow clocks
    calls = sorted(c.at for c in history if c.channel == "call" and abs(now - c.at) < timedelta(days=7))
    if len(calls) >= rules.call_cap_7d:
        oldest = calls[len(calls) - rules.call_cap_7d]
        return Decision(False, "call_cap_7d", f"{len(calls)} calls within 7 days; the cap is {rules.call_cap_7d}",
                        retry_at=max(oldest + timedelta(days=7), now + timedelta(minutes=1)))
    days = rules.no_call_after_conversation_days
    if days:
        talks = [c.at for c in history if c.channel == "call" and c.outcome in CONVERSATION and c.at <= now]
        if talks and now - max(talks) < timedelta(days=days):
            last = max(talks)
            return Decision(False, "after_conversation", f"spoke with the borrower at {last:%Y-%m-%d %H:%M}Z; no call "
                            f"within {days} days of a conversation", retry_at=last + timedelta(days=days))
    return None


def decide(*, action: str, channel: str, loan_id: str, now: datetime, tz: str, rules: ContactRules,
           holds: list[ActiveHold], history: list[PastContact], bundle: str = "") -> Decision:
    """May `action` reach the borrower now? Holds, then (for contacts) window, holidays, spacing and caps."""
    # elapsed time in UTC: two aware datetimes with the same zone subtract as wall clocks, an hour off across a
    # DST change (7 days back from a London or New York `now` is not 168 hours)
    now = now.astimezone(timezone.utc)
    history = [c if c.at.tzinfo is timezone.utc else replace(c, at=c.at.astimezone(timezone.utc)) for c in history]
    inputs = {"action": action, "channel": channel, "now": now.isoformat(), "tz": tz,
              "holds": sorted({h.kind for h in holds}), "contacts_7d": sum(1 for c in history if now - c.at < timedelta(days=7))}
    d = check_holds(action, channel, loan_id, holds, now)
    if d is None and channel in CONTACT_CHANNELS:
        d = (check_window(channel, now, tz, rules) or check_spacing(now, history, rules, bundle)
             or check_daily_cap(channel, now, tz, history, rules) or (check_calls(now, history, rules) if channel == "call" else None))
    d = d or _allow()
    return Decision(d.allowed, d.rule, d.reason, d.retry_at, d.final, inputs)


# ---------------------------------------------------------------- legal clocks (case level)

def _add_years(t: datetime, years: int) -> datetime:
    try:
        return t.replace(year=t.year + years)
    except ValueError:  # 29 February
        return t.replace(year=t.year + years, day=28)


def limitation_ends(since: datetime, rules: LegalRules) -> datetime:
    """Civil Code art. 188: three years, restarted (art. 195) by a payment, a promise or an acknowledgement."""
    return _add_years(since, rules.limitation_years)


def legal_check(action: str, now: datetime, rules: LegalRules, *, limitation_from: datetime,
                judgment_at: datetime | None, payment_order_at: datetime | None, objection: bool) -> Decision | None:
    """Court actions within their legal clocks; None when the action may go ahead."""
    if action in ("lawsuit", "payment_order"):
        ends = limitation_ends(limitation_from, rules)
        if now >= ends:
            return Decision(False, "limitation_period", f"the {rules.limitation_years}-year limitation period ran out "
                            f"on {ends:%Y-%m-%d} (last restarted {limitation_from:%Y-%m-%d})", final=True)
    if action == "enforcement":
        if judgment_at is not None:
            ends = _add_years(judgment_at, rules.enforcement_within_years)
            if now >= ends:
                return Decision(False, "enforcement_deadline", f"enforcement must be applied for within "
                                f"{rules.enforcement_within_years} years of the judgment ({ends:%Y-%m-%d})", final=True)
        elif payment_order_at is not None:
            if objection:
                return Decision(False, "payment_order_objection", "the borrower objected to the payment order; a lawsuit is needed",
                                final=True)
            opens = payment_order_at + timedelta(days=rules.payment_order_objection_days)
            if now < opens:
                return Decision(False, "objection_window", f"the {rules.payment_order_objection_days}-day objection window "
                                f"runs until {opens:%Y-%m-%d %H:%M}Z", retry_at=opens)
    return None
