"""A corpus of W&B sweep documents and what W&B's validator and tuneserve say about each.

Written for tuneserve from the facts of W&B's open-source `sweeps` package: the configurations
its tests treat as valid or invalid (tests/test_config.py, test_schema.py, test_validation.py,
test_random_search.py, test_grid_search.py, test_bayes_search.py, test_hyperband_stopping.py),
the rules of its schema (src/sweeps/config/schema.json) and its six example sweep files, re-typed.

Each Case records W&B's verdict (`wandb`: its validator, `schema_violations_from_proposed_config`,
accepts the document) and tuneserve's (`ours`), with the 422's location and a fragment of its
message when tuneserve refuses. Where the two differ, `why` says why (W&B's validator accepts a
few documents that W&B's own engines cannot run, and a few that JSON cannot carry).
tests/test_wandb_sweeps.py asserts tuneserve's side over REST; benchmarks/wandb_compat.py checks
the W&B side against W&B's package itself.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Case:
    id: str
    doc: dict[str, Any]
    wandb: bool                      # W&B's validator accepts it
    ours: bool                       # tuneserve accepts it
    loc: tuple = ()                  # the refusal's loc after "body"
    words: str = ""                  # a fragment of the refusal's message
    why: str = ""                    # when wandb != ours
    source: str = field(default="", compare=False)


def ok(id: str, doc: dict, source: str = "") -> Case:
    return Case(id, doc, True, True, source=source)


def bad(id: str, doc: dict, loc: tuple, words: str, source: str = "") -> Case:
    return Case(id, doc, False, False, loc, words, source=source)


def refused(id: str, doc: dict, loc: tuple, words: str, why: str, source: str = "") -> Case:
    """W&B's validator accepts it; tuneserve refuses it, saying why."""
    return Case(id, doc, True, False, loc, words, why, source=source)


LOSS = {"name": "loss", "goal": "minimize"}
ABC = {"values": [1, 2, 3]}


def one(method: str, spec: dict, metric: dict | None = None, **extra: Any) -> dict:
    doc = {"method": method, "parameters": {"v1": spec}, **extra}
    if metric is not None:
        doc["metric"] = metric
    return doc


NESTED = {"a": {"parameters": {"b": {"values": [1, 2]}, "c": {"parameters": {"d": {"value": 1}}}}}}
NESTED_SAME_NAME = {"a": {"parameters": {"b": {"value": 1}, "c": {"parameters": {"d": {"value": 2}}}}},
                    "b": {"values": [2, 3]}}

# --- accepted by both ------------------------------------------------------------------------------
VALID: list[Case] = [
    *[ok(f"nested-{m}", {"method": m, "metric": LOSS, "parameters": NESTED}, "test_validation: param dict")
      for m in ("grid", "random", "bayes")],
    *[ok(f"nested-same-name-{m}", {"method": m, "metric": LOSS, "parameters": NESTED_SAME_NAME},
         "test_validation: a name may repeat at another nesting level") for m in ("grid", "random", "bayes")],
    ok("uniform-int-bounds", one("random", {"min": 0, "max": 1, "distribution": "uniform"}), "test_validation"),
    ok("controller-cloud", one("random", {"values": [1, 2, 3, 4]}, controller={"type": "cloud"}), "test_validation"),
    ok("controller-local", one("random", {"values": [1, 2, 3, 4]}, controller={"type": "local"}), "test_validation"),
    ok("run-cap-1", one("random", {"values": [1, 2, 3, 4]}, run_cap=1), "test_validation"),
    ok("run-cap-300", one("random", {"values": [1, 2, 3, 4]}, run_cap=300), "test_validation"),
    ok("mixed-type-values", one("grid", {"values": [None, 2, 3, "a", [2, 3]]}), "test_config"),
    ok("hyperband-with-bayes", one("bayes", ABC, LOSS, early_terminate={"type": "hyperband", "min_iter": 3}),
       "test_config"),
    ok("infer-int-uniform", one("random", {"min": 0, "max": 1}), "test_schema"),
    ok("infer-uniform", one("random", {"min": 0.0, "max": 1.0}), "test_schema"),
    ok("infer-uniform-mixed-a", one("random", {"min": 0.0, "max": 1}), "test_schema"),
    ok("infer-uniform-mixed-b", one("random", {"min": 0, "max": 1.0}), "test_schema"),
    ok("normal-defaults", one("random", {"distribution": "normal"}), "test_schema"),
    ok("log-normal-defaults", one("random", {"distribution": "log_normal"}), "test_schema"),
    ok("categorical", one("random", {"values": [1, 2, 3]}), "test_schema"),
    ok("constant-string", one("random", {"value": "abcd"}), "test_schema"),
    ok("q-normal", one("random", {"distribution": "q_normal", "q": 0.1}), "test_schema"),
    ok("q-beta-defaults", one("random", {"distribution": "q_beta"}), "test_schema"),
    ok("beta-defaults", one("random", {"distribution": "beta"}), "test_schema"),
    ok("hyperband-no-eta", {
        "command": ["${env}", "${interpreter}", "${program}", "sweep", "2dconv_lstm.stat.ac", "--dataset", "deam",
                    "--temp_folder", "a_deam", "--batch-size"],
        "early_terminate": {"min_iter": 3, "type": "hyperband"},
        "method": "random",
        "metric": {"goal": "minimize", "name": "val/loss"},
        "name": "AC-2DConvLSTM-Stat-DEAM",
        "parameters": {
            "dropout": {"values": ["0.15", "0.2", "0.25", "0.3", "0.4", "0.5"]},
            "lr": {"values": ["0.001", "0.005", "0.01"]},
            "momentum": {"values": ["0.8", "0.9", "0.95"]},
            "n_fft": {"value": 1024},
            "n_mels": {"value": 128},
        },
        "program": "exec.py",
        "project": "mer",
    }, "test_schema: eta filled in with 3"),
    *[ok(f"weights-{i}", one("random", {"values": values, "probabilities": probs}), "test_random_search")
      for i, (values, probs) in enumerate([
          (list(range(5)), [0.2, 0.2, 0.2, 0.2, 0.2]),
          (list(range(3)), [0.5, 0.0, 0.5]),
          (list(range(5)), [0.1, 0.25, 0.15, 0.2, 0.3])])],
    ok("log-normal", one("random", {"distribution": "log_normal", "mu": 2, "sigma": 3}), "test_random_search"),
    ok("log-uniform-values", one("random", {"min": 0.001, "max": 1.0, "distribution": "log_uniform_values"}),
       "test_random_search"),
    ok("inv-log-uniform-values", one("random", {"min": 0.01, "max": 10.0, "distribution": "inv_log_uniform_values"}),
       "test_random_search"),
    *[ok(f"q-log-normal-{q}", one("random", {"distribution": "q_log_normal", "mu": 2, "sigma": 2, "q": q}),
         "test_random_search") for q in (0.1, 1, 10)],
    *[ok(f"q-normal-{q}", one("random", {"distribution": "q_normal", "mu": 4, "sigma": 2, "q": q}),
         "test_random_search") for q in (0.1, 1, 10)],
    *[ok(f"q-uniform-{q}", one("random", {"distribution": "q_uniform", "min": 0, "max": 100, "q": q}),
         "test_random_search") for q in (0.1, 1, 10)],
    *[ok(f"q-log-uniform-values-{q}", one("random", {"distribution": "q_log_uniform_values", "min": 0.1,
                                                     "max": 100, "q": q}), "test_random_search")
      for q in (0.1, 1, 10)],
    ok("q-beta", one("random", {"distribution": "q_beta", "a": 2, "b": 5, "q": 0.1}), "test_random_search"),
    ok("beta", one("random", {"distribution": "beta", "a": 2, "b": 5}), "test_random_search"),
    ok("grid-list-values", {"method": "grid", "parameters": {"v1": {"values": ["", [9, 5]]},
                                                             "v2": {"values": [256, 512]}}}, "test_grid_search"),
    ok("grid-repeated-values", {"method": "grid", "parameters": {"v1": {"values": [None, 2, 3, "a", [2, 3], 3]},
                                                                 "v2": {"values": ["a", "b", "c'"]}}},
       "test_grid_search: a repeated value is run once"),
    ok("grid-constant", {"method": "grid", "parameters": {"v1": {"values": ["a", "b", "c'"]}, "v2": {"value": 1}}},
       "test_grid_search"),
    ok("grid-constants-only", {"method": "grid", "parameters": {"v1": {"value": "a"}, "v2": {"value": "b"}}},
       "test_grid_search"),
    ok("grid-mapping-values", {"method": "grid", "parameters": {
        "v1": {"values": ["a", "b", "c'"]},
        "v2": {"values": [{"a": "b"}, {"c": "d", "b": "g"}, {"e": {"f": "g"}}, {"a": "b"}, {"b": "g", "c": "d"}]}}},
       "test_grid_search: mapping values, repeated in another key order"),
    ok("grid-int-uniform", {"method": "grid", "parameters": {"v1": {"distribution": "int_uniform", "min": -52,
                                                                    "max": 10}, "v2": {"value": "test"}}},
       "test_grid_search"),
    ok("grid-q-uniform", {"method": "grid", "parameters": {"v1": {"distribution": "q_uniform", "min": -9.211,
                                                                  "max": 23.23, "q": 2.341}, "v2": {"value": "test"}}},
       "test_grid_search"),
    ok("grid-nested-with-command", {
        "method": "grid", "metric": {"goal": "minimize", "name": "loss"},
        "command": ["${env}", "python3", "-m", "hellowsweep"], "project": "sweep_test",
        "parameters": {"p1": {"values": ["a", "b", "c"]},
                       "p2": {"parameters": {"n1": {"values": [0.01, 0.001]}, "n2": {"value": 0.9},
                                             "n3": {"values": [1, 2, 3]}}}},
        "description": "hellosweep: A sample program for getting started with wandb sweeps."}, "test_grid_search"),
    ok("grid-long-list-value", {"method": "grid", "parameters": {
        "cols": {"values": [[f"col_{i}" for i in range(100)], ["next"]]}}}, "test_grid_search"),
    ok("grid-bool-and-int", {"method": "grid", "parameters": {"v1": {"values": [True, 1]}, "v2": {"value": "test"}}},
       "test_grid_search: true and 1 stay two values"),
    ok("grid-big-int", {"method": "grid", "parameters": {"v1": {"values": [3000000, "next"]}, "v2": {"value": "test"}}},
       "test_grid_search"),
    ok("hyperband-min-iter", one("grid", ABC, LOSS, early_terminate={"type": "hyperband", "min_iter": 3, "eta": 3}),
       "test_hyperband_stopping"),
    ok("hyperband-maximize", one("grid", ABC, {"name": "accuracy", "goal": "maximize"},
                                 early_terminate={"type": "hyperband", "min_iter": 3, "eta": 3}),
       "test_hyperband_stopping"),
    ok("hyperband-max-iter", one("grid", ABC, LOSS, early_terminate={"type": "hyperband", "max_iter": 81, "eta": 3,
                                                                     "s": 3}), "test_hyperband_stopping"),
    ok("hyperband-lenient", one("grid", ABC, LOSS, early_terminate={"type": "hyperband", "max_iter": 18, "eta": 3,
                                                                    "s": 2, "strict": False}),
       "test_hyperband_stopping"),
    ok("hyperband-eta-2", one("grid", ABC, LOSS, early_terminate={"type": "hyperband", "max_iter": 5, "eta": 2, "s": 2}),
       "test_hyperband_stopping"),
    ok("hyperband-bayes-300", one("bayes", {"values": list(range(10))}, LOSS,
                                  early_terminate={"s": 2, "eta": 3, "type": "hyperband", "max_iter": 300}),
       "test_hyperband_stopping"),
    ok("bayes-every-distribution", {"method": "bayes", "metric": {"name": "y", "goal": "maximize"}, "parameters": {
        "a": {"distribution": "normal", "mu": 2, "sigma": 4},
        "b": {"distribution": "log_uniform_values", "min": 0.1353352832366127, "max": 20.085536923187668},
        "c": {"min": 0.0, "max": 5.0}, "d": {"min": 0, "max": 5},
        "e": {"distribution": "q_uniform", "min": 0.0, "max": 10.0, "q": 0.25}}}, "test_bayes_search"),
    ok("bayes-two-params", {"metric": LOSS, "method": "bayes",
                            "parameters": {"v1": {"min": 1, "max": 10}, "v2": {"min": 1.0, "max": 10.0}}},
       "test_bayes_search fixture"),
    ok("bayes-maximize", {"method": "bayes", "metric": {"name": "acc", "goal": "maximize"},
                          "parameters": {"v1": {"min": 1, "max": 10}, "v2": {"min": 1, "max": 10}}},
       "test_bayes_search"),
    ok("bayes-list-values", {"method": "bayes", "metric": {"name": "acc", "goal": "maximize"}, "parameters": {
        "v1": {"distribution": "categorical", "values": [[2, 3], [3, 4], ["5", "6"], [[7, 8], ["9", [10, 11]]]]},
        "v2": {"min": 1, "max": 10}}}, "test_bayes_search"),
    ok("bayes-impute-best", {"method": "bayes", "metric": {"name": "loss", "goal": "minimize", "impute": "best"},
                             "parameters": {"a": {"min": 0.0, "max": 1.0}}}, "test_bayes_search"),
    ok("bayes-impute-latest", {"method": "bayes", "metric": {"name": "loss", "goal": "minimize", "impute": "latest"},
                               "parameters": {"a": {"min": 0.0, "max": 1.0}}}, "test_bayes_search"),
    ok("bayes-impute-while-running", {"method": "bayes", "metric": {"name": "y", "goal": "maximize",
                                                                    "impute_while_running": "best"},
                                      "parameters": {"x": {"distribution": "log_uniform_values",
                                                           "min": 0.1353352832366127, "max": 20.085536923187668}}},
       "test_bayes_search"),
    ok("named-with-spaces", {"name": "Elastic Sweep 07-06 1027", "method": "bayes",
                             "metric": {"goal": "maximize", "name": "IC_plus_Hitrate_risk_adj"}, "parameters": {
        "tol": {"values": [1e-05, 0.0001, 0.0002, 2.5e-05, 5e-05, 7.5e-05]},
        "alpha": {"max": 1000.0, "min": 0.0001, "distribution": "log_uniform_values"},
        "model": {"value": "ElasticNet"},
        "target": {"values": ["1D_spec", "5D_spec", "10D_spec"]},
        "l1_ratio": {"max": 1, "min": 0, "distribution": "uniform"},
        "selection": {"values": ["cyclic", "random"]},
        "decay_days": {"values": [1, 2, 3, 4, 5, 6]},
        "cat_columns": {"value": ["Sector", "Industry", "market_simple_regime"]},
        "ppf_target_by": {"values": [None, "Sector", "Industry"]},
        "ppf_the_target": {"value": True}}}, "test_bayes_search (with alpha as limit values)"),
    ok("metric-target", one("bayes", {"min": 0.0, "max": 1.0}, {"name": "loss", "goal": "minimize", "target": 0.1}),
       "schema.json: metric.target"),
    ok("all-wandb-keys", {"apiVersion": "v1", "kind": "sweep", "name": "every key", "description": "d",
                          "program": "train.py", "command": ["${env}", "${interpreter}", "${program}", "${args}"],
                          "project": "p", "entity": "e", "job": "entity/project/job:v0", "image_uri": "img:1",
                          "controller": {"type": "cloud"}, "method": "random", "run_cap": 5,
                          "metric": {"name": "loss", "goal": "minimize", "target": 0.5, "impute": "worst",
                                     "impute_while_running": "false"},
                          "early_terminate": {"type": "hyperband", "min_iter": 1, "eta": 2, "strict": False},
                          "parameters": {"x": {"distribution": "categorical_w_probabilities", "values": [1, 2],
                                               "probabilities": [0.5, 0.5]}}}, "schema.json: every top-level key"),
    ok("scheduler-wandb-engine", {"method": "bayes", "metric": LOSS, "scheduler": {"engine": "wandb"},
                                  "parameters": {"v1": ABC}}, "test_config: the wandb engine"),
    ok("non-integer-eta", one("random", {"min": 0.0, "max": 1.0}, LOSS,
                              early_terminate={"type": "hyperband", "min_iter": 1, "eta": 1.5}), "schema.json: eta > 1"),
    ok("names-with-dots-and-dashes", {"method": "random", "parameters": {
        "model.dropout": {"min": 0.1, "max": 0.5}, "learning-rate": {"distribution": "log_uniform_values",
                                                                      "min": 1e-4, "max": 1e-1}}},
       "schema.json: names match [A-Za-z_][A-Za-z0-9_.-]*"),
    ok("nested-v1-form", {"method": "random", "parameters": {"opt": {"parameters": {
        "lr": {"distribution": "log_uniform", "min": -9.2, "max": -2.3}}}}},
       "cfg.py checks deprecated forms among top-level parameters only"),
    ok("constant-null-and-mapping", {"method": "random", "parameters": {"a": {"value": None},
                                                                        "b": {"value": {"k": [1, 2]}}}},
       "schema.json: a constant is any value"),
]

# --- refused by both ----------------------------------------------------------------------------
INVALID: list[Case] = [
    *[bad(f"bad-goal-{m}", {"metric": {"name": "loss", "goal": "minimise"}, "method": m,
                            "parameters": {"v1": {"values": ["a", "b", "c"]}}}, ("metric", "goal"),
          "'minimize' or 'maximize'", "test_validation") for m in ("bayes", "grid", "random")],
    bad("empty-parameters", {"method": "random", "parameters": {}}, ("parameters",), "at least one parameter",
        "test_validation"),
    bad("no-parameters", {"method": "random"}, ("parameters",), "Field required", "test_config"),
    bad("no-parameters-bayes", {"method": "bayes"}, ("parameters",), "Field required", "test_config"),
    bad("int-uniform-float-bounds", one("random", {"min": 0.0, "max": 1.0, "distribution": "int_uniform"}),
        ("parameters", "v1"), "int_uniform bounds must be integers", "test_validation"),
    bad("controller-bogus", one("random", {"values": [1, 2, 3, 4]}, controller={"type": "invalid"}),
        ("controller", "type"), "'local' or 'cloud'", "test_validation"),
    *[bad(f"run-cap-{v}", one("random", {"values": [1, 2, 3, 4]}, run_cap=v), ("run_cap",), words,
          "test_validation") for v, words in ((-1, "greater than or equal to 1"), (0, "greater than or equal to 1"),
                                              (-0.3, "must be an integer"), (5.1, "must be an integer"),
                                              ("1", "must be an integer"))],
    *[bad(f"top-level-{d}", one("random", {"min": 1, "max": 2, "distribution": d}), ("parameters", "v1"),
          f"use {d}_values", "test_validation: deprecated distributions")
      for d in ("log_uniform", "q_log_uniform", "inv_log_uniform")],
    *[bad(f"min-above-max-{d}", one("random", {"min": 2, "max": 1, "distribution": d}), ("parameters", "v1"),
          "must be < max", "test_validation") for d in ("log_uniform_values", "q_log_uniform_values",
                                                        "inv_log_uniform_values")],
    bad("min-above-max", {"method": "random", "parameters": {"v1": {"max": 3, "min": 5}, "v2": {"min": 5, "max": 6}}},
        ("parameters", "v1"), "min (5) must be < max (3)", "test_config"),
    bad("negative-sigma", one("random", {"mu": 0.1, "sigma": -0.1, "distribution": "normal"}),
        ("parameters", "v1"), "sigma (-0.1) must be > 0", "test_config"),
    bad("probabilities-too-many", one("random", {"values": [1, 2, 3], "probabilities": [0.1, 0.2, 0.3, 0.4]}),
        ("parameters", "v1"), "`probabilities` has 4 entries", "test_config"),
    bad("probabilities-sum", one("random", {"values": [1, 2, 3], "probabilities": [0.1, 0.2, 0.3]}),
        ("parameters", "v1"), "must sum to 1", "test_config"),
    bad("metric-and-metrics", {"method": "custom", "metric": {"name": "loss"},
                               "metrics": [LOSS, {"name": "accuracy", "goal": "maximize"}], "parameters": {"v1": ABC}},
        ("method",), "custom", "test_config"),
    bad("one-metric-in-metrics", {"method": "custom", "metrics": [LOSS], "parameters": {"v1": ABC}},
        ("method",), "custom", "test_config"),
    *[bad(f"scheduler-{engine}", {"method": "bayes", "scheduler": {"engine": engine, "source": "scheduler.py",
                                                                   "optimizer": "build_study",
                                                                   "search_space": "search_space"},
                                  "parameters": {"v1": ABC}}, ("scheduler",), "is not supported", "test_config")
      for engine in ("optuna", "ax")],
    bad("scheduler-unknown-engine", {"method": "bayes", "scheduler": {"engine": "not-a-real-engine"},
                                     "parameters": {"v1": ABC}}, ("scheduler", "engine"), "'optuna', 'ax' or 'wandb'",
        "test_config"),
    bad("scheduler-no-engine", {"method": "bayes", "scheduler": {"source": "scheduler.py"}, "parameters": {"v1": ABC}},
        ("scheduler", "engine"), "Field required", "test_config"),
    *[bad(f"scheduler-{key}-without-source", {"method": "bayes", "metric": LOSS,
                                              "scheduler": {"engine": "wandb", key: "build_study"},
                                              "parameters": {"v1": ABC}},
          ("scheduler",), "needs scheduler.source", "test_config") for key in ("optimizer", "search_space")],
    bad("scheduler-custom-method", {"method": "custom", "scheduler": {"engine": "wandb"}, "parameters": {"v1": ABC}},
        ("method",), "custom", "test_config"),
    bad("scheduler-and-early-terminate", {"method": "bayes", "metric": LOSS, "scheduler": {"engine": "wandb"},
                                          "early_terminate": {"type": "hyperband", "min_iter": 3},
                                          "parameters": {"v1": ABC}}, ("early_terminate",),
        "cannot be used together with `scheduler`", "test_config"),
    bad("scheduler-and-local-controller", {"method": "bayes", "metric": LOSS, "scheduler": {"engine": "wandb"},
                                           "controller": {"type": "local"}, "parameters": {"v1": ABC}},
        ("controller",), "cannot be used together with `scheduler`", "test_config"),
    bad("scheduler-empty-search-space", {"method": "bayes", "scheduler": {"engine": "wandb", "source": "s.py",
                                                                          "optimizer": "o", "search_space": ""}},
        ("parameters",), "Field required", "test_config"),
    bad("metric-as-string", {"method": "grid", "metric": "{'goal': 'maximize', 'name': 'val/loss'}",
                             "parameters": {"a": {"values": [1, 2, 3, 4]}}}, ("metric",), "valid dictionary",
        "test_schema"),
    bad("early-terminate-as-string", {"method": "bayes", "metric": {"goal": "minimize", "name": "l"},
                                      "early_terminate": "hyperband", "parameters": {"a": ABC}},
        ("early_terminate",), "valid dictionary", "test_hyperband_stopping"),
    bad("early-terminate-extra-key", {"method": "bayes", "metric": {"name": "loss", "goal": "minimise"},
                                      "early_terminate": {"type": "hyperband", "extra_key": 1234, "min_iter": 100},
                                      "parameters": {"v1": {"values": ["a", "b", "c"]}}},
        ("metric", "goal"), "'minimize' or 'maximize'", "test_validation"),
    bad("early-terminate-extra-key-only", one("bayes", ABC, LOSS, early_terminate={
        "type": "hyperband", "extra_key": 1234, "min_iter": 100}), ("early_terminate",), "not a W&B hyperband key",
        "test_validation"),
    bad("early-terminate-unknown-type", one("bayes", ABC, LOSS, early_terminate={"type": "invalid type"}),
        ("early_terminate",), "must be 'hyperband'", "test_validation"),
    bad("param-unknown-key", one("random", {"invalid": "this config is not valid"}), ("parameters", "v1"),
        "unknown key 'invalid'", "test_schema"),
    bad("param-no-values", one("random", {"values": []}), ("parameters", "v1"), "must not be empty", "test_schema"),
    bad("no-method", {"parameters": {"a": {"values": [1, 2]}}, "method": None}, ("method",), "'random', 'grid'",
        "schema.json: method is required (null is not a method)"),
    bad("name-not-string", one("random", ABC, name=5), ("name",), "valid string", "schema.json"),
    bad("command-not-list", one("random", ABC, command="python train.py"), ("command",), "valid list", "schema.json"),
    bad("program-not-string", one("random", ABC, program=["train.py"]), ("program",), "valid string", "schema.json"),
    bad("unknown-top-level-key", one("random", ABC, epochs=10), ("epochs",), "takes only:", "schema.json"),
    bad("metric-without-name", one("random", ABC, {"goal": "maximize"}), ("metric", "name"), "Field required",
        "schema.json"),
    bad("metric-target-string", one("random", ABC, {"name": "loss", "target": "0.1"}), ("metric", "target"),
        "must be a number", "schema.json"),
    bad("metric-impute-mean", one("bayes", {"min": 0.0, "max": 1.0}, {"name": "loss", "impute": "mean"}),
        ("metric", "impute"), "'latest', 'best' or 'worst'", "schema.json"),
    bad("metric-extra-key", one("random", ABC, {"name": "loss", "direction": "down"}), ("metric", "direction"),
        "metric takes only", "schema.json"),
    bad("eta-one", one("random", ABC, LOSS, early_terminate={"type": "hyperband", "min_iter": 1, "eta": 1}),
        ("early_terminate",), "eta: must be a number > 1", "schema.json"),
    bad("min-iter-zero", one("random", ABC, LOSS, early_terminate={"type": "hyperband", "min_iter": 0}),
        ("early_terminate",), "min_iter: must be an integer >= 1", "schema.json"),
    bad("max-iter-without-s", one("random", ABC, LOSS, early_terminate={"type": "hyperband", "max_iter": 27}),
        ("early_terminate",), "s: required with max_iter", "schema.json"),
    bad("hyperband-without-iters", one("random", ABC, LOSS, early_terminate={"type": "hyperband", "eta": 3}),
        ("early_terminate",), "needs min_iter, or max_iter with s", "schema.json"),
    bad("bad-param-name", {"method": "random", "parameters": {"1st": ABC}}, ("parameters", "1st"),
        "not a valid parameter name", "schema.json"),
    bad("values-not-list", one("random", {"values": "adam"}), ("parameters", "v1"), "must be a list", "schema.json"),
    bad("q-zero", one("random", {"distribution": "q_uniform", "min": 0, "max": 1, "q": 0}), ("parameters", "v1"),
        "q (0) must be > 0", "schema.json"),
    bad("log-values-min-zero", one("random", {"distribution": "log_uniform_values", "min": 0, "max": 1}),
        ("parameters", "v1"), "must be > 0", "schema.json"),
    bad("categorical-with-probabilities", one("random", {"distribution": "categorical", "values": [1, 2],
                                                         "probabilities": [0.5, 0.5]}), ("parameters", "v1"),
        "categorical_w_probabilities", "schema.json"),
    bad("nested-block-with-extra-key", {"method": "random", "parameters": {
        "a": {"parameters": {"b": ABC}, "value": 1}}}, ("parameters", "a"), "takes only `parameters`", "schema.json"),
    bad("bounds-as-strings", one("random", {"min": "0.1", "max": 1}), ("parameters", "v1"), "must be a number",
        "schema.json"),
    bad("boolean-bound", one("random", {"min": True, "max": 2}), ("parameters", "v1"), "not a boolean", "schema.json"),
    bad("beta-with-bounds", one("random", {"distribution": "beta", "min": 0, "max": 1}), ("parameters", "v1"),
        "does not apply to distribution 'beta'", "schema.json"),
    bad("unknown-distribution", one("random", {"distribution": "lognormal"}), ("parameters", "v1"),
        "unknown distribution 'lognormal'", "schema.json"),
    bad("kind-not-sweep", one("random", ABC, kind="job"), ("kind",), "'sweep'", "schema.json"),
    bad("elastic-v1-top-level", {"name": "Elastic Sweep 07-06 1027", "method": "bayes",
                                 "metric": {"goal": "maximize", "name": "IC_plus_Hitrate_risk_adj"},
                                 "parameters": {"alpha": {"max": 6.907755278982137, "min": -9.210340371976182,
                                                          "distribution": "log_uniform"},
                                                "model": {"value": "ElasticNet"}}},
        ("parameters", "alpha"), "use log_uniform_values", "test_bayes_search, as W&B's validator reads it"),
]

# --- W&B's validator accepts, tuneserve refuses saying why ------------------------------------------
UNSUPPORTED: list[Case] = [
    refused("grid-with-probabilities", one("grid", {"values": [1, 2, 3], "probabilities": [0.2, 0.2, 0.6]}),
            ("parameters", "v1"), "grid search cannot weight values",
            "W&B's grid engine raises on it when the sweep runs (test_config: test_categorical_prob_grid)"),
    refused("custom-with-metrics", {"method": "custom", "metrics": [LOSS, {"name": "accuracy", "goal": "maximize"}],
                                    "parameters": {"v1": ABC}}, ("method",), "W&B Launch custom scheduler",
            "method custom needs a Launch scheduler that brings its own optimizer"),
    refused("custom-metrics-defaults", {"method": "custom", "metrics": [{"name": "loss"}, {"name": "accuracy"}],
                                        "parameters": {"v1": ABC}}, ("method",), "W&B Launch custom scheduler",
            "method custom needs a Launch scheduler that brings its own optimizer"),
    refused("scheduler-search-space-only", {"method": "bayes", "metric": LOSS,
                                            "scheduler": {"engine": "wandb", "source": "scheduler.py",
                                                          "optimizer": "build_study", "search_space": "search_space"}},
            ("parameters",), "does not load a search space from code",
            "the search space would come from a Python file; the server runs no user code"),
    refused("bayes-without-metric", {"method": "bayes", "scheduler": {"engine": "wandb"}, "parameters": {"v1": ABC}},
            ("metric",), "bayes needs a `metric`", "W&B's bayes engine raises without a metric"),
    refused("bayes-scheduler-source-no-metric", {"method": "bayes", "scheduler": {
        "engine": "wandb", "source": "scheduler.py", "optimizer": "build_study", "search_space": "search_space"},
        "parameters": {"v1": ABC}}, ("metric",), "bayes needs a `metric`", "W&B's bayes engine raises without a metric"),
    refused("hyperband-without-metric", one("random", ABC, early_terminate={"type": "hyperband", "min_iter": 3}),
            ("metric",), "early_terminate ranks runs", "W&B's hyperband engine raises without a metric"),
    refused("bayes-constants-only", {"method": "bayes", "metric": LOSS, "parameters": {"a": {"value": 1}}},
            ("parameters",), "at least one parameter to search", "W&B's bayes engine raises with nothing to search"),
    refused("s-not-whole", one("random", ABC, LOSS, early_terminate={"type": "hyperband", "max_iter": 27, "s": 2.5}),
            ("early_terminate",), "s: must be a whole number", "W&B's engine calls range(s)"),
    refused("no-band", one("random", ABC, LOSS, early_terminate={"type": "hyperband", "max_iter": 2, "s": 2}),
            ("early_terminate",), "no band >= 1", "W&B's engine raises on an empty band list"),
    refused("sigma-zero", one("random", {"distribution": "normal", "sigma": 0}), ("parameters", "v1"),
            "sigma (0) must be > 0", "W&B's sampler returns NaN for sigma 0"),
    refused("beta-a-zero", one("random", {"distribution": "beta", "a": 0}), ("parameters", "v1"),
            "a (0) must be > 0", "W&B's sampler returns NaN for a = 0"),
    refused("nested-min-above-max", {"method": "random", "parameters": {"a": {"parameters": {
        "b": {"min": 2, "max": 1}}}}}, ("parameters", "a", "b"), "must be < max",
            "W&B checks min < max in nested blocks only when the run starts, and fails then"),
    refused("nan-value", one("grid", {"values": [float("nan"), 1]}), ("parameters", "v1"), "must be finite",
            "NaN is not JSON: PostgreSQL's JSONB cannot store it (W&B's grid test passes a Python NaN)"),
]

# --- W&B's validator refuses, tuneserve accepts: its own documents ---------------------------------
LENIENT: list[Case] = [
    Case("missing-method", {"parameters": {"a": {"values": [1, 2]}}}, False, True,
         why="W&B requires method; tuneserve's own documents may leave it out (random), as before"),
    Case("tuneserve-keys", {"name": "native", "method": "tpe", "metric": LOSS, "parameters": {"v1": ABC},
                            "max_trials": 5, "max_concurrent": 2, "seed": 3, "lease_seconds": 30, "max_retries": 1,
                            "pruner": {"type": "median"}, "objective": "builtin:cnn"}, False, True,
         why="tuneserve's own keys and methods (tpe, tpe_hyperopt, gp), which W&B's schema does not define"),
    Case("metrics-with-bayes", {"method": "bayes", "metrics": [LOSS, {"name": "accuracy", "goal": "maximize"}],
                                "parameters": {"v1": ABC}}, False, True, source="test_config",
         why="W&B's validator wants method: custom (a Launch scheduler) for `metrics`; tuneserve optimizes "
             "several objectives itself (MOTPE, ParEGO)"),
    Case("constraints", {"method": "tpe", "metric": LOSS, "constraints": [{"name": "latency_ms", "max": 5}],
                         "parameters": {"v1": ABC}}, False, True,
         why="tuneserve's own `constraints` key, which W&B's schema does not define"),
]

# --- W&B's six example sweep files, re-typed -------------------------------------------------------
_TRAIN_PARAMS = """parameters:
  epochs:
    value: {epochs}
  variance:
    value: 5
  sleep:
    value: {sleep}
  base:
    values: [10,15,20]
  increment:
    values: [0.1,0.2,0.3]
  direction:
    values: [-1,0.1,1]
"""
EXAMPLES: dict[str, str] = {
    "sweep-bayes.yaml": """description: sweep example using bayes search
program: train.py
project: sweeps-examples
method: bayes
metric:
  name: loss_metric
  goal: minimize
""" + _TRAIN_PARAMS.format(epochs=5, sleep=0.5),
    "sweep-grid.yaml": """description: sweep example using grid search
program: train.py
project: sweeps-examples
method: grid
metric:
  name: loss_metric
  goal: minimize
""" + _TRAIN_PARAMS.format(epochs=5, sleep=0.5),
    "local-controller/sweep-local-bayes.yaml": """description: sweep examples using local controller and bayes
program: train-local.py
project: sweeps-examples
method: bayes
controller:
  type: local
metric:
  name: loss_metric
  goal: minimize
""" + _TRAIN_PARAMS.format(epochs=27, sleep=2),
    "local-controller/sweep-local-hyperband.yaml": """description: sweep examples using local controller and hyperband
program: train-local.py
project: sweeps-examples
method: grid
controller:
  type: local
metric:
  name: loss_metric
  goal: minimize
early_terminate:
  type: hyperband
  max_iter: 10
  s: 2
  eta: 3
""" + _TRAIN_PARAMS.format(epochs=20, sleep=2),
    "nested-params/sweep-nested-cli.yaml": """description: sweep examples with nested parameters using cli
program: train-nested-cli.py
project: sweeps-examples
method: grid
metric:
  name: loss
  goal: minimize
parameters:
  batch_size:
    values: [32, 64]
  optimizer:
    parameters:
      lr:
        values: [0.001, 0.0001]
      nadam:
        parameters:
          beta:
            values: [0.9, 0.95]
""",
    "launch/sweep-launch-jobs.yaml": """description: sweep examples using launch jobs
job: "launch-test/wandb-launch-sweeps/job-source-wandb-launch-sweeps-examples_launch-jobs_train-launch-jobs.py:v0"
program: train-launch-jobs.py
project: wandb-launch-sweeps
method: bayes
metric:
  name: loss_metric
  goal: minimize
""" + _TRAIN_PARAMS.format(epochs=5, sleep=0.5),
}

ALL: list[Case] = VALID + INVALID + UNSUPPORTED + LENIENT
