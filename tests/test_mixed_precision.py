"""MixedPrecision: bf16 autocast equals a hand-written autocast loop; fp16 steps the GradScaler skips do not count."""

import math

import pytest
import torch
from conftest import make_dls, make_mlp
from test_lr_find import RaiseAt, assert_same, capture
from torch import nn

from lrcycle import Callback, Learner, MixedPrecision

LR = 0.05


def raw_autocast_fit(model, dls, n_epoch, dtype):
    """The reference: forward and loss under torch.autocast, backward and step outside it."""
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
    losses = []
    for _ in range(n_epoch):
        model.train()
        for xb, yb in dls.train:
            with torch.autocast("cpu", dtype=dtype):
                loss = nn.functional.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            opt.zero_grad()
            losses.append(loss.item())
        model.eval()
        with torch.no_grad():
            for _ in dls.valid:  # the learner's validation draws nothing, but iterate the same way
                pass
    return losses


def test_bf16_fit_is_bitwise_a_hand_written_autocast_loop():
    torch.manual_seed(1)
    learn = Learner(make_dls(), make_mlp(), progress=False, device="cpu").to_bf16()
    learn.fit(LR, 2)
    torch.manual_seed(1)
    model = make_mlp()
    losses = raw_autocast_fit(model, make_dls(), 2, torch.bfloat16)
    assert learn.recorder.losses == losses
    assert all(torch.equal(a, b) for a, b in zip(learn.model.parameters(), model.parameters()))
    # and it really ran in bfloat16: a float32 fit gives other losses
    torch.manual_seed(1)
    plain = Learner(make_dls(), make_mlp(), progress=False, device="cpu")
    plain.fit(LR, 2)
    assert plain.recorder.losses != losses


class SeeDtype(Callback):
    def __init__(self):
        self.dtypes = []

    def after_pred(self, learn):
        self.dtypes.append((learn.training, learn.pred.dtype))


def test_validation_runs_under_autocast_too_and_nothing_outside_a_batch_does():
    see = SeeDtype()
    learn = Learner(make_dls(), make_mlp(), progress=False, device="cpu", cbs=[MixedPrecision()])
    learn.fit(LR, 1, cbs=[see])
    assert {d for _, d in see.dtypes} == {torch.bfloat16} and {t for t, _ in see.dtypes} == {True, False}
    assert not torch.is_autocast_enabled("cpu")
    learn.validate()
    assert not torch.is_autocast_enabled("cpu")


class Boom(Callback):
    def __init__(self, event):
        self.event = event

    def after_pred(self, learn):
        if self.event == "after_pred":
            raise RuntimeError("boom")

    def after_loss(self, learn):
        if self.event == "after_loss":
            raise RuntimeError("boom")


@pytest.mark.parametrize("event", ["after_pred", "after_loss"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_is_off_after_an_exception_mid_batch(event, dtype):
    learn = Learner(make_dls(), make_mlp(), progress=False, device="cpu", cbs=[MixedPrecision(dtype)])
    with pytest.raises(RuntimeError, match="boom"):
        learn.fit(LR, 1, cbs=[Boom(event)])
    assert not torch.is_autocast_enabled("cpu")
    assert learn.scaler is None  # the scaler takes part only during a fit
    with learn.added_cbs([Boom(event)]), pytest.raises(RuntimeError, match="boom"):
        learn.validate()
    assert not torch.is_autocast_enabled("cpu")
    with torch.autocast("cpu", dtype=torch.bfloat16):  # a user's own autocast stays on
        with pytest.raises(RuntimeError, match="boom"):
            learn.fit(LR, 1, cbs=[Boom(event)])
        assert torch.is_autocast_enabled("cpu")


class InfGradAt(Callback):
    """Puts an inf into one gradient before the step of the `k`-th training batch (0-based), once."""

    order = -15  # after accumulation has decided, before the step

    def __init__(self, k):
        self.k, self.batch, self.params_around = k, -1, None

    def before_batch(self, learn):
        if learn.training:
            self.batch += 1

    def before_step(self, learn):
        if self.batch == self.k:
            self.before = [p.detach().clone() for p in learn.model.parameters()]
            next(learn.model.parameters()).grad[0, 0] = math.inf

    def after_batch(self, learn):
        if learn.training and self.batch == self.k:
            self.params_around = (self.before, [p.detach().clone() for p in learn.model.parameters()])


def one_cycle_lr(i, n, lr_max, div=25.0, div_final=1e5, pct_start=0.25):
    """DESIGN.md's fit_one_cycle formula, written out."""
    cos_anneal = lambda a, b, t: b + (a - b) / 2 * (1 + math.cos(math.pi * t))
    pos = i / n
    if pos < pct_start:
        return cos_anneal(lr_max / div, lr_max, pos / pct_start)
    return cos_anneal(lr_max, lr_max / div_final, (pos - pct_start) / (1 - pct_start))


def test_a_step_the_scaler_skips_does_not_count_and_leaves_no_point():
    dls = make_dls()  # 6 batches an epoch
    inf = InfGradAt(3)
    learn = Learner(dls, make_mlp(), progress=False, device="cpu").to_fp16()
    learn.fit_one_cycle(1, LR, cbs=[inf])
    n = len(dls.train)
    before, after = inf.params_around
    assert all(torch.equal(a, b) for a, b in zip(before, after))  # the step was not applied
    assert learn.train_iter == n - 1  # five applied steps
    rec = learn.recorder
    assert rec.iters == list(range(n - 1)) and rec.skipped_steps == [3]
    # the schedule did not move: the retried step 3 ran at step 3's lr, and so on
    assert rec.lrs == pytest.approx([one_cycle_lr(i, n, LR) for i in range(n - 1)], rel=1e-12)
    assert len(rec.losses) == n - 1 and all(math.isfinite(x) for x in rec.losses)
    scaler_state = learn.cbs[-1].state_dict()["scaler"]
    assert scaler_state["scale"] == 2.0**16 * 0.5  # backed off once, from GradScaler's initial 2**16
    assert learn.scaler is None and not torch.is_autocast_enabled("cpu")


def test_fp16_steps_match_a_raw_grad_scaler_loop():
    torch.manual_seed(2)
    learn = Learner(make_dls(), make_mlp(), progress=False, device="cpu").to_fp16()
    learn.fit(LR, 1)
    torch.manual_seed(2)
    model, dls = make_mlp(), make_dls()
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
    scaler, losses = torch.amp.GradScaler("cpu"), []
    for xb, yb in dls.train:
        with torch.autocast("cpu", dtype=torch.float16):
            loss = nn.functional.cross_entropy(model(xb), yb)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad()
        losses.append(loss.item())
    assert learn.recorder.losses == losses
    assert all(torch.equal(a, b) for a, b in zip(learn.model.parameters(), model.parameters()))


class WatchScale(Callback):
    def __init__(self):
        self.scales = []

    def after_batch(self, learn):
        if learn.scaler is not None:
            self.scales.append(learn.scaler.get_scale())


def scaler_values(cb):
    state = cb.state_dict()["scaler"]
    return state["scale"], state["_growth_tracker"], state["growth_interval"]


@pytest.mark.parametrize("path", ["full", "early_stop", "exception", "keyboard_interrupt"])
def test_lr_find_restores_the_scaler_and_everything_else_on_every_exit(path):
    learn = Learner(make_dls(), make_mlp(), progress=False, device="cpu").to_fp16()
    learn.fit(LR, 1)
    mp = next(cb for cb in learn.cbs if isinstance(cb, MixedPrecision))
    state = mp.state_dict()
    state["scaler"].update(scale=1024.0, _growth_tracker=1, growth_interval=3)  # so the test moves it
    mp.load_state_dict(state)
    scale_before, before = scaler_values(mp), capture(learn)
    seen = WatchScale()
    learn.add_cbs([seen])
    if path == "full":
        learn.lr_find(start_lr=1e-5, end_lr=1e-1, num_it=12, stop_div=False)
    elif path == "early_stop":
        learn.lr_find(start_lr=1e-2, end_lr=1e6, num_it=40)
    else:
        exc = RuntimeError("boom") if path == "exception" else KeyboardInterrupt()
        with learn.added_cbs([RaiseAt(exc, k=4)]), pytest.raises(type(exc)):
            learn.lr_find(start_lr=1e-5, end_lr=1e-1, num_it=12)
    learn.remove_cbs([seen])
    assert max(seen.scales) > 1024.0  # the test moved the scale (growth every 3 steps) ...
    assert scaler_values(mp) == scale_before  # ... and put it back
    assert_same(before, capture(learn))
    learn.fit(LR, 1)  # and the scaler still works: no step is left half done in it
    assert learn.train_iter == len(learn.dls.train)


@pytest.mark.filterwarnings("ignore::lrcycle.finder.suggest.SuggestionWarning")  # a short test: the curve means little
def test_a_skipped_step_in_the_range_test_is_not_counted():
    learn = Learner(make_dls(), make_mlp(), progress=False, device="cpu").to_fp16()
    learn.lr_find(start_lr=1e-5, end_lr=1e-1, num_it=8, stop_div=False)
    applied = learn.recorder.lrs
    inf = InfGradAt(2)
    with learn.added_cbs([inf]):
        learn.lr_find(start_lr=1e-5, end_lr=1e-1, num_it=8, stop_div=False)
    assert learn.recorder.skipped_steps == [2]
    assert learn.recorder.lrs == applied  # 8 applied steps at the same 8 lrs, one more batch used


def test_bad_dtype_is_a_value_error():
    with pytest.raises(ValueError, match="dtype"):
        MixedPrecision(torch.float32)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_cuda_mixed_precision_trains_and_restores(dtype):
    learn = Learner(make_dls(), make_mlp(), progress=False, device="cuda", cbs=[MixedPrecision(dtype)])
    learn.fit_one_cycle(2, LR)
    assert all(math.isfinite(x) for x in learn.recorder.losses)
    before = capture(learn)
    learn.lr_find(num_it=12)
    assert_same(before, capture(learn))
