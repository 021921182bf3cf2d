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
# from public checkpoints. Here models are trained from scratch on a toy task where everything
# is known (`siautil.toy`). The experiment is defined for five regimes and three training seeds
# each (`siautil toy train --regime R --seed K`); the training table below lists the models
# trained and shipped so far, and every table of this chapter covers exactly those:
#
# * the **toy task**: chains of additions and subtractions modulo 5, `Q: 3 a+4 b-2 c+1 d-3 (mod 5)`,
#   worked step by step, `a+4=2 b-2=0 c+1=1 d-3=3 The answer is 3.`, answered with one digit;
# * **base**: a small Llama-architecture model trained by maximum likelihood on a corpus of
#   worked solutions of which only some are right: others slip at one step (and carry the error
#   forward) or end with an answer that does not follow from the steps;
# * **sft**: the base model trained further on correct solutions only;
# * **rl**: the SFT model trained by policy gradient with a reward of 1 for a correct answer;
# * **rl-base**: the same reward from the base model, with no SFT: does a correctness reward
#   alone make prefixes informative?
# * **uninformative**: the base model trained on triples whose answer is always right but whose
#   written steps are another question's: meant to be accurate with prefixes that carry no
#   information about the answer by construction, to separate "the coefficient tracks
#   correctness because the model is accurate" from "because its prefixes inform the answer".
#   Whether a model this small learns to answer without informative steps is in the training
#   table (its accuracy beside chance, 1 in 5); where it does not, it is no such control.
#
# Competence is measured apart from answers: **step accuracy** (each written step right given
# the previous written value) and **faithfulness** (the final answer equals what the written
# steps imply). All models then go through the same sampling engine, estimators and
# diagnostics as the language models of the other chapters, with one sampling setting for all
# (`grid.TOY`: temperature 2.0, no nucleus), chosen so that every regime makes some errors (a
# model that is always right has no defined coefficient). The training table gives accuracy at
# temperature 1.0 as well: the models with flatter distributions (base, RL from base) lose most
# of theirs at 2.0, so compare the two columns before reading a regime's coefficient.

# %% tags=["parameters"]
toy_profile = "toy-regimes"   # every shipped toy model, original and shuffled prefixes (stored with the project)
runs_dir = None           # where runs are sampled when this install has no stored run
n_resamples = 1000        # bootstrap resamples (within each model)

# %%
import matplotlib.pyplot as plt
import pandas as pd

from siautil import diagnostics, estimators, grid, models, plots, regimes, runs, toy

cells = grid.select(toy_profile, shuffled=None)
original = runs.published(toy_profile, [c for c in cells if not c.settings.shuffle_prefix], runs_dir=runs_dir)
shuffled = runs.published(toy_profile, [c for c in cells if c.settings.shuffle_prefix], runs_dir=runs_dir)
runs.summary(pd.concat([original, shuffled])).groupby("shuffled")[["questions", "traces"]].agg(["min", "max", "size"])

# %% [markdown]
# ## Training
#
# Per model: the training time on one CPU thread, and accuracy, step accuracy and faithfulness
# of one sample per held-out question at temperature 1.0 (500 questions), as recorded when it
# was trained (`siautil toy train` reproduces the weights bit for bit; `SHA256SUMS` holds them).

# %%
training = toy.training_report()
print(f"{len(training)} models shipped, {sum(f.stat().st_size for f in toy.ASSETS.rglob('*.safetensors')) / 2**20:.1f} MiB "
      f"of weights, {training['seconds'].sum() / 60:.1f} minutes of training in all")
training.round(3)

# %% [markdown]
# ## The table: competence, coefficient and signatures per regime
#
# Per regime, over its seeds (mean, and the smallest and largest seed's value): accuracy at the
# sampling setting of the runs, step accuracy and faithfulness read from the runs' traces; the
# paper's coefficient, the decoupled one (entropy and surprisal from disjoint continuations)
# and the excess over the no-information baseline (see {doc}`alignment`); the paper's
# coefficient under shuffled prefixes (Table 2); the Figure 1 summary (mean total information
# gain $\hat G_T$ of correct and of incorrect traces, in nats) and the Figure 2 summary (the
# mid-trace AUC of $-\hat H_t$ for correctness).

# %%
per_model = regimes.per_model(original, shuffled, n_resamples=n_resamples)
regimes.by_regime(per_model).round(3)

# %% [markdown]
# Every model, with the 95% bootstrap intervals over questions within it:

# %%
per_model.drop(columns=["traces"]).round(3)

# %% [markdown]
# ## What it says
#
# Computed from the table above: per regime, in how many seeds the decoupled coefficient's
# interval lies above 0, and whether accuracy alone predicts the coefficient across models.

# %%
print("\n".join(regimes.findings(per_model)))

# %%
fig = plots.coefficient_bars(per_model, label="model", paper_col=None, columns=("decoupled", "decoupled low", "decoupled high"))
plt.gca().set_xlabel("decoupled alignment coefficient (95% CI over questions)")
plt.show()

# %% [markdown]
# ## The signatures per regime (seed 0)

# %%
seed0 = original[original["model"].isin([models.toy_name(r) for r in toy.REGIMES])]
traj = estimators.estimate(seed0)
gain, counts = diagnostics.cumulative_gain(traj, n_resamples=n_resamples)
auc = diagnostics.auc_by_position(traj, normalised=True)
curve = diagnostics.entropy_curve(traj, n_resamples=n_resamples)
fig = plots.signatures(gain, auc, curve, by="model", measure="gain")
plt.show()
diagnostics.saturation(curve).round(3)
