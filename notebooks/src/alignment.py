# %% [markdown]
# # The alignment table (Table 1)
#
# The paper's first claim: for models whose reasoning is aligned with correctness, the
# conditional answer entropy $\hat H_t$ and the gold surprisal $\hat s_t$ move together along a
# trace. Per trace, the **alignment coefficient** is their Pearson correlation across the
# checkpoints; Table 1 reports its mean per model and dataset. Here each cell is the mean over
# questions (a question's traces are averaged first), with its standard error and a 95%
# bootstrap interval over questions, and the count of traces whose coefficient is undefined
# (a constant series), with the reason.
#
# By default this chapter uses the embedded models (profile `default`): the toy task's base,
# SFT and RL models, and SmolLM2-135M-Instruct on easy word problems and SVAMP. With
# `-p profile paper` on a GPU machine with the hub it runs the paper's eleven models, or one
# model with `-p model ... -p dataset ... -p quantize 4bit`.

# %% tags=["parameters"]
profile = "default"     # "default" (embedded models, CPU) or "paper" (the paper's models, GPU)
model = None            # one model instead of the profile's (registry name, hub id or path)
dataset = None          # with `model`: the task to run it on
quantize = None         # with `model`: "4bit" on a CUDA GPU
limit = None            # questions per cell (None: the profile's)
runs_dir = None         # where run stores live (None: data/runs of this checkout)
alpha = 0.5             # gold-surprisal smoothing (pseudo-counts)
n_resamples = 2000      # bootstrap resamples

# %%
import matplotlib.pyplot as plt
import pandas as pd

from siautil import diagnostics, grid, paper, plots

cells = grid.select(profile, model, dataset, quantize, limit)
records = grid.records(profile, cells, runs_dir=runs_dir)
print(f"{len(records):,} checkpoint records from {records.groupby(['model', 'dataset']).ngroups} cells")

# %%
table = paper.beside_paper(diagnostics.alignment(records, alpha=alpha, n_resamples=n_resamples))
table.round(3)

# %%
table["label"] = table["model"] + " · " + table["dataset"]
fig = plots.coefficient_bars(table, label="label")
plt.show()

# %% [markdown]
# ## How much does the gold-surprisal smoothing matter?
#
# With few continuations per prefix, many prefixes of wrong traces never reach the gold
# answer, and the plug-in surprisal is infinite there. The coefficient then depends on how
# the estimate is smoothed. The paper does not say what it did; `siautil` uses
# $\hat p = (\text{hits} + \alpha)/(M + 2\alpha)$ with $\alpha = 1/2$. The table shows each
# cell's mean coefficient for several $\alpha$.

# %%
sens = diagnostics.surprisal_sensitivity(records, alphas=(0.05, 0.1, 0.5, 1.0, 2.0), n_resamples=200)
sens.pivot_table(index=["model", "dataset"], columns="alpha", values="mean").round(3)
