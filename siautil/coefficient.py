"""What the alignment coefficient measures: its estimators side by side, validated on the
oracle, and the coefficient of each trace outcome apart.

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
  noise and no estimator can tell information from its absence at this ``M``.

Whatever the estimator, and the exact coefficient too, a trace's coefficient follows its own
outcome: along a trace that ends right the gold answer becomes certain (entropy and surprisal
fall together), along one that ends wrong it becomes unlikely (entropy falls as surprisal
rises). A cell's mean is then mostly its mix of outcomes, that is its accuracy
(:func:`by_outcome` shows each outcome's coefficient apart and the mean their mix implies).
What the prefixes themselves carry is measured in :mod:`siautil.informativeness`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from . import diagnostics, estimators

ESTIMATORS = ("paper", "decoupled", "corrected")
#: A trace's outcome: its own final answer is gold, another answer, or none (the null answer).
OUTCOMES = ("correct", "incorrect", "no answer")
#: Below this split-half reliability the correction for attenuation divides noise by noise
#: (on the no-information oracle the reliabilities are 0 ± 0.05 and the ratio runs to ±1000).
MIN_RELIABILITY = 0.1


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


def outcome(records: pd.DataFrame) -> pd.Series:
    """Each record's trace outcome (:data:`OUTCOMES`), from ``correct`` and ``trace_answer``
    (a trace whose answer was not read is ``"no answer"``; records without ``trace_answer``
    count every wrong trace as ``"incorrect"``)."""
    none = records["trace_answer"].isna() if "trace_answer" in records else pd.Series(False, index=records.index)
    labels = np.where(records["correct"].astype(bool), "correct", np.where(none, "no answer", "incorrect"))
    return pd.Series(labels, index=records.index, name="outcome")


def per_trace(records: pd.DataFrame, alpha: float = estimators.DEFAULT_ALPHA,
              min_checkpoints: int = diagnostics.MIN_CHECKPOINTS,
              checkpoints: str = "all") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every estimator per trace on the chosen ``checkpoints``
    (:data:`siautil.estimators.CHECKPOINTS`): ``paper`` and ``decoupled``, with the trace's
    ``correct``, ``outcome`` and the paper coefficient's ``reason``; and the per-cell
    reliabilities of :func:`decoupled`."""
    records = estimators.select(records, checkpoints=checkpoints)
    traj = estimators.estimate(records, alpha=alpha)
    paper = diagnostics.trace_alignment(traj, min_checkpoints)
    keys = diagnostics._group_keys(traj) + diagnostics.TRACE
    dec, rel = decoupled(records, alpha, min_checkpoints)
    out = paper.rename(columns={"coefficient": "paper"}).merge(
        dec[keys + ["coefficient"]].rename(columns={"coefficient": "decoupled"}), on=keys, how="left")
    outcomes = records.assign(outcome=outcome(records)).drop_duplicates(keys)[keys + ["outcome"]]
    return out.merge(outcomes, on=keys, how="left"), rel


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


def _groups(traces: pd.DataFrame):
    """``(key dict, frame)`` per cell of per-trace results."""
    groups = [k for k in diagnostics.GROUP_KEYS if k in traces]
    for key, g in (traces.groupby(groups, sort=False) if groups else [((), traces)]):
        yield dict(zip(groups, key if isinstance(key, tuple) else (key,))), g


def table(records: pd.DataFrame, alpha: float = estimators.DEFAULT_ALPHA, n_resamples: int = 1000, seed: int = 0,
          min_checkpoints: int = diagnostics.MIN_CHECKPOINTS, checkpoints: str = "all") -> pd.DataFrame:
    """Per cell, on the chosen ``checkpoints``: the paper's and the decoupled estimate, each as the
    mean over questions with its 95% bootstrap interval (``paper``, ``paper_low``,
    ``paper_high``, ...) and as the mean over traces (``paper_trace_mean``, the paper's own
    averaging); ``corrected`` (from the decoupled trace mean, as :func:`validate` validates it)
    with the reliabilities behind it; how many traces there are and how many have each
    estimate defined."""
    traces, rel = per_trace(records, alpha, min_checkpoints, checkpoints)
    rows = []
    for key, g in _groups(traces):
        row = dict(key)
        for name in ("paper", "decoupled"):
            mean, lo, hi, _ = _mean_ci(g[name].to_numpy(), g["question_id"].to_numpy(), n_resamples, seed)
            row.update({name: mean, f"{name}_low": lo, f"{name}_high": hi,
                        f"{name}_trace_mean": float(g[name].mean())})
        r = rel.merge(pd.DataFrame([key]), on=list(key)) if key else rel
        r_h, r_s = (float(r["r_H"].iloc[0]), float(r["r_s"].iloc[0])) if len(r) else (np.nan, np.nan)
        row.update({"corrected": corrected(row["decoupled_trace_mean"], r_h, r_s), "r_H": r_h, "r_s": r_s,
                    "traces": len(g), "paper_defined": int(g["paper"].notna().sum()),
                    "decoupled_defined": int(g["decoupled"].notna().sum())})
        rows.append(row)
    return pd.DataFrame(rows)


def by_outcome(records: pd.DataFrame, alpha: float = estimators.DEFAULT_ALPHA, n_resamples: int = 1000,
               seed: int = 0, min_checkpoints: int = diagnostics.MIN_CHECKPOINTS,
               checkpoints: str = "all") -> pd.DataFrame:
    """Per cell and trace outcome (:data:`OUTCOMES`), on the chosen ``checkpoints``: how many of the
    cell's traces have that outcome (``traces``, ``share``), and the paper's and the decoupled
    coefficient among them (mean over questions with its 95% bootstrap interval; ``_defined``:
    traces with it defined). Then one row per cell with ``outcome`` ``"all"``: the cell's mean
    over traces beside ``_implied_by_mix``, the mean it would have if each outcome's coefficient
    were the same in every cell given (its mean over all their traces) and only the cell's own
    mix of outcomes differed. Where the two agree, what sets a cell apart from the others is its
    accuracy, not its prefixes."""
    traces, _ = per_trace(records, alpha, min_checkpoints, checkpoints)
    pooled = {(out, name): traces.loc[traces["outcome"] == out, name].mean()
              for out in OUTCOMES for name in ("paper", "decoupled")}
    rows = []
    for key, g in _groups(traces):
        for out in OUTCOMES:
            h = g[g["outcome"] == out]
            row = {**key, "outcome": out, "traces": len(h), "share": len(h) / len(g)}
            for name in ("paper", "decoupled"):
                mean, lo, hi, _ = _mean_ci(h[name].to_numpy(), h["question_id"].to_numpy(), n_resamples, seed)
                row.update({name: mean, f"{name}_low": lo, f"{name}_high": hi,
                            f"{name}_defined": int(h[name].notna().sum())})
            rows.append(row)
        row = {**key, "outcome": "all", "traces": len(g), "share": 1.0}
        for name in ("paper", "decoupled"):
            defined = g[g[name].notna()]
            mix = defined["outcome"].value_counts(normalize=True)
            row[name] = float(defined[name].mean()) if len(defined) else np.nan
            row[f"{name}_implied_by_mix"] = (float(sum(share * pooled[(out, name)] for out, share in mix.items()))
                                             if len(defined) else np.nan)
            row[f"{name}_defined"] = len(defined)
        rows.append(row)
    return pd.DataFrame(rows)


def exact(records: pd.DataFrame, min_checkpoints: int = diagnostics.MIN_CHECKPOINTS,
          checkpoints: str = "all") -> pd.DataFrame:
    """Per trace, the exact coefficient of an oracle run: the correlation of the true
    ``H(A | x, z_<=t)`` and ``-log p(y* | x, z_<=t)`` across the chosen checkpoints."""
    records = estimators.select(records, checkpoints=checkpoints)
    traj = records.assign(entropy=records["true_entropy"], surprisal=-np.log(records["true_gold_prob"]))
    out = diagnostics.trace_alignment(traj, min_checkpoints)
    return out.rename(columns={"coefficient": "exact"})[diagnostics.TRACE + ["exact"]]


def validate(settings: dict | None = None, ms: Sequence[int] = (8, 16, 32, 64), n_questions: int = 60,
             n_traces: int = 4, stride: int = 5, seed: int = 0) -> pd.DataFrame:
    """Each estimator against the exact coefficient on oracle runs, at each ``M``, over all of a
    setting's traces and among its correct and its incorrect ones apart (``settings``: name ->
    :class:`siautil.oracle.OracleConfig`; default :data:`siautil.oracle.SETTINGS`). Per
    (setting, M, outcome, estimator): the mean over traces, the exact mean on the same traces (0
    where the truth is no information: the exact coefficient does not exist there), the bias,
    the spread (SD over traces) and the standard error of the mean. ``corrected`` is a
    cell-level number (``outcome`` ``"all"`` only), so it has no spread."""
    from . import oracle

    settings = settings or {name: make() for name, make in oracle.SETTINGS.items()}
    rows = []
    for name, cfg in settings.items():
        for m in ms:
            run = oracle.sample_run(cfg, n_questions=n_questions, n_traces=n_traces, n_continuations=m,
                                    stride=stride, seed=seed)
            traces, rel = per_trace(run)
            traces = traces.merge(exact(run), on=diagnostics.TRACE, how="left")
            informative = traces["exact"].notna().any()
            r_h, r_s = float(rel["r_H"].iloc[0]), float(rel["r_s"].iloc[0])
            for out, g in (("all", traces), ("correct", traces[traces["correct"]]),
                           ("incorrect", traces[~traces["correct"]])):
                for est in ("paper", "decoupled"):
                    ok = g[est].notna() & (g["exact"].notna() if informative else True)
                    v = g.loc[ok, est]
                    target = float(g.loc[ok, "exact"].mean()) if informative else 0.0
                    rows.append(dict(setting=name, m=m, outcome=out, estimator=est, mean=float(v.mean()),
                                     exact=target, bias=float(v.mean()) - target, spread=float(v.std()),
                                     se=float(stats.sem(v)) if len(v) > 1 else np.nan, traces=len(v),
                                     r_H=r_h, r_s=r_s))
            ok = traces["decoupled"].notna() & (traces["exact"].notna() if informative else True)
            corr = corrected(float(traces.loc[ok, "decoupled"].mean()), r_h, r_s)
            target = float(traces.loc[ok, "exact"].mean()) if informative else 0.0
            rows.append(dict(setting=name, m=m, outcome="all", estimator="corrected", mean=corr, exact=target,
                             bias=corr - target, spread=np.nan, se=np.nan, traces=int(ok.sum()), r_H=r_h, r_s=r_s))
    return pd.DataFrame(rows)
