"""The loop's short ways are the long ways, faster: the same batches, steps, traces and hooks.

- a batch of two plain tensors already on the device skips `split(to_device(...))`;
- a batch with no hook between `before_batch` and `after_batch` skips looking for them;
- a plain CPU loss is read at once, any other waits for the recorder's chunked read.
"""

import math

import pytest
import torch
from conftest import make_dls, make_mlp, smoothed
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from lrcycle import Callback, Learner
from lrcycle.batches import inputs_and_targets, split, to_device

CPU = torch.device("cpu")


class Tagged(torch.Tensor):
    """A tensor subclass: never taken for a plain tensor."""


def _batch(kind: str, n_items: int):
    items = [torch.full((2, 3), float(k)) for k in range(n_items)]
    if kind == "subclass":
        items[0] = items[0].as_subclass(Tagged)
    if kind == "dict":
        return {f"k{k}": item for k, item in enumerate(items)}
    return tuple(items) if kind == "tuple" else items


@given(
    kind=st.sampled_from(["list", "tuple", "subclass", "dict"]),
    n_items=st.integers(2, 4),
    n_inp=st.sampled_from([None, 1, 2]),
)
def test_inputs_and_targets_equal_split_after_to_device(kind, n_items, n_inp):
    batch = _batch(kind, n_items)
    try:
        expected = split(to_device(batch, CPU), n_inp)
    except ValueError as error:
        with pytest.raises(ValueError, match=str(error)[:40]):
            inputs_and_targets(batch, CPU, n_inp)
        return
    got = inputs_and_targets(batch, CPU, n_inp)
    assert type(got) is type(expected) and len(got) == 2
    for part, want in zip(got, expected):
        assert type(part) is type(want)
        items = part.values() if isinstance(part, dict) else part
        wanted = want.values() if isinstance(want, dict) else want
        assert all(a is b for a, b in zip(items, wanted, strict=True))


def test_a_batch_on_another_device_still_moves():
    meta = torch.device("meta")
    xb, yb = inputs_and_targets([torch.zeros(2, 3), torch.zeros(2)], meta, None)
    assert xb[0].device == meta and yb[0].device == meta


class InnerHook(Callback):
    """A hook inside the batch (`after_pred`) that changes nothing: the long way, with every event looked up."""

    def __init__(self):
        self.calls = 0

    def after_pred(self, learn):
        self.calls += learn.training  # training batches: validation takes the long way in any case


def _fit(cbs=(), n_epoch=2):
    torch.manual_seed(7)
    learn = Learner(make_dls(), make_mlp(), progress=False, device="cpu")
    learn.fit_one_cycle(n_epoch, 0.05, cbs=list(cbs))
    return learn


def test_the_short_way_and_the_long_way_train_the_same_steps():
    plain = _fit()
    hook = InnerHook()
    hooked = _fit([hook])
    assert hook.calls == len(plain.recorder.losses)  # every training batch took the long way
    for a, b in zip(plain.model.parameters(), hooked.model.parameters(), strict=True):
        assert torch.equal(a, b)
    for name in ("losses", "smooth_losses", "lrs", "moms", "iters", "iter_epochs"):
        assert getattr(plain.recorder, name) == getattr(hooked.recorder, name)
    assert plain.recorder.epochs[-1]["valid_loss"] == hooked.recorder.epochs[-1]["valid_loss"]


def test_a_plain_fit_is_the_hand_written_loop_step_for_step():
    """The short way against a raw PyTorch loop driven by the lrs and momenta the learner set."""
    learn = _fit(n_epoch=1)
    rec = learn.recorder
    torch.manual_seed(7)
    dls, model = make_dls(), make_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=rec.lrs[0], momentum=rec.moms[0])
    losses = []
    for i, (xb, yb) in enumerate(dls.train):
        opt.param_groups[0]["lr"], opt.param_groups[0]["momentum"] = rec.lrs[i], rec.moms[i]
        loss = nn.functional.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert rec.losses == losses
    for a, b in zip(learn.model.parameters(), model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_a_loss_that_loses_its_graph_after_the_first_batch_says_why_on_the_short_way():
    """The first batch takes the long way (its checks); a loss detached from the third batch on fails on the
    short way with the same error the long way gives, after two completed steps."""
    calls = []

    def loss_func(pred, target):
        calls.append(1)
        loss = nn.functional.cross_entropy(pred, target)
        return loss.detach() if len(calls) >= 3 else loss

    learn = Learner(make_dls(), make_mlp(), loss_func=loss_func)
    with pytest.raises(ValueError, match="gave a loss without a gradient graph") as error:
        learn.fit(0.1, 1)
    assert isinstance(error.value.__cause__, RuntimeError)
    assert learn.train_iter == 2 and learn.model[0][0].weight.grad is None


def test_a_hook_added_during_a_fit_is_called_from_the_next_batch():
    hook = InnerHook()

    class AddAtStep(Callback):
        def after_batch(self, learn):
            if learn.training and learn.train_iter == 3 and hook not in learn.cbs:
                learn.add_cbs([hook])

    learn = _fit([AddAtStep()], n_epoch=1)
    assert hook.calls == len(learn.recorder.losses) - 3
    learn.remove_cbs([hook])


def test_inner_hooks_follow_the_callbacks():
    learn = Learner(make_dls(), make_mlp(), progress=False, device="cpu")
    assert not learn.callbacks.inner_hooks
    hook = InnerHook()
    with learn.added_cbs([hook]):
        assert learn.callbacks.inner_hooks
    assert not learn.callbacks.inner_hooks


class Counted(torch.Tensor):
    """A loss subclass: the recorder leaves it on its device and reads it in chunks."""


def test_a_cpu_loss_read_at_once_records_what_the_chunked_read_records():
    def fit(loss_func):
        torch.manual_seed(3)
        learn = Learner(make_dls(), make_mlp(), loss_func=loss_func, progress=False, device="cpu")
        learn.recorder.sync_every = 4
        learn.fit_one_cycle(2, 0.05)
        return learn.recorder

    plain = fit(nn.functional.cross_entropy)
    chunked = fit(lambda pred, y: nn.functional.cross_entropy(pred, y).as_subclass(Counted))
    assert plain.losses == chunked.losses and plain.smooth_losses == chunked.smooth_losses
    avg, smooth = 0.0, []
    for n, loss in enumerate(plain.losses, 1):  # the smoothing written out
        avg = 0.98 * avg + 0.02 * loss
        smooth.append(avg / (1 - 0.98**n))
    assert all(math.isclose(a, b, rel_tol=1e-12) for a, b in zip(plain.smooth_losses, smooth, strict=True))


def test_smoothed_losses_worked_out_when_read_are_the_formula_of_the_losses():
    learn = Learner(make_dls(), make_mlp(), progress=False, device="cpu")
    result = learn.lr_find(start_lr=1e-3, end_lr=10, num_it=30)  # reads each step's smoothed loss to stop
    assert result.smooth_losses == smoothed(result.losses)
    learn.fit_one_cycle(2, 0.05)  # reads none during the fit
    rec = learn.recorder
    assert len(rec._smooth) == 0 and rec.smooth_losses == smoothed(rec.losses)
    state = rec.state_dict()  # taken mid-history: the running average is that of the last loss
    assert state["smooth_losses"] == smoothed(rec.losses) and state["n"] == len(rec.losses)


def test_latest_smooth_loss_after_one_new_loss_or_many_or_none():
    learn = Learner(make_dls(), make_mlp(), progress=False, device="cpu")
    learn.fit(0.05, 1)  # nothing smoothed during the fit: many new losses
    rec = learn.recorder
    expected = smoothed(rec.losses)
    assert rec.latest_smooth_loss() == expected[-1] and rec.smooth_losses == expected
    assert rec.latest_smooth_loss() == expected[-1]  # no new loss: the same value, nothing appended
    assert len(rec.smooth_losses) == len(rec.losses)
