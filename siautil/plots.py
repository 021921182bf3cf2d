"""The book's figures. Each function takes a tidy DataFrame from siautil and returns a Figure.

Two conventions hold in every figure. An outcome has one colour wherever it is drawn
(:data:`OUTCOME_COLOURS`: correct, incorrect, and the null answer), and no other group takes
those colours (:data:`GROUP_COLOURS`: models, datasets, estimators, strides). Legends sit below
their axes, outside the area data is drawn in, so they never cover a curve.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.transforms import ScaledTranslation

from . import theory

#: The colour of each outcome of a trace or answer, the same in every figure (Okabe-Ito's
#: colour-blind-safe bluish green and vermillion, and grey).
OUTCOME_COLOURS = {"correct": "#009E73", "incorrect": "#D55E00", "null": "#7F7F7F"}
#: Colours of the other groups (models, datasets, estimators): matplotlib's own, less the green,
#: red and grey an outcome could be taken for.
GROUP_COLOURS = ["#1f77b4", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf"]
#: Line styles that tell apart groups drawn in one outcome's colour.
STYLES = ["-", "--", ":", "-."]
#: How far below its axes a legend starts, in inches: past the tick labels and the axis label.
LEGEND_DROP = 0.62


def outcome(value) -> str:
    """``"correct"``, ``"incorrect"`` or ``"null"`` for a correctness flag (``None``/NaN: null)
    or one of those names."""
    if isinstance(value, str):
        if value not in OUTCOME_COLOURS:
            raise ValueError(f"unknown outcome {value!r}; outcomes: {', '.join(OUTCOME_COLOURS)}")
        return value
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "null"
    return "correct" if bool(value) else "incorrect"


def plural(n: int, noun: str) -> str:
    """``"1 trace"``, ``"2 traces"``."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _legend(ax, **kwargs) -> None:
    """The axes' legend, below it, outside the data (``fig.tight_layout`` makes room for it)."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return
    place = ScaledTranslation(0, -LEGEND_DROP, ax.figure.dpi_scale_trans)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, 0), bbox_transform=ax.transAxes + place,
              ncol=min(len(handles), 2), frameon=False, **{"fontsize": 8, **kwargs})


def fano(points: pd.DataFrame, n_a: int) -> plt.Figure:
    """True MAP error against conditional entropy, with Theorem 1's bounds as curves."""
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(points["h"], points["map_error"], s=10, alpha=0.6, label="true MAP error $P_{e,t}$")
    h = np.linspace(0, np.log(n_a), 200)
    ax.plot(h, [theory.fano_error_bound(x, n_a) for x in h], "k-", label="Fano (sharp)")
    ax.plot(h, [theory.fano_lower_bound(x, n_a) for x in h], "k--", label="Fano (Theorem 1)")
    ax.set_xlabel(r"$H(A \mid X, Z_{\leq t})$ (nats)")
    ax.set_ylabel("error of the Bayes predictor")
    ax.set_title(f"Theorem 1 on random joints, |A| = {n_a}")
    _legend(ax)
    fig.tight_layout()
    return fig


def continuity(points: pd.DataFrame, n: int) -> plt.Figure:
    """Entropy gaps under KL perturbations against Lemma 5's modulus ``eps_n(delta)``."""
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(points["kl"], points["gap"], s=10, alpha=0.6, label=r"observed $|H(P)-H(Q)|$")
    d = np.linspace(0, points["kl"].max() * 1.02, 300)
    ax.plot(d, [theory.epsilon(x, n) for x in d], "k-", label=r"$\varepsilon_n(\delta)$ (Lemma 5)")
    ax.axhline(np.log(n), color="grey", lw=0.8, ls=":", label=r"$\log n$")
    ax.set_xlabel(r"$\delta = \mathrm{KL}(P \,\|\, Q)$ (nats)")
    ax.set_ylabel("entropy gap (nats)")
    ax.set_title(f"Continuity of entropy, n = {n}")
    _legend(ax)
    fig.tight_layout()
    return fig


def telescoping(table: pd.DataFrame) -> plt.Figure:
    """Proposition 1: stacked per-step information against the entropy drop."""
    fig, ax = plt.subplots(figsize=(6, 4))
    t = table["t"].to_numpy()
    bottom = 0.0
    for i in range(1, len(t)):
        v = table["step_information"].iloc[i]
        ax.bar(t[i:], v, bottom=bottom, width=0.6, alpha=0.7, label=rf"$I(A; Z_{{{i}}} \mid X, Z_{{<{i}}})$")
        bottom = bottom + v
    ax.plot(t, table["drop"], "ko-", label=r"$H(A|X) - H(A|X, Z_{\leq t})$")
    ax.set_xlabel("prefix length t")
    ax.set_ylabel("nats")
    ax.set_title("Entropy drop = sum of per-step information")
    _legend(ax)
    fig.tight_layout()
    return fig


def sia_worlds(table: pd.DataFrame) -> plt.Figure:
    """The model's entropy and the gold-answer information in an aligned and a broken world."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, (world, g) in zip(axes, table.groupby("world", sort=False)):
        ax.plot(g["t"], g["model_entropy"], "o-", label=r"model: $H_\theta(A \mid X, Z_{\leq t})$")
        ax.plot(g["t"], g["gold_information"], "s-", label=r"gold: $I_q(A^*; Z_{\leq t} \mid X)$")
        ax.set_title(world)
        ax.set_xlabel("prefix length t")
    axes[0].set_ylabel("nats")
    _legend(axes[0])
    fig.tight_layout()
    return fig


def estimator_bias(study: pd.DataFrame) -> plt.Figure:
    """Bias of the entropy estimators against the number of continuations M."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for k, (name, g) in enumerate(study.groupby("estimator", sort=False)):
        colour = GROUP_COLOURS[k % len(GROUP_COLOURS)]
        axes[0].plot(g["m"], g["bias"], "o-", color=colour, label=name)
        axes[1].plot(g["m"], g["rmse"], "o-", color=colour, label=name)
    g = study.drop_duplicates("m")
    axes[0].plot(g["m"], g["theory"], "k--", label=r"$-(K-1)/(2M)$")
    axes[0].axhline(0, color="grey", lw=0.8)
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xlabel("continuations per prefix M")
        _legend(ax)
    axes[0].set_ylabel(r"mean $\hat H_t - H_t$ (nats)")
    axes[1].set_ylabel("root mean squared error (nats)")
    axes[0].set_title("Bias")
    axes[1].set_title("Error")
    fig.tight_layout()
    return fig


def coefficient_histograms(coefs: dict[str, pd.DataFrame]) -> plt.Figure:
    """Per-trace alignment coefficients, one histogram per labelled run."""
    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.linspace(-1, 1, 41)
    for k, (label, c) in enumerate(coefs.items()):
        ax.hist(c["coefficient"].dropna(), bins=bins, alpha=0.6, color=GROUP_COLOURS[k % len(GROUP_COLOURS)],
                label=label)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel("alignment coefficient of a trace")
    ax.set_ylabel("traces")
    _legend(ax)
    fig.tight_layout()
    return fig


def curves(curve: pd.DataFrame, by: str, ylabel: str, title: str = "", ax=None, x: str = "pos",
           y: str = "mean", xlabel: str = "normalised position t / T", outcome_by: str | None = None) -> plt.Figure:
    """Mean curves with their 95% bands, one line per value of ``by``. With ``outcome_by``, a
    column of outcomes (a correctness flag, or ``"correct"``, ``"incorrect"``, ``"null"``),
    each line takes its outcome's colour (:data:`OUTCOME_COLOURS`) and the lines of one outcome
    differ by style; otherwise the lines take :data:`GROUP_COLOURS`."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 4))
    else:
        fig = ax.figure
    seen: dict[str, int] = {}
    for k, (label, g) in enumerate(curve.groupby(by, sort=False)):
        label = label if not isinstance(label, tuple) else ", ".join(map(str, label))
        if outcome_by is not None:
            kind = outcome(g[outcome_by].iloc[0])
            colour, style = OUTCOME_COLOURS[kind], STYLES[seen.get(kind, 0) % len(STYLES)]
            seen[kind] = seen.get(kind, 0) + 1
        else:
            colour, style = GROUP_COLOURS[k % len(GROUP_COLOURS)], "-"
        line, = ax.plot(g[x], g[y], marker="o", ls=style, ms=3, color=colour,
                        label=f"{by} = {label}" if by != "label" else label)
        ax.fill_between(g[x], g["ci_low"], g["ci_high"], color=colour, alpha=0.2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    _legend(ax)
    fig.tight_layout()
    return fig


def auc_curve(auc: pd.DataFrame, x: str = "t", label_by: str | list[str] | None = None, title: str = "",
              ax=None) -> plt.Figure:
    """AUC(t) with its interval band and the chance line; one line per value of ``label_by``
    (a column, or several joined with " · ")."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 4))
    else:
        fig = ax.figure
    if isinstance(label_by, list):
        auc = auc.assign(label=auc[label_by].astype(str).agg(" · ".join, axis=1))
        label_by = "label"
    groups = auc.groupby(label_by, sort=False) if label_by else [("AUC", auc)]
    for k, (label, g) in enumerate(groups):
        colour = GROUP_COLOURS[k % len(GROUP_COLOURS)]
        ax.plot(g[x], g["auc"], "o-", ms=3, color=colour, label=str(label))
        ax.fill_between(g[x], g["ci_low"], g["ci_high"], color=colour, alpha=0.2)
    ax.axhline(0.5, color="grey", ls=":", lw=1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("prefix length t (tokens)" if x == "t" else "normalised position t / T")
    ax.set_ylabel("AUC of -entropy for correctness")
    if title:
        ax.set_title(title)
    _legend(ax)
    fig.tight_layout()
    return fig


def trajectory(traj: pd.DataFrame, title: str = "") -> plt.Figure:
    """One trace: estimated entropy and gold surprisal at each checkpoint."""
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(traj["t"], traj["entropy"], "o-", label=r"entropy $\hat H_t$")
    ax.plot(traj["t"], traj["surprisal"], "s-", label=r"gold surprisal $\hat s_t$")
    ax.set_xlabel("prefix length t (tokens)")
    ax.set_ylabel("nats")
    if title:
        ax.set_title(title)
    _legend(ax)
    fig.tight_layout()
    return fig


def answer_heatmap(records: pd.DataFrame, gold: str | None = None, top: int = 8, ax=None) -> plt.Figure:
    """Share of each answer among the continuations at each checkpoint of one trace."""
    rows = []
    for _, r in records.iterrows():
        answers = ["∅" if a is None else str(a) for a in list(r["answers"])]
        for a in answers:
            rows.append((r["t"], a))
    df = pd.DataFrame(rows, columns=["t", "answer"])
    share = pd.crosstab(df["answer"], df["t"], normalize="columns")
    order = share.sum(axis=1).sort_values(ascending=False).index[:top]
    share = share.loc[order]
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 0.4 * len(share) + 1.5))
    else:
        fig = ax.figure
    im = ax.imshow(share.to_numpy(), aspect="auto", cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(share.shape[1]), share.columns)
    ax.set_yticks(range(share.shape[0]), [f"{a} (gold)" if a == gold else a for a in share.index])
    for tick, a in zip(ax.get_yticklabels(), share.index):  # the outcomes' colours: gold right, ∅ no answer
        if a == gold or a == "∅":
            tick.set_color(OUTCOME_COLOURS["correct" if a == gold else "null"])
    ax.set_xlabel("prefix length t (tokens)")
    ax.set_title("answers of the continuations at each checkpoint")
    fig.colorbar(im, ax=ax, label="share of continuations")
    fig.tight_layout()
    return fig


def coefficient_bars(table: pd.DataFrame, label: str = "model",
                     paper_col: str | None = "paper",
                     columns: tuple[str, str, str] = ("mean", "ci_low", "ci_high")) -> plt.Figure:
    """Mean alignment coefficient per row with its 95% interval (measured here; the
    ``columns`` holding mean, low and high), and the paper's value if any (quoted:
    ``paper.beside_paper``'s column)."""
    mean, low, high = columns
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(table) + 1.2))
    y = np.arange(len(table))
    err = np.vstack([table[mean] - table[low], table[high] - table[mean]])
    ax.errorbar(table[mean], y, xerr=err, fmt="o", capsize=3, label="measured here")
    if paper_col and paper_col in table and table[paper_col].notna().any():
        ax.plot(table[paper_col], y, "kx", label="quoted from the paper")
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(y, table[label])
    ax.set_xlim(-1, 1)
    ax.set_xlabel("mean alignment coefficient (95% CI over questions)")
    _legend(ax)
    fig.tight_layout()
    return fig


def marked_trace(text: str, cuts: list[tuple[int, int]]) -> str:
    """HTML of a trace with each checkpoint ``(t, character offset)`` marked in place."""
    import html

    out, last = [], 0
    for t, pos in sorted(cuts, key=lambda c: c[1]):
        out.append(html.escape(text[last:pos]))
        out.append(f'<sup style="color:#c0392b;font-weight:bold">[t={t}]</sup>')
        last = pos
    out.append(html.escape(text[last:]))
    return ('<div style="font-family:monospace;white-space:pre-wrap;border:1px solid #ddd;padding:8px">'
            + "".join(out) + "</div>")


def explore(records: pd.DataFrame, traj: pd.DataFrame, question_id: str, trace: int):
    """The explorer's view of one trace: its text with checkpoints marked, its entropy and
    surprisal curves, and the answer shares at every checkpoint. Returns ``(html, figure)``."""
    r = records[(records["question_id"] == question_id) & (records["trace"] == trace)].sort_values("t")
    tr = traj[(traj["question_id"] == question_id) & (traj["trace"] == trace)].sort_values("t")
    first = r.iloc[0]
    cuts = [(int(t), int(c)) for t, c in zip(r["t"], r["prefix_chars"]) if pd.notna(c)]
    verdict = outcome(first["correct"] if pd.notna(first["trace_answer"]) else None)
    head = (f"<p><b>{first['model']}</b> · {first['dataset']} · question {question_id} · trace {trace}: "
            f"answer {first['trace_answer']} (<span style=\"color:{OUTCOME_COLOURS[verdict]}\">{verdict}</span>; "
            f"gold {first['gold']})</p>")
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    axes[0].plot(tr["t"], tr["entropy"], "o-", label=r"entropy $\hat H_t$")
    axes[0].plot(tr["t"], tr["surprisal"], "s-", label=r"gold surprisal $\hat s_t$")
    axes[0].set_xlabel("prefix length t (tokens)")
    axes[0].set_ylabel("nats")
    _legend(axes[0])
    answer_heatmap(r, gold=str(first["gold"]), ax=axes[1])
    fig.tight_layout()
    return head + marked_trace(str(first["trace_text"]), cuts), fig


def gain_panels(gain: pd.DataFrame, counts: pd.DataFrame | None = None) -> plt.Figure:
    """Figure 1 / 4 from :func:`siautil.diagnostics.cumulative_gain`: one column per
    (model, dataset); the top row ``Ĝ_t`` in nats for every trace, the bottom row the paper's
    ``Ĝ_t / Ĝ_T`` for the traces with a measurable total; correct against incorrect traces,
    each line labelled with how many traces it stands on (from ``counts``)."""
    keys = [k for k in ("model", "dataset", "shuffle", "run") if k in gain]
    groups = list(gain.groupby(keys, sort=False))
    n = max(1, len(groups))
    fig, axes = plt.subplots(2, n, figsize=(5 * n, 7.5), squeeze=False)
    for j, (key, g) in enumerate(groups):
        m, d = key[0], key[1]
        for i, (measure, ylabel) in enumerate((("gain", r"$\hat G_t$ (nats)"), ("normalised", r"$\hat G_t / \hat G_T$"))):
            h = g[g["measure"] == measure]
            if h.empty:
                axes[i, j].set_axis_off()
                continue
            labels = []
            for c in h["correct"]:
                name = outcome(c)
                if counts is not None:
                    row = counts.merge(pd.DataFrame([dict(zip(keys, key))]), on=keys)
                    row = row[row["correct"] == c]
                    name += f" ({plural(int(row['traces'].sum() if measure == 'gain' else row['normalised'].sum()), 'trace')})"
                labels.append(name)
            curves(h.assign(label=labels), "label", ylabel, f"{m} · {d}" if i == 0 else "", ax=axes[i, j],
                   outcome_by="correct")
    return fig


def signatures(gain: pd.DataFrame, auc: pd.DataFrame, curve: pd.DataFrame, by: str = "model",
               measure: str = "gain") -> plt.Figure:
    """The three signatures side by side, one line (or pair of lines) per value of ``by``:
    the cumulative information gain split by correctness (Figure 1; ``measure`` "gain" for
    ``Ĝ_t`` in nats or "normalised" for ``Ĝ_t / Ĝ_T``), from
    :func:`siautil.diagnostics.cumulative_gain`; the AUC of entropy for correctness (Figure 2)
    from :func:`~siautil.diagnostics.auc_by_position`, over ``t`` or over ``t / T`` as computed;
    and the mean entropy trajectory (Figure 3) from :func:`~siautil.diagnostics.entropy_curve`."""
    fig, axes = plt.subplots(1, 3, figsize=(16, 4))
    g = gain[gain["measure"] == measure]
    g = g.assign(label=g[by].astype(str) + ", " + g["correct"].map(outcome))
    ylabel = r"$\hat G_t$ (nats)" if measure == "gain" else r"$\hat G_t / \hat G_T$"
    curves(g, "label", ylabel, "Cumulative information gain", ax=axes[0], outcome_by="correct")
    auc_curve(auc.assign(label=auc[by].astype(str)), x="pos" if "pos" in auc else "t", label_by="label",
              title="Early separability", ax=axes[1])
    curves(curve.assign(label=curve[by].astype(str)), "label", r"mean $\hat H_t$ (nats)", "Saturation",
           ax=axes[2])
    fig.tight_layout()
    return fig


def budget(curve: pd.DataFrame) -> plt.Figure:
    """Table 3 and beyond, from :func:`siautil.diagnostics.budget_curve`: the mean alignment
    coefficient with its 95% band against the continuations per checkpoint ``m``, one line per
    checkpoint stride, one panel per (model, dataset)."""
    groups = list(curve.groupby(["model", "dataset"], sort=False))
    fig, axes = plt.subplots(1, max(1, len(groups)), figsize=(5 * max(1, len(groups)), 4), squeeze=False)
    for ax, ((m, d), g) in zip(axes[0], groups):
        for k, (stride, h) in enumerate(g.groupby("stride", sort=False)):
            colour = GROUP_COLOURS[k % len(GROUP_COLOURS)]
            ax.plot(h["continuations"], h["mean"], "o-", color=colour, label=f"stride {stride}")
            ax.fill_between(h["continuations"], h["ci_low"], h["ci_high"], color=colour, alpha=0.2)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("continuations per checkpoint m")
        ax.set_ylabel("mean alignment coefficient")
        ax.set_title(f"{m} · {d}")
        _legend(ax)
    fig.tight_layout()
    return fig


def figure_1(traj: pd.DataFrame, n_resamples: int = 1000) -> tuple[plt.Figure, pd.DataFrame]:
    """Figure 1 (Figure 4 for base models): the cumulative information gain of every trace, in
    nats and normalised (:func:`siautil.diagnostics.cumulative_gain`); returns the figure and
    the count of traces in each group."""
    from . import diagnostics

    gain, counts = diagnostics.cumulative_gain(traj, n_resamples=n_resamples)
    return gain_panels(gain, counts), counts


def figure_2(traj: pd.DataFrame) -> plt.Figure:
    """Figure 2 (Figure 5): the AUC of ``-Ĥ_t`` for correct against incorrect traces, by
    normalised position, one line per model and dataset (:func:`siautil.diagnostics.auc_by_position`)."""
    from . import diagnostics

    return auc_curve(diagnostics.auc_by_position(traj, normalised=True), x="pos", label_by=["model", "dataset"],
                     title="AUC of $-\\hat H_t$ for correct vs incorrect")


def martingale(curve: pd.DataFrame, by: str = "model", ax=None) -> plt.Figure:
    """Mean ``p̂_t(y*)`` against the prefix length in tokens (:func:`siautil.informativeness.martingale`),
    one line per ``by`` with its 95% band, and each one's accuracy as a dashed line of its colour:
    where traces and continuations come from one sampler the line stays at the accuracy."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(7, 4))
    for name, g in curve.groupby(by, sort=False):
        inner = g[g["t"] != "end"]
        t = inner["t"].astype(float)
        line, = ax.plot(t, inner["mean"], label=str(name))
        ax.fill_between(t, inner["low"], inner["high"], color=line.get_color(), alpha=0.15, lw=0)
        ax.axhline(float(g[g["t"] == "end"]["mean"].iloc[0]), color=line.get_color(), ls="--", lw=0.8)
    ax.set_xlabel("prefix length t (tokens); past a trace's end, its outcome")
    ax.set_ylabel(r"mean $\hat p_t(y^\ast)$")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("The gold answer's probability along the traces (dashed: accuracy)")
    ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    return fig


def determination(table: pd.DataFrame, label: str = "model",
                  measures=(("D_before", "D before the answer"), ("R", "R (share of answer entropy resolved)"),
                            ("step_drop", "step effect (own answer's drop)"))) -> plt.Figure:
    """What the written steps determine, per row of ``table`` (:func:`siautil.informativeness.measures`
    or :func:`siautil.regimes.per_model`): one panel per measure, each value with its 95% interval,
    and 0 marked (the value with no information)."""
    present = [(c, t) for c, t in measures if c in table and table[c].notna().any()]
    fig, axes = plt.subplots(1, len(present), figsize=(3.6 * len(present), 0.32 * len(table) + 1.4), sharey=True,
                             squeeze=False)
    y = np.arange(len(table))
    for ax, (col, title) in zip(axes[0], present):
        low, high = table[f"{col}_low"].to_numpy(), table[f"{col}_high"].to_numpy()
        value = table[col].to_numpy()
        ax.errorbar(value, y, xerr=[np.clip(value - low, 0, None), np.clip(high - value, 0, None)], fmt="o",
                    ms=4, capsize=2)
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_title(title, fontsize="medium")
    axes[0][0].set_yticks(y, table[label].astype(str))
    axes[0][0].invert_yaxis()
    fig.tight_layout()
    return fig
