"""A scheduled fit stopped after epoch k and resumed from a checkpoint (model and optimizer through
learn.save/load, the scheduler's state_dict, torch's RNG state) follows the uninterrupted fit exactly."""

import pytest
import torch
from test_schedules_fit import N_ITER, SCHEDULED_FITS, make_learner

from lrcycle import Callback, CancelFitException
from lrcycle.callbacks.schedulers import CircularLRCallback, CyclicCallback, OneCycleCallback, SGDRCallback

STOP_AFTER = 2  # epochs done when the fit is stopped


class CheckpointAndStop(Callback):
    """At the end of epoch k: save model + optimizer, the schedulers' states and the RNG, then stop."""

    order = 90

    def __init__(self, k):
        self.k = k

    def after_epoch(self, learn):
        if learn.epoch + 1 == self.k:
            learn.save("mid")
            self.schedulers = [(type(cb), cb.state_dict()) for cb in learn.cbs if hasattr(cb, "state_dict")]
            self.rng = torch.get_rng_state()
            raise CancelFitException


def run(tmp_path, fit, **extra):
    torch.manual_seed(1)
    learn = make_learner("adam", 3, path=tmp_path)
    method, args, kw = SCHEDULED_FITS[fit]
    getattr(learn, method)(*args, **kw, **extra)
    return learn


@pytest.mark.parametrize("fit", list(SCHEDULED_FITS))
@pytest.mark.parametrize("how", ["same_call", "state_dict"])
def test_resumed_fit_follows_the_uninterrupted_one(tmp_path, fit, how):
    whole = run(tmp_path, fit)
    stop = CheckpointAndStop(STOP_AFTER)
    run(tmp_path, fit, cbs=[stop])
    assert len(stop.schedulers) == 1

    resumed = make_learner("adam", 3, path=tmp_path)
    torch.nn.init.zeros_(resumed.model[0][0].weight)  # make sure the weights come from the checkpoint
    resumed.load("mid")
    torch.set_rng_state(stop.rng)
    method, args, kw = SCHEDULED_FITS[fit]
    if how == "same_call":
        getattr(resumed, method)(*args, **kw, start_epoch=STOP_AFTER)
    else:
        cls, state = stop.schedulers[0]
        resumed.fit_epochs(whole.n_epoch, [cls(**state)], start_epoch=STOP_AFTER)

    first = STOP_AFTER * N_ITER
    assert resumed.recorder.iters == whole.recorder.iters[first:]
    assert [lrs[first:] for lrs in whole.recorder.group_lrs] == resumed.recorder.group_lrs
    assert whole.recorder.moms[first:] == resumed.recorder.moms
    for a, b in zip(whole.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)


STATEFUL = [
    (OneCycleCallback, {"lr_max": [1e-3, 1e-2], "div": 10.0, "pct_start": 0.4}),
    (SGDRCallback, {"lrs": [1e-2], "cycle_len": 2, "cycle_mult": 3}),
    (CircularLRCallback, {"lrs": [1e-2], "div": 32, "cut_div": 5, "moms": (0.95, 0.85), "cycle_len": 3}),
    (CyclicCallback, {"lr_max": [1e-2], "n_cycles": 2.5, "mode": "exp_range", "gamma": 0.99}),
]


@pytest.mark.parametrize("cls, kw", STATEFUL, ids=[c.__name__ for c, _ in STATEFUL])
def test_load_state_dict_takes_another_schedulers_arguments(cls, kw):
    source, target = cls(**kw), cls(**{**kw, **({"lr_max": [5.0]} if "lr_max" in kw else {"lrs": [5.0]})})
    target.load_state_dict(source.state_dict())
    assert target.state_dict() == source.state_dict()
    assert target.hypers(7, 40, 4) == source.hypers(7, 40, 4)


def test_load_state_dict_checks_the_state():
    cb = OneCycleCallback(1e-2)
    with pytest.raises(ValueError, match="pct_start"):
        cb.load_state_dict({**cb.state_dict(), "pct_start": 1.5})
