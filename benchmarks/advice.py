"""Precision of the trial diagnosis on ordinary runs, and whether its proposed variants help.

    python benchmarks/advice.py                  # the committed corpus (no training: seconds)
    python benchmarks/advice.py --shards         # plus benchmarks/data/curves/shard-*.jsonl

Ground truth comes from counterfactuals, never from the rules (benchmarks/curves_corpus.py builds
them): every parent run of the built-in trainer was re-run with each change a label implies, on
the parent's seed, and once more unchanged on another seed.

  score        the best validation loss over the run's epochs (a run that diverged before any
               finite report scores +inf)
  spread       how much the score moves with the seed alone, for this run: the larger of its own
               |parent - repeat| and SPREAD_QUANTILE (the 90th percentile) of the relative repeat
               spread |parent - repeat| / parent over comparable runs (the same learnt-bucket:
               best validation loss under 0.3 ln C, 0.3..0.8 ln C, above 0.8 ln C), times the
               parent's score. Why the 90th percentile and not the median: each parent tries seven
               changes, so a change that beats the median seed spread by chance is found on most
               runs, and "nothing to fix" (healthy) would be scored wrong whenever any of the seven
               was lucky; with the 90th percentile a change must move the score more than nine
               seed draws in ten do. Why per bucket: a run stuck near chance moves by a few percent
               between seeds, a run that learnt on 144 training images by 30% or more; one
               corpus-wide figure would be far too strict for the first and far too loose for the
               second.
  improves     a change improves a run when its score is below the parent's by more than the spread
  label right  its change improves the run: lr_too_high / diverged -> lr / 3; lr_too_low -> lr x 3;
               overfitting -> dropout +0.2 (weight decay x 10 past 0.7); underfitting -> width x 2 or
               epochs x 2; plateau -> an lr decay schedule; noisy -> lr / 3 or batch x 4. Stopping
               at the best epoch is not scored: it cannot lower the best validation loss.
  healthy right  no change of any label improves the run (nothing to fix)
  truth        for the confusion table: the label whose change improved the run the most (in
               spreads), healthy when none did

Design, within the CPU budget: every parent gets all seven label changes plus a repeat (parents of
about 60..300 optimizer steps, 3..60 epochs, mostly small data fractions: see curves_corpus.py);
`longer` is the parent's own run trained on to twice its epochs. `--shards` reads the generator's
partial output while it runs (the shards win over the committed corpus).

Counting only confident labels (what study advice counts), a label under CONFIDENT, healthy
included, is `unsure`: no claim, so it is in no label's precision and never a false fault (the
confusion tables show it as a column). Counting every label, insufficient counts as healthy.

Reported, for the tuning half (seed even) and the held-out half (seed odd), and for every label
and only the confident ones (confidence >= CONFIDENT, what study advice counts):
  - per-label precision and recall, and the confusion table (rows truth, columns diagnosis)
  - the false-fault rate: runs with nothing to fix that got a fault label
  - variants: the share of proposed variants (one per fault diagnosis) that improve their parent,
    against one random notch of the same size per parent (one knob moved one step either way:
    lr x3 or /3, width x2 or /2, epochs x2 or /2, dropout +-0.2 or weight decay x10 or /10, a
    schedule switch, batch x4 or /4), drawn when the corpus was built; and against the mean of
    all label changes (a random pick from the advice's own menu)
Targets (issue 17): false faults <= 5%; each label's precision >= 85%; variants improve >= 1.5x as
often as random notches and in >= 65% of cases; the planted cases (benchmarks/diagnosis.py) >= 90%.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import curves_corpus  # noqa: E402
from tuneserve_service.diagnosis import diagnose_trial  # noqa: E402
from tuneserve_service.diagnosis.trial import CONFIDENT  # noqa: E402
from tuneserve_service.diagnosis.variant import BUILTIN_CNN_DEFAULTS  # noqa: E402

FAULTS = ("diverged", "lr_too_high", "lr_too_low", "overfitting", "underfitting", "plateau", "noisy")
LABELS = ("healthy",) + FAULTS
MIN_CASES = 10  # a label said fewer times than this on a half: its precision is not a measurement
UNSURE = "unsure"  # a label under CONFIDENT, when only confident labels count
CHANGES = {  # the counterfactual runs that decide whether a label is right
    "diverged": ("lr_down",), "lr_too_high": ("lr_down",), "lr_too_low": ("lr_up",),
    "overfitting": ("regularise",), "underfitting": ("wider", "longer"), "plateau": ("decay",),
    "noisy": ("lr_down", "batch_up"),
}
SPACE_INFO = {"defaults": BUILTIN_CNN_DEFAULTS}


def _f(x: Any) -> float:
    if isinstance(x, str):
        return {"nan": math.nan, "infinity": math.inf, "-infinity": -math.inf}.get(x.lower(), math.nan)
    return math.nan if x is None else float(x)


def reports(run: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """A corpus run as the per-epoch reports the server stores."""
    n = len(run["val_loss"])
    out = []
    for i in range(n):
        row = {name: run[name][i] for name in curves_corpus.METRICS if i < len(run[name])}
        if i == 0:
            if run.get("initial_loss") is not None:
                row["initial_loss"] = run["initial_loss"]
            if run.get("num_classes") is not None:
                row["num_classes"] = run["num_classes"]
        out.append((i + 1, row))
    return out


def diagnose(record: dict[str, Any], run: dict[str, Any] | None = None):
    run = run or record["parent"]
    diverged = run.get("diverged") is not None
    return diagnose_trial(reports(run), state="diverged" if diverged else "completed",
                          fail_kind="diverged" if diverged else None, fail_reason=run.get("diverged"),
                          final_metrics=run.get("final"), params=record["params"], space_info=SPACE_INFO)


def score(run: dict[str, Any]) -> float:
    vals = [v for v in (_f(x) for x in run["val_loss"]) if math.isfinite(v)]
    return min(vals) if vals else math.inf


def gain(parent: float, other: float) -> float:
    """How much lower `other` scored (positive: better); inf when only the parent blew up."""
    if math.isinf(parent) and math.isinf(other):
        return 0.0
    if math.isinf(parent):
        return math.inf
    if math.isinf(other):
        return -math.inf
    return parent - other


class Judged:
    """One parent: its diagnosis, its scores, which labels' changes improved it."""

    def __init__(self, record: dict[str, Any], floors: dict[str, float]):
        self.record = record
        self.d = diagnose(record)
        runs = record["runs"]
        self.parent = score(record["parent"])
        repeat = score(runs["repeat"])
        raw = abs(gain(self.parent, repeat))
        floor = floors.get(bucket(record["parent"], self.parent), 0.0)
        self.spread = max(raw if math.isfinite(raw) else 0.0, floor * (self.parent if math.isfinite(self.parent) else 0))
        self.gains = {name: gain(self.parent, score(run)) for name, run in runs.items() if name != "repeat"}
        self.fixes = {label: max((self.gains.get(c, -math.inf) for c in changes), default=-math.inf) > self.spread
                      for label, changes in CHANGES.items()}
        best = max(((max(self.gains.get(c, -math.inf) for c in changes), label) for label, changes in CHANGES.items()
                    if self.fixes[label]), default=None)
        self.truth = "healthy" if best is None else best[1]
        if self.truth == "lr_too_high" and self.d.label == "diverged":
            self.truth = "diverged"  # same change; a diverged run that lr / 3 saves is a right "diverged"
        self.nothing_to_fix = not any(self.fixes.values())
        self.seed_half = "tune" if record["seed"] % 2 == 0 else "holdout"

    def predicted(self, confident_only: bool) -> str:
        label = str(self.d.label)
        if confident_only and (not self.d.confident or label == "insufficient"):
            return UNSURE
        return "healthy" if label == "insufficient" else label

    def right(self, label: str) -> bool:
        if label == "healthy":
            return self.nothing_to_fix
        return self.fixes[label]


def load(shards: bool) -> list[dict[str, Any]]:
    records: dict[int, dict] = {}
    if curves_corpus.CORPUS.exists():
        for rec in curves_corpus.load_corpus():
            records[rec["index"]] = rec
    if shards:
        for path in sorted(curves_corpus.OUT_DIR.glob("shard-*.jsonl")):
            for line in path.read_text().splitlines():
                if line.strip():
                    rec = json.loads(line)
                    records[rec["index"]] = rec
    return [records[k] for k in sorted(records) if records[k]["parent"].get("error") is None]


SPREAD_QUANTILE = 0.9
BUCKETS = ((0.3, "learnt"), (0.8, "partly"), (math.inf, "near chance"))


def bucket(run: dict[str, Any], best: float) -> str:
    """Comparable runs for the spread: how far below chance ln(C) the best validation loss got."""
    classes = run.get("num_classes") or 10
    if not math.isfinite(best):
        return "diverged"
    ratio = best / math.log(max(2, classes))
    return next(name for edge, name in BUCKETS if ratio < edge)


def relative_spread_floors(records: list[dict[str, Any]]) -> dict[str, float]:
    """SPREAD_QUANTILE of the relative repeat spread per bucket (runs whose parent and repeat both
    scored a finite loss; a repeat that diverged where the parent did not is left out, it would make
    the quantile infinite for a whole bucket)."""
    rel: dict[str, list[float]] = defaultdict(list)
    for rec in records:
        a, b = score(rec["parent"]), score(rec["runs"]["repeat"])
        if math.isfinite(a) and math.isfinite(b) and a > 0:
            rel[bucket(rec["parent"], a)].append(abs(a - b) / a)
    return {name: quantile(values, SPREAD_QUANTILE) for name, values in rel.items()}


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    pos = q * (len(ordered) - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def pct(a: int, b: int) -> str:
    return f"{100 * a / b:5.1f}% ({a}/{b})" if b else "   n/a (0/0)"


def report(judged: list[Judged], title: str, confident_only: bool) -> dict[str, Any]:
    lines = [f"### {title}: {len(judged)} runs, {'confident labels only (confidence >= ' + str(CONFIDENT) + ')' if confident_only else 'every label'}"]
    pred = [j.predicted(confident_only) for j in judged]
    table: dict[str, Counter] = defaultdict(Counter)
    for j, p in zip(judged, pred):
        table[j.truth][p] += 1
    cols = [label for label in LABELS + (UNSURE,) if any(table[t][label] for t in table) or label == "healthy"]
    rows = [label for label in LABELS if table[label]]
    lines.append("")
    lines.append("| truth \\ diagnosis | " + " | ".join(cols) + " |")
    lines.append("|---|" + "---|" * len(cols))
    for t in rows:
        lines.append(f"| {t} | " + " | ".join(str(table[t][c]) for c in cols) + " |")
    lines.append("")
    lines.append("| label | said | precision (its change improves / nothing to fix) | recall (of runs it is the truth of) |")
    lines.append("|---|---|---|---|")
    figures: dict[str, Any] = {"precision": {}}
    for label in LABELS:
        said = [j for j, p in zip(judged, pred) if p == label]
        truth = [j for j, p in zip(judged, pred) if j.truth == label]
        if not said and not truth:
            continue
        right = sum(j.right(label) for j in said)
        hit = sum(p == label for j, p in zip(judged, pred) if j.truth == label)
        figures["precision"][label] = (right, len(said))
        few = " (too few to judge)" if 0 < len(said) < MIN_CASES else ""
        lines.append(f"| {label} | {len(said)} | {pct(right, len(said))}{few} | {pct(hit, len(truth))} |")
    lines.append("")
    lines.append("By rule, every label said (confidence: right/said; right = as above): " + ", ".join(
        f"{rule} ({_confidences(js)}): "
        f"{sum(j.right(str(j.d.label) if str(j.d.label) != 'insufficient' else 'healthy') for j in js)}/{len(js)}"
        for rule, js in sorted(_by_rule(judged).items())))
    clean = [(j, p) for j, p in zip(judged, pred) if j.nothing_to_fix]
    false = sum(p not in ("healthy", UNSURE) for _, p in clean)
    figures["false_faults"] = (false, len(clean))
    lines.append("")
    lines.append(f"False faults (a fault named on a run no change improves): {pct(false, len(clean))}  (target <= 5%)")
    # variants
    proposed, random_hits, menu_rates, missing = [], [], [], 0
    for j, p in zip(judged, pred):
        if p in ("healthy", UNSURE) or j.d.variant is None:
            continue
        run = j.record["runs"].get(j.d.variant.notch)
        if run is None or run.get("params_change") != j.d.variant.params_change:
            missing += 1
            continue
        proposed.append(j.gains[j.d.variant.notch] > j.spread)
        random_name = j.record["random"]
        random_hits.append(j.gains.get(random_name, -math.inf) > j.spread)
        menu = [j.gains[c] > j.spread for c in ("lr_down", "lr_up", "regularise", "wider", "longer", "decay", "batch_up")
                if c in j.gains]
        menu_rates.append(sum(menu) / len(menu) if menu else 0.0)
    v_rate = sum(proposed) / len(proposed) if proposed else 0.0
    r_rate = sum(random_hits) / len(random_hits) if random_hits else 0.0
    m_rate = statistics.mean(menu_rates) if menu_rates else 0.0
    figures.update(variant=(sum(proposed), len(proposed)), random=(sum(random_hits), len(random_hits)), menu=m_rate)
    lines.append(f"Variants that improve their parent by more than the spread: {pct(sum(proposed), len(proposed))}"
                 f"{f' ({missing} without a counterfactual)' if missing else ''}  (target >= 65%)")
    lines.append(f"Random notches of the same size on the same parents:      {pct(sum(random_hits), len(random_hits))}"
                 f"  -> ratio {v_rate / r_rate:.2f}x" if r_rate else "  -> ratio n/a" )
    lines.append(f"A random pick from the label changes (expected):          {100 * m_rate:5.1f}%"
                 f"  -> ratio {v_rate / m_rate:.2f}x" if m_rate else "")
    figures["text"] = "\n".join(lines)
    return figures


def _confidences(js: list[Judged]) -> str:
    values = sorted({round(j.d.confidence, 2) for j in js})
    return f"{values[0]:g}" if len(values) == 1 else f"{values[0]:g}..{values[-1]:g}"


def _by_rule(judged: list[Judged]) -> dict[str, list[Judged]]:
    out: dict[str, list[Judged]] = defaultdict(list)
    for j in judged:
        out[j.d.rule].append(j)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shards", action="store_true", help="also read the generator's shard files")
    parser.add_argument("--half", choices=("tune", "holdout", "both", "all"), default="both")
    parser.add_argument("--labels", choices=("confident", "all", "both"), default="both")
    args = parser.parse_args(argv)
    records = load(args.shards)
    floors = relative_spread_floors(records)
    judged = [Judged(r, floors) for r in records]
    counts = Counter(bucket(r["parent"], score(r["parent"])) for r in records)
    print(f"{len(records)} parent runs ({sum(len(r['runs']) for r in records)} counterfactual runs); spread: "
          f"{int(100 * SPREAD_QUANTILE)}th percentile of the relative repeat spread per bucket: "
          + ", ".join(f"{name} {100 * floors.get(name, 0.0):.1f}% ({counts[name]} runs)"
                      for name in [n for _, n in BUCKETS] + ["diverged"] if counts[name]))
    print(f"truth: {dict(Counter(j.truth for j in judged))}; nothing to fix: {sum(j.nothing_to_fix for j in judged)}")
    halves = {"tune": ["tune"], "holdout": ["holdout"], "both": ["tune", "holdout"], "all": ["all"]}[args.half]
    modes = {"confident": [True], "all": [False], "both": [True, False]}[args.labels]
    for half in halves:
        part = judged if half == "all" else [j for j in judged if j.seed_half == half]
        for confident in modes:
            print()
            print(report(part, f"{half} half (seed {'even' if half == 'tune' else 'odd'})" if half != "all"
                         else "whole corpus", confident)["text"])


if __name__ == "__main__":
    main()
