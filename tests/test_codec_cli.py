"""The `temporal` CLI through the codec server: an operator who may send inputs updates, signals and queries a case
with --codec-endpoint and --codec-auth; an update's refusal comes back readable; a read-only operator and the
codec token cannot encode (and are told why)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess

import httpx
import pytest

from access.operators import Operators
from devstack.binaries import find
from encryption.codec_server import running_codec_server
from tests.conftest import DATA_CONVERTER, TEST_KEY_ID
from workflows.case import CollectionCase

CODEC_TOKEN = "cli-codec-token-" + "y" * 24


@pytest.fixture(scope="module")
def env(dev_env):
    """The dev server (tests/conftest.py dev_env)."""
    return dev_env


async def cli(env, codec: str, token: str, *args: str) -> subprocess.CompletedProcess:
    """The CLI in a thread: the test's worker runs on this event loop and must go on while the CLI waits."""
    address = env.client.service_client.config.target_host
    return await asyncio.to_thread(
        subprocess.run,
        [find("temporal"), *args, "--address", address, "--codec-endpoint", codec, "--codec-auth", f"Bearer {token}"],
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_the_temporal_cli_updates_signals_and_queries_through_the_codec_server(env, cases, repo):
    ops = Operators(repo)
    ops.ensure("cli collector", ["collector"])
    ops.ensure("cli viewer", ["viewer"])
    sender = ops.issue_token("cli collector").token
    viewer = ops.issue_token("cli viewer").token
    keys = {"PAYLOAD_KEYS": os.environ["PAYLOAD_KEYS"], "PAYLOAD_KEY_ID": TEST_KEY_ID}
    db = {"DATABASE_URL": repo.engine.url.render_as_string(hide_password=False)}
    h = await cases.start(dpd=1)
    wid = h.id
    with running_codec_server({"CODEC_TOKEN": CODEC_TOKEN, "CODEC_DEV": "", **keys, **db}) as codec:
        # an update: applied, its result readable
        pay = json.dumps({"payment_id": "CLI-1", "amount": "100.00", "currency": "CNY"})
        r = await cli(env, codec, sender, "workflow", "update", "execute", "-w", wid, "--name", "record_payment", "--input", pay)
        assert r.returncode == 0, r.stderr
        assert "CLI-1" in r.stdout or "100.00" in r.stdout, r.stdout
        # a refusal: the reason readable, naming the field
        bad = json.dumps({"payment_id": "CLI-2", "amount": "-5", "currency": "CNY"})
        r = await cli(env, codec, sender, "workflow", "update", "execute", "-w", wid, "--name", "record_payment", "--input", bad)
        assert r.returncode != 0 and "amount" in (r.stdout + r.stderr), r.stdout + r.stderr
        assert "Encoded failure" not in r.stdout + r.stderr
        # a query: the status decoded
        r = await cli(env, codec, sender, "workflow", "query", "-w", wid, "--type", "status")
        assert r.returncode == 0, r.stderr
        assert '"total_paid"' in r.stdout and "100.00" in r.stdout, r.stdout
        # a signal: delivered with its input encrypted by the codec server, readable in the history
        r = await cli(env, codec, sender, "workflow", "signal", "-w", wid, "--name", "record_payment", "--input", pay)
        assert r.returncode == 0, r.stderr
        history = await h.fetch_history()
        signals = [e for e in history.events if e.HasField("workflow_execution_signaled_event_attributes")]
        assert signals, "no signal in the history"
        [payload] = signals[-1].workflow_execution_signaled_event_attributes.input.payloads
        assert payload.metadata["encoding"] == b"binary/encrypted"
        assert json.loads((await DATA_CONVERTER.payload_codec.decode([payload]))[0].data)["payment_id"] == "CLI-1"
        # a viewer, and the codec token, may decode but not encode
        for token, status in ((viewer, 403), (CODEC_TOKEN, 403)):
            resp = httpx.post(f"{codec}/encode", json={"payloads": []}, headers={"Authorization": f"Bearer {token}"})
            assert resp.status_code == status, resp.text
            assert "encod" in resp.json()["detail"]
        r = await cli(env, codec, viewer, "workflow", "signal", "-w", wid, "--name", "record_payment", "--input", pay)
        assert r.returncode != 0
    st = await h.query(CollectionCase.status)
    assert st.total_paid == "100.00"  # the update applied once


async def test_the_temporal_cli_signals_inputs_and_every_refusal_is_recorded(env, cases, repo):
    """A bank's feed with only the CLI: a signalled payment is applied, the same id twice once; a bad amount, an
    unknown signal name, a JSON string and a payload that is not JSON are each recorded as rejected (the case's
    event, a row for the console's worklist), with the sender's --identity, and no workflow task fails."""
    ops = Operators(repo)
    ops.ensure("cli feed", ["collector"])
    token = ops.issue_token("cli feed").token
    keys = {"PAYLOAD_KEYS": os.environ["PAYLOAD_KEYS"], "PAYLOAD_KEY_ID": TEST_KEY_ID}
    db = {"DATABASE_URL": repo.engine.url.render_as_string(hide_password=False)}
    h = await cases.start(dpd=1)
    wid, loan = h.id, h.id.removeprefix("loan-")

    async def signal(name: str, value: str, *more: str) -> None:
        r = await cli(
            env, codec, token, "workflow", "signal", "-w", wid, "--name", name, "--identity", "bank-feed", "--input", value, *more
        )
        assert r.returncode == 0, r.stderr

    with running_codec_server({"CODEC_TOKEN": CODEC_TOKEN, "CODEC_DEV": "", **keys, **db}) as codec:
        pay = json.dumps({"payment_id": "FEED-1", "amount": "100.00", "currency": "CNY"})
        await signal("record_payment", pay)
        await signal("record_payment", pay)
        await signal("record_payment", json.dumps({"payment_id": "FEED-2", "amount": "1,000", "currency": "CNY"}))
        await signal("pay_now", pay)
        await signal("record_payment", json.dumps("FEED-3 100.00"))
        await signal("record_payment", pay, "--input-meta", "encoding=application/x-unknown")
        rows: list = []
        for _ in range(200):
            rows = repo.rejected_inputs(loan_id=loan)
            if len(rows) >= 4:
                break
            await asyncio.sleep(0.05)
        # a query through the CLI reads it all back
        r = await cli(env, codec, token, "workflow", "query", "-w", wid, "--type", "status")
        assert r.returncode == 0, r.stderr
    assert '"total_paid": "100.00"' in r.stdout.replace('":"', '": "'), r.stdout
    assert sorted((x.signal, x.field) for x in rows) == [
        ("pay_now", "signal"),
        ("record_payment", "amount"),
        ("record_payment", "input"),
        ("record_payment", "input"),
    ], rows
    assert {x.sender for x in rows} == {"system:bank-feed"}
    assert [p.payment_id for p in repo.payments(loan_id=loan)] == ["FEED-1"]
    history = await h.fetch_history()
    assert not [e for e in history.events if e.HasField("workflow_task_failed_event_attributes")]
    applied = [e for e in (await h.query(CollectionCase.status)).events if e.kind == "payment"]
    assert [e.actor for e in applied] == ["system:bank-feed"]


async def test_a_team_with_only_the_cli_and_the_contract_opens_pays_plans_reads_and_finds_a_rejection(env, worker, repo):
    """docs/workflow-contract.md's journey: start a case from docs/case-input.json, signal a payment and a plan,
    read the status, and find a rejected input in it, all through the `temporal` CLI and the codec server."""
    from app import contract
    from tests.conftest import TASK_QUEUE, terminate

    ops = Operators(repo)
    ops.ensure("cli team", ["collector"])
    token = ops.issue_token("cli team").token
    keys = {"PAYLOAD_KEYS": os.environ["PAYLOAD_KEYS"], "PAYLOAD_KEY_ID": TEST_KEY_ID}
    db = {"DATABASE_URL": repo.engine.url.render_as_string(hide_password=False)}
    loan = json.loads(contract.CASE_INPUT.read_text(encoding="utf-8"))["loan_id"]
    wid = f"loan-{loan}"
    with running_codec_server({"CODEC_TOKEN": CODEC_TOKEN, "CODEC_DEV": "", **keys, **db}) as codec:
        run = lambda *a: cli(env, codec, token, *a)  # noqa: E731
        r = await run(
            "workflow", "start", "--type", "CollectionCase", "--task-queue", TASK_QUEUE, "--workflow-id", wid,
            "--input-file", str(contract.CASE_INPUT),
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        try:
            pay = json.dumps(contract.EXAMPLES["record_payment"].value)
            plan = json.dumps({"kind": "instalments", "instalments": 3, "first_due": "2027-01-05"})
            bad = json.dumps({"payment_id": "BANK-BAD", "amount": "12.345", "currency": "CNY"})
            for name, value in (("record_payment", pay), ("agree_plan", plan), ("record_payment", bad)):
                r = await run("workflow", "signal", "-w", wid, "--name", name, "--identity", "bank-feed", "--input", value)
                assert r.returncode == 0, r.stderr
            status = ""
            for _ in range(100):
                r = await run("workflow", "query", "-w", wid, "--type", "status")
                assert r.returncode == 0, r.stderr
                status = r.stdout.replace('":"', '": "')
                if "input_rejected" in status and '"kind": "plan' in status.replace('":"', '": "'):
                    break
                await asyncio.sleep(0.1)
        finally:
            await terminate([env.client.get_workflow_handle(wid)])
    assert '"total_paid": "500.00"' in status, status
    assert "input_rejected" in status and "BANK-BAD" in status and "amount" in status, status
    assert "system:bank-feed" in status
    st = await env.client.get_workflow_handle(wid).query(CollectionCase.status)
    assert st.plan is not None and st.plan.kind == "instalments" and len(st.plan.schedule) == 3, st.plan
