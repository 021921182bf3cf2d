"""The controlled experiment's table: per toy training regime, over its seeds, what the models
can do (competence) beside what the coefficient and the signatures say (the training chapter).

Every number is first computed per model (one regime, one training seed) and then summarised
per regime as the mean over seeds with the spread between them (smallest and largest seed), so
training noise is visible beside the bootstrap intervals within each model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import coefficient, diagnostics, estimators, models, toy


def regime_and_seed(model: str) -> tuple[str, int]:
    """``toy-<regime>[-s<k>]`` (:func:`siautil.models.toy_name`) -> ``(regime, seed)``."""
    for regime in sorted(models.TOY_REGIMES, key=len, reverse=True):
        for seed in models.TOY_SEEDS:
            if model == models.toy_name(regime, seed):
                return regime, seed
    raise ValueError(f"{model!r} is not a toy model; names look like {models.toy_name('sft', 1)!r}")


def per_model(records: pd.DataFrame, shuffled: pd.DataFrame | None = None, alpha: float = estimators.DEFAULT_ALPHA,
              n_resamples: int = 1000, seed: int = 0, training: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per toy model of ``records``: its regime and seed; competence read from its traces
    (:func:`siautil.toy.competence`: accuracy at the run's sampling setting, step accuracy,
    faithfulness); how much its final answers depend on what its steps imply
    (:func:`siautil.toy.answer_dependence`, Cramér's V); with ``training``
    (:func:`siautil.toy.training_report`), its accuracy at temperature 1 on the runs' questions;
    the paper's coefficient, the decoupled one and the excess over the
    no-information baseline with their 95% bootstrap intervals over questions
    (:func:`siautil.coefficient.table`); the Figure 1 summary (the curve of
    :func:`siautil.diagnostics.cumulative_gain` at ``t = T``: mean total gain ``Ĝ_T`` over
    questions, of correct and of incorrect traces, nats); the Figure 2 summary (mid-trace AUC of ``-Ĥ_t`` for
    correctness); and, with ``shuffled`` records, the paper's coefficient under shuffled prefixes."""
    competence = toy.competence(records.assign(shuffled=False)).drop(columns=["shuffled"])
    estimates = coefficient.table(records, alpha=alpha, n_resamples=n_resamples, seed=seed)
    keep = ["model"] + [f"{e}{s}" for e in ("paper", "decoupled", "excess") for s in ("", " low", " high")]
    out = competence.merge(estimates[keep + ["paper defined"]], on="model")
    traces = records[["model", "question_id", "trace", "trace_text", "trace_answer"]]
    dependence = toy.answer_dependence(traces)[["model", "cramér's V"]]
    out = out.merge(dependence.rename(columns={"cramér's V": "answer on steps (V)"}), on="model", how="left")
    traj = estimators.estimate(records, alpha=alpha)
    curves, _ = diagnostics.cumulative_gain(traj, n_resamples=n_resamples, seed=seed, alpha=alpha)
    end = curves[(curves["measure"] == "gain") & np.isclose(curves["pos"], 1.0)]  # Figure 1 at t = T
    gain = (end.groupby(["model", "correct"])["mean"].first().unstack("correct")
            .rename(columns={True: "total gain (correct)", False: "total gain (incorrect)"}))
    out = out.merge(gain, left_on="model", right_index=True, how="left")
    auc = diagnostics.auc_at_fraction(traj, 0.5)[["model", "auc"]].rename(columns={"auc": "mid-trace AUC"})
    out = out.merge(auc, on="model", how="left")
    if shuffled is not None and len(shuffled):
        sh = coefficient.table(shuffled, alpha=alpha, n_resamples=n_resamples, seed=seed)
        out = out.merge(sh[["model", "paper"]].rename(columns={"paper": "paper (shuffled prefixes)"}),
                        on="model", how="left")
    out.insert(1, "regime", [regime_and_seed(m)[0] for m in out["model"]])
    out.insert(2, "seed", [regime_and_seed(m)[1] for m in out["model"]])
    if training is not None:
        at_one = training[["regime", "seed", "accuracy (runs' questions)"]]
        out = out.merge(at_one.rename(columns={"accuracy (runs' questions)": "accuracy (temperature 1)"}),
                        on=["regime", "seed"], how="left")
        out.insert(4, "accuracy (temperature 1)", out.pop("accuracy (temperature 1)"))
    return out


#: The columns :func:`by_regime` summarises over seeds.
SUMMARISED = ("accuracy", "accuracy (temperature 1)", "step accuracy", "faithfulness", "answer on steps (V)",
              "paper", "decoupled", "excess", "paper (shuffled prefixes)", "total gain (correct)",
              "total gain (incorrect)", "mid-trace AUC")


def by_regime(models_table: pd.DataFrame) -> pd.DataFrame:
    """:func:`per_model` summarised per regime: for each measure the mean over seeds and the
    smallest and largest seed's value (``min``/``max``), and how many seeds there are."""
    cols = [c for c in SUMMARISED if c in models_table]
    g = models_table.groupby("regime", sort=False)
    out = pd.concat({"mean": g[cols].mean(), "min": g[cols].min(), "max": g[cols].max()}, axis=1)
    out = out.swaplevel(axis=1)[[(c, s) for c in cols for s in ("mean", "min", "max")]]
    out.insert(0, ("seeds", ""), g["seed"].nunique())
    order = [r for r in models.TOY_REGIMES if r in out.index]
    return out.loc[order]


def _count(g: pd.DataFrame, column: str) -> tuple[int, int]:
    """In how many of a regime's seeds ``column``'s bootstrap interval lies above 0, of how many."""
    return int((g[f"{column} low"] > 0).sum()), len(g)


def _share(k: int, n: int) -> str:
    return "every seed" if k == n else "no seed" if k == 0 else f"{k} of {n} seeds"


def findings(models_table: pd.DataFrame) -> list[str]:
    """What the table says, as sentences computed from it (so a chapter's prose cannot go stale):
    per regime, in how many seeds the decoupled coefficient's interval lies above 0 (prefixes
    inform the answer) and the paper's coefficient beside it; whether accuracy predicts the
    decoupled coefficient across models (Spearman's rank correlation, ``scipy.stats``); and,
    where the regimes are present, the answers to the experiment's questions: does SFT make
    prefixes informative where base training does not (the paper's claim), does a correctness
    reward alone (RL from base), and does the paper's same-sample coefficient read the accurate
    but uninformative control as aligned."""
    from scipy import stats

    out = []
    groups = dict(tuple(models_table.groupby("regime", sort=False)))
    for regime, g in groups.items():
        informative = _count(g, "decoupled")[0]
        baseline = (f"; excess over the no-information baseline {g['excess'].mean():+.3f}, its interval above 0 "
                    f"in {_count(g, 'excess')[0]} of {len(g)} seeds") if "excess low" in g else ""
        out.append(f"{regime}: decoupled interval above 0 in {informative} of {len(g)} seeds "
                   f"(decoupled {g['decoupled'].mean():+.3f}, seeds {g['decoupled'].min():+.3f} to "
                   f"{g['decoupled'].max():+.3f}); paper's coefficient {g['paper'].mean():+.3f}{baseline}; "
                   f"accuracy at the runs' sampling setting {g['accuracy'].mean():.3f}")
    both = models_table.dropna(subset=["accuracy", "decoupled"])
    if len(both) >= 3:
        rho = stats.spearmanr(both["accuracy"], both["decoupled"])
        paper = stats.spearmanr(both["accuracy"], both["paper"], nan_policy="omit")
        out.append(f"across {len(both)} models, Spearman's rank correlation with accuracy: decoupled "
                   f"{rho.statistic:+.3f} (p = {rho.pvalue:.3g}), paper's coefficient {paper.statistic:+.3f} "
                   f"(p = {paper.pvalue:.3g})")

    def excess(*regimes_: str) -> str:
        """How many seeds of each regime have their excess interval above 0 (empty without it)."""
        if "excess low" not in models_table:
            return ""
        counts = " and ".join(f"{_share(*_count(groups[r], 'excess'))} of {r}" for r in regimes_)
        return f"; by the excess over the no-information baseline, above 0 in {counts}"

    if "sft" in groups and "base" in groups and "decoupled low" in models_table:
        sft, base = _count(groups["sft"], "decoupled"), _count(groups["base"], "decoupled")
        agrees = sft[0] == sft[1] and base[0] == 0
        below = int((groups["base"]["decoupled high"] < 0).sum()) if "decoupled high" in models_table else 0
        against = ""
        if "uninformative" in groups:  # the control says how large a coefficient comes without information
            s_, u = groups["sft"]["decoupled"], groups["uninformative"]["decoupled"]
            against = (f"; SFT's seeds ({s_.min():+.3f} to {s_.max():+.3f}) lie "
                       f"{'above' if s_.min() > u.max() else 'within or below'} the range of the uninformative "
                       f"control's ({u.min():+.3f} to {u.max():+.3f})")
        out.append(f"the paper's claim, SFT makes prefixes informative where base training does not: by the decoupled "
                   f"coefficient {'borne out' if agrees else 'not borne out'} here (interval above 0 in {_share(*sft)} "
                   f"of SFT, {_share(*base)} of base, and below 0 in {_share(below, base[1])} of base)"
                   f"{excess('sft', 'base')}{against}")
    if "rl-base" in groups and "decoupled low" in models_table:
        k, n = _count(groups["rl-base"], "decoupled")
        verdict = "does" if k == n else "does not" if k == 0 else "does in some seeds and not others"
        out.append(f"a correctness reward alone (RL from base, no SFT) {verdict} make prefixes informative by the "
                   f"decoupled coefficient here (interval above 0 in {_share(k, n)}){excess('rl-base')}")
    if "uninformative" in groups and "paper low" in models_table and "decoupled low" in models_table:
        g = groups["uninformative"]
        paper, decoupled = _count(g, "paper"), _count(g, "decoupled")
        reads = ("does not read it as aligned" if paper[0] == 0 else
                 f"reads it as aligned in {_share(*paper)}")
        caveat = ("; so a decoupled interval above 0 does not by itself show informative prefixes"
                  if decoupled[0] else "")
        out.append(f"the control, accurate with uninformative prefixes: the paper's same-sample coefficient "
                   f"{reads} (interval above 0), the decoupled one in {_share(*decoupled)}"
                   f"{excess('uninformative')}{caveat}")
    return out
