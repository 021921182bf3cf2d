"""Tables as a chapter shows them (siautil.tables): the columns asked for in view, the rest behind
a click, nothing cut, no all-empty column, no negative zero."""

import numpy as np
import pandas as pd
import pytest

from siautil import tables


def _wide(rows=70, extra=30):
    df = pd.DataFrame({"model": [f"m{i}" for i in range(rows)], "mean": np.linspace(-0.0004, 0.5, rows),
                       "quoted from the paper": np.nan})
    for k in range(extra):
        df[f"extra {k}"] = np.arange(rows) * k
    return df


def test_the_columns_asked_for_are_in_view_and_every_column_a_click_away():
    t = tables.show(_wide(), ["model", "mean"])
    html = t._repr_html_()
    shown, _, rest = html.partition("<details")
    assert "<th>model</th>" in shown and "<th>mean</th>" in shown and "extra 0" not in shown
    assert rest and "<summary>all 32 columns</summary>" in rest  # the empty column is not one of them
    assert all(f"<th>extra {k}</th>" in rest for k in range(30))
    assert "m69" in shown and "m69" in rest  # every row, in both


def test_nothing_is_cut_no_empty_column_and_no_negative_zero():
    t = tables.show(_wide(), ["model", "mean", "extra 29"])
    html, text = t._repr_html_(), repr(t)
    for out in (html, text):
        assert "…" not in out and "..." not in out
        assert "quoted from the paper" not in out
        assert "-0.000" not in out and "0.000" in out
    assert "2001" in html and "2001" in text  # the last row's 69 * 29, whole


def test_a_small_table_shows_everything_without_a_fold_and_an_index_becomes_columns():
    df = pd.DataFrame({"a": [1.23456, -0.00001]}, index=pd.Index(["x", "y"], name="key"))
    t = tables.show(df, digits=2)
    assert "<details" not in t._repr_html_()
    assert list(t.shown.columns) == ["key", "a"] and list(t.shown["a"]) == ["1.23", "0.00"]


def test_an_unknown_column_is_named_with_the_ones_the_table_has():
    with pytest.raises(KeyError, match=r"no column 'nope'; the table has: model, mean, extra 0"):
        tables.show(_wide(extra=1), ["model", "nope"])
