"""The paper's diagnostics (Section 5, Appendix B) computed from estimated trajectories.

Input is the output of :func:`siautil.estimators.estimate`: one row per (question, trace,
checkpoint) with ``entropy``, ``surprisal``, ``t``, ``T``, ``pos`` and ``correct``. Outputs
are tidy DataFrames. Statistics are over *questions* (traces of one question are not
independent): curves and table cells are means over questions with 95% bootstrap intervals
(``scipy.stats.bootstrap``); undefined values are NaN with their reason counted.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import roc_auc_score

from . import estimators

TRACE = ["question_id", "trace"]
#: The common grid of normalised positions ``t / T`` for curves of different trace lengths.
#: Curves are drawn on it; reported numbers are computed on the checkpoints themselves.
GRID = np.linspace(0, 1, 11)
#: A trace needs this many checkpoints for a defined alignment coefficient: with two, Pearson's
#: coefficient is exactly ±1 whatever the estimates are.
MIN_CHECKPOINTS = 3
#: What identifies a group of traces: runs that differ in any setting (``run``, the run's
#: settings hash) or in what the continuations see (``shuffle``) are never merged.
GROUP_KEYS = ("model", "dataset", "shuffle", "run")


def _group_keys(df: pd.DataFrame) -> list[str]:
    return [c for c in GROUP_KEYS if c in df.columns]


# ------------------------------------------------------------------------- alignment coefficient


def alignment_coefficient(entropy: Sequence[float], surprisal: Sequence[float],
                          min_checkpoints: int = MIN_CHECKPOINTS) -> tuple[float, str]:
    """The SIA alignment coefficient of one trace: the Pearson correlation across its
    checkpoints between ``Ĥ_t`` and ``ŝ_t`` (Section 5.1), with ``scipy.stats.pearsonr``.

    Returns ``(r, reason)``: ``reason`` is ``""`` when ``r`` is defined, else why it is NaN
    (``"fewer than 3 checkpoints"``, ``"constant entropy"``, ``"constant surprisal"``,
    ``"infinite surprisal"``).
    """
    h = np.asarray(entropy, dtype=np.float64)
    s = np.asarray(surprisal, dtype=np.float64)
    if h.shape != s.shape or h.ndim != 1:
        raise ValueError(f"entropy and surprisal must be 1-D series of one length, got {h.shape} and {s.shape}")
    reason = _undefined(h, s, min_checkpoints)
    if reason:
        return float("nan"), reason
    return float(stats.pearsonr(h, s).statistic), ""


def _too_few(min_checkpoints: int) -> str:
    if min_checkpoints < 2:
        raise ValueError(f"a correlation needs at least 2 checkpoints, got min_checkpoints={min_checkpoints}")
    return f"fewer than {min_checkpoints} checkpoints"


def _undefined(h: np.ndarray, s: np.ndarray, min_checkpoints: int) -> str:
    if len(h) < min_checkpoints:
        return _too_few(min_checkpoints)
    if not np.all(np.isfinite(s)):
        return "infinite surprisal"
    if np.ptp(h) == 0:
        return "constant entropy"
    if np.ptp(s) == 0:
        return "constant surprisal"
    return ""


def trace_alignment(traj: pd.DataFrame, min_checkpoints: int = MIN_CHECKPOINTS) -> pd.DataFrame:
    """The alignment coefficient of every trace (vectorised Pearson; equal to
    :func:`alignment_coefficient` per trace), with ``reason`` for the undefined ones."""
    keys = _group_keys(traj) + TRACE
    df = traj[keys + ["entropy", "surprisal", "correct"]].copy()
    g = df.groupby(keys, sort=False)
    n = g["entropy"].transform("size")
    mh, ms = g["entropy"].transform("mean"), g["surprisal"].transform("mean")
    dh, ds = df["entropy"] - mh, df["surprisal"] - ms
    df["hh"], df["ss"], df["hs"] = dh * dh, ds * ds, dh * ds
    df["inf"] = ~np.isfinite(df["surprisal"])
    agg = df.assign(n=n).groupby(keys, sort=False).agg(
        n=("n", "first"), hh=("hh", "sum"), ss=("ss", "sum"), hs=("hs", "sum"), inf=("inf", "any"),
        hmax=("entropy", "max"), hmin=("entropy", "min"), smax=("surprisal", "max"),
        smin=("surprisal", "min"), correct=("correct", "first"))
    agg["hrange"], agg["srange"] = agg["hmax"] - agg["hmin"], agg["smax"] - agg["smin"]
    with np.errstate(invalid="ignore", divide="ignore"):
        r = agg["hs"] / np.sqrt(agg["hh"] * agg["ss"])
    reason = np.select(
        [agg["n"] < min_checkpoints, agg["inf"], agg["hrange"] == 0, agg["srange"] == 0],
        [_too_few(min_checkpoints), "infinite surprisal", "constant entropy", "constant surprisal"], default="")
    out = agg[["n", "correct"]].rename(columns={"n": "checkpoints"}).copy()
    out["coefficient"] = np.where(reason == "", np.clip(r, -1, 1), np.nan)
    out["reason"] = reason
    return out.reset_index()


def trace_summary(records: pd.DataFrame, min_checkpoints: int = MIN_CHECKPOINTS) -> pd.DataFrame:
    """Per group, what a run's traces look like: questions, traces, accuracy, the share that
    finished at EOS (not at the budget), the share with an answer under the run's extraction,
    the mean length ``T``, and the share whose alignment coefficient is defined."""
    if not _group_keys(records):
        records = records.assign(model="all")
    keys = _group_keys(records)
    traces = records.drop_duplicates(keys + TRACE)
    coefs = trace_alignment(estimators.estimate(records), min_checkpoints)
    defined = coefs.groupby(keys, sort=False)["coefficient"].apply(lambda c: float(c.notna().mean()))
    out = traces.groupby(keys, sort=False).agg(
        questions=("question_id", "nunique"), traces=("trace", "size"), accuracy=("correct", "mean"),
        finished=("finish", lambda f: float((f == "eos").mean())),
        answered=("trace_answer", lambda a: float(a.notna().mean())), mean_T=("T", "mean"))
    return out.join(defined.rename("coefficient defined")).reset_index()


def _bootstrap_mean(values: np.ndarray, n_resamples: int, seed: int) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if len(values) < 2 or np.ptp(values) == 0:
        m = float(values.mean()) if len(values) else float("nan")
        return m, m
    res = stats.bootstrap((values,), np.mean, n_resamples=n_resamples, confidence_level=0.95,
                          method="percentile", random_state=seed)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def alignment_table(coefs: pd.DataFrame, n_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Table 1 cells from :func:`trace_alignment`, per model × dataset (× run):

    * ``trace_mean``: the mean coefficient over defined traces, the paper's "mean";
    * ``mean``: the mean over questions (each question's defined traces averaged first), with
      its standard error and 95% bootstrap interval over questions (traces of one question are
      not independent, so this is the one with an honest interval);
    * how many traces were defined, and why the others were not (one column per reason,
      ``undefined_constant_entropy`` ...)."""
    keys = _group_keys(coefs)
    rows = []
    for name, g in (coefs.groupby(keys, sort=False) if keys else [((), coefs)]):
        per_q = g.groupby("question_id")["coefficient"].mean().to_numpy()
        per_q = per_q[np.isfinite(per_q)]
        lo, hi = _bootstrap_mean(per_q, n_resamples, seed)
        defined = g["coefficient"].dropna()
        row = dict(zip(keys, name if isinstance(name, tuple) else (name,)))
        row.update(
            trace_mean=float(defined.mean()) if len(defined) else float("nan"),
            mean=float(per_q.mean()) if len(per_q) else float("nan"),
            se=float(stats.sem(per_q)) if len(per_q) > 1 else float("nan"),
            ci_low=lo, ci_high=hi, questions=len(per_q), traces=len(g),
            defined=int(g["coefficient"].notna().sum()),
        )
        for reason, count in g.loc[g["reason"] != "", "reason"].value_counts().items():
            row["undefined_" + reason.replace(" ", "_")] = int(count)
        rows.append(row)
    return pd.DataFrame(rows)


def alignment(records: pd.DataFrame, alpha: float = estimators.DEFAULT_ALPHA, estimator: str = "plugin",
              keep: int | None = None, stride: int | None = None, n_resamples: int = 2000,
              seed: int = 0, min_checkpoints: int = MIN_CHECKPOINTS, checkpoints: str = "all",
              extraction: str | None = None) -> pd.DataFrame:
    """Records → Table 1 cells in one call (see :func:`alignment_table`; the keywords go to
    :func:`siautil.estimators.estimate` and :func:`trace_alignment`)."""
    traj = estimators.estimate(coarsen(records, stride), alpha=alpha, estimator=estimator, keep=keep,
                               extraction=extraction, checkpoints=checkpoints)
    return alignment_table(trace_alignment(traj, min_checkpoints), n_resamples=n_resamples, seed=seed)


def on_each_checkpoint_set(compute, records: pd.DataFrame, **kw) -> pd.DataFrame:
    """``compute(records, checkpoints=c, **kw)`` for each set of :data:`siautil.estimators.CHECKPOINTS`
    (every checkpoint, as the paper computes, then those before each trace's answer), stacked
    with a ``checkpoints`` column first: every headline number on both."""
    frames = [compute(records, checkpoints=c, **kw).assign(checkpoints=c) for c in estimators.CHECKPOINTS]
    out = pd.concat(frames, ignore_index=True)
    return out[["checkpoints"] + [c for c in out.columns if c != "checkpoints"]]


# ------------------------------------------------------------------------- Figure 1: cumulative gain


def _on_grid(traj: pd.DataFrame, column: str, grid: np.ndarray) -> pd.DataFrame:
    """Each trace's ``column`` linearly interpolated at normalised positions ``grid``
    (vectorised over traces: one sorted array, one ``searchsorted``)."""
    keys = _group_keys(traj) + TRACE
    traj = traj.sort_values(keys + ["pos"])
    tid = traj.groupby(keys, sort=False).ngroup().to_numpy()
    pos = traj["pos"].to_numpy(dtype=np.float64)
    val = traj[column].to_numpy(dtype=np.float64)
    n_traces = tid.max() + 1
    start = np.searchsorted(tid, np.arange(n_traces))
    end = np.searchsorted(tid, np.arange(n_traces), side="right") - 1
    key = tid * 2.0 + pos  # positions lie in [0, 1], so traces never overlap
    cols = {}
    for x in grid:
        j = np.searchsorted(key, np.arange(n_traces) * 2.0 + x, side="right") - 1
        j = np.clip(j, start, end)
        k = np.minimum(j + 1, end)
        dx = pos[k] - pos[j]
        with np.errstate(invalid="ignore", divide="ignore"):
            w = np.where(dx > 0, np.clip((x - pos[j]) / dx, 0, 1), 0.0)
        cols[f"{x:.2f}"] = val[j] * (1 - w) + val[k] * w
    first = traj.iloc[start]
    out = first[keys].reset_index(drop=True)
    out["correct"] = first["correct"].to_numpy().astype(bool)
    return pd.concat([out, pd.DataFrame(cols)], axis=1)


def _curve(wide: pd.DataFrame, grid: np.ndarray, by: list[str], n_resamples: int, seed: int) -> pd.DataFrame:
    """Mean over questions (traces of a question averaged first) with 95% bootstrap bands,
    all grid positions in one vectorised ``scipy.stats.bootstrap`` call per curve."""
    cols = [f"{x:.2f}" for x in grid]
    rows = []
    for key, g in wide.groupby(by, sort=False):
        per_q = g.groupby("question_id")[cols].mean().to_numpy()
        mean = np.nanmean(per_q, axis=0)
        lo, hi = mean.copy(), mean.copy()
        if len(per_q) > 1 and n_resamples and np.all(np.isfinite(per_q)) and np.ptp(per_q, axis=0).any():
            batch = max(1, int(2e7 // per_q.size))  # bound the resampled array to ~160 MB
            res = stats.bootstrap((per_q,), np.mean, axis=0, vectorized=True, n_resamples=n_resamples,
                                  confidence_level=0.95, method="percentile", random_state=seed, batch=batch)
            lo = np.where(np.ptp(per_q, axis=0) > 0, res.confidence_interval.low, mean)
            hi = np.where(np.ptp(per_q, axis=0) > 0, res.confidence_interval.high, mean)
        key = key if isinstance(key, tuple) else (key,)
        for i, x in enumerate(grid):
            rows.append((*key, x, float(mean[i]), float(lo[i]), float(hi[i]), len(per_q)))
    return pd.DataFrame(rows, columns=by + ["pos", "mean", "ci_low", "ci_high", "questions"])


def one_hit(m: int, alpha: float = estimators.DEFAULT_ALPHA) -> float:
    """The smallest change in ``ŝ_t`` that one gold hit more or fewer makes among ``m``
    continuations: ``log((m + α) / (m - 1 + α))`` nats. A total gain ``|Ĝ_T|`` below it is no
    measured change at all."""
    return float(np.log((m + alpha) / (m - 1 + alpha)))


def cumulative_gain(traj: pd.DataFrame, grid: np.ndarray = GRID, min_total: float | None = None,
                    n_resamples: int = 1000, seed: int = 0,
                    alpha: float = estimators.DEFAULT_ALPHA) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Figure 1: the cumulative information gain ``Ĝ_t = ŝ_0 - ŝ_t`` (Definition 11) against
    ``t / T``, mean over questions, for correct and incorrect traces. Returns ``(curves, counts)``.

    ``curves`` holds two measures (column ``measure``): ``"gain"``, ``Ĝ_t`` in nats for every
    trace; and ``"normalised"``, the paper's ``Ĝ_t / Ĝ_T`` for the traces whose total change
    ``|Ĝ_T|`` is at least ``min_total`` (default :func:`one_hit` at the run's ``M``: the ratio is
    undefined or meaningless for the rest; pass the ``alpha`` the trajectories were estimated
    with). ``counts`` gives, per group and correctness, how
    many traces there are and in which of the two groups each one falls (every trace in
    exactly one). Positions are interpolated onto ``grid`` for the picture.
    """
    keys = _group_keys(traj) + TRACE
    traj = traj.sort_values(keys + ["t"]).copy()
    if min_total is None:
        min_total = one_hit(int(traj["m"].max()), alpha) if "m" in traj else 1e-9
    g = traj.groupby(keys, sort=False)["surprisal"]
    s0, sT = g.transform("first"), g.transform("last")
    total = s0 - sT
    traj["gain"] = s0 - traj["surprisal"]
    big = (total.abs() >= min_total - 1e-12) & np.isfinite(total)
    traj["normalised"] = traj["gain"] / total.where(big)
    by = _group_keys(traj) + ["correct"]
    per_trace = traj.groupby(keys, sort=False).agg(correct=("correct", "first"), big=("normalised", "count"))
    per_trace["big"] = per_trace["big"] > 0
    counts = per_trace.groupby(by, sort=False).agg(traces=("big", "size"), normalised=("big", "sum")).reset_index()
    counts["|total| below threshold"] = counts["traces"] - counts["normalised"]
    counts["threshold (nats)"] = min_total
    curves = []
    for measure, frame in (("gain", traj), ("normalised", traj[big])):
        if frame.empty:
            continue
        wide = _on_grid(frame, measure, grid)
        curves.append(_curve(wide, grid, by, n_resamples, seed).assign(measure=measure))
    cols = by + ["measure", "pos", "mean", "ci_low", "ci_high", "questions"]
    curve = pd.concat(curves, ignore_index=True)[cols] if curves else pd.DataFrame(columns=cols)
    return curve, counts


def information_gain(traj: pd.DataFrame, by: Iterable[str] = ("correct",)) -> pd.DataFrame:
    """The per-step information gain ``ĝ = ŝ_{t_{k-1}} - ŝ_{t_k}`` between consecutive
    checkpoints (Definition 10, estimated; the paper reports its average as mean ± SE,
    Appendix A.1.6), per group: the mean per step and per token (``ĝ / (t_k - t_{k-1})``), the
    standard error over questions (each question's steps averaged first), and the counts."""
    keys = _group_keys(traj) + TRACE
    traj = traj.sort_values(keys + ["t"])
    g = traj.groupby(keys, sort=False)
    step = (g["surprisal"].shift(1) - traj["surprisal"]).rename("step")
    width = (traj["t"] - g["t"].shift(1)).rename("width")
    steps = traj[_group_keys(traj) + ["question_id"] + list(by)].assign(step=step, per_token=step / width)
    steps = steps[np.isfinite(steps["step"])]
    rows = []
    group = _group_keys(traj) + list(by)
    for key, h in (steps.groupby(group, sort=False) if group else [((), steps)]):
        per_q = h.groupby("question_id")[["step", "per_token"]].mean()
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(group, key)),
                     "gain_per_step": float(h["step"].mean()),
                     "se": float(stats.sem(per_q["step"])) if len(per_q) > 1 else float("nan"),
                     "gain_per_token": float(h["per_token"].mean()),
                     "se_per_token": float(stats.sem(per_q["per_token"])) if len(per_q) > 1 else float("nan"),
                     "steps": len(h), "questions": len(per_q)})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------- Figure 2: AUC(t)


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    if len(np.unique(y)) < 2:
        return float("nan")
    return float(roc_auc_score(y, score))


def weighted_auc(y: np.ndarray, score: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC (Mann–Whitney, ties counted one half) under each row of ``weights``
    (shape ``(B, n)``): the bootstrap's resampled AUCs without re-sorting per resample.
    With unit weights it equals ``roc_auc_score(y, score)``."""
    y = np.asarray(y, dtype=bool)
    uniq, inv = np.unique(score, return_inverse=True)
    out = np.empty(len(weights))
    for b, w in enumerate(weights):
        pos = np.bincount(inv, weights=w * y, minlength=len(uniq))
        neg = np.bincount(inv, weights=w * ~y, minlength=len(uniq))
        below = np.cumsum(neg) - neg
        denom = pos.sum() * neg.sum()
        out[b] = (pos * (below + 0.5 * neg)).sum() / denom if denom > 0 else np.nan
    return out


def clustered_auc_se(y: np.ndarray, score: np.ndarray, cluster: np.ndarray) -> float:
    """Standard error of the ROC AUC when observations come in clusters (the traces of one
    question): DeLong's placement values summed per cluster (Obuchowski, 1997). One sort,
    no resampling; with one observation per cluster it is DeLong's variance."""
    y = np.asarray(y, dtype=bool)
    _, k = np.unique(cluster, return_inverse=True)
    n_pos, n_neg = y.sum(), (~y).sum()
    ranks_all = stats.rankdata(score)
    ranks_pos = stats.rankdata(score[y])
    ranks_neg = stats.rankdata(score[~y])
    v10 = np.zeros(len(y))
    v01 = np.zeros(len(y))
    v10[y] = (ranks_all[y] - ranks_pos) / n_neg           # share of negatives scored below
    v01[~y] = 1 - (ranks_all[~y] - ranks_neg) / n_pos     # share of positives scored above
    auc = v10[y].mean()
    n_k = k.max() + 1
    if n_k < 2:
        return float("nan")
    m_k = np.bincount(k, weights=y, minlength=n_k)
    nn_k = np.bincount(k, weights=~y, minlength=n_k)
    d10 = np.bincount(k, weights=v10, minlength=n_k) - m_k * auc
    d01 = np.bincount(k, weights=v01, minlength=n_k) - nn_k * auc
    f = n_k / (n_k - 1)
    s10 = f * (d10 ** 2).sum() / n_pos
    s01 = f * (d01 ** 2).sum() / n_neg
    s11 = f * (d10 * d01).sum()
    var = s10 / n_pos + s01 / n_neg + 2 * s11 / (n_pos * n_neg)
    return float(np.sqrt(max(var, 0.0)))


def auc_by_position(traj: pd.DataFrame, normalised: bool = False, grid: np.ndarray = GRID,
                    interval: str = "delong", n_resamples: int = 200, seed: int = 0) -> pd.DataFrame:
    """Figure 2: at each prefix length, the ROC AUC of ``-Ĥ_t`` (lower entropy = predicted
    correct) for separating correct from incorrect traces (``sklearn.metrics.roc_auc_score``),
    with a 95% interval that treats the traces of one question as a cluster:
    ``interval="delong"`` (default) is the normal interval from :func:`clustered_auc_se` and
    also gives ``se``; ``"bootstrap"`` resamples questions with replacement (``n_resamples``).

    ``normalised=False`` uses absolute prefix lengths ``t`` (traces shorter than ``t`` drop
    out); ``True`` interpolates each trace onto ``grid`` of ``t / T``. Where every trace is
    correct or every trace is incorrect the AUC is undefined: NaN with ``reason``.
    """
    if interval not in ("delong", "bootstrap"):
        raise ValueError(f"interval must be 'delong' or 'bootstrap', got {interval!r}")
    keys = _group_keys(traj)
    if normalised:
        wide = _on_grid(traj, "entropy", grid)
        long = wide.melt(id_vars=keys + TRACE + ["correct"], var_name="pos", value_name="entropy")
        long["at"] = long["pos"].astype(float)
    else:
        long = traj[keys + TRACE + ["correct", "t", "entropy"]].rename(columns={"t": "at"})
    rng = np.random.default_rng(seed)
    rows = []
    for key, g in long.groupby(keys + ["at"], sort=True):
        y = g["correct"].to_numpy().astype(int)
        score = -g["entropy"].to_numpy()
        auc = _auc(y, score)
        reason = "" if np.isfinite(auc) else ("all correct" if y.all() else "all incorrect")
        lo = hi = se = float("nan")
        if reason == "" and interval == "delong":
            se = clustered_auc_se(y.astype(bool), score, g["question_id"].to_numpy())
            lo, hi = auc - 1.96 * se, auc + 1.96 * se
        elif reason == "" and interval == "bootstrap":
            _, q = np.unique(g["question_id"].to_numpy(), return_inverse=True)
            nq = q.max() + 1
            draws = rng.multinomial(nq, np.full(nq, 1.0 / nq), size=n_resamples)
            boots = weighted_auc(y, score, draws[:, q].astype(np.float64))
            boots = boots[np.isfinite(boots)]
            if len(boots):
                lo, hi = np.percentile(boots, [2.5, 97.5])
        key = key if isinstance(key, tuple) else (key,)
        rows.append((*key, auc, se, float(lo), float(hi), int(y.sum()), int(len(y) - y.sum()), reason))
    cols = keys + ["pos" if normalised else "t", "auc", "se", "ci_low", "ci_high", "n_correct", "n_incorrect",
                   "reason"]
    return pd.DataFrame(rows, columns=cols)


def auc_at_fraction(traj: pd.DataFrame, fraction: float = 0.5) -> pd.DataFrame:
    """The AUC of ``-Ĥ_t`` for correctness at each trace's checkpoint nearest ``fraction`` of
    its length (a real checkpoint, nothing interpolated): the "mid-trace AUC" for
    ``fraction = 0.5``, per group, with the clustered DeLong interval of
    :func:`auc_by_position`."""
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction must lie in [0, 1], got {fraction}")
    keys = _group_keys(traj) + TRACE
    dist = (traj["pos"] - fraction).abs()
    nearest = traj.loc[dist.groupby([traj[k] for k in keys], sort=False).idxmin()]
    return auc_by_position(nearest.assign(t=fraction)).rename(columns={"t": "fraction"})


# ------------------------------------------------------------------------- Figure 3: saturation


def entropy_curve(traj: pd.DataFrame, grid: np.ndarray = GRID, by: Iterable[str] = (),
                  n_resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Figure 3: mean ``Ĥ_t`` against ``t / T`` over questions with 95% bootstrap bands."""
    wide = _on_grid(traj, "entropy", grid)
    by = _group_keys(traj) + list(by)
    if not by:
        wide["all"] = "all"
        by = ["all"]
    return _curve(wide, grid, by, n_resamples, seed)


def plateau(pos: Sequence[float], level: Sequence[float], tol: float = 0.05) -> dict:
    """Where a mean entropy curve stops falling, and a late-rebound measure (Figure 3).

    The plateau starts at the first position after which the curve never falls by more than
    ``tol`` × (its total range) again; ``level`` is the curve's value there. ``rebound`` is
    ``H_T - min_t H_t``: how far the curve climbs back after its lowest point.
    """
    pos = np.asarray(pos, dtype=np.float64)
    h = np.asarray(level, dtype=np.float64)
    if len(h) == 0 or not np.all(np.isfinite(h)):
        return dict(plateau_pos=float("nan"), plateau_level=float("nan"), rebound=float("nan"),
                    reason="empty or undefined curve")
    span = max(np.ptp(h), 1e-12)
    # remaining drop from each point: h[i] - min(h[i:])
    future_min = np.minimum.accumulate(h[::-1])[::-1]
    flat = (h - future_min) <= tol * span
    i = int(np.argmax(flat))
    return dict(plateau_pos=float(pos[i]), plateau_level=float(h[i]),
                rebound=float(h[-1] - h.min()), reason="")


def saturation(curve: pd.DataFrame, tol: float = 0.05) -> pd.DataFrame:
    """:func:`plateau` for every curve of :func:`entropy_curve`."""
    keys = [c for c in curve.columns if c not in ("pos", "mean", "ci_low", "ci_high", "questions")]
    rows = []
    for key, g in curve.groupby(keys, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(keys, key)), **plateau(g["pos"], g["mean"], tol)})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------- ablations


def coarsen(records: pd.DataFrame, stride: int | None) -> pd.DataFrame:
    """Keep the checkpoints of a coarser stride (``t % stride == 0``, plus ``T``), without
    re-running anything. ``None`` keeps all."""
    if stride is None:
        return records
    if stride < 1:
        raise ValueError(f"stride must be positive, got {stride}")
    return records[(records["t"] % stride == 0) | (records["t"] == records["T"])]


def shuffle_table(original: pd.DataFrame, shuffled: pd.DataFrame, **kw) -> pd.DataFrame:
    """Table 2: mean coefficient of the original run beside the shuffled-prefix run, both on
    the questions the shuffled run holds (the two runs may have sampled different numbers)."""
    cell = [k for k in ("model", "dataset") if k in original and k in shuffled]
    common = shuffled[cell + ["question_id"]].drop_duplicates()
    original = original.merge(common, on=cell + ["question_id"])
    a = alignment(original, **kw)
    b = alignment(shuffled, **kw)
    keys = [k for k in ("model", "dataset") if k in a]  # the two runs differ in `shuffled` and `run`
    cols = ["trace_mean", "mean", "ci_low", "ci_high", "questions"]
    if keys:
        return a[keys + cols].merge(b[keys + cols], on=keys, suffixes=("_original", "_shuffled"))
    return pd.concat([a[cols].add_suffix("_original"), b[cols].add_suffix("_shuffled")], axis=1)


def shuffle_findings(table: pd.DataFrame, null: pd.DataFrame) -> list[str]:
    """Sentences from Table 2 on both checkpoint sets (:func:`shuffle_table` under
    :func:`on_each_checkpoint_set`, one block per ``shuffle``) and the null-answer shares of
    :func:`null_share` (column ``shown``): per cell and shuffle, the coefficient before the answer
    with the prefix as written and shuffled, each with its 95% interval, whether the shuffled one
    lies nearer 0 with the intervals apart, and the share of the shuffled continuations (after
    ``t = 0``) that answer nothing: a shuffle whose continuations stop answering measures the
    null answer, not the content of the steps."""
    out = []
    before = table[table["checkpoints"] == "before answer"]
    cells = [k for k in ("model", "dataset") if k in before]
    for _, row in before.iterrows():
        where = (null["shown"] == row["shuffle"]) & (null["t"] > 0)
        for k in cells:
            where &= null[k] == row[k]
        share = float(np.average(null.loc[where, "null"], weights=null.loc[where, "records"])) if where.any() else np.nan
        a, b = row["mean_original"], row["mean_shuffled"]
        apart = row["ci_high_shuffled"] < row["ci_low_original"] or row["ci_low_shuffled"] > row["ci_high_original"]
        nearer = ("whose interval overlaps the original's" if not apart else
                  "lies nearer 0, the intervals apart" if abs(b) < abs(a) else "lies farther from 0, the intervals apart")
        out.append(f"{' on '.join(str(row[k]) for k in cells)}, {row['shuffle']} shuffled: before the answer, "
                   f"{a:+.2f} [{row['ci_low_original']:+.2f}, {row['ci_high_original']:+.2f}] as written, "
                   f"{b:+.2f} [{row['ci_low_shuffled']:+.2f}, {row['ci_high_shuffled']:+.2f}] shuffled, which {nearer}; "
                   f"the shuffled continuations answer nothing {share:.0%} of the time")
    return out


def null_share(records: pd.DataFrame) -> pd.DataFrame:
    """Per cell and checkpoint ``t``: the share of the continuations' answers that are the null
    answer ``∅`` (nothing read under the run's extraction), and how many records. A shuffle
    that breaks the answer format shows here: its continuations stop answering, and their
    entropy and surprisal then measure the null class, not the reasoning."""
    keys = _group_keys(records)
    null = [float(np.mean([a is None for a in row])) if len(row) else np.nan for row in records["answers"]]
    frame = records[keys + ["t"]].assign(null=null)
    return frame.groupby(keys + ["t"], sort=True).agg(null=("null", "mean"), records=("null", "size")).reset_index()


def answer_distribution(records: pd.DataFrame, modes: Sequence[str] | None = None) -> pd.DataFrame:
    """Per cell and answer: the share of traces that gave it (``predicted``; the null answer as
    ``"∅"``) and the share of traces whose gold answer it is (``gold``). With ``modes``, the
    answers are read again under each extraction mode (:func:`siautil.estimators.reextract`)
    and ``predicted`` becomes one column per mode. A model that favours some answers whatever
    the question shows here as a predicted share far from the gold one."""
    if modes:
        parts = [answer_distribution(estimators.reextract(records, m)).rename(columns={"predicted": m})
                 for m in modes]
        keys = [c for c in parts[0].columns if c not in ("gold", modes[0])]
        out = parts[0]
        for m, part in zip(modes[1:], parts[1:]):
            out = out.merge(part[keys + [m]], on=keys, how="outer")
        out = out.drop(columns=["gold"]).merge(
            pd.concat(parts)[keys + ["gold"]].groupby(keys, sort=False)["gold"].max().reset_index(), on=keys, how="left")
        return out.fillna({m: 0.0 for m in modes} | {"gold": 0.0})
    keys = _group_keys(records)
    traces = records.drop_duplicates(keys + TRACE)
    predicted = traces["trace_answer"].map(lambda a: "∅" if a is None or pd.isna(a) else str(a))
    rows = []
    for key, g in (traces.groupby(keys, sort=False) if keys else [((), traces)]):
        key = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        pred = predicted[g.index].value_counts(normalize=True)
        gold = g["gold"].astype(str).value_counts(normalize=True)
        for answer in sorted(set(pred.index) | set(gold.index), key=lambda a: (a == "∅", a)):
            rows.append({**key, "answer": answer, "predicted": float(pred.get(answer, 0.0)),
                         "gold": float(gold.get(answer, 0.0))})
    return pd.DataFrame(rows)


def budget_curve(records: pd.DataFrame, continuations: Sequence[int] | None = None,
                 strides: Sequence[int | None] = (None,), alpha: float = estimators.DEFAULT_ALPHA,
                 n_resamples: int = 500, seed: int = 0, **kw) -> pd.DataFrame:
    """Table 3 and beyond: the alignment coefficient recomputed for every number of
    continuations per prefix in ``continuations`` (first ``m`` of the stored answers) and
    every ``stride`` (a multiple of the run's), from the stored samples alone."""
    m_max = int(records["answers"].map(len).max())
    continuations = continuations or sorted({m for m in (1, 2, 4, 8, 16, 32, 64) if m < m_max} | {m_max})
    rows = []
    for stride in strides:
        for m in continuations:
            tab = alignment(records, alpha=alpha, keep=m, stride=stride, n_resamples=n_resamples, seed=seed, **kw)
            tab.insert(0, "stride", stride if stride is not None else "run")
            tab.insert(1, "continuations", m)
            rows.append(tab)
    return pd.concat(rows, ignore_index=True)


def surprisal_sensitivity(records: pd.DataFrame, alphas: Sequence[float] = (0.01, 0.1, 0.5, 1.0, 2.0),
                          n_resamples: int = 500, seed: int = 0, **kw) -> pd.DataFrame:
    """The alignment coefficient under each gold-surprisal smoothing ``α``."""
    rows = []
    for a in alphas:
        tab = alignment(records, alpha=a, n_resamples=n_resamples, seed=seed, **kw)
        tab.insert(0, "alpha", a)
        rows.append(tab)
    return pd.concat(rows, ignore_index=True)


# ------------------------------------------------------------------------- early stopping


def early_stopping(traj: pd.DataFrame, thresholds: Sequence[float] = (0.05, 0.1, 0.2, 0.4, 0.7, 1.0)) -> pd.DataFrame:
    """The application the literature uses: stop a trace at its first checkpoint whose
    estimated entropy is at most ``threshold`` and answer with the majority answer of that
    checkpoint's continuations. Per threshold: the fraction of tokens saved and the accuracy
    against the full traces' accuracy."""
    keys = _group_keys(traj) + TRACE
    traj = traj.sort_values(keys + ["t"])
    full = traj.groupby(keys, sort=False).agg(T=("T", "first"), correct=("correct", "first"))
    rows = []
    for th in thresholds:
        hit = traj[traj["entropy"] <= th].groupby(keys, sort=False)[["t", "mode_correct"]].first()
        stop = full.join(hit, how="left")
        stopped = stop["t"].notna().to_numpy()
        tokens_used = np.where(stopped, stop["t"], stop["T"])
        correct_at_stop = np.where(stopped, stop["mode_correct"].fillna(False).astype(bool), stop["correct"])
        rows.append(dict(threshold=th, stopped=float(stopped.mean()),
                         tokens_saved=float(1 - tokens_used.sum() / max(stop["T"].sum(), 1)),
                         accuracy=float(np.mean(correct_at_stop)), full_accuracy=float(stop["correct"].mean())))
    return pd.DataFrame(rows)
