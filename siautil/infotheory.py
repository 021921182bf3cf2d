"""Information-theory primitives on finite distributions: entropy, mutual information, KL,
total variation, and the Fano, Pinsker and Fannes–Audenaert bounds.

A joint distribution is a numpy array of non-negative numbers that sums to one; each axis
is one random variable. Every quantity is in nats (natural logarithms), with ``0 log 0 = 0``.
The definitions and lemmas named below are the paper's, written out on the book's formulas
page (``book/formulas.md``). The paper's own checks built on these primitives live in
:mod:`siautil.theory`, which re-exports every name here.

This is the one place the plug-in entropy ``-Σ p log p`` is computed: :func:`xlogx` gives the
terms and :func:`row_entropy` sums them along the last axis (vectorised over rows). Exact
entropies (:func:`entropy`), the estimators of :mod:`siautil.estimators` and the oracle's true
entropies (:mod:`siautil.oracle`) all go through them. The logarithm is numpy's ``np.log``,
not ``scipy.special.entr``: the two can differ in the last bit where numpy dispatches ``log``
to its own SIMD code, and the stored reference run (``tests/data/reference_records.json``)
was written with ``np.log``.

Imports nothing from :mod:`siautil`, so any module may import it.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.optimize import brentq

#: Tolerance on ``sum(p) == 1``: a distribution whose total differs from one by more than
#: this is rejected. Loose enough for float32 arrays of a few million cells, tight enough
#: to catch an unnormalised table.
SUM_TOL = 1e-6

Axes = int | Sequence[int]


# --------------------------------------------------------------------------------------
# validation


def validate_distribution(p, name: str = "p") -> np.ndarray:
    """Return ``p`` as a float64 array after checking that it is a probability table.

    Raises ``ValueError`` naming the problem: an empty or non-finite array, negative
    entries, or a total that differs from one by more than :data:`SUM_TOL`.
    """
    arr = np.asarray(p, dtype=np.float64)
    if arr.size == 0:
        raise ValueError(f"{name} is empty: a distribution needs at least one outcome")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite entries")
    if np.any(arr < 0):
        raise ValueError(
            f"{name} has negative entries (smallest {arr.min():.3g}); probabilities must be >= 0"
        )
    total = arr.sum()
    if abs(total - 1.0) > SUM_TOL:
        raise ValueError(
            f"{name} sums to {total:.9g}, not 1 (tolerance {SUM_TOL:g}); normalise it first"
        )
    return arr


def validate_pair(p, q, names: tuple[str, str] = ("P", "Q")) -> tuple[np.ndarray, np.ndarray]:
    """:func:`validate_distribution` on both of ``p`` and ``q``, and a check that they have
    one shape (two distributions over the same alphabet). Returns them as float64 arrays."""
    p = validate_distribution(p, names[0])
    q = validate_distribution(q, names[1])
    if p.shape != q.shape:
        raise ValueError(
            f"{names[0]} and {names[1]} have mismatched shapes {p.shape} and {q.shape}; "
            "both must be distributions over the same alphabet"
        )
    return p, q


def _axes(axes: Axes, ndim: int, name: str) -> tuple[int, ...]:
    tup = (axes,) if isinstance(axes, (int, np.integer)) else tuple(axes)
    out = []
    for a in tup:
        if not -ndim <= a < ndim:
            raise ValueError(f"{name} axis {a} is out of range for a joint with {ndim} axes")
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{name} names an axis twice: {tup}")
    return tuple(out)


def marginal(p, keep: Axes) -> np.ndarray:
    """The marginal of a joint on the axes ``keep``, in the order given."""
    p = validate_distribution(p)
    keep = _axes(keep, p.ndim, "keep")
    drop = tuple(a for a in range(p.ndim) if a not in keep)
    m = p.sum(axis=drop)
    # after summing, the remaining axes are in increasing order; reorder to `keep`
    order = np.argsort(np.argsort(keep))
    return np.transpose(m, order) if m.ndim > 1 else m


# --------------------------------------------------------------------------------------
# the plug-in entropy: the one implementation


def xlogx(p) -> np.ndarray:
    """``p log p`` elementwise, ``0`` where ``p <= 0`` (the convention ``0 log 0 = 0``); NaN
    entries give 0 too. No validation: callers check their input."""
    p = np.asarray(p, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0.0)


def row_entropy(p) -> np.ndarray | float:
    """``-Σ p log p`` along the last axis: the entropy of each row of ``p`` (a 1-D ``p`` gives
    a float). Rows need not be validated or normalised here: this is the arithmetic shared by
    :func:`entropy`, :func:`siautil.estimators.plugin_entropy` and the oracle. Never ``-0.0``.
    """
    h = -xlogx(p).sum(axis=-1) + 0.0
    return float(h) if np.ndim(h) == 0 else h


# --------------------------------------------------------------------------------------
# Definitions 6-8 and their relatives


def _h(p: np.ndarray) -> float:
    """The entropy of an already validated table, summed over its support (flattened)."""
    return row_entropy(p[p > 0])


def entropy(p) -> float:
    """Shannon entropy ``H(P) = -sum p log p`` of a (joint) distribution (Definition 6)."""
    return _h(validate_distribution(p))


def binary_entropy(p) -> np.ndarray | float:
    """``h_b(p) = -p log p - (1-p) log(1-p)`` for ``p`` in [0, 1] (used in Theorem 1, Lemma 5)."""
    arr = np.asarray(p, dtype=np.float64)
    if np.any((arr < 0) | (arr > 1)) or not np.all(np.isfinite(arr)):
        raise ValueError("binary_entropy takes probabilities in [0, 1]")
    with np.errstate(divide="ignore", invalid="ignore"):
        out = -np.where(arr > 0, arr * np.log(arr), 0.0) - np.where(
            arr < 1, (1 - arr) * np.log1p(-arr), 0.0
        )
    return float(out) if out.ndim == 0 else out


def conditional_entropy(p, of: Axes, given: Axes = ()) -> float:
    """``H(of | given) = H(of, given) - H(given)`` on a joint (Definition 7).

    Axes in neither ``of`` nor ``given`` are marginalised out.
    """
    p = validate_distribution(p)
    of = _axes(of, p.ndim, "of")
    given = _axes(given, p.ndim, "given")
    if set(of) & set(given):
        raise ValueError(f"axes {sorted(set(of) & set(given))} are in both `of` and `given`")
    h_joint = _h(marginal(p, of + given))
    h_given = _h(marginal(p, given)) if given else 0.0
    return h_joint - h_given


def mutual_information(p, a: Axes, b: Axes) -> float:
    """``I(A; B) = H(A) - H(A | B)`` (Definition 8)."""
    return conditional_mutual_information(p, a, b, ())


def conditional_mutual_information(p, a: Axes, b: Axes, given: Axes = ()) -> float:
    """``I(A; B | C) = H(A | C) - H(A | B, C)`` (the quantity of Lemmas 1 and 7)."""
    p = validate_distribution(p)
    a, b, given = (_axes(x, p.ndim, n) for x, n in ((a, "a"), (b, "b"), (given, "given")))
    if set(a) & set(b) or set(a) & set(given) or set(b) & set(given):
        raise ValueError("the axis groups of a conditional mutual information must be disjoint")
    return conditional_entropy(p, a, given) - conditional_entropy(p, a, b + given)


def kl_divergence(p, q) -> float:
    """``KL(P || Q) = sum p log(p / q)``; infinite when ``P`` puts mass where ``Q`` has none.

    Summed as ``sum q (x log x - x + 1)`` with ``x = p / q`` (equal, since both sum to one):
    every term is non-negative, so nearly equal distributions give their tiny KL (about
    ``sum (p - q)^2 / 2q``) instead of the rounding noise of first-order terms that cancel."""
    p, q = validate_pair(p, q)
    mask = p > 0
    if np.any(q[mask] == 0):
        return float("inf")
    pm, qm = p[mask], q[mask]
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        d = (pm - qm) / qm  # x - 1, exact to rounding where p and q are close
        near = qm * ((1 + d) * np.log1p(d) - d)             # accurate for small |d|
    far = pm * (np.log(pm) - np.log(qm)) - pm + qm           # the same term, in logs, elsewhere
    return float(np.where(np.abs(d) < 0.5, near, far).sum() + q[~mask].sum())


def cross_entropy(p, q) -> float:
    """``E_p[-log q] = -sum p log q``; infinite when ``P`` puts mass where ``Q`` has none."""
    p, q = validate_pair(p, q)
    mask = p > 0
    with np.errstate(divide="ignore"):
        return float(-(p[mask] * np.log(q[mask])).sum())


def total_variation(p, q) -> float:
    """``TV(P, Q) = 1/2 sum |p - q|``."""
    p, q = validate_pair(p, q)
    return float(0.5 * np.abs(p - q).sum())


# --------------------------------------------------------------------------------------
# bounds


def _check_alphabet(n: int) -> int:
    if int(n) != n or n < 2:
        raise ValueError(f"alphabet size must be an integer >= 2, got {n}")
    return int(n)


def fano_lower_bound(h: float, n: int) -> float:
    """Theorem 1 (Fano): the Bayes error of predicting an ``n``-ary answer is at least
    ``(H(A | X, Z_<=t) - log 2) / log(n - 1)`` (clipped at 0). Needs ``n > 2``.
    """
    n = _check_alphabet(n)
    if n <= 2:
        raise ValueError("the Fano bound of Theorem 1 needs more than two answers (n > 2)")
    if h < 0:
        raise ValueError(f"an entropy cannot be negative, got {h}")
    return max(0.0, (h - np.log(2)) / np.log(n - 1))


def fano_error_bound(h: float, n: int) -> float:
    """The sharp form of Fano's inequality: the smallest ``P_e`` in ``[0, 1 - 1/n]`` with
    ``h_b(P_e) + P_e log(n - 1) >= h`` (Theorem 1 before its last relaxation).
    """
    n = _check_alphabet(n)
    if h < 0 or h > np.log(n) + 1e-12:
        raise ValueError(f"an entropy over {n} answers lies in [0, log {n}], got {h}")
    pmax = 1 - 1 / n

    def f(e):
        return binary_entropy(e) + e * np.log(n - 1) - h

    if h <= 0:
        return 0.0
    if f(pmax) <= 0:
        return pmax
    return float(brentq(f, 0.0, pmax, xtol=1e-14))


def pinsker_tv_bound(kl: float) -> float:
    """Pinsker's inequality (Lemma 5): ``TV(P, Q) <= sqrt(KL(P || Q) / 2)``."""
    if kl < 0:
        raise ValueError(f"a KL divergence cannot be negative, got {kl}")
    return float(np.sqrt(kl / 2))


def fannes_audenaert_bound(tv: float, n: int) -> float:
    """Fannes–Audenaert (Lemma 5): ``|H(P) - H(Q)| <= T log(n - 1) + h_b(T)`` for
    ``TV(P, Q) <= T <= 1 - 1/n``. Past ``1 - 1/n`` the bound is ``log n``, the largest
    possible entropy gap, which is also the value the formula reaches there.
    """
    n = _check_alphabet(n)
    if tv < 0:
        raise ValueError(f"a total variation cannot be negative, got {tv}")
    if tv >= 1 - 1 / n:
        return float(np.log(n))
    return float(tv * np.log(n - 1) + binary_entropy(tv))


def epsilon(delta: float, n: int) -> float:
    """The continuity modulus of Lemma 5: ``eps_n(delta) = sqrt(delta/2) log(n-1) + h_b(sqrt(delta/2))``.

    If ``KL(P || Q) <= delta`` on an alphabet of ``n`` symbols then ``|H(P) - H(Q)| <= eps_n(delta)``.
    """
    return fannes_audenaert_bound(pinsker_tv_bound(delta), n)
