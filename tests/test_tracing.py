"""Tracing (infra/tracing.py): one payment through the API is one connected trace, from the request's server span
through the client's update, the workflow's handler and the ledger's local activity; a step that sends carries its
trace to the gateway (a span, and `traceparent` on the request). Off when no endpoint is configured.

The spans go to an in-memory exporter; the worker runs production's workflow runner (worker.workflow_runner), on a client
from infra/temporal.py connect(), as worker.py builds it.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Sequence

import httpx
import pytest
import pytest_asyncio
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from activities.case import CaseActivities
from activities.gateway import GatewayClient, GatewaySettings
from api.server import create_app
from domain import channels
from infra import tracing
from infra.config import SettingsError
from infra.temporal import connect
from tests.conftest import LADDER_POLICY, Cases
from worker import build_worker

TASK_QUEUE = "collections-tracing-test"
BOOTSTRAP = "tracing-bootstrap-0123456789"


class Spans(InMemorySpanExporter):
    """The finished spans (exported), and the started ones too: a workflow's run span ends only with the case."""

    def __init__(self) -> None:
        super().__init__()
        self.started: list[ReadableSpan] = []
        spans = self

        class OnStart(SpanProcessor):
            def on_start(self, span, parent_context=None) -> None:
                spans.started.append(span)

        self.on_start = OnStart()

    def clear(self) -> None:
        super().clear()
        self.started.clear()


@pytest.fixture(scope="module")
def spans():
    """Tracing on for this module only, into memory; off again (no global provider) after it."""
    assert not tracing.enabled()
    exporter = Spans()
    provider = tracing.install("collections-test", SimpleSpanProcessor(exporter))
    provider.add_span_processor(exporter.on_start)
    yield exporter
    tracing.uninstall()
    # the evicted workflows' coroutines detach their OpenTelemetry context when collected: here, not in the middle of
    # a later test (a finalizer that runs inside compile() breaks CPython 3.11's ast.parse: "recursion depth mismatch")
    gc.collect()


class _Traced:
    """The test server's clock, with the traced client in place of the environment's own (for Cases)."""

    def __init__(self, env, client) -> None:
        self.env, self.client = env, client

    async def get_current_time(self):
        return await self.env.get_current_time()


@pytest_asyncio.fixture(scope="module")
async def traced(env, repo, gateway, spans):
    """A client from connect() (the interceptor comes with it), a worker on it, the API in process on it;
    the gateway's requests' traceparent headers, as sent."""
    client = await connect(env.client.service_client.config.target_host)
    assert [type(i).__name__ for i in client.config()["interceptors"]] == ["TraceHeaderGuard", "OpenTelemetryInterceptor"]
    sent: list[str | None] = []

    async def seen(request: httpx.Request) -> None:
        sent.append(request.headers.get("traceparent"))

    gw = GatewayClient(GatewaySettings(url=gateway.url, api_key=gateway.api_key, timeout=5))
    gw._client.event_hooks["request"].append(seen)
    from access.operators import Operators
    from access.permissions import ROLES

    store = Operators(repo)
    token = store.issue_token(store.ensure("tracing test", [r for r in ROLES if r != "admin"]).id).token
    app = create_app([BOOTSTRAP], client=client, repo=repo)
    cases = Cases(_Traced(env, client), repo, task_queue=TASK_QUEUE)
    worker = build_worker(client, CaseActivities(repo, gw), task_queue=TASK_QUEUE, workflow_failure_exception_types=[Exception])
    try:
        async with worker:
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://api", headers={"Authorization": f"Bearer {token}"}
            ) as http:
                yield cases, http, sent
            await cases.terminate_all()
    finally:
        await gw.aclose()
        gc.collect()


def one(found: Sequence[ReadableSpan], name: str) -> ReadableSpan:
    named = [s for s in found if s.name == name]
    assert len(named) == 1, (name, sorted(s.name for s in found))
    return named[0]


def trace_of(found: Sequence[ReadableSpan], trace_id: int) -> list[ReadableSpan]:
    return [s for s in found if s.context is not None and s.context.trace_id == trace_id]


def ancestors(span: ReadableSpan, trace: Sequence[ReadableSpan]) -> list[ReadableSpan]:
    by_id = {s.context.span_id: s for s in trace if s.context is not None}
    out = []
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        out.append(span)
    return out


def assert_connected(trace: Sequence[ReadableSpan], root: ReadableSpan) -> None:
    """Every span of the trace reaches `root` through its parents (no orphan, no second root)."""
    by_id = {s.context.span_id: s for s in trace if s.context is not None}
    for s in trace:
        node = s
        while node is not root:
            assert node.parent is not None, f"{s.name}: its chain ends at {node.name}, not at {root.name}"
            assert node.parent.span_id in by_id, f"{s.name}: the parent of {node.name} is not in the trace"
            node = by_id[node.parent.span_id]


async def wait_for(spans: Spans, name: str) -> tuple[ReadableSpan, ...]:
    for _ in range(200):
        found = spans.get_finished_spans()
        if any(s.name == name for s in found):
            return found
        await asyncio.sleep(0.02)
    raise AssertionError(f"no span {name}: {sorted(s.name for s in spans.get_finished_spans())}")


async def test_one_payment_is_one_connected_trace(traced, spans):
    cases, http, _ = traced
    handle = await cases.start(dpd=1, policy=LADDER_POLICY)
    loan = handle.id.removeprefix("loan-")
    spans.clear()

    r = await http.post(f"/v1/loans/{loan}/payments", json={"payment_id": f"P-{loan}", "amount": "100.00"})
    assert r.status_code == 200, r.text
    found = await wait_for(spans, f"RunActivity:{channels.RECORD_PAYMENT}")

    request = one(found, "POST /v1/loans/{loan_id}/payments")
    assert request.kind == SpanKind.SERVER and request.parent is None
    assert request.context is not None
    trace = trace_of(found, request.context.trace_id)
    update = one(trace, "StartWorkflowUpdate:record_payment")
    handler = one(trace, "HandleUpdate:record_payment")
    one(trace, "ValidateUpdate:record_payment")
    start = one(trace, f"StartActivity:{channels.RECORD_PAYMENT}")
    ledger = one(trace, f"RunActivity:{channels.RECORD_PAYMENT}")
    assert update.kind == SpanKind.CLIENT and ledger.kind == SpanKind.SERVER
    assert handler.attributes is not None and handler.attributes["temporalWorkflowID"] == handle.id
    # the chain: request (through FastAPI's endpoint span) -> client's update -> the workflow's handler
    #   -> the local activity's start -> its run
    assert request in ancestors(update, trace)
    for child, parent in ((handler, update), (start, handler), (ledger, start)):
        assert child.parent is not None and parent.context is not None
        assert child.parent.span_id == parent.context.span_id, (child.name, parent.name)
    assert_connected(trace, request)
    # nothing of this payment went to another trace
    payment_spans = [s for s in found if "record_payment" in s.name or s.name.endswith(channels.RECORD_PAYMENT)]
    assert {s.context.trace_id for s in payment_spans if s.context} == {request.context.trace_id}


async def test_a_step_that_sends_carries_its_trace_to_the_gateway(traced, spans):
    cases, _, sent = traced
    spans.clear()
    sent.clear()
    handle = await cases.start(dpd=1, policy=LADDER_POLICY)  # the reminder step sends at once: SMS, email, letter
    found = await wait_for(spans, "gateway sms")

    opened = one(found, "StartWorkflow:CollectionCase")
    assert opened.context is not None
    # RunWorkflow ends with the case: seen started, not yet finished
    run = one(trace_of(spans.started, opened.context.trace_id), "RunWorkflow:CollectionCase")
    assert run.end_time is None and run.parent is not None and opened.context.span_id == run.parent.span_id
    trace = [*trace_of(found, opened.context.trace_id), run]
    by_id = {s.context.span_id: s for s in trace if s.context}
    sms = one(trace, "gateway sms")
    assert sms.kind == SpanKind.CLIENT and sms.parent is not None
    assert by_id[sms.parent.span_id].name.startswith("RunActivity:")
    assert sms.attributes is not None and sms.attributes["http.response.status_code"] == 200
    temporal = [s for s in trace if not s.name.startswith("gateway ")]
    assert all(s.attributes and s.attributes.get("temporalWorkflowID") == handle.id for s in temporal)
    assert {"gateway sms", "gateway email", "gateway letter"} <= {s.name for s in trace}
    # the request carried the gateway span's own context (W3C traceparent: version-trace-span-flags)
    assert sms.context is not None
    assert f"00-{sms.context.trace_id:032x}-{sms.context.span_id:016x}-01" in sent
    assert_connected(trace, opened)


async def test_no_endpoint_no_tracing(env, monkeypatch):
    """Unset or empty, OTEL_EXPORTER_OTLP_ENDPOINT leaves tracing off: no provider, no interceptor; a bad one is named."""
    monkeypatch.setattr(tracing, "_provider", None)  # this module's own provider aside
    assert (await connect(env.client.service_client.config.target_host)).config()["interceptors"] == []
    for environ in ({}, {"OTEL_EXPORTER_OTLP_ENDPOINT": ""}, {"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}):
        assert tracing.setup("collections-test", environ) is None
        assert not tracing.enabled() and tracing.interceptors() == []
        headers: dict[str, str] = {}
        with tracing.http_client_span("gateway sms", "POST", "http://gw/v1/sms", headers) as span:
            assert span is None
        assert headers == {}
    with pytest.raises(SettingsError, match=r"^OTEL_EXPORTER_OTLP_ENDPOINT: .*http:// or https:// URL.*'localhost:4318'"):
        tracing.setup("collections-test", {"OTEL_EXPORTER_OTLP_ENDPOINT": "localhost:4318"})


class _BadTraceHeader:
    """A sender whose signals and updates carry a trace header that is not a trace context."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def client(self):
        import temporalio.client
        from temporalio.api.common.v1 import Payload

        data = self.data

        class Out(temporalio.client.OutboundInterceptor):
            def _bad(self, headers):
                return {**headers, tracing.TRACE_HEADER: Payload(metadata={"encoding": b"json/plain"}, data=data)}

            async def signal_workflow(self, input):
                input.headers = self._bad(input.headers)
                return await super().signal_workflow(input)

            async def start_workflow_update(self, input):
                input.headers = self._bad(input.headers)
                return await super().start_workflow_update(input)

        class Interceptor(temporalio.client.Interceptor):
            def intercept_client(self, next):
                return Out(next)

        return Interceptor()


@pytest.mark.parametrize("data", [b"{not json", b'"a JSON string"', b'{"traceparent": 7}'])
async def test_a_bad_trace_header_is_dropped_and_the_input_still_applies(traced, env, data):
    from temporalio.api.enums.v1 import EventType
    from temporalio.client import Client

    from domain.models import PaymentIn
    from workflows.case import CollectionCase

    cases, _http, _sent = traced
    h = await cases.start(dpd=1)
    sender = Client(
        env.client.service_client,
        namespace=env.client.namespace,
        data_converter=env.client.data_converter,
        interceptors=[_BadTraceHeader(data).client()],
    )
    bad = sender.get_workflow_handle(h.id)
    await bad.signal("record_payment", {"payment_id": "TH-1", "amount": "100.00", "currency": "CNY"})
    r = await bad.execute_update(CollectionCase.record_payment, PaymentIn(payment_id="TH-2", amount="50.00", currency="CNY"))
    assert not r.duplicate
    st = await cases.status(h)
    assert st.total_paid == "150.00"
    history = await h.fetch_history()
    assert not [e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]
