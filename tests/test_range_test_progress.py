"""The range test's progress: one summary line in a log (a pipe, CI), the same bar from `lrcycle.range_test`
as from `lr_find` in a terminal, `progress=False` for nothing."""

import re
import warnings

import pytest
import torch
from conftest import make_dls, make_mlp
from test_progress import run_in_a_pseudo_terminal
from torch import nn

import lrcycle
from lrcycle import Learner

pytestmark = pytest.mark.filterwarnings("ignore::lrcycle.finder.suggest.SuggestionWarning")


def expected_line(result, num_it):
    """The summary written out from the result's own curve: length, lr span, the lowest smoothed loss."""
    best = min(range(len(result.smooth_losses)), key=result.smooth_losses.__getitem__)
    line = (
        f"range test: {len(result.lrs)} of {num_it} iterations, lr {result.lrs[0]:.3g} to {result.lrs[-1]:.3g}, "
        f"lowest smoothed loss {result.smooth_losses[best]:.4f} at lr {result.lrs[best]:.3g}"
    )
    return line + (" (stopped early: the loss diverged)" if len(result.lrs) < num_it else "")


def test_lr_find_in_a_pipe_prints_one_summary_line(capsys):
    learn = Learner(make_dls(), make_mlp())  # progress on; pytest's captured stdout is not a terminal
    result = learn.lr_find(num_it=20, stop_div=False)
    assert capsys.readouterr().out.splitlines() == [expected_line(result, 20)]


def test_an_early_stop_says_so_in_the_line(capsys):
    learn = Learner(make_dls(), make_mlp())
    result = learn.lr_find(start_lr=1e-2, end_lr=1e4, num_it=60)
    assert len(result.lrs) < 60
    (line,) = capsys.readouterr().out.splitlines()
    assert line == expected_line(result, 60) and line.endswith("(stopped early: the loss diverged)")


def own_objects():
    model = make_mlp()
    return model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), nn.CrossEntropyLoss(), make_dls().train


def test_range_test_on_your_own_objects_prints_the_same_line_and_progress_false_nothing(capsys):
    result = lrcycle.range_test(*own_objects(), num_it=20, stop_div=False)
    assert capsys.readouterr().out.splitlines() == [expected_line(result, 20)]
    lrcycle.range_test(*own_objects(), num_it=20, progress=False)
    assert capsys.readouterr().out == ""
    with pytest.raises(TypeError, match="progress"):
        lrcycle.range_test(*own_objects(), num_it=20, progress="no")


def test_range_test_shows_lr_finds_bar_in_a_terminal():
    def body():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lrcycle.range_test(*own_objects(), num_it=30, stop_div=False)

    frames = run_in_a_pseudo_terminal(body).replace("\r\n", "\n").split("\r")
    assert any(re.search(r"range test \|.*\[30/30 \d\d:\d\d<\d\d:\d\d", f) for f in frames)
