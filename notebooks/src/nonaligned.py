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
quantize = None
limit = None
runs_dir = None
regimes = ["Base"]
n_resamples = 1000

# %%
import matplotlib.pyplot as plt

from siautil import diagnostics, estimators, grid, plots

records = grid.records(profile, grid.select(profile, model, dataset, quantize, limit), runs_dir=runs_dir)
traj_all = estimators.estimate(records)
traj = traj_all[traj_all["regime"].isin(regimes)] if model is None else traj_all
print(f"{traj.groupby(['model', 'dataset', 'question_id', 'trace']).ngroups:,} traces of the base models")

# %% [markdown]
# ## Figure 4: normalised cumulative information gain, base models

# %%
gain, reasons = diagnostics.cumulative_gain(traj, n_resamples=n_resamples)
fig = plots.gain_panels(gain)
plt.show()
print("traces used / left out (total gain not positive):", reasons.to_dict())

# %% [markdown]
# ## Figure 5: AUC of entropy for correctness, base models beside aligned ones

# %%
auc = diagnostics.auc_by_position(traj_all, normalised=True)
fig = plots.auc_curve(auc, x="pos", label_by=["model", "dataset"], title="AUC of $-\\hat H_t$ for correct vs incorrect")
plt.show()
summary = auc.groupby(["model", "dataset"]).agg(mean_auc=("auc", "mean"), final_auc=("auc", "last")).round(3)
summary
