"""The worker's Prometheus endpoint: the SDK's metrics and the business counters."""

from __future__ import annotations

import httpx
from temporalio.testing import WorkflowEnvironment

from activities.case import CaseActivities
from activities.gateway import GatewayClient, GatewaySettings
from devstack.binaries import find
from domain.models import HoldIn, PaymentIn
from infra import metrics
from tests.conftest import DATA_CONVERTER, Cases, register_search_attributes
from tests.workflow_helpers import free_port
from worker import build_worker
from workflows.case import CollectionCase


async def test_contacts_refusals_payments_steps_and_closures_are_counted(repo, gateway):
    address = f"127.0.0.1:{free_port()}"
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=DATA_CONVERTER, test_server_existing_path=find("temporal-test-server"), runtime=metrics.runtime(address)
    )
    client = GatewayClient(GatewaySettings(url=gateway.url, api_key=gateway.api_key, timeout=5))
    try:
        await register_search_attributes(env.client)
        async with build_worker(env.client, CaseActivities(repo, client), task_queue="metrics-q"):
            cases = Cases(env, repo, task_queue="metrics-q")
            h = await cases.start(dpd=1, loan_id="MET-1", contact={"phone": "123"})  # a bad phone: one failed SMS
            await h.execute_update(CollectionCase.place_hold, HoldIn(kind="cease_contact"))  # the call is refused
            await cases.advance(days=8)
            await h.execute_update(
                CollectionCase.record_payment, PaymentIn(payment_id="MET-P1", amount="10520.00", currency="CNY")
            )
            await cases.result(h)
        text = httpx.get(f"http://{address}/metrics", timeout=10).text
    finally:
        await client.aclose()
        await env.shutdown()
    lines = [ln for ln in text.splitlines() if ln.startswith("collections_")]

    def value(prefix: str) -> float:
        return sum(float(ln.rsplit(" ", 1)[1]) for ln in lines if ln.startswith(prefix))

    assert value("collections_contacts{") == 3
    assert 'channel="email",namespace="default",outcome="delivered"' in text
    assert 'channel="sms",namespace="default",outcome="failed"' in text
    assert value("collections_payments{") == 1 and value("collections_payment_amount{") == 10520
    assert value("collections_refusals{") == 1 and 'rule="cease_contact"' in text
    assert value("collections_steps{") == 2 and 'stage="first_call"' in text
    assert value("collections_cases_closed{") == 1 and 'outcome="paid"' in text
    assert 'temporal_workflow_completed{namespace="default"' in text  # the SDK's own metrics, same endpoint
