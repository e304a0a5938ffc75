"""Real activities end to end: time-skipping Temporal, the sandbox gateway over HTTP, a real database."""

from __future__ import annotations

import json
from collections import Counter

import httpx
import pytest

from domain.models import OutcomeIn, PaymentIn
from workflows.case import CollectionCase
from tests.test_ladder import JUDGMENT_DATES

LADDER = [  # (channel, letter kind or None) in the order a whole ladder delivers them
    ("sms", None), ("email", None), ("letter", "reminder_notice"), ("call", None), ("visit", None),
    ("letter", "overdue_letter"), ("law_firm", None), ("letter", "bureau_notice"), ("credit_bureau", "report"),
    ("court", "lawsuit"), ("court", "enforcement"), ("credit_bureau", "correction"),
]


def admin(gateway) -> httpx.Client:
    return httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {gateway.api_key}"}, timeout=10)


def outbox(gateway, loan_id: str) -> list[dict]:
    with admin(gateway) as c:
        return c.get("/outbox", params={"loan_id": loan_id}).json()["items"]


async def walk_whole_ladder(cases, loan_id: str):
    h = await cases.start(dpd=1, loan_id=loan_id)
    await cases.advance(days=130)
    await h.execute_update(CollectionCase.record_outcome, OutcomeIn(kind="court", outcome="judgment", **JUDGMENT_DATES))
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
