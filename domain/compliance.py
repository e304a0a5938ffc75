"""Borrower protection: whether a contact may be made now, and if not, until when.

Pure rules, one function per rule, evaluated in a fixed order by `decide`. Rest days come from the official
calendar files (domain/calendar.py); a year without one fails closed (rule calendar_missing). The gate activity
(activities/case.py, check_contacts) feeds them what the database knows about the borrower across all of
their loans and channels, inside a lock on the borrower, and records every decision.

A refusal either *defers* the action (it is asked again at `retry_at`, or daily while a hold
without an end lasts) or is *final* for that action (cease_contact: the step goes on without
it; a legal clock that has run out). Nothing is skipped silently and nothing is sent early.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache

from domain import calendar
from domain.calendar import CalendarMissing
from domain.dates import zone
from domain.policy import CONTACT_CHANNELS, ContactRules  # noqa: F401 - contacts: the channels that reach a person

# Notices the law requires even when the borrower asked not to be contacted: the credit-bureau notice
# (征信业管理条例 art. 15) by any of its channels (domain.legal.NOTICE_ACTIONS).
LEGAL_NOTICES = {"bureau_notice", "bureau_notice_sms", "bureau_notice_email"}
# Outcomes of a call in which the borrower was actually spoken to.
CONVERSATION = {"answered", "promise", "dispute"}
INDEFINITE_RECHECK = timedelta(days=1)
DAY = 86400
# Beijing time (UTC+8) is the PRC's one standard time; in Xinjiang much of daily life keeps Urumqi time (UTC+6).
# With the policy's `window_in_beijing_time` the contact window and the rest days hold on both clocks.
BEIJING = "Asia/Shanghai"


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


# The remote channels among which a borrower may choose (letters, visits and a law firm's letters are formal
# notices whose use the policy and the law decide); at least one of them stays open.
PREFERABLE_CHANNELS = ("sms", "email", "call")


@dataclass(frozen=True)
class Preferences:
    """What the borrower asked of our contacts, inside what the law already requires (个人信息保护法 art. 44: the
    right to decide on the handling of their information; 银行保险机构消费者权益保护管理办法, the consumer's right
    to choose how they are contacted, article number not verified here): hours inside the policy's window, the
    channels among PREFERABLE_CHANNELS not to use, and no contact at the workplace (an instruction to the people
    who call and visit; the gate has no workplace address to refuse)."""

    hours: tuple[int, int] | None = None  # minutes after local midnight, [start, end)
    quiet: frozenset[str] = frozenset()
    not_at_work: bool = False


def hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def preferences(
    hours_start: str | None, hours_end: str | None, quiet: list[str], not_at_work: bool, rules: ContactRules
) -> Preferences:
    """The borrower's stated preferences, checked (InvalidInput names the field): hours inside the policy's window
    and at least two hours long, quiet channels among PREFERABLE_CHANNELS and not all of them."""
    from domain.errors import InvalidInput
    from domain.policy import _minutes

    hours = None
    if hours_start or hours_end:
        if not (hours_start and hours_end):
            raise InvalidInput("hours", "give both the start and the end of the hours, or neither")
        try:
            start, end = _minutes(hours_start), _minutes(hours_end)
        except ValueError:
            raise InvalidInput("hours", f"{hours_start}-{hours_end} is not two times of day (HH:MM)") from None
        low, high = rules.window
        if not low <= start < end <= high:
            raise InvalidInput(
                "hours", f"{hours_start}-{hours_end} is not inside the hours we may call, {rules.window_start}-{rules.window_end}"
            )
        if end - start < 120:
            raise InvalidInput("hours", f"{hours_start}-{hours_end} is shorter than two hours")
        hours = (start, end)
    unknown = sorted(set(quiet) - set(PREFERABLE_CHANNELS))
    if unknown:
        raise InvalidInput("quiet", f"{', '.join(unknown)}: only {', '.join(PREFERABLE_CHANNELS)} can be chosen")
    if set(PREFERABLE_CHANNELS) <= set(quiet):
        raise InvalidInput(
            "quiet", "keep at least one of SMS, e-mail and calls open (to stop all contact, complain or ask us to stop)"
        )
    return Preferences(hours=hours, quiet=frozenset(quiet), not_at_work=not_at_work)


def check_preferences(
    action: str, channel: str, now: datetime, tz: str, rules: ContactRules, prefs: Preferences | None
) -> Decision | None:
    """A channel the borrower asked us not to use is refused for good (the step goes on without it), except a legal
    notice; a timed contact outside the borrower's hours waits for their next start."""
    if prefs is None:
        return None
    if channel in prefs.quiet and action not in LEGAL_NOTICES:
        return Decision(False, "borrower_preference", f"the borrower asked not to be contacted by {channel}", final=True)
    if prefs.hours is not None and channel in rules.timed_channels:
        start, end = prefs.hours
        local = now.astimezone(zone(tz))
        minute = local.hour * 60 + local.minute
        if not start <= minute < end:
            day = local.date() if minute < start else local.date() + timedelta(days=1)
            return Decision(
                False,
                "borrower_hours",
                f"{local:%H:%M} is outside the hours the borrower asked for ({hhmm(start)}-{hhmm(end)})",
                retry_at=_at(day, start, tz),
            )
    return None


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


# The official calendar (domain/calendar.py, one file per year from the State Council's notice).
is_public_holiday = calendar.is_public_holiday
is_working_day = calendar.is_working_day
is_rest_day = calendar.is_rest_day


def binds_calendar(rules: ContactRules | WindowRules) -> bool:
    """Whether the rules depend on the official calendar (and so fail closed on a year without one)."""
    return rules.public_holidays or not rules.weekends


def day_allowed(day: date, rules: ContactRules | WindowRules) -> bool:
    """No contact on a rest day inside an official break (public_holidays), nor on any rest day (weekends=false);
    make-up working days (调休) are working days. CalendarMissing when the day's year has no calendar file."""
    if not binds_calendar(rules):
        return True
    if rules.public_holidays and calendar.is_public_holiday(day):
        return False
    if not rules.weekends and calendar.is_rest_day(day):
        return False
    return True


def clocks(tz: str, rules: ContactRules | WindowRules) -> tuple[str, ...]:
    """The zones whose clock and calendar day a contact must satisfy: the recorded one, and Beijing time for a
    policy with `window_in_beijing_time` (every borrower of such a policy is a PRC borrower)."""
    return (tz, BEIJING) if rules.window_in_beijing_time and tz != BEIJING else (tz,)


def _at(day: date, minutes: int, tz: str) -> datetime:
    if minutes >= 1440:
        return datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone(tz))
    return datetime.combine(day, time(minutes // 60, minutes % 60), tzinfo=zone(tz))


def _next_open_in(now: datetime, tz: str, rules: ContactRules | WindowRules, timed: bool) -> datetime:
    """The first instant at or after `now` at which a contact may start on the clock and calendar of `tz`.

    A day whose year has no calendar file counts as open here (its start is returned): the gate then refuses
    it as calendar_missing, so the case asks again and is released when the file is added.
    """
    start, end = rules.window if timed else (0, 1440)
    local = now.astimezone(zone(tz))
    day = local.date()
    for _ in range(60):
        try:
            allowed = day_allowed(day, rules)
        except CalendarMissing:
            return max(now, _at(day, 0, tz))
        if allowed:
            opens, closes = _at(day, start, tz), _at(day, end, tz)
            if now < closes:
                return max(now, opens)
        day += timedelta(days=1)
    raise ValueError("no allowed contact day within 60 days: check the policy's contact rules")


@dataclass(frozen=True, slots=True)
class WindowRules:
    """The contact rules `next_window_open` reads (the window, the rest days, the clocks), as a hashable value."""

    window: tuple[int, int]
    public_holidays: bool
    weekends: bool
    window_in_beijing_time: bool

    @classmethod
    def of(cls, rules: ContactRules) -> WindowRules:
        if calendar.is_frozen():  # a run whose policies do not change: one reading per policy (kept with it, by id)
            kept = _WINDOW_RULES.get(id(rules))
            if kept is not None and kept[0] is rules:
                return kept[1]
        w = cls(rules.window, rules.public_holidays, rules.weekends, rules.window_in_beijing_time)
        if calendar.is_frozen():
            _WINDOW_RULES[id(rules)] = (rules, w)  # the rules kept alive with it: their id is not reused meanwhile
        return w


_WINDOW_RULES: dict[int, tuple[ContactRules, WindowRules]] = calendar.while_frozen_dict()


def next_window_open(now: datetime, tz: str, rules: ContactRules, timed: bool = True) -> datetime:
    """The first instant at or after `now` at which a contact may start (day and time of day), on every clock
    that binds the borrower (see `clocks`)."""
    # now.tzinfo in the key: equal instants in two zones are equal keys, and the answer may be `now` itself
    return _next_window_open(now, now.tzinfo, tz, WindowRules.of(rules), timed)


@calendar.while_frozen  # a pure function of its arguments and the calendar files
def _next_window_open(now: datetime, _zone, tz: str, rules: WindowRules, timed: bool) -> datetime:
    zones = clocks(tz, rules)
    t = now
    for _ in range(200):
        moved = False
        for z in zones:
            nxt = _next_open_in(t, z, rules, timed)
            if nxt != t:
                t, moved = nxt, True
        if not moved:
            return t
    raise ValueError("no instant open on both clocks within reach: check the policy's contact rules")


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
            return Decision(
                False,
                "complaint",
                "complaint under compliance review: everything stops until a reviewer releases it",
                retry_at=now + INDEFINITE_RECHECK,
            )
        if h.kind == "dispute" and mine and (contact or action == "bureau_report" or action in LEGAL_NOTICES):
            return Decision(
                False,
                "dispute",
                "the debt is disputed: no contact or credit reporting until resolved",
                retry_at=now + INDEFINITE_RECHECK,
            )
        if h.kind == "hardship" and contact:
            return Decision(False, "hardship", "hardship hold", retry_at=h.until or now + INDEFINITE_RECHECK)
        if h.kind == "cease_contact" and contact and action not in LEGAL_NOTICES:
            return Decision(
                False, "cease_contact", "the borrower asked not to be contacted; only legally required notices go out", final=True
            )
    return None


def check_calendar(now: datetime, tz: str, rules: ContactRules) -> Decision | None:
    """Fail closed: a contact bound to rest days, on a day whose year has no official calendar file, is refused
    (rule calendar_missing) and asked again the next day, so adding the file releases it."""
    if not binds_calendar(rules):
        return None
    for z in clocks(tz, rules):
        day = now.astimezone(zone(z)).date()
        try:
            calendar.year_calendar(day.year)
        except CalendarMissing as e:
            return Decision(
                False,
                "calendar_missing",
                f"no official holiday calendar for {e.year}: {e.path.name} is missing (policies/calendars/) and no "
                f"database calendar for {e.year} is approved (starter.py calendars add); contacts bound to rest days "
                "wait for it",
                retry_at=now + INDEFINITE_RECHECK,
            )
    return None


def check_window(channel: str, now: datetime, tz: str, rules: ContactRules) -> Decision | None:
    timed = channel in rules.timed_channels
    opens = next_window_open(now, tz, rules, timed)
    if opens <= now:
        return None
    for z in clocks(tz, rules):
        local = now.astimezone(zone(z))
        where = "the borrower's calendar" if z == tz else "Beijing time"
        if not day_allowed(local.date(), rules):
            why = "rest day of an official break" if rules.public_holidays and is_public_holiday(local.date()) else "rest day"
            cal = calendar.year_calendar(local.date().year)
            name = cal.break_of(local.date())
            return Decision(
                False,
                "holiday",
                f"{local.date()} is a {why}{f' ({name})' if name else ''} in {where} (calendar: {cal.in_force})",
                retry_at=opens,
            )
    for z in clocks(tz, rules):
        local = now.astimezone(zone(z))
        start, end = rules.window if timed else (0, 1440)
        if not start <= local.hour * 60 + local.minute < end:
            what = "local" if z == tz else "Beijing time"
            return Decision(
                False,
                "contact_window",
                f"{local:%H:%M} {what} is outside {rules.window_start}-{rules.window_end}",
                retry_at=opens,
            )
    return Decision(False, "contact_window", f"not open until {opens:%Y-%m-%d %H:%M}Z", retry_at=opens)


def _days(n: float, day_seconds: int) -> timedelta:
    """n policy days: real days on the real calendar (86400 s), `day_seconds` each on a compressed one (the demo)."""
    return timedelta(seconds=n * day_seconds)


def check_spacing(
    now: datetime, history: list[PastContact], rules: ContactRules, bundle: str = "", day_seconds: int = DAY
) -> Decision | None:
    gap = _days(rules.min_minutes_between_contacts / 1440, day_seconds)
    # a contact reserved by another case's gate a moment "later" (its workflow clock ran ahead) counts too
    recent = [c.at for c in history if abs(now - c.at) < gap and not (bundle and c.bundle == bundle)]
    if recent:
        last = max(recent)
        scaled = "" if day_seconds == DAY else f" (policy minutes: a day lasts {day_seconds}s)"
        return Decision(
            False,
            "min_interval",
            f"another contact at {last:%Y-%m-%d %H:%M:%S}Z; at least "
            f"{rules.min_minutes_between_contacts} minutes between contacts{scaled}",
            retry_at=last + gap,
        )
    return None


@lru_cache(maxsize=16384)  # pure: the day of an instant (equal instants in any zone are the same day)
def _policy_day(t: datetime, tz: str, day_seconds: int):
    """The day a contact counts in for the daily caps: the borrower's local date on the real calendar; on a
    compressed one, the `day_seconds` slice of time since the Unix epoch."""
    if day_seconds == DAY:
        return t.astimezone(zone(tz)).date()
    return int(t.timestamp() // day_seconds)


def check_daily_cap(
    channel: str, now: datetime, tz: str, history: list[PastContact], rules: ContactRules, day_seconds: int = DAY
) -> Decision | None:
    cap = rules.daily_caps.get(channel)
    if cap is None:
        return None
    today = _policy_day(now, tz, day_seconds)
    used = sum(1 for c in history if c.channel == channel and _policy_day(c.at, tz, day_seconds) == today)
    if used >= cap:
        if day_seconds == DAY:
            tomorrow = datetime.combine(today + timedelta(days=1), time(0), tzinfo=zone(tz))
        else:
            tomorrow = datetime.fromtimestamp((today + 1) * day_seconds, tz=UTC)
        return Decision(False, "daily_cap", f"{used} {channel} contact(s) already today; the cap is {cap}", retry_at=tomorrow)
    return None


def check_calls(now: datetime, history: list[PastContact], rules: ContactRules, day_seconds: int = DAY) -> Decision | None:
    # any 7-day window holding this call must stay under the cap, including calls other cases reserved
    # a moment "after" now on their own workflow clocks
    week = _days(7, day_seconds)
    calls = sorted(c.at for c in history if c.channel == "call" and abs(now - c.at) < week)
    if len(calls) >= rules.call_cap_7d:
        oldest = calls[len(calls) - rules.call_cap_7d]
        return Decision(
            False,
            "call_cap_7d",
            f"{len(calls)} calls within 7 days; the cap is {rules.call_cap_7d}",
            retry_at=max(oldest + week, now + min(timedelta(minutes=1), _days(1 / 1440, day_seconds))),
        )
    days = rules.no_call_after_conversation_days
    if days:
        talks = [c.at for c in history if c.channel == "call" and c.outcome in CONVERSATION and c.at <= now]
        if talks and now - max(talks) < _days(days, day_seconds):
            last = max(talks)
            return Decision(
                False,
                "after_conversation",
                f"spoke with the borrower at {last:%Y-%m-%d %H:%M}Z; no call within {days} days of a conversation",
                retry_at=last + _days(days, day_seconds),
            )
    return None


def decide(
    *,
    action: str,
    channel: str,
    loan_id: str,
    now: datetime,
    tz: str,
    rules: ContactRules,
    holds: list[ActiveHold],
    history: list[PastContact],
    bundle: str = "",
    day_seconds: int = DAY,
    prefs: Preferences | None = None,
) -> Decision:
    """May `action` reach the borrower now? Holds, then (for contacts) the calendar, window, rest days, spacing
    and caps. `day_seconds` is the policy's day: caps per day, the 7-day call window, spacing and the days
    after a conversation count policy days, so a compressed demo day scales them with the ladder."""
    # elapsed time in UTC: two aware datetimes with the same zone subtract as wall clocks, an hour off across a
    # DST change (7 days back from a London or New York `now` is not 168 hours)
    now = now.astimezone(UTC)
    history = [c if c.at.tzinfo is UTC else replace(c, at=c.at.astimezone(UTC)) for c in history]
    week = _days(7, day_seconds)
    inputs = {
        "action": action,
        "channel": channel,
        "now": now.isoformat(),
        "tz": tz,
        "holds": sorted({h.kind for h in holds}),
        "contacts_7d": sum(1 for c in history if now - c.at < week),
    }
    if day_seconds != DAY:
        inputs["day_seconds"] = day_seconds
    d = check_holds(action, channel, loan_id, holds, now)
    if d is None and channel in CONTACT_CHANNELS:
        d = (
            check_calendar(now, tz, rules)
            or check_window(channel, now, tz, rules)
            or check_preferences(action, channel, now, tz, rules, prefs)
            or check_spacing(now, history, rules, bundle, day_seconds)
            or check_daily_cap(channel, now, tz, history, rules, day_seconds)
            or (check_calls(now, history, rules, day_seconds) if channel == "call" else None)
        )
    d = d or _allow()
    return Decision(d.allowed, d.rule, d.reason, d.retry_at, d.final, inputs)
