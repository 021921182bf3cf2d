"""The controlled experiment's table (siautil.regimes): per model from real toy runs, then per
regime over seeds, and the sentences the training chapter prints."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from siautil import grid, models, regimes, runs, toy
from siautil.config import RunConfig


def test_regime_and_seed_read_the_registry_names():
    assert regimes.regime_and_seed("toy-rl") == ("rl", 0)
    assert regimes.regime_and_seed("toy-rl-base-s2") == ("rl-base", 2)
    assert regimes.regime_and_seed(models.toy_name("uninformative", 1)) == ("uninformative", 1)
    with pytest.raises(ValueError, match="not a toy model"):
        regimes.regime_and_seed("smollm2-135m-instruct")


def test_by_regime_is_the_mean_and_range_over_seeds():
    table = pd.DataFrame(dict(model=["a", "b", "c"], regime=["sft", "sft", "base"], seed=[0, 1, 0],
                              accuracy=[0.9, 0.7, 0.2], paper=[0.5, 0.1, np.nan]))
    out = regimes.by_regime(table)
    assert list(out.index) == ["base", "sft"]  # the registry's order
    assert out.loc["sft", ("accuracy", "mean")] == pytest.approx(0.8)
    assert out.loc["sft", ("paper", "min")] == 0.1 and out.loc["sft", ("paper", "max")] == 0.5
    assert out.loc["sft", ("seeds", "")] == 2 and np.isnan(out.loc["base", ("paper", "mean")])


def test_a_model_that_did_not_finish_training_is_named_with_why():
    training = toy.training_report()
    left = regimes.unfinished(training)
    assert set(left) == {models.toy_name(r, s) for r, s, done in
                         training[["regime", "seed", "learned"]].itertuples(index=False) if done is False}
    for why in left.values():
        assert "cap of" in why and "threshold" in why


def test_per_model_on_real_toy_runs(tmp_path):
    settings = replace(grid.TOY, n_traces=2, n_continuations=4)
    cells = [RunConfig(m, "toy", settings, limit=6) for m in ("toy-base", "toy-sft")]
    records = runs.records("test", cells, runs_dir=tmp_path, progress=False)
    tokens = runs.records("test", [c.shuffled("tokens") for c in cells], runs_dir=tmp_path, progress=False)
    steps = runs.records("test", [c.shuffled("steps") for c in cells], runs_dir=tmp_path, progress=False)
    training = toy.training_report()
    out = regimes.per_model(records, tokens, steps, n_resamples=50, training=training).set_index("model")
    assert list(out.index) == ["toy-base", "toy-sft"] and list(out["regime"]) == ["base", "sft"]
    traces = records.drop_duplicates(["model", "question_id", "trace"])
    assert out.loc["toy-sft", "accuracy"] == pytest.approx(traces[traces.model == "toy-sft"]["correct"].mean())
    assert out[["step_accuracy", "faithfulness"]].apply(lambda c: c.between(0, 1)).all().all()
    assert out.loc["toy-sft", "step_accuracy"] > out.loc["toy-base", "step_accuracy"]
    for column in ("D_start", "D_before", "R", "step_drop", "step_null", "paper_all", "paper", "paper_correct",
                   "paper_tokens", "tokens_null", "mid_trace_auc", "gain_correct"):
        assert column in out, column
    assert not any("excess" in c or "verdict" in c for c in out.columns)
    # the shuffled tokens break the answer format; the randomised steps keep it
    assert (out["tokens_null"] > out["step_null"]).all()
    sft0 = training[(training.regime == "sft") & (training.seed == 0)]["accuracy_run_questions"].item()
    assert out.loc["toy-sft", "accuracy_t1"] == sft0
    assert out.loc["toy-sft", "answer_on_steps"] > out.loc["toy-base", "answer_on_steps"]


def _table(**regimes_):
    """A per-model table: for each regime, its seeds' (D_before_low, R, step_drop_low) and fixed
    other columns."""
    rows = []
    for regime, seeds in regimes_.items():
        for k, (d_low, r, step_low) in enumerate(seeds):
            rows.append(dict(model=f"{regime}{k}", regime=regime, seed=k, accuracy=0.5 + 0.05 * len(rows), chance=0.2,
                             D_start=0.0, D_start_low=-0.1, D_start_high=0.1, D_before=d_low + 0.1,
                             D_before_low=d_low, D_before_high=d_low + 0.2, R=r, R_low=r - 0.05, R_high=r + 0.05,
                             step_drop=step_low + 0.05, step_drop_low=step_low, step_drop_high=step_low + 0.1,
                             step_null=0.01, paper_all=0.1 * len(rows), paper_correct=0.8, paper_incorrect=-0.3))
    return pd.DataFrame(rows)


def test_findings_say_what_the_measures_decide():
    text = " | ".join(regimes.findings(_table(base=[(0.05, 0.2, 0.05), (0.06, 0.25, 0.04)],
                                              sft=[(0.5, 0.9, 0.7), (0.6, 0.85, 0.7)],
                                              uninformative=[(-0.05, 0.1, -0.02), (-0.1, 0.05, -0.05)])))
    assert "base's steps already predict its outcome in every seed" in text
    assert "every sft seed lies above every base seed by R (+0.85 to +0.90 against +0.20 to +0.25)" in text
    assert "its answers do not depend on what its steps say, as built" in text and "carry a sign" not in text
    assert "higher among correct traces than among incorrect ones in 6 of 6 models" in text
    assert "mix of outcomes implies" not in text  # the table has no such column here
    # overlapping seeds are said to overlap, and a control whose steps matter is said to
    text = " | ".join(regimes.findings(_table(base=[(0.05, 0.5, 0.05), (-0.1, 0.7, 0.04)],
                                              sft=[(0.5, 0.6, 0.7), (0.6, 0.8, 0.7)],
                                              uninformative=[(0.1, 0.3, 0.2), (0.2, 0.3, 0.1)])))
    assert "sft and base overlap by R" in text and "these seeds cannot order them" in text
    assert "base's steps already predict its outcome in 1 of 2 seeds" in text
    assert "its answers depend on what its steps say, which its training data did not teach" in text


def test_findings_set_each_mean_beside_what_its_mix_implies():
    table = _table(base=[(0.05, 0.2, 0.05), (0.06, 0.25, 0.04)], sft=[(0.5, 0.9, 0.7), (0.6, 0.85, 0.7)])
    table["paper_trace_mean"] = [0.1, 0.2, 0.8, 0.9]
    table["paper_implied_by_mix"] = [0.15, 0.2, 0.85, 0.9]
    text = " | ".join(regimes.findings(table))
    assert "mean absolute difference 0.025" in text and "Pearson" in text


def test_findings_without_a_step_run_say_so():
    table = _table(base=[(0.05, 0.2, 0.05)], sft=[(0.5, 0.9, 0.7)]).drop(
        columns=["step_drop", "step_drop_low", "step_drop_high", "step_null"])
    text = " | ".join(regimes.findings(table))
    assert "step effect" not in text and "randomising" not in text
