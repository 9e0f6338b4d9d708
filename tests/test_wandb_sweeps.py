"""W&B sweep documents over REST, as W&B documents and tests them: every case of the corpus
(tests/support/wandb_corpus.py) is accepted or refused as recorded there; an accepted one becomes
a study whose trials have params inside the space and of the declared types; W&B's example sweep
files are accepted as YAML and as JSON alike."""
from __future__ import annotations

import json

import pytest
import yaml

from tuneserve_service.space import flatten_params, parse_parameters
from tests.support.wandb_corpus import EXAMPLES, INVALID, LENIENT, UNSUPPORTED, VALID, Case

API = "/api/v1"


def declared_type_ok(dim, value) -> bool:
    d = dim.distribution
    if d in ("constant", "categorical"):
        return True                                  # membership is checked by contains()
    if d == "int_uniform":
        return type(value) is int
    if dim.q is not None:
        return type(value) is (int if isinstance(dim.q, int) else float)
    return type(value) is float


def check_accepted(client, case: Case) -> list[str]:
    problems = []
    r = client.post(f"{API}/studies", json=case.doc)
    if r.status_code != 201:
        return [f"{case.id}: {r.status_code} {r.text[:300]}"]
    study = r.json()
    name = study["name"]
    if study["method"] != case.doc.get("method", "random"):
        problems.append(f"{case.id}: method {study['method']}")
    if case.doc.get("method") == "bayes" and study["engine"] not in ("gp", "tpe"):
        problems.append(f"{case.id}: bayes ran on {study['engine']}")
    space = parse_parameters(case.doc["parameters"])
    leases = client.post(f"{API}/studies/{name}/ask", json={"count": 3, "worker_id": "corpus"}).json()
    if not leases:
        problems.append(f"{case.id}: no trial")
    for lease in leases:
        flat = flatten_params(lease["params"], leaves=space.names)
        if not space.contains(flat):
            problems.append(f"{case.id}: {lease['params']} not in the space")
            continue
        for dim in space.dimensions:
            if not declared_type_ok(dim, flat[dim.name]):
                problems.append(f"{case.id}: {dim.name}={flat[dim.name]!r} is not of {dim.distribution}'s type")
    return problems


def has_nan(v) -> bool:
    if isinstance(v, dict):
        return any(has_nan(x) for x in v.values())
    if isinstance(v, list):
        return any(has_nan(x) for x in v)
    return isinstance(v, float) and v != v


def post(client, doc: dict):
    # YAML carries what JSON cannot (a NaN among values); everything else goes as JSON.
    if has_nan(doc):
        return client.post(f"{API}/studies", content=yaml.safe_dump(doc), headers={"content-type": "application/yaml"})
    return client.post(f"{API}/studies", json=doc)


def check_refused(client, case: Case) -> list[str]:
    r = post(client, case.doc)
    if r.status_code != 422:
        return [f"{case.id}: expected 422, got {r.status_code} {r.text[:200]}"]
    errors = r.json()["detail"]
    want = ["body", *case.loc]
    if not any(e["loc"] == want and case.words in e["msg"] for e in errors):
        return [f"{case.id}: no error at {want} with {case.words!r}: {errors}"]
    return []


def test_every_configuration_wandb_accepts_is_a_study_with_legal_trials(client):
    problems = [p for case in VALID + LENIENT for p in check_accepted(client, case)]
    assert problems == []
    assert len(VALID) >= 50


def test_every_configuration_wandb_refuses_is_a_422_naming_the_path_and_the_rule(client):
    problems = [p for case in INVALID for p in check_refused(client, case)]
    assert problems == []
    assert client.get(f"{API}/studies").json() == []          # nothing stored


def test_what_tuneserve_cannot_run_is_a_422_that_says_why(client):
    problems = [p for case in UNSUPPORTED for p in check_refused(client, case)]
    assert problems == []
    assert all(case.why for case in UNSUPPORTED)
    assert client.get(f"{API}/studies").json() == []


@pytest.mark.parametrize("filename", sorted(EXAMPLES))
def test_wandb_example_files_are_accepted_as_yaml_and_as_json(client, filename):
    text = EXAMPLES[filename]
    as_yaml = client.post(f"{API}/studies", content=text, headers={"content-type": "application/yaml"})
    as_json = client.post(f"{API}/studies", json=yaml.safe_load(text))
    assert as_yaml.status_code == 201, as_yaml.text
    assert as_json.status_code == 201, as_json.text
    a, b = as_yaml.json(), as_json.json()
    assert a["name"] != b["name"] and a["name"].startswith("sweep-")          # no name: generated, unique
    same = ("method", "engine", "metric", "parameters", "max_trials", "pruner", "program", "project", "description")
    assert {k: a[k] for k in same} == {k: b[k] for k in same}
    doc = yaml.safe_load(text)
    assert a["program"] == doc["program"] and a["method"] == doc["method"]
    lease = client.post(f"{API}/trials/claim", json={"worker_id": "w", "study": a["name"]}).json()
    space = parse_parameters(doc["parameters"])
    assert space.contains(flatten_params(lease["params"], leaves=space.names))


def test_hyperband_example_keeps_wandbs_block():
    # Not through the API: the stored pruner says exactly what runs.
    from tuneserve_service.pruners import build_pruner, pruner_from_wandb

    block = yaml.safe_load(EXAMPLES["local-controller/sweep-local-hyperband.yaml"])["early_terminate"]
    pruner = build_pruner(pruner_from_wandb(block))
    assert pruner.bands == (1, 3)                 # 10 / 3 = 3.33 -> 3, / 3 = 1.11 -> 1


def test_nested_example_hands_nested_params_to_the_worker(client):
    r = client.post(f"{API}/studies", content=EXAMPLES["nested-params/sweep-nested-cli.yaml"],
                    headers={"content-type": "application/yaml"})
    study = r.json()
    assert study["max_trials"] == 8                # grid: 2 x 2 x 2
    seen = []
    while (lease := client.post(f"{API}/trials/claim", json={"worker_id": "w", "study": study["name"]})).status_code == 200:
        lease = lease.json()
        seen.append(json.dumps(lease["params"], sort_keys=True))
        assert set(lease["params"]) == {"batch_size", "optimizer"}
        assert set(lease["params"]["optimizer"]) == {"lr", "nadam"} and set(lease["params"]["optimizer"]["nadam"]) == {"beta"}
        client.post(f"{API}/trials/{lease['trial_id']}/complete", json={"lease_token": lease["lease_token"], "value": 1.0})
    assert len(set(seen)) == 8
    assert client.get(f"{API}/studies/{study['name']}").json()["state"] == "finished"
