"""A scheduled fit stopped after epoch k and resumed from a checkpoint (model and optimizer through
learn.save/load, the scheduler's state_dict, torch's RNG state) follows the uninterrupted fit exactly."""

import pytest
import torch
from test_schedules_fit import N_ITER, SCHEDULED_FITS, make_learner

from lrcycle import Callback, CancelFitException, ParamScheduler, schedules

STOP_AFTER = 2  # epochs done when the fit is stopped


class CheckpointAndStop(Callback):
    """At the end of epoch k: save model + optimizer, the schedulers' states and the RNG, then stop."""

    order = 90

    def __init__(self, k):
        self.k = k

    def after_epoch(self, learn):
        if learn.epoch + 1 == self.k:
            learn.save("mid")
            self.schedulers = [cb.state_dict() for cb in learn.cbs if isinstance(cb, ParamScheduler)]
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
        cb = ParamScheduler(schedules.constant_schedule([5.0] * 3, 1, 1))
        cb.load_state_dict(stop.schedulers[0])
        resumed.fit_epochs(whole.n_epoch, [cb], start_epoch=STOP_AFTER)

    first = STOP_AFTER * N_ITER
    assert resumed.recorder.iters == whole.recorder.iters[first:]
    assert [lrs[first:] for lrs in whole.recorder.group_lrs] == resumed.recorder.group_lrs
    assert whole.recorder.moms[first:] == resumed.recorder.moms
    for a, b in zip(whole.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_load_state_dict_replaces_the_schedule():
    source = ParamScheduler(schedules.one_cycle_schedule([1e-3, 1e-2], 4, 10.0, 1e5, 0.4, None, 10))
    target = ParamScheduler(schedules.constant_schedule([5.0, 5.0], 1, 1))
    target.load_state_dict(source.state_dict())
    assert target.state_dict() == source.state_dict()
    assert [target.schedule(i) for i in range(40)] == [source.schedule(i) for i in range(40)]


def test_load_state_dict_of_a_bad_state_changes_nothing():
    cb = ParamScheduler(schedules.constant_schedule([1e-2], 1, 1))
    before = cb.state_dict()
    with pytest.raises(ValueError, match="spec"):
        cb.load_state_dict({"spec": {"builder": "sawtooth"}})
    assert cb.state_dict() == before
