"""Every plot method, with every option, returns one matplotlib Axes (the main panel), and
`.figure.savefig(...)` saves the whole figure, every panel in `ax.figure.axes`."""

import warnings

import matplotlib.pyplot as plt
import pytest
from conftest import make_dls, make_mlp
from matplotlib.axes import Axes

from lrcycle import Learner, accuracy, error_rate, plot_schedule


@pytest.fixture(scope="module")
def learn():
    learn = Learner(make_dls(), make_mlp(), metrics=[accuracy, error_rate], progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a short test on tiny data: some suggestions may find nothing
        learn.lr_find(num_it=30)
    learn.fit_one_cycle(2, 1e-2)
    return learn


def calls(learn):
    """(name, call, panels the figure should hold) for every plot method and option."""
    rec, result = learn.recorder, learn.recorder.lr_find_result
    preview = learn.preview("fit_one_cycle", 2, 1e-2)
    return [
        ("plot", lambda: rec.plot(), 1),
        ("plot skips, no suggestions", lambda: rec.plot(skip_start=2, skip_end=2, suggestions=False), 1),
        ("plot_lr_find", lambda: rec.plot_lr_find(), 1),
        ("plot_lr", lambda: rec.plot_lr(), 1),
        ("plot_lr show_moms", lambda: rec.plot_lr(show_moms=True), 2),
        ("plot_sched", lambda: rec.plot_sched(), 1),
        ("plot_sched show_moms", lambda: rec.plot_sched(show_moms=True), 2),
        ("plot_losses", lambda: rec.plot_losses(), 1),
        ("plot_losses skip_start", lambda: rec.plot_losses(skip_start=3), 1),
        ("plot_loss", lambda: rec.plot_loss(), 1),
        ("plot_metrics", lambda: rec.plot_metrics(), 3),  # losses, accuracy, error_rate
        ("result.plot", lambda: result.plot(), 1),
        ("result.plot no suggestions", lambda: result.plot(suggestions=False), 1),
        ("plot_schedule", lambda: plot_schedule(preview), 2),
        ("plot_schedule no moms", lambda: plot_schedule(preview, show_moms=False), 1),
    ]


def test_every_plot_method_and_option_returns_one_axes_whose_figure_saves(learn, tmp_path):
    for name, call, panels in calls(learn):
        ax = call()
        assert isinstance(ax, Axes), (name, type(ax))
        assert len(ax.figure.axes) == panels, name
        assert ax is ax.figure.axes[0], name  # the main panel is the top one
        file = tmp_path / f"{name.replace(' ', '_')}.png"
        ax.figure.savefig(file)
        assert file.stat().st_size > 1000, name
        plt.close(ax.figure)


def test_plots_given_axes_draw_there_and_return_the_first(learn):
    rec = learn.recorder
    _, one = plt.subplots()
    for call in (rec.plot, rec.plot_lr, rec.plot_losses, rec.lr_find_result.plot):
        assert call(ax=one) is one
    _, two = plt.subplots(2, 1)
    assert rec.plot_lr(show_moms=True, ax=two) is two[0]
    assert len(two[1].get_lines()) == 1  # momentum beneath
    _, three = plt.subplots(3, 1)
    assert rec.plot_metrics(ax=list(three)) is three[0]
    assert [a.get_ylabel() for a in three] == ["loss", "accuracy", "error_rate"]
    plt.close("all")


def test_a_multi_panel_plot_given_too_few_axes_is_an_error_naming_ax(learn):
    _, one = plt.subplots()
    with pytest.raises(TypeError, match=r"ax: this plot draws 2 panels; pass 2 Axes"):
        learn.recorder.plot_lr(show_moms=True, ax=one)
    with pytest.raises(TypeError, match=r"ax: this plot draws 3 panels; pass 3 Axes"):
        learn.recorder.plot_metrics(ax=one)
    plt.close("all")
