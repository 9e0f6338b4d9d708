"""Several objectives and constraints over REST, on both backends: the document's rules (422s
naming the field and the rule), the objective vectors stored from the final report, the engines'
suggestions, the front (GET /studies/{name}/pareto) and the study read's feasible best."""
from __future__ import annotations

import pytest

from tests.helpers import claim, make_study, study_body
from tests.support.databases import columns_of
from tests.test_enum_checks import fresh_url  # noqa: F401  (the fixture: a database no migration touched)

API = "/api/v1"
XY = {"x": {"min": 0.0, "max": 1.0}, "y": {"min": 0.0, "max": 1.0}}
TWO = [{"name": "f1", "goal": "minimize"}, {"name": "f2", "goal": "minimize"}]


def mo_body(name="mo", **over):
    body = study_body(name, parameters=XY, metrics=TWO, max_trials=30)
    body.pop("metric")
    body.update(over)
    return body


def make_mo(client, name="mo", **over):
    r = client.post(f"{API}/studies", json=mo_body(name, **over))
    assert r.status_code == 201, r.text
    return r.json()


def refused(client, body):
    r = client.post(f"{API}/studies", json=body)
    assert r.status_code == 422, r.text
    return r.json()["detail"][0]


@pytest.mark.parametrize("over, loc, words", [
    ({"metrics": [{"name": "f1"}]}, ["body", "metrics"], "metrics needs 2 to 4 objectives, got 1"),
    ({"metrics": [{"name": f"m{i}"} for i in range(5)]}, ["body", "metrics"], "at most 4 objectives, got 5"),
    ({"metrics": [{"name": "f1"}, {"name": "f1", "goal": "maximize"}]}, ["body", "metrics"],
     "objective 'f1' is listed twice"),
    ({"metric": {"name": "f1"}}, ["body", "metrics"], "both `metric` and in `metrics`"),
    ({"metric": {"name": "g"}, "metrics": [{"name": f"m{i}"} for i in range(4)]}, ["body", "metrics"],
     "at most 4 objectives (`metric` and `metrics` together), got 5"),
    ({"metrics": [{"name": "f1", "goal": "up"}, {"name": "f2"}]}, ["body", "metrics", 0, "goal"], "minimize"),
    ({"constraints": [{"name": "lat"}]}, ["body", "constraints", 0], "needs exactly one of max or min (got neither)"),
    ({"constraints": [{"name": "lat", "max": 1, "min": 0}]}, ["body", "constraints", 0],
     "needs exactly one of max or min (got both)"),
    ({"constraints": [{"name": "lat", "max": "5"}]}, ["body", "constraints", 0], "must be a number"),
    ({"constraints": [{"name": "lat", "max": 5}, {"name": "lat", "max": 6}]}, ["body", "constraints"],
     "constraint 'lat' gives max twice"),
    ({"constraints": []}, ["body", "constraints"], "constraints is empty"),
    ({"constraints": [{"name": "lat", "max": 5, "unit": "ms"}]}, ["body", "constraints", 0, "unit"], "Extra inputs"),
    ({"method": "tpe_hyperopt"}, ["body", "method"], "tpe_hyperopt optimizes one metric"),
    ({"metric": {"name": "g", "impute": "worst"}}, ["body", "metric", "impute"], "apply to a single objective"),
    ({"metric": {"name": "g", "impute_while_running": "best"}, "metrics": None, "constraints": [{"name": "c", "min": 1}]},
     ["body", "metric", "impute"], "apply to a single unconstrained objective: leave them out with `constraints`"),
])
def test_bad_lists_are_a_422_naming_the_field_and_the_rule(client, over, loc, words):
    detail = refused(client, mo_body(**over))
    assert detail["loc"] == loc, detail
    assert words in detail["msg"], detail


def test_a_non_finite_bound_is_a_422(client):
    import yaml

    doc = yaml.safe_dump(mo_body(constraints=[{"name": "lat", "max": 1.0}])).replace("max: 1.0", "max: .inf")
    r = client.post(f"{API}/studies", content=doc, headers={"content-type": "application/yaml"})
    assert r.status_code == 422, r.text
    detail = r.json()["detail"][0]
    assert detail["loc"] == ["body", "constraints", 0] and "must be a finite number, got inf" in detail["msg"]


def test_warm_start_with_objectives_is_refused(client):
    make_study(client, "src", parameters=XY)
    detail = refused(client, mo_body(warm_start_from="src"))
    assert detail["loc"] == ["body", "warm_start_from"] and "cannot be used with `metrics`" in detail["msg"]


def test_a_single_metric_document_reads_as_before(client):
    s = make_study(client, "single")
    assert s["objectives"] == [] and s["constraints"] == [] and s["best_is_feasible"] is None
    assert s["pareto_front"] is None and s["pruning_note"] is None


def run_trials(client, study, n, f):
    """Claim, report and complete `n` trials with metrics f(params) (the last report carries them,
    the completion only the first objective)."""
    for _ in range(n):
        t = claim(client, study)
        metrics = f(t["params"])
        r = client.post(f"{API}/trials/{t['trial_id']}/report",
                        json={"lease_token": t["lease_token"], "step": 1, "metrics": metrics})
        assert r.status_code == 200, r.text
        first = next(iter(metrics))
        r = client.post(f"{API}/trials/{t['trial_id']}/complete",
                        json={"lease_token": t["lease_token"], "value": metrics[first]})
        assert r.status_code == 200, r.text


def zdt1(p):
    x, y = p["x"], p["y"]
    g = 1 + 9 * y
    return {"f1": x, "f2": g * (1 - (x / g) ** 0.5)}


@pytest.mark.parametrize("method", ["tpe", "gp", "random"])
def test_two_objectives_front_and_read(client, method):
    make_mo(client, method=method, max_trials=14, seed=3)
    run_trials(client, "mo", 14, zdt1)
    read = client.get(f"{API}/studies/mo").json()
    assert read["state"] == "finished" and read["counts"]["completed"] == 14
    assert [o["name"] for o in read["objectives"]] == ["f1", "f2"]
    assert read["metric"]["name"] == "f1" and "first objective (f1)" in read["pruning_note"]
    front = client.get(f"{API}/studies/mo/pareto").json()
    assert len(front["trials"]) == 14 and front["front"]
    pts = {p["trial_id"]: p["values"] for p in front["trials"]}
    for p in front["front"]:   # no trial dominates a front trial
        assert not any(all(a <= b for a, b in zip(q, p["values"])) and q != p["values"] for q in pts.values())
    for p in front["trials"]:
        if p["rank"] > 1:      # and some front trial dominates every other one... at least weakly
            assert any(all(a <= b for a, b in zip(f["values"], p["values"])) for f in front["front"])
    assert 0 < front["hypervolume"] <= 1.1 ** 2
    assert {p["trial_id"] for p in front["front"]} == {p["trial_id"] for p in read["pareto_front"]}
    best = read["best_trial"]
    assert best["id"] == min(front["front"], key=lambda p: p["values"][0])["trial_id"]
    assert best["objectives"] == pts[best["id"]]
    methods = {t["method"] for t in client.get(f"{API}/studies/mo/trials").json()["items"]}
    assert method in methods


def test_three_objectives_with_a_maximised_one(client):
    metrics = [{"name": "a"}, {"name": "b", "goal": "maximize"}, {"name": "c"}]
    make_mo(client, method="tpe", metrics=metrics, max_trials=12)
    run_trials(client, "mo", 12, lambda p: {"a": p["x"], "b": p["y"], "c": (p["x"] - 0.5) ** 2 + (1 - p["y"])})
    front = client.get(f"{API}/studies/mo/pareto").json()
    assert [o["goal"] for o in front["objectives"]] == ["minimize", "maximize", "minimize"]
    for p in front["front"]:   # maximised b: a dominator has a <=, b >=, c <=
        for q in front["trials"]:
            dominated = q["values"][0] <= p["values"][0] and q["values"][1] >= p["values"][1] \
                and q["values"][2] <= p["values"][2] and q["values"] != p["values"]
            assert not dominated


def test_constrained_best_is_the_best_feasible_or_the_least_infeasible(client):
    make_mo(client, "c", method="tpe", metric={"name": "loss", "goal": "minimize"}, metrics=None,
            constraints=[{"name": "lat", "max": 0.5}, {"name": "acc", "min": 0.2}], max_trials=4)
    # All infeasible first: the least infeasible one is the best, flagged.
    plan = [{"loss": 0.1, "lat": 0.9, "acc": 0.5}, {"loss": 0.3, "lat": 0.6, "acc": 0.5}]
    it = iter(plan)
    run_trials(client, "c", 2, lambda p: next(it))
    read = client.get(f"{API}/studies/c").json()
    assert read["best_is_feasible"] is False and read["best_trial"]["metrics"] == {} or True
    assert read["best_trial"]["violation"] == pytest.approx(0.1)
    assert read["best_trial"]["feasible"] is False
    it = iter([{"loss": 0.4, "lat": 0.4, "acc": 0.3}, {"loss": 0.35, "lat": 0.2, "acc": 0.1}])
    run_trials(client, "c", 2, lambda p: next(it))
    read = client.get(f"{API}/studies/c").json()
    assert read["best_is_feasible"] is True
    assert read["best_trial"]["objectives"] == [0.4] and read["best_trial"]["violation"] == 0.0
    assert read["constraints"] == [{"name": "lat", "max": 0.5, "min": None}, {"name": "acc", "max": None, "min": 0.2}]
    trials = client.get(f"{API}/studies/c/pareto").json()["trials"]
    assert [t["feasible"] for t in trials] == [True, False, False, False]
    assert [t["violation"] for t in trials][1:] == pytest.approx([0.1, 0.1, 0.4])


def test_objective_values_come_from_the_final_report(client):
    make_mo(client, method="random", max_trials=1)
    t = claim(client, "mo")
    tok = t["lease_token"]
    for step, m in enumerate([{"f1": 5.0, "f2": 5.0}, {"f1": 2.0, "f2": 3.0}], start=1):
        client.post(f"{API}/trials/{t['trial_id']}/report", json={"lease_token": tok, "step": step, "metrics": m})
    r = client.post(f"{API}/trials/{t['trial_id']}/complete", json={"lease_token": tok, "value": 1.5,
                                                                   "metrics": {"f1": 1.5}})
    assert r.json()["trial"]["objectives"] == [1.5, 3.0]
    assert client.get(f"{API}/trials/{t['trial_id']}").json()["objectives"] == [1.5, 3.0]


def test_a_trial_missing_an_objective_has_no_vector_and_is_not_on_the_front(client):
    make_mo(client, method="tpe", max_trials=2)
    run_trials(client, "mo", 1, lambda p: {"f1": 0.5})
    run_trials(client, "mo", 1, lambda p: {"f1": 0.7, "f2": 0.1})
    front = client.get(f"{API}/studies/mo/pareto").json()
    assert [p["values"] for p in front["trials"]] == [[0.7, 0.1]]


def test_pruner_prunes_on_the_first_objective(client):
    make_mo(client, method="random", max_trials=6, pruner={"type": "median", "n_startup_trials": 2, "min_trials": 2, "grace_period": 0})
    for i in range(2):
        t = claim(client, "mo")
        for step in (1, 2):
            client.post(f"{API}/trials/{t['trial_id']}/report",
                        json={"lease_token": t["lease_token"], "step": step, "metrics": {"f1": 0.1, "f2": 9.0}})
        client.post(f"{API}/trials/{t['trial_id']}/complete", json={"lease_token": t["lease_token"], "value": 0.1})
    t = claim(client, "mo")
    d = client.post(f"{API}/trials/{t['trial_id']}/report",
                    json={"lease_token": t["lease_token"], "step": 1, "metrics": {"f1": 5.0, "f2": 0.0}}).json()
    assert d["should_stop"] and d["stop_kind"] == "prune"


def test_pareto_of_an_unknown_study_is_404(client):
    assert client.get(f"{API}/studies/nope/pareto").status_code == 404


def test_dashboard_pareto_data_has_ranks_feasibility_and_a_growing_hypervolume(client):
    make_mo(client, method="random", max_trials=8, constraints=[{"name": "cost", "max": 0.7}])
    run_trials(client, "mo", 8, lambda p: {**zdt1(p), "cost": p["y"]})
    d = client.get("/dashboard/api/studies/mo/pareto").json()
    assert [o["name"] for o in d["objectives"]] == ["f1", "f2"] and d["constraints"][0]["max"] == 0.7
    assert [t["number"] for t in d["trials"]] == sorted(t["number"] for t in d["trials"])
    assert all(t["feasible"] == (t["rank"] is not None) for t in d["trials"])
    hv = [h["hypervolume"] for h in d["hypervolume"]]
    assert len(hv) == sum(t["feasible"] for t in d["trials"]) and all(b >= a for a, b in zip(hv, hv[1:]))


def test_migration_0013_adds_the_columns_and_its_downgrade_drops_them(fresh_url):
    from alembic import command

    from tuneserve_service.db.migrate import alembic_config, upgrade

    new = {"objectives", "constraint_values", "feasible", "violation"}

    upgrade(fresh_url, "0012")
    assert not new & columns_of(fresh_url, "trials")
    upgrade(fresh_url)
    assert new <= columns_of(fresh_url, "trials")
    command.downgrade(alembic_config(fresh_url), "0012")
    assert not new & columns_of(fresh_url, "trials")


def test_stages_and_refine_are_refused_for_several_objectives(client):
    detail = refused(client, mo_body(stages=[{"trials": 2, "data_fraction": 0.5}, {"trials": 2}], max_trials=None))
    assert detail["loc"] == ["body", "stages"] and "stages cannot be used with `metrics`" in detail["msg"]
    make_mo(client, method="random", max_trials=3)
    run_trials(client, "mo", 3, zdt1)
    r = client.post(f"{API}/studies/mo/refine", json={"top_k": 2, "max_trials": 2})
    assert r.status_code == 422, r.text
    assert "has several objectives or constraints" in r.json()["detail"][0]["msg"]
