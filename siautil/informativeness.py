"""What a trace's written steps determine, measured without the coefficient's artefacts and
validated on the oracle, each beside its null check.

Traces and continuations are drawn from one sampler, so along a trace ``p_t(y*) = p(y* | x,
z_<=t)`` is a martingale (:func:`siautil.oracle.martingale_error` checks it exactly): averaged
over the traces, a prefix neither raises nor lowers the gold answer's probability, and mean
``p̂_t(y*)`` stays at the question's accuracy from ``t = 0`` to the end (:func:`martingale`). So no
measure of the paper's kind can show prefixes making the gold answer *more likely on average*;
what steps can do is sort the traces, fixing each trace's own answer before it is written, so
that the prefix already tells whether the trace will end right. Measured here:

* **outcome association** ``D_t`` (:func:`outcome_association`): within a question, mean
  ``p̂_t(y*)`` of the traces that end right minus that of those that do not, averaged over the
  questions that have both. The continuations and the trace's own completion are independent
  given the prefix, so ``D̂_t`` is unbiased for the same quantity at the exact ``p_t`` at any
  ``M``; at ``t = 0`` every trace of a question shares the (empty) prefix, so ``D_0 = 0``
  exactly: the null check. ``D`` at each trace's last checkpoint before its answer says how far
  the written steps already fix the trace's outcome.
* **resolved share** ``R`` (:func:`resolved_share`): ``1 - E[H(A | x, z_pre)] / H(A | x)``, the
  share of the model's uncertainty about its own answer that the steps resolve before the
  answer is written (Proposition 1: ``I(A; Z_<=t | x) / H(A | x)``), from Miller–Madow
  entropies (:data:`ENTROPY`) at the same ``M`` on both sides.
* **accuracy against chance** (:func:`accuracy`): whether the answers the steps lead to are
  the gold ones more often than a guess.
* **step effect** (:func:`step_effect`): an intervention, where a run with the steps' content
  randomised and their format kept exists (``shuffle="steps"``): how much ``p̂_t(y*)`` at
  checkpoints before the answer falls when the written steps are replaced by others.

What each can and cannot tell apart is measured on the oracle's four settings (aligned,
misaligned, no information, guesser) by :func:`validate`, and said by :func:`what_it_tells`.
The definitions are written out in the book's formulas page ("What this book adds").
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from . import coefficient, diagnostics, estimators

#: The positions the outcome association and the resolved share compare: the empty prefix
#: (every trace of a question shares it) and each trace's last checkpoint before its answer.
POSITIONS = ("start", "before answer")
#: The entropy estimator of the resolved share: its bias falls with the number of answer
#: classes a distribution has, which differs between the start and the end of a trace, and the
#: Miller–Madow term removes most of it (:func:`validate` measures what remains).
ENTROPY = "miller-madow"


def _cells(records: pd.DataFrame) -> list[str]:
    return [k for k in diagnostics.GROUP_KEYS if k in records]


def _bootstrap(per_q: np.ndarray, n_resamples: int, seed: int) -> tuple[float, float]:
    if not n_resamples:
        return np.nan, np.nan
    return diagnostics._bootstrap_mean(per_q, n_resamples, seed)


def _probabilities(records: pd.DataFrame) -> pd.DataFrame:
    """The records' keys with the raw ``p̂_t(y*) = hits / M`` (unbiased, no smoothing) and
    the plug-in entropy, and the exact values where an oracle run carries them."""
    ac = estimators.count_answers(records["answers"], records["gold"])
    keys = _cells(records) + ["question_id", "trace", "t", "T", "correct"]
    out = records[keys].reset_index(drop=True).copy()
    out["p"] = ac.hits / np.maximum(ac.m, 1)
    out["entropy"] = estimators.entropy_from_counts(ac, ENTROPY)
    answers = [list(row) for row in records["answers"]]
    out["none"] = [float(np.mean([a is None for a in row])) for row in answers]
    if "trace_answer" in records:
        out["own"] = [float(np.mean([a == own for a in row])) for row, own in zip(answers, records["trace_answer"])]
    for exact, name in (("true_gold_prob", "p_exact"), ("true_entropy", "entropy_exact"), ("true_own_prob", "own_exact")):
        if exact in records:
            out[name] = records[exact].to_numpy()
    return out


def _positions(records: pd.DataFrame) -> pd.DataFrame:
    """Per trace, its record at ``t = 0`` and at its last checkpoint before its answer
    (column ``position``, :data:`POSITIONS`). A trace whose every checkpoint after ``t = 0``
    holds its answer has only the first."""
    probs = _probabilities(records)
    probs["before"] = estimators.before_answer(records)
    trace = _cells(probs) + ["question_id", "trace"]
    start = probs[probs["t"] == 0].assign(position="start")
    pre = probs[probs["before"] & (probs["t"] > 0)].sort_values(trace + ["t"]).groupby(trace, sort=False).tail(1)
    return pd.concat([start, pre.assign(position="before answer")], ignore_index=True)


# ------------------------------------------------------------------------- the martingale


def martingale(records: pd.DataFrame, n_resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Mean ``p̂_t(y*)`` by prefix length ``t`` (tokens), per cell, over questions with its 95%
    bootstrap interval, and its change since ``t = 0`` with its interval.

    A trace is followed to its end: at a length past it, its value is its outcome (1 if it
    ended right, 0 if not), the stopped process, so every trace counts at every length and the
    mean stays a martingale's (constant in expectation; the last row, ``t`` = ``"end"``, is the
    accuracy itself). Lengths are the multiples of the run's stride that some trace reaches.
    ``running`` is the share of traces still writing at ``t``; with an oracle run, ``exact``
    is the same mean of the true ``p_t(y*)``. Only runs whose continuations see the trace's own
    prefix are martingales (not shuffled-prefix runs)."""
    probs = _probabilities(records)
    trace = _cells(probs) + ["question_id", "trace"]
    rows = []
    for key, g in (probs.groupby(_cells(probs), sort=False) if _cells(probs) else [((), probs)]):
        key = dict(zip(_cells(probs), key if isinstance(key, tuple) else (key,)))
        inner = g.loc[(g["t"] > 0) & (g["t"] < g["T"]), "t"].to_numpy(dtype=np.int64)
        stride = int(np.gcd.reduce(inner)) if len(inner) else int(g["T"].max()) or 1  # t = T lies off the stride
        grid = list(range(0, int(g["T"].max()) + 1, stride))
        wide = g.pivot_table(index=trace, columns="t", values="p", aggfunc="first")
        outcome = g.groupby(trace, sort=False)["correct"].first().reindex(wide.index).astype(float)
        T = g.groupby(trace, sort=False)["T"].first().reindex(wide.index)
        exact = (g.pivot_table(index=trace, columns="t", values="p_exact", aggfunc="first")
                 if "p_exact" in g else None)
        question = wide.index.get_level_values("question_id")
        base = None
        for t in grid + ["end"]:
            if t == "end":
                value, running, truth = outcome, 0.0, outcome
            else:
                value = wide[t].where(T >= t, outcome) if t in wide else outcome
                running = float((T >= t).mean())
                truth = (exact[t].where(T >= t, outcome) if exact is not None and t in exact else None)
            per_q = value.groupby(question).mean().to_numpy()
            base = per_q if base is None else base
            lo, hi = _bootstrap(per_q, n_resamples, seed)
            dlo, dhi = _bootstrap(per_q - base, n_resamples, seed)
            row = {**key, "t": t, "mean": float(per_q.mean()), "low": lo, "high": hi,
                   "change": float((per_q - base).mean()), "change_low": dlo, "change_high": dhi,
                   "running": running, "questions": len(per_q)}
            if truth is not None:
                row["exact"] = float(truth.groupby(question).mean().mean())
            rows.append(row)
    return pd.DataFrame(rows)


def martingale_summary(curve: pd.DataFrame) -> pd.DataFrame:
    """Per cell of :func:`martingale`: mean ``p̂_0(y*)``, the accuracy, and their difference (the
    change from ``t = 0`` to the end) with its 95% interval and whether that interval holds 0, as
    it should where the mean is constant; and the largest change from ``t = 0`` at any length
    (the lengths share their traces, so one drift shows at many of them)."""
    keys = [c for c in curve.columns if c in diagnostics.GROUP_KEYS]
    rows = []
    for key, g in (curve.groupby(keys, sort=False) if keys else [((), curve)]):
        key = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        end = g[g["t"] == "end"].iloc[0]
        inner = g[g["t"] != "end"]
        worst = inner.loc[inner["change"].abs().idxmax()]
        rows.append({**key, "p_0": float(g["mean"].iloc[0]), "accuracy": float(end["mean"]),
                     "change": float(end["change"]), "change_low": float(end["change_low"]),
                     "change_high": float(end["change_high"]),
                     "holds_0": bool(end["change_low"] <= 0 <= end["change_high"]),
                     "largest_change": float(worst["change"]), "at_t": worst["t"]})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------- outcome association


def outcome_association(records: pd.DataFrame, n_resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """``D`` per cell and position (:data:`POSITIONS`): within each question that has traces of
    both outcomes, mean ``p̂(y*)`` of those that end right minus mean of those that do not, at
    the trace's empty prefix and at its last checkpoint before its answer; averaged over those
    questions, with a 95% bootstrap interval over them (``D``, ``D_low``, ``D_high``, and
    ``questions``: how many questions have both outcomes). With an oracle run, ``exact`` is the
    same difference of the true ``p(y*)`` on the same traces. ``t_mean``: the mean checkpoint
    the position stands at."""
    pos = _positions(records)
    keys = _cells(pos) + ["position"]
    rows = []
    for key, g in pos.groupby(keys, sort=False):
        key = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        by_q = g.groupby(["question_id", "correct"])
        means = by_q["p"].mean().unstack("correct")
        mixed = means.dropna() if {True, False} <= set(means.columns) else means.iloc[:0]
        row = {**key, "t_mean": float(g["t"].mean()), "traces": len(g), "questions": len(mixed)}
        if len(mixed):
            d = (mixed[True] - mixed[False]).to_numpy()
            lo, hi = _bootstrap(d, n_resamples, seed) if len(d) > 1 else (np.nan, np.nan)
            row.update(D=float(d.mean()), D_low=lo, D_high=hi)
            if "p_exact" in g:
                ex = by_q["p_exact"].mean().unstack("correct").loc[mixed.index]
                row["exact"] = float((ex[True] - ex[False]).mean())
        else:
            row.update(D=np.nan, D_low=np.nan, D_high=np.nan)
        rows.append(row)
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------- resolved share


def resolved_share(records: pd.DataFrame, n_resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """``R = 1 - E[Ĥ(A | x, z_pre)] / E[Ĥ(A | x)]`` per cell: the share of the model's entropy
    about its own answer that each trace's steps resolve by its last checkpoint before its
    answer (``H_start``, ``H_before``: the mean :data:`ENTROPY` estimates over questions, each question's
    traces averaged first), with a 95% bootstrap interval over questions (the ratio of the
    resampled means). Questions whose start has no entropy (every continuation agrees) resolve
    nothing and count as they are. With an oracle run, ``exact`` is the same ratio of the true
    entropies."""
    pos = _positions(records)
    rows = []
    for key, g in (pos.groupby(_cells(pos), sort=False) if _cells(pos) else [((), pos)]):
        key = dict(zip(_cells(pos), key if isinstance(key, tuple) else (key,)))
        wide = g.pivot_table(index="question_id", columns="position", values="entropy", aggfunc="mean").dropna()
        row = {**key, "questions": len(wide)}
        if not len(wide) or "before answer" not in wide:
            rows.append({**row, "R": np.nan, "R_low": np.nan, "R_high": np.nan})
            continue
        h0, h1 = wide["start"].to_numpy(), wide["before answer"].to_numpy()
        row.update(H_start=float(h0.mean()), H_before=float(h1.mean()),
                   R=float(1 - h1.mean() / h0.mean()) if h0.mean() > 0 else np.nan)
        if n_resamples and len(wide) > 1 and h0.mean() > 0:
            # a resample whose starts all have no entropy resolves nothing: 1 - 0/0 is read as 0
            res = stats.bootstrap((h0, h1), lambda a, b: 1 - np.mean(b) / np.mean(a) if np.mean(a) > 0 else 0.0,
                                  paired=True,
                                  n_resamples=n_resamples, method="percentile", random_state=seed,
                                  vectorized=False)
            row.update(R_low=float(res.confidence_interval.low), R_high=float(res.confidence_interval.high))
        else:
            row.update(R_low=np.nan, R_high=np.nan)
        if "entropy_exact" in g:
            ex = g.pivot_table(index="question_id", columns="position", values="entropy_exact", aggfunc="mean")
            ex = ex.loc[wide.index]
            row["exact"] = float(1 - ex["before answer"].mean() / ex["start"].mean())
        rows.append(row)
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------- accuracy


def accuracy(records: pd.DataFrame, chance: float | dict | None = None, n_resamples: int = 1000,
             seed: int = 0) -> pd.DataFrame:
    """Per cell: the share of traces that end right (mean over questions, each question's
    traces averaged first, with a 95% bootstrap interval), the share with an answer read at
    all, the accuracy among answered traces (with a 95% bootstrap interval over questions), and
    ``chance``: what guessing uniformly among the task's answers gets (a number, or a dict from
    dataset to number; ``None``: the task's own :meth:`~siautil.tasks.Task.chance` for the
    records' questions, where it has one)."""
    keys = _cells(records)
    traces = records.drop_duplicates(keys + ["question_id", "trace"])
    rows = []
    for key, g in (traces.groupby(keys, sort=False) if keys else [((), traces)]):
        key = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        per_q = g.groupby("question_id")["correct"].mean().to_numpy(dtype=float)
        lo, hi = _bootstrap(per_q, n_resamples, seed)
        answered = g["trace_answer"].notna() if "trace_answer" in g else pd.Series(True, index=g.index)
        level = chance.get(key.get("dataset")) if isinstance(chance, dict) else chance
        if level is None and "dataset" in g:
            level = _chance(g["dataset"].iloc[0], g["question_id"].unique())
        sums = g.assign(answered=answered).groupby("question_id")[["correct", "answered"]].sum()
        sums = sums[sums["answered"] > 0]
        among = float(sums["correct"].sum() / sums["answered"].sum()) if len(sums) else np.nan
        a_lo = a_hi = np.nan
        if n_resamples and len(sums) > 1 and np.ptp(sums["correct"] / sums["answered"]) > 0:
            res = stats.bootstrap((sums["correct"].to_numpy(float), sums["answered"].to_numpy(float)),
                                  lambda c, a: np.sum(c) / np.sum(a), paired=True, vectorized=False,
                                  n_resamples=n_resamples, method="percentile", random_state=seed)
            a_lo, a_hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
        rows.append({**key, "accuracy": float(per_q.mean()), "accuracy_low": lo, "accuracy_high": hi,
                     "answered": float(answered.mean()), "accuracy_answered": among,
                     "accuracy_answered_low": a_lo, "accuracy_answered_high": a_hi,
                     "chance": level, "traces": len(g), "questions": len(per_q)})
    return pd.DataFrame(rows)


def _chance(dataset: str, question_ids) -> float | None:
    from .tasks import get

    task = get(dataset)
    wanted = set(question_ids)
    levels = [x for x in (task.chance(q) for q in task.load() if q.id in wanted) if x is not None]
    return float(np.mean(levels)) if levels else None


# ------------------------------------------------------------------------- step effect


def step_effect(original: pd.DataFrame, shuffled: pd.DataFrame, n_resamples: int = 1000,
                seed: int = 0) -> pd.DataFrame:
    """Per cell, at each trace's last checkpoint before its answer: how likely the trace's own
    final answer is from the prefix as written (``own``) and from the same prefix with its
    steps shuffled, format kept (``own_shuffled``: a run of the same model, questions and traces
    sampled with ``shuffle="steps"``), and the drop between them (mean over questions with its
    95% bootstrap interval, traces with an answer only); the gold answer's probability both ways
    (``p``, ``p_shuffled``); and the null-answer share both ways. A drop says the answer the
    trace reached depends on what its steps say; few null answers say the shuffle kept the
    format, so the drop is not the format's. With oracle runs, ``drop_exact`` is the same drop
    of the true probabilities."""
    a = _positions(original)
    a = a[(a["position"] == "before answer")]
    b = _probabilities(shuffled)
    keys = [k for k in ("model", "dataset") if k in a and k in b] + ["question_id", "trace", "t"]
    extra = [c for c in ("own", "own_exact") if c in b]
    both = a.merge(b[keys + ["p", "none"] + extra], on=keys, suffixes=("", "_shuffled"))
    if "own" in both:
        answered = original.drop_duplicates(["question_id", "trace"]).set_index(["question_id", "trace"])
        answered = answered.loc[pd.MultiIndex.from_frame(both[["question_id", "trace"]]), "trace_answer"]
        both = both[answered.notna().to_numpy()]
    cell = [k for k in ("model", "dataset") if k in both]
    rows = []
    for key, g in (both.groupby(cell, sort=False) if cell else [((), both)]):
        key = dict(zip(cell, key if isinstance(key, tuple) else (key,)))
        cols = ["p", "p_shuffled", "none", "none_shuffled"] + [c for c in ("own", "own_shuffled", "own_exact",
                                                                           "own_exact_shuffled") if c in g]
        per_q = g.groupby("question_id")[cols].mean()
        row = {**key, **{c: float(per_q[c].mean()) for c in cols}, "questions": len(per_q), "traces": len(g)}
        if "own" in per_q:
            drop = (per_q["own"] - per_q["own_shuffled"]).to_numpy()
            lo, hi = _bootstrap(drop, n_resamples, seed)
            row.update(drop=float(drop.mean()), drop_low=lo, drop_high=hi)
            if "own_exact" in per_q:
                row["drop_exact"] = float((per_q["own_exact"] - per_q["own_exact_shuffled"]).mean())
        rows.append(row)
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------- validation


def measures(records: pd.DataFrame, steps: pd.DataFrame | None = None, chance: float | None = None,
             n_resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Every measure of this module and the coefficient's, per cell, in one wide table on the
    checkpoints before the answer: accuracy against chance, ``D`` at the start (the null check)
    and before the answer, ``R``, the paper's and the decoupled coefficient among correct and
    incorrect traces (:func:`siautil.coefficient.by_outcome`), and with ``steps`` (the same
    cells sampled with ``shuffle="steps"``) the step effect (``step_drop``, ``step_null``: the
    null share of the shuffled continuations; empty without ``steps``, so a table names its
    columns whether or not a steps run exists). With an oracle run, each measure's exact value
    beside it (``_exact``)."""
    if not _cells(records):
        steps = steps.assign(model="all") if steps is not None else None
        return measures(records.assign(model="all"), steps, chance, n_resamples, seed).drop(columns=["model"])
    cells = _cells(records)
    acc = accuracy(records, chance, n_resamples, seed)
    d = outcome_association(records, n_resamples, seed)
    r = resolved_share(records, n_resamples, seed)
    coef = coefficient.by_outcome(records, n_resamples=n_resamples, seed=seed, checkpoints="before answer")
    out = acc[cells + ["accuracy", "accuracy_low", "accuracy_high", "chance"]]
    for position, name in (("start", "D_start"), ("before answer", "D_before")):
        part = d[d["position"] == position].drop(columns=["position"])
        part = part.rename(columns={"D": name, "D_low": f"{name}_low", "D_high": f"{name}_high",
                                    "exact": f"{name}_exact", "questions": f"{name}_questions"})
        cols = [c for c in part.columns if c.startswith(name)]
        out = out.merge(part[cells + cols], on=cells, how="left")
    r = r.rename(columns={"exact": "R_exact"})
    cols = [c for c in ("R", "R_low", "R_high", "R_exact") if c in r]
    out = out.merge(r[cells + cols], on=cells, how="left")
    for outcome in ("correct", "incorrect"):
        part = coef[coef["outcome"] == outcome]
        part = part[cells + ["paper", "decoupled"]].rename(
            columns={"paper": f"paper_{outcome}", "decoupled": f"decoupled_{outcome}"})
        out = out.merge(part, on=cells, how="left")
    if steps is not None and len(steps):
        effect = step_effect(records, steps, n_resamples, seed)
        cell = [k for k in ("model", "dataset") if k in effect]
        effect = effect.rename(columns={"drop": "step_drop", "drop_low": "step_drop_low", "drop_high": "step_drop_high",
                                        "drop_exact": "step_drop_exact", "none_shuffled": "step_null"})
        keep = [c for c in ("step_drop", "step_drop_low", "step_drop_high", "step_drop_exact", "step_null") if c in effect]
        out = out.merge(effect[cell + keep], on=cell, how="left")
    else:
        out = out.assign(step_drop=np.nan, step_drop_low=np.nan, step_drop_high=np.nan, step_null=np.nan)
    return out


def validate(settings: dict | None = None, ms: Sequence[int] = (4, 8, 16, 64), n_questions: int = 60,
             n_traces: int = 4, stride: int = 5, seed: int = 0, n_resamples: int = 500) -> pd.DataFrame:
    """:func:`measures` on oracle runs of each setting (default :data:`siautil.oracle.SETTINGS`)
    at each number of continuations ``M``, and :func:`step_effect` against the same run with its
    steps shuffled (columns ``step_drop``, ...), beside the exact values; one row per (setting,
    ``M``)."""
    from . import oracle

    settings = settings or {name: make() for name, make in oracle.SETTINGS.items()}
    rows = []
    for name, cfg in settings.items():
        for m in ms:
            kw = dict(n_questions=n_questions, n_traces=n_traces, n_continuations=m, stride=stride, seed=seed)
            run = oracle.sample_run(cfg, **kw)
            steps = oracle.sample_run(cfg, shuffle="steps", **kw)
            rows.append(measures(run, steps, 1 / cfg.n_answers, n_resamples, seed).assign(setting=name, m=m))
    out = pd.concat(rows, ignore_index=True)
    first = ["setting", "m"]
    return out[first + [c for c in out.columns if c not in first]]


def _within(table: pd.DataFrame, name: str, z: float = 2.5) -> pd.Series:
    """Whether each row's estimate of ``name`` lies within ``z`` standard errors of its exact
    value (the standard error read off the 95% interval's width)."""
    se = (table[f"{name}_high"] - table[f"{name}_low"]) / (2 * 1.96)
    return (table[name] - table[f"{name}_exact"]).abs() <= z * se


def _range(values: pd.Series) -> str:
    lo, hi = float(values.min()), float(values.max())
    return f"{lo:+.3f}" if np.isclose(lo, hi, atol=5e-4) else f"{lo:+.3f} to {hi:+.3f}"


def what_it_tells(table: pd.DataFrame) -> list[str]:
    """What each measure can and cannot tell apart, as sentences computed from :func:`validate`'s
    table: the exact value of each measure in each setting (what it *could* tell apart), whether
    the estimates lie within 2.5 standard errors of it at every ``M`` (whether the estimator
    does), and the null check's intervals. A validation that came out otherwise would say so."""
    exact = table.groupby("setting", sort=False)
    n = len(table)
    out = []
    paper = table["paper_correct"] > table["paper_incorrect"]
    out.append(f"The paper's coefficient among correct traces exceeds that among incorrect ones in {int(paper.sum())} "
               f"of {n} oracle runs (setting × M): it reads each trace's outcome, so a cell's mean follows its mix of "
               "outcomes; where the prefixes carry nothing (no information) it reads "
               f"{_range(table.loc[table.setting == 'no information', 'paper_correct'])} among correct traces."
               if "no information" in set(table["setting"]) else "")
    contains = (table["D_start_low"] <= 0) & (0 <= table["D_start_high"])
    out.append(f"The null check, D at the empty prefix (exactly 0 by construction), has a 95% interval containing 0 "
               f"in {int(contains.sum())} of {n} runs (about one in twenty misses by chance).")
    for name, what in (("D_before", "D before the answer"), ("R", "R")):
        values = "; ".join(f"{setting} {_range(g[f'{name}_exact'])}" for setting, g in exact)
        ok = _within(table, name)
        out.append(f"{what}, exact: {values}. Its estimate lies within 2.5 standard errors of the exact value in "
                   f"{int(ok.sum())} of {n} runs"
                   + (f" (not in {', '.join(f'{r.setting} at M = {r.m}' for r in table[~ok].itertuples())})"
                      if (~ok).any() else "") + ".")
    if "step_drop" in table:
        values = "; ".join(f"{setting} {_range(g['step_drop_exact'])}" for setting, g in exact)
        ok = _within(table.rename(columns=lambda c: c.removeprefix("step_")), "drop")
        out.append(f"The step effect (the drop in the trace's own answer's probability when its steps are "
                   f"shuffled), exact: {values}. Its estimate lies within 2.5 standard errors of the exact value in "
                   f"{int(ok.sum())} of {n} runs.")
    above = table["accuracy_low"] > table["chance"]
    below = table["accuracy_high"] < table["chance"]
    fixes = table["D_before_low"] > 0
    sets = lambda mask: ", ".join(dict.fromkeys(table.loc[mask, "setting"])) or "none"  # noqa: E731
    out.append(f"So D, R and the step effect tell steps that fix the trace's own answer ({sets(fixes)}) from steps "
               f"that fix nothing ({sets(~fixes)}), and none of them says whether the answer fixed is gold.")
    out.append(f"Accuracy says that: above chance in {sets(above)}, below it in {sets(below)}, its interval holding "
               f"chance in {sets(~above & ~below)}. Steps that fix the answer and lead to gold more often than chance, "
               f"both measured: {sets(above & fixes)}.")
    return [s for s in out if s]


def _interval(row: pd.Series, name: str, signed: bool = True) -> str:
    fmt = "{:+.2f}" if signed else "{:.2f}"
    lo, hi = row.get(f"{name}_low", np.nan), row.get(f"{name}_high", np.nan)
    value = fmt.format(row[name])
    return f"{value} [{fmt.format(lo)}, {fmt.format(hi)}]" if np.isfinite(lo) and np.isfinite(hi) else value


def _reading(row: pd.Series, name: str) -> str:
    """Whether ``name``'s interval lies above 0, below 0, or holds it (the measure cannot tell)."""
    lo, hi = row.get(f"{name}_low", np.nan), row.get(f"{name}_high", np.nan)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "no interval"
    return "above 0" if lo > 0 else "below 0" if hi < 0 else "holds 0: cannot tell"


def _null_check(row: pd.Series) -> str:
    reading = _reading(row, "D_start")
    if reading == "no interval":
        return "no interval: too few questions with traces of both outcomes"
    if reading.startswith("holds"):
        return "holds 0, as it must"
    return "misses 0: the null check fails here, as a 95% interval does by chance one time in twenty"


def martingale_check(summary: pd.DataFrame) -> str:
    """One sentence from :func:`martingale_summary`: in how many cells the change from the empty
    prefix to the end holds 0, and each cell where it does not, with its interval."""
    label = lambda r: " on ".join(str(r[k]) for k in ("model", "dataset") if k in r)  # noqa: E731
    misses = summary[~summary["holds_0"]]
    text = f"The change from the empty prefix to the end holds 0 in {int(summary['holds_0'].sum())} of {len(summary)} cells"
    if misses.empty:
        return text + ", as a martingale's should."
    listed = "; ".join(f"{label(r)}: {r['change']:+.3f} [{r['change_low']:+.3f}, {r['change_high']:+.3f}]"
                       for _, r in misses.iterrows())
    return (text + f". Where it does not ({listed}), either a 95% interval missed, as it does by chance one time in "
            "twenty, or the traces and their continuations were not sampled alike.")


def describe(table: pd.DataFrame) -> list[str]:
    """One sentence per cell of :func:`measures` (with :func:`step_effect`'s ``step_drop`` where
    present): accuracy against chance, the null check, what the steps determine with each
    interval and what it says, so a chapter's conclusions come from its own run."""
    out = []
    for _, row in table.iterrows():
        cell = " on ".join(str(row[k]) for k in ("model", "dataset") if k in row and pd.notna(row[k]))
        chance = row.get("chance")
        acc = _interval(row, "accuracy", False)
        against = ("" if chance is None or not np.isfinite(chance) else
                   f" against chance {chance:.2f} ({'above' if row['accuracy_low'] > chance else 'below' if row['accuracy_high'] < chance else 'holds'} chance)")
        parts = [f"{cell}: accuracy {acc}{against}",
                 f"null check D at the empty prefix {_interval(row, 'D_start')} ({_null_check(row)})",
                 (f"D before the answer {_interval(row, 'D_before')} over {int(row['D_before_questions'])} questions "
                  f"with both outcomes ({_reading(row, 'D_before')})" if pd.notna(row.get("D_before")) else
                  "D before the answer: no question has traces of both outcomes"),
                 f"R {_interval(row, 'R')} ({_reading(row, 'R')})"]
        if "step_drop" in row and pd.notna(row["step_drop"]):
            parts.append(f"step effect {_interval(row, 'step_drop')} ({_reading(row, 'step_drop')})")
        out.append("; ".join(parts))
    return out
