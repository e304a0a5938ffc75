"""Agent mode: the calls and visits a policy gives to people instead of the gateway.

A step action in agent mode (`Step.modes`, e.g. `call = "agent"`) opens a *task* for the collections floor
instead of a send. This module holds the rules for a task, pure and in one place:

- **who gets it** (`assign`): the first team in `policies/teams/default.toml` whose segments, regions and actions
  match the case, then the member of that team with the fewest open tasks (ties by name); a re-queued
  task goes to another member where the team has one;
- **how urgent** (`priority`, a band 1-5, and `urgency`, the policy's formula that orders a call list): by days past
  due, the amount outstanding, broken promises and a legal clock about to end;
- **when a visit happens** (`visit_slot`): a slot inside the contact rules' allowed days and hours, the same
  rules the contact gate applies (`domain.compliance.next_window_open`), never on a rest day the policy
  excludes nor outside the window;
- **where** (`region_of`): the province or municipality and the district of the borrower's address, which
  route a task by region and order a collector's visit list by district.

The bank's process (shared/reference) has calls made by staff (电话催收) and visits by collectors (上门催收).
"""

from __future__ import annotations

import math
import re
import tomllib
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from domain import compliance
from domain.dates import zone
from domain.errors import InvalidInput
from domain.policy import POLICY_DIR, ContactRules, Urgency

TaskAction = Literal["call", "visit"]
TEAMS_FILE = POLICY_DIR / "teams" / "default.toml"


class Team(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1, max_length=80)
    actions: list[TaskAction] = Field(default=["call", "visit"], min_length=1)
    segments: list[str] = Field(default=[], description="empty: every segment")
    regions: list[str] = Field(default=[], description="province or city names (上海, 北京, 广东, 深圳...); empty: everywhere")
    members: list[str] = Field(min_length=1, description="operator names (as in the operators table)")

    @field_validator("members")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("a member is listed twice")
        return v


class Teams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    teams: list[Team] = Field(min_length=1)


def load_teams(path: Path | None = None) -> Teams:
    path = path or TEAMS_FILE
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput(str(path), "no such teams file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(str(path), f"not valid TOML: {exc}") from None
    try:
        return Teams.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise InvalidInput(f"{path}: {loc}", err["msg"].removeprefix("Value error, ")) from None


# ------------------------------------------------------------------ where

# 省 / 自治区 / 市 at the start of a mainland address; the four municipalities (直辖市) stand for their province
_PROVINCE = re.compile(r"^(北京|天津|上海|重庆|[^省市区县]{2,8}?(?:省|自治区)|[^省市区县]{2,3}(?=市))")
_CITY = re.compile(r"(?:省|自治区)([^市]{2,8}?)市")
_DISTRICT = re.compile(r"(?:市|自治区|省)?([^省市]{1,8}?(?:区|县|旗))")


def region_of(address: str | None) -> tuple[str, str, str]:
    """(province, city, district) of a mainland address, each "" when it cannot be read.

    >>> region_of("上海市黄浦区南京东路1号")
    ('上海', '上海', '黄浦区')
    >>> region_of("广东省深圳市南山区科技园")
    ('广东', '深圳', '南山区')
    """
    a = (address or "").strip()
    province = ""
    m = _PROVINCE.match(a)
    if m:
        province = m.group(1).removesuffix("省").removesuffix("自治区")
    city = province if province in ("北京", "天津", "上海", "重庆") else ""
    m = _CITY.search(a)
    if m:
        city = m.group(1)
    rest = a[a.find("市") + 1 :] if "市" in a else a
    m = _DISTRICT.search(rest)
    district = m.group(1) if m else ""
    return province, city, district


# ------------------------------------------------------------------ who


def _matches(team: Team, action: str, segment: str, province: str, city: str) -> bool:
    return (
        action in team.actions
        and (not team.segments or segment in team.segments)
        and (not team.regions or province in team.regions or city in team.regions)
    )


def team_for(teams: Teams, action: str, segment: str, province: str, city: str) -> Team | None:
    return next((t for t in teams.teams if _matches(t, action, segment, province, city)), None)


def assign(
    teams: Teams,
    *,
    action: str,
    segment: str,
    province: str,
    city: str,
    load: dict[str, int],
    exclude: str | None = None,
) -> tuple[str, str | None]:
    """(team, assignee): the first matching team, its least-loaded member (ties by name), another member than
    `exclude` where the team has one. No matching team: ("unassigned", None), which the floor's manager sees."""
    team = team_for(teams, action, segment, province, city)
    if team is None:
        return "unassigned", None
    members = [m for m in team.members if m != exclude] or list(team.members)
    return team.name, min(members, key=lambda m: (load.get(m, 0), m))


# ------------------------------------------------------------------ how urgent


def priority(dpd: int, outstanding_minor: int) -> int:
    """1 (most urgent) to 5: later buckets and larger balances first. M1 (1-30 DPD) is 3 at most, M3+ (90+) 1."""
    bucket = 1 if dpd > 90 else 2 if dpd > 30 else 3
    if outstanding_minor < 500_000:  # under 5,000.00
        bucket += 1
    if dpd < 7:
        bucket += 1
    return min(bucket, 5)


# ------------------------------------------------------------------ when


def urgency(dpd: int, outstanding_minor: int, broken_promises: int, legal_days_left: int | None, w: Urgency) -> int:
    """A call task's urgency in hundredths of a point (higher first), from the policy's weights (`Urgency`)."""
    points = (
        w.per_month_past_due * max(dpd, 0) / 30
        + w.per_tenfold_balance * math.log10(max(outstanding_minor, 100) / 100)
        + w.per_broken_promise * broken_promises
        + (w.legal_clock if legal_days_left is not None and legal_days_left <= w.legal_within_days else 0)
    )
    return round(points * 100)


def live_dpd(dpd_then: int, since: datetime, now: datetime, day_seconds: int) -> int:
    """Days past due now, from the value a task was opened with and the policy days passed since."""
    return dpd_then + max(0, int((now - since).total_seconds() // day_seconds))


def call_due(now: datetime, hours: int, day_seconds: int) -> datetime:
    """A call task is worked within `hours` policy hours (a compressed demo day scales them)."""
    return now + timedelta(seconds=hours * 3600 * day_seconds / 86400)


def visit_slot(
    now: datetime,
    tz: str,
    rules: ContactRules,
    slot_minutes: int,
    booked: dict[date, int],
    day_seconds: int = 86400,
) -> tuple[datetime, datetime]:
    """The visit's slot: from the next day on (borrower's clock), the first day the contact rules allow with a
    free slot for the assignee (`booked`: the assignee's visits already booked per local day), at the first free
    slot of that day's window. A compressed demo day books from the next instant instead of the next day.
    The slot lies wholly inside the window: a visit may start no later than `slot_minutes` before it closes."""
    z = zone(tz)
    local = now.astimezone(z)
    start = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), tzinfo=z) if day_seconds >= 86400 else now
    window_end = rules.window[1]
    for _ in range(60):
        opens = compliance.next_window_open(start, tz, rules).astimezone(z)
        day = opens.date()
        first = opens.hour * 60 + opens.minute
        slots = max(0, (window_end - first) // slot_minutes)
        taken = booked.get(day, 0)
        if taken < slots:
            begin = opens + timedelta(minutes=taken * slot_minutes)
            return begin, begin + timedelta(minutes=slot_minutes)
        start = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=z)
    raise ValueError("no visit slot within 60 allowed days: check the policy's contact rules")
