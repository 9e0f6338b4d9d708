"""W&B's hyperband early termination, on cases computed by hand from W&B's rule (no W&B import):
its band ladders, its quantile, bands with few runs, strict, a non-integer eta, the re-check of
running trials, and tuneserve's report-time caution (benchmarks/wandb_hyperband_replay.py compares
with W&B's own engine)."""
from __future__ import annotations

import pytest

from tuneserve_service.pruners import Curve, WandbHyperbandPruner, build_pruner, pruner_from_wandb
from tuneserve_service.pruners.wandb_hyperband import bands_for


def pruner(**block) -> WandbHyperbandPruner:
    return build_pruner(pruner_from_wandb({"type": "hyperband", **block}))


def curve(trial_id: int, values: list[float], state: str = "running") -> Curve:
    return Curve(trial_id, {step: v for step, v in enumerate(values, start=1)}, state)


@pytest.mark.parametrize("block, bands", [
    ({"min_iter": 3}, [3, 9, 27, 81]),                        # eta defaults to 3
    ({"min_iter": 2, "eta": 2}, [2, 4, 8, 16]),
    ({"max_iter": 27, "s": 2}, [3, 9]),                       # 27/3 = 9, 9/3 = 3
    ({"max_iter": 20, "s": 3, "eta": 2}, [2, 5, 10]),        # 10.0, 5.0, 2.5 -> int
    ({"max_iter": 10, "s": 5}, [1, 3]),                       # 3.33, 1.11, then 0.37 < 1 stops
    ({"max_iter": 5, "s": 2, "eta": 2}, [1, 2]),              # W&B's own docstring example
    ({"min_iter": 1, "eta": 1.5}, [1, 2, 3, 5, 7]),           # 1, 1.5, 2.25, 3.375, 5.06, 7.59
    ({"max_iter": 10, "s": 3, "eta": 1.5}, [2, 4, 6]),        # 6.67, 4.44, 2.96
    ({"min_iter": 3, "max_iter": 27, "s": 1}, [9]),           # max_iter and s take precedence
    ({"min_iter": 2, "max_iter": 30}, [2, 6, 18]),            # no s: min_iter's ladder below max_iter
])
def test_band_ladders(block, bands):
    assert list(pruner(**block).bands[:len(bands)]) == bands


def test_min_iter_ladder_has_wandbs_hundred_steps():
    assert bands_for(1, None, None, 1.01)[-1] == 2           # 1.01^99 = 2.68: only bands 1 and 2 ever
    assert len(bands_for(1, None, None, 3)) == 100


def test_wandb_docstring_example():
    # max_iter 5, eta 2, s 2 -> bands [1, 2]. At band 2 the values are 9, 10, 8, 7, 6: the threshold
    # is sorted(...)[int(5 / 2)] = 8, so b (10) stops and c (8, not above 8) goes on.
    p = pruner(max_iter=5, eta=2, s=2)
    runs = {
        "a": curve(1, [10, 9], "completed"),
        "b": curve(2, [10, 10]),
        "c": curve(3, [10, 8, 8]),
        "d": curve(4, [10, 7, 7]),
        "e": curve(5, [10, 6, 6], "completed"),
    }
    decisions = {name: p.recheck(run, [o for o in runs.values() if o is not run], "minimize").stop
                 for name, run in runs.items() if run.state == "running"}
    assert decisions == {"b": True, "c": False, "d": False}
    assert p.thresholds([[10, 9], [10, 10], [10, 8, 8], [10, 7, 7], [10, 6, 6]]) == [10, 8]


@pytest.mark.parametrize("n, kept", [(1, 1), (2, 1), (3, 2), (4, 2), (5, 2), (6, 3), (9, 4), (10, 4), (27, 10)])
def test_about_the_best_floor_n_over_eta_plus_one_go_on(n, kept):
    p = pruner(min_iter=1, eta=3)
    runs = [curve(i, [float(i)], "completed") for i in range(n)]     # run i has value i: 0 is best
    judged = [p.recheck(r, [o for o in runs if o is not r], "minimize").stop for r in runs]
    assert judged == [False] * kept + [True] * (n - kept)
    assert kept == n // 3 + 1


def test_a_run_alone_at_a_band_goes_on_and_the_worse_of_two_stops():
    p = pruner(min_iter=2)
    alone = curve(1, [5.0, 9.0])
    assert p.recheck(alone, [], "minimize").stop is False
    better = curve(2, [5.0, 1.0], "completed")
    assert p.recheck(alone, [better], "minimize").stop is True      # threshold sorted([1, 9])[0] = 1
    assert p.recheck(better, [alone], "minimize").stop is False


def test_before_the_first_band_nothing_stops():
    p = pruner(min_iter=3)
    awful = curve(1, [50.0, 60.0])
    peers = [curve(10 + i, [1.0, 1.0, 1.0], "completed") for i in range(5)]
    assert p.recheck(awful, peers, "minimize").stop is False


def test_a_run_is_judged_at_the_latest_band_it_passed():
    # Bands 1 and 3. The run was fine at band 1 and is judged at band 3 once it has 3 to 8 reports.
    p = pruner(min_iter=1, eta=3)
    peers = [curve(10 + i, [5.0, 2.0, 1.0 + i * 0.1], "completed") for i in range(4)]
    run = curve(1, [1.0, 3.0, 4.0, 0.1])
    # At band 3 the values are 1.0, 1.1, 1.2, 1.3 and 4.0: the threshold is sorted(...)[1] = 1.1.
    decision = p.recheck(run, peers, "minimize")
    assert decision.stop is True and "band 3" in decision.reason
    # strict: false uses the best value so far (0.1, after the band): it goes on.
    assert pruner(min_iter=1, eta=3, strict=False).recheck(run, peers, "minimize").stop is False


def test_running_runs_are_rechecked_as_others_arrive_at_their_band():
    p = pruner(min_iter=2, eta=2)
    early = curve(1, [3.0, 2.0, 1.9])                    # passed band 2 alone: it went on
    assert p.recheck(early, [], "minimize").stop is False
    later = [curve(10 + i, [2.5, 1.0 + 0.1 * i]) for i in range(3)]   # 1.0, 1.1, 1.2 at band 2
    # No new report from `early`, yet its band-2 value now ranks 4th of 4: threshold [1.0, 1.1, 1.2, 2.0][2].
    assert p.recheck(early, later, "minimize").stop is True


def test_maximize_negates_the_metric():
    p = pruner(min_iter=1, eta=2)
    runs = [curve(1, [0.9], "completed"), curve(2, [0.8], "completed"), curve(3, [0.5])]
    assert p.recheck(runs[2], runs[:2], "maximize").stop is True
    assert p.recheck(runs[2], runs[:2], "minimize").stop is False
    assert "0.5" in p.recheck(runs[2], runs[:2], "maximize").reason      # quoted in the metric's own sign


def test_non_integer_eta_uses_wandbs_quantile():
    # eta 1.5: int(n / 1.5) -> with 4 runs at the band, index 2: the 3 best go on.
    p = pruner(min_iter=1, eta=1.5)
    runs = [curve(i, [float(i)], "completed") for i in range(4)]
    assert [p.recheck(r, [o for o in runs if o is not r], "minimize").stop for r in runs] == [False] * 3 + [True]


def test_ties_at_the_threshold_go_on():
    p = pruner(min_iter=1, eta=3)
    runs = [curve(i, [1.0], "completed") for i in range(6)]
    assert not any(p.recheck(r, [o for o in runs if o is not r], "minimize").stop for r in runs)


def test_report_time_waits_for_the_round_and_the_heartbeat_does_not():
    # Round-robin: three trials report band 1 in turn. The 2nd reports 2.0 after the 1st's 1.0; W&B
    # judges after the round, when the 3rd (1.5) is in too: sorted([1, 1.5, 2])[1] = 1.5, so the 2nd
    # stops. At its own report the 3rd had not reported yet, so the report does not stop it
    # (W&B might have kept it, had the 3rd come in worse); the heartbeat after the round does.
    p = pruner(min_iter=1, eta=3)
    first = curve(1, [1.0])
    second = curve(2, [2.0])
    third_before = curve(3, [])
    assert p.decide(second, [first, third_before], "minimize").stop is False
    assert p.recheck(second, [first, third_before], "minimize").stop is True      # W&B's rule now
    third = curve(3, [1.5])
    assert p.recheck(second, [first, third], "minimize").stop is True
    # A trial that would stop however the missing round came in stops at its report.
    worst = curve(4, [9.0])
    done = [curve(10 + i, [0.5], "completed") for i in range(4)]
    assert p.decide(worst, [*done, third_before], "minimize").stop is True


def test_stored_config_parses_back_to_the_same_pruner():
    block = {"type": "hyperband", "max_iter": 81, "s": 3, "eta": 2.5, "strict": False}
    config = pruner_from_wandb(block)
    assert config.to_dict() == block
    assert build_pruner(config) == pruner(max_iter=81, s=3, eta=2.5, strict=False)
