"""siautil.infotheory: the one plug-in entropy, the shared validation, and the module layout of #13
(theory re-exports the primitives; the oracle needs neither torch nor rollout)."""

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

from siautil import checkpoints as cp
from siautil import estimators as E
from siautil import infotheory as it
from siautil import oracle, theory

SIAUTIL = Path(it.__file__).resolve().parent


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


def test_oracle_true_entropy_is_the_shared_entropy_of_its_exact_distribution():
    cfg = oracle.aligned(steps=12)
    run = oracle.sample_run(cfg, n_questions=2, n_traces=2, n_continuations=3, stride=5, seed=1)
    assert sorted(run["t"].unique()) == cp.checkpoints(12, 5) == [0, 5, 10, 12]
    assert run["true_entropy"].between(0, np.log(cfg.n_answers + 1)).all()


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


def test_checkpoints():
    assert cp.checkpoints(10, 4) == [0, 4, 8, 10]
    assert cp.checkpoints(8, 4) == [0, 4, 8]
    assert cp.checkpoints(0, 3) == [0]


def test_theory_re_exports_every_primitive():
    public = [n for n in dir(it) if not n.startswith("_") and callable(getattr(it, n))
              and getattr(getattr(it, n), "__module__", None) == it.__name__]
    assert {"entropy", "kl_divergence", "epsilon", "validate_pair", "row_entropy"} <= set(public)
    for name in public + ["SUM_TOL"]:
        assert getattr(theory, name) is getattr(it, name), name


def _siautil_imports(module: str) -> set[str]:
    tree = ast.parse((SIAUTIL / f"{module}.py").read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("siautil")):
            out.add(node.module or "")
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("siautil")}
    return out


def test_leaf_modules_import_nothing_from_siautil():
    assert _siautil_imports("infotheory") == set()
    assert _siautil_imports("checkpoints") == set()


def test_oracle_and_theory_load_without_torch():
    code = "import sys, siautil.oracle, siautil.theory, siautil.estimators; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
