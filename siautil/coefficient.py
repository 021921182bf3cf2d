"""What the alignment coefficient measures: its estimators side by side, and a no-information
baseline per trace.

The paper's coefficient (Section 5.1) correlates, across a trace's checkpoints, ``Ĥ_t`` and
``ŝ_t`` computed from the *same* ``M`` sampled answers. They share sampling noise: when by
chance more continuations land on the modal answer, ``Ĥ_t`` falls, and ``ŝ_t`` falls with it if
that answer is gold (rises if not). So the coefficient reports whether gold is the modal
answer even where the prefixes carry no information at all. Here:

* ``paper``: the paper's estimate (:func:`siautil.diagnostics.trace_alignment`);
* ``decoupled``: ``Ĥ_t`` from one half of the continuations and ``ŝ_t`` from the other, and the
  other way round (cross-fitted, so all ``M`` are used), averaged: no shared noise, but each
  side rests on ``M/2`` answers, which attenuates the correlation towards 0;
* ``corrected``: the decoupled cell mean divided by ``sqrt(r_H r_s)``, the split-half
  reliabilities of the two series *within traces*, pooled over the cell (Spearman's
  correction for attenuation, at the level of a cell rather than a trace); undefined when a
  reliability is below :data:`MIN_RELIABILITY`, where the checkpoints' estimates are mostly
  noise and no estimator can tell information from its absence at this ``M``;
* ``baseline``: per trace, the paper's coefficient if the prefixes carried no information
  given the trace's own answers: every checkpoint's ``M`` answers redrawn from the trace's
  pooled answer distribution (a parametric bootstrap); ``excess = paper - baseline``.

Which of them measures SIA is an empirical question, answered on the oracle reasoner whose
exact answer distributions are known (:func:`validate`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from . import diagnostics, estimators

ESTIMATORS = ("paper", "decoupled", "corrected", "baseline", "excess")
#: Below this split-half reliability the correction for attenuation divides noise by noise
#: (on the no-information oracle the reliabilities are 0 ± 0.05 and the ratio runs to ±1000).
MIN_RELIABILITY = 0.1


#: A verdict needs the decoupled coefficient on at least this many questions: a bootstrap
#: interval over fewer says nothing.
MIN_QUESTIONS = 5


def corrected(decoupled_mean: float, r_h: float, r_s: float, min_reliability: float = MIN_RELIABILITY) -> float:
    """Spearman's correction for attenuation of a decoupled mean, or NaN when either split-half
    reliability is below ``min_reliability``."""
    if not (r_h >= min_reliability and r_s >= min_reliability):
        return float("nan")
    return float(decoupled_mean / np.sqrt(r_h * r_s))


def _halves(records: pd.DataFrame, alpha: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Trajectories from the first and the second half of each record's answers (``M/2``
    each, ``M`` the smallest number of answers of a record: call it on one run at a time)."""
    m = int(records["answers"].map(len).min())
    if m < 2:
        raise estimators.RecordsError(f"the decoupled coefficient needs at least 2 answers per checkpoint, got {m}: "
                                      "sample the run with n_continuations >= 2 (better >= 8)")
    h = m // 2
    out = []
    for start in (0, h):
        ac = estimators.count_answers(records["answers"], records["gold"], keep=h, start=start)
        frame = records[[c for c in records.columns if c not in ("answers", "continuations")]].reset_index(drop=True)
        frame = frame.assign(entropy=estimators.entropy_from_counts(ac),
                             surprisal=-np.log(estimators.gold_probability(ac.hits, ac.m, alpha)))
        out.append(frame)
    return out[0], out[1]


def _pooled_within(a: pd.DataFrame, b: pd.DataFrame, column: str, keys: list[str]) -> float:
    """Split-half reliability of ``column`` within traces: the correlation of the two halves'
    deviations from their trace means, pooled over every trace."""
    da = a[column] - a.groupby(keys, sort=False)[column].transform("mean")
    db = b[column] - b.groupby(keys, sort=False)[column].transform("mean")
    ok = np.isfinite(da) & np.isfinite(db)
    denom = np.sqrt((da[ok] ** 2).sum() * (db[ok] ** 2).sum())
    return float((da[ok] * db[ok]).sum() / denom) if denom > 0 else float("nan")


def decoupled(records: pd.DataFrame, alpha: float = estimators.DEFAULT_ALPHA,
              min_checkpoints: int = diagnostics.MIN_CHECKPOINTS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per trace, the cross-fitted decoupled coefficient: the mean of
    ``corr(Ĥ_t[first half], ŝ_t[second half])`` and ``corr(Ĥ_t[second half], ŝ_t[first half])``
    (either alone where the other is undefined). Returns ``(per trace, per cell reliabilities)``:
    the second frame holds ``r_H`` and ``r_s`` per group (:func:`_pooled_within`)."""
    estimators.check_records(records)
    groups = [k for k in diagnostics.GROUP_KEYS if k in records]
    if groups and records.groupby(groups, sort=False).ngroups > 1:  # each run splits its own M
        parts = [decoupled(g, alpha, min_checkpoints) for _, g in records.groupby(groups, sort=False)]
        return (pd.concat([p[0] for p in parts], ignore_index=True),
                pd.concat([p[1] for p in parts], ignore_index=True))
    a, b = _halves(records, alpha)
    keys = diagnostics._group_keys(a) + diagnostics.TRACE
    r1 = diagnostics.trace_alignment(a.assign(surprisal=b["surprisal"]), min_checkpoints)
    r2 = diagnostics.trace_alignment(b.assign(surprisal=a["surprisal"]), min_checkpoints)
    out = r1[keys + ["checkpoints", "correct"]].copy()
    pair = np.vstack([r1["coefficient"].to_numpy(), r2["coefficient"].to_numpy()])
    n = np.isfinite(pair).sum(0)
    out["coefficient"] = np.where(n > 0, np.nansum(pair, 0) / np.maximum(n, 1), np.nan)
    out["reason"] = np.where(np.isfinite(out["coefficient"]), "", r1["reason"].where(r1["reason"] != "", r2["reason"]))
    groups = diagnostics._group_keys(a)
    rel = []
    for key, ga in (a.groupby(groups, sort=False) if groups else [((), a)]):
        gb = b.loc[ga.index]
        key = key if isinstance(key, tuple) else (key,)
        rel.append({**dict(zip(groups, key)), "r_H": _pooled_within(ga, gb, "entropy", keys),
                    "r_s": _pooled_within(ga, gb, "surprisal", keys)})
    return out, pd.DataFrame(rel)


def _trace_counts(answers: list[list], gold: str) -> tuple[np.ndarray, int]:
    """Per checkpoint counts of each answer class of the trace (classes pooled over its
    checkpoints), and the index of the gold class (-1 if never seen)."""
    labels = sorted({("∅" if a is None else str(a)) for row in answers for a in row})
    index = {lab: i for i, lab in enumerate(labels)}
    counts = np.zeros((len(answers), len(labels)))
    for k, row in enumerate(answers):
        for a in row:
            counts[k, index["∅" if a is None else str(a)]] += 1
    return counts, index.get(str(gold), -1)


def _rowwise_corr(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of ``x`` with the same row of ``y`` (NaN if constant)."""
    dx = x - x.mean(-1, keepdims=True)
    dy = y - y.mean(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (dx * dy).sum(-1) / np.sqrt((dx * dx).sum(-1) * (dy * dy).sum(-1))
    spread = (np.ptp(x, -1) > 1e-12) & (np.ptp(y, -1) > 1e-12)
    return np.where(spread, np.clip(r, -1, 1), np.nan)


def baseline(records: pd.DataFrame, alpha: float = estimators.DEFAULT_ALPHA, n_draws: int = 200,
             seed: int = 0, min_checkpoints: int = diagnostics.MIN_CHECKPOINTS) -> pd.DataFrame:
    """Per trace, the paper's coefficient under no information: every checkpoint's ``M``
    answers redrawn ``n_draws`` times from the trace's pooled answer distribution (all its
    checkpoints' answers together). Columns: ``baseline`` (the mean over draws whose
    coefficient is defined), ``baseline_sd``, ``baseline_defined`` (their share)."""
    estimators.check_records(records)
    keys = [k for k in diagnostics.GROUP_KEYS if k in records] + diagnostics.TRACE
    rng = np.random.default_rng(seed)
    rows = []
    for key, g in records.groupby(keys, sort=False):
        answers = [list(a) for a in g.sort_values("t")["answers"]]
        counts, gold = _trace_counts(answers, g["gold"].iloc[0])
        k, m = len(answers), int(counts.sum(1).max())
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        if k < min_checkpoints:
            rows.append({**row, "baseline": np.nan, "baseline_sd": np.nan, "baseline_defined": 0.0})
            continue
        pooled = counts.sum(0) / counts.sum()
        draws = rng.multinomial(m, pooled, size=(n_draws, k)).astype(np.float64)
        h = estimators.plugin_entropy(draws)
        hits = draws[..., gold] if gold >= 0 else np.zeros((n_draws, k))
        s = estimators.gold_surprisal(hits, np.full_like(hits, m), alpha)
        r = _rowwise_corr(h, s)
        ok = np.isfinite(r)
        rows.append({**row, "baseline": float(r[ok].mean()) if ok.any() else np.nan,
                     "baseline_sd": float(r[ok].std()) if ok.sum() > 1 else np.nan,
                     "baseline_defined": float(ok.mean())})
    return pd.DataFrame(rows)


def per_trace(records: pd.DataFrame, alpha: float = estimators.DEFAULT_ALPHA, n_draws: int = 200,
              seed: int = 0, min_checkpoints: int = diagnostics.MIN_CHECKPOINTS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every estimator per trace: ``paper``, ``decoupled``, ``baseline`` and ``excess``
    (``paper - baseline``), with ``correct`` and the paper coefficient's ``reason``; and the
    per-cell reliabilities of :func:`decoupled`."""
    traj = estimators.estimate(records, alpha=alpha)
    paper = diagnostics.trace_alignment(traj, min_checkpoints)
    keys = diagnostics._group_keys(traj) + diagnostics.TRACE
    dec, rel = decoupled(records, alpha, min_checkpoints)
    base = baseline(records, alpha, n_draws, seed, min_checkpoints)
    out = paper.rename(columns={"coefficient": "paper"}).merge(
        dec[keys + ["coefficient"]].rename(columns={"coefficient": "decoupled"}), on=keys, how="left")
    out = out.merge(base, on=keys, how="left")
    out["excess"] = out["paper"] - out["baseline"]
    return out, rel


def _mean_ci(values: np.ndarray, question: np.ndarray, n_resamples: int, seed: int) -> tuple[float, float, float, int]:
    """Mean over questions (each question's traces averaged first) with a bootstrap interval."""
    frame = pd.DataFrame({"v": values, "q": question}).dropna()
    per_q = frame.groupby("q")["v"].mean().to_numpy()
    if not len(per_q):
        return np.nan, np.nan, np.nan, 0
    if not n_resamples:
        return float(per_q.mean()), np.nan, np.nan, len(per_q)
    lo, hi = diagnostics._bootstrap_mean(per_q, n_resamples, seed)
    return float(per_q.mean()), lo, hi, len(per_q)


def table(records: pd.DataFrame, alpha: float = estimators.DEFAULT_ALPHA, n_draws: int = 200,
          n_resamples: int = 1000, seed: int = 0, min_checkpoints: int = diagnostics.MIN_CHECKPOINTS) -> pd.DataFrame:
    """Per cell, every estimator's mean over questions with its 95% bootstrap interval, the
    paper's and the decoupled mean over traces, ``corrected`` (from the decoupled trace mean, as
    :func:`validate` validates it) with the reliabilities behind it, and a ``verdict`` read
    from the decoupled interval: ``informative`` (above 0), ``misinformative`` (below 0) or
    ``cannot tell at this M`` (it contains 0: the run's continuations cannot tell information
    from noise), or ``too few questions`` (fewer than :data:`MIN_QUESTIONS` with a defined
    decoupled coefficient)."""
    traces, rel = per_trace(records, alpha, n_draws, seed, min_checkpoints)
    groups = [k for k in diagnostics.GROUP_KEYS if k in traces]
    rows = []
    for key, g in (traces.groupby(groups, sort=False) if groups else [((), traces)]):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(groups, key))
        row["paper (trace mean)"] = float(g["paper"].mean())
        row["decoupled (trace mean)"] = float(g["decoupled"].mean())
        for name in ("paper", "decoupled", "baseline", "excess"):
            mean, lo, hi, nq = _mean_ci(g[name].to_numpy(), g["question_id"].to_numpy(), n_resamples, seed)
            row.update({name: mean, f"{name} low": lo, f"{name} high": hi})
        r = rel.merge(pd.DataFrame([dict(zip(groups, key))]), on=groups) if groups else rel
        r_h, r_s = (float(r["r_H"].iloc[0]), float(r["r_s"].iloc[0])) if len(r) else (np.nan, np.nan)
        lo, hi = row["decoupled low"], row["decoupled high"]
        n_q = g.dropna(subset=["decoupled"])["question_id"].nunique()
        row["verdict"] = (f"too few questions ({n_q})" if n_q < MIN_QUESTIONS else
                          "informative" if lo > 0 else "misinformative" if hi < 0 else
                          "cannot tell at this M" if np.isfinite(lo) else "no interval")
        # corrected from the trace mean, as validated (validate) and as the paper averages
        row.update({"corrected": corrected(row["decoupled (trace mean)"], r_h, r_s), "r_H": r_h, "r_s": r_s,
                    "traces": len(g), "paper defined": int(g["paper"].notna().sum()),
                    "decoupled defined": int(g["decoupled"].notna().sum())})
        rows.append(row)
    return pd.DataFrame(rows)


def describe(estimates: pd.DataFrame) -> list[str]:
    """One sentence per cell of :func:`table`: the paper's estimate, the decoupled one and the
    excess over the no-information baseline, each with its 95% interval, and the verdict (what a
    chapter's prose says about a run, from the run)."""
    def est(row, name):
        return f"{row[name]:+.3f} [{row[f'{name} low']:+.3f}, {row[f'{name} high']:+.3f}]"

    out = []
    for _, row in estimates.iterrows():
        cell = " on ".join(str(row[k]) for k in ("model", "dataset") if k in row)
        out.append(f"{cell or 'all traces'}: paper's estimator {est(row, 'paper')} "
                   f"({row['paper defined']} of {row['traces']} traces defined), decoupled {est(row, 'decoupled')}, "
                   f"excess over the no-information baseline {est(row, 'excess')}; verdict: {row['verdict']}")
    return out


def exact(records: pd.DataFrame, min_checkpoints: int = diagnostics.MIN_CHECKPOINTS) -> pd.DataFrame:
    """Per trace, the exact coefficient of an oracle run: the correlation of the true
    ``H(A | x, z_<=t)`` and ``-log p(y* | x, z_<=t)`` across the checkpoints."""
    traj = records.assign(entropy=records["true_entropy"], surprisal=-np.log(records["true_gold_prob"]))
    out = diagnostics.trace_alignment(traj, min_checkpoints)
    return out.rename(columns={"coefficient": "exact"})[diagnostics.TRACE + ["exact"]]


def validate(settings: dict | None = None, ms: Sequence[int] = (8, 16, 32, 64), n_questions: int = 60,
             n_traces: int = 4, stride: int = 5, seed: int = 0, n_draws: int = 100) -> pd.DataFrame:
    """Each estimator against the exact coefficient on oracle runs (``settings``: name ->
    :class:`siautil.oracle.OracleConfig`; default aligned, misaligned and no information), at
    each ``M``. Per (setting, M, estimator): the mean over traces, the exact mean on the same
    traces (0 where the truth is no information), the bias, the spread (SD over traces) and the
    standard error of the mean. ``corrected`` is a cell-level number, so it has no spread."""
    from . import oracle

    settings = settings or {"aligned": oracle.aligned(), "misaligned": oracle.misaligned(),
                            "no information": oracle.no_information()}
    rows = []
    for name, cfg in settings.items():
        for m in ms:
            run = oracle.sample_run(cfg, n_questions=n_questions, n_traces=n_traces, n_continuations=m,
                                    stride=stride, seed=seed)
            traces, rel = per_trace(run, n_draws=n_draws, seed=seed)
            truth = exact(run)
            traces = traces.merge(truth, on=diagnostics.TRACE, how="left")
            informative = truth["exact"].notna().any()
            for est in ("paper", "decoupled", "baseline", "excess"):
                v = traces[est]
                ok = v.notna() & (traces["exact"].notna() if informative else True)
                target = float(traces.loc[ok, "exact"].mean()) if informative else 0.0
                rows.append(dict(setting=name, m=m, estimator=est, mean=float(v[ok].mean()), exact=target,
                                 bias=float(v[ok].mean()) - target, spread=float(v[ok].std()),
                                 se=float(stats.sem(v[ok])) if ok.sum() > 1 else np.nan, traces=int(ok.sum())))
            r_h, r_s = float(rel["r_H"].iloc[0]), float(rel["r_s"].iloc[0])
            ok = traces["decoupled"].notna() & (traces["exact"].notna() if informative else True)
            corr = corrected(float(traces.loc[ok, "decoupled"].mean()), r_h, r_s)
            target = float(traces.loc[ok, "exact"].mean()) if informative else 0.0
            rows.append(dict(setting=name, m=m, estimator="corrected", mean=corr, exact=target, bias=corr - target,
                             spread=np.nan, se=np.nan, traces=int(ok.sum())))
            for row in rows[-5:]:
                row.update(r_H=r_h, r_s=r_s)
    return pd.DataFrame(rows)
