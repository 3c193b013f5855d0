"""A constant-lr fit is step for step the computation of a hand-written PyTorch loop over the same batches."""

import signal
from functools import partial

import pytest
import torch
from conftest import make_dls
from torch import nn

from lrcycle import Callback, Learner, sequential_splitter

OPTS = {
    "sgd": partial(torch.optim.SGD, momentum=0.9),
    "adam": torch.optim.Adam,
    "adamw": partial(torch.optim.AdamW, weight_decay=0.01),
}
SEED = 123


def make_model():
    """Three children with BatchNorm and Dropout, so train/eval modes and RNG use must match too."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU()),
        nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Dropout(0.2)),
        nn.Linear(16, 3),
    )


def raw_fit(model, dls, opt, n_epoch, loss_func, max_steps=None):
    """The reference: train epoch, then a validation pass (its iterator draws from the RNG too)."""
    losses, steps = [], 0
    for _ in range(n_epoch):
        model.train()
        for xb, yb in dls.train:
            if steps == max_steps:
                return losses
            loss = loss_func(model(xb), yb)
            loss.backward()
            opt.step()
            opt.zero_grad()
            losses.append(loss.item())
            steps += 1
        model.eval()
        with torch.no_grad():
            for xb, yb in dls.valid:
                loss_func(model(xb), yb)
    return losses


def raw_opt(opt_func, model, lrs, splitter):
    groups = splitter(model) if splitter else [list(model.parameters())]
    return opt_func([{"params": g, "lr": lr} for g, lr in zip(groups, lrs, strict=True)], lr=lrs[-1])


def assert_same_params(a: nn.Module, b: nn.Module):
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), name


@pytest.mark.parametrize("opt_name", list(OPTS))
@pytest.mark.parametrize("n_groups", [1, 3])
def test_constant_lr_fit_equals_a_raw_loop(opt_name, n_groups):
    opt_func = OPTS[opt_name]
    lrs = [0.01] if n_groups == 1 else [1e-3, 3e-3, 1e-2]
    splitter = sequential_splitter(3) if n_groups == 3 else None
    dls = make_dls()

    model = make_model()
    learn = Learner(dls, model, opt_func=opt_func, splitter=splitter, progress=False, device="cpu")
    torch.manual_seed(SEED)
    learn.fit(lrs if n_groups == 3 else lrs[0], 2)

    reference = make_model()
    opt = raw_opt(opt_func, reference, lrs, splitter)
    torch.manual_seed(SEED)
    losses = raw_fit(reference, dls, opt, 2, nn.CrossEntropyLoss())

    assert_same_params(learn.model, reference)
    assert learn.recorder.losses == losses
    states = learn.opt.state_dict()["state"].values(), opt.state_dict()["state"].values()
    for mine, theirs in zip(*states, strict=True):
        for key in theirs:
            assert torch.equal(torch.as_tensor(mine[key]), torch.as_tensor(theirs[key])), key


def test_two_fits_continue_the_same_optimizer_as_one_raw_loop():
    dls = make_dls()
    learn = Learner(dls, make_model(), progress=False, device="cpu")
    torch.manual_seed(SEED)
    learn.fit(0.05, 1)
    learn.fit(0.05, 1)

    reference = make_model()
    opt = torch.optim.SGD(reference.parameters(), lr=0.05, momentum=0.9)
    torch.manual_seed(SEED)
    raw_fit(reference, dls, opt, 2, nn.CrossEntropyLoss())
    assert_same_params(learn.model, reference)


def test_weight_decay_given_to_fit_equals_raw_weight_decay():
    dls = make_dls()
    learn = Learner(dls, make_model(), opt_func=torch.optim.Adam, progress=False, device="cpu")
    torch.manual_seed(SEED)
    learn.fit(0.01, 2, wd=0.1)

    reference = make_model()
    opt = torch.optim.Adam(reference.parameters(), lr=0.01, weight_decay=0.1)
    torch.manual_seed(SEED)
    raw_fit(reference, dls, opt, 2, nn.CrossEntropyLoss())
    assert_same_params(learn.model, reference)


def test_a_constant_fit_leaves_momentum_as_built():
    learn = Learner(make_dls(), make_model(), opt_func=partial(torch.optim.SGD, momentum=0.7), progress=False)
    learn.fit(0.01, 1)
    assert [g["momentum"] for g in learn.opt.param_groups] == [0.7]
    assert set(learn.recorder.moms) == {0.7}


def test_keyboard_interrupt_mid_fit_runs_cleanup_and_keeps_completed_steps():
    cleaned = []

    class CtrlC(Callback):
        def before_batch(self, learn):
            if learn.training and learn.train_iter == 8:  # epoch 1, batch 2
                raise KeyboardInterrupt

        def cleanup_fit(self, learn):
            cleaned.append(learn.train_iter)

    dls = make_dls()
    learn = Learner(dls, make_model(), progress=False, device="cpu")
    torch.manual_seed(SEED)
    with pytest.raises(KeyboardInterrupt):
        learn.fit(0.05, 2, cbs=[CtrlC()])
    assert cleaned == [8]

    reference = make_model()
    opt = torch.optim.SGD(reference.parameters(), lr=0.05, momentum=0.9)
    torch.manual_seed(SEED)
    raw_fit(reference, dls, opt, 2, nn.CrossEntropyLoss(), max_steps=8)
    assert_same_params(learn.model, reference)
    assert len(learn.recorder.losses) == 8

    # the learner is still usable afterwards, and the interrupting callback is gone
    learn.fit(0.05, 1)
    assert learn.train_iter == 6


def test_ctrl_c_during_an_optimizer_step_is_held_until_the_step_is_complete():
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("another SIGINT handler is installed")

    class InterruptedSGD(torch.optim.SGD):
        """Ctrl-C arrives in the middle of the 5th step, between two parameter updates."""

        def step(self, closure=None):
            self.n_steps = getattr(self, "n_steps", 0) + 1
            if self.n_steps == 5:
                signal.raise_signal(signal.SIGINT)
            return super().step(closure)

    dls = make_dls()
    learn = Learner(dls, make_model(), opt_func=partial(InterruptedSGD, momentum=0.9), progress=False)
    torch.manual_seed(SEED)
    with pytest.raises(KeyboardInterrupt):
        learn.fit(0.05, 2)
    assert learn.train_iter == 5 and signal.getsignal(signal.SIGINT) is signal.default_int_handler

    reference = make_model()
    opt = torch.optim.SGD(reference.parameters(), lr=0.05, momentum=0.9)
    torch.manual_seed(SEED)
    raw_fit(reference, dls, opt, 2, nn.CrossEntropyLoss(), max_steps=5)
    assert_same_params(learn.model, reference)
    learn.fit(0.05, 1)  # nothing of the interruption is left behind
    assert learn.train_iter == 6


@pytest.mark.parametrize("cuda", [False, True])
def test_device_none_is_cuda_when_available_else_cpu(cuda, monkeypatch):
    import lrcycle.learner as learner_module

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert learner_module.default_device() == torch.device("cuda" if cuda else "cpu")


def test_device_given_places_the_model_and_every_batch_there():
    seen = []

    class Where(Callback):
        def after_pred(self, learn):
            seen.append((learn.xb[0].device, learn.yb[0].device, learn.pred.device))

    learn = Learner(make_dls(), make_model(), device="cpu", progress=False)
    assert learn.device == torch.device("cpu")
    assert all(p.device == torch.device("cpu") for p in learn.model.parameters())
    learn.fit(0.01, 1, cbs=[Where()])
    assert seen and set(seen) == {(torch.device("cpu"),) * 3}
