"""Signals are inputs: each named input a bank's system sends is applied as its update would be, or recorded as
rejected (the case's event, a database row, the console's worklist) with nothing else changed; no signal, known
or not, readable or not, fails a workflow task. The `temporal` CLI's own signals: tests/test_codec_cli.py."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.common import RawValue

from domain.models import PromiseIn
from infra import sender
from workflows import versioning
from workflows.case import SIGNALLED, CollectionCase


async def settled(cases, h, check, tries: int = 100):
    """The case's status once `check` holds for it (a signal is applied in the workflow task that follows it)."""
    st = None
    for _ in range(tries):
        st = await cases.status(h)
        if check(st):
            return st
        await asyncio.sleep(0.05)
    raise AssertionError(f"never settled: {st}")


def rejections(st) -> list:
    return [e for e in st.events if e.kind == "input_rejected"]


async def no_failed_tasks(h) -> None:
    history = await h.fetch_history()
    failed = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]
    assert not failed, failed[0]


def test_the_sdk_still_hands_the_sender_over():
    """infra/sender.py wraps a private method of the pinned SDK; without it senders read "unknown"."""
    from temporalio.worker import _workflow_instance as wi

    assert sender.INSTALLED
    assert getattr(wi._WorkflowInstanceImpl._apply_signal_workflow, "_collections_sender", False)


async def test_a_signalled_payment_is_applied_once_by_id_whichever_way_it_comes(env, cases, repo):
    h = await cases.start(dpd=1)
    pay = {"payment_id": "SIG-1", "amount": "100.00", "currency": "CNY"}
    await h.signal("record_payment", pay)
    st = await settled(cases, h, lambda s: s.total_paid == "100.00")
    assert st.outstanding["total"] == "10420.00"
    # the same id again, by signal, by update, by signal: applied once
    await h.signal("record_payment", pay)
    r = await h.execute_update(CollectionCase.record_payment, SIGNALLED["record_payment"].model_validate(pay))
    assert r.duplicate and r.status == "active"
    await h.signal("record_payment", pay)
    # an update after the signals is a barrier: it is applied after them (history order)
    now = await cases.now()
    await h.execute_update(CollectionCase.promise_to_pay, PromiseIn(amount="50.00", date=(now + timedelta(days=3)).date()))
    st = await cases.status(h)
    assert st.total_paid == "100.00" and not rejections(st)
    assert [e.kind for e in st.events].count("payment") == 1
    rows = [p for p in repo.payments(loan_id=h.id.removeprefix("loan-")) if p.payment_id == "SIG-1"]
    assert len(rows) == 1 and rows[0].amount == 10_000
    # its events carry the sender's Temporal identity as a system actor, never an operator
    [applied] = [e for e in st.events if e.kind == "payment"]
    assert applied.actor == f"system:{env.client.identity}"[:40], applied
    # the same id with another amount is a different payment under a reused id: recorded as rejected, never applied
    await h.signal("record_payment", {**pay, "amount": "250.00"})
    st = await settled(cases, h, lambda s: len(rejections(s)) == 1)
    assert st.total_paid == "100.00" and ": amount:" in rejections(st)[0].detail and "SIG-1" in rejections(st)[0].detail
    await no_failed_tasks(h)


async def test_what_the_update_would_refuse_is_recorded_as_rejected_and_changes_nothing(env, cases, repo):
    h = await cases.start(dpd=1)
    before = await cases.status(h)
    sent = [
        ("record_payment", {"payment_id": "SIG-BAD", "amount": "-5", "currency": "CNY"}, "amount"),
        ("record_payment", {"payment_id": "SIG-F", "amount": 12.5, "currency": "CNY"}, "amount"),
        ("record_payment", {"payment_id": "SIG-NC", "amount": "10.00"}, "currency"),
        ("record_payment", {"payment_id": "SIG-X", "amount": "1.00", "currency": "USD"}, "currency"),
        ("record_payment", "a JSON string, not an object", "input"),
        (
            "record_payment",
            {"payment_id": "SIG-A", "amount": "1.00", "currency": "CNY", "actor": {"operator_id": "system"}},
            "actor",
        ),
        ("pay_everything", {"payment_id": "SIG-U", "amount": "1.00"}, "signal"),
        ("agree_plan", {"kind": "interest_waiver", "waiver_percent": 100}, None),
    ]
    for name, arg, _ in sent:
        await h.signal(name, arg)
    undecodable = RawValue(Payload(metadata={"encoding": b"application/x-not-json"}, data=b"\x00\x01"))
    await h.signal("record_payment", undecodable)
    st = await settled(cases, h, lambda s: len(rejections(s)) >= len(sent) + 1)
    got = rejections(st)
    for (name, _arg, field), event in zip(sent, got, strict=False):
        if field is not None:
            assert f": {field}:" in event.detail, (name, field, event.detail)
        assert event.actor == f"system:{env.client.identity}"[:40]
    assert "does not decode" in got[-1].detail
    assert "SIG-BAD" in got[0].detail and "not an input" in got[6].detail
    # nothing else changed: balances, stage, payments
    assert st.outstanding == before.outstanding and st.total_paid == before.total_paid and st.stage == before.stage
    rows = []
    for _ in range(100):  # the rows are written by the local activity that follows each rejection event
        rows = repo.rejected_inputs(loan_id=h.id.removeprefix("loan-"))
        if len(rows) >= len(sent) + 1:
            break
        await asyncio.sleep(0.05)
    assert len(rows) == len(sent) + 1
    by_id = {r.input_id: r for r in rows}
    assert by_id["SIG-BAD"].field == "amount" and by_id["SIG-BAD"].signal == "record_payment"
    assert by_id["SIG-BAD"].sender == f"system:{env.client.identity}"
    assert any(r.signal == "pay_everything" and r.field == "signal" for r in rows)
    events = [e for e in repo.events(h.id) if e.kind == "input_rejected"]
    assert len(events) == len(sent) + 1  # in the audit trail too
    await no_failed_tasks(h)


async def test_a_signal_that_needs_a_second_person_is_refused_not_applied(cases):
    h = await cases.start(dpd=1)
    await h.signal("place_hold", {"kind": "bankruptcy", "reference": "court notice 17"})
    st = await settled(cases, h, lambda s: bool(rejections(s)))
    assert ": approval:" in rejections(st)[0].detail and st.status == "active" and not st.holds
    await h.signal("place_hold", {"kind": "deceased", "reference": "certificate", "approved": True})
    st = await settled(cases, h, lambda s: len(rejections(s)) == 2)
    assert ": approved:" in rejections(st)[1].detail and st.status == "active"
    await h.signal("place_hold", {"kind": "dispute", "reference": "D-9"})
    st = await settled(cases, h, lambda s: bool(s.holds))
    assert [x.kind for x in st.holds] == ["dispute"] and st.status == "paused"
    await no_failed_tasks(h)


def test_every_signal_is_an_update_of_the_same_input():
    """The signals' names are updates' names (record_promise: promise_to_pay's), with the updates' models."""
    from temporalio import workflow

    defn = workflow._Definition.from_class(CollectionCase)
    assert defn is not None
    for name, model in SIGNALLED.items():
        update = "promise_to_pay" if name == "record_promise" else name
        assert update in defn.updates, name
        assert defn.updates[update].arg_types == [model], name
    assert versioning.SIGNALS == "signals-are-inputs"


async def test_a_signal_the_worker_cannot_decrypt_is_recorded_not_a_failed_task(env, cases, repo):
    """An encrypted payload under a key the worker does not hold (a retired key, altered bytes): the worker's codec
    hands it on as undecryptable and the case records the input as rejected; the workflow task does not fail."""
    import dataclasses

    from temporalio.client import Client

    h = await cases.start(dpd=1)
    plain = Client(
        **{**env.client.config(), "data_converter": dataclasses.replace(env.client.data_converter, payload_codec=None)}
    )
    foreign = Payload(metadata={"encoding": b"binary/encrypted", "encryption-key-id": b"retired-2025"}, data=b"\x00" * 48)
    await plain.get_workflow_handle(h.id).signal("record_payment", RawValue(foreign))
    st = await settled(cases, h, lambda s: bool(rejections(s)))
    [event] = rejections(st)
    assert ": input: the payload cannot be decrypted" in event.detail and "retired-2025" in event.detail, event.detail
    await no_failed_tasks(h)


async def test_a_payment_signalled_while_a_closed_case_finishes_its_closing_actions_is_kept_as_unapplied(cases, gateway, repo):
    from domain.policy import load_policy, parse_policy
    from tests.conftest import open_hours

    data = load_policy("default").model_dump(mode="json")
    data.update(name="agency-at-once", steps=[{"key": "agency", "stage": "agency", "dpd": 1, "actions": ["agency_place"]}])
    h = await cases.start(dpd=1, policy=open_hours(parse_policy(data)))
    st = await settled(cases, h, lambda s: "agency" in s.steps_done)
    gateway.set_faults(error_rate=1.0)  # the agency's recall, a closing action, cannot go out: the run stays open
    try:
        await h.execute_update(
            CollectionCase.record_payment,
            SIGNALLED["record_payment"].model_validate(
                {"payment_id": "CLOSE-1", "amount": st.outstanding["total"], "currency": "CNY"}
            ),
        )
        late = f"LATE-{h.id[-8:]}"  # payment ids are unique across the whole ledger
        await h.signal("record_payment", {"payment_id": late, "amount": "20.00", "currency": "CNY"})
        st = await settled(cases, h, lambda s: len(rejections(s)) == 1)
    finally:
        gateway.clear_faults()
    assert st.status == "closed" and "kept as unapplied" in rejections(st)[0].detail
    rows = []
    for _ in range(100):  # written by the local activity that follows the rejection event
        rows = [p for p in repo.payments(loan_id=h.id.removeprefix("loan-")) if p.payment_id == late]
        if rows:
            break
        await asyncio.sleep(0.05)
    [row] = rows
    assert row.status == "unapplied" and row.amount == 2_000 and "after the case closed" in row.note
    await no_failed_tasks(h)


async def test_a_flood_of_bad_signals_is_capped_per_run_and_wakes_the_case_to_continue_as_new(cases, repo):
    h = await cases.start(dpd=1, rejections_recorded=5, history_limit=60)
    latest = cases.env.client.get_workflow_handle(h.id)  # the handle of whichever run is the latest

    async def run_id() -> str:
        return (await latest.describe()).run_id

    first_run = await run_id()
    for i in range(40):
        await h.signal("place_hold", {"kind": "hardship", "reference": f"FLOOD-{i}"})  # no end date: refused
    for i in range(3):  # payments refused in the flood are money: each recorded, never only counted
        await h.signal("record_payment", {"payment_id": f"FLOOD-PAY-{i}", "amount": "-1", "currency": "CNY"})
    loan = h.id.removeprefix("loan-")
    rows = []
    for _ in range(100):  # the first run records 5, then one notice; the run continues as new and records again
        rows = repo.rejected_inputs(loan_id=loan)
        if any(r.signal == "(flood)" for r in rows) and await run_id() != first_run:
            break
        await asyncio.sleep(0.05)
    for _ in range(100):
        rows = repo.rejected_inputs(loan_id=loan)
        if len([r for r in rows if r.input_id and r.input_id.startswith("FLOOD-PAY-")]) == 3:
            break
        await asyncio.sleep(0.05)
    flood = [r for r in rows if r.signal == "(flood)"]
    assert flood and "more than 5 signals were refused" in flood[0].reason
    holds = [r for r in rows if r.signal == "place_hold"]
    assert 5 <= len(holds) <= 10 and len(holds) + len(flood) < 40  # per run: 5 one by one, then one notice
    assert sorted(r.input_id for r in rows if r.signal == "record_payment") == ["FLOOD-PAY-0", "FLOOD-PAY-1", "FLOOD-PAY-2"]
    assert await run_id() != first_run  # the history's growth woke the case, which continued as new
    st = await cases.status(h)
    assert st.total_paid == "0.00" and st.status == "active"
    # a good payment still applies after the flood
    await h.signal("record_payment", {"payment_id": "AFTER-FLOOD", "amount": "10.00", "currency": "CNY"})
    st = await settled(cases, h, lambda s: s.total_paid == "10.00")
    await no_failed_tasks(h)
