"""Metrics: the SDK's Prometheus endpoint plus the business counters, on the same endpoint.

The worker serves http://WORKER_METRICS_ADDRESS/metrics (default 127.0.0.1:9464; empty turns
it off). Business counters go through the SDK's own meter, so workflow-side counts are not
repeated when a workflow replays:

  collections_contacts{channel, outcome}       contacts made by channel and outcome (delivered, failed,
                                               or the call outcome: answered, no_answer, ...)
  collections_refusals{rule}                   contacts the contact gate refused, by rule
  collections_payments{currency}               payments written to the ledger
  collections_payment_amount{currency}         their amount, in major units
  collections_steps{stage}                     ladder steps started, by stage
  collections_cases_closed{outcome}            cases closed, by outcome
  collections_case_query_failures_total        (API /metrics) case queries answered from the projection
  collections_calendar_days_left               days until the first day with no official holiday calendar
                                               file (policies/calendars/cn-YYYY.toml); 0: contacts bound to
                                               rest days are being refused (calendar_missing); set at worker
                                               start and by the daily CalendarWatch job (workflows/jobs.py)
  collections_projection_repairs               case rows the daily reconciliation rewrote from the case
  collections_contacts_erased                  people whose contact details the daily retention job erased
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from prometheus_client import Counter
from temporalio.common import MetricMeter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from domain import calendar


def runtime(address: str | None) -> Runtime | None:
    """A runtime exporting Prometheus metrics at `address` (host:port), or None to keep the default."""
    if not address:
        return None
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address)))


def count(meter: MetricMeter, name: str, description: str, value: int | float = 1, **labels: str) -> None:
    if isinstance(value, float):
        meter.create_counter(name, description).add(int(round(value)), labels)  # the SDK's counters are integers
    else:
        meter.create_counter(name, description).add(value, labels)


CALENDAR_DAYS_LEFT = "collections_calendar_days_left"

# Counted where the query is asked (API, console, CLI), served by the API at /metrics. The worker's own endpoint
# has the SDK's temporal_workflow_task_execution_failed{failure_reason} for failed workflow tasks.
QUERY_FAILURES = Counter(
    "collections_case_query_failures",
    "Case status queries that failed and were answered from the database projection",
)


def beijing_today() -> dt.date:
    return dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()


def check_calendar(meter: MetricMeter | None, log, today: dt.date | None = None) -> int:
    """Set the calendar gauge and warn (from 1 November) that next year's calendar file is missing."""
    today = today or beijing_today()
    left = calendar.days_of_calendar_left(today)
    if meter is not None:
        meter.create_gauge(CALENDAR_DAYS_LEFT, "days until the first day with no official holiday calendar file").set(left)
    warning = calendar.missing_warning(today)
    if warning:
        in_force = {str(y): calendar.in_force(y) or "none" for y in (today.year, today.year + 1)}
        log.warning("holiday calendar missing", days_left=left, detail=warning, in_force=in_force)
    return left
