"""The daily jobs' activities (workflows/jobs.py): the calendar watch, the projection's reconciliation and the
retention erasure. Regular activities (not local): each may take a while, heartbeats, and is retried by the server.
Idempotent: a notice once per day or run (dedupe key), a repair only where the row still disagrees, an erasure once
per person."""

from __future__ import annotations

import asyncio
import base64
import functools
from datetime import timedelta

import structlog
from temporalio import activity
from temporalio.api.filter.v1 import WorkflowTypeFilter
from temporalio.api.workflowservice.v1 import ListOpenWorkflowExecutionsRequest, ListWorkflowExecutionsRequest
from temporalio.client import Client
from temporalio.common import MetricMeter
from temporalio.service import RPCError, RPCStatusCode

from activities.job_contracts import (
    CALENDAR_WATCH,
    ERASE_EXPIRED,
    RECONCILE_PAGE,
    CalendarWatchResult,
    JobRun,
    ReconcilePage,
    ReconcileResult,
    RetentionResult,
)
from db.jobs import CALENDAR_MISSING, RETENTION_ERASED, JobStore, LiveCase
from db.repo import Repo
from domain import calendar
from domain.dates import local_date
from domain.errors import InvalidInput
from domain.models import CaseStatus
from domain.money import parse_amount
from domain.policy import load_policy
from domain.retention import BANK_ZONE
from infra import metrics

log = structlog.get_logger("jobs")

CASE_WORKFLOW = "CollectionCase"
OPEN_CASES = f'ExecutionStatus = "Running" AND WorkflowType = "{CASE_WORKFLOW}"'
QUERY_TIMEOUT = timedelta(seconds=10)
REPAIRS = "collections_projection_repairs"
ERASED = "collections_contacts_erased"


async def open_cases(client: Client, token: bytes, size: int) -> tuple[list[str], bytes]:
    """One page of the running CollectionCase workflows' ids and the next page's token (empty: the last page).
    The time-skipping test server has no visibility queries: there, its list of open executions of the type."""
    svc, ns = client.workflow_service, client.namespace
    try:
        page = await svc.list_workflow_executions(
            ListWorkflowExecutionsRequest(namespace=ns, query=OPEN_CASES, page_size=size, next_page_token=token)
        )
    except RPCError as exc:
        if exc.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        open_page = await svc.list_open_workflow_executions(
            ListOpenWorkflowExecutionsRequest(
                namespace=ns,
                maximum_page_size=size,
                next_page_token=token,
                type_filter=WorkflowTypeFilter(name=CASE_WORKFLOW),
            )
        )
        return [e.execution.workflow_id for e in open_page.executions], open_page.next_page_token
    return [e.execution.workflow_id for e in page.executions], page.next_page_token


def live_case(st: CaseStatus) -> LiveCase:
    """The case row's fields as the case's status query has them (the same values its projection writes)."""
    cur = st.currency
    return LiveCase(
        workflow_id=st.workflow_id,
        loan_id=st.loan_id,
        currency=cur,
        stage=st.stage,
        status=st.status,
        outstanding=parse_amount(st.outstanding["total"], cur, allow_zero=True),
        total_paid=parse_amount(st.total_paid, cur, allow_zero=True),
    )


class JobActivities:
    """`meter`: the worker runtime's (the calendar gauge is then one series with the one the worker sets at start);
    None: each activity's own meter."""

    def __init__(self, repo: Repo, client: Client, meter: MetricMeter | None = None) -> None:
        self.store = JobStore(repo)
        self.client = client
        self.meter = meter

    def _meter(self) -> MetricMeter:
        return self.meter or activity.metric_meter()

    @activity.defn(name=CALENDAR_WATCH)
    async def calendar_watch(self, run: JobRun) -> CalendarWatchResult:
        """The days of official calendar left (the gauge) and, from 1 November, the warning that next year's file is
        missing: to the log, and once a day to the compliance worklist."""
        today = local_date(run.now, BANK_ZONE)
        left = metrics.check_calendar(self._meter(), log, today)
        warning = calendar.missing_warning(today)
        if warning:
            await asyncio.to_thread(
                self.store.notice,
                job=run.job,
                kind=CALENDAR_MISSING,
                detail=warning,
                at=run.now,
                cause={"days_left": left, "today": today.isoformat()},
                dedupe_key=f"{run.job}:{today.isoformat()}",
            )
        return CalendarWatchResult(today=today, days_left=left, warning=warning)

    @activity.defn(name=RECONCILE_PAGE)
    async def reconcile_page(self, req: ReconcilePage) -> ReconcileResult:
        """One page of open cases: each case's status query against its row; a row that disagrees is rewritten from
        the case (the source of truth). A case that does not answer is counted and left alone."""
        ids, token = await open_cases(self.client, base64.b64decode(req.page_token), req.page_size)
        gate = asyncio.Semaphore(req.concurrency)

        async def one(wid: str) -> str | None:
            async with gate:
                try:
                    st = await self.client.get_workflow_handle(wid).query(
                        "status", result_type=CaseStatus, rpc_timeout=QUERY_TIMEOUT
                    )
                except Exception as exc:  # noqa: BLE001 - a case that cannot answer is reported, not repaired
                    log.warning("reconcile: case did not answer", workflow_id=wid, error=str(exc)[:200])
                    return "unreadable"
                if st.status == "closed":  # closing: its last activity writes the row
                    return None
                changed = await asyncio.to_thread(self.store.repair_case, live_case(st), req.run.now, req.run.job)
                activity.heartbeat(wid)
                if changed:
                    log.info("reconcile: case row repaired", workflow_id=wid, fields=changed)
                    return "repaired"
                return None

        outcomes = await asyncio.gather(*(one(w) for w in ids))
        repaired = [w for w, o in zip(ids, outcomes, strict=True) if o == "repaired"]
        if repaired:
            metrics.count(self._meter(), REPAIRS, "Case rows the reconciliation rewrote from the case", len(repaired))
        return ReconcileResult(
            checked=len(ids),
            repaired=len(repaired),
            unreadable=outcomes.count("unreadable"),
            repaired_cases=repaired[:100],
            next_page_token=base64.b64encode(token).decode(),
        )

    @activity.defn(name=ERASE_EXPIRED)
    async def erase_expired_contacts(self, run: JobRun) -> RetentionResult:
        """Erase the contact details of the people whose cases all closed longer ago than their policy's retention
        period (domain/retention.py); one notice of the count for the compliance worklist."""

        @functools.cache
        def rules_of(policy: str) -> tuple[int, str]:
            try:
                r = load_policy(policy).retention
            except InvalidInput:  # a loan on a policy no longer on file: the default policy's rule
                log.warning("retention: unknown policy, the default's period applies", policy=policy)
                r = load_policy("default").retention
            return r.years, r.source

        due = await asyncio.to_thread(self.store.erasures_due, run.now, rules_of)
        erased = 0
        for e in due:
            erased += await asyncio.to_thread(self.store.erase, e, run.now, run.job)
            activity.heartbeat(erased)
        if erased:
            info = activity.info()
            await asyncio.to_thread(
                self.store.notice,
                job=run.job,
                kind=RETENTION_ERASED,
                detail=f"contact details of {erased} person(s) erased: their cases closed longer ago than the "
                "retention period of their policy (PIPL art. 47); amounts and audit trail kept",
                at=run.now,
                cause={"erased": erased, "due": len(due)},
                dedupe_key=f"{run.job}:{info.workflow_id}:{info.workflow_run_id}",
            )
            metrics.count(self._meter(), ERASED, "People whose contact details the retention job erased", erased)
            log.info("retention: contact details erased", erased=erased)
        from db.selfservice import LinkStore

        links, sessions = await asyncio.to_thread(LinkStore(self.store.repo).purge, run.now)
        if links or sessions:
            log.info("retention: borrower-page links and sessions deleted", links=links, sessions=sessions)
        return RetentionResult(erased=erased, due=len(due), links_purged=links, sessions_purged=sessions)

    def all(self) -> list:
        return [self.calendar_watch, self.reconcile_page, self.erase_expired_contacts]
