"""The information-theory primitives (siautil.infotheory): the one plug-in entropy, bit-identical to
the implementations it replaced in #13, cross entropy, and the shared validation of distributions."""

import numpy as np
import pytest
import scipy.stats

from siautil import infotheory as it
from siautil import theory


def _old_theory_h(p):
    """theory._h before #13: the sum over the support."""
    nz = p[p > 0]
    return float(-(nz * np.log(nz)).sum())


def _old_rows(p):
    """oracle._entropy before #13 (and plugin_entropy's arithmetic after normalising)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(p > 0, p * np.log(p), 0.0).sum(-1)


@pytest.mark.parametrize("k", [2, 5, 8, 13, 40])
def test_row_entropy_is_bit_identical_to_the_implementations_it_replaced(k):
    rng = np.random.default_rng(k)
    p = rng.dirichlet(np.full(k, 0.3), size=(6, 3))
    p[0, 0, 0] = 0.0  # a zero, to exercise 0 log 0
    np.testing.assert_array_equal(it.row_entropy(p), _old_rows(p))
    for row in p.reshape(-1, k):
        assert it.row_entropy(row) == _old_rows(row)
    joint = rng.dirichlet(np.full(k * 4, 0.05)).reshape(4, k)
    assert it.entropy(joint) == _old_theory_h(joint)


def test_row_entropy_values_and_zero_sign():
    p = np.array([[0.5, 0.25, 0.25], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(it.row_entropy(p), scipy.stats.entropy(p, axis=-1), atol=1e-15)
    h = it.row_entropy(np.array([1.0, 0.0]))
    assert isinstance(h, float) and h == 0.0 and not np.signbit(h)
    np.testing.assert_array_equal(it.xlogx([0.0, 1.0, np.nan]), [0.0, 0.0, 0.0])


def test_validate_pair_names_the_mismatch():
    p, q = it.validate_pair([0.5, 0.5], [0.25, 0.75])
    assert p.dtype == q.dtype == np.float64
    with pytest.raises(ValueError, match="data and model have mismatched shapes"):
        it.validate_pair(np.full(2, 0.5), np.full(4, 0.25), ("data", "model"))
    with pytest.raises(ValueError, match="Q sums to"):
        it.validate_pair([0.5, 0.5], [0.5, 0.6])
    with pytest.raises(ValueError, match="mismatched shapes"):
        theory.check_theorem2(np.full((2, 2, 2), 1 / 8), np.full((2, 2, 3), 1 / 12), 1)


def test_cross_entropy():
    p, q = np.array([0.2, 0.8, 0.0]), np.array([0.5, 0.25, 0.25])
    assert it.cross_entropy(p, q) == pytest.approx(it.entropy(p) + it.kl_divergence(p, q))
    assert it.cross_entropy(q, p) == np.inf


def test_kl_of_nearly_equal_distributions_is_accurate():
    # KL(p || (1-w) p + w r) = w^2/2 * chi2(r, p) + O(w^3): the first-order terms cancel, so a
    # plain sum of p log(p/q) returns rounding noise (often 0) here; Lemma 5's check then had a
    # zero bound for a real 1e-9 entropy difference (found by hypothesis)
    rng = np.random.default_rng(3)
    for w in (1e-4, 1e-7, 6e-8):
        p, r = rng.dirichlet(np.full(12, 2.0)), rng.dirichlet(np.ones(12))
        q = (1 - w) * p + w * r
        want = w ** 2 / 2 * np.sum((r - p) ** 2 / p)
        assert it.kl_divergence(p, q) == pytest.approx(want, rel=1e-3)
