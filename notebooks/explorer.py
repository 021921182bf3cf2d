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
# Colab: install siautil on first run (does nothing elsewhere)
import importlib.util, subprocess, sys
if "google.colab" in sys.modules and importlib.util.find_spec("siautil") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "siautil[book] @ git+https://github.com/siautil/sia-book"], check=True)

# %% [markdown]
# # Trace explorer
#
# Pick a run, a question and a trace: the trace's text with its checkpoints marked, its entropy
# and gold-surprisal curves, and the share of each answer among the continuations at every
# checkpoint. In JupyterLab or Colab the controls are live; the published book shows a static
# rendering of one example below them.

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

from siautil import estimators, grid, plots, runs

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


cell_w = widgets.Dropdown(options=names, value=cell if cell in names else names[0], description="run")
question_w = widgets.IntSlider(value=question_index, min=0, max=records.groupby("model")["question_id"].nunique().max() - 1,
                               description="question")
trace_w = widgets.IntSlider(value=trace, min=0, max=int(records["trace"].max()), description="trace")
widgets.interactive(show, cell_name=cell_w, question=question_w, trace_index=trace_w)

# %% [markdown]
# A static rendering of the default selection:

# %%
show(cell if cell in names else names[0], question_index, trace)
