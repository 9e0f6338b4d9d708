"""Rerun any trial exactly (issue 19 item 5): the worker's provenance is stored once per attempt from
the first report (or the completion) and shown in the trial read, the CLI and the dashboard's data;
POST /trials/{id}/rerun enqueues the run again (same params and seed, same data subset and
fidelity) into the trial's study or another, recording the trial it reruns, with a clear 4xx for
each way it cannot; migration 0014 adds the table and drops it again."""
from __future__ import annotations


import httpx

from tests.helpers import claim, enqueue, make_study, post
from tests.support.databases import table_names
from tests.test_cli import cli  # noqa: F401  (the fixture: a CliRunner over the app)
from tests.test_enum_checks import fresh_url  # noqa: F401  (the fixture: a database no migration touched)
from tuneserve_service.auth.guard import needs_admin

API = "/api/v1"
PARAMS = {"lr": 0.1, "dropout": 0.2, "optimizer": {"name": "sgd", "momentum": 0.9}, "seed": 7}
PROVENANCE = {
    "objective": "builtin:cnn", "seed": 7, "device": "cpu",
    "versions": {"python": "3.11.9", "torch": "2.13.0", "cuda": None, "cudnn": None, "tuneserve": "0.1.0"},
    "code": {"path": "/srv/train.py", "sha256": "ab" * 32, "git_commit": "c0ffee" * 6 + "beef", "git_dirty": True},
    "command": ["python", "train.py", "--lr=0.1"],
    "fidelity": {"data_fraction": 0.5, "subset_digest": "3767db5fe6ded5ff", "train_samples": 719},
    "determinism": {"deterministic": False, "num_threads": 1}, "dataset": "digits",
}


def run(client, study="s", provenance=PROVENANCE, on_complete=False, value=1.0, metrics=None):
    """Claim, report two epochs (the first with the provenance), complete; the trial's id."""
    lease = claim(client, study)
    tid, tok = lease["trial_id"], lease["lease_token"]
    for step in (1, 2):
        body = {"lease_token": tok, "step": step, "metrics": {"train_loss": 2.0 / step, "val_loss": 2.1 / step}}
        if step == 1 and provenance is not None and not on_complete:
            body["provenance"] = provenance
        r = post(client, f"/trials/{tid}/report", body)
        assert r.status_code == 200, r.text
    body = {"lease_token": tok, "value": value, "metrics": metrics or {}}
    if on_complete:
        body["provenance"] = provenance
    assert post(client, f"/trials/{tid}/complete", body).status_code == 200
    return tid


def test_the_first_report_stores_the_provenance_and_the_read_shows_it(client):
    make_study(client, max_trials=2)
    enqueue(client, PARAMS)
    tid = run(client)
    read = client.get(f"{API}/trials/{tid}").json()
    p = read["provenance"]
    assert p["attempt"] == 0 and p["seed"] == 7 and p["versions"]["torch"] == "2.13.0"
    assert p["code"] == PROVENANCE["code"] and p["command"] == PROVENANCE["command"]
    assert p["fidelity"]["subset_digest"] == "3767db5fe6ded5ff" and p["determinism"]["num_threads"] == 1
    assert p["dataset"] == "digits"  # a field beyond the named ones is kept as sent
    # The list reads stay as narrow as they were; the dashboard's trial data carries it.
    listed = client.get(f"{API}/studies/s/trials").json()["items"][0]
    assert listed["provenance"] is None
    assert client.get(f"/dashboard/api/trials/{tid}").json()["provenance"]["code"]["sha256"] == "ab" * 32


def test_a_run_that_reported_nothing_sends_it_with_its_completion(client):
    make_study(client, max_trials=1)
    enqueue(client, PARAMS)
    tid = run(client, on_complete=True)
    assert client.get(f"{API}/trials/{tid}").json()["provenance"]["seed"] == 7


def test_provenance_is_fenced_by_the_lease_and_checked(client):
    make_study(client, max_trials=1)
    enqueue(client, PARAMS)
    lease = claim(client)
    tid = lease["trial_id"]
    r = post(client, f"/trials/{tid}/report", {"lease_token": "0" * 32, "step": 1, "metrics": {"val_loss": 1.0},
                                                "provenance": PROVENANCE})
    assert r.status_code == 409
    assert client.get(f"{API}/trials/{tid}").json()["provenance"] is None  # a stranger's is not stored
    r = post(client, f"/trials/{tid}/report", {"lease_token": lease["lease_token"], "step": 1,
                                                "metrics": {"val_loss": 1.0}, "provenance": {"seed": "seven"}})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-2:] == ["provenance", "seed"]
    big = {**PROVENANCE, "command": ["x" * 1000] * 40}
    r = post(client, f"/trials/{tid}/report", {"lease_token": lease["lease_token"], "step": 1,
                                                "metrics": {"val_loss": 1.0}, "provenance": big})
    assert r.status_code == 422 and "at most 32768 bytes" in r.text


def test_rerun_enqueues_the_same_run_and_records_the_trial_it_reruns(client):
    make_study(client, max_trials=1)
    enqueue(client, PARAMS)
    tid = run(client)
    assert client.get(f"{API}/studies/s").json()["state"] == "finished"
    r = post(client, f"/trials/{tid}/rerun")
    assert r.status_code == 201, r.text
    new = r.json()
    assert new["params"] == PARAMS and new["state"] == "waiting" and new["method"] == "enqueued"
    assert new["rerun_of"] == tid and new["parent_trial_id"] == tid and new["advice_notch"] == "rerun"
    assert new["study"] == "s" and new["id"] != tid
    study = client.get(f"{API}/studies/s").json()
    assert study["state"] == "running" and study["max_trials"] == 2  # an explicit extra spend, like a repeat
    assert study["advice_tried"] == {"tried": 0, "helped": 0, "pending": 0}  # a rerun is no advice
    lease = claim(client)
    assert lease["trial_id"] == new["id"] and lease["params"] == PARAMS  # the same seed goes to the worker


def test_rerun_into_another_study_keeps_the_data_subset_and_fidelity(client):
    fidelity = {"data_fraction": 0.5, "data_seed": 3, "epochs": 2}
    make_study(client, "a", max_trials=1, fidelity=fidelity)
    make_study(client, "b", max_trials=1, fidelity=fidelity)
    make_study(client, "c", max_trials=1, fidelity={**fidelity, "data_fraction": 0.25})
    make_study(client, "plain", max_trials=1, parameters={
        "lr": {"min": 0.01, "max": 1.0}, "dropout": {"min": 0.0, "max": 0.7}, "data_fraction": {"min": 0.1, "max": 1.0},
        "data_seed": {"value": 3}, "epochs": {"value": 2},
        "optimizer": {"parameters": {"name": {"values": ["sgd"]}, "momentum": {"value": 0.9}}}})
    enqueue(client, PARAMS, "a")
    tid = run(client, "a")
    new = post(client, f"/trials/{tid}/rerun", {"study": "b"}).json()
    assert new["study"] == "b" and new["rerun_of"] == tid and new["fidelity"]["data_fraction"] == 0.5
    lease = claim(client, "b")
    assert lease["params"] == {**PARAMS, "data_fraction": 0.5, "data_seed": 3, "epochs": 2}
    # A study that searches the knobs takes them as params, the same values.
    new = post(client, f"/trials/{tid}/rerun", {"study": "plain"}).json()
    assert new["params"]["data_fraction"] == 0.5 and new["params"]["seed"] == 7
    assert new["fidelity"]["data_fraction"] == 0.5 and new["fidelity"]["data_seed"] == 3
    # Another fidelity: a 422 naming the knob.
    r = post(client, f"/trials/{tid}/rerun", {"study": "c"})
    assert r.status_code == 422, r.text
    detail = r.json()["detail"][0]
    assert detail["loc"] == ["body", "study"]
    assert "study 'c' runs every trial with data_fraction = 0.25" in detail["msg"] and "data_fraction = 0.5" in detail["msg"]


def test_rerun_refusals_say_why(client):
    make_study(client, max_trials=2)
    make_study(client, "narrow", max_trials=5, parameters={"lr": {"min": 0.2, "max": 1.0}, "dropout": {"value": 0.2},
                                                           "optimizer": {"parameters": {"name": {"values": ["sgd"]},
                                                                                         "momentum": {"value": 0.9}}}})
    make_study(client, "other", max_trials=5, parameters={"width": {"values": [8, 16]}})
    make_study(client, "halted", max_trials=5)
    enqueue(client, PARAMS)
    tid = run(client)
    waiting = enqueue(client, {**PARAMS, "lr": 0.2})

    r = post(client, "/trials/999999/rerun")
    assert r.status_code == 404 and r.json()["code"] == "trial_not_found"
    r = post(client, f"/trials/{tid}/rerun", {"study": "nope"})
    assert r.status_code == 404 and r.json()["code"] == "study_not_found" and "'nope'" in r.text
    r = post(client, f"/trials/{waiting['id']}/rerun")
    assert r.status_code == 409 and r.json()["code"] == "not_rerunnable" and "never ran" in r.text
    assert post(client, "/studies/halted/stop").status_code == 200
    r = post(client, f"/trials/{tid}/rerun", {"study": "halted"})
    assert r.status_code == 409 and r.json()["code"] == "invalid_study_state" and "stopped" in r.text
    r = post(client, f"/trials/{tid}/rerun", {"study": "narrow"})
    assert r.status_code == 422
    msg = r.json()["detail"][0]["msg"]
    assert "its lr = 0.1 is outside the space, where lr is uniform in [0.2, 1]" in msg, msg
    r = post(client, f"/trials/{tid}/rerun", {"study": "other"})
    assert r.status_code == 422 and "unknown parameter" in r.json()["detail"][0]["msg"]
    r = post(client, f"/trials/{tid}/rerun", {"study": "narrow", "extra": 1})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "extra"]
    # Nothing was enqueued by the refusals.
    assert client.get(f"{API}/studies/narrow").json()["trials_created"] == 0


def test_rerun_is_for_admins():
    assert needs_admin("POST", "/api/v1/trials/{trial_id}/rerun")
    assert not needs_admin("POST", "/api/v1/trials/{trial_id}/report")


def test_the_cli_shows_the_provenance_and_reruns(cli, live_server):
    url = live_server.url
    with httpx.Client(base_url=url, timeout=30) as c:
        make_study(c, max_trials=1)
        make_study(c, "other", max_trials=1)
        enqueue(c, PARAMS)
        tid = run(c)
        r = cli("trial", "show", str(tid), "-s", url, "--log-lines", "0")
        assert r.exit_code == 0, r.output
        assert "provenance (attempt 0, worker w1, cpu): python 3.11.9, torch 2.13.0, tuneserve 0.1.0" in r.output
        assert "code: /srv/train.py (git c0ffeec0ffee (dirty), sha256 abababababababab)" in r.output
        assert "command: python train.py --lr=0.1" in r.output
        assert "seed 7, data digits, subset 3767db5fe6ded5ff (719 train)" in r.output
        r = cli("trial", "rerun", str(tid), "--study", "other", "-s", url)
        assert r.exit_code == 0, r.output
        assert f"(study other, #0): a rerun of trial {tid}" in r.output and "seed = 7" in r.output
        new = c.get(f"{API}/studies/other/trials").json()["items"][0]
        r = cli("trial", "show", str(new["id"]), "-s", url, "--log-lines", "0")
        assert f"rerun of trial {tid}" in r.output
        r = cli("trial", "rerun", "424242", "-s", url)
        assert r.exit_code != 0 and "trial 424242 not found" in r.output


def test_migration_0014_adds_the_table_and_its_downgrade_drops_it(fresh_url):
    from alembic import command

    from tuneserve_service.db.migrate import alembic_config, upgrade

    upgrade(fresh_url, "0013")
    assert "trial_provenance" not in table_names(fresh_url)
    upgrade(fresh_url, "0014")
    assert "trial_provenance" in table_names(fresh_url)
    command.downgrade(alembic_config(fresh_url), "0013")
    assert "trial_provenance" not in table_names(fresh_url)


def test_a_worker_reports_without_provenance_to_a_server_that_refuses_it():
    """An older server answers the provenance field with a 422: the report is sent again without it
    (the run matters more than its provenance), once."""
    from datetime import datetime, timezone

    from tuneserve.errors import ApiError
    from tuneserve.schemas.trials import Decision, TrialLease
    from tuneserve_workers.loop import ServerContext, Worker

    class OldServer:
        def __init__(self):
            self.bodies = []

        def report(self, trial_id, token, step, metrics, provenance=None, **kw):
            self.bodies.append(provenance)
            if provenance is not None:
                raise ApiError(422, [{"loc": ["body", "provenance"], "msg": "Extra inputs are not permitted"}])
            return Decision(should_stop=False)

    worker = Worker("http://127.0.0.1:9", lambda params, ctx: 0.0, worker_id="w-old", objective_name="builtin:cnn")
    worker.client = OldServer()
    lease = TrialLease(trial_id=1, study="s", number=0, params={"seed": 3}, attempt=0, lease_token="t" * 32,
                       lease_expires_at=datetime.now(timezone.utc), lease_seconds=30.0,
                       metric={"name": "val_loss", "goal": "minimize"}, method="random")
    ctx = ServerContext(worker, lease)
    assert ctx.report(1, val_loss=1.0) and ctx.report(2, val_loss=0.5)
    first, again, second = worker.client.bodies
    assert first["seed"] == 3 and first["worker_id"] == "w-old" and again is None and second is None
