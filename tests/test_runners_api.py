"""What runs a study (its objective), the claim filter that keeps workers to studies they can run,
the study read's worker count and warning, trial logs, and /readyz; on every backend."""
from __future__ import annotations

from tests.helpers import make_study, study_body

API = "/api/v1"
PROGRAM = {"program": "train.py", "command": ["${env}", "${interpreter}", "${program}", "${args}"]}


def claim(client, worker, objective=None, study=None):
    body = {"worker_id": worker, "study": study}
    if objective is not None:
        body["objective"] = objective
    r = client.post(f"{API}/trials/claim", json=body)
    assert r.status_code in (200, 204), r.text
    return r.json() if r.status_code == 200 else None


def test_a_study_stores_what_runs_it(client):
    assert make_study(client, "prog", **PROGRAM)["objective"] == "program"
    read = client.get(f"{API}/studies/prog").json()
    assert read["program"] == "train.py" and read["command"] == PROGRAM["command"]
    assert make_study(client, "cmd-only", command=["bash", "run.sh", "${args}"])["objective"] == "program"
    assert make_study(client, "cnn", objective="builtin")["objective"] == "builtin:cnn"
    assert make_study(client, "fn", objective="my_mod:train")["objective"] == "my_mod:train"
    plain = make_study(client, "plain")
    assert plain["objective"] == "" and plain["program"] is None and plain["command"] is None


def test_contradicting_objective_and_program_is_a_422_that_stores_nothing(client):
    r = client.post(f"{API}/studies", json=study_body("bad", objective="builtin:cnn", **PROGRAM))
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "objective"] and "program" in r.json()["detail"][0]["msg"]
    r = client.post(f"{API}/studies", json=study_body("bad2", objective="program"))
    assert r.status_code == 422 and "needs a `program`" in r.json()["detail"][0]["msg"]
    r = client.post(f"{API}/trials/claim", json={"worker_id": "w", "objective": ""})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "objective"]
    assert client.get(f"{API}/studies").json() == []


def claim_all(client, worker, objective, study=None) -> list[str]:
    studies = []
    for _ in range(20):
        lease = claim(client, worker, objective, study)
        if lease is None:
            return studies
        studies.append(lease["study"])
    raise AssertionError("more claims than trials")


def test_claims_only_hand_out_trials_a_worker_can_run(client):
    for name, extra in (("prog", PROGRAM), ("cnn", {"objective": "builtin:cnn"}),
                        ("fn", {"objective": "my_mod:train"}), ("any", {})):
        make_study(client, name, max_trials=2, **extra)
    assert claim_all(client, "p", "program", study="prog") == ["prog", "prog"]
    assert sorted(claim_all(client, "c", "builtin:cnn")) == ["any", "any", "cnn", "cnn"]
    assert sorted(claim_all(client, "f", "my_mod:train")) == ["fn", "fn"]  # "any" is used up


def test_a_client_that_names_no_objective_takes_any_study(client):
    # A REST script or the SDK says nothing of what it runs: it drives the trials itself.
    make_study(client, "prog", max_trials=2, **PROGRAM)
    make_study(client, "any", max_trials=2)
    assert sorted(claim_all(client, "old", None)) == ["any", "any", "prog", "prog"]


def test_a_worker_never_takes_a_study_of_another_objective(client):
    make_study(client, "prog", max_trials=2, **PROGRAM)
    # Named study of another objective: no trial, and none is drawn for it.
    before = client.get(f"{API}/studies/prog").json()["trials_created"]
    assert claim(client, "c2", "builtin:cnn", study="prog") is None
    assert client.get(f"{API}/studies/prog").json()["trials_created"] == before


def test_claim_next_keeps_the_objective(client):
    make_study(client, "cnn", objective="builtin:cnn", max_trials=5)
    make_study(client, "prog", **PROGRAM)
    lease = claim(client, "c", "builtin:cnn")
    for _ in range(4):
        r = client.post(f"{API}/trials/{lease['trial_id']}/complete", json={
            "lease_token": lease["lease_token"], "value": 1.0,
            "claim_next": {"worker_id": "c", "objective": "builtin:cnn"}})
        assert r.status_code == 200, r.text
        lease = r.json()["next"]
        assert lease is not None and lease["study"] == "cnn"


def test_study_read_counts_workers_and_warns_when_none_can_run_it(client):
    make_study(client, "prog", **PROGRAM)
    read = client.get(f"{API}/studies/prog").json()
    assert read["runnable_by_workers"] == 0
    assert "tuneserve worker --study prog" in read["runner_warning"]
    claim(client, "cnn-worker", "builtin:cnn")  # seen, but it cannot run a program
    assert client.get(f"{API}/studies/prog").json()["runnable_by_workers"] == 0
    make_study(client, "elsewhere", **PROGRAM)
    claim(client, "other-program-worker", "program", study="elsewhere")  # serves another study
    assert client.get(f"{API}/studies/prog").json()["runnable_by_workers"] == 0
    assert claim(client, "prog-worker", "program", study="prog") is not None
    read = client.get(f"{API}/studies/prog").json()
    assert read["runnable_by_workers"] == 1 and read["runner_warning"] is None
    client.post(f"{API}/studies/prog/pause")
    make_study(client, "cnn", objective="builtin:cnn")
    assert client.get(f"{API}/studies/cnn").json()["runnable_by_workers"] == 1  # cnn-worker


def test_trial_log_put_and_get(client):
    make_study(client, "prog", **PROGRAM)
    lease = claim(client, "w", "program", study="prog")
    tid, tok = lease["trial_id"], lease["lease_token"]
    r = client.get(f"{API}/trials/{tid}/log")
    assert r.status_code == 404 and "no log" in r.json()["detail"]
    r = client.put(f"{API}/trials/{tid}/log", json={"lease_token": tok, "text": "epoch 1\n"})
    assert r.status_code == 200 and r.json()["truncated"] is False
    big = "x" * 70_000 + "\nthe end\n"
    r = client.put(f"{API}/trials/{tid}/log", json={"lease_token": tok, "text": big, "size": 500_000})
    assert r.status_code == 200
    log = client.get(f"{API}/trials/{tid}/log").json()
    assert log["text"] == big[-65_536:] and log["text"].endswith("the end\n")
    assert log["size"] == 500_000 and log["truncated"] is True and log["attempt"] == 0
    # Fenced: a wrong token is a 409 and changes nothing; bad input is a 422 naming the field.
    r = client.put(f"{API}/trials/{tid}/log", json={"lease_token": "nope", "text": "forged"})
    assert r.status_code == 409
    r = client.put(f"{API}/trials/{tid}/log", json={"lease_token": tok, "text": 5})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "text"]
    r = client.put(f"{API}/trials/{tid}/log", json={"lease_token": tok, "text": "y" * 262_145})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "text"]
    r = client.put(f"{API}/trials/{tid}/log", json={"lease_token": tok, "text": "y" * 1_048_577})
    assert r.status_code == 413  # past the body limit: refused before it is read
    assert client.get(f"{API}/trials/{tid}/log").json()["text"].endswith("the end\n")
    assert client.get(f"{API}/trials/{tid}/log", params={"attempt": 3}).status_code == 404
    assert client.get(f"{API}/trials/999999/log").status_code == 404
    # After the trial ends, the log stays readable and can no longer be written.
    client.post(f"{API}/trials/{tid}/fail", json={"lease_token": tok, "reason": "boom"})
    assert client.put(f"{API}/trials/{tid}/log", json={"lease_token": tok, "text": "late"}).status_code == 409
    assert client.get(f"{API}/trials/{tid}/log").json()["text"].endswith("the end\n")


def test_readyz_touches_the_database(client):
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["ok"] is True
    client.app.state.db.engine.dispose()
    real = client.app.state.db.transaction

    def broken():
        raise ConnectionError("database down")
    client.app.state.db.transaction = broken
    try:
        r = client.get("/readyz")
    finally:
        client.app.state.db.transaction = real
    assert r.status_code == 503 and r.json()["ok"] is False and r.headers["retry-after"] == "5"


def test_workers_not_seen_for_a_day_are_forgotten(client, db, monkeypatch):
    import time

    from sqlalchemy import select, update

    from tuneserve_service.db.models import WorkerSeen
    from tuneserve_service.domain.core import leases

    monkeypatch.setattr(leases, "_last_prune", time.monotonic())  # the app's own sweep waits an hour

    make_study(client, "w", objective="builtin:cnn")
    for worker in ("old", "new"):
        r = client.post("/api/v1/trials/claim", json={"worker_id": worker, "study": "w", "objective": "builtin:cnn"})
        assert r.status_code == 200
    with db.transaction() as s:
        s.execute(update(WorkerSeen).where(WorkerSeen.id == "old")
                  .values(last_seen_at=WorkerSeen.last_seen_at - leases.WORKERS_KEPT_SECONDS - 60))
    assert leases.forget_idle_workers(db, force=True) == 1
    assert leases.forget_idle_workers(db) == 0  # at most once an hour without force
    with db.transaction() as s:
        assert s.scalars(select(WorkerSeen.id)).all() == ["new"]
