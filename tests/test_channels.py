"""Real activities end to end: time-skipping Temporal, the sandbox gateway over HTTP, a real database."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest

from domain.models import OutcomeIn
from tests.conftest import today_in
from tests.test_ladder import judgment_dates
from workflows.case import CollectionCase

LADDER = [  # (channel, letter kind or None) in the order a whole ladder delivers them
    ("sms", None),
    ("email", None),
    ("letter", "reminder_notice"),
    ("call", None),
    ("visit", None),
    ("letter", "overdue_letter"),
    ("law_firm", None),
    ("letter", "bureau_notice"),
    ("credit_bureau", "report"),
    ("court", "lawsuit"),
    ("court", "enforcement"),
    ("credit_bureau", "correction"),
]


def admin(gateway) -> httpx.Client:
    return httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {gateway.api_key}"}, timeout=10)


def outbox(gateway, loan_id: str) -> list[dict]:
    with admin(gateway) as c:
        return c.get("/outbox", params={"loan_id": loan_id}).json()["items"]


async def walk_whole_ladder(cases, loan_id: str):
    h = await cases.start(dpd=1, loan_id=loan_id)
    await cases.advance(days=130)
    await h.execute_update(
        CollectionCase.record_outcome, OutcomeIn(kind="court", outcome="judgment", **judgment_dates(today_in(await cases.now())))
    )
    await cases.advance(days=30)
    total = (await cases.status(h)).outstanding["total"]
    await h.execute_update(CollectionCase.record_outcome, OutcomeIn(kind="court", outcome="enforcement_result", amount=total))
    return await cases.result(h)


def shape(items: list[dict]) -> list[tuple]:
    out = []
    for i in items:
        kind = i["body"].get("kind")
        out.append((i["channel"], kind))
    return out


def key_of_sorted(items):
    return sorted(items, key=lambda i: (i["accepted_at"], i["id"]))


async def test_whole_ladder_delivers_each_step_once_in_order(cases, gateway, repo):
    result = await walk_whole_ladder(cases, "E2E-LADDER")
    assert result.outcome == "recovered"
    items = outbox(gateway, "E2E-LADDER")
    got = shape(items)
    # the reminder's three channels go out together, in any order; the rest in ladder order
    assert sorted(got[:3], key=str) == sorted(LADDER[:3], key=str)
    assert got[3:] == LADDER[3:]
    rows = repo.contacts(loan_id="E2E-LADDER")
    assert [(r.channel, r.status) for r in rows][3:] == [(c, "delivered") for c, _ in LADDER[3:]]
    assert len(rows) == len(LADDER) and len({r.idempotency_key for r in rows}) == len(LADDER)
    assert {i["idempotency_key"] for i in items} == {r.idempotency_key for r in rows}
    case = repo.case_row(result.workflow_id)
    assert case.status == "closed" and case.outcome == "recovered" and case.outstanding == 0
    ledger = repo.payments(loan_id="E2E-LADDER")
    assert len(ledger) == 1 and ledger[0].amount == 1_052_000 and ledger[0].status == "applied"
    kinds = [e.kind for e in repo.events(result.workflow_id)]
    assert "opened" in kinds and "court_outcome" in kinds and kinds.count("contact_delivered") == len(LADDER)


async def test_messages_carry_amounts_due_date_next_step_and_rights_in_both_languages(cases, gateway):
    h_zh = await cases.start(dpd=1, loan_id="E2E-ZH")
    h_en = await cases.start(dpd=1, loan_id="E2E-EN", contact={"language": "en", "name": "Alice Chen"})
    sms_zh = next(i for i in outbox(gateway, "E2E-ZH") if i["channel"] == "sms")["body"]
    sms_en = next(i for i in outbox(gateway, "E2E-EN") if i["channel"] == "sms")["body"]
    assert "10520.00" in sms_zh["text"] and "逾期1天" in sms_zh["text"] and "第7天" in sms_zh["text"]
    assert "10520.00" in sms_en["text"] and "1 days overdue" in sms_en["text"] and "First collection call" in sms_en["text"]
    letter = next(i for i in outbox(gateway, "E2E-ZH") if i["channel"] == "letter")["body"]
    assert letter["kind"] == "reminder_notice" and "张伟" == letter["recipient"]
    for text in ("本金", "利息", "费用", "异议", "不会向第三方透露"):
        assert text in letter["content"]
    email = next(i for i in outbox(gateway, "E2E-EN") if i["channel"] == "email")["body"]
    assert "Dear Alice Chen" in email["body"] and "dispute" in email["body"].lower()
    st = await cases.status(h_zh)
    assert st.contacts == {"sms": 1, "email": 1, "letter": 1}
    # PII stays in the database: the workflow's history never holds names, phones or addresses
    for h in (h_zh, h_en):
        history = (await h.fetch_history()).to_json()
        for pii in ("张伟", "Alice Chen", "13812345678", "zhang.wei@example.cn", "南京东路"):
            assert pii not in history


async def test_the_policys_selfservice_links_switch_decides_whether_messages_carry_the_page_link(cases, gateway, repo):
    from db.selfservice import LinkStore
    from domain.policy import SelfServiceRules
    from tests.conftest import LADDER_POLICY

    no_links = LADDER_POLICY.model_copy(update={"selfservice": SelfServiceRules(links=False)})
    await cases.start(dpd=1, loan_id="LINK-ON")
    await cases.start(dpd=1, loan_id="LINK-OFF", policy=no_links)
    for loan, carries in (("LINK-ON", True), ("LINK-OFF", False)):
        sent = {i["channel"]: i["body"] for i in outbox(gateway, loan)}
        assert set(sent) >= {"sms", "email", "letter"}, sent
        texts = (sent["sms"]["text"], sent["email"]["body"], sent["letter"]["content"])
        assert [("/b/" in t) for t in texts] == [carries] * 3, (loan, texts)
        assert len(LinkStore(repo).links_of(loan)) == (3 if carries else 0)


async def test_a_wrong_request_is_final_recorded_as_failed_and_the_case_moves_on(cases, gateway, repo):
    h = await cases.start(dpd=1, loan_id="E2E-BADPHONE", contact={"phone": "12345"})
    await cases.advance(days=8)
    st = await cases.status(h)
    assert "first_call" in st.steps_done
    rows = {r.channel: r for r in repo.contacts(loan_id="E2E-BADPHONE")}
    assert rows["sms"].status == "failed" and "422" in rows["sms"].reason and rows["sms"].attempts == 1
    assert rows["email"].status == "delivered"
    assert st.contacts.get("sms") is None and st.contacts["email"] == 1
    assert any(e.kind == "contact_failed" for e in st.events)


async def test_thirty_percent_faults_still_deliver_every_step_exactly_once(cases, gateway, repo):
    with admin(gateway) as c:
        c.post("/admin/faults", json={"error_rate": 0.15, "lost_response_rate": 0.15, "seed": 7}).raise_for_status()
        before = c.get("/admin/stats").json()
    try:
        result = await walk_whole_ladder(cases, "E2E-FAULTS")
    finally:
        with admin(gateway) as c:
            after = c.get("/admin/stats").json()
            c.delete("/admin/faults")
    assert result.outcome == "recovered"
    items = outbox(gateway, "E2E-FAULTS")
    assert Counter(i["idempotency_key"] for i in items).most_common(1)[0][1] == 1
    assert len(items) == len(LADDER)
    rows = repo.contacts(loan_id="E2E-FAULTS")
    assert len(rows) == len(LADDER) and all(r.status == "delivered" for r in rows)
    retries = sum(r.attempts - 1 for r in rows)
    injected = {k: after["faults"][k] - before["faults"].get(k, 0) for k in after["faults"]}
    print(f"\n30% faults: {len(rows)} deliveries, {retries} retries, injected {injected}")
    assert retries >= 1 and sum(injected.values()) >= retries


# ------------------------------------------------------------------ the channel registry


def test_the_registry_is_the_one_source_of_every_channel_action():
    """Every action a step or a closing case can take has one row; its activity exists under that name in the
    worker and the bench stubs; its templates are on disk in both languages; its gateway path is the sandbox's
    path for its channel; its body has a builder; its contact field is a borrower record field."""
    import ast
    import inspect
    from pathlib import Path
    from typing import get_args

    import workflows.case as wf
    from activities import messages
    from activities.case import CaseActivities
    from bench.stubs import StubActivities
    from db.tables import BorrowerRow
    from domain import case as domain_case
    from domain import channels
    from domain.policy import Action
    from sandbox.gateway import CHANNELS

    assert [r.action for r in channels.REGISTRY] == list(dict.fromkeys(r.action for r in channels.REGISTRY))
    assert set(channels.BY_ACTION) == (
        set(get_args(Action)) | set(get_args(channels.ClosingAction)) | set(get_args(channels.NoticeAction))
    )
    real = {a.__temporal_activity_definition.name for a in CaseActivities(None, None).all()}
    stubs = {a.__temporal_activity_definition.name for a in StubActivities().all()}
    assert set(channels.ACTIVITIES) <= real and real == stubs
    sandbox_paths = {c.name: c.path for c in CHANNELS.values()}
    for r in channels.REGISTRY:
        assert sandbox_paths.get(r.channel) == r.path, r
        assert r.channel in messages.BODIES, r
        assert r.needs is None or r.needs in BorrowerRow.model_fields, r
        for name in r.templates:
            for lang in ("zh", "en"):
                assert (messages.TEMPLATES / lang / f"{name}.j2").is_file(), (r.action, lang, name)
    # one channel, one path and one activity, whichever of its actions is taken
    for ch in {r.channel for r in channels.REGISTRY}:
        assert len({r.path for r in channels.REGISTRY if r.channel == ch}) == 1
    assert set(get_args(channels.GuarantorAction)) == {a + channels.GUARANTOR_SUFFIX for a in channels.GUARANTOR_ACTIONS}
    assert domain_case.GUARANTOR_ACTIONS == channels.GUARANTOR_ACTIONS
    # the letters a policy may name are the letter templates
    letters = {n.removeprefix("letter_") for r in channels.REGISTRY for n in r.templates if n.startswith("letter_")}
    assert letters == set(get_args(CHANNELS["letter"].model.model_fields["kind"].annotation))
    # every activity the workflow schedules by name is one the worker defines
    tree = ast.parse(Path(inspect.getfile(wf)).read_text())
    named = {
        c.args[0].value
        for c in ast.walk(tree)
        if isinstance(c, ast.Call)
        and getattr(c.func, "attr", "") == "execute_local_activity"
        and c.args
        and isinstance(c.args[0], ast.Constant)
    }
    assert named <= real, named - real


def test_a_misspelt_action_fails_at_validation_not_at_run_time():
    from pydantic import ValidationError

    from activities.contracts import GateCheck

    with pytest.raises(ValidationError) as info:
        GateCheck(
            workflow_id="w",
            case_key="k",
            loan_id="l",
            borrower_id="b",
            step="s",
            actions=["smss"],
            now="2026-01-01T00:00:00Z",
            rules={},
        )
    assert "actions.0" in str(info.value)


async def test_a_letter_to_a_guarantor_on_a_request_naming_none_fails_as_a_contact(repo, gateway):
    """Nobody to send it to: a failed contact with its reason, and nothing sent. (It used to begin a contact row
    with no borrower, which the database refuses, so the activity failed on every attempt.)"""
    import datetime as dt
    import uuid

    from temporalio.testing import ActivityEnvironment

    from activities.case import CaseActivities
    from activities.contracts import ChannelRequest
    from activities.gateway import GatewayClient, GatewaySettings
    from domain import channels

    loan = f"G-{uuid.uuid4().hex[:8]}"
    req = ChannelRequest(
        workflow_id=f"loan-{loan}",
        case_key=f"k-{loan}",
        loan_id=loan,
        borrower_id=f"B-{loan}",
        step="legal_letter",
        action="letter@guarantor",
        idempotency_key=f"k-{loan}:legal_letter:g",
        policy="default",
        stage="legal",
        dpd=60,
        currency="CNY",
        outstanding={"total": "100.00"},
        due_date=dt.date(2026, 10, 1),
    )
    client = GatewayClient(GatewaySettings(url=gateway.url, api_key=gateway.api_key, timeout=5))
    try:
        acts = CaseActivities(repo, client)
        result = await ActivityEnvironment().run(getattr(acts, channels.activity_of("letter@guarantor")), req)
    finally:
        await client.aclose()
    assert (result.status, result.reason) == ("failed", "the loan names no guarantor")
    assert repo.contacts(loan_id=loan) == []
    assert gateway.outbox(loan_id=loan) == []


# ------------------------------------------------------------------ no send outside the rules on a retry

SHANGHAI = "Asia/Shanghai"


def hours_policy(steps=None):
    """The ladder's steps with the real contact window (08:00-21:00 local); every day a contact day, so that the
    test is about the hours alone."""
    from domain.policy import parse_policy
    from tests.conftest import LADDER_POLICY

    data = LADDER_POLICY.model_dump(mode="json")
    data["contact"].update(window_start="08:00", window_end="21:00", public_holidays=False, weekends=True)
    if steps is not None:
        data.update(name="visits", min_gap_days=0, steps=steps)
    return parse_policy(data)


async def skip_to_local(env, hour: int, minute: int, tz: str = SHANGHAI):
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    local = (await env.get_current_time()).astimezone(ZoneInfo(tz))
    target = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if target <= local:
        target += timedelta(days=1)
    await env.sleep(target - local)
    return target


async def test_a_send_retried_past_the_windows_close_waits_for_the_next_window(cases, gateway, repo, env):
    """Allowed at 20:58 local, the reminder meets a gateway outage that outlasts the window (21:00) and ends at
    21:28: the SMS and the e-mail do not go out that evening, though the gateway is back; they go out after 08:00
    the next morning, when the gate has allowed them again. The letter (not bound to the hours) goes that night."""
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(SHANGHAI)
    allowed_at = await skip_to_local(env, 20, 58)
    gateway.set_faults(error_rate=1.0)
    try:
        h = await cases.start(dpd=1, loan_id="WIN-1", policy=hours_policy())
        for _ in range(30):  # half an hour, a minute at a time: each retry's local attempts take real seconds
            await env.sleep(timedelta(minutes=1))
    finally:
        gateway.clear_faults()
    await cases.advance(hours=2)  # 23:28: the gateway has been back for two hours, the window is closed
    assert {i["channel"] for i in outbox(gateway, "WIN-1")} == {"letter"}
    rows = {r.channel: r for r in repo.contacts(loan_id="WIN-1")}
    assert rows["sms"].status == rows["email"].status == "deferred" and rows["sms"].attempts > 3
    st = await cases.status(h)
    refusal = next(d for d in reversed(st.decisions) if d.action == "sms")
    next_morning = (allowed_at + timedelta(days=1)).replace(hour=8, minute=0)
    assert (refusal.allowed, refusal.rule, refusal.retry_at) == (False, "contact_window", next_morning)
    assert st.next_action.at == next_morning and "reminder_notice" not in st.steps_done
    deferred = [e for e in repo.events("loan-WIN-1") if e.kind == "contact_deferred"]
    assert {e.detail.split(" ")[0] for e in deferred} == {"reminder_notice/sms", "reminder_notice/email"}
    assert all(21 <= e.at.astimezone(tz).hour < 22 for e in deferred), [e.at for e in deferred]

    await cases.advance(hours=10)  # 09:28 the next day
    items = outbox(gateway, "WIN-1")
    assert sorted(i["channel"] for i in items) == ["email", "letter", "sms"]
    st = await cases.status(h)
    assert "reminder_notice" in st.steps_done and st.contacts == {"sms": 1, "email": 1, "letter": 1}
    for r in repo.contacts(loan_id="WIN-1"):
        assert r.status == "delivered"
        if r.channel in ("sms", "email"):  # allowed again by the gate inside the next window, and counted then
            assert next_morning <= r.at.astimezone(tz) < next_morning.replace(hour=21), r.at


# ------------------------------------------------------------------ visits: the dates and hours they may take place

VISIT_STEPS = [{"key": "home_visit", "stage": "visit", "dpd": 1, "actions": ["visit"], "await_outcome_days": 10}]


async def test_a_visit_carries_its_dates_and_hours_and_one_booked_outside_them_is_booked_again(cases, gateway, repo, env):
    from datetime import datetime
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(SHANGHAI)
    await skip_to_local(env, 10, 0)
    gateway.set_faults(visit_outside=1)
    try:
        h = await cases.start(dpd=1, loan_id="VISIT-1", policy=hours_policy(VISIT_STEPS))
    finally:
        gateway.clear_faults()
    first, again = outbox(gateway, "VISIT-1")
    windows = [
        (datetime.fromisoformat(w["start"]).astimezone(tz), datetime.fromisoformat(w["end"]).astimezone(tz))
        for w in first["body"]["windows"]
    ]
    assert len(windows) == 15  # the rest of today, and the 14 days after it
    for start, end in windows:  # 08:00 to 21:00 local, each day
        assert start.date() == end.date() and (end.hour, end.minute) == (21, 0)
        assert (start.hour, start.minute) >= (8, 0)
    assert datetime.fromisoformat(first["response"]["scheduled_for"]) >= windows[0][1]  # outside: booked again
    assert again["idempotency_key"].endswith(":rebook-1") and again["body"]["replaces"] == first["response"]["visit_id"]
    booked = datetime.fromisoformat(again["response"]["scheduled_for"]).astimezone(tz)
    assert 8 <= booked.hour < 21
    [row] = repo.contacts(loan_id="VISIT-1")
    assert (row.status, row.reference) == ("delivered", again["response"]["id"])
    assert [e.kind for e in repo.events("loan-VISIT-1") if e.kind.startswith("visit_")] == ["visit_rebooked"]
    st = await cases.status(h)
    assert st.contacts == {"visit": 1} and st.awaiting is not None


async def test_a_visit_booked_outside_its_dates_and_hours_again_is_refused(cases, gateway, repo, env):
    await skip_to_local(env, 10, 0)
    gateway.set_faults(visit_outside=2)
    try:
        h = await cases.start(dpd=1, loan_id="VISIT-2", policy=hours_policy(VISIT_STEPS))
    finally:
        gateway.clear_faults()
    assert len(outbox(gateway, "VISIT-2")) == 2
    [row] = repo.contacts(loan_id="VISIT-2")
    assert row.status == "failed" and "outside the allowed dates and hours" in row.reason
    assert [e.kind for e in repo.events("loan-VISIT-2") if e.kind.startswith("visit_")] == ["visit_rebooked", "visit_refused"]
    st = await cases.status(h)
    assert st.contacts.get("visit") is None and st.awaiting is None
    assert any(e.kind == "contact_failed" and "outside the allowed" in e.detail for e in st.events)
