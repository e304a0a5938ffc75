"""Record workflow histories for the replay test.

    python -m tests.record_histories                      # every scenario: tests/histories/<scenario>-<key id>-<n>.json
    python -m tests.record_histories borrower_closure     # only the named ones (keep the old histories as they are)
    python -m tests.record_histories --tag=at_start       # beside the old ones: <scenario>_at_start-<key id>-<n>.json

Run it when a workflow change is meant to be visible to new cases only, after guarding the
change with workflow.patched(...): the old histories must still replay, the new ones join them.
Payloads are encrypted with the suite's fixed test key (tests/conftest.py), whose id names the files.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from temporalio.testing import WorkflowEnvironment

from activities.case import CaseActivities
from activities.gateway import GatewayClient, GatewaySettings
from db.engine import make_engine, migrate
from db.repo import Repo
from devstack.binaries import find
from domain.actor import Actor
from domain.models import (
    ApprovalDecisionIn,
    CloseIn,
    HoldIn,
    OutcomeIn,
    PaymentIn,
    PlanIn,
    PromiseIn,
    ReleaseIn,
    ReversalIn,
    WriteOffConfirmIn,
)
from domain.policy import parse_policy
from sandbox.gateway import running_gateway
from tests.conftest import DATA_CONVERTER, LADDER_POLICY, TASK_QUEUE, TEST_KEY_ID, Cases, register_search_attributes, today_in
from tests.test_ladder import JUDGMENT_DATES
from worker import build_worker
from workflows.case import CollectionCase as W

OUT = Path(__file__).parent / "histories"


async def ladder(cases: Cases):
    h = await cases.start(dpd=1, loan_id="R-LADDER")
    await cases.advance(days=130)
    await h.execute_update(W.record_outcome, OutcomeIn(kind="court", outcome="judgment", **JUDGMENT_DATES))
    await cases.advance(days=30)
    total = (await cases.status(h)).outstanding["total"]
    await h.execute_update(W.record_outcome, OutcomeIn(kind="court", outcome="enforcement_result", amount=total))
    return h


async def plans_and_promises(cases: Cases):
    h = await cases.start(dpd=1, loan_id="R-PLANS")
    today = today_in(await cases.now())
    await h.execute_update(W.record_payment, PaymentIn(payment_id="P1", amount="100.00", currency="CNY"))
    await h.execute_update(W.record_payment, PaymentIn(payment_id="P1", amount="100.00", currency="CNY"))
    await h.execute_update(W.promise_to_pay, PromiseIn(amount="500.00", date=today + timedelta(days=5)))
    await cases.advance(days=10)
    today = today_in(await cases.now())
    r = await h.execute_update(W.agree_plan, PlanIn(kind="instalments", instalments=3, first_due=today + timedelta(days=3)))
    await h.execute_update(W.record_payment, PaymentIn(payment_id="I1", amount=r.schedule[0][1], currency="CNY"))
    await cases.advance(days=45)
    await h.execute_update(W.place_hold, HoldIn(kind="dispute"))
    await cases.advance(days=5)
    await h.execute_update(W.release_hold, ReleaseIn(kind="dispute"))
    await cases.advance(days=40)
    await h.execute_update(W.record_outcome, OutcomeIn(kind="visit", outcome="met_borrower"))
    await h.execute_update(W.place_hold, HoldIn(kind="bankruptcy"))
    return h


async def continued(cases: Cases):
    h = await cases.start(dpd=75, loan_id="R-CONTINUED", history_limit=50)
    for i in range(5):
        await h.execute_update(W.record_payment, PaymentIn(payment_id=f"C{i}", amount="10.00", currency="CNY"))
        await cases.advance(days=10)
    await h.execute_update(W.place_hold, HoldIn(kind="deceased"))
    return h


async def borrower_closure(cases: Cases):
    """The borrower recorded deceased on another loan: this case closes at its next step (patched)."""
    other = await cases.start(dpd=1, loan_id="R-CLOSURE-A", borrower_id="R-CLOSURE-B")
    h = await cases.start(dpd=1, loan_id="R-CLOSURE", borrower_id="R-CLOSURE-B")
    await other.execute_update(W.place_hold, HoldIn(kind="deceased"))
    await cases.advance(days=10)
    return h


async def window_retry(cases: Cases, gateway):
    """A reminder allowed at 20:58 local meets a gateway outage that lasts past 21:00, when the contact window
    closes; the outage ends at 21:28. Recorded before sends re-checked the window on every attempt: the history
    holds the local activity's backoff markers and timers of a retry that crossed the window's close."""
    data = LADDER_POLICY.model_dump(mode="json")
    data["contact"].update(window_start="08:00", window_end="21:00", public_holidays=False, weekends=True)
    policy = parse_policy(data)
    now = await cases.now()
    local = now.astimezone(ZoneInfo("Asia/Shanghai"))
    target = local.replace(hour=20, minute=58, second=0, microsecond=0)
    if target <= local:
        target += timedelta(days=1)
    await cases.env.sleep(target - local)
    gateway.set_faults(error_rate=1.0)
    h = await cases.start(dpd=1, loan_id="R-WINDOW", policy=policy)
    await cases.advance(hours=0.5)
    gateway.clear_faults()
    await cases.advance(hours=12)
    total = (await cases.status(h)).outstanding["total"]
    await h.execute_update(W.record_payment, PaymentIn(payment_id="W1", amount=total, currency="CNY"))
    return h


async def write_off(cases: Cases):
    """A lawsuit filed and no judgment when the write-off DPD comes (recorded while write-off closed the case;
    the case now stays open with a write-off proposal: versioning.WRITE_OFF_PROPOSAL)."""
    h = await cases.start(dpd=1, loan_id="R-WRITEOFF")
    await cases.advance(days=200)
    await h.execute_update(W.record_payment, PaymentIn(payment_id="WO1", amount="100.00", currency="CNY"))
    await cases.advance(days=530)
    if (await cases.status(h)).status != "closed":  # today the case stays open: an operator ends the recording
        await h.execute_update(W.close_case, CloseIn(outcome="error", reason="end of the recording"))
    return h


async def write_off_proposal(cases: Cases):
    """Write-off proposed and kept open (账销案存), confirmed, a payment applied then reversed, closed by an operator."""
    h = await cases.start(dpd=700, loan_id="R-WRITEOFF-2")
    await cases.advance(days=25)
    await h.execute_update(W.confirm_write_off, WriteOffConfirmIn(approver="Chen Jie", reference="WO-1"))
    await h.execute_update(W.record_payment, PaymentIn(payment_id="WO2-P1", amount="500.00", currency="CNY"))
    await cases.advance(days=3)
    await h.execute_update(W.reverse_payment, ReversalIn(payment_id="WO2-P1", reason="returned transfer"))
    await cases.advance(days=3)
    await h.execute_update(W.close_case, CloseIn(outcome="uncollectable", reason="borrower cannot be traced"))
    return h


async def legal_clocks(cases: Cases):
    """The legal clocks (versioning.LEGAL_CLOCKS): a payment restarts the limitation, the lawsuit is filed, a judgment
    comes without its dates and then with them, and enforcement follows its performance period."""
    h = await cases.start(dpd=110, loan_id="R-LEGAL")
    await h.execute_update(W.record_payment, PaymentIn(payment_id="L1", amount="100.00", currency="CNY"))
    await cases.advance(days=40)
    await h.execute_update(W.record_outcome, OutcomeIn(kind="court", outcome="judgment"))
    await cases.advance(days=3)
    await h.execute_update(W.record_outcome, OutcomeIn(kind="court", outcome="judgment", **JUDGMENT_DATES))
    await cases.advance(days=3)
    total = (await cases.status(h)).outstanding["total"]
    await h.execute_update(W.record_outcome, OutcomeIn(kind="court", outcome="enforcement_result", amount=total))
    return h


async def four_eyes(cases: Cases):
    """Four-eyes (versioning.FOUR_EYES): a supervisor's 50% interest waiver waits as a proposal while the ladder goes on;
    a second supervisor approves it and the plan pauses the case; it is paid in full. Actors are opaque ids."""
    maker = Actor(operator_id="op-00000000000a", role="supervisor")
    checker = Actor(operator_id="op-00000000000b", role="supervisor")
    h = await cases.start(dpd=10, loan_id="R-FOUR-EYES")
    pay_by = today_in(await cases.now()) + timedelta(days=10)
    await h.execute_update(W.agree_plan, PlanIn(kind="interest_waiver", waiver_percent=50, pay_by=pay_by, actor=maker))
    await cases.advance(days=1)
    await h.execute_update(W.decide_approval, ApprovalDecisionIn(decision="approve", note="hardship file checked", actor=checker))
    await cases.advance(days=1)
    total = (await cases.status(h)).outstanding["total"]
    await h.execute_update(W.record_payment, PaymentIn(payment_id="FE1", amount=total, currency="CNY"))
    return h


async def agent_tasks(cases: Cases):
    """Agent mode (issue 15): the first call a task, re-queued once when not worked in time, its outcome naming
    the task; the home visit a task with a slot, reported not at home; paid in full (the open task is none)."""
    from tests.test_tasks import agent_policy

    h = await cases.start(dpd=7, loan_id="R-AGENT", policy=agent_policy(), contact={"address": "上海市黄浦区南京东路1号"})
    await cases.advance(hours=9)
    call = (await cases.status(h)).awaiting
    await h.execute_update(W.record_outcome, OutcomeIn(kind="call", outcome="no_answer", task_id=call.task_id))
    await cases.advance(days=24)
    visit = (await cases.status(h)).awaiting
    await h.execute_update(W.record_outcome, OutcomeIn(kind="visit", outcome="not_home", task_id=visit.task_id))
    total = (await cases.status(h)).outstanding["total"]
    await h.execute_update(W.record_payment, PaymentIn(payment_id="AG1", amount=total, currency="CNY"))
    return h


SCENARIOS = (
    ladder,
    plans_and_promises,
    continued,
    borrower_closure,
    window_retry,
    legal_clocks,
    write_off,
    write_off_proposal,
    four_eyes,
    agent_tasks,
)


async def record(env: WorkflowEnvironment, cases: Cases, names: list[str], gateway=None, tag: str = "") -> None:
    for scenario in (s for s in SCENARIOS if not names or s.__name__ in names):
        h = await (scenario(cases, gateway) if "gateway" in inspect.signature(scenario).parameters else scenario(cases))
        await h.result()
        run_id, n = h.result_run_id, 0
        while run_id:  # follow the continue-as-new chain
            hist = await env.client.get_workflow_handle(h.id, run_id=run_id).fetch_history()
            path = OUT / f"{scenario.__name__}{'_' + tag if tag else ''}-{TEST_KEY_ID}-{n}.json"
            path.write_text(hist.to_json())
            print(f"{path.name}: {len(hist.events)} events")
            last = hist.events[-1]
            run_id = (
                last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
                if last.HasField("workflow_execution_continued_as_new_event_attributes")
                else None
            )
            n += 1


async def main(names: list[str]) -> None:
    tags = [n.removeprefix("--tag=") for n in names if n.startswith("--tag=")]
    names = [n for n in names if not n.startswith("--tag=")]
    unknown = set(names) - {s.__name__ for s in SCENARIOS}
    if unknown:
        raise SystemExit(f"unknown scenarios {sorted(unknown)}; known: {[s.__name__ for s in SCENARIOS]}")
    OUT.mkdir(exist_ok=True)
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=DATA_CONVERTER, test_server_existing_path=find("temporal-test-server")
    )
    try:
        await register_search_attributes(env.client)
        with tempfile.TemporaryDirectory() as tmp, running_gateway(api_key="k") as gw:
            url = f"sqlite:///{tmp}/c.db"
            migrate(url)
            repo = Repo(make_engine(url))
            acts = CaseActivities(repo, GatewayClient(GatewaySettings(url=gw.url, api_key=gw.api_key)))
            async with build_worker(env.client, acts, task_queue=TASK_QUEUE):
                await record(env, Cases(env, repo), names, gw, tag=tags[0] if tags else "")
    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
