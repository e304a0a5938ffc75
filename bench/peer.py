"""The peer baseline: a case's first step as a team would write it by following the Temporal Python samples.

The same work as CollectionCase's reminder notice: the contact gate (domain.compliance.decide over the
borrower's holds and contacts, in the same GateStore transaction), then an SMS, an email and a letter
rendered from the same templates and sent to the same sandbox gateway over httpx, with the same rows
written to the same database (contact rows, their audit events, the case projection).

Written the samples' way, not ours:
- regular activities on the task queue (not local activities), one activity per send, run in parallel
  with asyncio.gather after the gate;
- dataclass inputs and results, the SDK's default data converter (no pydantic, no encryption codec);
- the SDK's default workflow sandbox (Worker(...) with no runner given), activities imported through
  `workflow.unsafe.imports_passed_through()`;
- the workflow knows only its one step: no policy ladder, no domain Case, no search attributes,
  no audit of its own decisions beyond what the activities write.

After the step it waits on a timer for its next step, as a case does, so that both leave a live workflow.
`python -m bench` runs it on a worker process of its own (bench/worker.py, `kind: peer`).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from activities import messages
    from activities.gateway import GatewayClient, GatewayRejected
    from db.records import CaseRecord, ContactFinish, ContactStart, EventRecord
    from db.repo import GateRequest, GateStore, Repo
    from domain import compliance
    from domain.dates import local_date
    from domain.money import parse_amount
    from domain.policy import ContactRules

STEP = "reminder_notice"
ACTIONS = ("sms", "email", "letter")


@dataclass
class PeerLoan:
    loan_id: str
    borrower_id: str
    currency: str
    principal: int  # minor units
    interest: int
    fees: int
    due_date: str  # ISO date: the default converter carries no `date`
    timezone: str
    next_step: str | None = None
    next_dpd: int | None = None


@dataclass
class GateInput:
    workflow_id: str
    run_id: str
    loan_id: str
    borrower_id: str
    step: str
    actions: list[str]
    now: str  # ISO instant (the workflow's clock)


@dataclass
class SendInput:
    workflow_id: str
    run_id: str
    loan_id: str
    borrower_id: str
    step: str
    action: str
    dpd: int
    currency: str
    outstanding: dict[str, str]  # principal, interest, fees, total as decimal strings
    due_date: str
    next_step: str | None = None
    next_dpd: int | None = None


@dataclass
class SendResult:
    action: str
    status: str
    reference: str | None = None
    reason: str | None = None


@dataclass
class PeerResult:
    allowed: list[str] = field(default_factory=list)
    sent: list[SendResult] = field(default_factory=list)


def decimal(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d}"


def workflow_id(loan_id: str) -> str:
    return f"peer-{loan_id}"


class PeerActivities:
    """The activities, with their dependencies (database, HTTP client, contact rules) given at worker start."""

    def __init__(self, repo: Repo, gateway: GatewayClient, rules: ContactRules, day_seconds: int = 86400) -> None:
        self.repo = repo
        self.gate = GateStore(repo)
        self.gateway = gateway
        self.rules = rules
        self.day_seconds = day_seconds

    @activity.defn(name="peer_check_contacts")
    async def check_contacts(self, inp: GateInput) -> list[str]:
        now = datetime.fromisoformat(inp.now)

        def decide(q: GateRequest, tz: str, holds, history, prefs=None):  # noqa: ANN202
            return compliance.decide(
                action=q.action,
                channel=q.channel,
                loan_id=q.loan_id,
                now=now,
                tz=tz,
                rules=self.rules,
                holds=holds,
                history=history,
                bundle=f"{q.workflow_id}:{q.step}",
                day_seconds=self.day_seconds,
                prefs=prefs,  # the borrower's own contact preferences, as the case's gate applies them
            )

        requests = [
            GateRequest(
                idempotency_key=f"{inp.workflow_id}:{inp.run_id}:{inp.step}:{a}",
                workflow_id=inp.workflow_id,
                loan_id=inp.loan_id,
                step=inp.step,
                action=a,
                channel=a,
            )
            for a in inp.actions
        ]
        decisions = await asyncio.to_thread(self.gate.check, inp.borrower_id, now, requests, decide)
        activity.logger.info("gate decided for %s", inp.loan_id)
        return [a for a, d in zip(inp.actions, decisions, strict=True) if d.allowed]

    async def _send(self, inp: SendInput) -> SendResult:
        key = f"{inp.workflow_id}:{inp.run_id}:{inp.step}:{inp.action}"
        borrower, _, row = await asyncio.to_thread(
            self.repo.begin_send,
            ContactStart(
                idempotency_key=key,
                workflow_id=inp.workflow_id,
                loan_id=inp.loan_id,
                borrower_id=inp.borrower_id,
                step=inp.step,
                channel=inp.action,
                action=inp.action,
            ),
            frozen=lambda _b: json.dumps(asdict(inp)),
        )
        if row.status != "pending":  # a retry after the send finished
            return SendResult(inp.action, row.status, row.reference, row.reason)
        if borrower is None:
            return await self._finish(inp, key, SendResult(inp.action, "failed", reason="borrower not found"))
        today = local_date(datetime.now(UTC), borrower.timezone)
        req = SimpleNamespace(  # what the templates read
            action=inp.action,
            letter=STEP if inp.action == "letter" else None,
            loan_id=inp.loan_id,
            dpd=inp.dpd,
            currency=inp.currency,
            outstanding_minor={k: parse_amount(v, inp.currency, k, allow_zero=True) for k, v in inp.outstanding.items()},
            due_date=date.fromisoformat(inp.due_date),
            next_step=inp.next_step,
            next_dpd=inp.next_dpd,
            notice_days=14,  # the reminder step sends no bureau notice; the templates' context names it anyway
            time_barred=False,
            reply_keywords={},
        )
        body = messages.body(inp.action, req, borrower, today)  # type: ignore[arg-type]
        try:
            resp = await self.gateway.send(inp.action, body, key)  # 5xx and timeouts raise: the activity retries
        except GatewayRejected as exc:
            return await self._finish(inp, key, SendResult(inp.action, "failed", reason=str(exc)))
        return await self._finish(inp, key, SendResult(inp.action, "delivered", reference=resp.get("id")))

    async def _finish(self, inp: SendInput, key: str, r: SendResult) -> SendResult:
        await asyncio.to_thread(
            self.repo.finish_send,
            contact=ContactFinish(idempotency_key=key, status=r.status, reason=r.reason, reference=r.reference),
            event=EventRecord(
                workflow_id=inp.workflow_id,
                loan_id=inp.loan_id,
                kind=f"contact_{r.status}",
                detail=f"{inp.step}/{inp.action} via {inp.action}" + (f" ({r.reason})" if r.reason else ""),
                cause={"step": inp.step, "action": inp.action, "key": key, "dpd": inp.dpd},
                dedupe_key=f"contact:{key}",
            ),
            case=CaseRecord(
                workflow_id=inp.workflow_id,
                loan_id=inp.loan_id,
                currency=inp.currency,
                stage="reminder",
                outstanding=parse_amount(inp.outstanding["total"], inp.currency, allow_zero=True),
            ),
            events=[],
        )
        activity.logger.info("%s %s for %s", inp.action, r.status, inp.loan_id)
        return r

    @activity.defn(name="peer_send_sms")
    async def send_sms(self, inp: SendInput) -> SendResult:
        return await self._send(inp)

    @activity.defn(name="peer_send_email")
    async def send_email(self, inp: SendInput) -> SendResult:
        return await self._send(inp)

    @activity.defn(name="peer_send_letter")
    async def send_letter(self, inp: SendInput) -> SendResult:
        return await self._send(inp)

    def all(self) -> list:
        return [self.check_contacts, self.send_sms, self.send_email, self.send_letter]


SENDS = {"sms": PeerActivities.send_sms, "email": PeerActivities.send_email, "letter": PeerActivities.send_letter}


@workflow.defn(name="PeerReminder")
class PeerReminder:
    @workflow.run
    async def run(self, loan: PeerLoan) -> PeerResult:
        info, now = workflow.info(), workflow.now()
        due = date.fromisoformat(loan.due_date)
        dpd = (local_date(now, loan.timezone) - due).days
        allowed = await workflow.execute_activity_method(
            PeerActivities.check_contacts,
            GateInput(info.workflow_id, info.run_id, loan.loan_id, loan.borrower_id, STEP, list(ACTIONS), now.isoformat()),
            start_to_close_timeout=timedelta(seconds=30),
        )
        total = loan.principal + loan.interest + loan.fees
        outstanding = {
            "principal": decimal(loan.principal),
            "interest": decimal(loan.interest),
            "fees": decimal(loan.fees),
            "total": decimal(total),
        }
        sent = await asyncio.gather(
            *(
                workflow.execute_activity_method(
                    SENDS[action],
                    SendInput(
                        info.workflow_id,
                        info.run_id,
                        loan.loan_id,
                        loan.borrower_id,
                        STEP,
                        action,
                        dpd,
                        loan.currency,
                        outstanding,
                        loan.due_date,
                        loan.next_step,
                        loan.next_dpd,
                    ),
                    start_to_close_timeout=timedelta(seconds=30),
                )
                for action in allowed
            )
        )
        if loan.next_dpd is not None:  # wait for the next step, as a case does
            await workflow.sleep(timedelta(days=max(1, loan.next_dpd - dpd)))
        return PeerResult(allowed, list(sent))


def peer_loan(inp) -> PeerLoan:
    """A case's input (domain.models.CaseInput) as the peer's dataclass, with its policy's next step after the reminder."""
    nxt = inp.policy.steps[1] if len(inp.policy.steps) > 1 else None
    return PeerLoan(
        loan_id=inp.loan_id,
        borrower_id=inp.borrower_id,
        currency=inp.currency,
        principal=inp.principal,
        interest=inp.interest,
        fees=inp.fees,
        due_date=inp.due_date.isoformat(),
        timezone=inp.timezone,
        next_step=(nxt.title or nxt.key) if nxt else None,
        next_dpd=nxt.dpd if nxt else None,
    )
