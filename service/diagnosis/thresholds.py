"""Every number the diagnosis rules compare against, in one place, with the practitioners' reason.

Losses are judged on the scale of the chance loss ln(C) for C classes when the trial reports
`num_classes` (a classifier that knows nothing scores ln(C) in cross-entropy), and on the scale of
the trial's own starting loss otherwise (regression, unknown C).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Thresholds:
    # --- divergence ---------------------------------------------------------------------------
    # The built-in trainer ends a run whose loss passes 100 ln(C) (workers/training/run.py): batch
    # norm and clipping can keep such a loss finite, but no schedule brings it back.
    exploded_factor: float = 100.0
    # A loss before any update above 3 ln(C) means the logits start huge: inputs or initial weights
    # far too large (unnormalised inputs give 100-1000x). Healthy inits start within ~10% of ln(C).
    bad_scale_factor: float = 3.0
    # Before any update an untrained classifier cannot beat chance by much; a first loss under half
    # of ln(C) means labels leak into the inputs or the loss is not cross-entropy over C classes.
    leak_factor: float = 0.5

    # --- is it learning at all ----------------------------------------------------------------
    # "Too small: the loss barely moves": the best training loss is less than 10% below the start.
    no_progress: float = 0.10
    # "Too large: the loss explodes": in the first `early_steps` reports the loss went 1.5x above
    # where it started (a healthy first epoch at a good lr averages at most ~1.2x the first batch).
    rise_factor: float = 1.5
    early_steps: int = 3
    # The update-to-weight ratio should be about 1e-3 (CRAFT.md): below 1e-4 the weights crawl,
    # above 3e-2 every step rewrites a few percent of them, which is unstable.
    update_ratio_low: float = 1e-4
    update_ratio_high: float = 3e-2

    # --- the shape of a learning curve --------------------------------------------------------
    # A curve has stalled when its last `stall_steps` reports gained less than 3% on the one before.
    stall_steps: int = 3
    stall_gain: float = 0.03
    # A curve that fell by at least 30% has learnt something; if it then stalls, it plateaued.
    learnt: float = 0.30
    # Fitted: a training loss at 5% of ln(C) (about 95%+ training accuracy) or accuracy >= 99%.
    fitted_loss: float = 0.05
    fitted_acc: float = 0.99
    # Underfitting: both curves high. "High" is a training loss still above half of ln(C), or a
    # training accuracy under 60% when C is unknown; the validation loss within 1.3x of it.
    underfit_loss: float = 0.5
    underfit_acc: float = 0.60
    underfit_gap: float = 1.3
    # Learning slowly: still at a new low at the last of at least 4 reports, 0.5%..15% lower than 3
    # reports before (faster is learning well), still above 60% of ln C, with updates under 1e-2
    # (10x the healthy ~1e-3): the run is heading down, too slowly, and larger steps are still safe.
    slow_min_steps: int = 4
    slow_fall: float = 0.005
    slow_max_fall: float = 0.15
    slow_high: float = 0.6
    slow_max_update_ratio: float = 1e-2
    # ...and with no generalisation gap yet: the last training loss at least 0.95x the last
    # validation loss. A training loss already well below the validation loss says the limit is
    # generalisation, not the step size (the corpus's tune half: the slow runs with such a gap were
    # not helped by lr x 3).
    slow_min_train_share: float = 0.95
    # ...and, on SGD and Nesterov (one global rate), an lr at most a third of the optimizer's usual
    # rate (variant.USUAL_LR, 0.05): lr x 3 still no higher than it. At or near the usual rate a
    # slowly falling curve is the data or the model, not the step size: on the corpus (both old
    # halves, 2026-12-06) lr x 3 beat the seed spread on 2 of 10 such `slow` runs, against 12 of 12
    # below a third of it. Adam and AdamW are exempt: their usual 1e-3 is the low end for these
    # small nets (lr x 3 helped 22 of 25 slow Adam runs at 0.4..7x of it). Only when the optimizer
    # is known (the trial's params or the objective's defaults).
    slow_sgd_max_lr_share: float = 1 / 3
    # Nothing learnt at an lr 3x or more above the optimizer's usual rate, on a loss that went up at
    # least once, is not "lr too low, raise it 3x" (which the text would say): on the corpus (old
    # halves) lr x 3 helped 2 of 16 such runs, lr / 3 helped 6. Named lr_too_high, a guess (0.4).
    nothing_learnt_high_lr: float = 3.0

    # Healthy and settled: "nothing to change" is claimed confidently only for a run whose best
    # validation loss got under 30% of ln C (it learnt the task). One that stopped higher up, with
    # no fault the rules name, is a guess: on the corpus's tune half a wider net or another lr often
    # still helped such runs.
    settled_learnt: float = 0.3

    # --- overfitting --------------------------------------------------------------------------
    # The validation loss gave back 10% of what it had gained (and at least 2% of the scale) after
    # its best epoch while the training loss kept falling...
    overfit_give_back: float = 0.10
    overfit_min_rise: float = 0.02
    # ...or "train low, val high": the validation loss 3x the training loss and 5% of the scale
    # above it at the end.
    gap_ratio: float = 3.0
    gap_abs: float = 0.05

    # --- noise --------------------------------------------------------------------------------
    # A spike is a report that sits away from the median of itself and its neighbours by 10% of
    # the curve's range and 20% of its level; two spikes make a curve noisy.
    spike_range: float = 0.10
    spike_level: float = 0.20
    noisy_spikes: int = 2

    # --- study-level advice -------------------------------------------------------------------
    min_trials_for_range: int = 3        # bad trials needed before blaming a range
    range_purity: float = 0.8            # share of trials beyond the threshold that went bad
    top_k: int = 5                       # "the best 5 trials"
    min_completed_for_edge: int = 8      # completed trials needed before judging range edges
    edge: float = 0.10                   # within 10% of the range (in search coordinates) of an end
    common_share: float = 0.6            # "most trials" when at least 60% share a label

    # --- the sanity gate ----------------------------------------------------------------------
    # Fitted a tiny subset: 99% training accuracy or the loss at 1% of its start (the rule).
    sanity_acc: float = 0.99
    sanity_loss_share: float = 0.01
    # The loss moved less than 1% over the whole run while the weights changed: nothing the loss
    # sees depends on them (a loss that merely moves slowly gets the generic "cannot fit" verdict).
    sanity_still: float = 0.01
    # Inputs whose per-pixel spread across samples is this small are the same image every time.
    constant_inputs: float = 1e-6


THRESHOLDS = Thresholds()
