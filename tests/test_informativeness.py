"""What the written steps determine (siautil.informativeness): each measure against the
oracle's exact values, its null check, the martingale, and the measures on the stored toy runs."""

import numpy as np
import pandas as pd
import pytest

from siautil import informativeness as I
from siautil import oracle


@pytest.mark.parametrize("setting", sorted(oracle.SETTINGS))
def test_the_oracle_answer_distribution_is_a_martingale_exactly(setting):
    assert oracle.martingale_error(oracle.SETTINGS[setting](steps=12), n_questions=3) < 1e-12


def test_the_martingale_check_can_fail(monkeypatch):
    """A filter that forgets one step of the drift is no martingale, and the check says so."""
    exact = oracle.exact_answer_distribution

    def off_by_one(cfg, pi, w, tokens, predictive=False):
        out = exact(cfg, pi, w, tokens, predictive)
        dist = out[0] if predictive else out
        dist[:, 1:, :-1] = dist[:, 1:, :-1] * 0.9 + 0.1 * (1 - cfg.null) * w[None, None, :]
        return out

    monkeypatch.setattr(oracle, "exact_answer_distribution", off_by_one)
    assert oracle.martingale_error(oracle.aligned(steps=12), n_questions=2) > 1e-3


def test_mean_gold_probability_stays_at_the_accuracy_along_oracle_traces():
    run = oracle.sample_run(oracle.aligned(steps=20), n_questions=150, n_traces=4, n_continuations=8, stride=5, seed=2)
    curve = I.martingale(run, n_resamples=200)
    inner = curve[curve["t"] != "end"]
    # the exact mean is the same at every length (the traces share it at t = 0) ...
    assert np.ptp(inner["exact"].to_numpy(dtype=float)) < 0.03
    # ... and the estimate's change from t = 0 holds 0 within its interval everywhere
    assert ((inner["change_low"] <= 0) & (inner["change_high"] >= 0)).all()
    summary = I.martingale_summary(curve)
    assert summary["accuracy"].item() == pytest.approx(run.drop_duplicates(["question_id", "trace"])["correct"].mean())


def test_the_stopped_process_counts_finished_traces_by_their_outcome():
    recs = pd.DataFrame([
        dict(question_id="q", trace=0, t=0, T=2, answers=["1", "2"], gold="1", correct=True),
        dict(question_id="q", trace=0, t=2, T=2, answers=["1", "1"], gold="1", correct=True),
        dict(question_id="q", trace=1, t=0, T=4, answers=["2", "2"], gold="1", correct=False),
        dict(question_id="q", trace=1, t=2, T=4, answers=["2", "1"], gold="1", correct=False),
        dict(question_id="q", trace=1, t=4, T=4, answers=["2", "2"], gold="1", correct=False),
    ])
    curve = I.martingale(recs, n_resamples=0).set_index("t")
    assert curve.loc[0, "mean"] == pytest.approx((0.5 + 0.0) / 2)
    assert curve.loc[2, "mean"] == pytest.approx((1.0 + 0.5) / 2)
    assert curve.loc[4, "mean"] == pytest.approx((1.0 + 0.0) / 2)  # trace 0 ended right at T = 2
    assert curve.loc["end", "mean"] == 0.5 and curve.loc[4, "running"] == 0.5


def test_outcome_association_by_hand():
    rows = []
    for trace, correct, p0, p1 in ((0, True, 0.5, 1.0), (1, False, 0.25, 0.0), (2, True, 0.75, 0.5)):
        for t, p in ((0, p0), (4, p1)):
            hits = int(p * 4)
            rows.append(dict(question_id="q", trace=trace, t=t, T=8, answers=["1"] * hits + ["2"] * (4 - hits),
                             gold="1", correct=correct, answer_state="none"))
    d = I.outcome_association(pd.DataFrame(rows), n_resamples=0).set_index("position")
    assert d.loc["start", "D"] == pytest.approx((0.5 + 0.75) / 2 - 0.25)
    assert d.loc["before answer", "D"] == pytest.approx((1.0 + 0.5) / 2 - 0.0)
    assert d.loc["before answer", "questions"] == 1


@pytest.fixture(scope="module")
def validation():
    return I.validate(ms=(8, 32), n_questions=80, n_resamples=200)


def test_validation_each_estimate_is_near_its_exact_value(validation):
    for name in ("D_before", "R"):
        se = (validation[f"{name}_high"] - validation[f"{name}_low"]) / 3.92
        assert ((validation[name] - validation[f"{name}_exact"]).abs() < 3.5 * se).all(), name
    se = (validation["step_drop_high"] - validation["step_drop_low"]) / 3.92
    assert ((validation["step_drop"] - validation["step_drop_exact"]).abs() <= 3.5 * se + 1e-12).all()


def test_validation_measures_are_zero_without_information_and_positive_with_it(validation):
    top = validation[validation["m"] == 32].set_index("setting")
    assert top.loc["no information", "D_before_exact"] == pytest.approx(0, abs=1e-12)
    assert top.loc["no information", "R_exact"] == pytest.approx(0, abs=1e-12)
    for setting in ("aligned", "misaligned", "guesser"):
        assert top.loc[setting, "D_before_low"] > 0 and top.loc[setting, "R_low"] > 0, setting
        assert top.loc[setting, "step_drop_low"] > 0, setting
    # the null check: at the empty prefix every trace of a question is alike
    assert (validation["D_start"].abs() < 4 * (validation["D_start_high"] - validation["D_start_low"]) / 3.92).all()
    # accuracy tells the settings' relation to gold apart, which D and R cannot
    assert top.loc["aligned", "accuracy_low"] > top.loc["aligned", "chance"]
    assert top.loc["misaligned", "accuracy_high"] < top.loc["misaligned", "chance"]
    assert top.loc["guesser", "accuracy_low"] <= top.loc["guesser", "chance"] <= top.loc["guesser", "accuracy_high"]


def test_what_it_tells_is_computed_from_the_table(validation):
    text = " ".join(I.what_it_tells(validation))
    assert "no information +0.000" in text and "12 of" not in text  # 8 runs in this table
    changed = validation.copy()
    changed.loc[changed["setting"] == "aligned", "D_before"] += 1.0  # an estimator gone wrong
    assert "not in aligned at M = 8, aligned at M = 32" in " ".join(I.what_it_tells(changed))


def test_step_effect_compares_each_trace_with_itself_shuffled():
    kw = dict(n_questions=30, n_traces=4, n_continuations=16, seed=4)
    original = oracle.sample_run(oracle.guesser(), **kw)
    effect = I.step_effect(original, oracle.sample_run(oracle.guesser(), shuffle="steps", **kw), n_resamples=100)
    answered = original.drop_duplicates(["question_id", "trace"])["trace_answer"].notna().sum()
    assert effect["traces"].item() == answered  # traces without an answer have no own answer to lose
    assert effect["drop_low"].item() > 0 and effect["drop_exact"].item() > 0.3
    same = I.step_effect(original, original, n_resamples=0)
    assert same["drop"].item() == 0 and same["drop_exact"].item() == 0


@pytest.fixture(scope="module")
def toy_runs():
    from siautil import grid, runs

    records = runs.stored("toy-regimes", grid.select("toy-regimes"))
    if records is None:
        pytest.skip("this checkout has no data/stored/toy-regimes")
    return records


def test_on_every_stored_toy_model_the_null_check_holds(toy_runs):
    """At the empty prefix every trace of a question is alike, so D is 0 up to noise for every
    regime and seed (within 3 standard errors; a 95% interval misses about one model in twenty)."""
    d = I.outcome_association(toy_runs, n_resamples=500)
    start = d[d["position"] == "start"].dropna(subset=["D"])
    assert start["model"].nunique() == toy_runs["model"].nunique()
    se = (start["D_high"] - start["D_low"]) / 3.92
    assert (start["D"].abs() <= 3 * se).all(), start[["model", "D", "D_low", "D_high"]]


def test_on_every_stored_toy_model_the_gold_probability_is_a_martingale(toy_runs):
    summary = I.martingale_summary(I.martingale(toy_runs, n_resamples=500))
    assert len(summary) == toy_runs["model"].nunique()
    se = (summary["change_high"] - summary["change_low"]) / 3.92
    assert (summary["change"].abs() <= 3 * se).all(), summary[["model", "p_0", "accuracy", "change"]]


def test_describe_says_what_each_interval_supports():
    row = dict(model="m", dataset="d", accuracy=0.5, accuracy_low=0.4, accuracy_high=0.6, chance=0.25,
               D_start=0.01, D_start_low=-0.05, D_start_high=0.07, D_before=0.3, D_before_low=0.1, D_before_high=0.5,
               D_before_questions=12, R=0.02, R_low=-0.03, R_high=0.08)
    (sentence,) = I.describe(pd.DataFrame([row]))
    assert sentence == ("m on d: accuracy 0.50 [0.40, 0.60] against chance 0.25 (above chance); null check D at the "
                        "empty prefix +0.01 [-0.05, +0.07] (holds 0, as it must); D before the answer +0.30 "
                        "[+0.10, +0.50] over 12 questions with both outcomes (above 0); R +0.02 [-0.03, +0.08] "
                        "(holds 0: cannot tell)")


def test_without_a_steps_run_the_step_columns_are_there_and_empty_and_no_sentence_reads_them():
    run = oracle.sample_run(oracle.aligned(steps=20), n_questions=20, n_traces=4, n_continuations=4, stride=5, seed=3)
    table = I.measures(run, n_resamples=50)
    assert {"step_drop", "step_drop_low", "step_drop_high", "step_null"} <= set(table.columns)
    assert table[["step_drop", "step_null"]].isna().all().all()
    assert not any("step effect" in s for s in I.describe(table))
    with_steps = I.measures(run, oracle.sample_run(oracle.aligned(steps=20), n_questions=20, n_traces=4,
                                                   n_continuations=4, stride=5, seed=3, shuffle="steps"), n_resamples=50)
    assert with_steps["step_drop"].notna().all() and any("step effect" in s for s in I.describe(with_steps))
