"""When a person's contact details may be erased (the retention job): pure rules, no I/O.

PIPL (个人信息保护法) art. 47(1): once the retention period is over, the processor deletes the personal information
on its own initiative. The period is the policy's (domain/policy.py RetentionRules: years and their source),
counted from the day the person's last case closed as 民法典 arts. 201-202 count a period of years: the closing day
is not counted, the period's last day is the corresponding day (29 February: the month's last day) and it ends at
24:00 (art. 203) in the bank's zone. A rest day does not move that end (art. 203's extension gives a party time to
act; here it would only keep personal information longer than the rule allows).
"""

from __future__ import annotations

from datetime import datetime

from domain import legal
from domain.dates import local_date

BANK_ZONE = "Asia/Shanghai"  # the bank's calendar, whatever the borrower's own zone

# What the job erases (None) and what it masks (kept in part, so a record can still be told apart by a person).
ERASED = ("phone", "email", "address")
MASKED = ("name", "id_number")


def erase_from(closed_at: datetime, years: int, tz: str = BANK_ZONE) -> datetime:
    """The instant from which the contact details of a person whose last case closed at `closed_at` are erased."""
    return legal.period(local_date(closed_at, tz), tz, years=years, rest_days_move=False).earliest


def due(closed_at: datetime, years: int, now: datetime, tz: str = BANK_ZONE) -> bool:
    return now >= erase_from(closed_at, years, tz)


def mask(field: str, value: str | None) -> str | None:
    """A masked name keeps its first character (the family name, for most Chinese names), an id number its last
    four; nothing else of either is kept."""
    if not value:
        return value
    if field == "name":
        return value[0] + "*" * max(1, len(value) - 1)
    return "*" * max(0, len(value) - 4) + value[-4:]
