"""One name per concept: `fit_cyclic`'s count of cycles is `n_cycle`, as in fastai 0.7's `fit(lr, n_cycle)`. The old
spelling `n_cycles` still works, with a DeprecationWarning at the caller's own line, and sets the same lrs."""

import warnings

import pytest
import torch
from conftest import make_dls, make_mlp

import lrcycle
from lrcycle import CyclicLRCallback, Learner


def trace(**kwargs):
    torch.manual_seed(0)
    learn = Learner(make_dls(), make_mlp(), progress=False)
    learn.fit_cyclic(2, 0.1, **kwargs)
    return list(learn.recorder.lrs)


def test_the_old_spelling_warns_at_the_callers_line_and_sets_the_same_lrs():
    expected = trace(n_cycle=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = trace(n_cycles=3)
    deprecations = [w for w in caught if issubclass(w.category, DeprecationWarning) and "n_cycle" in str(w.message)]
    assert got == expected
    assert len(deprecations) == 1 and deprecations[0].filename == __file__


def test_both_spellings_at_once_are_refused():
    with pytest.raises(ValueError, match="n_cycle/n_cycles"):
        trace(n_cycle=2, n_cycles=2)


def test_the_callback_and_the_torch_scheduler_take_the_old_spelling_too():
    with pytest.warns(DeprecationWarning, match="n_cycle"):
        CyclicLRCallback(n_cycles=2)
    opt = torch.optim.SGD(make_mlp().parameters(), lr=0.1)
    with pytest.warns(DeprecationWarning, match="n_cycle") as caught:
        lrcycle.scheduler(opt, "fit_cyclic", 2, 0.1, n_cycles=2, steps_per_epoch=4)
    assert caught[0].filename == __file__
