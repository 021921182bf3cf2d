"""Property-based checks of siautil.theory: every identity and bound of the paper on random joints."""

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from siautil import infotheory as it
from siautil import theory as th

# A joint over (X, Z_1..Z_T, A) from hypothesis-chosen shape, concentration and seed.
joints = st.builds(
    th.random_joint,
    n_x=st.integers(1, 3),
    n_z=st.integers(2, 3),
    steps=st.integers(1, 3),
    n_a=st.integers(3, 5),
    concentration=st.sampled_from([0.05, 0.3, 1.0, 5.0]),
    rng=st.integers(0, 2**32 - 1),
)
pairs = st.tuples(joints, st.floats(0.0, 2.0), st.integers(0, 2**32 - 1)).map(
    lambda j: (j[0], th.perturb(j[0], j[1], j[2]))
)
ATOL = 1e-9


def _assert(checks):
    for c in checks:
        assert c.holds(ATOL), f"{c.result} (t={c.t}, {c.note}): lhs={c.lhs!r} rhs={c.rhs!r}"


# ----------------------------------------------------------------------------- primitives


@given(st.lists(st.floats(0, 10), min_size=1, max_size=30).filter(lambda v: sum(v) > 1e-3))
def test_entropy_agrees_with_scipy(values):
    p = np.array(values) / np.sum(values)
    assert th.entropy(p) == pytest.approx(scipy.stats.entropy(p), abs=1e-12)


@given(joints, joints)
def test_kl_agrees_with_scipy(p, q):
    if p.shape != q.shape:
        return
    expected = scipy.stats.entropy(p.ravel(), q.ravel())
    assert th.kl_divergence(p, q) == pytest.approx(expected, abs=1e-10)


@given(joints)
def test_entropy_bounds_and_chain_rule(p):
    n = p.size
    assert -1e-12 <= th.entropy(p) <= np.log(n) + 1e-12
    # H(A, rest) = H(rest) + H(A | rest) for the answer axis
    a = p.ndim - 1
    rest = tuple(range(a))
    assert th.entropy(p) == pytest.approx(
        th.entropy(th.marginal(p, rest)) + th.conditional_entropy(p, a, rest), abs=1e-10
    )


@given(joints)
def test_mutual_information_symmetric_and_nonnegative(p):
    a, x = p.ndim - 1, 0
    i_ax = th.mutual_information(p, a, x)
    assert i_ax >= -1e-12
    assert i_ax == pytest.approx(th.mutual_information(p, x, a), abs=1e-10)
    assert th.conditional_mutual_information(p, a, 1, 0) >= -1e-12


@given(pairs)
def test_tv_pinsker(pq):
    p, q = pq
    assert th.total_variation(p, q) <= th.pinsker_tv_bound(th.kl_divergence(p, q)) + ATOL


def test_binary_entropy_values():
    assert th.binary_entropy(0.5) == pytest.approx(np.log(2))
    assert th.binary_entropy(0.0) == 0.0 and th.binary_entropy(1.0) == 0.0
    np.testing.assert_allclose(th.binary_entropy(np.array([0.1, 0.9])), [0.325083] * 2, atol=1e-6)


def test_epsilon_goes_to_zero_and_caps_at_log_n():
    assert th.epsilon(0.0, 5) == 0.0
    assert th.epsilon(1e-10, 5) < 1e-3
    assert th.epsilon(1e6, 5) == pytest.approx(np.log(5))
    # increasing in delta
    d = np.linspace(0, 1, 50)
    e = [th.epsilon(x, 7) for x in d]
    assert np.all(np.diff(e) >= 0)


@given(st.floats(0, 1), st.integers(3, 20))
def test_fano_forms_consistent(frac, n):
    h = frac * np.log(n)
    sharp = th.fano_error_bound(h, n)
    weak = th.fano_lower_bound(h, n)
    assert 0 <= weak <= sharp + 1e-9 <= 1 - 1 / n + 1e-9


def test_fano_on_uniform_answer_is_tight():
    # With no information the MAP error is 1 - 1/n and the sharp Fano bound equals it.
    n = 5
    assert th.fano_error_bound(np.log(n), n) == pytest.approx(1 - 1 / n, abs=1e-9)


# ----------------------------------------------------------------------------- the paper's results


@settings(max_examples=60, deadline=None)
@given(joints)
def test_lemma1_proposition1_theorem1(p):
    steps = p.ndim - 2
    for t in range(1, steps + 1):
        _assert([th.check_lemma1(p, t)])
        _assert(th.check_proposition1(p, t))
        _assert(th.check_theorem1(p, t))


@settings(max_examples=60, deadline=None)
@given(pairs)
def test_two_distribution_results(pq):
    p, q = pq
    _assert([th.check_lemma2(p, q), th.check_lemma5(p, q)])
    _assert(th.check_lemma3(p, q))
    _assert(th.check_lemma4(p, q))
    for t in range(1, p.ndim - 1):
        _assert([th.check_lemma6(p, q, t), th.check_lemma7(p, q, t), th.check_theorem2(p, q, t)])


def test_lemmas_3_and_4_are_checked_for_each_x():
    # Lemma 4 is stated per x: a pair whose average KL hides one x with a large KL must show
    # that x's own terms, and each x's chain rule must hold on its own.
    rng = np.random.default_rng(3)
    p = th.random_joint(3, 3, 2, 3, rng=rng)
    q = p.copy()
    q[1] = th.perturb(p[1] / p[1].sum(), 3.0, rng) * p[1].sum()  # only x = 1 differs
    c3 = th.check_lemma3(p, q)
    assert [c.x for c in c3] == [0, 1, 2]
    _assert(c3)
    kl = {c.x: c.lhs for c in c3}
    assert kl[0] == pytest.approx(0, abs=1e-12) and kl[2] == pytest.approx(0, abs=1e-12) and kl[1] > 0.05
    c4 = th.check_lemma4(p, q)
    assert len(c4) == 6 and {c.x for c in c4} == {0, 1, 2}
    _assert(c4)
    # the x = 1 bound is against that x's joint KL, not the average over x
    assert max(c.rhs for c in c4 if c.x == 1) == pytest.approx(kl[1])
    frame = th.checks_frame(c3 + c4)
    assert frame["x"].notna().all()


def test_entropy_is_a_progress_variable():
    p = th.random_joint(2, 3, 4, 4, concentration=0.3, rng=1)
    h = th.entropy_trajectory(p)
    i = th.information_trajectory(p)
    assert np.all(np.diff(h) <= 1e-12)  # conditioning never raises expected entropy
    np.testing.assert_allclose(h, h[0] - i, atol=1e-12)


def test_sia_world_aligned_vs_not():
    aligned = th.sia_world(True, rng=0)
    broken = th.sia_world(False, rng=0)
    # the model's own answer entropy falls identically in both worlds
    np.testing.assert_allclose(
        th.entropy_trajectory(aligned["model"]), th.entropy_trajectory(broken["model"])
    )
    assert th.entropy_trajectory(broken["model"])[-1] < th.entropy_trajectory(broken["model"])[0] - 0.1
    # gold answer law p*(x, a) is the same, but only the aligned coupling is informative
    np.testing.assert_allclose(
        th.marginal(aligned["coupling"], (0, -1)), th.marginal(broken["coupling"], (0, -1)), atol=1e-12
    )
    assert th.information_trajectory(aligned["coupling"])[-1] > 0.1
    np.testing.assert_allclose(th.information_trajectory(broken["coupling"]), 0, atol=1e-12)


def test_a_wrong_identity_is_caught():
    # A check must be able to fail: compare H(A|X,Z_<=1) with H(A|X) on an informative joint.
    p = th.sia_world(True, rng=0)["coupling"]
    c = th.Check("fake", "=", th.conditional_entropy(p, -1, (0, 1)), th.conditional_entropy(p, -1, 0))
    assert not c.holds()


def test_survey_all_hold():
    df = th.survey(n_joints=10, seed=3)
    assert len(df) > 50 and df["holds"].all()
    assert set(df["result"]) >= {"Lemma 1", "Proposition 1", "Theorem 1", "Lemma 2", "Lemma 3",
                                 "Lemma 4", "Lemma 5", "Lemma 6", "Lemma 7", "Theorem 2"}


def test_theory_re_exports_every_primitive():
    public = [n for n in dir(it) if not n.startswith("_") and callable(getattr(it, n))
              and getattr(getattr(it, n), "__module__", None) == it.__name__]
    assert {"entropy", "kl_divergence", "epsilon", "validate_pair", "row_entropy"} <= set(public)
    for name in public + ["SUM_TOL"]:
        assert getattr(th, name) is getattr(it, name), name


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "p, match",
    [
        ([0.5, -0.1, 0.6], "negative"),
        ([0.2, 0.2], "sums to"),
        ([], "empty"),
        ([np.nan, 1.0], "NaN"),
    ],
)
def test_rejects_bad_distributions(p, match):
    with pytest.raises(ValueError, match=match):
        th.entropy(p)


def test_rejects_mismatched_shapes_and_axes():
    with pytest.raises(ValueError, match="mismatched shapes"):
        th.kl_divergence([0.5, 0.5], [0.2, 0.3, 0.5])
    with pytest.raises(ValueError, match="out of range"):
        th.conditional_entropy(np.full((2, 2), 0.25), 2, 0)
    with pytest.raises(ValueError, match="both"):
        th.conditional_entropy(np.full((2, 2), 0.25), 0, 0)
    with pytest.raises(ValueError, match="prefix length"):
        th.check_lemma1(th.random_joint(rng=0), 9)
