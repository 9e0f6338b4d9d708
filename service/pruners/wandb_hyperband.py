"""W&B's `early_terminate: {type: hyperband}`, decided as W&B's own engine decides it.

The rule of W&B's `sweeps` package (src/sweeps/hyperband_stopping.py), restated:
  - bands: with `max_iter` and `s`, start at max_iter and divide by eta s times (floats), keeping
    int() of each quotient while it is >= 1; with `min_iter` alone, int(min_iter * eta^k) for
    k = 0..99. eta (default 3) may be any number > 1, so with eta 1.5 the min_iter ladder is
    1, 1, 2, 3, 5, 7, 11, ...
  - a run's history is its reported values of the metric in report order (negated when the goal
    is maximize), and a band counts reports: band 3 is a run's 3rd value;
  - at each band, the threshold is sorted(values at that band of every run that got there, in any
    state, the judged run included)[int(n / eta)]: with n runs at the band about the best
    floor(n / eta) + 1 go on; with one run there, its own value (it goes on); with two and eta 3,
    the better one's (the other stops);
  - every running run is judged against the latest band it has passed, again and again as other
    runs arrive there (not once, when it crosses the band): it stops when its value there
    (`strict`, W&B's default) or its best value so far (`strict: false`) is above the threshold.
W&B's controller applies this to every running run periodically. tuneserve decides when a
trial reports (`decide`) and re-checks it at each heartbeat (`recheck`), which stands for W&B's
periodic pass. One difference is deliberate: at a report, a trial is stopped only if it would
be stopped whatever the running trials that are one report short of its band report there next
(counted as if they came in worse than it). A report is one of a round of reports that W&B would
judge together, after the round; stopping the second trial of a round against the first alone
(with eta 3, the worse of two stops) would stop trials that W&B keeps. The heartbeat re-check
applies W&B's rule as it is, so such a trial stops at the heartbeat after the round, as in W&B.
benchmarks/wandb_hyperband_replay.py measures the agreement with W&B's engine.

Where the stored form or tuneserve differs from W&B on purpose: `s` must be a whole number (W&B
calls range(s), which fails on 2.5 and even on 2.0); `min_iter` with `max_iter` but no `s` (W&B's
engine fails on the missing `s`) uses the min_iter ladder below max_iter.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from tuneserve_service.pruners.base import Curve, PruneVerdict, bool_option, reject_unknown

WANDB_OPTIONS = ("min_iter", "max_iter", "s", "eta", "strict")
# W&B's min_iter ladder has this many rungs (its loop's range).
MIN_ITER_BANDS = 100


def _number(options: dict[str, Any], name: str, where: str) -> float | int | None:
    value = options.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{where}.{name}: must be a number, got {value!r}")
    return value


def _integer(options: dict[str, Any], name: str, where: str, minimum: int | None = None) -> int | None:
    value = _number(options, name, where)
    if value is None:
        return None
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"{where}.{name}: must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{where}.{name}: must be an integer >= {minimum}, got {value!r}")
    return int(value)


def bands_for(min_iter: int | None, max_iter: int | None, s: int | None, eta: float) -> list[int]:
    """W&B's band ladder (sorted, duplicates dropped: they share one threshold)."""
    bands: list[int] = []
    if max_iter is not None and s is not None:
        band: float = max_iter
        for _ in range(s):
            band /= eta
            if band < 1:
                break
            bands.append(int(band))
    elif min_iter is not None:
        band = min_iter
        for _ in range(MIN_ITER_BANDS):
            if max_iter is not None and int(band) >= max_iter:
                break
            bands.append(int(band))
            band *= eta
    return sorted(set(bands))


@dataclass(frozen=True)
class WandbHyperbandPruner:
    eta: float = 3
    strict: bool = True
    min_iter: int | None = None
    max_iter: int | None = None
    s: int | None = None
    bands: tuple[int, ...] = ()

    # The heartbeat re-checks a running trial (domain.pruning.recheck_decision).
    rechecks = True

    @classmethod
    def from_options(cls, options: dict[str, Any], where: str = "early_terminate") -> WandbHyperbandPruner:
        reject_unknown(options, set(WANDB_OPTIONS), where)
        eta = _number(options, "eta", where)
        if eta is None:
            eta = 3
        if eta <= 1:
            raise ValueError(f"{where}.eta: must be a number > 1 (the top 1/eta go on at each band), got {eta!r}")
        strict = bool_option(options, "strict", where, default=True)
        min_iter = _integer(options, "min_iter", where, minimum=1)
        max_iter = _integer(options, "max_iter", where)
        s = options.get("s")
        if s is not None:
            _number(options, "s", where)
            if isinstance(s, float) and not s.is_integer():
                raise ValueError(f"{where}.s: must be a whole number of bands (W&B's engine runs range(s)), "
                                 f"got {s!r}")
            s = int(s)
        if max_iter is not None and s is None and min_iter is None:
            raise ValueError(f"{where}.s: required with max_iter (bands at max_iter / eta^k for k = 1..s), "
                             f"or give min_iter instead")
        if max_iter is None and min_iter is None:
            raise ValueError(f"{where}: hyperband needs min_iter, or max_iter with s (W&B's schema)")
        if min_iter is not None and max_iter is not None and s is None and max_iter <= min_iter:
            raise ValueError(f"{where}.max_iter: must be greater than min_iter ({min_iter})")
        bands = bands_for(min_iter, max_iter, s, eta)
        if not bands:
            raise ValueError(f"{where}: no band >= 1 (bands are int(max_iter / eta^k) for k = 1..s): increase "
                             f"max_iter or s, or decrease eta (W&B refuses an empty band list)")
        return cls(eta, strict, min_iter, max_iter, s, tuple(bands))

    def to_options(self) -> dict[str, Any]:
        out: dict[str, Any] = {"eta": self.eta, "strict": self.strict}
        for key in ("min_iter", "max_iter", "s"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    # --- W&B's rule ------------------------------------------------------------------------------

    def thresholds(self, histories: list[list[float]]) -> list[float]:
        """Per band, the value a run must not exceed there."""
        r = 1.0 / self.eta
        out = []
        for band in self.bands:
            values = sorted(h[band - 1] for h in histories if len(h) >= band)
            out.append(values[int(r * len(values))] if values else math.inf)
        return out

    def _judge(self, trial: Curve, others: list[Curve], goal: str, robust: bool) -> PruneVerdict:
        mine = [v for _, v in trial.losses(goal)]
        band_index = max((i for i, b in enumerate(self.bands) if b <= len(mine)), default=None)
        if band_index is None:
            return PruneVerdict(False, f"hyperband: {len(mine)} report(s), first band at {self.bands[0]}")
        band = self.bands[band_index]
        peers = [o for o in others if o.trial_id != trial.trial_id]
        histories = [[v for _, v in p.losses(goal)] for p in peers]
        values = [h[band - 1] for h in histories if len(h) >= band] + [mine[band - 1]]
        if robust:
            # Running trials one report short of this band may report there in the same round.
            behind = sum(1 for p, h in zip(peers, histories) if p.state == "running" and len(h) == band - 1)
            values += [math.inf] * behind
        values.sort()
        threshold = values[int((1.0 / self.eta) * len(values))]
        value = mine[band - 1] if self.strict else min(mine)
        sign = 1.0 if goal == "minimize" else -1.0
        what = "value" if self.strict else "best value"
        if value > threshold:
            return PruneVerdict(True, f"hyperband: at band {band} the {what} {sign * value:.6g} is worse than the "
                                  f"threshold {sign * threshold:.6g} (top 1/{self.eta:g} of {len(values)} go on)")
        return PruneVerdict(False, f"hyperband: band {band}, {what} {sign * value:.6g} within the threshold "
                               f"{sign * threshold:.6g}")

    def decide(self, trial: Curve, others: list[Curve], goal: str) -> PruneVerdict:
        """At a report: stop only what W&B's next pass would stop whatever the trials one report
        short of the band report there (see the module docstring)."""
        return self._judge(trial, others, goal, robust=True)

    def recheck(self, trial: Curve, others: list[Curve], goal: str) -> PruneVerdict:
        """At a heartbeat: W&B's rule as it is."""
        return self._judge(trial, others, goal, robust=False)
