"""The comparison report: figures per policy side by side, from the system of record.

Everything is read back from the simulation's database, as a collections manager would read the
real one: the payments ledger, the contact attempts, the audit trail (the gate's refusals with
their rule) and the case projection. Written as `report.md` with PNG plots and `summary.json`
(the numbers), and printed as a rich table.
"""

from __future__ import annotations

import itertools
import json
from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text

from domain.risk import CHINESE, CLASSES, count_by_class
from sim.behaviour import PAGE_PREFIX

CONTACT_CHANNELS = ("sms", "email", "letter", "call", "visit", "law_firm")
BUCKETS = ("M1", "M2", "M3", "M3+")
ROLLS = (("M1", "M2", 31), ("M2", "M3", 61), ("M3", "M3+", 91))
CURED = ("paid", "settled")
# Assumed unit costs in CNY, for an order of magnitude only: a bank puts its own here.
UNIT_COST = {
    "sms": 0.05,
    "email": 0.01,
    "letter": 8,
    "call": 3,
    "visit": 150,
    "law_firm": 300,
    "bureau_notice": 8,
    "bureau_report": 1,
    "agency_place": 50,
    "lawsuit": 2500,
    "payment_order": 800,
    "enforcement": 1500,
}
ARMS = ("champion", "challenger")
# a borrower's visit to their page costs the one-time code's SMS (transactional, not a collection contact)
CODE_COST = 0.05


def _bucket(dpd: int) -> str:
    return "M1" if dpd <= 30 else "M2" if dpd <= 60 else "M3" if dpd <= 90 else "M3+"


PLOT_BUCKETS = ("M1", "M2", "M3", "M4-M6", "M7+")


def _plot_bucket(dpd: int) -> str:
    """The DPD plot splits M3+ in two (91-180, 181 and over): old debt is most of a year's book."""
    return _bucket(dpd) if dpd <= 90 else "M4-M6" if dpd <= 180 else "M7+"


# _plot_bucket as DPD ranges
PLOT_RANGES = (("M1", -(10**9), 30), ("M2", 31, 60), ("M3", 61, 90), ("M4-M6", 91, 180), ("M7+", 181, 10**9))


def _aware(t: Any) -> datetime | None:
    if t is None:
        return None
    if isinstance(t, str):
        t = datetime.fromisoformat(t)
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _cny(minor: int) -> str:
    sign = "-" if minor < 0 else ""
    minor = abs(minor)
    return f"{sign}{minor // 100:,}.{minor % 100:02d}"


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


# ------------------------------------------------------------------------------------------ reading


def read(engine) -> dict[str, list]:
    with engine.connect() as conn:
        q = lambda sql: conn.execute(text(sql)).all()  # noqa: E731
        return {
            "payments": q(
                "SELECT payment_id, loan_id, amount, paid_at FROM payments WHERE status = 'applied' "
                "ORDER BY loan_id, paid_at, payment_id"
            ),
            "contacts": q(
                "SELECT loan_id, step, channel, action, status, outcome, at FROM contact_attempts ORDER BY loan_id, at, action"
            ),
            # the contact gate's refusals carry their rule in `cause`; the legal clocks' (the case's own) in `detail`
            "refusals": q(
                "SELECT loan_id, json_extract(cause, '$.rule') AS rule, count(*) AS n FROM case_events "
                "WHERE kind = 'contact_refused' GROUP BY loan_id, rule ORDER BY loan_id, rule"
            ),
            "legal_refusals": q("SELECT loan_id, detail FROM case_events WHERE kind = 'legal_refused' ORDER BY loan_id, id"),
            "events": q(
                "SELECT loan_id, kind, detail, at FROM case_events WHERE kind IN ('promise', 'promise_kept', "
                "'promise_broken', 'plan_agreed', 'plan_completed', 'plan_broken', 'hold_placed') "
                "ORDER BY loan_id, id"
            ),
            "cases": q("SELECT loan_id, status, outcome, closed_at, outstanding, total_paid FROM cases ORDER BY loan_id"),
        }


# ------------------------------------------------------------------------------------------ figures


def compute(
    loans,
    policies,
    data: dict,
    checkpoints: list[datetime],
    days: int,
    recoveries: dict[str, list] | None = None,
    sessions: dict[str, int] | None = None,
) -> dict:
    """Each arm's figures (`arms`) and its day-by-day series for the plots (`series`), from what the run wrote.
    `sessions`: per arm, the borrowers' visits to their page that asked the case for something (each one code)."""
    arm_of = {ln.loan_id: ln.arm for ln in loans}

    def day_of(t: datetime) -> int:
        return max(0, bisect_right(checkpoints, t) - 1)

    timeline = _Timeline.of(data, day_of)
    contacts = _Contacts.of(data["contacts"], arm_of)
    payments, missing = _ledger(data, arm_of, recoveries, checkpoints)
    money = _Recovered.of(payments, arm_of, contacts, day_of, days)
    refusals = _refusals(data, arm_of)
    events = _case_events(data["events"], arm_of)
    page = _self_service(data, arm_of, timeline)

    arms: dict[str, dict] = {}
    series: dict[str, dict] = {}
    for arm in ARMS:
        mine = [ln for ln in loans if ln.arm == arm]
        n = len(mine)
        balance = sum(ln.total for ln in mine)
        outcomes = Counter(timeline.outcome.get(ln.loan_id, "open") for ln in mine)
        cured = sum(outcomes[o] for o in CURED)
        m1 = [ln for ln in mine if ln.start_dpd <= 30]
        n_contacts = sum(contacts.by_channel[arm].values())
        visits = (sessions or {}).get(arm, 0)
        cost = sum(UNIT_COST.get(k, 0) * v for k, v in contacts.actions[arm].items()) + CODE_COST * visits
        recovered = money.recovered[arm]
        rec_cny = recovered / 100
        arms[arm] = {
            "policy": policies[arm].name,
            "policy_version": policies[arm].version,
            "loans": n,
            "opening_balance": balance,
            "recovered": recovered,
            "recovery_rate": round(recovered / balance, 4) if balance else 0.0,
            "cure_rate": round(cured / n, 4) if n else 0.0,
            "cure_rate_m1": round(sum(1 for ln in m1 if timeline.outcome.get(ln.loan_id) in CURED) / len(m1), 4) if m1 else None,
            "outcomes": dict(sorted(outcomes.items())),
            "roll_rates": _roll_rates(mine, days, timeline),
            "contacts": n_contacts,
            "contacts_by_channel": dict(sorted(contacts.by_channel[arm].items())),
            "contacts_per_10k_cny": round(n_contacts / (rec_cny / 10_000), 2) if rec_cny else None,
            "refusals": sum(refusals[arm].values()),
            "refusals_by_rule": dict(sorted(refusals[arm].items())),
            "litigation": len(contacts.litigation[arm]),
            "enforcement": len(contacts.enforcement[arm]),
            "write_offs": outcomes.get("written_off", 0),
            "write_off_proposals": events[arm].get("write_off_proposed", 0),
            # cases still open at the end, by the regulation's five classes (domain/risk.py)
            "risk_classes": count_by_class(ln.start_dpd + days for ln in mine if timeline.close_day.get(ln.loan_id) is None),
            "recovered_by_step": dict(sorted(money.by_step[arm].items())),
            "case_events": dict(sorted(events[arm].items())),
            "actions": dict(sorted(contacts.actions[arm].items())),
            "missing_from_ledger": {"loans": missing[arm][0], "amount": missing[arm][1]},
            "self_service": {
                "page_visits": visits,
                "cures": page[arm]["cures"],
                "recovered": page[arm]["recovered"],
                "payments": page[arm]["payments"],
            },
            "estimated_cost_cny": round(cost, 2),
            "cost_per_cny_recovered": round(cost / rec_cny, 4) if rec_cny else None,
        }
        series[arm] = {
            "dpd": _dpd_distribution(mine, days, timeline),
            "recovered_cum": list(itertools.accumulate(money.daily[arm])),
        }
    return {"arms": arms, "series": series}


def _self_service(data: dict, arm_of: dict[str, str], timeline: _Timeline) -> dict[str, dict]:
    """Per arm, what borrowers did through their page's payment link (payment ids with PAGE_PREFIX): the payments,
    their amount, and the cures, cases paid or settled whose last payment was one of them."""
    out = {a: {"cures": 0, "recovered": 0, "payments": 0} for a in ARMS}
    last: dict[str, str] = {}
    for p in data["payments"]:  # in loan and time order
        last[p.loan_id] = p.payment_id
        arm = arm_of.get(p.loan_id)
        if arm is not None and p.payment_id.startswith(PAGE_PREFIX):
            out[arm]["payments"] += 1
            out[arm]["recovered"] += p.amount
    for loan_id, pid in last.items():
        arm = arm_of.get(loan_id)
        if arm is not None and timeline.outcome.get(loan_id) in CURED and pid.startswith(PAGE_PREFIX):
            out[arm]["cures"] += 1
    return out


@dataclass
class _Timeline:
    """When each case closed and how, and the repayment plans it was under, in simulated days."""

    close_day: dict[str, int]
    outcome: dict[str, str]
    plans: dict[str, list[list]]  # loan -> [[agreed day, ended day or None], ...]

    @classmethod
    def of(cls, data: dict, day_of: Callable[[datetime], int]) -> _Timeline:
        close_day: dict[str, int] = {}
        outcome: dict[str, str] = {}
        for r in data["cases"]:
            if r.status == "closed" and r.closed_at is not None:
                close_day[r.loan_id] = day_of(_aware(r.closed_at))
                outcome[r.loan_id] = r.outcome
        plans: dict[str, list[list]] = defaultdict(list)
        for r in data["events"]:
            if r.kind == "plan_agreed":
                plans[r.loan_id].append([day_of(_aware(r.at)), None])
            elif r.kind in ("plan_broken", "plan_completed") and plans[r.loan_id] and plans[r.loan_id][-1][1] is None:
                plans[r.loan_id][-1][1] = day_of(_aware(r.at))
        return cls(close_day, outcome, plans)

    def open_at(self, loan_id: str, day: int) -> bool:
        d = self.close_day.get(loan_id)
        return d is None or d >= day

    def on_plan(self, loan_id: str, day: int) -> bool:
        """Under a repayment plan not (yet) broken at the day's checkpoint: restructured, not rolling."""
        return any(agreed < day and (ended is None or ended >= day) for agreed, ended in self.plans.get(loan_id, ()))


@dataclass
class _Contacts:
    """The delivered contacts: by channel and action per arm, the loans that reached court, and each loan's steps in
    time order (to attribute its payments to a step)."""

    steps_of: dict[str, list[tuple[datetime, str]]]
    by_channel: dict[str, Counter]
    actions: dict[str, Counter]
    litigation: dict[str, set]
    enforcement: dict[str, set]

    @classmethod
    def of(cls, rows, arm_of: dict[str, str]) -> _Contacts:
        out = cls(
            defaultdict(list),
            {a: Counter() for a in ARMS},
            {a: Counter() for a in ARMS},
            {a: set() for a in ARMS},
            {a: set() for a in ARMS},
        )
        for r in rows:
            arm = arm_of.get(r.loan_id)
            if arm is None or r.status != "delivered" or r.step == "operator":
                continue  # an operator's recorded outcome of a visit or call already counted as that visit or call
            base = r.action.split("@", 1)[0]
            if r.at is not None:
                out.steps_of[r.loan_id].append((_aware(r.at), r.step))
            out.actions[arm][base] += 1
            if r.channel in CONTACT_CHANNELS and base not in ("bureau_notice",):
                out.by_channel[arm][r.channel] += 1
            if base in ("lawsuit", "payment_order"):
                out.litigation[arm].add(r.loan_id)
            if base == "enforcement":
                out.enforcement[arm].add(r.loan_id)
        return out


def _ledger(
    data: dict, arm_of: dict[str, str], recoveries: dict[str, list] | None, checkpoints: list[datetime]
) -> tuple[list[tuple[str, datetime, int]], dict[str, list[int]]]:
    """The payments, in loan and time order, and per arm what the ledger misses ([loans, amount]).

    The ledger should hold every payment; it is checked against what each case says it was paid. A payment missing
    from the ledger (there should be none) is counted at the time it was recorded, so the figures match the cases,
    and the report names the gap."""
    payments = [(p.loan_id, _aware(p.paid_at), p.amount) for p in data["payments"]]
    ledger: Counter = Counter()
    for loan_id, _, amount in payments:
        ledger[loan_id] += amount
    missing = {a: [0, 0] for a in ARMS}  # loans, amount
    for r in data["cases"]:
        gap = (r.total_paid or 0) - ledger.get(r.loan_id, 0)
        arm = arm_of.get(r.loan_id)
        if gap > 0 and arm is not None:
            missing[arm][0] += 1
            missing[arm][1] += gap
            when = [t for t, _ in (recoveries or {}).get(r.loan_id, [])]
            payments.append((r.loan_id, when[-1] if when else checkpoints[-1], gap))
    payments.sort(key=lambda p: (p[0], p[1]))
    return payments, missing


@dataclass
class _Recovered:
    """What each arm recovered: in all, by the step last in contact before each payment, and by simulated day."""

    recovered: dict[str, int]
    by_step: dict[str, Counter]
    daily: dict[str, list[int]]

    @classmethod
    def of(
        cls, payments, arm_of: dict[str, str], contacts: _Contacts, day_of: Callable[[datetime], int], days: int
    ) -> _Recovered:
        out = cls({a: 0 for a in ARMS}, {a: Counter() for a in ARMS}, {a: [0] * (days + 1) for a in ARMS})
        last_step_before = _last_step_finder(contacts.steps_of)
        for loan_id, at, amount in payments:
            arm = arm_of.get(loan_id)
            if arm is None:
                continue
            out.recovered[arm] += amount
            out.daily[arm][min(days, day_of(at))] += amount
            step = last_step_before(loan_id, at)
            out.by_step[arm][step if step is not None else "(before any step)"] += amount
        return out


def _last_step_finder(steps_of: dict[str, list[tuple[datetime, str]]]) -> Callable[[str, datetime], str | None]:
    times_of: dict[str, list[datetime] | None] = {}  # a loan's contact times, when in time order (bisect), else None

    def last_step_before(loan_id: str, at: datetime) -> str | None:
        """The step of the loan's last contact at or before `at` (in the rows' order)."""
        steps = steps_of.get(loan_id, [])
        if loan_id not in times_of:
            times = [t for t, _ in steps]
            times_of[loan_id] = times if all(a <= b for a, b in itertools.pairwise(times)) else None
        times = times_of[loan_id]
        if times is None:
            before = [s for t, s in steps if t <= at]
            return before[-1] if before else None
        i = bisect_right(times, at)
        return steps[i - 1][1] if i else None

    return last_step_before


def _refusals(data: dict, arm_of: dict[str, str]) -> dict[str, Counter]:
    """Per arm, the refusals by rule: the contact gate's (rule in the event's cause) and the legal clocks'."""
    refusals = {a: Counter() for a in ARMS}
    for r in data["refusals"]:
        arm = arm_of.get(r.loan_id)
        if arm is not None:
            refusals[arm][r.rule or "?"] += r.n
    for r in data["legal_refusals"]:  # "step/action: rule: reason"
        arm = arm_of.get(r.loan_id)
        parts = r.detail.split(": ")
        if arm is not None:
            refusals[arm][parts[1] if len(parts) > 2 else "legal"] += 1
    return refusals


def _case_events(rows, arm_of: dict[str, str]) -> dict[str, Counter]:
    """Per arm, the case events by kind (a hold by its kind: hold_bankruptcy, ...)."""
    events = {a: Counter() for a in ARMS}
    for r in rows:
        arm = arm_of.get(r.loan_id)
        if arm is None:
            continue
        if r.kind == "hold_placed":
            events[arm][f"hold_{r.detail.split()[0] if r.detail else '?'}"] += 1
        else:
            events[arm][r.kind] += 1
    return events


def _roll_rates(mine: list, days: int, timeline: _Timeline) -> dict[str, dict]:
    """Of the loans that were open in a bucket 30 days before its edge, those still open (and not on a plan) past it."""
    rolls = {}
    for frm, to, edge in ROLLS:
        base = [
            ln
            for ln in mine
            if ln.start_dpd < edge
            and edge - ln.start_dpd <= days
            and timeline.open_at(ln.loan_id, max(0, edge - 30 - ln.start_dpd))
        ]
        rolled = [
            ln
            for ln in base
            if timeline.open_at(ln.loan_id, edge - ln.start_dpd) and not timeline.on_plan(ln.loan_id, edge - ln.start_dpd)
        ]
        rolls[f"{frm}->{to}"] = {
            "from": len(base),
            "rolled": len(rolled),
            "rate": round(len(rolled) / len(base), 4) if base else None,
        }
    return rolls


def _dpd_distribution(mine: list, days: int, timeline: _Timeline) -> dict[str, list[int]]:
    """How many of the arm's loans were in each DPD bucket (or on a plan, cured, closed otherwise) at each day's
    checkpoint. Counted as runs of days (difference arrays): a loan changes bucket a few times a year, and a
    day-by-day walk of every loan was most of the report's time at 100,000 loans; a loan ever on a plan is walked."""
    diff = {b: [0] * (days + 2) for b in (*PLOT_BUCKETS, "plan", "cured", "closed_other")}

    def add(b: str, first: int, last: int) -> None:
        if first <= last:
            diff[b][first] += 1
            diff[b][last + 1] -= 1

    for ln in mine:
        d = timeline.close_day.get(ln.loan_id)
        last_open = days if d is None else min(d, days)
        if ln.loan_id in timeline.plans:
            for day in range(last_open + 1):
                add("plan" if timeline.on_plan(ln.loan_id, day) else _plot_bucket(ln.start_dpd + day), day, day)
        else:
            for b, lo, hi in PLOT_RANGES:
                add(b, max(0, lo - ln.start_dpd), min(last_open, hi - ln.start_dpd))
        add("cured" if timeline.outcome.get(ln.loan_id) in CURED else "closed_other", last_open + 1, days)
    return {b: list(itertools.accumulate(row[: days + 1])) for b, row in diff.items()}


# ------------------------------------------------------------------------------------------ output


def rows(summary: dict) -> list[tuple[str, str, str]]:
    """(metric, champion, challenger) for the side-by-side table."""
    c, h = summary["arms"]["champion"], summary["arms"]["challenger"]
    out: list[tuple[str, str, str]] = []

    def add(label: str, f) -> None:
        out.append((label, f(c), f(h)))

    def rate(v) -> str:
        return "n/a" if v is None else _pct(v)

    add("loans", lambda a: f"{a['loans']:,}")
    add("opening balance (CNY)", lambda a: _cny(a["opening_balance"]))
    add("recovered (CNY)", lambda a: _cny(a["recovered"]))
    add("recovery rate (of balance)", lambda a: rate(a["recovery_rate"]))
    add("cure rate (paid or settled)", lambda a: rate(a["cure_rate"]))
    add("cure rate, loans starting in M1", lambda a: rate(a["cure_rate_m1"]))
    for key in ("M1->M2", "M2->M3", "M3->M3+"):
        add(
            f"roll rate {key.replace('->', ' → ')}",
            lambda a, k=key: f"{rate(a['roll_rates'][k]['rate'])} ({a['roll_rates'][k]['rolled']}/{a['roll_rates'][k]['from']})",
        )
    add("contacts (sms, email, letter, call, visit, lawyer)", lambda a: f"{a['contacts']:,}")
    add(
        "contacts per 10,000 CNY recovered",
        lambda a: "n/a" if a["contacts_per_10k_cny"] is None else f"{a['contacts_per_10k_cny']:.2f}",
    )
    add("refusals (contact gate and legal clocks)", lambda a: f"{a['refusals']:,}")
    rules = sorted(set(c["refusals_by_rule"]) | set(h["refusals_by_rule"]))
    for rule in rules:
        add(f"  refused: {rule}", lambda a, r=rule: f"{a['refusals_by_rule'].get(r, 0):,}")
    add("cases reaching litigation", lambda a: f"{a['litigation']:,}")
    add("cases reaching enforcement", lambda a: f"{a['enforcement']:,}")
    add("write-offs", lambda a: f"{a['write_offs']:,}")
    add("write-off proposals (case stays open)", lambda a: f"{a.get('write_off_proposals', 0):,}")
    for cls in CLASSES:
        add(f"  open at the end, risk class {cls} ({CHINESE[cls]})", lambda a, k=cls: f"{a.get('risk_classes', {}).get(k, 0):,}")
    for o in sorted(set(c["outcomes"]) | set(h["outcomes"])):
        add(f"  outcome: {o}", lambda a, o=o: f"{a['outcomes'].get(o, 0):,}")
    for kind in ("promise", "promise_kept", "promise_broken", "plan_agreed", "plan_completed", "plan_broken"):
        add(kind.replace("_", " ") + ("s made" if kind == "promise" else ""), lambda a, k=kind: f"{a['case_events'].get(k, 0):,}")
    holds = sorted(k for k in set(c["case_events"]) | set(h["case_events"]) if k.startswith("hold_"))
    for k in holds:
        add(f"holds: {k.removeprefix('hold_')}", lambda a, k=k: f"{a['case_events'].get(k, 0):,}")
    add("self-service: page visits (one code each)", lambda a: f"{a['self_service']['page_visits']:,}")
    add("self-service: payments by the payment link", lambda a: f"{a['self_service']['payments']:,}")
    add("self-service: recovered (CNY)", lambda a: _cny(a["self_service"]["recovered"]))
    add("self-service cures (last payment by the link)", lambda a: f"{a['self_service']['cures']:,}")
    add("estimated contact and legal cost (CNY)*", lambda a: f"{a['estimated_cost_cny']:,.0f}")
    add(
        "cost per CNY recovered*",
        lambda a: "n/a" if a["cost_per_cny_recovered"] is None else f"{a['cost_per_cny_recovered']:.3f}",
    )
    return out


def step_rows(summary: dict, step_order: list[str]) -> list[tuple[str, str, str]]:
    c, h = summary["arms"]["champion"], summary["arms"]["challenger"]
    keys = [k for k in step_order if k in c["recovered_by_step"] or k in h["recovered_by_step"]]
    keys += sorted((set(c["recovered_by_step"]) | set(h["recovered_by_step"])) - set(keys))

    def cell(a, k):
        v = a["recovered_by_step"].get(k, 0)
        return f"{_cny(v)} ({_pct(v / a['recovered']) if a['recovered'] else '-'})"

    return [(k, cell(c, k), cell(h, k)) for k in keys]


def print_table(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    c, h = summary["arms"]["champion"], summary["arms"]["challenger"]
    console = Console(width=None if Console().is_terminal else 120)
    t = Table(
        title=f"Champion vs challenger: {summary['run']['loans']:,} loans, {summary['run']['days']} days, "
        f"seed {summary['run']['seed']}"
    )
    t.add_column("metric")
    t.add_column(f"champion: {c['policy']}", justify="right")
    t.add_column(f"challenger: {h['policy']}", justify="right")
    for r in rows(summary):
        t.add_row(*r)
    console.print(t)
    s = Table(title="Recovered by step (each payment credited to the last step before it)")
    s.add_column("step")
    s.add_column(f"champion: {c['policy']}", justify="right")
    s.add_column(f"challenger: {h['policy']}", justify="right")
    for r in step_rows(summary, summary["step_order"]):
        s.add_row(*r)
    console.print(s)
    console.print(
        "* assumed unit costs: " + ", ".join(f"{k} {v}" for k, v in UNIT_COST.items()) + f"; page visit's code {CODE_COST}"
    )


def _md_table(header: tuple[str, ...], body: list[tuple]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(str(x) for x in r) + " |" for r in body]
    return "\n".join(lines)


def plots(out: Path, summary: dict, series: dict, checkpoints: list[datetime]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = {a: f"{a}: {summary['arms'][a]['policy']}" for a in ARMS}
    days = list(range(len(series["champion"]["recovered_cum"])))
    files = []

    fig, axes = plt.subplots(1, 2, figsize=(13, 5.4), sharey=True)
    colors = {
        "M1": "#f6c85f",
        "M2": "#f08a4b",
        "M3": "#d1495b",
        "M4-M6": "#8c2155",
        "M7+": "#4a1038",
        "plan": "#7fb3d5",
        "cured": "#3a9d5d",
        "closed_other": "#9aa5b1",
    }
    labels = {"cured": "cured (paid / settled)", "closed_other": "closed otherwise", "plan": "open, on a repayment plan"}
    for ax, arm in zip(axes, ARMS, strict=False):
        dist = series[arm]["dpd"]
        n = summary["arms"][arm]["loans"] or 1
        keys = ["cured", "closed_other", "plan", *PLOT_BUCKETS]
        ax.stackplot(
            days,
            *[[v / n * 100 for v in dist[k]] for k in keys],
            labels=[labels.get(k, f"open, {k}") for k in keys],
            colors=[colors[k] for k in keys],
        )
        ax.set_title(names[arm])
        ax.set_xlabel("simulated day")
        ax.set_xlim(0, days[-1])
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("share of loans (%)")
    handles, labs = axes[0].get_legend_handles_labels()
    fig.legend(handles[::-1], labs[::-1], loc="lower center", ncol=4, frameon=False)
    fig.suptitle("DPD distribution over time (open cases by bucket, closed cases by result)")
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.savefig(out / "dpd_distribution.png", dpi=110)
    plt.close(fig)
    files.append("dpd_distribution.png")

    fig, ax = plt.subplots(figsize=(8, 4.8))
    for arm, style in zip(ARMS, ("-", "--"), strict=False):
        bal = summary["arms"][arm]["opening_balance"] or 1
        ax.plot(days, [v / bal * 100 for v in series[arm]["recovered_cum"]], style, linewidth=2, label=names[arm])
    ax.set_xlabel("simulated day")
    ax.set_ylabel("recovered, % of opening balance")
    ax.set_title("Recovery curves")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "recovery_curves.png", dpi=110)
    plt.close(fig)
    files.append("recovery_curves.png")

    fig, ax = plt.subplots(figsize=(10, 4.8))
    keys = [r[0] for r in step_rows(summary, summary["step_order"])]
    width = 0.4
    for i, arm in enumerate(ARMS):
        vals = [summary["arms"][arm]["recovered_by_step"].get(k, 0) / 100 / 1e6 for k in keys]
        ax.bar([x + (i - 0.5) * width for x in range(len(keys))], vals, width, label=names[arm])
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels(keys, rotation=30, ha="right")
    ax.set_ylabel("recovered (million CNY)")
    ax.set_title("Recovered by step (last step before each payment)")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "recovered_by_step.png", dpi=110)
    plt.close(fig)
    files.append("recovered_by_step.png")
    return files


def markdown(summary: dict, files: list[str]) -> str:
    """The report's README.md: the run, the two arms side by side, the plots, how to read them, the inputs."""
    return "\n".join(_md_results(summary, files) + _MD_HOW_TO_READ + _md_inputs(summary))


def _md_results(summary: dict, files: list[str]) -> list[str]:
    """The run (what ran, on which engine, how long), the metrics and the recovered amounts side by side, the plots."""
    run, c, h = summary["run"], summary["arms"]["champion"], summary["arms"]["challenger"]
    parts = [
        f"# Strategy simulation: {c['policy']} (champion) vs {h['policy']} (challenger)",
        "",
        f"{run['loans']:,} synthetic loans (seed {run['seed']}, split `{run['split']}`) over {run['days']} simulated days "
        f"from {run['start']} ({run['first_checkpoint']} to {run['last_checkpoint']}), "
        + (
            "on the direct engine: the pure `Case` of every loan on an event queue, with the real contact-gate rules "
            "over in-memory contact histories and holds, and the sandbox gateway's call rule (sim/direct.py). "
            "Simulated borrowers answered through the same inputs as the operators' updates."
            if run.get("engine") == "direct"
            else "on the real `CollectionCase` workflows, activities, contact gate, database and sandbox gateway, with the "
            "time-skipping Temporal test server. Simulated borrowers answered through the operators' updates."
        ),
        "",
        f"Wall time: {run['wall_seconds']:.0f} s. Checkpoint drift (wall time spent applying updates, carried into the "
        f"simulated clock): {run['checkpoint_drift']}. Workflows failed: {len(run['failed_workflows'])}.",
        "",
        "## Side by side",
        "",
        _md_table(("metric", f"champion: {c['policy']}", f"challenger: {h['policy']}"), rows(summary)),
        "",
        "\\* assumed unit costs (CNY), for an order of magnitude only: "
        + ", ".join(f"{k} {v}" for k, v in UNIT_COST.items())
        + f"; a page visit's one-time code {CODE_COST}.",
        "",
        "## Recovered by step",
        "",
        "Each payment (enforcement results included) is credited to the last step with a contact or filing before it.",
        "",
        _md_table(("step", f"champion: {c['policy']}", f"challenger: {h['policy']}"), step_rows(summary, summary["step_order"])),
        "",
        "## Plots",
        "",
    ]
    for f in files:
        parts += [f"![{f.removesuffix('.png').replace('_', ' ')}]({f})", ""]
    return parts


# What each metric counts, for a reader who did not write the simulator.
_MD_HOW_TO_READ = [
    "## How to read it",
    "",
    "- **Cure rate**: cases closed as paid or settled (a completed plan). Cases recovered through enforcement "
    "are counted under outcomes, not as cured.",
    "- **Roll rate A → B**: of the loans seen open in bucket A (M1 = DPD 1-30, M2 = 31-60, M3 = 61-90, "
    "M3+ = 91 and over) whose DPD reached the start of B within the simulation, the share still open then "
    "and not under a repayment plan that is being kept (a restructured loan does not roll). "
    "Counts of loans, not balances.",
    "- **Refusals**: the contact gate's refusals and the legal clocks' (limitation period, enforcement deadline, "
    "objection window), by rule, from the audit trail (`case_events`). "
    "A refusal that defers a contact is counted each time the case asks again.",
    "- **Contacts**: delivered SMS, emails, letters, calls, visits and lawyer's letters (guarantors included).",
    "- **Self-service**: what borrowers did on their own page, reached by the link an SMS, email or letter "
    "carries when the policy's `[selfservice] links` is on (a page visit: link opened, one-time code passed, "
    "something asked of the case). A self-service cure is a case paid or settled whose last payment came "
    "through the page's payment link (a promise or plan made on the page is kept through it too).",
    "- Borrower behaviour is a model (`sim/behaviour.py`): the absolute numbers mean little; the difference "
    "between the two policies on the same borrowers is the point.",
    "",
]


def _md_inputs(summary: dict) -> list[str]:
    """The borrowers' inputs each arm applied, a ledger check when payments are missing from it, and the inputs the
    cases refused."""
    parts = [
        "## Borrower inputs applied",
        "",
        _md_table(
            ("input", "champion", "challenger"),
            [
                (k, summary["inputs"]["champion"].get(k, 0), summary["inputs"]["challenger"].get(k, 0))
                for k in sorted(set(summary["inputs"]["champion"]) | set(summary["inputs"]["challenger"]))
            ],
        ),
        "",
    ]
    gaps = {a: summary["arms"][a]["missing_from_ledger"] for a in ARMS}
    if any(g["loans"] for g in gaps.values()):
        parts += [
            "## Ledger check",
            "",
            "Payments the cases applied but the payments ledger does not hold (counted above from the cases' "
            "own totals): "
            + "; ".join(f"{a}: {g['loans']} loan(s), CNY {_cny(g['amount'])}" for a, g in gaps.items())
            + ". There should be none: every payment a case applies is written to the ledger once.",
            "",
        ]
    rejected = summary["rejected"]
    if rejected["champion"] or rejected["challenger"]:
        parts += [
            "Inputs the cases refused (the borrower model asked for something the case did not allow):",
            "",
            _md_table(
                ("input: reason", "champion", "challenger"),
                [
                    (k, rejected["champion"].get(k, 0), rejected["challenger"].get(k, 0))
                    for k in sorted(set(rejected["champion"]) | set(rejected["challenger"]))
                ],
            ),
            "",
        ]
    return parts


def build(out: Path, opts, policies, loans, engine, trace, data: dict | None = None) -> dict:
    """The report; from the simulation's database, or from `data` (the same rows, from the direct engine)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = read(engine) if data is None else data
    sessions = {
        a: sum(n for c in (trace.accepted[a], trace.rejected[a]) for k, n in c.items() if k.startswith("page_")) for a in ARMS
    }
    figures = compute(loans, policies, data, trace.checkpoints, opts.days, trace.recoveries, sessions)
    order: list[str] = []
    for arm in ARMS:
        order += [s.key for s in policies[arm].steps if s.key not in order]
    summary = {
        "run": {
            "champion": opts.champion,
            "challenger": opts.challenger,
            "loans": opts.loans,
            "days": opts.days,
            "seed": opts.seed,
            "split": opts.split,
            "start": trace.start.isoformat(),
            "engine": getattr(opts, "engine", "temporal"),
            "first_checkpoint": trace.checkpoints[0].strftime("%Y-%m-%d %H:%M UTC"),
            "last_checkpoint": trace.checkpoints[-1].strftime("%Y-%m-%d %H:%M UTC"),
            "checkpoint_drift": str(trace.drift).split(".")[0],
            "failed_workflows": trace.failed_workflows,
            "wall_seconds": round(trace.wall.get("total_sim", 0.0), 1),
            "wall_breakdown": {k: round(v, 1) for k, v in trace.wall.items()},
        },
        "arms": figures["arms"],
        "inputs": {a: dict(sorted(trace.accepted[a].items())) for a in ARMS},
        "rejected": {a: dict(sorted(trace.rejected[a].items())) for a in ARMS},
        "rejection_samples": trace.rejections[:20],
        "step_order": order,
        "report": str(out / "report.md"),
    }
    files = plots(out, summary, figures["series"], trace.checkpoints)
    summary["plots"] = [str(out / f) for f in files]
    (out / "report.md").write_text(markdown(summary, files), encoding="utf-8")
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    return summary


def headline(summary: dict) -> dict:
    """The figures that must come out the same for the same seed (no wall times, no paths)."""
    return {
        "arms": summary["arms"],
        "inputs": summary["inputs"],
        "rejected": summary["rejected"],
        "run": {k: v for k, v in summary["run"].items() if k in ("loans", "days", "seed", "split", "start")},
    }
