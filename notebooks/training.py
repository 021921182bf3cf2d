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
# Colab: install siautil on first run (does nothing elsewhere)
import importlib.util, subprocess, sys
if "google.colab" in sys.modules and importlib.util.find_spec("siautil") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "siautil[book] @ git+https://github.com/siautil/sia-book"], check=True)

# %% [markdown]
# # A controlled experiment: does training induce SIA?
#
# The paper's causal story (Sections 4.3–4.4) is that maximum-likelihood pre-training on text
# whose reasoning is not reliably tied to the true answer does not make prefixes informative
# about it, while supervised fine-tuning on correct (question, reasoning, answer) triples does,
# and reinforcement learning with a correctness reward keeps it. The paper can only infer this
# from public checkpoints. Here the three regimes are trained from scratch on a toy task where
# everything is known (`siautil.toy`):
#
# * the **toy task**: chains of additions and subtractions modulo 5, `Q: 3 a+4 b-2 c+1 d-3 (mod 5)`,
#   worked step by step, `a+4=2 b-2=0 c+1=1 d-3=3 The answer is 3.`, answered with one digit;
# * **base**: a small Llama-architecture model trained by maximum likelihood on a corpus of
#   worked solutions of which only some are right: others slip at one step (and carry the error
#   forward) or end with an answer that does not follow from the steps;
# * **SFT**: the base model trained further on correct solutions only;
# * **RL**: the SFT model trained by policy gradient with a reward of 1 for a correct answer.
#
# All three then go through the same sampling engine, estimators and diagnostics as the
# language models of the other chapters.

# %% tags=["parameters"]
profile = "default"
runs_dir = None
n_resamples = 2000

# %%
import json

import matplotlib.pyplot as plt
import pandas as pd

from siautil import diagnostics, estimators, grid, plots, runs, toy

cells = [c for c in grid.select(profile) if c.task == "toy"]
records = runs.records(profile, cells, runs_dir=runs_dir)
training = pd.DataFrame([json.loads((toy.ASSETS / r / "training.json").read_text()) for r in toy.REGIMES])
training[["regime", "seconds", "accuracy"]].rename(columns={"seconds": "training s", "accuracy": "held-out accuracy (1 sample)"})

# %% [markdown]
# ## Accuracy and alignment per regime

# %%
traj = estimators.estimate(records)
accuracy = (traj.groupby(["model", "question_id", "trace"])["correct"].first().groupby("model").mean()
            .rename("trace accuracy"))
table = diagnostics.alignment_table(diagnostics.trace_alignment(traj), n_resamples=n_resamples)
table = table.merge(accuracy, left_on="model", right_index=True)
table.round(3)

# %% [markdown]
# A model that is accurate can look aligned to the paper's coefficient without any
# information in its prefixes (it reads positive whenever gold is the modal answer; see
# {doc}`open`). Per regime, the paper's coefficient beside the decoupled and corrected
# estimates and the excess over the no-information baseline:

# %%
from siautil import coefficient

coefficient.table(records, n_resamples=n_resamples).drop(columns=["run"], errors="ignore").round(3)

# %%
fig = plots.coefficient_bars(table.assign(label=table["model"]), label="label", paper_col=None)
plt.show()

# %% [markdown]
# ## The signatures per regime

# %%
gain, counts = diagnostics.cumulative_gain(traj, n_resamples=n_resamples)
auc = diagnostics.auc_by_position(traj, normalised=True)
curve = diagnostics.entropy_curve(traj, n_resamples=n_resamples)
fig = plots.signatures(gain, auc, curve, by="model", measure="gain")
plt.show()
diagnostics.saturation(curve).round(3)
