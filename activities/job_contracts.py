"""What the daily jobs' workflows (workflows/jobs.py) send to their activities and get back. Pure pydantic: safe in
the workflow sandbox. No PII: counts, ids and dates only."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

CALENDAR_WATCH = "job_calendar_watch"
RECONCILE_PAGE = "job_reconcile_page"
ERASE_EXPIRED = "job_erase_expired_contacts"


class _Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JobRun(_Contract):
    """One run of a job: its clock (the workflow's) and its name (the schedule id, or the workflow id by hand)."""

    now: dt.datetime
    job: str


class CalendarWatchResult(_Contract):
    today: dt.date = Field(description="the day in Beijing the watch ran for")
    days_left: int = Field(description="days until the first day with no official holiday calendar file")
    warning: str | None = Field(default=None, description="the warning given (from 1 November, or at once)")


class ReconcilePage(_Contract):
    run: JobRun
    page_token: str = Field(default="", description="base64 of the visibility list's next page token")
    page_size: int = Field(default=200, ge=1, le=1000)
    concurrency: int = Field(default=8, ge=1, le=64, description="case queries at once")


class ReconcileResult(_Contract):
    checked: int = 0
    repaired: int = 0
    unreadable: int = Field(default=0, description="open cases whose query failed (their row was left alone)")
    repaired_cases: list[str] = []
    next_page_token: str = ""

    def plus(self, other: ReconcileResult) -> ReconcileResult:
        return ReconcileResult(
            checked=self.checked + other.checked,
            repaired=self.repaired + other.repaired,
            unreadable=self.unreadable + other.unreadable,
            repaired_cases=(self.repaired_cases + other.repaired_cases)[:100],
            next_page_token=other.next_page_token,
        )


class RetentionResult(_Contract):
    erased: int = Field(default=0, description="people whose contact details this run erased")
    due: int = Field(default=0, description="people found past their retention period (erased now or before)")
    links_purged: int = Field(default=0, description="borrower-page links deleted, long expired")
    sessions_purged: int = Field(default=0, description="borrower-page sessions deleted, ended")


# The jobs' names: their schedules' ids (app/schedules.py), the notices' workflow_id in the audit trail.
CALENDAR_WATCH_JOB = "collections-calendar-watch"
RECONCILE_JOB = "collections-reconcile"
RETENTION_JOB = "collections-retention"
