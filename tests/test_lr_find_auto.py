"""`lr_find(n_repeats="auto")`: one test when the default reads a clear answer from it, three averaged (the same
tests `n_repeats=3` runs) when it does not."""

import math
import warnings

import pytest
import torch
from conftest import make_dls, make_mlp

from lrcycle import Callback, Learner
from lrcycle.finder.suggest import SuggestionWarning


def learner():
    torch.manual_seed(0)
    return Learner(make_dls(n_train=160), make_mlp(), progress=False, device="cpu")


def clear(lrs, smooth_losses):
    return 1e-3


def unclear(lrs, smooth_losses):
    warnings.warn("unclear: no answer", SuggestionWarning, stacklevel=2)
    return math.nan


class CountSteps(Callback):
    def __init__(self):
        self.n = 0

    def after_step(self, learn):
        self.n += 1


def run(n_repeats, default):
    torch.manual_seed(1)
    learn, count = learner(), CountSteps()
    learn.add_cbs([count])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SuggestionWarning)
        result = learn.lr_find(num_it=30, stop_div=False, n_repeats=n_repeats, suggest_funcs=[default])
    return result, count.n


def test_auto_runs_one_test_when_the_default_reads_a_clear_answer():
    (auto, steps), (single, _) = run("auto", clear), run(1, clear)
    assert steps == 30
    assert auto.losses == single.losses and auto.smooth_losses == single.smooth_losses


def test_auto_averages_three_tests_when_the_default_finds_no_clear_answer():
    (auto, steps), (single, _) = run("auto", unclear), run(1, unclear)
    assert steps == 3 * 30
    assert len(auto.losses) == 30 and auto.losses != pytest.approx(single.losses)  # an average of three


@pytest.mark.parametrize("bad", [0, -1, 1.5, "twice", True])
def test_a_bad_n_repeats_names_the_argument_and_the_choices(bad):
    with pytest.raises(ValueError, match='n_repeats.*"auto"'):
        learner().lr_find(num_it=10, n_repeats=bad)
