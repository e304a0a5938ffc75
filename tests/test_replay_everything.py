"""Replay as a property of the whole system: make demo's portfolio driven to its end on the time-skipping server,
then every history on the server, open and closed, every run, replayed with today's workflow code."""

from __future__ import annotations

from datetime import timedelta

from app.replay import replay_every_history
from devstack import demo
from domain.policy import load_policy
from tests.conftest import TASK_QUEUE, terminate
from workflows.case import CollectionCase


async def test_the_demo_portfolio_to_its_end_replays_whole(env, worker, repo):
    policy = load_policy("demo")
    now = await env.get_current_time()
    inputs = demo.portfolio(policy, now)
    demo.seed_records(inputs, repo)
    handles = {
        c.loan_id: await env.client.start_workflow(CollectionCase.run, c, id=c.workflow_id, task_queue=TASK_QUEUE) for c in inputs
    }
    await env.sleep(timedelta(seconds=policy.day_seconds * 2))  # the first steps
    desk = demo.use_desk(repo)  # the demo's human decisions are a named operator's
    assert desk is not None
    try:
        results = await demo.updates(env.client, inputs, handles, set(handles), now, 0)
    finally:
        demo._DESK = None  # the rest of the suite sends as before
    assert sum(r.ok for r in results) >= 5, [(r.loan_id, r.what, r.message) for r in results]
    signalled = [r for r in results if r.what.startswith("signalled")]
    assert len(signalled) == 2 and all(r.ok for r in signalled), signalled
    await env.sleep(timedelta(seconds=1))
    st = await handles[signalled[0].loan_id].query(CollectionCase.status)
    kinds = {e.kind: e.actor for e in st.events}
    assert kinds.get("payment", "").startswith("system:") and kinds.get("input_rejected", "").startswith("system:"), kinds
    for r in results:  # every human decision has its actor; the bank's payment feed is a system
        if r.ok and not r.what.startswith(("partial payment", "full payment", "signalled")):
            st = await handles[r.loan_id].query(CollectionCase.status)
            actors = {e.actor for e in st.events if e.actor}
            assert any(a.startswith(f"{desk}:") for a in actors), (r.loan_id, r.what, [(e.kind, e.actor) for e in st.events[-6:]])
    # past the write-off DPD of the latest case, in slices the test server answers within its call deadline
    for _ in range(10):
        await env.sleep(timedelta(seconds=policy.day_seconds * (policy.write_off_dpd + 30) / 10))
    statuses = [await h.query(CollectionCase.status) for h in handles.values()]
    late = [s for s in statuses if s.status == "closed" or s.stage in ("litigation", "enforcement", "agency")]
    assert len(late) >= len(inputs) * 3 // 4, sorted((s.loan_id, s.stage, s.status) for s in statuses)
    # the borrower is told before an agency is given the case: the notice letter went out, and before the placement
    placed = [s for s in statuses if "agency_placement" in s.steps_done]
    assert placed, sorted((s.loan_id, s.stage) for s in statuses)
    for s in placed:
        rows = {r.step: r for r in repo.contacts(loan_id=s.loan_id)}
        notice = rows.get("agency_notice")
        assert notice is not None and notice.status == "delivered", (s.loan_id, notice and notice.reason)
        assert s.steps_done.index("agency_notice") < s.steps_done.index("agency_placement")
    count, failures = await replay_every_history(env.client)
    assert count >= len(inputs)
    assert not failures, "\n".join(failures)
    await terminate(handles.values())
