"""Diagnostics (siautil.diagnostics): the alignment coefficient and its tables, the signatures
(cumulative gain, information gain, AUC by position with its intervals, plateau, early
stopping), the shuffle ablation and budget curve, trace summaries; hand-computed cases and
agreement with scipy and sklearn; runs kept apart."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from siautil import diagnostics as D
from siautil import estimators as E
from siautil import config, oracle, runs, store


def rec(rows, gold="1"):
    """rows: (question, trace, t, T, answers, correct)."""
    return pd.DataFrame([dict(question_id=q, trace=n, t=t, T=T, answers=a, gold=gold, correct=c)
                         for q, n, t, T, a, c in rows])


# ------------------------------------------------------------------ alignment coefficient


def test_alignment_coefficient_matches_pearsonr_and_explains_nan():
    h, s = [1.0, 0.5, 0.2, 0.1], [2.0, 1.0, 0.8, 0.1]
    r, why = D.alignment_coefficient(h, s)
    assert r == pytest.approx(stats.pearsonr(h, s).statistic) and why == ""
    assert D.alignment_coefficient([1.0], [1.0])[1] == "fewer than 3 checkpoints"
    # two checkpoints always give exactly ±1, so by default they do not count as defined
    assert D.alignment_coefficient([1.0, 0.2], [5.0, 0.1])[1] == "fewer than 3 checkpoints"
    assert D.alignment_coefficient([1.0, 0.2], [5.0, 0.1], min_checkpoints=2) == (pytest.approx(1.0), "")
    assert D.alignment_coefficient([1, 1, 1], [1, 2, 3])[1] == "constant entropy"
    assert D.alignment_coefficient([1, 2, 3], [1, 1, 1])[1] == "constant surprisal"
    assert D.alignment_coefficient([1, 2, 3], [1, 2, np.inf])[1] == "infinite surprisal"


def test_vectorised_coefficients_equal_scipy_per_trace():
    run = oracle.sample_run(oracle.aligned(steps=20), n_questions=8, n_traces=3, n_continuations=8, stride=4, seed=1)
    tr = E.estimate(run)
    co = D.trace_alignment(tr)
    for _, row in co.iterrows():
        g = tr[(tr.question_id == row.question_id) & (tr.trace == row.trace)]
        r, why = D.alignment_coefficient(g["entropy"], g["surprisal"])
        assert why == row.reason
        if not why:
            assert row.coefficient == pytest.approx(r, abs=1e-12)


def test_alignment_table_by_hand():
    co = pd.DataFrame(dict(question_id=["a", "a", "b", "c"], trace=[0, 1, 0, 0],
                           coefficient=[0.2, 0.4, 0.6, np.nan], reason=["", "", "", "constant entropy"],
                           checkpoints=3, correct=True))
    t = D.alignment_table(co, n_resamples=200)
    assert t["mean"][0] == pytest.approx(0.45)  # question means 0.3 and 0.6
    assert t["trace_mean"][0] == pytest.approx(0.4)  # the paper's mean over the 3 defined traces
    assert t["se"][0] == pytest.approx(stats.sem([0.3, 0.6]))
    assert t["questions"][0] == 2 and t["defined"][0] == 3 and t["undefined_constant_entropy"][0] == 1
    assert t["ci_low"][0] <= 0.45 <= t["ci_high"][0]


# ------------------------------------------------------------------ signatures by hand


def _traj(rows):
    return pd.DataFrame(rows, columns=["question_id", "trace", "t", "T", "entropy", "surprisal", "correct"]).assign(
        pos=lambda d: d["t"] / d["T"])


def test_cumulative_gain_by_hand():
    tr = _traj([("a", 0, 0, 2, 1.0, 3.0, True), ("a", 0, 1, 2, 0.5, 1.0, True), ("a", 0, 2, 2, 0.1, 1.0, True),
                ("b", 0, 0, 2, 1.0, 1.0, False), ("b", 0, 2, 2, 1.0, 2.0, False)])
    curve, counts = D.cumulative_gain(tr, grid=np.array([0, 0.5, 1]), min_total=0.1, n_resamples=10)
    got = curve[curve.correct & (curve.measure == "normalised")].set_index("pos")["mean"]
    np.testing.assert_allclose(got.to_numpy(), [0, 1, 1])  # all gain arrives by the midpoint
    nats = curve[curve.correct & (curve.measure == "gain")].set_index("pos")["mean"]
    np.testing.assert_allclose(nats.to_numpy(), [0, 2, 2])
    # the incorrect trace lost information (Ĝ_T = -1): it is shown, in nats and normalised
    wrong = curve[~curve.correct.astype(bool)].set_index(["measure", "pos"])["mean"]
    np.testing.assert_allclose(wrong["gain"].to_numpy(), [0, -0.5, -1])
    np.testing.assert_allclose(wrong["normalised"].to_numpy(), [0, 0.5, 1])
    c = counts.set_index("correct")
    assert c.loc[False, "traces"] == 1 and c.loc[False, "normalised"] == 1


def test_cumulative_gain_counts_every_incorrect_trace():
    # Incorrect traces whose gold surprisal rises (Ĝ_T < 0) and one that never moves: each is in
    # the nats curve, and counted in exactly one of the two groups.
    rows = []
    for q, rise in enumerate([0.5, 1.0, 1.5, 0.0]):
        rows += [(f"w{q}", 0, t, 4, 1.0, 1.0 + rise * t / 4, False) for t in (0, 2, 4)]
    rows += [("c", 0, t, 4, 1.0 - t / 8, 2.0 - t / 4, True) for t in (0, 2, 4)]
    curve, counts = D.cumulative_gain(_traj(rows), grid=np.array([0, 0.5, 1]), min_total=0.1, n_resamples=10)
    wrong = counts.set_index("correct").loc[False]
    assert wrong["traces"] == 4 and wrong["normalised"] == 3 and wrong["|total| below threshold"] == 1
    assert (counts["normalised"] + counts["|total| below threshold"] == counts["traces"]).all()
    end = curve[(~curve.correct.astype(bool)) & (curve.measure == "gain") & (curve.pos == 1)]
    assert end["mean"].item() == pytest.approx(-np.mean([0.5, 1.0, 1.5, 0.0]))
    assert end["questions"].item() == 4


def test_information_gain_by_hand():
    tr = _traj([("a", 0, 0, 4, 1, 3.0, True), ("a", 0, 2, 4, 1, 2.0, True), ("a", 0, 4, 4, 1, 0.0, True),
                ("b", 0, 0, 4, 1, 1.0, True), ("b", 0, 4, 4, 1, 2.0, True)])
    g = D.information_gain(tr, by=()).iloc[0]
    assert g["gain_per_step"] == pytest.approx(np.mean([1.0, 2.0, -1.0]))
    assert g["gain_per_token"] == pytest.approx(np.mean([0.5, 1.0, -0.25]))
    assert g["se"] == pytest.approx(stats.sem([1.5, -1.0]))  # per-question means
    assert g["steps"] == 3 and g["questions"] == 2


def test_auc_at_a_checkpoint_is_roc_auc_score():
    run = oracle.sample_run(oracle.aligned(steps=12), n_questions=30, n_traces=3, n_continuations=8, stride=4, seed=5)
    tr = E.estimate(run)
    auc = D.auc_by_position(tr)
    for t, g in tr.groupby("t"):
        row = auc[auc.t == t].iloc[0]
        if g["correct"].nunique() == 2:
            assert row["auc"] == pytest.approx(roc_auc_score(g["correct"].astype(int), -g["entropy"]))


def test_auc_by_hand_and_undefined():
    tr = _traj([("a", 0, 0, 1, 0.1, 0, True), ("b", 0, 0, 1, 0.9, 0, False), ("c", 0, 0, 1, 0.5, 0, True),
                ("a", 0, 1, 1, 0.1, 0, True), ("b", 0, 1, 1, 0.2, 0, True), ("c", 0, 1, 1, 0.5, 0, True)])
    tr.loc[3:, "correct"] = True
    auc = D.auc_by_position(tr, n_resamples=20)
    assert auc.loc[auc.t == 0, "auc"].item() == pytest.approx(roc_auc_score([1, 0, 1], [-0.1, -0.9, -0.5]))
    assert auc.loc[auc.t == 0, "auc"].item() == 1.0
    row = auc[auc.t == 1].iloc[0]
    assert np.isnan(row.auc) and row.reason == "all correct"


def test_plateau_and_rebound():
    p = D.plateau([0, 0.25, 0.5, 0.75, 1], [1.0, 0.5, 0.2, 0.2, 0.3])
    assert p["plateau_pos"] == 0.5 and p["plateau_level"] == 0.2 and p["rebound"] == pytest.approx(0.1)
    assert np.isnan(D.plateau([], [])["plateau_pos"])


def test_coarsen_keeps_final_checkpoint():
    r = rec([("q", 0, t, 7, ["1"], True) for t in (0, 2, 4, 6, 7)])
    assert list(D.coarsen(r, 4)["t"]) == [0, 4, 7]


def test_early_stopping_by_hand():
    tr = _traj([("a", 0, 0, 10, 1.0, 0, True), ("a", 0, 5, 10, 0.0, 0, True), ("a", 0, 10, 10, 0.0, 0, True)])
    tr["mode_correct"] = [False, True, True]
    es = D.early_stopping(tr, thresholds=[0.5, 2.0])
    assert es.loc[0, "tokens_saved"] == pytest.approx(0.5) and es.loc[0, "accuracy"] == 1
    assert es.loc[1, "tokens_saved"] == 1 and es.loc[1, "accuracy"] == 0


# ------------------------------------------------------------------ the shuffle ablation and the budget


def test_table_2_sets_each_run_s_own_coefficient_side_by_side():
    cfg = oracle.aligned(steps=20)
    orig = oracle.sample_run(cfg, n_questions=10, seed=5, stride=4)
    shuf = oracle.sample_run(cfg, n_questions=10, seed=5, stride=4, shuffle="steps")
    t2 = D.shuffle_table(orig, shuf, n_resamples=100)
    for run, which in ((orig, "original"), (shuf, "shuffled")):
        alone = D.alignment(run, n_resamples=100)
        for col in ("trace_mean", "mean", "ci_low", "ci_high", "questions"):
            assert t2[f"{col}_{which}"].item() == pytest.approx(alone[col].item()), (which, col)
    assert t2["mean_original"].item() != pytest.approx(t2["mean_shuffled"].item())  # two runs, not one twice


def test_the_budget_curve_recomputes_the_coefficient_from_the_first_m_answers_at_each_stride():
    run = oracle.sample_run(oracle.aligned(steps=20), n_questions=10, seed=5, stride=4)
    curve = D.budget_curve(run, strides=(None, 8), n_resamples=50)
    assert set(curve["continuations"]) == {1, 2, 4, 8, 16} and set(curve["stride"]) == {"run", 8}
    one = curve[curve["continuations"] == 1]
    assert one["defined"].eq(0).all() and one["undefined_constant_entropy"].eq(one["traces"]).all()  # one answer: H = 0
    whole = curve.query("stride == 'run' and continuations == 16").iloc[0]
    assert whole["mean"] == pytest.approx(D.alignment(run, n_resamples=50)["mean"].item())
    coarse = curve.query("stride == 8 and continuations == 16").iloc[0]
    every_8th = run[(run["t"] % 8 == 0) | (run["t"] == run["T"])]
    assert coarse["mean"] == pytest.approx(D.alignment(every_8th, n_resamples=50)["mean"].item())
    first_4 = run.assign(answers=run["answers"].map(lambda a: list(a)[:4]))
    four = curve.query("stride == 'run' and continuations == 4").iloc[0]
    assert four["mean"] == pytest.approx(D.alignment(first_4, n_resamples=50)["mean"].item())


def test_table_2_compares_the_same_questions():
    orig = oracle.sample_run(oracle.aligned(), n_questions=8, n_traces=2, n_continuations=8, seed=1).assign(model="m")
    shuf = oracle.sample_run(oracle.aligned(), n_questions=4, n_traces=2, n_continuations=8, seed=1,
                             shuffle="tokens").assign(model="m")
    t2 = D.shuffle_table(orig, shuf, n_resamples=10)
    assert t2["questions_original"].item() <= 4 and t2["questions_shuffled"].item() <= 4
    alone = D.alignment(orig[orig["question_id"].isin(shuf["question_id"])], n_resamples=10)
    assert t2["trace_mean_original"].item() == pytest.approx(alone["trace_mean"].item())


# ------------------------------------------------------------------ AUC intervals


def test_weighted_auc_equals_sklearn_with_unit_and_integer_weights():
    rng = np.random.default_rng(0)
    y = rng.random(200) < 0.4
    s = np.round(rng.normal(size=200), 1)  # ties
    assert D.weighted_auc(y, s, np.ones((1, 200)))[0] == pytest.approx(roc_auc_score(y, s))
    w = rng.integers(0, 3, size=200)
    rep = np.repeat(np.arange(200), w)
    assert D.weighted_auc(y, s, w[None].astype(float))[0] == pytest.approx(roc_auc_score(y[rep], s[rep]))


def test_clustered_delong_agrees_with_cluster_bootstrap():
    run = oracle.sample_run(oracle.aligned(steps=20), n_questions=80, n_traces=4, n_continuations=8, stride=20, seed=9)
    tr = E.estimate(run)
    a = D.auc_by_position(tr, interval="delong")
    b = D.auc_by_position(tr, interval="bootstrap", n_resamples=400)
    for t in (20,):
        ra, rb = a[a.t == t].iloc[0], b[b.t == t].iloc[0]
        assert ra.auc == rb.auc
        width_a, width_b = ra.ci_high - ra.ci_low, rb.ci_high - rb.ci_low
        assert 0.7 < width_a / width_b < 1.4


def test_delong_without_clusters_matches_textbook_case():
    # Hanley & McNeil style check: perfect separation has zero variance
    y = np.array([1, 1, 0, 0], dtype=bool)
    assert D.clustered_auc_se(y, np.array([4.0, 3.0, 2.0, 1.0]), np.arange(4)) == 0.0


# ------------------------------------------------------------------ trace summary


def test_trace_summary_by_hand():
    rows = []
    for q, (correct, finish, answer) in enumerate([(True, "eos", "1"), (False, "length", None), (False, "eos", "2")]):
        for t in (0, 1, 2):
            rows.append(dict(question_id=f"q{q}", trace=0, t=t, T=2, answers=["1", "2"] if t < 2 else ["1", "1"],
                             gold="1", correct=correct, finish=finish, trace_answer=answer))
    s = D.trace_summary(pd.DataFrame(rows)).iloc[0]
    assert (s["questions"], s["traces"]) == (3, 3)
    assert s["accuracy"] == pytest.approx(1 / 3) and s["finished"] == pytest.approx(2 / 3)
    assert s["answered"] == pytest.approx(2 / 3) and s["mean_T"] == 2
    assert s["coefficient defined"] == 1.0


# ------------------------------------------------------------------ runs kept apart


def test_shuffled_and_unshuffled_runs_stay_apart(tiny_store):
    a = tiny_store("plain")
    b = tiny_store("shuffled", shuffle="tokens")
    recs = store.load_records([a, b])
    assert recs["run"].nunique() == 2 and set(recs["protocol"]) == {config.PROTOCOL}
    recs["shuffle"] = np.where(recs["run"] == store.run_id(store.read_config(b)), "tokens", "none")
    traj = E.estimate(recs)
    assert len(D.trace_alignment(traj).groupby(["run"])) == 2
    assert len(D.alignment(recs, n_resamples=10, min_checkpoints=2)) == 2
    curve, counts = D.cumulative_gain(traj, n_resamples=10)
    assert counts["run"].nunique() == 2


# ------------------------------------------------------------------ what the shuffles and the answers show


def test_null_share_and_the_shuffle_findings_on_the_oracle():
    cfg = oracle.aligned(steps=20)
    orig = oracle.sample_run(cfg, n_questions=20, seed=5, stride=4).assign(model="m", shuffle="none")
    shuf = oracle.sample_run(cfg, n_questions=20, seed=5, stride=4, shuffle="tokens").assign(model="m", shuffle="tokens")
    orig["answers"] = [[None] * 16 if i < 5 else list(a) for i, a in enumerate(orig["answers"])]  # five answer nothing
    null = D.null_share(orig)
    assert null.loc[null.t == 0, "null"].item() == pytest.approx(
        np.mean([a is None for row in orig.loc[orig.t == 0, "answers"] for a in row]))
    t2 = D.on_each_checkpoint_set(D.shuffle_table, orig, shuffled=shuf, n_resamples=50).assign(shuffle="tokens")
    assert list(t2["checkpoints"].unique()) == ["all", "before answer"]
    (sentence,) = D.shuffle_findings(t2, pd.concat([D.null_share(shuf).assign(shown="tokens")]))
    assert sentence.startswith("m, tokens shuffled: before the answer, ") and "answer nothing" in sentence


def test_answer_distribution_sets_predicted_beside_gold():
    recs = pd.DataFrame([dict(model="m", dataset="arc-easy", question_id=f"q{i}", trace=0, t=0, T=1, gold=g,
                              correct=a == g, trace_answer=a, trace_text=text, prefix_chars=0, prefix_text="",
                              continuations=[text], answers=[a])
                         for i, (g, a, text) in enumerate([("A", "A", "The answer is (A)."), ("B", None, "(B) heat"),
                                                           ("B", "C", "The answer is C.")])])
    out = D.answer_distribution(recs).set_index("answer")
    assert out.loc["B", "gold"] == pytest.approx(2 / 3) and out.loc["∅", "predicted"] == pytest.approx(1 / 3)
    both = D.answer_distribution(recs, modes=("strict-match", "flexible-extract")).set_index("answer")
    assert both.loc["B", "strict-match"] == 0 and both.loc["B", "flexible-extract"] == pytest.approx(1 / 3)
    assert both.loc["∅", "flexible-extract"] == 0
