"""The history the optimizers read: every trial's params, value and state, with params decoded
only when an engine looks at them (JsonParams), identical to what was stored, on both backends."""
from __future__ import annotations

from tuneserve_service.db.engine import Database
from tuneserve_service.store import studies as study_store
from tuneserve_service.store import trials as trial_store
from tests.helpers import claim, make_study


def test_history_params_decode_lazily_to_what_was_stored(client, database_url):
    make_study(client)
    sent = [{"lr": 0.001, "dropout": 0.25, "optimizer": {"name": "adam", "momentum": 0.9}},
            {"lr": 1e-4, "dropout": 0.0, "optimizer": {"name": "sgd", "momentum": 0.9}}]
    for p in sent:
        assert client.post("/api/v1/studies/s/enqueue", json={"params": p}).status_code == 201
    lease = claim(client)
    r = client.post(f"/api/v1/trials/{lease['trial_id']}/complete",
                    json={"lease_token": lease["lease_token"], "value": 0.5})
    assert r.status_code == 200, r.text

    db = Database(database_url)
    try:
        with db.transaction() as s:
            study = study_store.find_study(s, "s")
            rows = trial_store.history(s, study.id)
    finally:
        db.dispose()
    assert all(params._data is None for params, _, _ in rows)   # nothing decoded yet
    by_state = {state: (params, value) for params, value, state in rows}
    done, value = by_state["completed"]
    assert value == 0.5
    assert done == {"lr": 0.001, "dropout": 0.25, "optimizer.name": "adam", "optimizer.momentum": 0.9}
    assert dict(done) == done and len(done) == 4 and done["lr"] == 0.001
    waiting, value = by_state["waiting"]
    assert value is None and waiting["optimizer.name"] == "sgd" and waiting["lr"] == 1e-4
