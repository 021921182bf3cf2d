"""The controlled experiment's table: per toy training regime, over its seeds, what the models
can do (competence) beside what their written steps determine and what the coefficient says
(the training chapter).

Every number is first computed per model (one regime, one training seed) and then summarised
per regime as the mean over seeds with the spread between them (smallest and largest seed), so
training noise is visible beside the bootstrap intervals within each model. The measures of
what the steps determine are :mod:`siautil.informativeness`'s, validated on the oracle; they
compare traces within a question (``D``), or a model with itself (``R``, the step effect), so a
regime's accuracy does not set them as it sets the coefficient's mean
(:func:`siautil.coefficient.by_outcome`). They are computed on the checkpoints before each
trace's answer.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from . import coefficient, diagnostics, estimators, informativeness, models, toy

BEFORE = "before answer"


def regime_and_seed(model: str) -> tuple[str, int]:
    """``toy-<regime>[-s<k>]`` (:func:`siautil.models.toy_name`) -> ``(regime, seed)``."""
    for regime in sorted(models.TOY_REGIMES, key=len, reverse=True):
        for seed in models.TOY_SEEDS:
            if model == models.toy_name(regime, seed):
                return regime, seed
    raise ValueError(f"{model!r} is not a toy model; names look like {models.toy_name('sft', 1)!r}")


def unfinished(training: pd.DataFrame) -> dict[str, str]:
    """The shipped models whose training did not meet its threshold (``learned`` False in
    :func:`siautil.toy.training_report`), each with why: they are not the regime they stand for,
    so the experiment leaves them out."""
    out = {}
    for _, row in training[training["learned"].eq(False)].iterrows():
        out[models.toy_name(row["regime"], row["seed"])] = (
            f"its training stopped at its cap of {int(row['updates']):,} updates with {row['measured_at_check']:.2f} "
            "on its check, short of the threshold that says it has learned what its regime teaches")
    return out


def _rename(frame: pd.DataFrame, prefix: str, columns: dict[str, str]) -> pd.DataFrame:
    return frame[["model"] + list(columns)].rename(columns={k: f"{prefix}{v}" for k, v in columns.items()})


def per_model(records: pd.DataFrame, tokens: pd.DataFrame | None = None, steps: pd.DataFrame | None = None,
              alpha: float = estimators.DEFAULT_ALPHA, n_resamples: int = 1000, seed: int = 0,
              training: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per toy model of ``records`` (its runs with the prefixes as written): its regime
    and seed; accuracy at the runs' sampling setting with its interval and chance; competence
    read from its traces (:func:`siautil.toy.competence`: step accuracy, faithfulness) and how
    much its final answers follow what its steps imply (:func:`siautil.toy.answer_dependence`,
    Cramér's V); with ``training``, its accuracy at temperature 1 on the runs' questions.

    What its steps determine (:mod:`siautil.informativeness`, on the checkpoints before each
    trace's answer, with 95% bootstrap intervals over questions): ``D_start`` (the null check),
    ``D_before``, ``R`` and, with ``steps`` (the same cells sampled with ``shuffle="steps"``), the
    step effect ``step_drop`` with the null-answer share of those continuations.

    The coefficient: the paper's on all checkpoints (``paper_all``, as the paper computes it) and
    before the answer (``paper``, over questions; ``paper_trace_mean``, over traces), with the
    decoupled one, the paper's among correct and among incorrect traces before the answer, and
    ``paper_implied_by_mix``, the trace mean each model's mix of outcomes implies with each
    outcome's coefficient pooled over the models given (:func:`siautil.coefficient.by_outcome`); with ``tokens`` (``shuffle="tokens"``, the paper's
    Table 2), the paper's coefficient under shuffled tokens and the null-answer share of those
    continuations. The Figure 1 and 2 summaries before the answer: the mean total gain ``Ĝ``
    of correct and of incorrect traces (nats) and the mid-trace AUC of ``-Ĥ_t``."""
    out = informativeness.measures(records, steps, n_resamples=n_resamples, seed=seed)
    out = out.drop(columns=[k for k in diagnostics.GROUP_KEYS if k != "model" and k in out])
    competence = toy.competence(records)[["model", "step_accuracy", "faithfulness"]]
    out = out.merge(competence, on="model")
    dependence = toy.answer_dependence(records)[["model", "cramers_v"]]
    out = out.merge(dependence.rename(columns={"cramers_v": "answer_on_steps"}), on="model", how="left")
    every = coefficient.table(records, alpha, n_resamples, seed)
    out = out.merge(_rename(every, "", {"paper": "paper_all"}), on="model", how="left")
    before = coefficient.table(records, alpha, n_resamples, seed, checkpoints=BEFORE)
    out = out.merge(before[["model", "paper", "paper_low", "paper_high", "decoupled", "decoupled_low",
                            "decoupled_high"]], on="model", how="left")
    mix = coefficient.by_outcome(records, alpha, 0, seed, checkpoints=BEFORE)
    mix = mix[mix["outcome"] == "all"][["model", "paper", "paper_implied_by_mix"]]
    out = out.merge(mix.rename(columns={"paper": "paper_trace_mean"}), on="model", how="left")
    if tokens is not None and len(tokens):
        shuffled = coefficient.table(tokens, alpha, n_resamples, seed)
        out = out.merge(_rename(shuffled, "", {"paper": "paper_tokens"}), on="model", how="left")
        null = diagnostics.null_share(tokens).groupby("model")["null"].mean().rename("tokens_null")
        out = out.merge(null, left_on="model", right_index=True, how="left")
    traj = estimators.estimate(records, alpha=alpha, checkpoints=BEFORE)
    curves, _ = diagnostics.cumulative_gain(traj, n_resamples=0, seed=seed, alpha=alpha)
    end = curves[(curves["measure"] == "gain") & np.isclose(curves["pos"], 1.0)]
    gain = (end.groupby(["model", "correct"])["mean"].first().unstack("correct")
            .rename(columns={True: "gain_correct", False: "gain_incorrect"}))
    out = out.merge(gain, left_on="model", right_index=True, how="left")
    auc = diagnostics.auc_at_fraction(traj, 0.5)[["model", "auc"]].rename(columns={"auc": "mid_trace_auc"})
    out = out.merge(auc, on="model", how="left")
    out.insert(1, "regime", [regime_and_seed(m)[0] for m in out["model"]])
    out.insert(2, "seed", [regime_and_seed(m)[1] for m in out["model"]])
    if training is not None:
        at_one = training[["regime", "seed", "accuracy_run_questions"]].rename(
            columns={"accuracy_run_questions": "accuracy_t1"})
        out = out.merge(at_one, on=["regime", "seed"], how="left")
        out.insert(6, "accuracy_t1", out.pop("accuracy_t1"))
    return out


#: The columns :func:`by_regime` summarises over seeds.
SUMMARISED = ("accuracy", "accuracy_t1", "step_accuracy", "faithfulness", "answer_on_steps", "D_start", "D_before",
              "R", "step_drop", "step_null", "paper_all", "paper", "paper_implied_by_mix", "decoupled", "paper_correct",
              "paper_incorrect",
              "paper_tokens", "tokens_null", "gain_correct", "gain_incorrect", "mid_trace_auc")


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


def _seeds(g: pd.DataFrame, name: str) -> tuple[int, int, int]:
    """How many of a regime's seeds have ``name``'s 95% interval above 0, below 0, of how many
    seeds have it at all."""
    g = g[g[name].notna()] if name in g else g.iloc[:0]
    return int((g[f"{name}_low"] > 0).sum()), int((g[f"{name}_high"] < 0).sum()), len(g)


def _span(values: pd.Series, signed: bool = True) -> str:
    values = values.dropna()
    if values.empty:
        return "not measured"
    fmt = "{:+.2f}" if signed else "{:.2f}"
    lo, hi = values.min(), values.max()
    return fmt.format(lo) if np.isclose(lo, hi, atol=5e-3) else f"{fmt.format(lo)} to {fmt.format(hi)}"


def _of(k: int, n: int) -> str:
    return "every seed" if k == n else "no seed" if k == 0 else f"{k} of {n} seeds"


def _has(g: pd.DataFrame, name: str) -> bool:
    return name in g and g[name].notna().any()


def _regime_sentence(regime: str, g: pd.DataFrame) -> str:
    above, _, n = _seeds(g, "D_before")
    null_ok = int(((g["D_start_low"] <= 0) & (g["D_start_high"] >= 0)).sum())
    parts = [f"{regime} ({len(g)} seed{'s' if len(g) > 1 else ''}): accuracy {_span(g['accuracy'], False)} against "
             f"chance {g['chance'].iloc[0]:.2f}",
             f"its written steps already predict whether a trace ends right in {_of(above, n)} (D before the answer "
             f"{_span(g['D_before'])}; the null check, D at the empty prefix, holds 0 in {_of(null_ok, len(g))})",
             f"they resolve {_span(g['R'], False)} of its uncertainty about its own answer (R above 0 in "
             f"{_of(*_seeds(g, 'R')[::2])})"]
    if _has(g, "step_drop"):
        k, _, m = _seeds(g, "step_drop")
        parts.append(f"randomising the steps' values lowers the probability of the trace's own answer by "
                     f"{_span(g['step_drop'])} (above 0 in {_of(k, m)}"
                     + (f" of the {m} with that run" if m < len(g) else "")
                     + f"; null answers {_span(g['step_null'], False)} of those continuations)")
    return "; ".join(parts)


def findings(models_table: pd.DataFrame) -> list[str]:
    """What the table says, as sentences computed from it (so a chapter's prose cannot go stale),
    each resting on a measure validated on the oracle, with its interval and its null check:
    per regime, accuracy against chance, whether the steps predict the outcome before the answer
    (``D``), how much of the answer they resolve (``R``) and what randomising them does; then
    the experiment's questions, answered only as far as these measures decide them; and what the
    paper's coefficient follows across the models."""
    out = []
    groups = dict(tuple(models_table.groupby("regime", sort=False)))
    for regime, g in groups.items():
        out.append(_regime_sentence(regime, g))

    def compare(a: str, b: str, column: str, label: str) -> str:
        x, y = groups[a][column].dropna(), groups[b][column].dropna()
        if x.empty or y.empty:
            return f"{label} was not measured for both"
        if x.min() > y.max():
            return f"every {a} seed lies above every {b} seed by {label} ({_span(x)} against {_span(y)})"
        if x.max() < y.min():
            return f"every {a} seed lies below every {b} seed by {label} ({_span(x)} against {_span(y)})"
        return f"{a} and {b} overlap by {label} ({_span(x)} against {_span(y)}): these seeds cannot order them"

    def measured(a: str, b: str) -> str:
        extra = f"; {compare(a, b, 'step_drop', 'the step effect')}" if _has(models_table, "step_drop") else ""
        return compare(a, b, "R", "R") + extra

    if {"sft", "base"} <= set(groups):
        k, _, n = _seeds(groups["base"], "D_before")
        base = (f"base's steps already predict its outcome in {_of(k, n)}, so 'uninformative' does not describe base "
                "here" if k else f"base's steps predict its outcome in no seed")
        out.append(f"the paper's claim, that SFT makes prefixes informative where base training does not: {base}; "
                   f"whether SFT's steps determine more of the answer: {measured('sft', 'base')}")
    if {"rl-base", "base"} <= set(groups):
        out.append(f"a correctness reward alone (RL from base, no SFT) against base: {measured('rl-base', 'base')}")
    if "uninformative" in groups:
        g = groups["uninformative"]
        d = _seeds(g, "D_before")
        line = (f"the control, trained on steps that do not determine the answer: its steps predict its outcome in "
                f"{_of(d[0], d[2])} (D {_span(g['D_before'])})")
        if _has(g, "step_drop"):
            k, _, m = _seeds(g, "step_drop")
            line += (f", and randomising their values lowers its own answer's probability in {_of(k, m)} "
                     f"({_span(g['step_drop'])})")
            if k == m:
                line += ": its answers depend on what its steps say, which its training data did not teach"
            elif k == 0:
                line += ": its answers do not depend on what its steps say, as built" + (
                    ", though its steps carry a sign of how a trace will end" if d[0] else "")
            else:
                line += ": its seeds differ on whether its answers depend on what its steps say"
        if "sft" in groups:
            line += f"; {compare('uninformative', 'sft', 'R', 'R')}"
        out.append(line)
    both = models_table.dropna(subset=["accuracy", "paper_all"])
    if len(both) >= 3:
        rho = stats.spearmanr(both["accuracy"], both["paper_all"])
        line = (f"the paper's coefficient (all checkpoints) against accuracy across {len(both)} models: Spearman "
                f"{rho.statistic:+.2f} (p = {rho.pvalue:.2g})")
        split = models_table.dropna(subset=["paper_correct", "paper_incorrect"])
        if len(split):
            higher = int((split["paper_correct"] > split["paper_incorrect"]).sum())
            line += (f"; before the answer, it is higher among correct traces than among incorrect ones in {higher} "
                     f"of {len(split)} models (correct {_span(split['paper_correct'])}, incorrect "
                     f"{_span(split['paper_incorrect'])}): it reads each trace's outcome")
        mix = (models_table.dropna(subset=["paper_trace_mean", "paper_implied_by_mix"])
               if "paper_implied_by_mix" in models_table else models_table.iloc[:0])
        if len(mix) >= 3:
            r = stats.pearsonr(mix["paper_trace_mean"], mix["paper_implied_by_mix"]).statistic
            gap = (mix["paper_trace_mean"] - mix["paper_implied_by_mix"]).abs().mean()
            line += (f"; and each model's mean before the answer against the mean its mix of outcomes implies, each "
                     f"outcome's coefficient pooled over the {len(mix)} models: Pearson {r:+.3f}, mean absolute "
                     f"difference {gap:.3f}, so a model's mean is mostly its mix of outcomes")
        out.append(line)
    return out
