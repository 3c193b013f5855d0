"""Schedule-free optimizers (the real `schedulefree` package): the Learner trains on the training weights,
validates, predicts and saves the evaluation weights, matches a plain PyTorch loop run beside it, recomputes
BatchNorm statistics for the evaluation weights, and its range test puts everything back exactly."""

import copy
from functools import partial

import pytest
import torch
from conftest import make_dls, make_mlp
from torch import nn

from lrcycle import Callback, Learner
from lrcycle.optim import has_modes

schedulefree = pytest.importorskip("schedulefree", reason="the schedulefree extra (pip install lrcycle[schedulefree])")

OPTS = {
    "adamw": partial(schedulefree.AdamWScheduleFree, warmup_steps=3),
    "sgd": partial(schedulefree.SGDScheduleFree, momentum=0.9, warmup_steps=3),
}
LRS = {"adamw": 1e-2, "sgd": 0.1}


def bn_mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))


def make_learner(opt="adamw", model=None, tmp_path=None, shuffle=True, **kw):
    model = make_mlp() if model is None else model
    path = "." if tmp_path is None else tmp_path
    dls = make_dls(shuffle=shuffle)
    return Learner(dls, model, opt_func=OPTS[opt], lr=LRS[opt], progress=False, path=path, **kw)


def train_mode(learn):
    return [group["train_mode"] for group in learn.opt.param_groups]


class ModeSpy(Callback):
    """The optimizer's mode where each stage reads the weights."""

    order = 100

    def before_fit(self, learn):
        self.train, self.valid = [], []

    def before_batch(self, learn):
        (self.train if learn.training else self.valid).append(learn.opt.param_groups[0]["train_mode"])


def raw_loop(opt, n_epoch, model_seed=0, data_seed=0):
    """The schedule_free README's loop, in plain PyTorch: `opt.train()` before training, `opt.eval()` after."""
    model = make_mlp(seed=model_seed)
    optimizer = OPTS[opt](model.parameters(), lr=LRS[opt])
    dls = make_dls()
    torch.manual_seed(data_seed)
    for _ in range(n_epoch):
        model.train()
        optimizer.train()
        for xb, yb in dls.train:
            nn.functional.cross_entropy(model(xb), yb).backward()
            optimizer.step()
            optimizer.zero_grad()
        for _ in dls.valid:  # no validation, but a DataLoader draws a seed from torch's RNG on every pass
            pass
    optimizer.eval()
    return model, optimizer


@pytest.mark.parametrize("opt", list(OPTS))
def test_fit_trains_on_training_weights_and_ends_on_the_evaluation_weights_like_a_plain_loop(opt):
    learn, spy = make_learner(opt), ModeSpy()
    torch.manual_seed(0)
    learn.fit(LRS[opt], 3, cbs=[spy])
    assert spy.train and all(spy.train) and spy.valid and not any(spy.valid)
    assert train_mode(learn) == [False]  # eval mode at the end of the fit
    # validation sees the evaluation weights but hands the very same training weights back: the learner
    # (validating every epoch) ends bit for bit where the plain loop (never switching in between) does
    model, _ = raw_loop(opt, 3)
    for a, b in zip(learn.model.parameters(), model.parameters(), strict=True):
        assert torch.equal(a, b)
    preds, targets = learn.get_preds()
    x_valid, y_valid = learn.dls.valid.dataset.tensors
    with torch.no_grad():
        assert torch.equal(preds, model.eval()(x_valid)) and torch.equal(targets, y_valid)
    assert learn.validate()[0] == pytest.approx(learn.recorder.epochs[-1]["valid_loss"], rel=1e-6)


@pytest.mark.parametrize("opt", list(OPTS))
def test_get_preds_and_save_between_fits_and_a_second_fit(opt, tmp_path):
    learn = make_learner(opt, tmp_path=tmp_path)
    torch.manual_seed(0)
    learn.fit(LRS[opt], 2)
    preds, _ = learn.get_preds()
    file = learn.save("between")
    state = torch.load(file, weights_only=True)
    assert all(not g["train_mode"] for g in state["opt"]["param_groups"])
    assert all(torch.equal(v, learn.model.state_dict()[k]) for k, v in state["model"].items())
    learn.fit(LRS[opt], 1)  # switches back to the training weights first (a step in eval mode would raise)
    assert train_mode(learn) == [False]
    # a fresh learner loading the checkpoint predicts exactly what the first one predicted between fits
    other = make_learner(opt, tmp_path=tmp_path)
    other.load("between")
    assert torch.equal(other.get_preds()[0], preds)


class SaveAndPredictMidFit(Callback):
    """In the middle of training (training weights in the model): save and predict, as a user callback might."""

    order = 100

    def __init__(self, at):
        self.at = at

    def after_step(self, learn):
        if learn.train_iter != self.at:
            return
        self.train_weights = [p.detach().clone() for p in learn.model.parameters()]
        opt = learn.opt
        beta = opt.param_groups[0]["betas"][0]
        # x = y + (1 - 1/beta) (z - y): the evaluation weights, the package's formula written out
        self.expected = [p + (1 - 1 / beta) * (opt.state[p]["z"] - p) for p in learn.model.parameters()]
        self.preds = learn.get_preds()[0]
        self.file = learn.save("mid")
        self.after = [p.detach().clone() for p in learn.model.parameters()]
        self.mode = train_mode(learn)


def test_save_and_get_preds_during_training_use_evaluation_weights_and_change_nothing(tmp_path):
    spy = SaveAndPredictMidFit(at=9)
    learn = make_learner("adamw", tmp_path=tmp_path)
    torch.manual_seed(0)
    learn.fit(1e-2, 3, cbs=[spy])
    saved = torch.load(spy.file, weights_only=True)["model"]
    for (name, _), expected in zip(learn.model.named_parameters(), spy.expected, strict=True):
        torch.testing.assert_close(saved[name], expected, rtol=1e-5, atol=1e-7)
    x_valid = learn.dls.valid.dataset.tensors[0]
    check = make_mlp()
    check.load_state_dict(saved)
    with torch.no_grad():
        torch.testing.assert_close(spy.preds, check.eval()(x_valid), rtol=1e-5, atol=1e-6)
    assert all(torch.equal(a, b) for a, b in zip(spy.train_weights, spy.after, strict=True))
    assert spy.mode == [True]
    # training went on exactly as without the save and the prediction (a pass over the validation loader
    # draws a seed from torch's RNG, so the reference makes one pass too)
    reference = make_learner("adamw", tmp_path=tmp_path)
    torch.manual_seed(0)
    reference.fit(1e-2, 3, cbs=[OneValidPass(at=9)])
    assert all(torch.equal(a, b) for a, b in zip(learn.model.parameters(), reference.model.parameters(), strict=True))


class OneValidPass(Callback):
    order = 100

    def __init__(self, at):
        self.at = at

    def after_step(self, learn):
        if learn.train_iter == self.at:
            for _ in learn.dls.valid:
                pass


def test_batchnorm_statistics_are_recomputed_for_the_evaluation_weights():
    learn = make_learner("adamw", model=bn_mlp(), shuffle=False)  # the same batches in both passes
    torch.manual_seed(0)
    learn.fit(1e-2, 2)
    rng = torch.get_rng_state()
    # reference: torch's own pass over the training data with the final (evaluation) weights
    reference = copy.deepcopy(learn.model)
    torch.optim.swa_utils.update_bn(learn.dls.train, reference)
    bn, ref_bn = learn.model[1], reference[1]
    torch.testing.assert_close(bn.running_mean, ref_bn.running_mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(bn.running_var, ref_bn.running_var, rtol=1e-5, atol=1e-6)
    assert bn.momentum == 0.1  # the layer's own momentum is back
    torch.set_rng_state(rng)
    # what validation measured is what the model left after the fit gives
    assert learn.validate()[0] == pytest.approx(learn.recorder.epochs[-1]["valid_loss"], rel=1e-6)


@pytest.mark.parametrize("opt", list(OPTS))
def test_range_test_with_a_schedule_free_optimizer_restores_it_exactly(opt):
    learn = make_learner(opt, model=bn_mlp())
    torch.manual_seed(0)
    learn.fit(LRS[opt], 1)
    model_state = copy.deepcopy(learn.model.state_dict())
    opt_state = copy.deepcopy(learn.opt.state_dict())
    rng = torch.get_rng_state()
    result = learn.lr_find(num_it=20)
    assert len(result.lrs) > 5
    assert all(torch.equal(v, learn.model.state_dict()[k]) for k, v in model_state.items())
    after = learn.opt.state_dict()
    assert after["param_groups"] == opt_state["param_groups"]  # lr, k, weight_sum, lr_max, train_mode
    for p, state in opt_state["state"].items():
        assert state.keys() == after["state"][p].keys()
        assert all(torch.equal(v, after["state"][p][k]) for k, v in state.items() if isinstance(v, torch.Tensor))
    assert torch.equal(torch.get_rng_state(), rng)
    learn.fit(LRS[opt], 1)  # and it trains on from there


def test_range_test_before_any_fit_leaves_no_optimizer():
    learn = make_learner("adamw")
    weights = copy.deepcopy(learn.model.state_dict())
    learn.lr_find(num_it=10)
    assert learn.opt is None
    assert all(torch.equal(v, learn.model.state_dict()[k]) for k, v in weights.items())


class Boom(Callback):
    order = 100

    def after_batch(self, learn):
        if learn.train_iter == 4:
            raise RuntimeError("boom")


def test_a_fit_that_fails_still_ends_in_eval_mode():
    learn = make_learner("adamw")
    with pytest.raises(RuntimeError, match="boom"):
        learn.fit(1e-2, 2, cbs=[Boom()])
    assert train_mode(learn) == [False]
    assert not any(type(cb).__name__ == "ScheduleFreeSwitch" for cb in learn.cbs)


def test_torch_optimizers_get_no_switch():
    sgd = torch.optim.SGD(make_mlp().parameters(), lr=0.1)
    assert not has_modes(sgd)
    sf = OPTS["adamw"](make_mlp().parameters(), lr=0.1)
    assert has_modes(sf)
