"""What the paper leaves open: each choice it does not pin down, applied to the same stored
records, and what it changes in the three headline numbers.

The headline numbers of a cell are the Table 1 mean (over traces, as the paper), the Figure 1
end-point (the mean total gain ``Ĝ_T`` in nats of correct and of incorrect traces) and the
mid-trace AUC (:func:`siautil.diagnostics.auc_at_fraction`). :func:`table` recomputes them
under each alternative of each choice, one at a time, from the other choices' defaults;
:func:`flags` says in words where a choice flips a sign or halves a number.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import coefficient, diagnostics, estimators

#: The alternatives tried for each choice; the first of each is the book's default.
CHOICES = {
    "estimator": ("paper", "decoupled", "corrected"),
    "checkpoints": estimators.CHECKPOINTS,
    "extraction": ("strict-match", "flexible-extract"),
    "gold smoothing α": (0.5, 0.1, 1.0),
    "entropy estimator": ("plugin", "miller-madow"),
    "minimum checkpoints": (3, 2, 5),
}


def headline(records: pd.DataFrame, estimator: str = "paper", checkpoints: str = "all",
             extraction: str | None = None, alpha: float = estimators.DEFAULT_ALPHA,
             entropy: str = "plugin", min_checkpoints: int = diagnostics.MIN_CHECKPOINTS) -> pd.DataFrame:
    """The three headline numbers per cell under one set of choices."""
    records = estimators.select(records, extraction, checkpoints)
    traj = estimators.estimate(records, alpha=alpha, estimator=entropy)
    keys = diagnostics._group_keys(traj)
    if estimator == "paper":
        coefs = diagnostics.trace_alignment(traj, min_checkpoints)
        mean = coefs.groupby(keys, sort=False)["coefficient"].mean().rename("table 1 mean")
    else:  # means over traces too, as the paper's, so only the estimator changes
        tab = coefficient.table(records, alpha=alpha, n_resamples=0, min_checkpoints=min_checkpoints)
        column = "decoupled_trace_mean" if estimator == "decoupled" else estimator
        mean = tab.set_index(keys)[column].rename("table 1 mean")
    order = traj.sort_values(keys + diagnostics.TRACE + ["t"]).groupby(keys + diagnostics.TRACE, sort=False)
    ends = order.agg(correct=("correct", "first"), s0=("surprisal", "first"), sT=("surprisal", "last"))
    ends["gain"] = ends["s0"] - ends["sT"]
    gain = ends.reset_index().pivot_table(index=keys, columns="correct", values="gain", aggfunc="mean")
    gain = gain.rename(columns={True: "Ĝ_T correct", False: "Ĝ_T incorrect"})
    mid = diagnostics.auc_at_fraction(traj, 0.5).set_index(keys)["auc"].rename("mid-trace AUC")
    return pd.concat([mean, gain, mid], axis=1).reset_index()


def table(records: pd.DataFrame) -> pd.DataFrame:
    """:func:`headline` under every alternative of :data:`CHOICES`, one choice at a time."""
    frames = []
    for choice, values in CHOICES.items():
        for value in values:
            kw = {"estimator": dict(estimator=value),
                  "checkpoints": dict(checkpoints=value),
                  "extraction": dict(extraction=value),
                  "gold smoothing α": dict(alpha=value),
                  "entropy estimator": dict(entropy=value),
                  "minimum checkpoints": dict(min_checkpoints=value)}[choice]
            frames.append(headline(records, **kw).assign(choice=choice, value=str(value),
                                                         default=value == values[0]))
    out = pd.concat(frames, ignore_index=True)
    first = ["choice", "value"]
    return out[first + [c for c in out.columns if c not in first]]


def flags(tab: pd.DataFrame, columns=("table 1 mean", "mid-trace AUC")) -> list[str]:
    """Sentences naming every alternative that flips the sign of a headline number (the AUC
    around 0.5) or at least halves or doubles its distance from 0 (from 0.5), against the
    default of its choice in the same cell."""
    keys = [k for k in diagnostics.GROUP_KEYS if k in tab]
    out = []
    for (choice, *cell), g in tab.groupby(["choice"] + keys, sort=False):
        base = g[g["default"]].iloc[0]
        for _, row in g[~g["default"]].iterrows():
            for col in columns:
                centre = 0.5 if "AUC" in col else 0.0
                a, b = base[col] - centre, row[col] - centre
                if not (np.isfinite(a) and np.isfinite(b)) or max(abs(a), abs(b)) < 0.05:
                    continue
                what = ("flips the sign of" if np.sign(a) != np.sign(b) and min(abs(a), abs(b)) >= 0.02 else
                        "halves" if abs(b) <= abs(a) / 2 else "doubles" if abs(b) >= 2 * abs(a) else None)
                if what:
                    out.append(f"{' · '.join(map(str, cell[:2]))}: {choice} = {row['value']} {what} the {col} "
                               f"({base[col]:+.3f} → {row[col]:+.3f}).")
    return out


def rewrites_answer(records: pd.DataFrame) -> pd.DataFrame:
    """Per cell, the share of traces that write more than one distinct marked final answer
    (where the stop rules ``eos`` and ``answer`` give different traces), and how many traces."""
    from .tasks.extract import marked_numbers

    keys = [k for k in diagnostics.GROUP_KEYS if k in records]
    traces = records.drop_duplicates(keys + diagnostics.TRACE)
    rewrites = traces["trace_text"].map(lambda text: len(dict.fromkeys(marked_numbers(text))) > 1)
    return (traces.assign(rewrites=rewrites).groupby(keys, sort=False)
            .agg(traces=("rewrites", "size"), share_rewriting=("rewrites", "mean")).reset_index())
