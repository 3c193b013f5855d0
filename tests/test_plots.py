"""Recorder and range-test plots: each returns its Axes and saves a PNG, marks the default suggestion apart,
merges marks that coincide, smooths the losses to follow the raw curve, and warns when there is nothing to draw."""

import math
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pytest
from conftest import make_dls, make_mlp
from matplotlib.axes import Axes

from lrcycle import Learner, Recorder, accuracy, error_rate, sequential_splitter
from lrcycle.plots import NothingToPlotWarning


@pytest.fixture(scope="module")
def recorder():
    learn = Learner(
        make_dls(),
        make_mlp(),
        metrics=[accuracy, error_rate],
        splitter=sequential_splitter(3),
        progress=False,
    )
    learn.fit_one_cycle(3, [1e-3, 1e-2, 1e-1])
    return learn.recorder


def axes_list(result):
    """Every plot returns one Axes (its main panel); the figure holds all of its panels, top first."""
    assert isinstance(result, Axes), type(result)
    return result.figure.axes


def save(result, tmp_path, name):
    axes = axes_list(result)
    assert axes and all(isinstance(ax, Axes) for ax in axes)
    file = tmp_path / f"{name}.png"
    axes[0].figure.savefig(file)
    assert file.stat().st_size > 1000
    return axes


def vertical_marks(ax):
    """{x: line} for every vertical line (axvline) on `ax`."""
    return {line.get_xdata()[0]: line for line in ax.get_lines() if len(set(line.get_xdata())) == 1 and
            len(line.get_xdata()) == 2}  # fmt: skip


def test_plot_draws_smoothed_loss_against_lr_on_a_log_axis(recorder, tmp_path):
    (ax,) = save(recorder.plot(skip_start=0, skip_end=0), tmp_path, "plot")
    assert ax.get_xscale() == "log"
    x, y = ax.get_lines()[0].get_data()
    assert list(x) == recorder.lrs and list(y) == recorder.smooth_losses


def test_the_default_suggestion_is_drawn_apart_and_named_the_default(recorder, tmp_path):
    recorder.suggestions = {"valley": 1e-2, "range": (1e-3, 5e-2)}
    try:
        (ax,) = save(recorder.plot(skip_start=2, skip_end=1), tmp_path, "plot_marks")
    finally:
        recorder.suggestions = None
    assert len(ax.get_lines()[0].get_xdata()) == len(recorder.lrs) - 3
    marks = vertical_marks(ax)
    assert sorted(marks) == pytest.approx([1e-3, 1e-2, 5e-2])
    default, others = marks[1e-2], [marks[1e-3], marks[5e-2]]
    assert default.get_linestyle() == "-" and all(line.get_linestyle() == "--" for line in others)
    assert all(default.get_linewidth() > line.get_linewidth() for line in others)
    assert default.get_color() not in {line.get_color() for line in others}
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts == ["valley (default): 1.00e-02", "range low: 1.00e-03", "range high: 5.00e-02"]


def test_coinciding_marks_are_one_mark_with_every_name(recorder):
    recorder.suggestions = {"halfway": 0.1, "steep": 0.3, "lr_range": (1e-3, 0.3 * 1.001), "twin": 0.1}
    try:
        ax = recorder.plot()
    finally:
        recorder.suggestions = None
    marks = vertical_marks(ax)
    assert sorted(marks) == pytest.approx([1e-3, 0.1, 0.3])
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts == ["halfway (default), twin: 1.00e-01", "steep, lr_range high: 3.00e-01", "lr_range low: 1.00e-03"]


def test_a_suggestion_without_a_value_is_named_not_dropped(recorder):
    recorder.suggestions = {"halfway": math.nan, "minimum": 0.01}
    try:
        ax = recorder.plot()
    finally:
        recorder.suggestions = None
    assert sorted(vertical_marks(ax)) == pytest.approx([0.01])
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts == ["minimum: 1.00e-02", "halfway: none found"]


def test_plot_draws_something_when_the_curve_is_shorter_than_the_skips(recorder, tmp_path):
    (ax,) = save(recorder.plot(skip_start=100, skip_end=100), tmp_path, "short")
    assert len(ax.get_lines()[0].get_xdata()) >= 1


def test_plot_lr_draws_every_group(recorder, tmp_path):
    (ax,) = save(recorder.plot_lr(), tmp_path, "lr")
    assert [list(line.get_ydata()) for line in ax.get_lines()] == recorder.group_lrs


def test_plot_lr_with_moms_adds_a_momentum_panel(recorder, tmp_path):
    lr_ax, mom_ax = save(recorder.plot_lr(show_moms=True), tmp_path, "lr_moms")
    assert len(lr_ax.get_lines()) == 3
    assert list(mom_ax.get_lines()[0].get_ydata()) == recorder.moms


def centered_mean_by_hand(values, window):
    """The smoothing the losses plot promises, written out: the mean over the window centred on each point,
    shrunk symmetrically near the ends."""
    n, half, out = len(values), window // 2, []
    for i in range(n):
        h = min(half, i, n - 1 - i)
        out.append(sum(values[i - h : i + h + 1]) / (2 * h + 1))
    return out


def test_plot_losses_raw_a_centered_mean_and_validation_nothing_dropped(recorder, tmp_path):
    (ax,) = save(recorder.plot_losses(), tmp_path, "losses")
    raw, smooth, valid = ax.get_lines()
    n = len(recorder.losses)
    assert list(raw.get_xdata()) == recorder.iters and list(raw.get_ydata()) == recorder.losses
    window = 2 * (n // 20) + 1
    assert list(smooth.get_ydata()) == pytest.approx(centered_mean_by_hand(recorder.losses, window))
    assert f"centered mean of {window}" in smooth.get_label()
    n_iter = n // 3
    assert list(valid.get_xdata()) == [n_iter - 1, 2 * n_iter - 1, 3 * n_iter - 1]
    assert list(valid.get_ydata()) == [row["valid_loss"] for row in recorder.epochs]
    assert ax.get_xlabel() == "iteration"


def test_plot_losses_says_what_it_skips(recorder):
    ax = recorder.plot_losses(skip_start=5)
    assert len(ax.get_lines()[0].get_xdata()) == len(recorder.losses) - 5
    assert "first 5 not shown" in ax.get_xlabel()


def test_the_smoothed_loss_tracks_the_raw_loss_on_a_short_fit():
    """The issue's case: on a short fit the debiased EMA lagged far above the falling raw loss."""
    learn = Learner(make_dls(n_train=480, bs=16), make_mlp(), progress=False)
    learn.fit(0.1, 2)
    ax = learn.recorder.plot_losses()
    raw, smooth = (np.asarray(line.get_ydata()) for line in ax.get_lines()[:2])
    # a centered mean stays within the spread of the raw values around it
    window = 2 * (len(raw) // 20) + 1
    for i in range(len(raw)):
        lo, hi = max(0, i - window // 2), i + window // 2 + 1
        assert raw[lo:hi].min() - 1e-9 <= smooth[i] <= raw[lo:hi].max() + 1e-9


def test_plot_metrics_one_panel_for_losses_and_one_per_metric(recorder, tmp_path):
    axes = save(recorder.plot_metrics(), tmp_path, "metrics")
    assert len(axes) == 3
    assert [ax.get_ylabel() for ax in axes] == ["loss", "accuracy", "error_rate"]


def test_plots_draw_on_a_given_axes(recorder):
    _, ax = plt.subplots()
    assert recorder.plot_lr(ax=ax) is ax
    assert recorder.plot_losses(ax=ax) is ax
    assert recorder.plot(ax=ax) is ax


@pytest.mark.parametrize(
    "draw, why",
    [
        (lambda rec: rec.plot(), "no iterations recorded yet; run learn.lr_find"),
        (lambda rec: rec.plot_lr(), "no training iterations recorded yet"),
        (lambda rec: rec.plot_lr(show_moms=True), "no training iterations recorded yet"),
        (lambda rec: rec.plot_losses(), "no training iterations recorded yet"),
        (lambda rec: rec.plot_metrics(), "no epoch has finished yet"),
    ],
)
def test_plots_with_nothing_to_draw_warn_and_say_why(draw, why):
    with pytest.warns(NothingToPlotWarning, match=why):
        result = draw(Recorder())
    first = axes_list(result)[0]
    assert why in first.texts[0].get_text()  # said on the figure too, for a notebook


def test_plot_after_a_constant_lr_fit_warns_instead_of_drawing_one_vertical_line():
    learn = Learner(make_dls(), make_mlp(), progress=False)
    learn.fit(0.1, 1)
    with pytest.warns(NothingToPlotWarning, match=r"it was 0.1 for all 6 iterations.*lr_find"):
        ax = learn.recorder.plot()
    assert ax.get_lines() == []


def test_a_range_test_survives_later_fits_in_its_result_and_in_recorder_plot():
    learn = Learner(make_dls(), make_mlp(), progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a short test on tiny data: some suggestions may find nothing
        result = learn.lr_find(num_it=40, stop_div=False)
    lrs, smooth = list(result.lrs), list(result.smooth_losses)
    assert learn.recorder.plot().get_lines()[0].get_xdata().tolist() == lrs[10:-5]
    learn.fit(0.1, 1)
    assert learn.recorder.lrs != lrs  # the recorder moved on
    assert learn.recorder.lr_find_result is result
    for ax in (result.plot(), learn.recorder.plot(), learn.recorder.plot_lr_find()):
        curve = ax.get_lines()[0]
        assert curve.get_xdata().tolist() == lrs[10:-5] and curve.get_ydata().tolist() == smooth[10:-5]
        assert ax.get_xscale() == "log" and ax.get_legend() is not None


def test_new_figures_are_legible_in_a_notebook(recorder, monkeypatch):
    monkeypatch.setitem(plt.rcParams, "figure.dpi", 72)  # what the notebook inline backend sets
    for result in (recorder.plot(), recorder.plot_lr(show_moms=True), recorder.plot_losses(), recorder.plot_metrics()):
        assert axes_list(result)[0].figure.dpi >= 100


def test_fastai_names_are_the_same_plots():
    assert Recorder.plot_loss is Recorder.plot_losses
    assert Recorder.plot_lr_find is Recorder.plot
    assert Recorder.plot_sched is Recorder.plot_lr
