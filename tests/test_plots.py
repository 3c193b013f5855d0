"""Every recorder plot returns its Axes and saves a non-empty PNG."""

import numpy as np
import pytest
from conftest import make_dls, make_mlp
from matplotlib.axes import Axes

from lrcycle import Learner, accuracy, error_rate, sequential_splitter


@pytest.fixture(scope="module")
def recorder():
    learn = Learner(
        make_dls(),
        make_mlp(),
        metrics=[accuracy, error_rate],
        splitter=sequential_splitter(3),
        progress=False,
    )
    learn.fit([1e-3, 1e-2, 1e-1], 3)
    return learn.recorder


def axes_list(result):
    return list(np.ravel(result)) if isinstance(result, np.ndarray) else [result]


def save(result, tmp_path, name):
    axes = axes_list(result)
    assert axes and all(isinstance(ax, Axes) for ax in axes)
    file = tmp_path / f"{name}.png"
    axes[0].figure.savefig(file)
    assert file.stat().st_size > 1000
    return axes


def test_plot_draws_smoothed_loss_against_lr_on_a_log_axis(recorder, tmp_path):
    (ax,) = save(recorder.plot(skip_start=0, skip_end=0), tmp_path, "plot")
    assert ax.get_xscale() == "log"
    x, y = ax.get_lines()[0].get_data()
    assert list(x) == recorder.lrs and list(y) == recorder.smooth_losses


def test_plot_skips_points_and_marks_suggestions(recorder, tmp_path):
    recorder.suggestions = {"valley": 1e-2, "range": (1e-3, 5e-2)}
    try:
        (ax,) = save(recorder.plot(skip_start=2, skip_end=1), tmp_path, "plot_marks")
    finally:
        recorder.suggestions = None
    assert len(ax.get_lines()[0].get_xdata()) == len(recorder.lrs) - 3
    assert len(ax.get_lines()) == 1 + 3  # the curve and three vertical marks
    assert len(ax.get_legend().get_texts()) == 2


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


def test_plot_losses(recorder, tmp_path):
    (ax,) = save(recorder.plot_losses(skip_start=0), tmp_path, "losses")
    raw, smooth, valid = ax.get_lines()
    assert list(raw.get_ydata()) == recorder.losses and list(smooth.get_ydata()) == recorder.smooth_losses
    assert list(valid.get_ydata()) == [row["valid_loss"] for row in recorder.epochs]


def test_plot_metrics_one_panel_for_losses_and_one_per_metric(recorder, tmp_path):
    axes = save(recorder.plot_metrics(), tmp_path, "metrics")
    assert len(axes) == 3
    assert [ax.get_ylabel() for ax in axes] == ["loss", "accuracy", "error_rate"]


def test_plots_draw_on_a_given_axes(recorder):
    import matplotlib.pyplot as plt

    _, ax = plt.subplots()
    assert recorder.plot_lr(ax=ax) is ax
    assert recorder.plot_losses(ax=ax) is ax
    assert recorder.plot(ax=ax) is ax
