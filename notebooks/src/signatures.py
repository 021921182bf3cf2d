# %% [markdown]
# # Signatures of stepwise informativeness (Figures 1–3)
#
# If prefixes carry information about the gold answer, three things should be visible in the
# Monte-Carlo estimates (Section 5.2 of the paper):
#
# 1. **Early information accumulation** (Figure 1): correct traces gather a larger share of
#    their total information gain $\hat G_t / \hat G_T$ early, where
#    $\hat G_t = \hat s_0 - \hat s_t$ is the cumulative gain of Definition 11.
# 2. **Early separability** (Figure 2): the conditional entropy at a prefix already separates
#    traces that will end correct from those that will not; the AUC of $-\hat H_t$ is above
#    0.5 well before the answer is written.
# 3. **Saturation** (Figure 3): the mean entropy trajectory falls and plateaus near zero for
#    aligned models; others stay above zero or rebound late.
#
# This chapter shows them for the aligned (instruction-tuned or RL-trained) models of the
# profile; the next chapter shows the base models.

# %% tags=["parameters"]
profile = "default"
model = None
dataset = None
quantize = None
limit = None
runs_dir = None
regimes = ["SFT", "SFT+RL"]   # which training regimes this chapter shows
n_resamples = 1000

# %%
import matplotlib.pyplot as plt
import pandas as pd

from siautil import diagnostics, estimators, grid, plots

records = grid.records(profile, grid.select(profile, model, dataset, quantize, limit), runs_dir=runs_dir)
records = records[records["regime"].isin(regimes)] if model is None else records
traj = estimators.estimate(records)
cells = traj.groupby(["model", "dataset"]).ngroups
print(f"{len(traj):,} checkpoints, {traj.groupby(['model', 'dataset', 'question_id', 'trace']).ngroups:,} traces, {cells} cells")

# %% [markdown]
# ## Figure 1: normalised cumulative information gain

# %%
gain, reasons = diagnostics.cumulative_gain(traj, n_resamples=n_resamples)
fig = plots.gain_panels(gain)
plt.show()
print("traces used / left out (total gain not positive):", reasons.to_dict())

# %% [markdown]
# ## Figure 2: early separability, AUC of entropy for correctness

# %%
auc = diagnostics.auc_by_position(traj, normalised=True)
fig = plots.auc_curve(auc, x="pos", label_by=["model", "dataset"], title="AUC of $-\\hat H_t$ for correct vs incorrect")
plt.show()
auc.pivot_table(index="pos", columns=["model", "dataset"], values="auc").round(3)

# %% [markdown]
# ## Figure 3: saturation of the mean entropy

# %%
curve = diagnostics.entropy_curve(traj, n_resamples=n_resamples)
curve["label"] = curve["model"] + " · " + curve["dataset"]
fig = plots.curves(curve, "label", r"mean $\hat H_t$ (nats)", "Mean entropy trajectory")
plt.show()
diagnostics.saturation(curve).round(3)
