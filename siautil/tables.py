"""Tables as a chapter shows them: the columns its prose needs, the rest a click away.

A chapter ends a cell with ``tables.show(df, ["model", "mean", "ci_low", "ci_high"])`` instead
of ``df.round(3)``. The reader sees those columns (every row: nothing is cut with pandas'
"…"), and below them the whole table under a ``<details>`` element ("all 25 columns"), closed
until clicked; a table whose columns are all shown has no such part. Before anything is shown,
columns that hold no value at all are dropped (an all-empty column of the paper's numbers says
nothing) and numbers are rounded to ``digits`` decimals, with a rounded ``-0.000`` written as
``0.000``. The result renders as HTML in a notebook and in the book (``_static/tables.css``
styles it), and as plain text where there is no HTML (a terminal, ``print``)::

    from siautil import tables

    tables.show(per_model, ["model", "regime", "accuracy", "decoupled", "decoupled low", "decoupled high"])
    tables.show(summary)                       # every column in view: a small table
    tables.show(wide, ["model", "mean"], digits=4, caption="Per-model estimates")

``columns`` may name columns of the index too (they are shown as columns); names that the table
lacks are refused with the ones it has. Data columns are snake_case names; the few whose name
alone would mislead a reader are shown under a label (:data:`LABELS`).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd


#: How a column is headed when shown: the paper's own numbers stand beside this book's
#: measurements, and every table that shows both says which is which.
LABELS = {"paper": "quoted from the paper", "paper_original": "original (quoted from the paper)",
          "paper_shuffled": "shuffled (quoted from the paper)", "paper_coarser": "coarser (quoted from the paper)"}


def tidy(df: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """``df`` as shown: columns that hold no value dropped, numbers rounded to ``digits``
    decimals with a rounded negative zero made ``0``, a named or several-level index made
    columns."""
    if not isinstance(df.index, pd.RangeIndex) or any(name is not None for name in df.index.names):
        df = df.reset_index()
    df = df.loc[:, [c for c in df.columns if not df[c].isna().all()]]
    out = df.copy()
    for c in out.columns:
        if pd.api.types.is_float_dtype(out[c]):
            out[c] = out[c].round(digits) + 0.0  # -0.0 + 0.0 is 0.0
    return out


def _flat(columns: pd.Index) -> list[str]:
    """Column names as one line each (a several-level header joined with " · ")."""
    return [" · ".join(str(p) for p in c if str(p)) if isinstance(c, tuple) else str(c) for c in columns]


def _formatted(df: pd.DataFrame, digits: int) -> pd.DataFrame:
    """Every cell as the text it is shown as: floats with ``digits`` decimals, missing values empty."""
    out = pd.DataFrame(index=df.index)
    for c, name in zip(df.columns, _flat(df.columns)):
        col = df[c]
        if pd.api.types.is_float_dtype(col):
            out[name] = [("" if pd.isna(v) else f"{v:.{digits}f}") for v in col]
        else:
            out[name] = ["" if (not isinstance(v, (list, tuple, np.ndarray)) and pd.isna(v)) else str(v) for v in col]
    return out


@dataclass
class Table:
    """A table to show: ``shown`` (the columns in view), ``full`` (every column, or ``None`` when
    ``shown`` has them all), as text already formatted. A notebook renders it as HTML."""

    shown: pd.DataFrame
    full: pd.DataFrame | None
    caption: str | None = None

    def _repr_html_(self) -> str:
        head = f"<p class=\"siautil-caption\">{html.escape(self.caption)}</p>" if self.caption else ""
        out = head + self.shown.to_html(index=False, classes="dataframe siautil-table", escape=True)
        if self.full is not None:
            out += (f"<details class=\"siautil-more\"><summary>all {self.full.shape[1]} columns</summary>"
                    + self.full.to_html(index=False, classes="dataframe siautil-table", escape=True) + "</details>")
        return f"<div class=\"siautil-tables\">{out}</div>"

    def __repr__(self) -> str:
        text = self.shown.to_string(index=False)
        if self.full is not None:
            text += f"\n({self.full.shape[1] - self.shown.shape[1]} more columns: "
            text += ", ".join(c for c in self.full.columns if c not in self.shown.columns) + ")"
        return (self.caption + "\n" if self.caption else "") + text


def show(df: pd.DataFrame, columns: Sequence[str] | None = None, digits: int = 3, caption: str | None = None) -> Table:
    """``df`` with ``columns`` in view (default: all) and every column a click away; see the
    module's docstring. Never cut: every row and column is in the output."""
    table = tidy(df, digits)
    names = _flat(table.columns)
    if columns is None:
        keep = list(range(len(names)))
    else:
        missing = [c for c in columns if c not in names and c in _flat(df.columns)]
        unknown = [c for c in columns if c not in names and c not in missing]
        if unknown:
            raise KeyError(f"tables.show: no column {', '.join(map(repr, unknown))}; the table has: {', '.join(names)}")
        keep = [names.index(c) for c in columns if c not in missing]  # an all-empty one is simply left out
    shown = _formatted(table.iloc[:, keep], digits).rename(columns=LABELS)
    full = _formatted(table, digits).rename(columns=LABELS) if len(keep) < len(names) else None
    return Table(shown, full, caption)
