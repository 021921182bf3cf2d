"""The paper's results checked numerically on finite joint distributions.

A joint distribution is a numpy array of non-negative numbers that sums to one; each axis
is one random variable. The joints of the paper are laid out as ``(X, Z_1, ..., Z_T, A)``:
axis 0 is the question, axes ``1..T`` the reasoning steps, the last axis the answer.
Every quantity is in nats (natural logarithms), with ``0 log 0 = 0``.

The information-theory primitives (entropy, mutual information, KL, TV, the Fano, Pinsker
and Fannes–Audenaert bounds) live in :mod:`siautil.infotheory` and are re-exported here, so
``siautil.theory.entropy`` and the rest keep working. This module holds what is the paper's
own: random and SIA joints, one :class:`Check` per lemma and theorem, and the tables behind
the theory chapter. The definitions, lemmas and theorems referred to below are those of the
paper, written out on the book's formulas page (``book/formulas.md``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable

import numpy as np
import pandas as pd

from .infotheory import (  # noqa: F401  (re-exported: callers use siautil.theory.<name>)
    SUM_TOL,
    Axes,
    binary_entropy,
    conditional_entropy,
    conditional_mutual_information,
    cross_entropy,
    entropy,
    epsilon,
    fannes_audenaert_bound,
    fano_error_bound,
    fano_lower_bound,
    kl_divergence,
    marginal,
    mutual_information,
    pinsker_tv_bound,
    row_entropy,
    total_variation,
    validate_distribution,
    validate_pair,
    xlogx,
)


# --------------------------------------------------------------------------------------
# joints


def random_joint(
    n_x: int = 2,
    n_z: int = 3,
    steps: int = 3,
    n_a: int = 4,
    concentration: float = 0.5,
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """A random joint over ``(X, Z_1, ..., Z_T, A)`` drawn from a symmetric Dirichlet.

    Small ``concentration`` gives peaked, structured joints; large gives near-uniform ones.
    """
    rng = np.random.default_rng(rng)
    shape = (n_x,) + (n_z,) * steps + (n_a,)
    flat = rng.dirichlet(np.full(int(np.prod(shape)), concentration))
    # Dirichlet draws can underflow to exact zeros for tiny concentrations; keep them:
    # zeros are legal and exercise the 0 log 0 convention.
    return flat.reshape(shape)


def perturb(p, scale: float, rng: np.random.Generator | int | None = None) -> np.ndarray:
    """A distribution near ``p``: ``q ∝ p · exp(scale · noise)`` with standard normal noise.

    ``q`` keeps ``p``'s support, so ``KL(p || q)`` is finite and grows with ``scale``.
    """
    p = validate_distribution(p)
    rng = np.random.default_rng(rng)
    q = p * np.exp(scale * rng.standard_normal(p.shape))
    return q / q.sum()


def sia_world(
    aligned: bool,
    n_x: int = 2,
    steps: int = 4,
    n_a: int = 3,
    sharpness: float = 1.5,
    rng: np.random.Generator | int | None = None,
) -> dict[str, np.ndarray]:
    """A model and a coupling for which SIA holds (``aligned=True``) or fails.

    Each step ``Z_i`` is a vote for one of the ``n_a`` answers (uniform given ``X``), and the
    model's answer ``A_θ`` follows ``p_θ(a | x, z) ∝ w_x(a) exp(sharpness · #votes for a)``, so
    the model's internal conditional entropy ``H_θ(A | X, Z_<=t)`` falls as votes accumulate
    in both worlds. The gold answer ``A*`` has the same law ``p*(a | x)`` in both worlds; what
    differs is the coupling ``q`` of Section 4.2:

    * aligned: ``q(a* | x, z) = p_θ(a | x, z)`` (answer-consistent), so prefixes inform the gold
      answer and ``I_q(A*; Z_<=t | X) > 0`` (Assumption 1 holds);
    * not aligned: ``q(a* | x, z) = p*(a* | x)``, so ``I_q(A*; Z_<=t | X) = 0`` (Assumption 1
      fails, Section 4.4) although the model's entropy falls exactly as before.

    Returns ``{"model": joint over (X, Z_1..Z_T, A_θ), "coupling": joint over (X, Z_1..Z_T, A*)}``.
    """
    rng = np.random.default_rng(rng)
    shape_z = (n_a,) * steps
    votes = np.zeros(shape_z + (n_a,))
    for i in range(steps):
        idx = np.indices(shape_z)[i]
        votes += np.eye(n_a)[idx]
    p_x = np.full(n_x, 1.0 / n_x)
    p_z = np.full(shape_z, float(n_a) ** -steps)
    prior = rng.dirichlet(np.full(n_a, 2.0), size=n_x)  # w_x(a)
    logits = np.log(prior)[:, None, :].reshape((n_x,) + (1,) * steps + (n_a,)) + sharpness * votes
    p_a_given = np.exp(logits - logits.max(-1, keepdims=True))
    p_a_given /= p_a_given.sum(-1, keepdims=True)
    xz = p_x.reshape((n_x,) + (1,) * steps) * p_z
    model = xz[..., None] * p_a_given
    if aligned:
        coupling = model.copy()
    else:
        p_star = model.sum(axis=tuple(range(1, steps + 1)))  # p*(x, a)
        p_star_given_x = p_star / p_star.sum(-1, keepdims=True)
        coupling = xz[..., None] * p_star_given_x.reshape((n_x,) + (1,) * steps + (n_a,))
    return {"model": model, "coupling": coupling}


# --------------------------------------------------------------------------------------
# the paper's results, evaluated on a joint


@dataclass(frozen=True)
class Check:
    """Both sides of one identity or inequality evaluated on a joint.

    ``relation`` is ``"="`` (identity: ``lhs == rhs``) or ``"<="`` (bound: ``lhs <= rhs``).
    ``slack`` is ``rhs - lhs``: zero up to rounding for an identity, non-negative for a bound.
    """

    result: str
    relation: str
    lhs: float
    rhs: float
    t: int | None = None
    note: str = ""
    x: int | None = None   # the question, for results stated per x (Lemmas 3 and 4)

    @property
    def slack(self) -> float:
        return self.rhs - self.lhs

    def holds(self, atol: float = 1e-9) -> bool:
        if self.relation == "=":
            return bool(np.isclose(self.lhs, self.rhs, rtol=0, atol=atol))
        return bool(self.lhs <= self.rhs + atol)


def _layout(joint: np.ndarray) -> tuple[int, int]:
    """(number of steps T, index of the answer axis) for a joint over (X, Z_1..Z_T, A)."""
    if joint.ndim < 3:
        raise ValueError(
            f"a joint over (X, Z_1..Z_T, A) needs at least 3 axes, got shape {joint.shape}"
        )
    return joint.ndim - 2, joint.ndim - 1


def _joint(joint) -> tuple[np.ndarray, int, int]:
    """A joint over ``(X, Z_1..Z_T, A)``, validated: ``(joint, T, answer axis)``."""
    joint = validate_distribution(joint, "joint")
    return (joint,) + _layout(joint)


def _pair(p, q, names: tuple[str, str] = ("P", "Q")) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Two joints over ``(X, Z_1..Z_T, A)`` of one shape, validated: ``(p, q, T, answer axis)``."""
    p, q = validate_pair(p, q, names)
    return (p, q) + _layout(p)


def _prefix(t: int) -> tuple[int, ...]:
    """The axes of ``(X, Z_1..Z_t)``."""
    return tuple(range(0, t + 1))


def _check_t(t: int, steps: int, lo: int = 1) -> int:
    if not lo <= t <= steps:
        raise ValueError(f"prefix length t={t} is outside [{lo}, {steps}] for this joint")
    return t


def _log_conditional(joint: np.ndarray, t: int) -> np.ndarray:
    """``log q(a | x, z_<=t)`` broadcast over the full joint's shape (-inf where undefined)."""
    a = joint.ndim - 1
    m = marginal(joint, _prefix(t) + (a,))  # (X, Z_1..Z_t, A)
    with np.errstate(divide="ignore", invalid="ignore"):
        cond = m / m.sum(-1, keepdims=True)
        logc = np.log(cond)
    expand = tuple(range(t + 1, joint.ndim - 1))
    return np.expand_dims(logc, expand) if expand else logc


def check_lemma1(joint, t: int) -> Check:
    """Lemma 1: ``E_q[g_t] = I_q(A; Z_t | X, Z_<t)`` with ``g_t`` the pointwise gain (Def. 10)."""
    joint, steps, a = _joint(joint)
    _check_t(t, steps)
    mask = joint > 0
    gain = _log_conditional(joint, t) - _log_conditional(joint, t - 1)
    expected_gain = float((joint[mask] * np.broadcast_to(gain, joint.shape)[mask]).sum())
    cmi = conditional_mutual_information(joint, a, t, _prefix(t - 1))
    return Check("Lemma 1", "=", expected_gain, cmi, t, "E[g_t] vs I(A; Z_t | X, Z_<t)")


def check_proposition1(joint, t: int) -> list[Check]:
    """Proposition 1: ``H(A|X,Z_<=t) = H(A|X) - sum_i I(A; Z_i|X,Z_<i) = H(A|X) - I(A; Z_<=t|X)``."""
    joint, steps, a = _joint(joint)
    _check_t(t, steps)
    h_t = conditional_entropy(joint, a, _prefix(t))
    h_0 = conditional_entropy(joint, a, 0)
    steps_sum = sum(
        conditional_mutual_information(joint, a, i, _prefix(i - 1)) for i in range(1, t + 1)
    )
    mi = conditional_mutual_information(joint, a, tuple(range(1, t + 1)), 0)
    return [
        Check("Proposition 1", "=", h_t, h_0 - steps_sum, t, "telescoping sum of per-step CMI"),
        Check("Proposition 1", "=", h_t, h_0 - mi, t, "chain rule: H(A|X) - I(A; Z_<=t | X)"),
    ]


def map_error(joint, t: int) -> float:
    """The Bayes (MAP) error of predicting ``A`` from ``(X, Z_<=t)``: ``1 - sum max_a q(x, z, a)``."""
    joint, steps, a = _joint(joint)
    _check_t(t, steps, lo=0)
    m = marginal(joint, _prefix(t) + (a,))
    return float(1.0 - m.max(axis=-1).sum())


def check_theorem1(joint, t: int) -> list[Check]:
    """Theorem 1 (Fano): ``H(A|X,Z_<=t) <= h_b(P_e) + P_e log(|A|-1)`` and the lower bound on ``P_e``."""
    joint, steps, a = _joint(joint)
    _check_t(t, steps, lo=0)
    n = joint.shape[a]
    h = conditional_entropy(joint, a, _prefix(t))
    pe = map_error(joint, t)
    return [
        Check("Theorem 1", "<=", h, float(binary_entropy(pe) + pe * np.log(n - 1)), t,
              "H(A|X,Z_<=t) <= h_b(P_e) + P_e log(|A|-1)"),
        Check("Theorem 1", "<=", fano_lower_bound(h, n), pe, t,
              "(H - log 2) / log(|A|-1) <= P_e"),
    ]


def check_lemma2(p, q) -> Check:
    """Lemma 2: ``E_p[-log q(S)] = H(p) + KL(p || q)`` (cross-entropy decomposition)."""
    p, q = validate_pair(p, q)
    return Check("Lemma 2", "=", cross_entropy(p, q), entropy(p) + kl_divergence(p, q), None,
                 "cross-entropy = H(p) + KL(p||q)")


def _kl_terms(p: np.ndarray, q: np.ndarray) -> list[tuple[int, float, float, float]]:
    """For each ``x`` with ``p(x) > 0``: ``(x, KL of (Z, A) | x, KL of Z | x, expected KL of
    A | x, Z)``, the three terms of Lemma 3, each conditional on that ``x``."""
    px = marginal(p, 0)
    out = []
    for x in range(p.shape[0]):
        if px[x] == 0:
            continue
        pzx = p[x] / p[x].sum()
        qzx = q[x] / q[x].sum()
        jk = kl_divergence(pzx, qzx)
        pz, qz = pzx.sum(-1), qzx.sum(-1)
        zk = kl_divergence(pz / pz.sum(), qz / qz.sum())
        with np.errstate(divide="ignore", invalid="ignore"):
            pa = pzx / pz[..., None]
            qa = qzx / qz[..., None]
            terms = np.where(pzx > 0, pzx * (np.log(pa) - np.log(qa)), 0.0)
        out.append((x, jk, zk, float(terms.sum())))
    return out


def check_lemma3(p, q) -> list[Check]:
    """Lemma 3 (chain rule of KL), for each ``x`` as stated:
    ``KL(p(Z,A|x) || q(Z,A|x)) = KL(p(Z|x) || q(Z|x)) + E_{p(Z|x)}[KL(p(A|x,Z) || q(A|x,Z))]``."""
    p, q, _, _ = _pair(p, q)
    return [Check("Lemma 3", "=", jk, zk + ak, None, "KL chain rule given x", x) for x, jk, zk, ak in _kl_terms(p, q)]


def check_lemma4(p, q) -> list[Check]:
    """Lemma 4, for each ``x``: if the joint KL of Lemma 3 given ``x`` is at most δ, so is each of
    its two terms (δ = that KL)."""
    p, q, _, _ = _pair(p, q)
    out = []
    for x, jk, zk, ak in _kl_terms(p, q):
        out.append(Check("Lemma 4", "<=", zk, jk, None, "KL of the trace given x <= joint KL given x", x))
        out.append(Check("Lemma 4", "<=", ak, jk, None, "expected KL of the answer given x <= joint KL given x", x))
    return out


def check_lemma5(p, q) -> Check:
    """Lemma 5: ``|H(P) - H(Q)| <= eps_n(KL(P || Q))`` with ``n`` the alphabet size."""
    p, q = validate_pair(p, q)
    return Check("Lemma 5", "<=", abs(entropy(p) - entropy(q)), epsilon(kl_divergence(p, q), p.size),
                 None, "entropy continuity under KL")


def _cond_entropy_bound(p: np.ndarray, q: np.ndarray, given: tuple[int, ...], a: int) -> tuple[float, float]:
    """(actual error, Lemma 6 bound) for ``H(A | given)`` between P and Q."""
    pm, qm = marginal(p, given + (a,)), marginal(q, given + (a,))
    delta = kl_divergence(pm, qm)  # marginalising cannot raise KL: this is <= the joint KL
    err = abs(conditional_entropy(pm, -1, tuple(range(len(given))))
              - conditional_entropy(qm, -1, tuple(range(len(given)))))
    n_given = int(np.prod([p.shape[g] for g in given]))
    bound = epsilon(delta, n_given * p.shape[a]) + (epsilon(delta, n_given) if n_given > 1 else 0.0)
    return err, bound


def check_lemma6(p, q, t: int) -> Check:
    """Lemma 6: ``|H_P(A|X,Z_<=t) - H_Q(A|X,Z_<=t)| <= eps_{|A||XZ|}(δ) + eps_{|XZ|}(δ)``, δ the KL
    of the ``(X, Z_<=t, A)`` marginals."""
    p, q, steps, a = _pair(p, q)
    _check_t(t, steps, lo=0)
    err, bound = _cond_entropy_bound(p, q, _prefix(t), a)
    return Check("Lemma 6", "<=", err, bound, t, "conditional-entropy continuity")


def check_lemma7(p, q, t: int) -> Check:
    """Lemma 7: the error on ``I(A; Z_t | X, Z_<t)`` is at most the sum of the Lemma 6 bounds of
    ``H(A|X,Z_<t)`` and ``H(A|X,Z_<=t)``."""
    p, q, steps, a = _pair(p, q)
    _check_t(t, steps)
    cmi_p = conditional_mutual_information(p, a, t, _prefix(t - 1))
    cmi_q = conditional_mutual_information(q, a, t, _prefix(t - 1))
    _, b0 = _cond_entropy_bound(p, q, _prefix(t - 1), a)
    _, b1 = _cond_entropy_bound(p, q, _prefix(t), a)
    return Check("Lemma 7", "<=", abs(cmi_p - cmi_q), b0 + b1, t, "CMI continuity")


def check_theorem2(data, model, t: int) -> Check:
    """Theorem 2 (transfer): with ``γ = I_p(A; Z_<=t | X)`` under the data and ``ε`` the total
    continuity error of ``H(A|X) - H(A|X,Z_<=t)`` at δ = KL(data || model),
    ``I_θ(A; Z_<=t | X) >= γ - ε``. Written as ``γ - ε <= I_θ``; informative (``γ - ε > 0``)
    only when the model is close enough to the data, which ``note`` records.
    """
    p, q, steps, a = _pair(data, model, ("data", "model"))
    _check_t(t, steps)
    gamma = conditional_mutual_information(p, a, tuple(range(1, t + 1)), 0)
    i_theta = conditional_mutual_information(q, a, tuple(range(1, t + 1)), 0)
    _, b0 = _cond_entropy_bound(p, q, (0,), a)
    _, b1 = _cond_entropy_bound(p, q, _prefix(t), a)
    eps = b0 + b1
    note = "informative: eps < gamma" if eps < gamma else "vacuous: eps >= gamma"
    return Check("Theorem 2", "<=", gamma - eps, i_theta, t, note)


def check_all(joint, other=None, ts: Iterable[int] | None = None) -> list[Check]:
    """Every result of the paper evaluated on ``joint`` (and, for the two-distribution results,
    on the pair ``(joint, other)``), at each prefix length in ``ts`` (default all)."""
    joint, steps, _ = _joint(joint)
    ts = list(range(1, steps + 1)) if ts is None else list(ts)
    out: list[Check] = []
    for t in ts:
        out.append(check_lemma1(joint, t))
        out.extend(check_proposition1(joint, t))
        if joint.shape[-1] > 2:
            out.extend(check_theorem1(joint, t))
    if other is not None:
        out.append(check_lemma2(joint, other))
        out += check_lemma3(joint, other) + check_lemma4(joint, other)
        out.append(check_lemma5(joint, other))
        for t in ts:
            out += [check_lemma6(joint, other, t), check_lemma7(joint, other, t),
                    check_theorem2(joint, other, t)]
    return out


def checks_frame(checks: Iterable[Check], atol: float = 1e-9) -> pd.DataFrame:
    """A tidy table of checks: one row each, with ``slack`` and ``holds``."""
    rows = [dict(asdict(c), slack=c.slack, holds=c.holds(atol)) for c in checks]
    return pd.DataFrame(rows, columns=["result", "relation", "lhs", "rhs", "t", "x", "note", "slack", "holds"])


def survey(
    n_joints: int = 200,
    n_x: int = 2,
    n_z: int = 3,
    steps: int = 3,
    n_a: int = 4,
    concentration: float = 0.5,
    perturbation: float = 0.3,
    seed: int = 0,
) -> pd.DataFrame:
    """Every check on ``n_joints`` random joints, each paired with a KL-perturbed copy.

    Alphabet sizes are drawn per joint between 2 and the given maxima so that shapes vary.
    Returns :func:`checks_frame` rows with a ``joint`` column.
    """
    rng = np.random.default_rng(seed)
    frames = []
    for j in range(n_joints):
        shape = dict(
            n_x=int(rng.integers(1, n_x + 1)),
            n_z=int(rng.integers(2, n_z + 1)),
            steps=int(rng.integers(1, steps + 1)),
            n_a=int(rng.integers(3, max(n_a, 3) + 1)),
        )
        p = random_joint(**shape, concentration=concentration, rng=rng)
        q = perturb(p, float(rng.uniform(0, perturbation)), rng)
        df = checks_frame(check_all(p, q))
        df.insert(0, "joint", j)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def entropy_trajectory(joint) -> np.ndarray:
    """``H(A | X, Z_<=t)`` for ``t = 0..T`` (Proposition 1's progress variable)."""
    joint, steps, a = _joint(joint)
    return np.array([conditional_entropy(joint, a, _prefix(t)) for t in range(steps + 1)])


def information_trajectory(joint) -> np.ndarray:
    """``I(A; Z_<=t | X)`` for ``t = 0..T`` (Definition 11, in expectation)."""
    joint, steps, a = _joint(joint)
    return np.array(
        [0.0] + [conditional_mutual_information(joint, a, tuple(range(1, t + 1)), 0)
                 for t in range(1, steps + 1)]
    )


# --------------------------------------------------------------------------------------
# tables behind the theory chapter's figures


def summarise(checks: pd.DataFrame) -> pd.DataFrame:
    """Per result and relation: how many checks, how many held, and the worst case.

    For an identity the worst case is the largest ``|lhs - rhs|``; for a bound it is the
    smallest slack ``rhs - lhs`` (negative would be a violation).
    """
    def agg(g: pd.DataFrame) -> pd.Series:
        identity = g["relation"].iloc[0] == "="
        return pd.Series({
            "checks": len(g),
            "held": int(g["holds"].sum()),
            "worst": g["slack"].abs().max() if identity else g["slack"].min(),
            "measure": "max |lhs - rhs|" if identity else "min slack (rhs - lhs)",
        })

    return checks.groupby(["result", "relation"], sort=False)[list(checks.columns)].apply(agg).reset_index()


def fano_points(n_joints: int = 300, n_a: int = 5, seed: int = 0, **shape) -> pd.DataFrame:
    """Conditional entropy, true MAP error and both Fano bounds (Theorem 1) on random joints.

    The concentration of each joint is drawn log-uniformly so the points cover the whole
    range of entropies.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n_joints):
        conc = float(np.exp(rng.uniform(np.log(0.02), np.log(5))))
        p = random_joint(n_a=n_a, concentration=conc, rng=rng, **shape)
        t = p.ndim - 2
        h = conditional_entropy(p, -1, _prefix(t))
        rows.append(dict(h=h, map_error=map_error(p, t), fano=fano_lower_bound(h, n_a),
                         fano_sharp=fano_error_bound(min(h, np.log(n_a)), n_a)))
    return pd.DataFrame(rows)


def continuity_points(n_pairs: int = 300, n: int = 6, seed: int = 0, max_scale: float = 2.0) -> pd.DataFrame:
    """KL divergence and the entropy gap ``|H(P) - H(Q)|`` for random ``P`` and perturbed ``Q``
    on an alphabet of ``n`` symbols, with Lemma 5's ``eps_n(KL)`` beside each."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n_pairs):
        p = rng.dirichlet(np.full(n, float(np.exp(rng.uniform(np.log(0.1), np.log(5))))))
        q = perturb(p, float(rng.uniform(0, max_scale)), rng)
        d = kl_divergence(p, q)
        rows.append(dict(kl=d, gap=abs(entropy(p) - entropy(q)), epsilon=epsilon(d, n),
                         tv=total_variation(p, q)))
    return pd.DataFrame(rows)


def telescoping(joint) -> pd.DataFrame:
    """Proposition 1 step by step: the drop ``H(A|X) - H(A|X,Z_<=t)`` beside the running sum of
    the per-step conditional mutual informations ``I(A; Z_i | X, Z_<i)``."""
    joint, steps, a = _joint(joint)
    h = entropy_trajectory(joint)
    step_cmi = [conditional_mutual_information(joint, a, i, _prefix(i - 1)) for i in range(1, steps + 1)]
    return pd.DataFrame({
        "t": np.arange(steps + 1),
        "entropy": h,
        "drop": h[0] - h,
        "step_information": [0.0] + step_cmi,
        "cumulative_information": np.concatenate([[0.0], np.cumsum(step_cmi)]),
    })


def sia_comparison(steps: int = 6, n_a: int = 4, sharpness: float = 1.2, seed: int = 0) -> pd.DataFrame:
    """For the two worlds of :func:`sia_world`: the model's ``H_θ(A | X, Z_<=t)`` and the
    coupling's ``I_q(A*; Z_<=t | X)`` at each ``t`` (long format, one row per world and t)."""
    frames = []
    for aligned in (True, False):
        w = sia_world(aligned, steps=steps, n_a=n_a, sharpness=sharpness, rng=seed)
        frames.append(pd.DataFrame({
            "world": "SIA holds" if aligned else "SIA fails",
            "t": np.arange(steps + 1),
            "model_entropy": entropy_trajectory(w["model"]),
            "gold_information": information_trajectory(w["coupling"]),
            "gold_entropy": entropy_trajectory(w["coupling"]),
        }))
    return pd.concat(frames, ignore_index=True)
