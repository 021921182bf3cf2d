"""Estimators of the alignment coefficient against the truth: hand-computed values, the
no-information oracle, and the aligned and misaligned oracles whose exact coefficient is known."""

import numpy as np
import pandas as pd
import pytest

from siautil import coefficient as C
from siautil import diagnostics as D
from siautil import estimators as E
from siautil import oracle


def _records(rows, gold="1"):
    return pd.DataFrame([dict(question_id="q", trace=0, t=t, T=2, answers=a, gold=gold, correct=True)
                         for t, a in enumerate(rows)])


def test_decoupled_by_hand():
    recs = _records([["1", "2", "2", "3"], ["1", "1", "1", "2"], ["1", "1", "1", "1"]])
    h_a, h_b = [np.log(2), 0, 0], [np.log(2), np.log(2), 0]
    s = lambda hits: [-np.log((h + 0.5) / 3) for h in hits]  # noqa: E731 - α = 1/2, M/2 = 2
    r1 = np.corrcoef(h_a, s([0, 1, 2]))[0, 1]
    r2 = np.corrcoef(h_b, s([1, 2, 2]))[0, 1]
    per_trace, rel = C.decoupled(recs)
    assert per_trace["coefficient"].item() == pytest.approx((r1 + r2) / 2)
    # the paper's estimate from all four answers differs: it shares the answers' noise
    paper = D.trace_alignment(E.estimate(recs))["coefficient"].item()
    assert paper != pytest.approx(per_trace["coefficient"].item())
    assert rel["r_H"].item() == pytest.approx(np.corrcoef(h_a, h_b)[0, 1])


def test_each_run_is_split_at_its_own_m():
    # a run with M = 4 beside one with M = 32: the second must not be cut to halves of 2
    small = oracle.sample_run(oracle.aligned(), n_questions=5, n_traces=2, n_continuations=4, seed=1).assign(model="a")
    big = oracle.sample_run(oracle.aligned(), n_questions=5, n_traces=2, n_continuations=32, seed=1).assign(model="b")
    together, _ = C.decoupled(pd.concat([small, big], ignore_index=True))
    alone, _ = C.decoupled(big)
    got = together[together.model == "b"]["coefficient"].to_numpy()
    np.testing.assert_allclose(got, alone["coefficient"].to_numpy())


def test_table_gives_each_estimate_with_its_interval_and_no_excess_or_verdict():
    runs = {name: oracle.sample_run(cfg, n_questions=40, n_traces=4, n_continuations=32, stride=5, seed=6)
            for name, cfg in (("aligned", oracle.aligned()), ("none", oracle.no_information()))}
    recs = pd.concat([r.assign(model=name) for name, r in runs.items()], ignore_index=True)
    tab = C.table(recs, n_resamples=300).set_index("model")
    assert tab.loc["aligned", "decoupled_low"] > 0
    assert tab.loc["none", "decoupled_low"] < 0 < tab.loc["none", "decoupled_high"]
    assert tab.loc["none", "paper"] > 0.8 and np.isnan(tab.loc["none", "corrected"])
    assert not any("excess" in c or "baseline" in c or "verdict" in c for c in tab.columns)
    assert not hasattr(C, "baseline") and not hasattr(C, "describe")


def test_by_outcome_splits_traces_and_the_mix_implies_the_cell_mean():
    run = oracle.sample_run(oracle.aligned(), n_questions=40, n_traces=4, n_continuations=16, seed=3).assign(model="m")
    out = C.by_outcome(run, n_resamples=100).set_index("outcome")
    traces = run.drop_duplicates(["question_id", "trace"])
    assert out.loc["correct", "traces"] == traces["correct"].sum()
    assert out.loc[["correct", "incorrect", "no answer"], "traces"].sum() == len(traces)
    assert out.loc["no answer", "traces"] == traces["trace_answer"].isna().sum()
    assert out.loc["correct", "paper"] > out.loc["incorrect", "paper"]
    # alone, a cell's mix implies its own mean exactly
    assert out.loc["all", "paper_implied_by_mix"] == pytest.approx(out.loc["all", "paper"])


def test_the_mix_implies_a_cells_mean_from_the_outcome_means_of_every_cell():
    kw = dict(n_traces=4, n_continuations=16, seed=3)
    both = pd.concat([oracle.sample_run(oracle.aligned(), n_questions=30, **kw).assign(model="accurate"),
                      oracle.sample_run(oracle.guesser(), n_questions=30, **kw).assign(model="guesser")],
                     ignore_index=True)
    out = C.by_outcome(both, n_resamples=0)
    traces, _ = C.per_trace(both)
    defined = traces.dropna(subset=["paper"])
    pooled = defined.groupby("outcome")["paper"].mean()
    for model, g in defined.groupby("model"):
        mix = g["outcome"].value_counts(normalize=True)
        expected = sum(share * pooled[o] for o, share in mix.items())
        row = out[(out.model == model) & (out.outcome == "all")].iloc[0]
        assert row["paper_implied_by_mix"] == pytest.approx(expected)
        assert row["paper"] == pytest.approx(g["paper"].mean())
    implied = out[out.outcome == "all"].set_index("model")["paper_implied_by_mix"]
    assert implied["accurate"] > implied["guesser"]  # more correct traces, a higher implied mean


def test_outcome_reads_null_answers_apart():
    recs = pd.DataFrame(dict(correct=[True, False, False], trace_answer=["1", "2", None]))
    assert list(C.outcome(recs)) == ["correct", "incorrect", "no answer"]


def test_corrected_refuses_to_divide_noise_by_noise():
    assert np.isnan(C.corrected(0.1, 0.02, 0.5))
    assert C.corrected(0.2, 0.5, 0.5) == pytest.approx(0.4)


@pytest.fixture(scope="module")
def no_information():
    run = oracle.sample_run(oracle.no_information(gold_prob=0.8), n_questions=60, n_traces=4,
                            n_continuations=16, stride=5, seed=2)
    return C.per_trace(run)


def test_no_information_paper_reads_high_decoupled_reads_zero(no_information):
    traces, rel = no_information
    paper, dec = traces["paper"].dropna(), traces["decoupled"].dropna()
    assert paper.mean() > 0.8  # gold is modal: the shared noise alone makes it look aligned
    se = dec.std() / np.sqrt(len(dec))
    assert abs(dec.mean()) < 2.5 * se
    assert rel["r_H"].item() < C.MIN_RELIABILITY or rel["r_s"].item() < C.MIN_RELIABILITY


@pytest.mark.parametrize("setting", ["aligned", "misaligned"])
def test_informative_oracles_decoupled_has_the_sign_and_corrected_the_size(setting):
    cfg = oracle.aligned() if setting == "aligned" else oracle.misaligned()
    v = C.validate({setting: cfg}, ms=(32,), n_questions=60, seed=4)
    v = v[v["outcome"] == "all"].set_index("estimator")
    exact = v.loc["paper", "exact"]
    dec = v.loc["decoupled"]
    assert np.sign(dec["mean"]) == np.sign(exact) and abs(dec["mean"]) > 3 * dec["se"]
    # attenuated: the decoupled estimate is well short of the truth; the correction recovers
    # most of it (measured bias about 25% of the exact value; stated in the book)
    assert abs(dec["mean"]) < 0.6 * abs(exact)
    assert abs(v.loc["corrected", "mean"] - exact) < 0.35 * abs(exact)


def test_validation_splits_the_exact_coefficient_by_outcome_too():
    v = C.validate({"guesser": oracle.guesser()}, ms=(16,), n_questions=40, seed=1)
    exact = v[v["estimator"] == "paper"].set_index("outcome")["exact"]
    # the truth itself follows the outcome: a guesser's correct traces align, its wrong ones do not
    assert exact["correct"] > 0 > exact["incorrect"]
