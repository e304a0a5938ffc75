"""Four-eyes and the actor (issue 14), on the time-skipping server through the application layer, as the API
and the CLI call it: a waiver over the threshold waits for a second supervisor; its maker cannot approve it; a
rejection or an expiry changes no balance; a proposed closure for death stops contact at once; a complaint's
release takes two compliance officers; every human step's actor (operator id and role) reaches the case's
events and the audit rows; no operator's name or token is in the workflow history, raw or decrypted."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from google.protobuf import json_format
from sqlalchemy import select

from access.operators import Operators
from access.permissions import Caller, Forbidden, acting_as
from app import inputs, visibility
from app.errors import BadInput
from db.tables import EventRow, HoldRow, PaymentRow
from tests.conftest import DATA_CONVERTER, today_in
from workflows import search
from workflows.case import CollectionCase

NAMES = {
    "maker": "Maker Wang 七号",
    "checker": "Checker Li 八号",
    "collector": "Collector Zhao 九号",
    "comp1": "Compliance Qian 十号",
    "comp2": "Compliance Sun 十一号",
    "payments": "Payments Zhou 十二号",
}
ROLES_OF = {
    "maker": ["supervisor"],
    "checker": ["supervisor"],
    "collector": ["collector"],
    "comp1": ["compliance"],
    "comp2": ["compliance"],
    "payments": ["payments"],
}


@pytest.fixture(scope="module")
def people(repo):
    """Named operators with tokens, as `starter.py operators add/token` makes them."""
    store = Operators(repo)
    out = {}
    for key, name in NAMES.items():
        op = store.ensure(name, ROLES_OF[key])
        tok = store.issue_token(op.id)
        out[key] = (store.authenticate(tok.token), tok.token)
    return out


SCANNED: list[str] = []  # the cases of this module, whose histories the last test scans


def act(people, who: str) -> Caller:
    caller = people[who][0]
    acting_as(caller)
    return caller


async def waiver(cases, env, percent: int = 50) -> dict:
    pay_by = today_in(await env.get_current_time()) + timedelta(days=10)
    return {"kind": "interest_waiver", "waiver_percent": percent, "pay_by": pay_by}


def balances(st) -> tuple:
    return st.outstanding["total"], st.total_paid


async def pending_attribute(handle) -> bool | None:
    desc = await handle.describe()
    return desc.typed_search_attributes.get(search.PENDING_APPROVAL)


async def test_a_waiver_over_the_threshold_waits_for_a_second_supervisor(env, cases, repo, people):
    h = await cases.start(dpd=10)
    SCANNED.append(h.id)
    loan = h.id.removeprefix("loan-")
    try:
        before = await h.query(CollectionCase.status)
        maker = act(people, "maker")
        r = await inputs.send_update(env.client, loan, "plan", await waiver(cases, env))
        assert not r.accepted and "proposed" in r.message
        st = await visibility.case_status(env.client, loan, repo)
        assert st.pending_approval.kind == "plan" and st.pending_approval.maker.operator_id == maker.operator_id
        assert st.status == "active", "a proposed plan does not pause the ladder"
        assert st.plan is None and balances(st) == balances(before)
        assert st.names[maker.operator_id] == NAMES["maker"]
        assert await pending_attribute(h) is True
        # the maker cannot approve their own proposal, and a collector has no role to
        with pytest.raises(BadInput, match="maker"):
            await inputs.decide(env.client, repo, loan, "approve")
        act(people, "collector")
        with pytest.raises(Forbidden):
            await inputs.decide(env.client, repo, loan, "approve")
        assert (await h.query(CollectionCase.status)).pending_approval is not None
        checker = act(people, "checker")
        r = await inputs.decide(env.client, repo, loan, "approve", "checked the hardship file")
        assert r.accepted and "approved" in r.message
        st = await visibility.case_status(env.client, loan, repo)
        assert st.pending_approval is None and st.plan is not None and st.status == "paused"
        assert await pending_attribute(h) is False
        kinds = {e.kind: e.actor for e in st.events}
        assert kinds["approval_proposed"] == f"{maker.operator_id}:supervisor"
        assert kinds["approval_approved"] == f"{checker.operator_id}:supervisor"
        assert {maker.operator_id, checker.operator_id} <= set(st.names)
        # the audit trail carries the actor too
        with repo.session() as s:
            rows = {r.kind: r.actor for r in s.scalars(select(EventRow).where(EventRow.workflow_id == h.id))}
        assert rows["approval_proposed"] == f"{maker.operator_id}:supervisor"
        assert rows["approval_approved"] == f"{checker.operator_id}:supervisor"
        # a waiver within the threshold needs nobody else
        h2 = await cases.start(dpd=10)
        act(people, "maker")
        r = await inputs.send_update(env.client, h2.id.removeprefix("loan-"), "plan", await waiver(cases, env, 20))
        assert r.accepted and (await h2.query(CollectionCase.status)).plan is not None
    finally:
        acting_as(None)


async def test_rejection_and_expiry_leave_the_balances_unchanged(env, cases, repo, people):
    h = await cases.start(dpd=10)
    SCANNED.append(h.id)
    loan = h.id.removeprefix("loan-")
    try:
        before = balances(await h.query(CollectionCase.status))
        act(people, "maker")
        await inputs.send_update(env.client, loan, "plan", await waiver(cases, env))
        act(people, "checker")
        r = await inputs.decide(env.client, repo, loan, "reject", "no hardship shown")
        assert "rejected" in r.message
        st = await h.query(CollectionCase.status)
        assert st.pending_approval is None and st.plan is None and balances(st) == before
        assert any(e.kind == "approval_rejected" for e in st.events)
        act(people, "maker")
        await inputs.send_update(env.client, loan, "plan", await waiver(cases, env))
        await cases.advance(days=4)  # the default policy's approval.expiry_days is 3
        st = await h.query(CollectionCase.status)
        assert st.pending_approval is None and st.plan is None and balances(st) == before
        assert any(e.kind == "approval_expired" for e in st.events)
        act(people, "checker")
        with pytest.raises(BadInput, match="nothing waits"):
            await inputs.decide(env.client, repo, loan, "approve")
    finally:
        acting_as(None)


async def test_a_proposed_closure_for_death_stops_contact_at_once(env, cases, repo, people):
    h = await cases.start(dpd=6)
    SCANNED.append(h.id)
    loan = h.id.removeprefix("loan-")
    try:
        collector = act(people, "collector")
        r = await inputs.place_hold(env.client, repo, loan, {"kind": "deceased", "reference": "death certificate"})
        assert not r.accepted
        st = await h.query(CollectionCase.status)
        assert st.pending_approval.kind == "closure" and st.status != "closed"
        contacts, steps = dict(st.contacts), list(st.steps_done)
        await cases.advance(days=2)  # the first call falls due at DPD 7; nothing goes out while it waits
        st = await h.query(CollectionCase.status)
        assert st.contacts == contacts and st.steps_done == steps
        act(people, "collector")
        with pytest.raises(Forbidden):  # a collector may propose it, only compliance approves
            await inputs.decide(env.client, repo, loan, "approve")
        checker = act(people, "comp1")
        r = await inputs.decide(env.client, repo, loan, "approve")
        assert r.outcome == "deceased"
        st = await h.query(CollectionCase.status)
        assert st.status == "closed" and st.outcome == "deceased"
        with repo.session() as s:
            hold = s.scalar(select(HoldRow).where(HoldRow.workflow_id == h.id, HoldRow.kind == "deceased"))
        assert hold.placed_by == f"{checker.operator_id}:compliance"
        assert collector.operator_id in {e.actor.split(":")[0] for e in st.events if e.actor}
    finally:
        acting_as(None)


async def test_a_complaint_release_takes_two_compliance_officers_and_payments_carry_the_actor(env, cases, repo, people):
    h = await cases.start(dpd=2)
    SCANNED.append(h.id)
    loan = h.id.removeprefix("loan-")
    try:
        act(people, "comp1")
        r = await inputs.place_hold(env.client, repo, loan, {"kind": "complaint", "reference": "12345 hotline"})
        assert r.accepted
        comp1 = people["comp1"][0]
        r = await inputs.send_update(env.client, loan, "release", {"kind": "complaint", "reviewer": "Anyone At All"})
        assert not r.accepted
        with pytest.raises(BadInput, match="maker"):
            await inputs.decide(env.client, repo, loan, "approve")
        comp2 = act(people, "comp2")
        await inputs.decide(env.client, repo, loan, "approve")
        st = await h.query(CollectionCase.status)
        assert not any(x.kind == "complaint" for x in st.holds)
        with repo.session() as s:
            hold = s.scalar(select(HoldRow).where(HoldRow.workflow_id == h.id, HoldRow.kind == "complaint"))
        assert hold.released_by == comp2.operator_id, "the reviewer is the authenticated checker, not a typed name"
        assert hold.placed_by == f"{comp1.operator_id}:compliance"
        pay = act(people, "payments")
        await inputs.record_payment(env.client, repo, loan, payment_id=f"FE-{loan}", amount="10.00")
        with repo.session() as s:
            row = s.get(PaymentRow, f"FE-{loan}")
        assert row.recorded_by == f"{pay.operator_id}:payments"
    finally:
        acting_as(None)


async def test_no_operator_name_or_token_in_workflow_history(env, cases, repo, people):
    """Every case of this module's operators: the history as stored (raw, encrypted payloads) and decrypted."""
    secrets_ = [n.encode() for n in NAMES.values()] + [tok.encode() for _, tok in people.values()]
    secrets_ += [n.encode("unicode_escape") for n in NAMES.values()]
    ids = list(SCANNED)
    assert len(ids) >= 4, "run with the module's other tests"
    seen_actor = False
    for wid in ids:
        history = await env.client.get_workflow_handle(wid).fetch_history()
        raw = json.dumps(history.to_json_dict()).encode()
        assert not any(s in raw for s in secrets_), wid
        for event in history.events:
            for payloads in _payload_lists(event):
                for p in await DATA_CONVERTER.payload_codec.decode(payloads):
                    assert not any(s in p.data for s in secrets_), wid
                    seen_actor |= b'"operator_id"' in p.data and b'"op-' in p.data
    assert seen_actor, "the scan saw no operator id at all: it would not see a name either"


def _payload_lists(event):
    msg = json_format.MessageToDict(event)
    found = []

    def walk(node):
        if isinstance(node, dict):
            if "payloads" in node and isinstance(node["payloads"], list):
                from temporalio.api.common.v1 import Payloads

                found.append(list(json_format.ParseDict({"payloads": node["payloads"]}, Payloads()).payloads))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(msg)
    return found


def test_each_input_carries_its_four_eyes_rule():
    """The table of inputs says which may wait for a second person, and each rule decides by the instance: a waiver
    over the policy's share or a deferral longer than its plain days; a bankruptcy or death hold (unless already
    approved); a complaint's release; an operator's closure and a write-off's confirmation always; nothing else."""
    from datetime import date

    from domain import inputs as registered
    from domain.models import CloseIn, HoldIn, OutcomeIn, PaymentIn, PlanIn, PromiseIn, ReleaseIn, WriteOffConfirmIn
    from domain.policy import load_policy

    policy = load_policy("default")
    policy = policy.model_copy(update={"approval": policy.approval.model_copy(update={"plain_max_deferral_days": 30})})
    today = date(2026, 12, 7)
    need = lambda arg: registered.approval_needed(arg, policy, today)  # noqa: E731
    four_eyes = {i.model.__name__ for i in registered.INPUTS if i.four_eyes}
    assert four_eyes == {"PlanIn", "HoldIn", "ReleaseIn", "CloseIn", "WriteOffConfirmIn"}
    over = policy.approval.waiver_percent_over
    assert need(PlanIn(kind="interest_waiver", waiver_percent=over + 1)) == "plan"
    assert need(PlanIn(kind="interest_waiver", waiver_percent=over)) is None
    assert need(PlanIn(kind="deferral", until=date(2027, 1, 7))) == "plan"  # 31 days: beyond the plain 30
    assert need(PlanIn(kind="deferral", until=date(2027, 1, 6))) is None
    assert need(HoldIn(kind="deceased")) == "closure" and need(HoldIn(kind="deceased", approved=True)) is None
    assert need(HoldIn(kind="dispute")) is None
    assert need(ReleaseIn(kind="complaint")) == "release" and need(ReleaseIn(kind="dispute")) is None
    assert need(CloseIn(outcome="sold", reason="portfolio sale")) == "close"
    assert need(WriteOffConfirmIn(approver="Li Na")) == "write_off"
    for arg in (
        PaymentIn(payment_id="P1", amount="1.00", currency="CNY"),
        PromiseIn(amount="1.00", date=today),
        OutcomeIn(kind="call", outcome="no_answer"),
    ):
        assert need(arg) is None
