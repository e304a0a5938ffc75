

def test_a_sweep_of_the_links_switch_runs_the_same_borrowers_with_and_without(tmp_path):
    from sim import sweep

    dims = [sweep.parse_sweep("selfservice.links=true,false")]
    out = sweep.run(load_policy("default"), dims, loans=200, days=120, seed=7, workers=1, out=tmp_path)
    rows = {r["variant"]: r for r in out["rows"]}
    on, off = rows["selfservice.links=True"], rows["selfservice.links=False"]
    assert on["self_service_cures"] > 0 and off["self_service_cures"] == 0
    assert "self_service_cures" in (tmp_path / "sweep.csv").read_text().splitlines()[0]
