"""The demo's life: simulated borrowers, the demo's collector and the court, playing a running local stack over HTTP.

    python -m devstack.life start     # in the background (make demo does this); log var/logs/life.log
    python -m devstack.life stop      # make down does this first
    python -m devstack.life run       # in the foreground
    python -m devstack.life status

Every borrower is the simulator's behaviour model (sim.behaviour.Borrower, its profile drawn as the simulator draws
it): it sees what reached it (the sandbox gateway's outbox, followed with its cursor: SMS, e-mails, letters, calls,
visits, the law firm's letters, court filings) and decides, on the demo's clock, what to do. What it does goes
through the doors a person uses:

- **the borrower page** (/b/<token>, the link in its latest SMS, e-mail or letter): it asks for the one-time code,
  reads it from the gateway's outbox, passes it, and pays by the payment link (the gateway's payment page, which
  confirms the payment to the API by its signed webhook), promises to pay, declares a hardship, disputes the debt or
  complains, with the page's own forms (its CSRF token);
- **SMS replies** (the sandbox's inbound reply, signed to the API's /webhooks/sms): "1" for a promise of the whole
  amount, free text (asking for a plan, asking to be left alone) for the floor's replies worklist;
- a payment at the bank's counter (the bank feed, demo-payments) when no link or code is to be had.

The people around the case act through the API, each as its demo operator: **demo-collector** works the floor's
call tasks (click to call: the gate decides; the outcome is the borrower's: answered, no answer, wrong number,
dispute), reports the field visits, agrees the plan a borrower asked for by SMS and lifts a hardship hold once
the borrower's income is back; **demo-legal** records what the court answers (the judgment a few demo days after
the lawsuit, the enforcement's results and its end), **demo-compliance** closes reviewed disputes and complaints.

Time: the behaviour model counts days; here a day is the policy's `day_seconds` (6 s for the demo policy). The case
reads the dates a person types (a promise's day, a plan's instalments, a hardship's end) on the real calendar, so
they are sent as the earliest the rules allow (today, or tomorrow where the rule wants a later day), while the
borrower keeps its own schedule in demo days. The court's and the reviewers' lags are the model's, shortened
(COURT_PACE, REVIEW_PACE) so that a lawsuit is answered while the demo is watched.

A book gets new delinquent loans every day: the life opens one on the demo policy every `--feed-days` demo days
(as demo-supervisor, POST /v1/cases), at DPD 1, while fewer than `--max-open` cases are open. Without it the demo's
forty cases end within half an hour (paid, settled, recovered, or closed as uncollectable once enforcement has ended:
proposed by demo-supervisor, approved by demo-checker), and the demo with them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from domain.models import CaseStatus, CloseIn
from domain.money import format_amount
from domain.policy import Policy, load_policy
from sim.behaviour import Action, Borrower, Profile, Update, call_script, draw_profile
from sim.seeds import loan_rng

LINK = re.compile(r"/b/([A-Za-z0-9_-]{22})")
CODE = re.compile(r"(\d{6})")
CSRF = re.compile(r'name="csrf" value="([0-9a-f]{32})"')
COURT_PACE = 0.2  # the court answers in a fifth of the model's days (a judgment 9-24 demo days after the lawsuit)
REVIEW_PACE = 0.3  # compliance closes a dispute or complaint review in 3-14 demo days
SESSION_FOR = dt.timedelta(minutes=18)  # the page's session lasts 20 minutes; sign in again a little before
# beside console.demo's: the legal team, compliance, and a second supervisor who approves demo-supervisor's proposals
OPERATORS = {"demo-legal": ("legal",), "demo-compliance": ("compliance",), "demo-checker": ("supervisor",)}
PLAN_ASK = "您好，我最近收入减少，能否申请分期还款？"
LEAVE_ALONE = "请不要再联系我，有事请寄信。"


def say(msg: str) -> None:
    print(f"{dt.datetime.now():%H:%M:%S} life: {msg}", flush=True)


# ---------------------------------------------------------------------------- the borrower, on the demo's clock


def _page_promise(amount: str, total: str, currency: str = "CNY") -> str:
    """The borrower's promise on their own page: at least the policy's share of what is due (a smaller one the page
    refuses: [promise] self_service_min_percent), as a person would raise it when the page says so."""
    from domain.money import format_amount, parse_amount
    from domain.policy import load_policy
    from domain.selfservice import promise_too_small

    least = promise_too_small(
        parse_amount(amount, currency), parse_amount(total, currency), load_policy("demo").promise.self_service_min_percent
    )
    return amount if least is None else format_amount(least, currency)


@dataclass(frozen=True)
class DemoLoan:
    """What the behaviour model reads of a loan."""

    loan_id: str
    segment: str
    start_dpd: int
    profile: Profile

    @property
    def workflow_id(self) -> str:
        return f"loan-{self.loan_id}"


class DemoBorrower(Borrower):
    """sim.behaviour's borrower, with the court's and the reviewers' lags shortened, and a judgment for every lawsuit
    (the model leaves some lawsuits unanswered within its year; the demo's court answers each)."""

    def __init__(self, loan: DemoLoan, seed: int, policy: Policy, start: dt.date) -> None:
        self.now_day = 0
        self.born = 0  # the life's day on the borrower's day 0
        super().__init__(loan, seed, policy, start, days=10**6)
        self.link: str | None = None  # the newest link of a message to the borrower
        self.sms_id: str | None = None  # the newest SMS to the borrower (a reply answers it)
        self.session: httpx.AsyncClient | None = None
        self.session_until: dt.datetime | None = None
        self.codes_seen: set[str] = set()
        self.calls = call_script(loan.profile, loan_rng(seed, loan.loan_id, "calls"))
        self.busy = False
        self.hardship_ends: int | None = None

    def schedule(self, day: int, kind: str, **args) -> None:
        pace = COURT_PACE if kind == "court" else REVIEW_PACE if kind == "release" else 1.0
        if pace != 1.0 and day > self.now_day:
            day = self.now_day + max(1, math.ceil((day - self.now_day) * pace))
        super().schedule(day, kind, **args)

    def on_contact(self, day: int, action: str, status: str, outcome: str | None) -> None:
        self.now_day = day
        super().on_contact(day, action, status, outcome)
        if action.split("@", 1)[0] == "lawsuit" and not any(a.kind == "court" for a in self.queue):
            self.schedule(day + self.rng.randint(45, 120), "court", outcome="judgment")

    def adopt(self, st: CaseStatus, day: int) -> None:
        """What the case already waits for when the life first sees it (opened by the demo, or before a restart): the
        court answers a lawsuit or an enforcement, the collector reports a booked visit, the reviewers close a dispute
        or a complaint, the collector lifts a hardship once it ends, and the borrower keeps (or not) a promise or a
        plan someone else recorded, as the model keeps its own."""
        self.now_day = day
        rng, p = self.rng, self.p
        lawsuit = any(k in st.steps_done for k in ("litigation",)) or (st.awaiting is not None and st.awaiting.kind == "court")
        enforcing = "enforcement" in st.steps_done
        judged = any(e.kind == "court_outcome" and "judgment" in e.detail for e in st.events)
        ended = any(e.kind == "court_outcome" and "enforcement_closed" in e.detail for e in st.events)
        if ended:
            self.schedule(day + rng.randint(5, 20), "close")
        elif enforcing:
            self.on_contact(day, "enforcement", "delivered", None)
        elif lawsuit and not judged:
            self.schedule(day + rng.randint(10, 60), "court", outcome="judgment")
        if st.awaiting is not None and st.awaiting.kind == "visit":
            self.schedule(day + rng.randint(1, 4), "visit_report")
        for h in st.holds:
            if h.kind in ("dispute", "complaint"):
                self.schedule(day + rng.randint(10, 45), "release", hold=h.kind, resolution="reviewed")
            elif h.kind == "hardship":
                self.schedule(day + rng.randint(10, 40), "release", hold="hardship", resolution="income back")
        if st.promise is not None and st.promise.status == "active" and rng.random() < p.keeps_promises:
            self.schedule(day + rng.randint(1, 7), "pay", amount=st.promise.amount, why="promise_kept")
        if st.plan is not None and st.plan.status == "active":
            for k, i in enumerate(st.plan.schedule):
                if rng.random() >= p.plan_adherence:
                    break
                self.schedule(day + 3 + 30 * k, "pay", amount=i.amount, why="plan_payment")

    def _close(self, a: Action, status: CaseStatus) -> Update | None:
        """The floor's decision once enforcement has ended with a balance left (终结本次执行: no assets found): the
        case is closed as uncollectable, proposed by one supervisor and approved by another (four-eyes)."""
        if status.status == "closed" or status.pending_approval is not None:
            return None
        return Update(
            "close_case",
            CloseIn(outcome="uncollectable", reason="enforcement ended, no assets found (终结本次执行)"),
            "close_uncollectable",
        )

    def next_call(self) -> str:
        """The outcome of the next call the collector places (the model's call script, the last one repeating)."""
        return (self.calls.pop(0) if len(self.calls) > 1 else self.calls[0])["outcome"]


DemoBorrower.ACTS = {**Borrower.ACTS, "close": DemoBorrower._close}  # the floor's closure after enforcement


def real_dates(update: Update, today: dt.date) -> Update:
    """The update with the dates the case reads on the real calendar set to the earliest its rules allow."""
    arg = update.arg
    later = today + dt.timedelta(days=1)
    name = update.name
    if name == "promise_to_pay":
        arg = arg.model_copy(update={"date": today})
    elif name == "agree_plan":
        fields = {"instalments": {"first_due": today}, "deferral": {"until": later}, "interest_waiver": {"pay_by": today}}
        arg = arg.model_copy(update=fields[arg.kind])
    elif name == "place_hold" and arg.until is not None:
        arg = arg.model_copy(update={"until": later})
    elif name == "record_outcome" and arg.kind == "court":
        if arg.outcome == "judgment":  # a judgment whose performance period has ended: enforcement may follow
            arg = arg.model_copy(
                update={"effective_on": today - dt.timedelta(days=15), "performance_ends": today - dt.timedelta(days=5)}
            )
        elif arg.served_on is not None:
            arg = arg.model_copy(update={"served_on": today})
    return Update(update.name, arg, update.label)


# ---------------------------------------------------------------------------- the life


@dataclass
class Endpoints:
    api: str  # the API's base URL (borrower page, webhooks, /v1)
    gateway: str  # the sandbox gateway's
    gateway_key: str
    tokens: dict[str, str]  # operator name -> bearer token


@dataclass
class Options:
    seed: int = 20
    feed_days: float = 1.0  # a new delinquent loan every this many demo days
    max_open: int = 100
    tick: float = 1.0
    concurrency: int = 6
    feed: bool = True
    prefix: str = "LIFE"
    policy: str = "demo"


@dataclass
class Life:
    ends: Endpoints
    opts: Options = field(default_factory=Options)

    def __post_init__(self) -> None:
        self.policy = load_policy(self.opts.policy)
        self.day_seconds = self.policy.day_seconds
        self.t0 = time.monotonic()
        self.borrowers: dict[str, DemoBorrower] = {}
        self.closed: set[str] = set()
        self.cursor: int | None = None
        self.open_count = 0
        self.stats: Counter = Counter()
        self.tasks_seen: dict[int, int] = {}  # task id -> demo day first seen
        self.task_retry: dict[int, float] = {}
        self.fed = 0
        self.last_feed = -(10**9)
        self.rng = random.Random(self.opts.seed)
        self.sem = asyncio.Semaphore(self.opts.concurrency)
        self.http = httpx.AsyncClient(timeout=30)
        self.pending: set[asyncio.Task] = set()
        self.run_id = dt.datetime.now(dt.UTC).strftime("%m%d%H%M")

    # ---- plumbing

    def day(self) -> int:
        return int((time.monotonic() - self.t0) // self.day_seconds)

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.ends.tokens[who]}"}

    def gw(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.ends.gateway_key}"}

    async def api(self, method: str, path: str, who: str, **kw) -> httpx.Response:
        return await self.http.request(method, self.ends.api + path, headers=self.auth(who), **kw)

    def count(self, what: str, ok: bool = True) -> None:
        self.stats[what if ok else f"{what} refused"] += 1

    async def aclose(self) -> None:
        for t in list(self.pending):
            t.cancel()
        for b in self.borrowers.values():
            if b.session is not None:
                await b.session.aclose()
        await self.http.aclose()

    # ---- what the cases are

    async def status(self, loan_id: str) -> CaseStatus | None:
        r = await self.api("GET", f"/v1/loans/{loan_id}", "demo-collector")
        if r.status_code != 200:
            return None
        return CaseStatus.model_validate(r.json())

    async def open_cases(self) -> list[dict]:
        r = await self.api("GET", "/v1/cases", "demo-viewer", params={"policy": self.opts.policy, "limit": 1000})
        r.raise_for_status()
        return r.json()["items"]

    async def borrower(self, loan_id: str) -> DemoBorrower | None:
        """The loan's borrower, drawn the first time its case is seen (its profile from the loan's own generator)."""
        if loan_id in self.borrowers or loan_id in self.closed:
            return self.borrowers.get(loan_id)
        st = await self.status(loan_id)
        if st is None or st.status == "closed":
            self.closed.add(loan_id)
            return None
        segment = st.segment or "retail"
        profile = draw_profile(loan_rng(self.opts.seed, loan_id, "profile"), segment, st.dpd)
        loan = DemoLoan(loan_id=loan_id, segment=segment, start_dpd=st.dpd, profile=profile)
        b = DemoBorrower(loan, self.opts.seed, self.policy, dt.date.today())
        b.born = self.day()  # its day 0, as the model counts: the day the life first saw its case
        b.adopt(st, 0)
        self.borrowers[loan_id] = b
        return b

    async def refresh(self) -> None:
        items = await self.open_cases()
        self.open_count = 0
        for it in items:
            loan = it["loan_id"]
            if it.get("status") == "closed" or it.get("execution") != "Running":
                self.closed.add(loan)
                b = self.borrowers.pop(loan, None)
                if b is not None and b.session is not None:
                    await b.session.aclose()
                continue
            self.open_count += 1
            if loan not in self.borrowers:
                await self.borrower(loan)

    # ---- what reached the borrowers: the gateway's outbox, followed

    async def follow_outbox(self) -> None:
        params: dict[str, Any] = {"limit": 2000}
        if self.cursor is not None:
            params["after"] = self.cursor
        r = await self.http.get(self.ends.gateway + "/outbox", params=params, headers=self.gw())
        r.raise_for_status()
        body = r.json()
        first = self.cursor is None
        self.cursor = body.get("last") if body.get("last") is not None else self.cursor
        day = self.day()
        for item in body["items"]:
            key = item["idempotency_key"]
            if key.startswith("code:"):  # a one-time code: the borrower reads it when it asked for one
                continue
            b = await self.borrower(item["loan_id"])
            if b is None:
                continue
            action = key.rsplit(":", 1)[-1]
            text = str(item["body"].get("text") or item["body"].get("body") or item["body"].get("content") or "")
            if "@" not in action:  # to the borrower, not a guarantor: its link opens the debt
                if found := LINK.findall(text):
                    b.link = found[-1]
                if item["channel"] == "sms":
                    b.sms_id = item["id"]
            if first:
                continue  # what came before this life began is not news to react to
            outcome = item["response"].get("outcome") if item["channel"] == "call" else None
            b.on_contact(day - b.born, action, "delivered", outcome)

    # ---- the borrower page, as a phone's browser uses it

    async def signed_in(self, b: DemoBorrower) -> httpx.AsyncClient | None:
        now = dt.datetime.now(dt.UTC)
        if b.session is not None and b.session_until and now < b.session_until:
            return b.session
        if b.link is None:
            return None
        if b.session is not None:
            await b.session.aclose()
        b.session = httpx.AsyncClient(base_url=self.ends.api, timeout=30, follow_redirects=False)
        r = await b.session.post(f"/b/{b.link}/code")
        if r.status_code != 303:
            self.count("page code", ok=False)
            b.session_until = None
            return None
        code = await self.read_code(b)
        if code is None:
            return None
        r = await b.session.post(f"/b/{b.link}/verify", data={"code": code})
        if r.status_code != 303:
            self.count("page verify", ok=False)
            return None
        b.session_until = now + SESSION_FOR
        self.count("page sign-in")
        return b.session

    async def read_code(self, b: DemoBorrower) -> str | None:
        for _ in range(40):
            r = await self.http.get(
                self.ends.gateway + "/outbox",
                params={"loan_id": b.loan.loan_id, "channel": "sms", "limit": 1000},
                headers=self.gw(),
            )
            for item in reversed(r.json()["items"]):
                if item["idempotency_key"].startswith("code:") and item["id"] not in b.codes_seen:
                    b.codes_seen.add(item["id"])
                    return CODE.findall(item["body"]["text"])[0]
            await asyncio.sleep(0.25)
        return None

    async def page_form(self, b: DemoBorrower, action: str, form: dict[str, str]) -> httpx.Response | None:
        """One of the page's forms, sent with the session's CSRF token (read from the page, as a browser has it)."""
        page = await self.signed_in(b)
        if page is None:
            return None
        r = await page.get(f"/b/{b.link}")
        m = CSRF.search(r.text)
        if m is None:  # the session ended: once more from the code
            b.session_until = None
            page = await self.signed_in(b)
            if page is None:
                return None
            r = await page.get(f"/b/{b.link}")
            m = CSRF.search(r.text)
            if m is None:
                return None
        return await page.post(f"/b/{b.link}/{action}", data={"csrf": m.group(1), **form})

    async def pay_by_link(self, b: DemoBorrower, amount: str) -> bool:
        r = await self.page_form(b, "pay", {"amount": amount})
        if r is None or r.status_code != 303 or "/pay/" not in r.headers.get("location", ""):
            return False
        checkout = r.headers["location"]
        async with httpx.AsyncClient(timeout=30, follow_redirects=False) as provider:
            shown = await provider.get(checkout)
            paid = await provider.post(checkout)  # the provider confirms it to the API by its signed webhook
        return shown.status_code == 200 and paid.status_code == 303

    async def reply(self, b: DemoBorrower, text: str) -> dict | None:
        if b.sms_id is None:
            return None
        r = await self.http.post(
            f"{self.ends.gateway}/admin/sms/{b.sms_id}/reply",
            json={"text": text, "webhook_url": f"{self.ends.api}/webhooks/sms"},
            headers=self.gw(),
        )
        return r.json() if r.status_code == 200 else None

    # ---- one due action of one borrower

    async def act(self, b: DemoBorrower, day: int) -> None:
        """The borrower's first due action on its `day` (the model's count, from `born`); the rest wait a day."""
        async with self.sem:
            try:
                await self._act(b, day)
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                self.count("error")
                say(f"{b.loan.loan_id}: {type(exc).__name__}: {exc}")
            finally:
                b.busy = False

    async def _act(self, b: DemoBorrower, day: int) -> None:
        actions = b.due(day)
        if not actions:
            return
        for later in actions[1:]:
            b.schedule(day + 1, later.kind, **later.args)
        a: Action = actions[0]
        b.now_day = day
        st = await self.status(b.loan.loan_id)
        if st is None:
            return
        update = b.answer(a, st)
        if update is None:
            if b.closed:
                self.closed.add(b.loan.loan_id)
            return
        today = dt.datetime.now(dt.UTC).astimezone(_zone("Asia/Shanghai")).date()  # Beijing's: never before a borrower's
        sent = real_dates(update, today)
        ok, result, how = await self.send(b, sent, st)
        self.count(f"{update.label} by {how}", ok)
        say(f"{b.loan.loan_id} day {day}: {update.label} by {how}: {'ok' if ok else 'refused'}{_short(result)}")
        if not ok:
            return
        if update.name == "place_hold" and update.arg.kind == "hardship" and update.arg.until is not None:
            # the case holds to the real date the page takes; the collector lifts it when the model's hardship ends
            b.schedule(b.day_of(update.arg.until), "release", hold="hardship", resolution="income back")
        after = await self.status(b.loan.loan_id)
        closed = after is not None and after.status == "closed"
        res = _Result(
            outcome=after.outcome if closed and after else None,
            status="closed" if closed else None,
            schedule=_sim_schedule(result, b, day, today),
        )
        b.accepted(a, update, res)
        if update.name == "record_outcome" and update.arg.kind == "court" and not closed:
            b.react(day, b.loan.start_dpd + day, "court")  # the court's ruling is served on the borrower: a court contact
            if update.arg.outcome == "enforcement_closed":
                b.schedule(day + b.rng.randint(10, 30), "close")
        if closed:
            self.closed.add(b.loan.loan_id)

    async def send(self, b: DemoBorrower, u: Update, st: CaseStatus) -> tuple[bool, Any, str]:
        """The update through the door a person uses for it; (accepted, what came back, which door)."""
        loan = b.loan.loan_id
        arg = u.arg
        if u.name == "record_payment":
            if b.link is not None and await self.pay_by_link(b, arg.amount):
                return True, None, "payment link"
            pid = f"{arg.payment_id}-{self.run_id}"  # at the bank's counter, through the bank's feed
            r = await self.api(
                "POST", f"/v1/loans/{loan}/payments", "demo-payments", json={"payment_id": pid, "amount": arg.amount}
            )
            return r.status_code == 200, r.json(), "bank feed"
        if u.name == "promise_to_pay":
            total = st.outstanding["total"]
            if b.sms_id is not None and arg.amount == total and b.p.keeps_promises >= 0.6 and self.rng.random() < 0.5:
                got = await self.reply(b, "1")  # the SMS's keyword: the whole amount within its days
                return got is not None and got.get("status") == 200, got, "SMS reply 1"
            r = await self.page_form(b, "promise", {"amount": _page_promise(arg.amount, total), "date": arg.date.isoformat()})
            if r is not None:
                return r.status_code == 303, r.headers.get("location"), "page"
            r = await self.api("POST", f"/v1/loans/{loan}/promises", "demo-collector", json=_json(arg))
            return r.status_code == 200, r.json(), "collector"
        if u.name == "agree_plan":
            how = "collector"
            if (await self.reply(b, PLAN_ASK)) is not None:  # the floor reads it on the replies worklist
                how = "SMS reply, then collector"
            r = await self.api("POST", f"/v1/loans/{loan}/plans", "demo-collector", json=_json(arg))
            return r.status_code == 200, r.json(), how
        if u.name == "place_hold":
            kind = arg.kind
            if kind in ("hardship", "dispute", "complaint"):
                form = {
                    "hardship": {"cause": self.rng.choice(["job_loss", "illness"]), "until": str(arg.until)},
                    "dispute": {"note": "金额不对，利息算错了"},
                    "complaint": {"note": "催收人员打电话到我单位"},
                }[kind]
                r = await self.page_form(b, kind, form)
                if r is not None:
                    return r.status_code == 303, r.headers.get("location"), "page"
                if kind == "complaint":
                    return False, "no page", "page"
            if kind == "cease_contact":
                await self.reply(b, LEAVE_ALONE)
            r = await self.api("POST", f"/v1/loans/{loan}/holds", "demo-collector", json=_json(arg))
            return r.status_code == 200, r.json(), "collector"
        if u.name == "release_hold":
            who = "demo-compliance" if arg.kind in ("dispute", "complaint") else "demo-collector"
            body = {"reviewer": "合规复核（演示）" if arg.kind == "complaint" else None, "resolution": arg.resolution}
            r = await self.api("POST", f"/v1/loans/{loan}/holds/{arg.kind}/release", who, json=body)
            return r.status_code == 200, r.json(), who
        if u.name == "close_case":
            r = await self.api("POST", f"/v1/loans/{loan}/closure", "demo-supervisor", json=_json(arg))
            if r.status_code != 200:
                return False, r.json(), "demo-supervisor"
            st = await self.status(loan)
            if st is not None and st.pending_approval is not None:  # four-eyes: a second supervisor approves
                r = await self.api("POST", f"/v1/loans/{loan}/approval", "demo-checker", json={"decision": "approve"})
                return r.status_code == 200, r.json(), "demo-supervisor and demo-checker"
            return True, r.json(), "demo-supervisor"
        if u.name == "record_outcome":
            who = "demo-legal" if arg.kind == "court" else "demo-collector"
            r = await self.api("POST", f"/v1/loans/{loan}/outcomes", who, json=_json(arg))
            return r.status_code == 200, r.json(), who
        return False, f"no door for {u.name}", "none"

    # ---- the collector's call tasks

    async def work_tasks(self) -> None:
        r = await self.api("GET", "/v1/tasks", "demo-collector", params={"action": "call"})
        if r.status_code != 200:
            return
        day = self.day()
        for t in r.json()["tasks"]:
            tid = t["id"]
            first = self.tasks_seen.setdefault(tid, day)
            if day - first < 1 or time.monotonic() < self.task_retry.get(tid, 0):
                continue  # picked up the next demo day, or when the gate said to call again
            await self.work_call(t)

    async def work_call(self, t: dict) -> str | None:
        tid, loan = t["id"], t["loan_id"]
        r = await self.api("POST", f"/v1/tasks/{tid}/call", "demo-collector")
        if r.status_code != 200:
            self.count("call task", ok=False)
            self.task_retry[tid] = time.monotonic() + 30
            return None
        opened = r.json()
        if not opened["allowed"]:
            self.count("call refused by the gate")
            self.task_retry[tid] = time.monotonic() + 2 * self.day_seconds
            return None
        b = await self.borrower(loan)
        outcome = b.next_call() if b is not None else "no_answer"
        r = await self.api("POST", f"/v1/tasks/{tid}/outcome", "demo-collector", json={"outcome": outcome, "notes": "演示"})
        ok = r.status_code == 200
        self.count(f"call task {outcome}", ok)
        say(f"{loan}: call task {tid}: {outcome}: {'ok' if ok else r.text[:200]}")
        if ok and b is not None:
            b.on_contact(self.day() - b.born, "call", "delivered", outcome)
        return outcome if ok else None

    # ---- the bank's daily feed of new delinquent loans

    async def feed(self) -> str | None:
        n = self.fed + 1
        loan = f"{self.opts.prefix}-{self.run_id}-{n:04d}"
        rng = random.Random(f"{self.opts.seed}:{loan}")
        segment = rng.choice(["retail", "retail", "retail", "sme", "student"])
        low, high = {"retail": (3_000, 60_000), "sme": (30_000, 300_000), "student": (2_000, 20_000)}[segment]
        principal = rng.randrange(low, high) * 100
        tz = rng.choice(["Asia/Shanghai", "Asia/Shanghai", "Asia/Shanghai", "Asia/Urumqi"])
        body = {
            "loan_id": loan,
            "borrower_id": f"LB-{self.run_id}-{n:04d}",
            "principal": format_amount(principal, "CNY"),
            "interest": format_amount(principal * rng.randrange(2, 8) // 100, "CNY"),
            "fees": rng.choice(["0", "50.00", "150.00"]),
            "due_date": (dt.datetime.now(dt.UTC).astimezone(_zone(tz)).date() - dt.timedelta(days=1)).isoformat(),
            "timezone": tz,
            "segment": segment,
            "policy": self.opts.policy,
            "borrower": {
                "name": f"新借款人{n:03d}",
                "phone": f"139{rng.randrange(10**8):08d}",
                "email": f"new{n:04d}@example.com",
                "address": f"演示市新区{rng.randrange(1, 200)}号",
                "language": "zh",
            },
        }
        r = await self.api("POST", "/v1/cases", "demo-supervisor", json=body)
        if r.status_code in (200, 201):
            self.fed = n
            self.count("new loan")
            return loan
        self.count("new loan", ok=False)
        say(f"feed: {loan} not opened: {r.status_code} {r.text[:200]}")
        self.fed = n  # a refused id is not tried again
        return None

    # ---- the loop

    async def step(self) -> None:
        day = self.day()
        await self.follow_outbox()
        for b in list(self.borrowers.values()):
            if b.busy or b.closed or not b.has_due(day - b.born):
                continue
            b.busy = True
            t = asyncio.create_task(self.act(b, day - b.born))
            self.pending.add(t)
            t.add_done_callback(self.pending.discard)

    async def run(self, stop: asyncio.Event, until: float | None = None) -> None:
        last_refresh = last_tasks = -(10**9.0)
        last_stats = time.monotonic()
        while not stop.is_set() and (until is None or time.monotonic() < until):
            now = time.monotonic()
            try:
                if now - last_refresh >= self.day_seconds:
                    last_refresh = now
                    await self.refresh()
                await self.step()
                if now - last_tasks >= self.day_seconds:
                    last_tasks = now
                    await self.work_tasks()
                day = self.day()
                if self.opts.feed and day - self.last_feed >= self.opts.feed_days and self.open_count < self.opts.max_open:
                    self.last_feed = day
                    if await self.feed():
                        self.open_count += 1
            except httpx.HTTPError as exc:
                say(f"the stack did not answer ({type(exc).__name__}: {exc}); trying again")
                await asyncio.sleep(2)
            if time.monotonic() - last_stats > 60:
                last_stats = time.monotonic()
                say("so far: " + ", ".join(f"{k} {v}" for k, v in sorted(self.stats.items())))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.opts.tick)
        if self.pending:
            await asyncio.wait(self.pending, timeout=30)


@dataclass
class _Result:
    outcome: str | None
    status: str | None
    schedule: list


def _sim_schedule(result: Any, b: DemoBorrower, day: int, today: dt.date) -> list:
    """A plan's schedule (the API's answer, real dates) as the borrower keeps it: in demo days from today."""
    if not isinstance(result, dict) or "schedule" not in result:
        return []
    out = []
    for due, amount in result["schedule"]:
        offset = (dt.date.fromisoformat(due) - today).days
        out.append((b.today(day + max(0, offset)), amount))
    return out


def _json(model: Any) -> dict:
    return {k: v for k, v in model.model_dump(mode="json").items() if v is not None and k not in ("actor", "approved")}


def _short(result: Any) -> str:
    if isinstance(result, dict):
        msg = result.get("message") or result.get("result") or result.get("error") or ""
        return f" ({str(msg)[:120]})" if msg else ""
    return ""


def _zone(tz: str):  # noqa: ANN202
    from domain.dates import zone

    return zone(tz)


# ---------------------------------------------------------------------------- the stack's addresses and operators


def endpoints() -> Endpoints:
    """The running stack's API and gateway, and the demo operators' tokens (console.demo's, and demo-legal's and
    demo-compliance's, made here once)."""
    from access.devadmin import var_dir
    from access.operators import Operators
    from db.engine import make_engine
    from db.repo import Repo
    from infra.config import StackSettings, load
    from infra.private import write_secret

    cfg = load(StackSettings)
    repo = Repo(make_engine())
    store = Operators(repo)
    tokens = {}
    for name, roles in OPERATORS.items():
        op = store.ensure(name, roles)
        path = var_dir() / f"{name}-token"
        current = path.read_text().strip() if path.exists() else ""
        if not current or store.authenticate(current) is None:
            write_secret(path, store.issue_token(op.id, days=30).token + "\n")
    for name in ("demo-collector", "demo-supervisor", "demo-viewer", "demo-payments", *OPERATORS):
        path = var_dir() / f"{name}-token"
        if not path.exists():
            raise SystemExit(f"life: {path} is missing: run `python -m console.demo` first (make demo does)")
        tokens[name] = path.read_text().strip()
    from devstack.stack import gateway_port

    return Endpoints(
        api=f"http://127.0.0.1:{cfg.api_port}",
        gateway=f"http://127.0.0.1:{gateway_port(cfg)}",
        gateway_key=cfg.gateway_api_key,
        tokens=tokens,
    )


# ---------------------------------------------------------------------------- start / stop


def _var() -> Path:
    from infra.config import var_dir

    return var_dir()


def pid_file() -> Path:
    return _var() / "life.pid"


def running_pid() -> int | None:
    from devstack.stack import alive, cmdline

    try:
        pid = int(pid_file().read_text().strip())
    except (OSError, ValueError):
        return None
    cmd = cmdline(pid)
    return pid if alive(pid) and (cmd is None or "devstack.life" in cmd) else None


async def _run(opts: Options) -> int:
    from devstack.stack import running_stack

    if running_stack() is None:
        say("no local stack is running (python -m devstack.stack start, or make demo)")
        return 1
    life = Life(endpoints(), opts)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async def stack_watch() -> None:  # ends the life when the stack is gone (stopped without make down)
        gone = 0
        while not stop.is_set():
            gone = gone + 1 if running_stack() is None else 0
            if gone >= 3:
                say("the stack has stopped; so does the life")
                stop.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 5)

    say(
        f"started: borrowers of policy {opts.policy} (a day lasts {life.day_seconds}s), the collector, the court"
        + (f"; a new loan every {opts.feed_days:g} demo days while under {opts.max_open} are open" if opts.feed else "")
    )
    watcher = asyncio.create_task(stack_watch())
    try:
        await life.run(stop)
    finally:
        watcher.cancel()
        say("stopped; " + ", ".join(f"{k} {v}" for k, v in sorted(life.stats.items())))
        (_var() / "life.json").write_text(json.dumps(dict(life.stats), indent=2, sort_keys=True))
        await life.aclose()
    return 0


def start(argv: list[str]) -> int:
    pid = running_pid()
    if pid is not None:
        say(f"already running (pid {pid})")
        return 0
    logs = _var() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / "life.log"
    with log.open("ab") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "devstack.life", "run", *argv],
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
    pid_file().write_text(f"{proc.pid}\n")
    time.sleep(1.5)
    if proc.poll() is not None:
        say(f"did not start (exit code {proc.returncode}); see {log}")
        pid_file().unlink(missing_ok=True)
        return 1
    say(f"running in the background (pid {proc.pid}, log {log}): simulated borrowers, the collector and the court")
    return 0


def stop() -> int:
    pid = running_pid()
    if pid is None:
        pid_file().unlink(missing_ok=True)
        return 0
    os.kill(pid, signal.SIGTERM)
    from devstack.stack import alive

    for _ in range(150):
        if not alive(pid):
            break
        time.sleep(0.2)
    else:
        os.kill(pid, signal.SIGKILL)
    pid_file().unlink(missing_ok=True)
    say(f"stopped (pid {pid})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.life", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["start", "stop", "run", "status"])
    parser.add_argument("--seed", type=int, default=Options.seed)
    parser.add_argument("--feed-days", type=float, default=Options.feed_days, help="a new loan every N demo days")
    parser.add_argument("--max-open", type=int, default=Options.max_open, help="no new loan while this many are open")
    parser.add_argument("--no-feed", action="store_true", help="no new loans: only the cases already open")
    args = parser.parse_args(argv)
    if args.command == "start":
        return start([a for a in (argv or sys.argv[1:]) if a != "start"])
    if args.command == "stop":
        return stop()
    if args.command == "status":
        pid = running_pid()
        print(f"life: running (pid {pid})" if pid else "life: not running")
        return 0 if pid else 3
    opts = Options(seed=args.seed, feed_days=args.feed_days, max_open=args.max_open, feed=not args.no_feed)
    return asyncio.run(_run(opts))


if __name__ == "__main__":
    sys.exit(main())
