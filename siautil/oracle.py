"""An oracle reasoner: a synthetic generative process whose ``p(a | x, z_<=t)`` is exact.

Each trace is a hidden Markov model. A hidden *candidate answer* ``s_t ∈ {0..K-1}`` starts
from ``s_1 ~ π`` and at each step is kept with probability ``1 - λ`` or redrawn from the
question's *drift* distribution ``w``; the reasoning token ``z_t`` reveals ``s_t`` with
probability ``η`` and is uniform otherwise. The final answer is ``s_T``, or the null answer
(``None``) with probability ``ν``. The forward filter gives ``b_t = P(s_t | z_<=t)`` exactly
and ``P(s_T = a | s_t = s) = κ 1[a = s] + (1 - κ) w(a)`` with ``κ = (1 - λ)^(T - t)``, so

    p(a | x, z_<=t) = (1 - ν) [κ b_t(a) + (1 - κ) w(a)],   p(∅ | x, z_<=t) = ν.

Along a trace, ``p(a | x, z_<=t)`` is a martingale: averaged over the next token it is the
distribution at the previous one (:func:`martingale_error` checks this exactly), because traces
and continuations come from one process. On average a prefix neither raises nor lowers the gold
answer's probability; it sorts traces into those that will end right and those that will not.

Four settings fix what the prefixes carry, by construction:

* aligned: ``π`` is diffuse and ``w`` favours the gold answer, so as the trace unfolds the
  answer distribution sharpens *towards* the gold answer (entropy and gold surprisal fall
  together: a positive alignment coefficient);
* misaligned: ``π`` favours the gold answer but ``w`` drifts to a distractor, so the model
  becomes confident in a wrong answer (entropy falls while gold surprisal rises: a negative
  coefficient). This is the "confident misalignment" of the paper's Section 4.4;
* no information (:func:`no_information`): the answer is fixed before the first token and no
  token reveals it, so the prefixes carry nothing, about gold or about the reasoner's own
  answer, while the reasoner can still be accurate (gold at 0.8 by default);
* guesser (:func:`guesser`): the prefixes reveal and fix the reasoner's own answer, which
  ignores gold (``π`` and ``w`` uniform): its steps determine its answer, and it is right by
  chance.

The answer is never written into the prefix (it is the hidden state after the last token), so
every checkpoint of an oracle trace comes before its answer (``answer_state`` ``"none"``).

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
from .tasks.base import NO_ANSWER


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


def guesser(**kw) -> OracleConfig:
    """Prefixes that determine the reasoner's own answer but ignore gold: the starting answer
    and the drift are uniform, so it is right with probability ``1/K`` (less the null share)."""
    k = kw.get("n_answers", OracleConfig.n_answers)
    kw.update(gold_start=1 / k, gold_drift=1 / k)
    return OracleConfig(aligned=True, **kw)


#: The oracle's settings, each with what its prefixes carry by construction.
SETTINGS = {"aligned": aligned, "misaligned": misaligned, "no information": no_information, "guesser": guesser}


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
                              tokens: np.ndarray, predictive: bool = False):
    """``p(a | x, z_<=t)`` for ``t = 0..T`` for each trace: shape ``(N, T + 1, K + 1)``;
    the last class is the null answer. ``tokens`` has shape ``(N, T)``. With ``predictive``,
    also ``P(z_{t+1} | x, z_<=t)`` for ``t = 0..T-1``, shape ``(N, T, K)``."""
    n, steps = tokens.shape
    k = cfg.n_answers
    lam, eta = cfg.jump, cfg.reveal
    emit = np.full((k, k), (1 - eta) / k) + eta * np.eye(k)  # P(z | s)
    trans = (1 - lam) * np.eye(k) + lam * w[None, :]        # P(s' | s)
    out = np.empty((n, steps + 1, k + 1))
    nxt = np.empty((n, steps, k))
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
        if t < steps:
            nxt[:, t] = prior @ emit                         # P(z_{t+1} | z_<=t)
        kappa = (1 - lam) ** horizon
        out[:, t, :k] = (1 - cfg.null) * (kappa * belief + (1 - kappa) * w[None, :])
        out[:, t, k] = cfg.null
    return (out, nxt) if predictive else out


def martingale_error(cfg: OracleConfig, n_questions: int = 5, n_traces: int = 4, seed: int = 0) -> float:
    """The largest deviation, over sampled traces, checkpoints ``t < T`` and answers ``a``, of
    ``Σ_z P(z_{t+1} = z | x, z_<=t) p(a | x, z_<=t, z)`` from ``p(a | x, z_<=t)``: zero up to
    rounding when the answer distribution is a martingale along the trace (exactly, by
    enumerating the next token rather than sampling it)."""
    rng = np.random.default_rng(seed)
    k, steps = cfg.n_answers, cfg.steps
    worst = 0.0
    for _ in range(n_questions):
        pi, w = _question_law(cfg, int(rng.integers(k)), rng)
        tokens = rng.integers(k, size=(n_traces, steps))
        exact, nxt = exact_answer_distribution(cfg, pi, w, tokens, predictive=True)
        for t in range(steps):
            mean = np.zeros_like(exact[:, t])
            for z in range(k):
                branch = tokens.copy()
                branch[:, t] = z
                mean += nxt[:, t, z, None] * exact_answer_distribution(cfg, pi, w, branch)[:, t + 1]
            worst = max(worst, float(np.abs(mean - exact[:, t]).max()))
    return worst


def sample_run(cfg: OracleConfig, n_questions: int = 50, n_traces: int = 4, n_continuations: int = 16,
               stride: int = 5, seed: int = 0, shuffle: str = "none") -> pd.DataFrame:
    """Sample a run from the oracle in the record format of :mod:`siautil.estimators`.

    One row per (question, trace, checkpoint), checkpoints ``{0, s, 2s, ...} ∪ {T}``, with
    ``n_continuations`` answers each, plus the exact ``true_entropy`` ``H(A | x, z_<=t)`` and
    ``true_gold_prob`` ``p(y* | x, z_<=t)`` of the prefix as written, and ``true_own_prob``, the
    probability of the trace's own final answer under the distribution the continuations were
    drawn from. ``shuffle`` changes that distribution: ``"tokens"`` permutes each prefix's tokens
    (the paper's Table 2 ablation), ``"steps"`` replaces each by a uniform random token (the
    oracle's tokens have no format to keep, so what they say is all a shuffle can change).

    Each question draws its gold answer and traces from a stream of its own (``seed``, question),
    its continuations from another and its shuffles from a third, so runs that differ only in
    ``M`` or ``shuffle`` share their traces, and a shuffled run its continuations' uniforms.
    """
    if stride < 1:
        raise ValueError(f"stride must be a positive number of tokens, got {stride}")
    if shuffle not in ("none", "tokens", "steps"):
        raise ValueError(f"shuffle must be 'none', 'tokens' or 'steps', got {shuffle!r}")
    k, steps = cfg.n_answers, cfg.steps
    ts = checkpoints(steps, stride)
    labels = np.array([str(a) for a in range(k)] + [None], dtype=object)
    rows = []
    for q in range(n_questions):
        rng, draw, mix = (np.random.default_rng([seed, q, part]) for part in range(3))
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
            if shuffle == "tokens" and t > 1:
                perm = np.argsort(mix.random((n_traces, t)), axis=1)
                shuffled = np.concatenate([np.take_along_axis(tokens[:, :t], perm, 1), tokens[:, t:]], 1)
                p = exact_answer_distribution(cfg, pi, w, shuffled)[:, t]
            elif shuffle == "steps" and t > 0:
                shuffled = np.concatenate([mix.integers(k, size=(n_traces, t)), tokens[:, t:]], 1)
                p = exact_answer_distribution(cfg, pi, w, shuffled)[:, t]
            else:
                p = exact[:, t]
            cum = p.cumsum(1)
            u = draw.random((n_traces, n_continuations, 1))
            draws = np.minimum((u > cum[:, None, :]).sum(-1), k)
            for n in range(n_traces):
                rows.append((f"oracle-{q}", n, t, steps, list(labels[draws[n]]), str(gold),
                             bool(final[n] == gold), labels[final[n]], float(true_entropy[n, t]),
                             float(exact[n, t, gold]), float(p[n, final[n]])))
    out = pd.DataFrame(rows, columns=["question_id", "trace", "t", "T", "answers", "gold", "correct", "trace_answer",
                                      "true_entropy", "true_gold_prob", "true_own_prob"])
    return out.assign(answer_state=NO_ANSWER)


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
