"""The daily jobs, each a small workflow started by its Temporal Schedule (app/schedules.py) or by hand:

  CalendarWatch  the days of official holiday calendar left (a gauge) and, from 1 November, the warning that next
                 year's file is missing (log, gauge, compliance worklist)
  Reconcile      every open case's status against the case row the console reads; a row that disagrees is rewritten
                 from the case (the workflow is the source of truth); the count repaired is a metric
  Retention      the contact details of people whose cases all closed longer ago than their policy's retention
                 period are erased (PIPL art. 47); amounts and the audit trail stay

Orchestration only; deterministic: the time is workflow.now(), every side effect an activity (activities/jobs.py).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.job_contracts import (
        CALENDAR_WATCH,
        CALENDAR_WATCH_JOB,
        ERASE_EXPIRED,
        RECONCILE_JOB,
        RECONCILE_PAGE,
        RETENTION_JOB,
        CalendarWatchResult,
        JobRun,
        ReconcilePage,
        ReconcileResult,
        RetentionResult,
    )

JOB_RETRY = RetryPolicy(initial_interval=timedelta(seconds=5), maximum_interval=timedelta(minutes=5), maximum_attempts=10)
PAGES_PER_RUN = 500  # continue-as-new after this many pages (500 x 200 cases): history stays small


@workflow.defn
class CalendarWatch:
    @workflow.run
    async def run(self) -> CalendarWatchResult:
        return await workflow.execute_activity(
            CALENDAR_WATCH,
            JobRun(now=workflow.now(), job=CALENDAR_WATCH_JOB),
            result_type=CalendarWatchResult,
            start_to_close_timeout=timedelta(minutes=1),
            retry_policy=JOB_RETRY,
        )


@workflow.defn
class Reconcile:
    """Pages through the open cases (a bounded number of queries at once, in the activity)."""

    @workflow.run
    async def run(self, carried: ReconcileResult | None = None) -> ReconcileResult:
        total = carried or ReconcileResult()
        run = JobRun(now=workflow.now(), job=RECONCILE_JOB)
        for _ in range(PAGES_PER_RUN):
            page = await workflow.execute_activity(
                RECONCILE_PAGE,
                ReconcilePage(run=run, page_token=total.next_page_token),
                result_type=ReconcileResult,
                start_to_close_timeout=timedelta(minutes=10),
                heartbeat_timeout=timedelta(minutes=2),
                retry_policy=JOB_RETRY,
            )
            total = total.plus(page)
            if not page.next_page_token:
                return total
        workflow.continue_as_new(total)


@workflow.defn
class Retention:
    @workflow.run
    async def run(self) -> RetentionResult:
        return await workflow.execute_activity(
            ERASE_EXPIRED,
            JobRun(now=workflow.now(), job=RETENTION_JOB),
            result_type=RetentionResult,
            start_to_close_timeout=timedelta(hours=1),
            heartbeat_timeout=timedelta(minutes=5),
            retry_policy=JOB_RETRY,
        )


JOBS = [CalendarWatch, Reconcile, Retention]
