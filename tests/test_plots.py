"""The book's figures (siautil.plots): each function draws what it is given, one line, band,
panel or mark per group of its data, with the labels the book reads."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection

from siautil import diagnostics as D
from siautil import estimators as E
from siautil import oracle, paper, plots, theory


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _labels(ax):
    return [line.get_label() for line in ax.get_legend().get_lines()]


def _bands(ax):
    return [c for c in ax.collections if isinstance(c, PolyCollection)]


def _oracle_traj(cells=(("a", "toy"), ("b", "toy"))):
    runs = [oracle.sample_run(oracle.aligned(steps=12), n_questions=8, n_traces=3, n_continuations=8, stride=4,
                              seed=k).assign(model=m, dataset=d) for k, (m, d) in enumerate(cells)]
    return pd.concat(runs, ignore_index=True)


def test_fano_draws_every_point_and_both_bounds():
    points = pd.DataFrame(dict(h=[0.1, 0.5, 1.0], map_error=[0.05, 0.2, 0.5]))
    fig = plots.fano(points, n_a=4)
    (ax,) = fig.axes
    assert len(ax.collections[0].get_offsets()) == 3
    sharp, weak = ax.lines
    assert sharp.get_xdata()[-1] == pytest.approx(np.log(4))
    assert sharp.get_ydata()[-1] == pytest.approx(theory.fano_error_bound(np.log(4), 4)) == pytest.approx(0.75)
    assert (weak.get_ydata() <= sharp.get_ydata() + 1e-12).all()  # Theorem 1's form is the weaker bound


def test_curves_draw_one_line_and_one_band_per_group():
    curve = pd.DataFrame(dict(model=["a"] * 3 + ["b"] * 3, pos=[0, 0.5, 1] * 2, mean=[0, 1, 2, 0, -1, -2.0]))
    curve["ci_low"], curve["ci_high"] = curve["mean"] - 0.1, curve["mean"] + 0.1
    fig = plots.curves(curve, "model", "nats", title="t")
    (ax,) = fig.axes
    assert [line.get_label() for line in ax.lines] == ["model = a", "model = b"]
    np.testing.assert_array_equal(ax.lines[1].get_ydata(), [0, -1, -2])
    assert len(_bands(ax)) == 2 and ax.get_title() == "t"


def test_auc_curve_joins_label_columns_and_draws_chance():
    auc = pd.DataFrame(dict(model=["m"] * 2 + ["n"] * 2, dataset="gsm8k", t=[0, 4] * 2, auc=[0.5, 0.7, 0.6, 0.9]))
    auc["ci_low"], auc["ci_high"] = auc["auc"] - 0.05, auc["auc"] + 0.05
    ax = plots.auc_curve(auc, label_by=["model", "dataset"]).axes[0]
    assert _labels(ax) == ["m · gsm8k", "n · gsm8k"]
    chance = [line for line in ax.lines if list(line.get_ydata()) == [0.5, 0.5]]
    assert len(chance) == 1 and ax.get_ylim() == (0, 1)


def test_coefficient_bars_mark_the_paper_only_where_it_has_a_value():
    table = pd.DataFrame(dict(model=["x", "y"], mean=[0.2, -0.1], ci_low=[0.1, -0.3], ci_high=[0.3, 0.1],
                              paper=[0.5, np.nan]))
    ax = plots.coefficient_bars(table).axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["x", "y"]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sorted(legend) == ["measured here", "quoted from the paper"]
    ax = plots.coefficient_bars(table.assign(paper=np.nan)).axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["measured here"]


def test_figure_1_has_a_gain_and_a_normalised_panel_per_cell():
    traj = E.estimate(_oracle_traj())
    fig, counts = plots.figure_1(traj, n_resamples=10)
    assert len(fig.axes) == 4  # 2 rows x 2 cells
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["a · toy", "b · toy"]
    n = counts[(counts["model"] == "a") & counts["correct"]]["traces"].item()
    assert any(label == f"correct ({n} traces)" for ax in fig.axes for label in _labels(ax))


def test_budget_has_a_panel_per_cell_and_a_line_per_stride():
    curve = D.budget_curve(_oracle_traj(), strides=(None, 8), n_resamples=10)
    fig = plots.budget(curve)
    assert len(fig.axes) == 2
    for ax in fig.axes:
        assert _labels(ax) == ["stride run", "stride 8"]
        assert list(ax.lines[0].get_xdata()) == [1, 2, 4, 8]


def test_answer_heatmap_shares_each_checkpoints_answers():
    records = pd.DataFrame(dict(t=[0, 4], answers=[["1", "2", None, "1"], ["1", "1", "1", "1"]]))
    fig = plots.answer_heatmap(records, gold="1")
    ax = fig.axes[0]
    share = ax.images[0].get_array()
    assert share.shape == (3, 2)  # answers 1, 2 and none; two checkpoints
    np.testing.assert_allclose(share.sum(axis=0), [1, 1])
    np.testing.assert_allclose(share[:, 0], [0.5, 0.25, 0.25])
    assert [t.get_text() for t in ax.get_yticklabels()][0] == "1 (gold)"


def test_marked_trace_marks_each_checkpoint_in_place_and_escapes():
    html = plots.marked_trace("a<b c", [(4, 3), (0, 0)])
    body = html[html.index(">") + 1: html.rindex("<")]
    marks = [body.index("[t=0]"), body.index("a&lt;b"), body.index("[t=4]"), body.index(" c")]
    assert marks == sorted(marks)


def _signature_inputs():
    traj = E.estimate(_oracle_traj())
    gain, _ = D.cumulative_gain(traj, n_resamples=10)
    return gain, D.auc_by_position(traj, normalised=True), D.entropy_curve(traj)


def test_an_outcome_has_one_colour_in_every_figure_and_no_other_group_takes_it():
    from matplotlib.colors import to_hex

    traj = E.estimate(_oracle_traj())
    gain, auc, curve = _signature_inputs()
    figures = [plots.figure_1(traj, n_resamples=10)[0], plots.signatures(gain, auc, curve, by="model"),
               plots.figure_2(traj)]
    outcome_colours = set(plots.OUTCOME_COLOURS.values())
    seen = set()
    for fig in figures:
        for ax in fig.axes:
            for line in ax.lines:
                label, colour = line.get_label(), to_hex(line.get_color()).upper()
                kind = next((k for k in ("incorrect", "correct") if k in label), None)
                if kind:
                    assert colour == plots.OUTCOME_COLOURS[kind].upper(), (label, colour)
                    seen.add(kind)
                elif not label.startswith("_"):  # a named group that is no outcome
                    assert colour not in {c.upper() for c in outcome_colours}, (label, colour)
    assert seen == {"correct", "incorrect"}


def test_legends_cover_no_curve():
    traj = E.estimate(_oracle_traj())
    gain, auc, curve = _signature_inputs()
    figures = [plots.figure_1(traj, n_resamples=10)[0], plots.signatures(gain, auc, curve, by="model"),
               plots.figure_2(traj), plots.budget(D.budget_curve(_oracle_traj(), strides=(None, 8), n_resamples=10))]
    for fig in figures:
        fig.canvas.draw()
        legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
        assert legends
        for legend in legends:
            box = legend.get_window_extent()
            for ax in fig.axes:
                for line in ax.lines:
                    points = ax.transData.transform(np.column_stack([line.get_xdata(), line.get_ydata()]))
                    x, y = points[np.isfinite(points).all(axis=1)].T
                    inside = (box.x0 <= x) & (x <= box.x1) & (box.y0 <= y) & (y <= box.y1)
                    assert not inside.any(), f"a legend of {fig.axes[0].get_title()!r} covers {line.get_label()!r}"


def test_one_trace_is_not_one_traces():
    assert plots.plural(1, "trace") == "1 trace" and plots.plural(3, "trace") == "3 traces"
    traj = E.estimate(_oracle_traj(cells=(("a", "toy"),)))
    first = traj[traj["correct"]].iloc[0]
    one = traj[(traj["trace"] == first["trace"]) & (traj["question_id"] == first["question_id"])]
    gain, counts = D.cumulative_gain(pd.concat([one, traj[~traj["correct"]]]), n_resamples=10)
    fig = plots.gain_panels(gain, counts)
    labels = [label for ax in fig.axes if ax.get_legend() for label in _labels(ax)]
    assert any(label.endswith("(1 trace)") for label in labels), labels
    assert not any("(1 traces)" in label for label in labels)
