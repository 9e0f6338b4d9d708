"""tpe draws ahead once a study is large (core/draw_ahead.py), and a drawn-ahead row that waited
while results came in is drawn again by the claim that takes it."""
from __future__ import annotations

from tests.helpers import claim, make_study
from tuneserve_service.domain.core import draw_ahead


def _complete(client, lease, value: float) -> None:
    r = client.post(f"/api/v1/trials/{lease['trial_id']}/complete",
                    json={"lease_token": lease["lease_token"], "value": value})
    assert r.status_code == 200, r.text


def _waiting(client, name: str) -> list[dict]:
    return client.get(f"/api/v1/studies/{name}/trials", params={"state": "waiting"}).json()["items"]


def test_tpe_draws_ahead_from_its_history_size_and_stale_rows_are_drawn_again(client, monkeypatch):
    monkeypatch.setitem(draw_ahead.MIN_HISTORY, "tpe", 12)
    make_study(client, "t", method="tpe", max_trials=40)
    for i in range(11):   # below the threshold (the next trial number): each claim draws for itself
        lease = claim(client, "t")
        _complete(client, lease, (lease["params"]["dropout"] - 0.2) ** 2 + i * 1e-3)
        assert _waiting(client, "t") == []
    first = claim(client, "t")   # trial 11; the route then draws trials 12 and 13 ahead
    assert first["method"] == "tpe" and first["number"] == 11
    queued = _waiting(client, "t")
    assert [t["number"] for t in queued] == [12, 13][:draw_ahead.DRAW_AHEAD]
    assert all(t["method"] == "tpe" and t["params"] for t in queued)
    second = claim(client, "t", worker="w2")   # served from the queue as drawn
    assert second["number"] == 12 and second["params"] == queued[0]["params"]
    # Results come in while nobody claims: the queued rows (13, 14) go stale.
    held = [first, second]
    held += [claim(client, "t", worker=f"x{i}") for i in range(draw_ahead.STALE_RESULTS - 2)]
    stale = _waiting(client, "t")
    for i, lease in enumerate(held):
        _complete(client, lease, 0.5 + i * 1e-3)
    assert draw_ahead.top_up(client.app.state.db, "t", "w3") == draw_ahead.DRAW_AHEAD
    after = {t["number"]: t for t in _waiting(client, "t")}
    for t in stale:   # undrawn: no params until a claim draws them
        assert after[t["number"]]["params"] == {}
    fresh = claim(client, "t", worker="w4")   # the oldest waiting row, drawn now from the history as it is
    assert fresh["number"] == stale[0]["number"] and fresh["method"] == "tpe" and fresh["params"]
