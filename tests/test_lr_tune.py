"""`learn.lr_tune`: trial fits at multiples of an estimate, every epoch cut to `budget` of its steps, scored on
the validation set, everything put back; checked against closed-form training on a quadratic and against a
plain fit with its epochs cut by hand."""

import math
from functools import partial

import numpy as np
import pytest
import torch
from conftest import make_dls, make_mlp
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lrcycle import DataLoaders, GradientAccumulation, Learner, NonFiniteLossWarning, accuracy
from lrcycle.callback import Callback
from lrcycle.finder.tune import TUNE_FACTORS, TUNE_MARGIN, TrialEpochs

TARGET, W0 = 3.0, 0.5


class Scalar(nn.Module):
    """pred = w for every row: with loss (pred - 3)^2 each SGD step is w <- w - lr * 2 (w - 3)."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(W0, dtype=torch.float64))

    def forward(self, x):
        return self.w.expand(x.shape[0])


def quadratic_learner(n_train=8):
    x, y = torch.zeros(n_train, 1, dtype=torch.float64), torch.zeros(n_train, dtype=torch.float64)
    train = DataLoader(TensorDataset(x, y), batch_size=1)
    valid = DataLoader(TensorDataset(x[:2], y[:2]), batch_size=2)
    loss = lambda pred, y: ((pred - TARGET) ** 2).mean()
    sgd = partial(torch.optim.SGD, momentum=0.0)
    return Learner(DataLoaders(train, valid, loss), Scalar(), opt_func=sgd, progress=False, device="cpu")


def quadratic_loss_after(lr, steps):
    """(w_k - 3)^2 after k plain SGD steps at a constant lr: w_k - 3 = (w0 - 3) (1 - 2 lr)^k."""
    return ((W0 - TARGET) * (1 - 2 * lr) ** steps) ** 2


def test_each_trial_scores_the_closed_form_of_its_compressed_fit_and_the_best_wins():
    learn = quadratic_learner()  # 8 steps an epoch; budget 0.5 -> 4 steps an epoch, 2 epochs -> 8 steps
    result = learn.lr_tune("fit", None, 2, lr=0.25, factors=(0.5, 1, 2, 4), budget=0.5, margin=1.0)
    lrs = [0.125, 0.25, 0.5, 1.0]
    assert result.trials["lr"].tolist() == lrs
    expected = [quadratic_loss_after(lr, 8) for lr in lrs]
    np.testing.assert_allclose(result.trials["valid_loss"], expected, rtol=1e-6, atol=1e-12)  # float32 sums
    assert result.lr == 0.5 and result.estimate == 0.25 and result.monitor == "valid_loss"
    assert result.cost == pytest.approx(4 * 4 / 8)  # 4 trials of half the steps
    assert learn.model.w.item() == W0 and learn.lr == 1e-3  # put back


def test_a_trial_runs_the_planned_schedule_shape_on_the_shorter_epochs():
    """A one-cycle trial of 3 epochs cut to 2 steps each is the one-cycle schedule over 6 steps (the fastai
    formula written out), and its steps are the first 2 batches of each epoch."""
    learn = Learner(make_dls(n_train=96, bs=16), make_mlp(), progress=False, device="cpu")
    learn.lr = 0.1
    learn.fit_one_cycle(3, cbs=[TrialEpochs(2)])
    total, lr_max, div, div_final, pct = 6, 0.1, 25.0, 1e5, 0.25

    def cos_between(start, end, p):
        return end + (start - end) / 2 * (1 + math.cos(math.pi * p))

    def one_cycle(i):
        up = pct * total
        if i < up:
            return cos_between(lr_max / div, lr_max, i / up)
        return cos_between(lr_max, lr_max / div_final, (i - up) / (total - up))

    assert learn.recorder.iters == list(range(total))
    assert learn.recorder.iter_epochs == [0, 0, 1, 1, 2, 2]
    np.testing.assert_allclose(learn.recorder.lrs, [one_cycle(i) for i in range(total)], rtol=1e-12)
    assert all(math.isnan(row["valid_loss"]) for row in learn.recorder.epochs)  # validation skipped


def test_steps_are_optimizer_steps_under_gradient_accumulation():
    learn = Learner(make_dls(n_train=96, bs=16), make_mlp(), progress=False, device="cpu")
    learn.fit(0.01, 2, cbs=[GradientAccumulation(2), TrialEpochs(2)])  # 6 batches = 3 steps an epoch; cut to 2
    assert learn.recorder.iters == [0, 1, 2, 3] and learn.train_iter == 4


def test_by_default_the_lowest_valid_loss_wins_backed_off_by_the_margin_from_lr_finds_estimate():
    torch.manual_seed(0)
    learn = Learner(make_dls(), make_mlp(), metrics=[accuracy], progress=False, device="cpu")
    result = learn.lr_tune("fit_one_cycle", 2)
    assert result.monitor == "valid_loss" and result.estimate == result.range_test[0]
    assert result.trials["factor"].tolist() == list(TUNE_FACTORS)
    best = result.trials["valid_loss"].idxmin()
    assert result.lr == pytest.approx(result.trials["lr"][best] * TUNE_MARGIN, rel=1e-12)


def test_a_metric_monitor_takes_the_highest_and_error_the_lowest():
    def error(pred, target):
        return 1 - accuracy(pred, target)

    torch.manual_seed(0)
    learn = Learner(make_dls(), make_mlp(), metrics=[accuracy, error], progress=False, device="cpu")
    by_acc = learn.lr_tune("fit_one_cycle", 2, lr=0.05, factors=(0.1, 1.0, 10.0), monitor="accuracy", margin=1)
    assert by_acc.lr == by_acc.trials["lr"][by_acc.trials["accuracy"].idxmax()]
    by_err = learn.lr_tune("fit_one_cycle", 2, lr=0.05, factors=(0.1, 1.0, 10.0), monitor="error", margin=1)
    assert by_err.lr == by_err.trials["lr"][by_err.trials["error"].idxmin()]
    np.testing.assert_allclose(by_err.trials["error"], 1 - by_acc.trials["accuracy"], rtol=1e-6)  # same trials


def test_a_nan_trial_ranks_last():
    learn = quadratic_learner()  # lr 4 diverges: w - 3 grows by 7x a step, to inf and NaN
    with pytest.warns(NonFiniteLossWarning):
        result = learn.lr_tune("fit", None, 50, lr=0.25, factors=(16.0, 1.0), budget=1.0, margin=1.0)
    assert not np.isfinite(result.trials["valid_loss"][0]) and result.lr == 0.25


def state_of(learn):
    weights = {k: v.clone() for k, v in learn.model.state_dict().items()}
    opt = None if learn.opt is None else [t.clone() for s in learn.opt.state.values() for t in s.values()]
    hypers = None if learn.opt is None else [dict(g, params=None) for g in learn.opt.param_groups]
    return weights, opt, hypers, torch.get_rng_state(), learn.lr


def assert_same_state(before, learn):
    weights, opt, hypers, rng, lr = before
    assert all(torch.equal(v, learn.model.state_dict()[k]) for k, v in weights.items())
    if opt is None:
        assert learn.opt is None
    else:
        after = [t for s in learn.opt.state.values() for t in s.values()]
        assert all(torch.equal(a, b) for a, b in zip(opt, after, strict=True))
        assert [dict(g, params=None) for g in learn.opt.param_groups] == hypers
    assert torch.equal(rng, torch.get_rng_state()) and learn.lr == lr


def trained_learner():
    torch.manual_seed(0)
    learn = Learner(make_dls(), make_mlp(), metrics=[accuracy], progress=False, device="cpu")
    learn.fit(0.05, 1)  # an optimizer with momentum buffers
    return learn


def test_everything_is_put_back_bit_for_bit():
    learn = trained_learner()
    before = state_of(learn)
    learn.lr_tune("fit_one_cycle", 2, factors=(0.5, 1.0, 2.0))
    assert_same_state(before, learn)


class InterruptAt(Callback):
    def __init__(self, n_fits, error):
        self.n_fits, self.error, self.seen = n_fits, error, 0

    def before_fit(self, learn):
        self.seen += 1
        if self.seen == self.n_fits:
            raise self.error


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError("boom")], ids=["ctrl-c", "error"])
def test_an_interrupted_trial_puts_everything_back(error):
    learn = trained_learner()
    before = state_of(learn)
    with pytest.raises(type(error) if isinstance(error, Exception) else error):
        learn.lr_tune("fit_one_cycle", 2, lr=0.01, cbs=[InterruptAt(2, error)])
    assert_same_state(before, learn)
    assert not any(isinstance(cb, (InterruptAt, TrialEpochs)) for cb in learn.cbs)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda learn: learn.lr_tune("fit_cyclic", 2, lr=0.01), "method"),
        (lambda learn: learn.lr_tune("fit_one_cycle", 2, 0.1), "args"),
        (lambda learn: learn.lr_tune("fit_one_cycle", 2, lr_max=0.1), "lr_max"),
        (lambda learn: learn.lr_tune("fit_one_cycle", 2, lr=0.01, factors=()), "factors"),
        (lambda learn: learn.lr_tune("fit_one_cycle", 2, lr=0.01, factors=(1, -2)), "factors"),
        (lambda learn: learn.lr_tune("fit_one_cycle", 2, lr=0.01, budget=0), "budget"),
        (lambda learn: learn.lr_tune("fit_one_cycle", 2, lr=0.01, monitor="f1"), "monitor"),
        (lambda learn: learn.lr_tune("fit_one_cycle", 2, lr=0.01, margin=0), "margin"),
        (lambda learn: learn.lr_tune("fit_one_cycle", 2, lr=-1.0), "lr"),
        (lambda learn: learn.lr_tune("fit_one_cycle", 2, lr=0.01, best_save_name="b"), "best_save_name"),
        (lambda learn: learn.lr_tune("fit_one_cycle", 0), "n_epoch"),  # the call's own checks, before lr_find
        (lambda learn: learn.lr_tune("fit_one_cycle", 2, pct_start=2.0), "pct_start"),
    ],
)
def test_bad_arguments_are_named_before_anything_changes(call, message):
    learn = trained_learner()
    before = state_of(learn)
    with pytest.raises(ValueError, match=message):
        call(learn)
    assert_same_state(before, learn)
    assert learn.recorder.lr_find_result is None  # no range test was run for nothing


def test_no_validation_set_is_an_error_before_anything_changes():
    torch.manual_seed(0)
    learn = Learner(make_dls(n_valid=0), make_mlp(), progress=False, device="cpu")
    learn.dls.valid = None
    with pytest.raises(ValueError, match="valid"):
        learn.lr_tune("fit_one_cycle", 2, lr=0.01)
    assert learn.opt is None
