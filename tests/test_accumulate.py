"""Gradient accumulation: the step equals the large-batch step, and every count is of optimizer steps."""

import copy
import math
from functools import partial

import pytest
import torch
from conftest import make_dls, make_mlp
from torch import nn

from lrcycle import Callback, Learner
from lrcycle.callbacks.accumulate import GradientAccumulation

OPTIMIZERS = {
    "SGD": partial(torch.optim.SGD, momentum=0.9),
    "Adam": torch.optim.Adam,
    "AdamW": partial(torch.optim.AdamW, weight_decay=0.1),
}


def make_learner(n_train, bs, opt_func=OPTIMIZERS["SGD"], model=None):
    dls = make_dls(n_train=n_train, bs=bs, shuffle=False)
    return Learner(dls, model if model is not None else make_mlp(), opt_func=opt_func, progress=False)


def raw_large_batch_steps(model, opt_func, lr, dl, group_sizes):
    """Reference: one plain PyTorch step per group of batches joined into one batch; returns the losses."""
    opt = opt_func(model.parameters(), lr=lr)
    batches, losses = list(dl), []
    for size in group_sizes:
        group, batches = batches[:size], batches[size:]
        x, y = torch.cat([b[0] for b in group]), torch.cat([b[1] for b in group])
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    return losses


def assert_same_params(a, b):
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
def test_four_batches_of_8_step_like_one_batch_of_32(opt_name):
    learn = make_learner(n_train=32, bs=8, opt_func=OPTIMIZERS[opt_name])
    reference = copy.deepcopy(learn.model)
    learn.fit(0.01, 1, cbs=[GradientAccumulation(4)])
    losses = raw_large_batch_steps(reference, OPTIMIZERS[opt_name], 0.01, learn.dls.train, [4])
    assert learn.train_iter == 1 and learn.total_iter == 1
    assert_same_params(learn.model, reference)
    assert learn.recorder.losses == pytest.approx(losses, rel=1e-5)  # the unscaled mean of the 4 losses


@pytest.mark.parametrize("opt_name", ["SGD", "Adam"])
def test_a_short_last_group_steps_on_what_is_left(opt_name):
    # 5 batches, 2 per step: groups of 2, 2 and 1 batches, 3 steps
    learn = make_learner(n_train=40, bs=8, opt_func=OPTIMIZERS[opt_name])
    reference = copy.deepcopy(learn.model)
    learn.fit(0.01, 1, cbs=[GradientAccumulation(2)])
    losses = raw_large_batch_steps(reference, OPTIMIZERS[opt_name], 0.01, learn.dls.train, [2, 2, 1])
    assert learn.train_iter == 3 and learn.total_iter == 3 and learn.recorder.iters == [0, 1, 2]
    assert_same_params(learn.model, reference)
    assert learn.recorder.losses == pytest.approx(losses, rel=1e-5)


def test_two_epochs_match_the_large_batch_loop_step_for_step():
    learn = make_learner(n_train=40, bs=8, opt_func=torch.optim.Adam)
    reference = copy.deepcopy(learn.model)
    learn.fit(0.01, 2, cbs=[GradientAccumulation(2)])
    opt = torch.optim.Adam(reference.parameters(), lr=0.01)
    for _ in range(2):
        batches = list(learn.dls.train)
        for group in (batches[0:2], batches[2:4], batches[4:5]):
            x, y = torch.cat([b[0] for b in group]), torch.cat([b[1] for b in group])
            nn.functional.cross_entropy(reference(x), y).backward()
            opt.step()
            opt.zero_grad()
    assert_same_params(learn.model, reference)


def test_one_cycle_over_two_epochs_records_one_point_per_optimizer_step():
    learn = make_learner(n_train=96, bs=8)  # 12 batches per epoch, 3 steps per epoch
    lr_max, div, div_final, pct_start = 0.1, 25.0, 1e5, 0.25
    learn.fit_one_cycle(2, lr_max, div=div, div_final=div_final, pct_start=pct_start, cbs=[GradientAccumulation(4)])
    n = 6
    assert learn.train_iter == n and len(learn.recorder.losses) == n and learn.recorder.iters == list(range(n))

    def cos_anneal(a, b, t):
        return b + (a - b) / 2 * (1 + math.cos(math.pi * t))

    expected = [
        cos_anneal(lr_max / div, lr_max, (i / n) / pct_start)
        if i / n < pct_start
        else cos_anneal(lr_max, lr_max / div_final, (i / n - pct_start) / (1 - pct_start))
        for i in range(n)
    ]
    assert learn.recorder.lrs == pytest.approx(expected, rel=1e-9)


class BatchLosses(Callback):
    order = 100

    def __init__(self):
        self.losses = []

    def after_batch(self, learn):
        if learn.training:
            self.losses.append(learn.loss.item())


def test_recorder_sees_the_unscaled_mean_batch_loss_per_step():
    learn, probe = make_learner(n_train=48, bs=8), BatchLosses()
    learn.fit(0.01, 1, cbs=[GradientAccumulation(3), probe])  # 6 batches, 2 steps
    assert len(probe.losses) == 6
    expected = [sum(probe.losses[0:3]) / 3, sum(probe.losses[3:6]) / 3]
    assert learn.recorder.losses == pytest.approx(expected, rel=1e-12)


def test_resuming_at_start_epoch_counts_steps():
    learn = make_learner(n_train=40, bs=8)
    learn.fit_epochs(3, cbs=[GradientAccumulation(2)], start_epoch=1)
    assert learn.total_iter == 9 and learn.train_iter == 9
    assert learn.recorder.iters == list(range(3, 9))


def test_one_batch_per_step_is_a_plain_fit():
    plain, accumulated = make_learner(n_train=40, bs=8), make_learner(n_train=40, bs=8)
    plain.fit(0.05, 2)
    accumulated.fit(0.05, 2, cbs=[GradientAccumulation(1)])
    assert_same_params(plain.model, accumulated.model)
    assert plain.recorder.losses == accumulated.recorder.losses


def test_range_test_counts_optimizer_steps():
    learn = make_learner(n_train=40, bs=8)  # 5 batches, 2 per step: 3 steps per epoch
    learn.lr_find(num_it=10, stop_div=False)
    plain_lrs = list(learn.recorder.lrs)
    with learn.added_cbs([GradientAccumulation(2)]):
        learn.lr_find(num_it=10, stop_div=False)
    assert len(learn.recorder.losses) == 10
    assert learn.recorder.lrs == pytest.approx(plain_lrs)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_n_batches_is_rejected(bad):
    with pytest.raises(ValueError, match="n_batches"):
        GradientAccumulation(bad)
