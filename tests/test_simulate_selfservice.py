"""The borrower page in the strategy simulator: a policy with links against one without, on the direct engine.

With `[selfservice] links = true` (default.toml) some borrowers open the link an SMS, email or letter carries, pass
the code and act on the page: their payments by the payment link cure cases, and the report counts those cures
and the page visits' codes in the cost. Without links (challenger-no-links.toml, the same ladder) nobody can.
"""

from __future__ import annotations

from datetime import date

import pytest

from domain.policy import SelfServiceRules, load_policy
from sim.behaviour import PAGE_PREFIX, Borrower
from sim.generate import portfolio
from sim.report import headline
from sim.run import Options, simulate_direct

NO_LINKS = "policies/challenger-no-links.toml"
SIZE = dict(loans=300, days=120, seed=7)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("selfservice")
    common = dict(champion="default", challenger=NO_LINKS, progress=False, workers=1, **SIZE)
    return [simulate_direct(Options(engine="direct", out=out / f"run{i}", **common)) for i in (1, 2)]


def test_the_no_links_challenger_is_the_default_ladder_without_links():
    default, no_links = load_policy("default"), load_policy(NO_LINKS)
    assert default.selfservice.links is True and no_links.selfservice.links is False
    assert no_links.model_dump(exclude={"name", "version", "description", "selfservice"}) == default.model_dump(
        exclude={"name", "version", "description", "selfservice"}
    )


def test_with_links_the_page_cures_cases_and_without_links_it_cures_none(runs):
    summary = runs[0]
    on, off = summary["arms"]["champion"]["self_service"], summary["arms"]["challenger"]["self_service"]
    assert on["page_visits"] > 0 and on["payments"] > 0 and on["cures"] > 0 and on["recovered"] > 0, on
    assert off == {"page_visits": 0, "cures": 0, "recovered": 0, "payments": 0}
    assert not any(k.startswith("page_") for k in summary["inputs"]["challenger"])
    assert any(k.startswith("page_pay") for k in summary["inputs"]["champion"])
    # a self-service cure is a cured case: never more of them than the arm's cures
    champion = summary["arms"]["champion"]
    assert on["cures"] <= round(champion["cure_rate"] * champion["loans"])


def test_the_report_shows_self_service_cures_and_cost_per_cny_for_both_arms(runs):
    summary = runs[0]
    for arm in ("champion", "challenger"):
        a = summary["arms"][arm]
        assert a["cost_per_cny_recovered"] is not None and a["cost_per_cny_recovered"] > 0
        assert {"cures", "page_visits", "recovered", "payments"} <= set(a["self_service"])
    report = open(summary["report"], encoding="utf-8").read()
    on, off = summary["arms"]["champion"], summary["arms"]["challenger"]
    cures = next(line for line in report.splitlines() if line.startswith("| self-service cures"))
    assert cures.split("|")[2:4] == [f" {on['self_service']['cures']:,} ", " 0 "], cures
    cost = next(line for line in report.splitlines() if line.startswith("| cost per CNY recovered"))
    assert cost.split("|")[2:4] == [f" {on['cost_per_cny_recovered']:.3f} ", f" {off['cost_per_cny_recovered']:.3f} "], cost


def test_same_seed_same_self_service_numbers(runs):
    assert headline(runs[0]) == headline(runs[1])


def test_without_links_no_borrower_visits_the_page_and_one_who_opens_no_link_acts_as_without():
    """The page's draws have their own generator: without links, every other draw of the borrower is unchanged."""
    loans = portfolio(7, 200)
    on, off = load_policy("default"), load_policy("default").model_copy(update={"selfservice": SelfServiceRules(links=False)})

    def walk(policy):
        seen = []
        for ln in loans:
            b = Borrower(ln, 7, policy, date(2026, 1, 1), 120)
            for day, action in ((1, "sms"), (1, "email"), (1, "letter"), (7, "call"), (20, "letter")):
                b.on_contact(day, action, "delivered", "answered" if action == "call" else None)
            seen.append([(a.day, a.kind) for a in sorted(b.queue)])
        return seen

    without = walk(off)
    assert not any(kind == "page" for q in without for _, kind in q)
    with_links = walk(on)
    visited = [i for i, q in enumerate(with_links) if any(kind == "page" for _, kind in q)]
    assert visited
    # a borrower who never opened a link did exactly what they do without links
    assert all(with_links[i] == without[i] for i in range(len(loans)) if i not in visited)
    assert sum(with_links[i] != without[i] for i in visited) == len(visited)
    assert PAGE_PREFIX == "SIMLINK-"


def test_a_sweep_of_the_links_switch_runs_the_same_borrowers_with_and_without(tmp_path):
    from sim import sweep

    dims = [sweep.parse_sweep("selfservice.links=true,false")]
    out = sweep.run(load_policy("default"), dims, loans=200, days=120, seed=7, workers=1, out=tmp_path)
    rows = {r["variant"]: r for r in out["rows"]}
    on, off = rows["selfservice.links=True"], rows["selfservice.links=False"]
    assert on["self_service_cures"] > 0 and off["self_service_cures"] == 0
    assert "self_service_cures" in (tmp_path / "sweep.csv").read_text().splitlines()[0]
