"""The borrower's page (/b/...): the link a real message carried, the one-time code sent through the sandbox gateway,
nothing about the debt before it, the borrower's inputs through the same application layer, and the page's guards
(tampered, expired and foreign links and sessions, lockout, CSRF, no token in the logs)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import re

import httpx
import pytest
import pytest_asyncio
import structlog

from activities.gateway import GatewayClient, GatewaySettings
from api.server import _shown_path, create_app
from db.selfservice import LinkStore
from domain import selfservice as rules
from infra.config import settings
from infra.link_secret import link_secret
from tests.test_channels import outbox

LINK = re.compile(r"/b/([A-Za-z0-9_-]{22})")
CODE = re.compile(r"(\d{6})")


@pytest_asyncio.fixture(scope="module")
async def page(env, worker, repo, gateway):
    """The API in process on the test server's client, its borrower page sending codes through the sandbox gateway."""
    app = create_app(["borrower-page-test-bootstrap"], client=env.client, repo=repo)
    gw = GatewayClient(GatewaySettings(url=gateway.url, api_key=gateway.api_key, timeout=5))
    app.state.borrower_gateway = gw
    try:
        yield app
    finally:
        await gw.aclose()


def browser(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver", follow_redirects=False)


async def links_of(gateway, loan_id: str, channel: str = "sms", tries: int = 100) -> list[str]:
    for _ in range(tries):
        found = []
        for item in outbox(gateway, loan_id):
            if item["channel"] == channel:
                body = item["body"]
                found += LINK.findall(str(body.get("text") or body.get("body") or body.get("content") or ""))
        if found:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {channel} with a link for {loan_id}: {outbox(gateway, loan_id)}")


def last_code(gateway, loan_id: str) -> str:
    texts = [i["body"]["text"] for i in outbox(gateway, loan_id) if i["channel"] == "sms" and "验证码" in i["body"]["text"]]
    assert texts, "no code was sent"
    return CODE.findall(texts[-1])[0]


@contextlib.asynccontextmanager
async def signed_in(app, gateway, loan_id: str, token: str):
    """A browser that has passed the code for this link (its session cookie set)."""
    async with browser(app) as c:
        r = await c.post(f"/b/{token}/code")
        assert r.status_code == 303, r.text
        r = await c.post(f"/b/{token}/verify", data={"code": last_code(gateway, loan_id)})
        assert r.status_code == 303 and "bsid" in r.headers.get("set-cookie", ""), r.text
        yield c


def guarantor_link(repo, h, recipient: str) -> str:
    """The link a letter to the loan's guarantor carries (as the send activity records it)."""
    loan = h.id.removeprefix("loan-")
    return LinkStore(repo).issue(
        link_secret(),
        settings().public_url,
        idempotency_key=f"test-guarantor-{loan}-{recipient}",
        workflow_id=h.id,
        loan_id=loan,
        borrower_id=f"B{loan}",
        recipient_id=recipient,
        audience="guarantor",
        channel="letter",
        now=dt.datetime.now(dt.UTC),
    )


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]{32})"', html).group(1)


async def test_a_message_link_opens_nothing_before_the_code_and_the_case_after_it(page, cases, gateway, repo):
    h = await cases.start(dpd=1)  # the reminder notice goes out at once: SMS, e-mail and letter, each with a link
    loan = h.id.removeprefix("loan-")
    [token] = await links_of(gateway, loan, "sms")
    assert loan not in token and "10520" not in token
    async with browser(page) as c:
        r = await c.get(f"/b/{token}")
        assert r.status_code == 200 and "验证码" in r.text and "尾号5678" in r.text
        assert "10520" not in r.text and loan not in r.text and "张伟" not in r.text  # nothing about the debt yet
        assert r.headers["cache-control"] == "no-store" and r.headers["referrer-policy"] == "no-referrer"
        r = await c.post(f"/b/{token}/code")
        assert r.status_code == 303
        # the code went to the phone on file through the gateway, as a transactional message the gate does not count
        [row] = [x for x in repo.contacts(loan_id=loan) if x.action == "access_code"]
        assert row.status == "transactional" and row.channel == "sms"
        r = await c.post(f"/b/{token}/verify", data={"code": last_code(gateway, loan)})
        assert r.status_code == 303
        r = await c.get(f"/b/{token}")
        assert r.status_code == 200, r.text
        assert "10520.00 元" in r.text and "已逾期1天" in r.text and "本金" in r.text and "您的权利" in r.text
        assert "如在" in r.text  # the next step and its date, in words
        r = await c.get(f"/b/{token}?lang=en")
        assert "Amount due" in r.text and "10520.00" in r.text and "blang=en" in r.headers.get("set-cookie", "")
        r = await c.get(f"/b/{token}")  # remembered
        assert "Amount due" in r.text


async def test_a_promise_from_the_page_reaches_the_case_as_the_borrowers_own(page, cases, gateway):
    h = await cases.start(dpd=3)
    loan = h.id.removeprefix("loan-")
    [token] = await links_of(gateway, loan, "sms")
    async with signed_in(page, gateway, loan, token) as c:
        html = (await c.get(f"/b/{token}")).text
        day = (await cases.now()).date() + dt.timedelta(days=5)
        r = await c.post(f"/b/{token}/promise", data={"csrf": "0" * 32, "amount": "100.00", "date": day.isoformat()})
        assert r.status_code == 403  # a form without this session's CSRF token changes nothing
        assert (await cases.status(h)).promise is None
        r = await c.post(f"/b/{token}/promise", data={"csrf": csrf_of(html), "amount": "99999999.00", "date": day.isoformat()})
        assert r.status_code == 422 and 'data-field="amount"' in r.text and "未能处理：金额：" in r.text
        # the case's own refusal, with its field, in the borrower's language
        r = await c.post(f"/b/{token}/promise", data={"csrf": csrf_of(html), "amount": "100.00", "date": day.isoformat()})
        assert r.status_code == 422 and 'data-field="amount"' in r.text and "至少应为 1052.00" in r.text  # under 10%
        assert (await cases.status(h)).promise is None
        r = await c.post(f"/b/{token}/promise", data={"csrf": csrf_of(html), "amount": "1052.00", "date": day.isoformat()})
        assert r.status_code == 303 and "note=done" in r.headers["location"]
    st = await cases.status(h)
    assert st.promise is not None and st.promise.status == "active" and st.status == "paused"
    [event] = [e for e in st.events if e.kind == "promise"]
    assert event.actor == f"borrower:{loan}:self_service"  # the borrower of this loan, on their own page


async def test_a_plan_from_the_page_inside_the_limits_is_agreed_and_beyond_them_waits_for_a_supervisor(page, cases, gateway, env):
    from access.permissions import Caller, acting_as
    from app import inputs

    h = await cases.start(dpd=3)
    loan = h.id.removeprefix("loan-")
    [token] = await links_of(gateway, loan, "sms")
    today = (await cases.now()).date()
    async with signed_in(page, gateway, loan, token) as c:
        html = (await c.get(f"/b/{token}")).text
        assert 'action="/b/' in html and "申请还款计划" in html
        bad = {"csrf": csrf_of(html), "kind": "instalments", "instalments": "六", "first_due": today.isoformat()}
        r = await c.post(f"/b/{token}/plan", data=bad)
        assert r.status_code == 422 and 'data-field="instalments"' in r.text  # the field, named; nothing changed
        r = await c.post(f"/b/{token}/plan", data={"csrf": csrf_of(html), "kind": "holiday"})
        assert r.status_code == 422 and 'data-field="kind"' in r.text
        assert (await cases.status(h)).plan is None
        # beyond the plain limits (a waiver over the policy's 20%): proposed, and the page says it waits
        waiver = {"csrf": csrf_of(html), "kind": "interest_waiver", "waiver_percent": "40"}
        waiver["pay_by"] = (today + dt.timedelta(days=20)).isoformat()
        r = await c.post(f"/b/{token}/plan", data=waiver)
        assert r.status_code == 303 and "note=plan_waits" in r.headers["location"], r.text
        r = await c.get(r.headers["location"])
        assert "主管审核" in r.text and 'data-testid="waiting"' in r.text
        st = await cases.status(h)
        assert st.plan is None and st.pending_approval is not None
        assert st.pending_approval.maker.operator_id == f"borrower:{loan}" and st.pending_approval.kind == "plan"
        # a supervisor rejects it (the console's path): the borrower may then ask for one inside the limits
        acting_as(Caller("op-0000000000a1", ("supervisor",)))
        try:
            await inputs.decide(env.client, None, loan, "reject", "too much for this balance")
        finally:
            acting_as(None)
        assert (await cases.status(h)).pending_approval is None
        html = (await c.get(f"/b/{token}")).text
        first = (today + dt.timedelta(days=10)).isoformat()
        r = await c.post(
            f"/b/{token}/plan", data={"csrf": csrf_of(html), "kind": "instalments", "instalments": "6", "first_due": first}
        )
        assert r.status_code == 303 and "note=plan_agreed" in r.headers["location"], r.text
        r = await c.get(r.headers["location"])
        assert "分期" in r.text and r.text.count("元</td>") >= 6 + 4  # the schedule's six rows beside the amounts
    st = await cases.status(h)
    assert st.plan is not None and st.plan.kind == "instalments" and len(st.plan.schedule) == 6
    assert [e.actor for e in st.events if e.kind.startswith("plan")][-1] == f"borrower:{loan}:self_service"


async def test_contact_preferences_from_the_page_reach_the_gate_for_every_loan_of_the_borrower(page, cases, gateway, repo):
    from db.preferences import PreferenceStore
    from db.repo import GateRequest, GateStore, rules_decider
    from domain.policy import load_policy

    a = await cases.start(dpd=2, borrower_id="B-PREFERS")
    b = await cases.start(dpd=30, borrower_id="B-PREFERS")
    loan = a.id.removeprefix("loan-")
    [token] = await links_of(gateway, loan, "sms")
    async with signed_in(page, gateway, loan, token) as c:
        html = (await c.get(f"/b/{token}")).text
        assert 'name="hours_start"' in html and "不要到我的工作单位联系我" in html
        bad = {"csrf": csrf_of(html), "hours_start": "06:00", "hours_end": "10:00"}
        r = await c.post(f"/b/{token}/preferences", data=bad)
        assert r.status_code == 422 and 'data-field="hours"' in r.text and "不在我行可联系的时段 08:00-21:00" in r.text
        assert PreferenceStore(repo).get("B-PREFERS") is None  # refused: nothing kept
        good = {"csrf": csrf_of(html), "hours_start": "18:00", "hours_end": "20:00", "quiet_call": "1", "not_at_work": "1"}
        r = await c.post(f"/b/{token}/preferences", data=good)
        assert r.status_code == 303 and "note=pref_done" in r.headers["location"], r.text
        html = (await c.get(f"/b/{token}")).text
        assert 'value="18:00"' in html and 'name="quiet_call" value="1" checked' in html  # the form shows what is kept
    p = PreferenceStore(repo).get("B-PREFERS")
    assert p is not None and p.quiet == {"call"} and p.hours == (1080, 1200) and p.not_at_work
    # the other loan's gate applies them too: a call is refused for good, an SMS at 10:00 waits for 18:00
    rules = load_policy("default").contact
    noon = dt.datetime(2026, 12, 8, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai, a Tuesday
    other = b.id.removeprefix("loan-")
    asks = [
        GateRequest(idempotency_key=f"pref-{other}-{x}", workflow_id=b.id, loan_id=other, step="t", action=x, channel=x)
        for x in ("call", "sms")
    ]
    call, sms = GateStore(repo).check("B-PREFERS", noon, asks, rules_decider(noon, rules, 86400))
    assert not call.allowed and call.rule == "borrower_preference" and call.final
    assert not sms.allowed and sms.rule == "borrower_hours" and sms.retry_at == dt.datetime(2026, 12, 8, 10, 0, tzinfo=dt.UTC)
    events = [e for e in repo.events(b.id) if e.kind == "contact_preferences"]
    assert events and events[-1].actor == f"borrower:{loan}" and "not at the workplace" in events[-1].detail


async def test_a_complaint_stops_contact_on_every_loan_of_the_borrower_at_once(page, cases, gateway, repo):
    a = await cases.start(dpd=2, borrower_id="B-COMPLAINS")
    b = await cases.start(dpd=40, borrower_id="B-COMPLAINS")
    loan = a.id.removeprefix("loan-")
    [token] = await links_of(gateway, loan, "sms")
    async with signed_in(page, gateway, loan, token) as c:
        html = (await c.get(f"/b/{token}")).text
        r = await c.post(f"/b/{token}/complaint", data={"csrf": csrf_of(html), "note": "催收员威胁我，还打电话到我单位"})
        assert r.status_code == 303 and "ref=C-" in r.headers["location"]
        r = await c.get(r.headers["location"])
        assert "C-" in r.text and "停止" in r.text  # the reference, and that contact stops
    for h in (a, b):
        st = await cases.status(h)
        assert [x.kind for x in st.holds] == ["complaint"], st.holds
    from db.repo import GateStore

    held = [x for x in GateStore(repo).holds("B-COMPLAINS") if x.kind == "complaint" and x.released_at is None]
    assert len(held) == 2  # the gate reads them: nothing more goes out to this borrower


async def test_wrong_codes_lock_the_link_and_the_page_says_until_when(page, cases, gateway):
    h = await cases.start(dpd=1)
    loan = h.id.removeprefix("loan-")
    [token] = await links_of(gateway, loan, "email")
    async with browser(page) as c:
        assert (await c.post(f"/b/{token}/code")).status_code == 303
        right = last_code(gateway, loan)
        wrong = f"{(int(right) + 1) % 10**6:06d}"
        for _ in range(rules.CODE_ATTEMPTS - 1):
            r = await c.post(f"/b/{token}/verify", data={"code": wrong})
            assert r.status_code == 401 and "不正确" in r.text
        r = await c.post(f"/b/{token}/verify", data={"code": wrong})
        assert r.status_code == 401 and "已锁定" in r.text and re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}后", r.text)
        r = await c.post(f"/b/{token}/verify", data={"code": right})  # even the right code: locked
        assert r.status_code == 401 and "已锁定" in r.text
        r = await c.post(f"/b/{token}/code")
        assert r.status_code == 429 and "已锁定" in r.text  # and no new code while locked


async def test_tampered_expired_foreign_and_guarantor_links_open_no_debt(page, cases, gateway, repo):
    a = await cases.start(dpd=1)
    b = await cases.start(dpd=1)
    la, lb = a.id.removeprefix("loan-"), b.id.removeprefix("loan-")
    [ta] = await links_of(gateway, la, "sms")
    [tb] = await links_of(gateway, lb, "sms")
    async with browser(page) as c:
        tampered = ta[:-1] + ("A" if ta[-1] != "A" else "B")
        assert (await c.get(f"/b/{tampered}")).status_code == 404
        assert (await c.get("/b/not-a-token")).status_code == 404
        assert (await c.get("/b/" + "x" * 200)).status_code == 404
    async with signed_in(page, gateway, la, ta) as c:
        r = await c.get(f"/b/{tb}")  # A's session on B's link: B's code page, nothing of B's debt
        assert r.status_code == 200 and "验证码" in r.text and "10520" not in r.text
        html = (await c.get(f"/b/{ta}")).text
        r = await c.post(f"/b/{tb}/dispute", data={"csrf": csrf_of(html), "note": "x"})
        assert r.status_code == 403
    assert (await cases.status(b)).holds == []
    # an expired link
    store = LinkStore(repo)
    [row] = [x for x in store.links_of(lb) if x.channel == "sms"]
    with repo.session() as s:
        from sqlalchemy import update

        from db.selfservice import LINKS

        s.execute(update(LINKS).where(LINKS.c.id == row.id).values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))
        s.commit()
    async with browser(page) as c:
        r = await c.get(f"/b/{tb}")
        assert r.status_code == 410 and "已过期" in r.text
    # a guarantor's link opens only the bank's number
    url = guarantor_link(repo, a, "G-1")
    async with browser(page) as c:
        r = await c.get(url.removeprefix(settings().public_url.rstrip("/")))
        assert r.status_code == 200 and "担保人" in r.text and "95500" in r.text and "验证码" not in r.text


async def test_no_token_reaches_the_request_log(page, cases, gateway):
    h = await cases.start(dpd=1)
    [token] = await links_of(gateway, h.id.removeprefix("loan-"), "sms")
    with structlog.testing.capture_logs() as logs:
        async with browser(page) as c:
            await c.get(f"/b/{token}")
            await c.post(f"/b/{token}/code")
    assert logs and not [e for e in logs if token in str(e)], logs
    assert _shown_path(f"/b/{token}/code") == "/b/…/code" and _shown_path(f"/b/{token}") == "/b/…"


def test_the_token_is_the_same_for_every_attempt_of_a_send_and_only_its_keyed_hash_is_kept():
    secret = b"s" * 32
    t1, t2 = rules.link_token(secret, "case:step:sms"), rules.link_token(secret, "case:step:sms")
    assert t1 == t2 and rules.looks_like_token(t1) and t1 != rules.link_token(secret, "case:step:email")
    assert rules.keyed_hash(secret, "link", t1) != rules.keyed_hash(b"t" * 32, "link", t1)
    assert rules.link_token(b"t" * 32, "case:step:sms") != t1  # another deployment's secret, another token


async def test_a_guarantors_link_takes_no_code_and_opens_no_session_and_bad_forms_are_refused_not_500(page, cases, repo):
    h = await cases.start(dpd=1)
    loan = h.id.removeprefix("loan-")
    url = guarantor_link(repo, h, f"B{loan}")
    token = url.rsplit("/", 1)[1]
    async with browser(page) as c:
        assert (await c.post(f"/b/{token}/code")).status_code == 403
        assert (await c.post(f"/b/{token}/verify", data={"code": "123456"})).status_code == 403
        assert (await c.post(f"/b/{token}/promise", data={"csrf": "x"})).status_code == 403
        r = await c.get(f"/b/{token}?note=locked")
        assert r.status_code == 200
    assert not [x for x in repo.contacts(loan_id=loan) if x.action == "access_code"]  # no code was sent


async def test_parallel_code_requests_send_one_code_and_odd_input_is_refused_cleanly(page, cases, gateway, repo):
    h = await cases.start(dpd=1)
    loan = h.id.removeprefix("loan-")
    [token] = await links_of(gateway, loan, "sms")
    async with browser(page) as c:
        got = await asyncio.gather(*(c.post(f"/b/{token}/code") for _ in range(5)))
        assert sorted(r.status_code for r in got).count(303) == 1, [r.status_code for r in got]
        assert len([x for x in repo.contacts(loan_id=loan) if x.action == "access_code"]) == 1
        assert (await c.get(f"/b/{token}?note=too_soon")).status_code == 200
        assert (await c.post(f"/b/{token}/verify", data={"code": last_code(gateway, loan)})).status_code == 303
        r = await c.post(f"/b/{token}/dispute", data={"csrf": "验证", "note": "x"})
        assert r.status_code == 403  # not a 500
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        r = await c.post(f"/b/{token}/dispute", content="a=" + "x" * 20_000, headers=form)
        assert r.status_code == 403
    assert (await cases.status(h)).holds == []


def test_the_worker_and_the_api_refuse_to_start_without_the_deployments_borrower_secrets(monkeypatch):
    from infra import link_secret as secrets_

    monkeypatch.setenv("TEMPORAL_ADDRESS", "temporal.bank.internal:7233")
    monkeypatch.delenv("COLLECTIONS_LINK_SECRET", raising=False)
    monkeypatch.delenv("GATEWAY_WEBHOOK_SECRET", raising=False)
    secrets_.link_secret.cache_clear()
    try:
        with pytest.raises(secrets_.LinkSecretError, match="COLLECTIONS_LINK_SECRET"):
            secrets_.check()
        monkeypatch.setenv("COLLECTIONS_LINK_SECRET", "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA==")
        secrets_.link_secret.cache_clear()
        with pytest.raises(secrets_.LinkSecretError, match="GATEWAY_WEBHOOK_SECRET"):
            secrets_.check()
        monkeypatch.setenv("GATEWAY_WEBHOOK_SECRET", "w" * 40)
        with pytest.raises(secrets_.LinkSecretError, match="https"):
            secrets_.check()  # the default http://127.0.0.1 address is no address for a borrower
        monkeypatch.setenv("COLLECTIONS_PUBLIC_URL", "https://pay.example-bank.cn")
        secrets_.check()
    finally:
        secrets_.link_secret.cache_clear()


async def test_links_signed_with_another_secret_than_the_apis_are_reported_when_one_fails_to_open(page, cases, gateway, repo):
    from app import selfservice as flow
    from borrower import pages
    from db.selfservice import LinkStore

    h = await cases.start(dpd=1)
    loan = h.id.removeprefix("loan-")
    await links_of(gateway, loan, "sms")
    assert flow.secret_mismatch(repo) is None  # the worker's links and the API's secret agree
    LinkStore(repo).issue(
        b"another-deployment-secret-0123456789abcdef",
        settings().public_url,
        idempotency_key=f"other-secret-{loan}",
        workflow_id=h.id,
        loan_id=loan,
        borrower_id=f"B{loan}",
        recipient_id=f"B{loan}",
        audience="borrower",
        channel="sms",
        now=dt.datetime.now(dt.UTC),
    )
    why = flow.secret_mismatch(repo)
    assert why is not None and "COLLECTIONS_LINK_SECRET" in why
    pages._CHECKED.clear()
    before = pages.MISMATCHES._value.get()
    with structlog.testing.capture_logs() as logs:
        async with browser(page) as c:
            assert (await c.get("/b/" + "A" * 22)).status_code == 404
    assert pages.MISMATCHES._value.get() == before + 1
    assert [e for e in logs if e["event"] == "borrower links unopenable" and e["log_level"] == "error"]
