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


def test_baseline_of_a_trace_whose_answers_never_change_is_undefined():
    recs = _records([["1", "1"]] * 4)
    b = C.baseline(recs, n_draws=50)
    assert np.isnan(b["baseline"].item()) and b["baseline_defined"].item() == 0.0


def test_table_verdicts_follow_the_decoupled_interval():
    runs = {name: oracle.sample_run(cfg, n_questions=40, n_traces=4, n_continuations=32, stride=5, seed=6)
            for name, cfg in (("aligned", oracle.aligned()), ("none", oracle.no_information()))}
    recs = pd.concat([r.assign(model=name) for name, r in runs.items()], ignore_index=True)
    tab = C.table(recs, n_draws=20, n_resamples=300).set_index("model")
    assert tab.loc["aligned", "verdict"] == "informative"
    assert tab.loc["none", "verdict"] == "cannot tell at this M"
    assert tab.loc["none", "paper"] > 0.8 and np.isnan(tab.loc["none", "corrected"])
    few = C.table(runs["aligned"][runs["aligned"]["question_id"].isin(["oracle-0", "oracle-1"])], n_draws=5,
                  n_resamples=50)
    assert few["verdict"].item() == "too few questions (2)"


def test_corrected_refuses_to_divide_noise_by_noise():
    assert np.isnan(C.corrected(0.1, 0.02, 0.5))
    assert C.corrected(0.2, 0.5, 0.5) == pytest.approx(0.4)


@pytest.fixture(scope="module")
def no_information():
    run = oracle.sample_run(oracle.no_information(gold_prob=0.8), n_questions=60, n_traces=4,
                            n_continuations=16, stride=5, seed=2)
    traces, rel = C.per_trace(run, n_draws=100, seed=2)
    return traces, rel


def test_no_information_paper_reads_high_decoupled_reads_zero(no_information):
    traces, _ = no_information
    paper, dec = traces["paper"].dropna(), traces["decoupled"].dropna()
    assert paper.mean() > 0.8  # gold is modal: the shared noise alone makes it look aligned
    se = dec.std() / np.sqrt(len(dec))
    assert abs(dec.mean()) < 2.5 * se


def test_no_information_baseline_matches_the_paper_and_correction_abstains(no_information):
    traces, rel = no_information
    both = traces.dropna(subset=["paper", "baseline"])
    assert both["baseline"].mean() == pytest.approx(both["paper"].mean(), abs=0.03)
    assert abs(both["excess"].mean()) < 0.03
    assert rel["r_H"].item() < C.MIN_RELIABILITY or rel["r_s"].item() < C.MIN_RELIABILITY


@pytest.mark.parametrize("setting", ["aligned", "misaligned"])
def test_informative_oracles_decoupled_has_the_sign_and_corrected_the_size(setting):
    cfg = oracle.aligned() if setting == "aligned" else oracle.misaligned()
    v = C.validate({setting: cfg}, ms=(32,), n_questions=60, n_draws=20, seed=4).set_index("estimator")
    exact = v.loc["paper", "exact"]
    dec = v.loc["decoupled"]
    assert np.sign(dec["mean"]) == np.sign(exact) and abs(dec["mean"]) > 3 * dec["se"]
    # attenuated: the decoupled estimate is well short of the truth; the correction recovers
    # most of it (measured bias about 25% of the exact value; stated in the book)
    assert abs(dec["mean"]) < 0.6 * abs(exact)
    assert abs(v.loc["corrected", "mean"] - exact) < 0.35 * abs(exact)


def test_describe_says_each_estimate_with_its_interval_and_the_verdict():
    row = {"model": "m", "dataset": "d", "traces": 12, "paper defined": 7, "verdict": "informative"}
    for i, name in enumerate(("paper", "decoupled", "excess")):
        row.update({name: 0.1 * (i + 1), f"{name} low": -0.05 * (i + 1), f"{name} high": 0.25 * (i + 1)})
    (sentence,) = C.describe(pd.DataFrame([row]))
    assert sentence == ("m on d: paper's estimator +0.100 [-0.050, +0.250] (7 of 12 traces defined), "
                        "decoupled +0.200 [-0.100, +0.500], excess over the no-information baseline "
                        "+0.300 [-0.150, +0.750]; verdict: informative")
