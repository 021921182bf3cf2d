"""An oracle reasoner: a synthetic generative process whose ``p(a | x, z_<=t)`` is exact.

Each trace is a hidden Markov model. A hidden *candidate answer* ``s_t ∈ {0..K-1}`` starts
from ``s_1 ~ π`` and at each step is kept with probability ``1 - λ`` or redrawn from the
question's *drift* distribution ``w``; the reasoning token ``z_t`` reveals ``s_t`` with
probability ``η`` and is uniform otherwise. The final answer is ``s_T``, or the null answer
(``None``) with probability ``ν``. The forward filter gives ``b_t = P(s_t | z_<=t)`` exactly
and ``P(s_T = a | s_t = s) = κ 1[a = s] + (1 - κ) w(a)`` with ``κ = (1 - λ)^(T - t)``, so

    p(a | x, z_<=t) = (1 - ν) [κ b_t(a) + (1 - κ) w(a)],   p(∅ | x, z_<=t) = ν.

Two settings (:func:`aligned` / :func:`misaligned`) make SIA hold or fail by construction:

* aligned: ``π`` is diffuse and ``w`` favours the gold answer, so as the trace unfolds the
  answer distribution sharpens *towards* the gold answer (entropy and gold surprisal fall
  together: a positive alignment coefficient);
* misaligned: ``π`` favours the gold answer but ``w`` drifts to a distractor, so the model
  becomes confident in a wrong answer (entropy falls while gold surprisal rises: a negative
  coefficient). This is the "confident misalignment" of the paper's Section 4.4.

Continuations from a prefix are drawn from the exact ``p(a | x, z_<=t)``; since a
continuation's answer depends on the prefix only through that distribution, this has the
law of simulating the chain forward, and it is what makes the truth available.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .checkpoints import checkpoints
from .infotheory import row_entropy


@dataclass(frozen=True)
class OracleConfig:
    """Settings of the oracle reasoner (see the module docstring)."""

    n_answers: int = 4       # K
    steps: int = 40          # T, tokens per trace
    jump: float = 0.08       # λ
    reveal: float = 0.5      # η
    null: float = 0.03       # ν
    gold_drift: float = 0.8  # mass w puts on its favoured answer
    gold_start: float = 0.25 # mass π puts on the gold answer (0.25 = uniform for K = 4)
    aligned: bool = True

    def __post_init__(self):
        if self.n_answers < 2:
            raise ValueError("the oracle needs at least 2 answers")
        for name in ("jump", "reveal", "null", "gold_drift", "gold_start"):
            v = getattr(self, name)
            if not 0 <= v <= 1:
                raise ValueError(f"{name} must be a probability in [0, 1], got {v}")


def aligned(**kw) -> OracleConfig:
    """Prefixes informative about the gold answer: SIA holds."""
    return OracleConfig(aligned=True, **kw)


def misaligned(**kw) -> OracleConfig:
    """Entropy falls while the gold answer becomes less likely: SIA fails."""
    kw.setdefault("gold_start", 0.7)
    return OracleConfig(aligned=False, **kw)


def no_information(gold_prob: float = 0.8, **kw) -> OracleConfig:
    """Prefixes that carry no information: the answer is fixed before the first token
    (no jumps) and no token reveals it, so ``p(a | x, z_<=t)`` is the same at every checkpoint
    (gold with probability ``gold_prob``, up to the null share). The exact coefficient does
    not exist here (both true series are constant); an estimator should read 0."""
    kw.update(jump=0.0, reveal=0.0, gold_start=gold_prob)
    return OracleConfig(aligned=True, **kw)


def _question_law(cfg: OracleConfig, gold: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(π, w) for one question."""
    k = cfg.n_answers
    others = [a for a in range(k) if a != gold]
    pi = np.full(k, (1 - cfg.gold_start) / (k - 1))
    pi[gold] = cfg.gold_start
    favoured = gold if cfg.aligned else int(rng.choice(others))
    w = np.full(k, (1 - cfg.gold_drift) / (k - 1))
    w[favoured] = cfg.gold_drift
    return pi, w


def exact_answer_distribution(cfg: OracleConfig, pi: np.ndarray, w: np.ndarray,
                              tokens: np.ndarray) -> np.ndarray:
    """``p(a | x, z_<=t)`` for ``t = 0..T`` for each trace: shape ``(N, T + 1, K + 1)``;
    the last class is the null answer. ``tokens`` has shape ``(N, T)``."""
    n, steps = tokens.shape
    k = cfg.n_answers
    lam, eta = cfg.jump, cfg.reveal
    emit = np.full((k, k), (1 - eta) / k) + eta * np.eye(k)  # P(z | s)
    trans = (1 - lam) * np.eye(k) + lam * w[None, :]        # P(s' | s)
    out = np.empty((n, steps + 1, k + 1))
    prior = np.broadcast_to(pi, (n, k)).copy()               # P(s_1), before any token
    for t in range(steps + 1):
        if t == 0:
            belief, horizon = prior, steps - 1               # about s_1
        else:
            like = emit[:, tokens[:, t - 1]].T               # (N, K): P(z_t | s_t)
            post = prior * like
            belief = post / post.sum(1, keepdims=True)
            prior = belief @ trans                           # predict s_{t+1}
            horizon = steps - t
        kappa = (1 - lam) ** horizon
        out[:, t, :k] = (1 - cfg.null) * (kappa * belief + (1 - kappa) * w[None, :])
        out[:, t, k] = cfg.null
    return out


def sample_run(cfg: OracleConfig, n_questions: int = 50, n_traces: int = 4, n_continuations: int = 16,
               stride: int = 5, seed: int = 0, shuffle_prefix: bool = False) -> pd.DataFrame:
    """Sample a run from the oracle in the record format of :mod:`siautil.estimators`.

    One row per (question, trace, checkpoint), checkpoints ``{0, s, 2s, ...} ∪ {T}``, with
    ``n_continuations`` answers each, plus the exact ``true_entropy`` ``H(A | x, z_<=t)`` and
    ``true_gold_prob`` ``p(y* | x, z_<=t)``. ``shuffle_prefix`` permutes the tokens of each
    prefix before the continuations are drawn (the paper's Table 2 ablation).
    """
    if stride < 1:
        raise ValueError(f"stride must be a positive number of tokens, got {stride}")
    rng = np.random.default_rng(seed)
    k, steps = cfg.n_answers, cfg.steps
    ts = checkpoints(steps, stride)
    labels = np.array([str(a) for a in range(k)] + [None], dtype=object)
    rows = []
    for q in range(n_questions):
        gold = int(rng.integers(k))
        pi, w = _question_law(cfg, gold, rng)
        # simulate N traces of hidden states and tokens
        s = np.empty((n_traces, steps), dtype=np.int64)
        s[:, 0] = rng.choice(k, size=n_traces, p=pi)
        for t in range(1, steps):
            jump = rng.random(n_traces) < cfg.jump
            s[:, t] = np.where(jump, rng.choice(k, size=n_traces, p=w), s[:, t - 1])
        reveal = rng.random((n_traces, steps)) < cfg.reveal
        tokens = np.where(reveal, s, rng.integers(k, size=(n_traces, steps)))
        final = np.where(rng.random(n_traces) < cfg.null, k, s[:, -1])
        exact = exact_answer_distribution(cfg, pi, w, tokens)
        true_entropy = row_entropy(exact)  # (N, T + 1)
        for t in ts:
            if shuffle_prefix and t > 1:
                perm = np.argsort(rng.random((n_traces, t)), axis=1)
                shuffled = np.concatenate([np.take_along_axis(tokens[:, :t], perm, 1), tokens[:, t:]], 1)
                p = exact_answer_distribution(cfg, pi, w, shuffled)[:, t]
            else:
                p = exact[:, t]
            cum = p.cumsum(1)
            u = rng.random((n_traces, n_continuations, 1))
            draws = np.minimum((u > cum[:, None, :]).sum(-1), k)
            for n in range(n_traces):
                rows.append((f"oracle-{q}", n, t, steps, list(labels[draws[n]]), str(gold),
                             bool(final[n] == gold), float(true_entropy[n, t]), float(exact[n, t, gold])))
    return pd.DataFrame(rows, columns=["question_id", "trace", "t", "T", "answers", "gold", "correct",
                                       "true_entropy", "true_gold_prob"])


def estimator_study(cfg: OracleConfig, budgets=(2, 4, 8, 16, 32, 64, 128), n_questions: int = 40,
                    n_traces: int = 4, stride: int = 5, seed: int = 0) -> pd.DataFrame:
    """Bias and error of the plug-in and Miller–Madow entropy estimators against the exact
    ``H(A | x, z_<=t)`` for each number of continuations ``M`` in ``budgets``.

    One run is drawn with the largest budget and subsampled (first ``M`` answers), so every
    ``M`` sees the same prefixes. ``theory`` is the first-order plug-in bias
    ``-(K - 1) / (2M)`` with ``K`` the answer classes of non-negligible probability per record.
    """
    from . import estimators

    run = sample_run(cfg, n_questions=n_questions, n_traces=n_traces, n_continuations=max(budgets),
                     stride=stride, seed=seed)
    p = run["true_entropy"].to_numpy()
    rows = []
    for m in budgets:
        for name in ("plugin", "miller-madow"):
            est = estimators.estimate(run, estimator=name, keep=m)["entropy"].to_numpy()
            err = est - p
            rows.append(dict(m=m, estimator=name, bias=err.mean(), abs_error=np.abs(err).mean(),
                             rmse=float(np.sqrt((err ** 2).mean()))))
    out = pd.DataFrame(rows)
    out["theory"] = -(cfg.n_answers + 1 - 1) / (2 * out["m"])
    return out
