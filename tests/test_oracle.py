"""The oracle (siautil.oracle): a simulated model whose exact answer distributions are known,
sampled reproducibly at the engine's checkpoints, with the alignment sign it is built to have."""

import numpy as np
import pandas as pd

from siautil import checkpoints as cp
from siautil import diagnostics as D
from siautil import oracle


def test_oracle_alignment_sign_is_recovered():
    good = D.alignment(oracle.sample_run(oracle.aligned(), n_questions=30, seed=4), n_resamples=200)
    bad = D.alignment(oracle.sample_run(oracle.misaligned(), n_questions=30, seed=4), n_resamples=200)
    assert good["mean"][0] > 0.4 and good["ci_low"][0] > 0
    assert bad["mean"][0] < -0.2 and bad["ci_high"][0] < 0


def test_oracle_exact_quantities_are_distributions():
    run = oracle.sample_run(oracle.aligned(steps=8), n_questions=3, n_traces=2, n_continuations=4, stride=4, seed=0)
    assert run["true_entropy"].between(0, np.log(5)).all() and run["true_gold_prob"].between(0, 1).all()
    assert set(run["t"]) == {0, 4, 8}


def test_same_seed_same_records():
    a = oracle.sample_run(oracle.aligned(steps=8), n_questions=3, seed=7)
    b = oracle.sample_run(oracle.aligned(steps=8), n_questions=3, seed=7)
    pd.testing.assert_frame_equal(a, b)


def test_oracle_true_entropy_is_the_shared_entropy_of_its_exact_distribution():
    cfg = oracle.aligned(steps=12)
    run = oracle.sample_run(cfg, n_questions=2, n_traces=2, n_continuations=3, stride=5, seed=1)
    assert sorted(run["t"].unique()) == cp.checkpoints(12, 5) == [0, 5, 10, 12]
    assert run["true_entropy"].between(0, np.log(cfg.n_answers + 1)).all()
