"""Tracing: OpenTelemetry spans from the API's request through the case's workflow and activities to the gateway.

Off unless OTEL_EXPORTER_OTLP_ENDPOINT is set (infra/config.py): then no tracer provider is installed, no
Temporal interceptor is added and the gateway call takes no span, so tracing costs nothing. On, each process
(`setup("collections-worker")`, `setup("collections-api")`) installs one replay-safe tracer provider, globally,
that exports in batches over OTLP/HTTP to `<endpoint>/v1/traces`, and:

- the API's requests get a server span from FastAPI's own OpenTelemetry support (it uses the global provider),
  with the caller's `traceparent` as parent when it sends one;
- every client made by infra/temporal.py `connect()` carries the SDK's interceptor (`interceptors()`), so an
  update, start or signal takes a client span and passes its context in the Temporal headers; the worker (whose
  client has it too) opens the workflow's spans, the handler's and each activity's under that context;
- the gateway call (activities/gateway.py) takes a client span and sends `traceparent` (`http_client_span`).

The interceptor is the SDK's `OpenTelemetryInterceptor` (temporalio.contrib.opentelemetry, with its Temporal
spans on), not its older `TracingInterceptor`: the older one parents every span in a workflow, an update
handler's and its activities' too, on the context the workflow was *started* with, and only links the update's
client span, so one payment made two traces (or none inside the workflow, for a case opened untraced). The newer
one parents a handler on the context its own update carried: one payment, one trace. It makes no workflow
commands (span and trace ids come from the workflow's seeded random, and spans are not ended again on replay), so a
case's history is the same with tracing on or off and replays either way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

import temporalio.client
import temporalio.worker
import temporalio.workflow

from infra.config import Common, load

if TYPE_CHECKING:  # imported only when tracing is on
    from opentelemetry.sdk.trace import SpanProcessor
    from opentelemetry.trace import Span
    from temporalio.contrib.opentelemetry import ReplaySafeTracerProvider

SERVICE = "collections"

_provider: ReplaySafeTracerProvider | None = None  # the installed provider, or None: tracing is off


def enabled() -> bool:
    return _provider is not None


def setup(service: str = SERVICE, environ: dict[str, str] | None = None) -> ReplaySafeTracerProvider | None:
    """Tracing from the settings: an OTLP exporter when OTEL_EXPORTER_OTLP_ENDPOINT is set (the provider is
    returned), nothing at all otherwise (None). Once per process: a second call returns the first provider."""
    endpoint = load(Common, environ).tracing_endpoint
    if _provider is not None or endpoint is None:
        return _provider
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    return install(service, BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")))


def install(service: str, processor: SpanProcessor) -> ReplaySafeTracerProvider:
    """Install a replay-safe tracer provider with this span processor as the process's global one (the tests
    pass an in-memory exporter's processor). OpenTelemetry takes a global provider once per process."""
    global _provider
    import opentelemetry.trace
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from temporalio.contrib.opentelemetry import create_tracer_provider

    provider = create_tracer_provider(resource=Resource({SERVICE_NAME: service}))
    provider.add_span_processor(processor)
    opentelemetry.trace.set_tracer_provider(provider)
    _provider = provider
    return provider


def uninstall() -> None:
    """Tracing off again (the tests' teardown): flush, forget the provider and unset OpenTelemetry's global one."""
    global _provider
    if _provider is None:
        return
    import opentelemetry.trace

    _provider.force_flush()
    _provider = None
    # OpenTelemetry has no public way to unset its global provider; these are what its own test helpers reset.
    opentelemetry.trace._TRACER_PROVIDER = None
    opentelemetry.trace._TRACER_PROVIDER_SET_ONCE._done = False


def shutdown() -> None:
    """Flush what is left to the collector (a process's last step)."""
    if _provider is not None:
        _provider.shutdown()


def interceptors() -> list:
    """The interceptors for Client.connect (and so for the worker built on that client): none when tracing is off.
    The header guard comes first, so that the tracing interceptor only ever reads a trace header that decodes."""
    if _provider is None:
        return []
    from temporalio.contrib.opentelemetry import OpenTelemetryInterceptor

    return [TraceHeaderGuard(), OpenTelemetryInterceptor(add_temporal_spans=True)]


TRACE_HEADER = "_tracer-data"  # the header the SDK's OpenTelemetry interceptor carries a trace context in


def trace_header_problem(headers: Any) -> str | None:
    """Why a signal's, update's, query's or start's trace header cannot be read as a trace context, or None. The
    tracing interceptor decodes it unguarded: a sender's bad bytes there would fail every workflow task of the case."""
    p = headers.get(TRACE_HEADER) if headers else None
    if p is None:
        return None
    from temporalio.converter import PayloadConverter

    try:
        carrier = PayloadConverter.default.from_payloads([p])[0]
    except Exception as exc:  # noqa: BLE001 - whatever the bytes are, the input goes on without them
        return f"does not decode ({type(exc).__name__})"
    if not isinstance(carrier, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in carrier.items()):
        return f"is not a map of strings (a JSON {type(carrier).__name__})"
    return None


def _without_bad_trace_header(input: Any, what: str) -> Any:  # every inbound input that carries headers
    problem = trace_header_problem(input.headers)
    if problem is not None:
        why = "%s: trace header %s %s; dropped, the input goes on untraced"
        temporalio.workflow.logger.warning(why, what, TRACE_HEADER, problem)
        input.headers = {k: v for k, v in input.headers.items() if k != TRACE_HEADER}
    return input


class _TraceHeaderGuardInbound(temporalio.worker.WorkflowInboundInterceptor):
    async def execute_workflow(self, input: temporalio.worker.ExecuteWorkflowInput) -> Any:
        return await super().execute_workflow(_without_bad_trace_header(input, "start"))

    async def handle_signal(self, input: temporalio.worker.HandleSignalInput) -> None:
        await super().handle_signal(_without_bad_trace_header(input, f"signal {input.signal}"))

    async def handle_query(self, input: temporalio.worker.HandleQueryInput) -> Any:
        return await super().handle_query(_without_bad_trace_header(input, f"query {input.query}"))

    def handle_update_validator(self, input: temporalio.worker.HandleUpdateInput) -> None:
        super().handle_update_validator(_without_bad_trace_header(input, f"update {input.update}"))

    async def handle_update_handler(self, input: temporalio.worker.HandleUpdateInput) -> Any:
        return await super().handle_update_handler(_without_bad_trace_header(input, f"update {input.update}"))


class TraceHeaderGuard(temporalio.client.Interceptor, temporalio.worker.Interceptor):
    """Drops a trace header that does not decode before the tracing interceptor reads it (a client and a worker
    interceptor, as the tracing one is, so that a client made by connect() hands it to its worker)."""

    def workflow_interceptor_class(
        self, input: temporalio.worker.WorkflowInterceptorClassInput
    ) -> type[temporalio.worker.WorkflowInboundInterceptor]:
        return _TraceHeaderGuardInbound


# The workflow sandbox shares the host's opentelemetry (its context and the global provider): worker.py passes
# it through, as the SDK's OpenTelemetryPlugin does. The interceptor's own code runs on the host's imports either
# way; a span made in workflow code (opentelemetry.trace.get_tracer) would otherwise find no provider.
SANDBOX_PASSTHROUGH = ("opentelemetry",)


@contextlib.contextmanager
def http_client_span(name: str, method: str, url: str, headers: MutableMapping[str, str]) -> Iterator[Span | None]:
    """A client span around one outgoing HTTP call, its context injected into `headers` (W3C traceparent).
    Yields the span (set its status code with `http_status`), or None when tracing is off."""
    if _provider is None:
        yield None
        return
    from opentelemetry import propagate, trace

    tracer = trace.get_tracer("collections.http")
    attributes = {"http.request.method": method, "url.full": url}
    with tracer.start_as_current_span(name, kind=trace.SpanKind.CLIENT, attributes=attributes) as span:
        propagate.inject(headers)
        yield span


def http_status(span: Span | None, status: int) -> None:
    if span is not None:
        from opentelemetry.trace import Status, StatusCode

        span.set_attribute("http.response.status_code", status)
        if status >= 400:
            span.set_status(Status(StatusCode.ERROR, f"HTTP {status}"))
