"""Estimators (siautil.estimators): entropies and gold surprisal by hand, against scipy and through
the one shared entropy (siautil.infotheory), bad
records, answers re-extracted from stored text, and the plug-in bias against the oracle's truth."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from siautil import diagnostics as D
from siautil import estimators as E
from siautil import infotheory as it
from siautil import oracle

from scripted_model import Q as SCRIPT_Q
from scripted_model import scripted


def rec(rows, gold="1"):
    """rows: (question, trace, t, T, answers, correct)."""
    return pd.DataFrame([dict(question_id=q, trace=n, t=t, T=T, answers=a, gold=gold, correct=c)
                         for q, n, t, T, a, c in rows])


# ------------------------------------------------------------------ estimators by hand


def test_plugin_and_miller_madow_by_hand():
    assert E.plugin_entropy([2, 1, 1]) == pytest.approx(-(0.5 * np.log(0.5) + 2 * 0.25 * np.log(0.25)))
    assert E.plugin_entropy([4, 0]) == 0
    assert E.miller_madow_entropy([2, 1, 1]) == pytest.approx(E.plugin_entropy([2, 1, 1]) + 2 / 8)
    np.testing.assert_allclose(E.plugin_entropy([[1, 1], [2, 0]]), [np.log(2), 0])
    assert np.isnan(E.plugin_entropy([0, 0]))
    with pytest.raises(ValueError, match="non-negative"):
        E.plugin_entropy([-1, 2])


def test_counting_matches_scipy_and_treats_null_as_a_class():
    r = rec([("q", 0, 0, 4, ["1", "2", None, None, "1"], False),
             ("q", 0, 4, 4, ["3", "3", "3", "3"], False)])
    tr = E.estimate(r, alpha=0)
    assert tr["entropy"][0] == pytest.approx(stats.entropy([2, 1, 2]))
    assert tr["entropy"][1] == 0
    assert list(tr["hits"]) == [2, 0] and list(tr["mode"]) == ["1", "3"]
    assert tr["surprisal"][0] == pytest.approx(-np.log(2 / 5)) and np.isinf(tr["surprisal"][1])


def test_gold_surprisal_smoothing():
    assert E.gold_surprisal(0, 8, alpha=0.5) == pytest.approx(-np.log(0.5 / 9))
    assert E.gold_surprisal(8, 8, alpha=0.5) == pytest.approx(-np.log(8.5 / 9))
    assert np.isinf(E.gold_surprisal(0, 8, alpha=0))
    with pytest.raises(ValueError, match="alpha"):
        E.gold_probability(1, 2, alpha=-1)


def test_keep_subsamples_first_answers():
    r = rec([("q", 0, 0, 1, ["1", "1", "2", "2"], True)])
    assert E.estimate(r, keep=2)["entropy"][0] == 0
    assert E.estimate(r)["entropy"][0] == pytest.approx(np.log(2))


def test_answers_are_re_extracted_from_the_stored_text():
    recs = pd.DataFrame(scripted(max_new_tokens=20, stride=8).run_question(SCRIPT_Q))
    recs["trace_text"] = "Tom has 19 apples + "  # as if the trace had been cut there
    recs["prefix_text"] = ""
    recs["continuations"] = [["Tom has 19 apples + ", "The answer is 13.", ""]] * len(recs)
    strict = E.reextract(recs, "strict-match")
    flexible = E.reextract(recs, "flexible-extract")
    assert list(strict["answers"].iloc[0]) == [None, "13", None] and strict["trace_answer"].iloc[0] is None
    assert list(flexible["answers"].iloc[0]) == ["19", "13", None] and flexible["trace_answer"].iloc[0] == "19"
    tr = E.estimate(recs, extraction="flexible-extract")
    assert tr["hits"].iloc[0] == 1


def test_estimators_go_through_the_shared_entropy():
    counts = np.array([[3, 1, 0, 4], [8, 0, 0, 0], [1, 1, 1, 1]])
    np.testing.assert_array_equal(E.plugin_entropy(counts), it.row_entropy(counts / counts.sum(1, keepdims=True)))
    answers = [["a"] * 3 + ["b"] + ["c"] * 4, ["a"] * 8, ["a", "b", "c", "d"]]
    ac = E.count_answers(answers)
    np.testing.assert_allclose(E.entropy_from_counts(ac), E.plugin_entropy(counts), atol=1e-15)
    np.testing.assert_allclose(E.entropy_from_counts(ac, "miller-madow"), E.miller_madow_entropy(counts),
                               atol=1e-15)
    with pytest.raises(ValueError, match="estimator must be"):
        E.entropy_from_counts(ac, "nsb")


# ------------------------------------------------------------------ bad input


def test_bad_records():
    with pytest.raises(E.RecordsError, match="no records"):
        E.estimate(rec([("q", 0, 0, 1, ["a"], True)]).iloc[:0])
    with pytest.raises(E.RecordsError, match="lack the columns"):
        E.estimate(pd.DataFrame({"t": [0]}))
    with pytest.raises(E.RecordsError, match="no answers"):
        E.estimate(rec([("q", 0, 0, 1, [], True)]))


def test_single_answer_and_all_null():
    r = rec([("q", 0, 0, 2, [None], False), ("q", 0, 1, 2, [None], False), ("q", 0, 2, 2, [None], False)])
    tr = E.estimate(r)
    assert (tr["entropy"] == 0).all()  # M = 1: a defined, zero entropy
    co = D.trace_alignment(tr)
    assert np.isnan(co["coefficient"][0]) and co["reason"][0] == "constant entropy"


# ------------------------------------------------------------------ against the oracle's ground truth


def test_plugin_converges_with_bias_near_theory():
    cfg = oracle.aligned(steps=10, reveal=0.2)
    for m, tol in ((4000, 0.01),):
        run = oracle.sample_run(cfg, n_questions=10, n_traces=2, n_continuations=m, stride=5, seed=2)
        tr = E.estimate(run)
        assert np.abs(tr["entropy"] - run["true_entropy"]).mean() < tol
    biases = {}
    for m in (8, 32):
        run = oracle.sample_run(cfg, n_questions=60, n_traces=4, n_continuations=m, stride=5, seed=3)
        pl = E.estimate(run)["entropy"] - run["true_entropy"]
        mm = E.estimate(run, estimator="miller-madow")["entropy"] - run["true_entropy"]
        biases[m] = pl.mean()
        k = cfg.n_answers + 1  # answers plus the null class
        assert pl.mean() < 0
        assert abs(mm.mean()) < abs(pl.mean())
        assert -(k - 1) / (2 * m) * 1.5 < pl.mean() < -(k - 1) / (2 * m) * 0.2
    assert 2 < biases[8] / biases[32] < 6  # bias shrinks like 1/M
