"""Precision of the trial diagnosis on ordinary runs, and whether its proposed variants help.

    python benchmarks/advice.py                  # the committed corpus (no training: seconds)
    python benchmarks/advice.py --shards         # plus benchmarks/data/curves/shard-*.jsonl
    python benchmarks/advice.py --fresh          # only the fresh holdout (indices 1100+)

Ground truth comes from counterfactuals, never from the rules (benchmarks/curves_corpus.py builds
them): every parent run of the built-in trainer was re-run with each change a label implies, on
the parent's seed, and unchanged on one or two other seeds (the seed spread).

  score        the best validation loss over the run's epochs (a run that diverged before any
               finite report scores +inf)
  reference    the configuration's score: the mean of the parent's score over its seeds (the
               parent's own seed and its repeats: one repeat for the edges parents, two for the
               ordinary ones); +inf when the parent's own seed blew up
  seed sd      how much the score moves with the seed alone, for this configuration: the larger
               of the sd of its own seed scores and a floor, FLOOR_SHARE (half) of the pooled
               relative seed sd of comparable runs (same region, edges or ordinary, and same
               learnt-bucket: reference under 0.3 ln C, 0.3..0.8 ln C, above 0.8 ln C) times the
               reference. Why its own: a run that learnt on 1437 images moves far less with the
               seed than one on 144 (a corpus-wide figure is dominated by the tiny-data runs). Why
               a floor: an sd from 2 or 3 seeds is under half the true one about one time in five
               (a chi-square with 1 or 2 degrees of freedom), and a lucky close repeat would then
               make every change look significant.
  spread       SPREAD_SDS (2.5) seed sds. Why 2.5: a change is one run on one seed and the
               reference a mean of 2 or 3, so under no effect their difference has an sd of about
               1.15..1.22 seed sds, and a change passes 2.5 seed sds by luck about 1.5% of the
               time; seven changes are tried per parent, so a run with nothing to fix is scored
               "something fixes it" by luck about one time in ten (at 2 sds it would be one in
               four, and `healthy` could not reach 85% precision even when always right). Worked
               out from these figures after seeing, on the tune half, that at 2 `healthy` was
               right on barely half its runs.
  improves     a change improves a run when its score is below the reference by more than the spread
  label right  its change improves the run: lr_too_high -> lr / 3; diverged -> lr / 3 or lr / 10 (the
               cut variant.py proposes far above the optimizer's usual rate; its run exists only for
               parents that blew up); lr_too_low -> lr x 3;
               overfitting -> dropout +0.2 (weight decay x 10 past 0.7); underfitting -> width x 2 or
               epochs x 2; plateau -> an lr decay schedule; noisy -> lr / 3 or batch x 4. Stopping
               at the best epoch is not scored: it cannot lower the best validation loss.
  healthy right  no change of any label improves the run (nothing to fix)
  truth        for the confusion table: the label whose change improved the run the most (in
               spreads), healthy when none did

Design, within the CPU budget: every parent gets all seven label changes plus repeats: the edges
parents (indices under curves_corpus.ORDINARY_START: lr 1e-6..10, 60..300 optimizer steps, 3..60
epochs, mostly small data fractions) one, the ordinary parents (lr within a decade of the
optimizer's usual value, widths 8..32, full or half data, 5..30 epochs) two: see curves_corpus.py;
`longer` is the parent's own run trained on to twice its epochs. `--shards` reads the generator's
partial output while it runs (the shards win over the committed corpus).

Counting only confident labels (what study advice counts), a label under CONFIDENT, healthy
included, is `unsure`: no claim, so it is in no label's precision and never a false fault (the
confusion tables show it as a column). Counting every label, insufficient counts as healthy.

The fresh holdout (indices from curves_corpus.FRESH_START: 210 more ordinary parents, generated
2026-12-06 12:39-13:57 UTC, read once at 13:57 after the rules were frozen at 12:49) is left out of
every figure unless --fresh, which reports it alone (its seed-spread floors pool it with the other
records of its region).

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
    "diverged": ("lr_down", "lr_down_far"), "lr_too_high": ("lr_down",), "lr_too_low": ("lr_up",),
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


def seed_scores(record: dict[str, Any]) -> list[float]:
    """The scores of the parent's configuration on every seed the corpus ran it with: the parent's
    own seed first, then `repeat` (and `repeat2` for the ordinary parents)."""
    return [score(record["parent"])] + [score(run) for name, run in sorted(record["runs"].items())
                                        if name.startswith("repeat")]


def reference(scores: list[float]) -> float:
    """The configuration's score: the mean over its seeds (inf when the parent's own seed blew up:
    a change that finishes is then an improvement, whatever another seed did)."""
    if not math.isfinite(scores[0]):
        return math.inf
    finite = [x for x in scores if math.isfinite(x)]
    return statistics.mean(finite)


def own_sd(scores: list[float]) -> float | None:
    finite = [x for x in scores if math.isfinite(x)]
    return statistics.stdev(finite) if len(finite) >= 2 else None


def region(record: dict[str, Any]) -> str:
    return "ordinary" if record["index"] >= curves_corpus.ORDINARY_START else "edges"


class Judged:
    """One parent: its diagnosis, its scores, which labels' changes improved it."""

    def __init__(self, record: dict[str, Any], floors: dict[tuple[str, str], float]):
        self.record = record
        self.d = diagnose(record)
        runs = record["runs"]
        scores = seed_scores(record)
        self.parent = reference(scores)
        self.group = (region(record), bucket(record["parent"], self.parent))
        floor = FLOOR_SHARE * floors.get(self.group, 0.0) * (self.parent if math.isfinite(self.parent) else 0.0)
        sd = own_sd(scores)
        self.sd = max(sd if sd is not None else 0.0, floor)
        self.spread = SPREAD_SDS * self.sd
        self.gains = {name: gain(self.parent, score(run)) for name, run in runs.items()
                      if not name.startswith("repeat")}
        self.fixes = {label: max((self.gains.get(c, -math.inf) for c in changes), default=-math.inf) > self.spread
                      for label, changes in CHANGES.items()}
        best = max(((max(self.gains.get(c, -math.inf) for c in changes), label) for label, changes in CHANGES.items()
                    if self.fixes[label]), default=None)
        self.truth = "healthy" if best is None else best[1]
        if self.truth == "lr_too_high" and self.d.label == "diverged":
            self.truth = "diverged"  # same change; a diverged run that lr / 3 saves is a right "diverged"
        self.nothing_to_fix = not any(self.fixes.values())
        self.seed_half = ("fresh" if record["index"] >= curves_corpus.FRESH_START
                          else "tune" if record["seed"] % 2 == 0 else "holdout")

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


SPREAD_SDS = 2.5     # a change improves when it beats the configuration's score by 2.5 seed sds
FLOOR_SHARE = 0.5    # the floor of a run's seed sd: half the pooled sd of comparable runs
BUCKETS = ((0.3, "learnt"), (0.8, "partly"), (math.inf, "near chance"))


def bucket(run: dict[str, Any], best: float) -> str:
    """Comparable runs for the spread: how far below chance ln(C) the best validation loss got."""
    classes = run.get("num_classes") or 10
    if not math.isfinite(best):
        return "diverged"
    ratio = best / math.log(max(2, classes))
    return next(name for edge, name in BUCKETS if ratio < edge)


def relative_spread_floors(records: list[dict[str, Any]]) -> dict[tuple[str, str], float]:
    """The pooled relative seed sd per group of comparable runs (region, bucket): the square root
    of sum((n_i - 1) s_i^2 / m_i^2) / sum(n_i - 1) over parents whose seeds all scored a finite loss
    (s_i the sd of parent i's seed scores, m_i their mean, n_i how many). A seed that diverged where
    the parent did not is left out: it would make a whole group's figure infinite."""
    num: dict[tuple[str, str], float] = defaultdict(float)
    den: dict[tuple[str, str], int] = defaultdict(int)
    for rec in records:
        scores = seed_scores(rec)
        if len(scores) < 2 or not all(math.isfinite(x) for x in scores):
            continue
        m = statistics.mean(scores)
        if m <= 0:
            continue
        key = (region(rec), bucket(rec["parent"], m))
        num[key] += (len(scores) - 1) * (statistics.stdev(scores) / m) ** 2
        den[key] += len(scores) - 1
    return {key: math.sqrt(num[key] / den[key]) for key in num if den[key]}


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
    parser.add_argument("--half", choices=("tune", "holdout", "both", "all"), default="both",
                        help="the old halves by the parent's seed (indices under curves_corpus.FRESH_START)")
    parser.add_argument("--fresh", action="store_true",
                        help="report only the fresh holdout (indices from curves_corpus.FRESH_START on)")
    parser.add_argument("--labels", choices=("confident", "all", "both"), default="both")
    parser.add_argument("--region", choices=("edges", "ordinary", "all"), default="all",
                        help="edges: indices under curves_corpus.ORDINARY_START; ordinary: from it on")
    args = parser.parse_args(argv)
    records = load(args.shards)
    if not args.fresh:  # the fresh holdout is read only with --fresh
        records = [r for r in records if r["index"] < curves_corpus.FRESH_START]
    if args.region != "all":
        records = [r for r in records if region(r) == args.region]
    floors = relative_spread_floors(records)
    judged = [Judged(r, floors) for r in records]
    counts = Counter(j.group for j in judged)
    seeds = Counter(len(seed_scores(r)) for r in records)
    print(f"{len(records)} parent runs ({sum(len(r['runs']) for r in records)} other runs; seeds of the parent: "
          + ", ".join(f"{n} for {k}" for n, k in sorted(seeds.items())) + ")")
    print(f"spread = {SPREAD_SDS:g} x max(the parent's own seed sd, {FLOOR_SHARE:g} x the pooled relative seed sd "
          "of comparable runs x its score); pooled relative sd by region and bucket:")
    print("  " + "; ".join(f"{reg} {name} {100 * floors.get((reg, name), 0.0):.1f}% ({counts[(reg, name)]} runs)"
                           for reg in ("edges", "ordinary") for name in [n for _, n in BUCKETS] + ["diverged"]
                           if counts[(reg, name)]))
    print(f"truth: {dict(Counter(j.truth for j in judged))}; nothing to fix: {sum(j.nothing_to_fix for j in judged)}")
    halves = {"tune": ["tune"], "holdout": ["holdout"], "both": ["tune", "holdout"], "all": ["all"]}[args.half]
    if args.fresh:
        halves = ["fresh"]
    modes = {"confident": [True], "all": [False], "both": [True, False]}[args.labels]
    for half in halves:
        part = ([j for j in judged if j.seed_half != "fresh"] if half == "all"
                else [j for j in judged if j.seed_half == half])
        title = {"all": "whole corpus (old halves)", "tune": "tune half (seed even)", "holdout": "holdout half (seed odd)",
                 "fresh": f"fresh holdout (indices {curves_corpus.FRESH_START}+)"}[half]
        for confident in modes:
            print()
            print(report(part, title, confident)["text"])


if __name__ == "__main__":
    main()
