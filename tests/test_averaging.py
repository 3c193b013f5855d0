"""Weight averaging at cycle ends: the mean of the cycle-end weights, BatchNorm statistics recomputed."""

import copy

import pytest
import torch
from conftest import make_dls, make_mlp
from torch import nn

from lrcycle import Callback, Learner
from lrcycle.callbacks.averaging import CycleAverage


class ParamsAtEpochEnds(Callback):
    """Test probe: the model's parameters after every epoch, keyed by epochs done (1-based)."""

    order = 100

    def __init__(self):
        self.params = {}

    def after_epoch(self, learn):
        self.params[learn.epoch + 1] = [p.detach().clone() for p in learn.model.parameters()]


def mean_of(snapshots):
    return [torch.stack(ps).mean(0) for ps in zip(*snapshots, strict=True)]


def assert_params_close(model, expected):
    for p, e in zip(model.parameters(), expected, strict=True):
        torch.testing.assert_close(p.detach(), e, rtol=1e-5, atol=1e-6)


def make_learner(model=None, shuffle=True, **kwargs):
    return Learner(
        make_dls(shuffle=shuffle),
        model if model is not None else make_mlp(),
        lr=0.1,
        progress=False,
        **kwargs,
    )


def test_average_of_a_constant_fit_is_the_mean_of_every_epochs_weights():
    learn, probe = make_learner(), ParamsAtEpochEnds()
    avg = CycleAverage()
    learn.fit(0.1, 3, cbs=[avg, probe])
    assert avg.n_averaged == 3 and avg.kept == "average"
    assert_params_close(learn.model, mean_of([probe.params[e] for e in (1, 2, 3)]))


def test_average_over_sgdr_cycles_is_the_mean_of_the_cycle_end_weights():
    learn, probe = make_learner(), ParamsAtEpochEnds()
    learn.fit(0.1, 3, cycle_len=1, cycle_mult=2, cbs=[CycleAverage(), probe])
    assert learn.cycle_ends == [1, 3, 7]
    assert_params_close(learn.model, mean_of([probe.params[e] for e in (1, 3, 7)]))


def test_explicit_cycle_ends_and_start_cycle_choose_the_snapshots():
    learn, probe = make_learner(), ParamsAtEpochEnds()
    avg = CycleAverage(cycle_ends=[1, 2, 4, 5], start_cycle=1)
    learn.fit(0.1, 5, cbs=[avg, probe])
    assert avg.n_averaged == 3
    assert_params_close(learn.model, mean_of([probe.params[e] for e in (2, 4, 5)]))


def test_no_cycle_end_reached_leaves_the_last_weights():
    learn, probe = make_learner(), ParamsAtEpochEnds()
    avg = CycleAverage(start_cycle=5)
    learn.fit(0.1, 2, cbs=[avg, probe])
    assert avg.n_averaged == 0 and avg.kept is None
    assert_params_close(learn.model, probe.params[2])


def bn_mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))


def test_batchnorm_statistics_are_recomputed_for_the_averaged_weights():
    learn, probe = make_learner(bn_mlp(), shuffle=False), ParamsAtEpochEnds()  # the same batches each pass
    learn.fit(0.1, 3, cbs=[CycleAverage(), probe])
    averaged = mean_of([probe.params[e] for e in (1, 2, 3)])
    assert_params_close(learn.model, averaged)
    # independently: the averaged first layer's outputs over the training batches (all of size 16), whose
    # cumulative BatchNorm statistics are the mean over batches of each batch's mean and unbiased variance
    w, b = averaged[0], averaged[1]
    outs = [x @ w.T + b for x, _ in learn.dls.train]
    assert len({len(o) for o in outs}) == 1
    bn = learn.model[1]
    assert bn.num_batches_tracked == len(outs)  # one pass, counted afresh
    torch.testing.assert_close(bn.running_mean, torch.stack([o.mean(0) for o in outs]).mean(0))
    torch.testing.assert_close(bn.running_var, torch.stack([o.var(0) for o in outs]).mean(0))


def test_keep_best_keeps_the_weights_with_the_lower_validation_loss():
    learn, probe = make_learner(), ParamsAtEpochEnds()
    avg = CycleAverage(keep="best")
    learn.fit(0.5, 4, cbs=[avg, probe])
    last, average = probe.params[4], mean_of([probe.params[e] for e in (1, 2, 3, 4)])
    losses = {}
    for name, params in (("last", last), ("average", average)):
        model = copy.deepcopy(learn.model)
        for p, v in zip(model.parameters(), params, strict=True):
            p.data.copy_(v)
        xs, ys = zip(*learn.dls.valid, strict=True)
        with torch.no_grad():
            losses[name] = nn.functional.cross_entropy(model(torch.cat(xs)), torch.cat(ys)).item()
    assert avg.valid_losses == pytest.approx(losses, rel=1e-5)
    kept = min(losses, key=losses.get)
    assert avg.kept == kept
    assert_params_close(learn.model, last if kept == "last" else average)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="keep"):
        CycleAverage(keep="last")
    with pytest.raises(ValueError, match="start_cycle"):
        CycleAverage(start_cycle=-1)
    dls = make_dls()
    dls.valid = None
    learn = Learner(dls, make_mlp(), progress=False)
    with pytest.raises(ValueError, match="keep='best' needs validation data"):
        learn.fit(0.1, 1, cbs=[CycleAverage(keep="best")])
