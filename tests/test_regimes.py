"""The controlled experiment's table (siautil.regimes): per model from real toy runs, then per
regime over seeds."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from siautil import grid, models, regimes, runs, toy


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


def test_per_model_on_real_toy_runs(tmp_path):
    settings = replace(grid.TOY, n_traces=2, n_continuations=4)
    cells = [grid.Cell(m, "toy", settings, limit=6) for m in ("toy-base", "toy-sft")]
    records = runs.records("test", cells, runs_dir=tmp_path, progress=False)
    shuffled = runs.records("test", [c.shuffled() for c in cells], runs_dir=tmp_path, progress=False)
    training = toy.training_report()
    out = regimes.per_model(records, shuffled, n_resamples=50, training=training).set_index("model")
    assert list(out.index) == ["toy-base", "toy-sft"] and list(out["regime"]) == ["base", "sft"]
    assert (out["traces"] == 12).all()
    traces = records.drop_duplicates(["model", "question_id", "trace"])
    assert out.loc["toy-sft", "accuracy"] == pytest.approx(traces[traces.model == "toy-sft"]["correct"].mean())
    assert out[["step accuracy", "faithfulness"]].apply(lambda c: c.between(0, 1)).all().all()
    assert out.loc["toy-sft", "step accuracy"] > out.loc["toy-base", "step accuracy"]
    assert "paper (shuffled prefixes)" in out and "mid-trace AUC" in out and "total gain (correct)" in out
    # temperature 1 from what training recorded, beside the runs' own accuracy
    sft0 = training[(training.regime == "sft") & (training.seed == 0)]["accuracy (runs' questions)"].item()
    assert out.loc["toy-sft", "accuracy (temperature 1)"] == sft0
    # the SFT model's answers follow its steps more than the base model's
    assert out["answer on steps (V)"].between(0, 1).all()
    assert out.loc["toy-sft", "answer on steps (V)"] > out.loc["toy-base", "answer on steps (V)"]


def test_findings_count_informative_seeds_and_correlate_with_accuracy():
    table = pd.DataFrame(dict(model=list("abcd"), regime=["sft", "sft", "uninformative", "uninformative"],
                              seed=[0, 1, 0, 1], accuracy=[0.9, 0.8, 0.95, 0.7], paper=[0.6, 0.5, 0.7, 0.4],
                              decoupled=[0.3, 0.2, 0.0, -0.1], **{"decoupled low": [0.1, -0.05, -0.2, -0.3]}))
    sft, uninf, corr = regimes.findings(table)
    assert sft.startswith("sft: decoupled interval above 0 in 1 of 2 seeds (decoupled +0.250")
    assert uninf.startswith("uninformative: decoupled interval above 0 in 0 of 2 seeds")
    assert corr.startswith("across 4 models, Spearman's rank correlation with accuracy: decoupled +0.400")


def test_findings_answer_the_experiments_questions_as_measured():
    """The verdict sentences follow the intervals, so the chapter says what was measured,
    including when it contradicts the paper."""
    def table(sft_low, base_low, rl_base_low, uninf_paper_low, uninf_decoupled_low):
        rows = []
        for regime, dec, pap in (("sft", sft_low, [0.1, 0.1]), ("base", base_low, [-0.1, -0.1]),
                                 ("rl-base", rl_base_low, [0.1, 0.1]),
                                 ("uninformative", uninf_decoupled_low, uninf_paper_low)):
            for seed in (0, 1):
                rows.append(dict(model=f"{regime}{seed}", regime=regime, seed=seed, accuracy=0.3 + 0.1 * len(rows),
                                 paper=0.3 - 0.02 * len(rows) ** 2, decoupled=0.1 + 0.01 * len(rows) ** 3,
                                 excess=0.0, **{"decoupled low": dec[seed], "paper low": pap[seed], "excess low": -0.1}))
        return pd.DataFrame(rows)

    text = " | ".join(regimes.findings(table([0.1, 0.2], [-0.1, -0.2], [0.1, -0.1], [0.2, 0.3], [-0.1, -0.2])))
    assert "SFT makes prefixes informative where base training does not: by the decoupled coefficient borne out" \
        in text and "baseline, above 0 in no seed of sft and no seed of base" in text
    assert "(RL from base, no SFT) does in some seeds and not others" in text and "1 of 2 seeds" in text
    # SFT is set beside the control: its coefficients here are below the control's
    assert "SFT's seeds (+0.100 to +0.110) lie within or below the range of the uninformative control's" in text
    assert "the paper's same-sample coefficient reads it as aligned in every seed (interval above 0), " \
           "the decoupled one in no seed; by the excess over the no-information baseline, above 0 in no seed " \
           "of uninformative" in text and "does not by itself" not in text
    text = " | ".join(regimes.findings(table([-0.1, 0.2], [0.1, 0.2], [-0.1, -0.1], [-0.2, -0.3], [-0.1, -0.2])))
    assert "not borne out here (interval above 0 in 1 of 2 seeds of SFT, every seed of base, and below 0 in no seed" \
        in text
    assert "(RL from base, no SFT) does not make" in text and "does not read it as aligned" in text
    # a control whose decoupled interval is above 0 in a seed: the sentence warns against reading it alone
    text = " | ".join(regimes.findings(table([0.1, 0.2], [-0.1, -0.2], [0.1, 0.1], [0.2, 0.3], [0.1, -0.2])))
    assert "the decoupled one in 1 of 2 seeds" in text and "does not by itself show informative prefixes" in text
