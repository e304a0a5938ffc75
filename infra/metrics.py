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
"""

from __future__ import annotations

from temporalio.common import MetricMeter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig


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
