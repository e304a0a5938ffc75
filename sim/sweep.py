"""What-if grids on the direct engine: one policy, some of its numbers varied, the same portfolio and borrowers.

    python starter.py simulate --challenger default --sweep 'steps.home_visit.dpd=20,30,45' \\
        --sweep 'plans.max_instalments=6,12' --loans 10000 --days 365

Each `--sweep PATH=V1,V2,...` is one dimension; the grid is every combination. PATH walks the policy
as its TOML file reads: `steps.<step key>.<field>` for a step, `<section>.<field>` otherwise
(`plan.` is taken for `plans.`). Every variant is validated as a policy file is, so a value the policy
would refuse is refused here, naming the variant and the field. Every variant runs the whole portfolio
(all loans on the varied champion policy), and gives one row: recovery rate, cure rate, estimated cost
per CNY recovered, contacts, refusals; written as sweep.csv, sweep.md, sweep.json and a plot of
recovery against cost (recovery_vs_cost.png).
"""

from __future__ import annotations

import csv
import itertools
import json
import time
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

from domain import calendar
from domain.errors import InvalidInput
from domain.policy import Policy, load_policy, parse_policy
from sim.clock import checkpoint_anchor, direct_default_start, warn_calendar

ALIASES = {"plan": "plans"}
COLUMNS = (
    "variant",
    "recovery_rate",
    "cure_rate",
    "cost_per_cny_recovered",
    "contacts",
    "refusals",
    "recovered_cny",
    "estimated_cost_cny",
    "write_offs",
    "litigation",
    "self_service_cures",
)


@dataclass(frozen=True)
class Dimension:
    path: str
    values: tuple


def _value(text: str):
    t = text.strip()
    if t.lower() in ("true", "false"):
        return t.lower() == "true"
    for kind in (int, float):
        try:
            return kind(t)
        except ValueError:
            pass
    return t


def parse_sweep(spec: str) -> Dimension:
    """`steps.home_visit.dpd=20,30,45` -> Dimension; bad text raises InvalidInput naming `sweep`."""
    path, sep, values = spec.partition("=")
    path = path.strip()
    if not sep or not path:
        raise InvalidInput("sweep", f"{spec!r} is not PATH=V1,V2,... (e.g. steps.home_visit.dpd=20,30,45)")
    vals = tuple(_value(v) for v in values.split(",") if v.strip())
    if not vals:
        raise InvalidInput("sweep", f"{path}: no values after '='")
    if len(set(map(repr, vals))) != len(vals):
        raise InvalidInput("sweep", f"{path}: a value is repeated")
    return Dimension(path, vals)


def apply(policy: Policy, changes: list[tuple[str, object]]) -> Policy:
    """The policy with `changes` ((path, value), ...) made, validated as a policy file is."""
    data = policy.model_dump(mode="json")
    for path, value in changes:
        parts = path.split(".")
        parts[0] = ALIASES.get(parts[0], parts[0])
        node = data
        where = []
        for _i, part in enumerate(parts[:-1]):
            where.append(part)
            if isinstance(node, list):  # steps: by key
                found = next((s for s in node if s.get("key") == part), None)
                if found is None:
                    keys = ", ".join(s.get("key", "?") for s in node)
                    raise InvalidInput("sweep", f"{path}: no step {part!r} in policy {policy.name} (steps: {keys})")
                node = found
            elif isinstance(node, dict) and part in node and isinstance(node[part], (dict, list)):
                node = node[part]
            else:
                raise InvalidInput("sweep", f"{path}: {'.'.join(where)} is not a section of the policy")
        last = parts[-1]
        if not isinstance(node, dict) or last not in node:
            raise InvalidInput("sweep", f"{path}: {last!r} is not a setting there")
        node[last] = value
    label = ", ".join(f"{p}={v}" for p, v in changes)
    data["version"] = f"{policy.version} [{label}]"
    try:
        return parse_policy(data, label)
    except InvalidInput as exc:
        raise InvalidInput("sweep", str(exc)) from None  # "<variant>: <field>: <reason>"


def grid(policy: Policy, dims: list[Dimension]) -> list[tuple[str, Policy]]:
    """Every combination, validated before anything runs."""
    out = []
    for combo in itertools.product(*(d.values for d in dims)):
        changes = [(d.path, v) for d, v in zip(dims, combo, strict=False)]
        out.append((", ".join(f"{p}={v}" for p, v in changes), apply(policy, changes)))
    return out


def run(
    policy: Policy,
    dims: list[Dimension],
    loans: int,
    days: int,
    seed: int,
    start=None,
    workers: int | None = None,
    out: Path | None = None,
) -> dict:
    """Every variant over the same portfolio, on the direct engine; the rows, and the files in `out`."""
    import os
    from datetime import datetime

    from sim import direct, report

    t0 = time.perf_counter()
    variants = grid(policy, dims)
    start = start or direct_default_start(datetime.now(UTC))
    warn_calendar(start, days)
    anchor = checkpoint_anchor(start)
    jobs = [
        direct.Job(policies={"champion": p}, seed=seed, days=days, start=start, anchor=anchor, arm="champion")
        for _, p in variants
    ]
    parts = direct.chunks(loans, 250)
    tasks = [(j, part) for j in jobs for part in parts]
    results = [direct.ChunkResult() for _ in jobs]
    workers = workers or os.cpu_count() or 1
    with calendar.frozen():  # for the whole sweep: the forked workers keep what they learn from chunk to chunk
        if workers == 1:
            for k, task in enumerate(tasks):
                results[k // len(parts)].merge(direct._run_chunk(task))
        else:
            with direct.fork_pool(workers) as pool:
                for k, res in enumerate(pool.imap(direct._run_chunk, tasks)):
                    results[k // len(parts)].merge(res)
    checkpoints = [anchor + direct.DAY * d for d in range(days + 1)]
    for res in results:
        res.sort()
    portfolio = results[0].loans  # what the report reads of each loan, from the workers that drew them
    rows = []
    for (label, p), res in zip(variants, results, strict=False):
        visits = sum(n for c in (*res.accepted.values(), *res.rejected.values()) for k, n in c.items() if k.startswith("page_"))
        fig = report.compute(
            portfolio, {"champion": p, "challenger": p}, res.data(), checkpoints, days, res.recoveries, {"champion": visits}
        )["arms"]["champion"]
        rows.append(
            {
                "variant": label,
                "recovery_rate": fig["recovery_rate"],
                "cure_rate": fig["cure_rate"],
                "cost_per_cny_recovered": fig["cost_per_cny_recovered"],
                "contacts": fig["contacts"],
                "refusals": fig["refusals"],
                "recovered_cny": round(fig["recovered"] / 100, 2),
                "estimated_cost_cny": fig["estimated_cost_cny"],
                "write_offs": fig["write_offs"],
                "litigation": fig["litigation"],
                "self_service_cures": fig["self_service"]["cures"],
            }
        )
    summary = {
        "policy": policy.name,
        "policy_version": policy.version,
        "loans": loans,
        "days": days,
        "seed": seed,
        "start": start.isoformat(),
        "engine": "direct",
        "sweeps": [f"{d.path}={','.join(map(str, d.values))}" for d in dims],
        "rows": rows,
        "wall_seconds": round(time.perf_counter() - t0, 1),
    }
    if out is not None:
        write(Path(out), summary)
    return summary


def write(out: Path, summary: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rows = summary["rows"]
    with (out / "sweep.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    (out / "sweep.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    head = "| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS) + "\n"
    body = "".join("| " + " | ".join(str(r[c]) for c in COLUMNS) + " |\n" for r in rows)
    (out / "sweep.md").write_text(
        f"# Sweep of policy {summary['policy']} ({summary['loans']} loans x {summary['days']} days, seed "
        f"{summary['seed']}, direct engine)\n\n{' '.join('--sweep ' + repr(s) for s in summary['sweeps'])}\n\n"
        + head
        + body
        + "\n![recovery against cost](recovery_vs_cost.png)\n",
        encoding="utf-8",
    )
    plot(out / "recovery_vs_cost.png", summary)


def plot(path: Path, summary: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summary["rows"]
    fig, ax = plt.subplots(figsize=(8, 5.5))
    xs = [r["estimated_cost_cny"] / 1000 for r in rows]
    ys = [100 * r["recovery_rate"] for r in rows]
    ax.scatter(xs, ys)
    for r, x, y in zip(rows, xs, ys, strict=False):
        ax.annotate(r["variant"], (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel("estimated collection cost (thousand CNY)")
    ax.set_ylabel("recovery rate (% of the opening balance)")
    ax.set_title(f"{summary['policy']}: recovery against cost, {summary['loans']} loans x {summary['days']} days")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(a, specs: list[str]) -> int:
    """`starter.py simulate --sweep ...`: the champion policy (--policy) varied."""
    from app.errors import BadInput

    try:
        dims = [parse_sweep(s) for s in specs]
        policy = load_policy(a.policy)
        grid(policy, dims)  # every variant valid before anything runs
    except InvalidInput as exc:
        raise BadInput("sweep", exc.reason) if exc.field == "sweep" else BadInput(exc.field, exc.reason) from None
    paths = [d.path for d in dims]
    if len(set(paths)) != len(paths):
        raise BadInput("sweep", "a path is swept twice")
    out = Path(a.out) if a.out else None
    if out is None:
        from infra.config import var_dir

        out = var_dir() / "sim" / f"sweep-{policy.name}-seed{a.seed}-{a.loans}x{a.days}d"
    summary = run(policy, dims, a.loans, a.days, a.seed, a.start, getattr(a, "workers", None), out)
    if a.json:
        print(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        from rich.console import Console
        from rich.table import Table

        t = Table(title=f"{policy.name}: {len(summary['rows'])} variants, {a.loans} loans x {a.days} days (direct engine)")
        for c in COLUMNS:
            t.add_column(c, justify="left" if c == "variant" else "right")
        for r in summary["rows"]:
            t.add_row(*(str(r[c]) for c in COLUMNS))
        Console(width=max(Console().width, 180)).print(t)
        print(f"\nreport: {out / 'sweep.md'}  ({summary['wall_seconds']} s)")
    return 0
