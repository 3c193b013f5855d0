"""`lrcycle.range_test` on a user's own model, optimizer, loss and loader: the same curve as `learn.lr_find` and
as a raw PyTorch loop at the sweep's lrs, and everything (model, optimizer, grad scaler, RNGs) bitwise as
before on every exit path, with nothing written to disk. Also `Learner(..., opt=optimizer)`."""

import math
import os
import random
from functools import partial

import numpy as np
import pytest
import torch
from conftest import make_mlp
from test_lr_find import bn_model  # BatchNorm in the first child, so buffers are covered
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lrcycle
from lrcycle import DataLoaders, Learner, sequential_splitter

pytestmark = pytest.mark.filterwarnings("ignore::lrcycle.finder.suggest.SuggestionWarning")

OPTIMIZERS = {
    "SGD": partial(torch.optim.SGD, momentum=0.9, weight_decay=1e-4),
    "Adam": torch.optim.Adam,
    "AdamW": torch.optim.AdamW,
}


def make_objects(opt_name="SGD", n_groups=1, seed=0, shuffle=True):
    """What a torch-lr-finder user has: model, optimizer (with state: a few steps taken), criterion, loader."""
    model = bn_model(seed)
    groups = sequential_splitter(n_groups)(model) if n_groups > 1 else [list(model.parameters())]
    opt = OPTIMIZERS[opt_name]([{"params": g, "lr": 1e-3 * (g_i + 1)} for g_i, g in enumerate(groups)], lr=1e-3)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(96, 8, generator=g)
    y = (x @ torch.randn(8, 3, generator=g)).argmax(1)
    loader = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=shuffle)
    criterion = nn.CrossEntropyLoss()
    for xb, yb in list(loader)[:2]:  # optimizer state (momentum buffers, Adam moments) that must survive
        criterion(model(xb), yb).backward()
        opt.step()
    return model, opt, criterion, loader


def bits(t):
    return t.detach().contiguous().reshape(-1).view(torch.uint8).clone()


def capture(model, opt, scaler=None):
    """Everything a range test could change, taken with plain torch calls (not lrcycle's snapshot)."""
    sd = opt.state_dict()
    return {
        "tensors": {k: (v.dtype, v.device, bits(v)) for k, v in model.state_dict().items()},
        "grads": [None if p.grad is None else bits(p.grad) for p in model.parameters()],
        "modes": [m.training for m in model.modules()],
        "opt_state": {
            p: {k: bits(v) if torch.is_tensor(v) else v for k, v in s.items()} for p, s in sd["state"].items()
        },
        "groups": [{k: v for k, v in g.items()} for g in sd["param_groups"]],
        "group_params": [[id(p) for p in g["params"]] for g in opt.param_groups],
        "scaler": None if scaler is None else scaler.state_dict(),
        "rng": (bits(torch.get_rng_state()), np.random.get_state()[1].tobytes(), random.getstate()),
    }


def assert_same(before, after):
    assert after.keys() == before.keys()
    for key in before:
        if key == "tensors":
            for name, (dtype, device, b) in before[key].items():
                a = after[key][name]
                assert a[0] == dtype and a[1] == device and torch.equal(a[2], b), name
        elif key == "grads":
            assert all((a is None and b is None) or torch.equal(a, b) for a, b in zip(after[key], before[key]))
        elif key == "opt_state":
            for p, s in before[key].items():
                for k, v in s.items():
                    got = after[key][p][k]
                    assert torch.equal(got, v) if torch.is_tensor(v) else got == v, (p, k)
            assert after[key].keys() == before[key].keys()
        elif key == "rng":
            assert torch.equal(after[key][0], before[key][0]) and after[key][1:] == before[key][1:]
        else:
            assert after[key] == before[key], key


class FailingLoss:
    """The criterion, until call `k`: then NaN, or raise the given exception."""

    def __init__(self, criterion, k, exc=None):
        self.criterion, self.k, self.exc, self.calls = criterion, k, exc, 0

    def __call__(self, pred, y):
        self.calls += 1
        if self.calls == self.k:
            if self.exc is not None:
                raise self.exc
            return self.criterion(pred, y) * float("nan")
        return self.criterion(pred, y)


EXITS = ["full", "early_stop", "nan", "exception", "keyboard_interrupt"]


def run_exit(path, model, opt, criterion, loader, **kwargs):
    """One range test ending by `path`; the number of iterations it recorded, or the exception raised."""
    if path == "full":
        return len(lrcycle.range_test(model, opt, criterion, loader, num_it=20, stop_div=False, **kwargs).lrs)
    if path == "early_stop":
        return len(
            lrcycle.range_test(model, opt, criterion, loader, start_lr=1e-2, end_lr=1e4, num_it=60, **kwargs).lrs
        )
    if path == "nan":
        return len(lrcycle.range_test(model, opt, FailingLoss(criterion, 7), loader, num_it=20, **kwargs).lrs)
    exc = RuntimeError("boom in the loss") if path == "exception" else KeyboardInterrupt()
    with pytest.raises(type(exc)):
        lrcycle.range_test(model, opt, FailingLoss(criterion, 9, exc), loader, num_it=20, **kwargs)
    return None


@pytest.mark.parametrize("path", EXITS)
@pytest.mark.parametrize("n_groups", [1, 3])
@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
def test_every_exit_leaves_everything_bitwise_as_before_and_writes_nothing(opt_name, n_groups, path, tmp_path):
    model, opt, criterion, loader = make_objects(opt_name, n_groups)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=2)  # changes at every 2nd step
    model.eval()  # a mode the test switches away from
    os.chdir(tmp_path)
    before = capture(model, opt, scaler)
    n = run_exit(path, model, opt, criterion, loader, grad_scaler=scaler)
    assert_same(before, capture(model, opt, scaler))
    assert list(tmp_path.iterdir()) == []
    if path == "early_stop":
        assert n < 60
    if path == "nan":
        assert n == 7  # the NaN iteration is the last one recorded


def sweep_lr(i, n, start, end):
    return start * (end / start) ** (i / (n - 1))


def raw_loop_losses(model, opt, criterion, loader, n, start, end, accumulate=1):
    """torch-lr-finder's recipe written out: at step i every group's lr is the sweep's, one step per
    `accumulate` batches (mean loss of the group), repeated epochs; the losses recorded. Gradients are zeroed
    at each epoch's start (GradientAccumulation's rule; and a range test starts from clean gradients, as
    torch-lr-finder zeroes them before every batch), so leftover ones never count."""
    losses, i = [], 0
    while i < n:
        opt.zero_grad()
        batches = list(loader)
        for s in range(0, len(batches), accumulate):
            group = batches[s : s + accumulate]
            for pg in opt.param_groups:
                pg["lr"] = sweep_lr(i, n, start, end)
            total = 0.0
            for xb, yb in group:
                loss = criterion(model(xb), yb)
                (loss / len(group)).backward()
                total += loss.item()
            opt.step()
            opt.zero_grad()
            losses.append(total / len(group))
            i += 1
            if i == n:
                break
    return losses


@pytest.mark.parametrize("accumulate", [1, 2])
@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
def test_its_curve_is_a_raw_loop_at_the_sweeps_lrs(opt_name, accumulate):
    model, opt, criterion, loader = make_objects(opt_name, shuffle=False)
    result = lrcycle.range_test(
        model, opt, criterion, loader, start_lr=1e-5, end_lr=1.0, num_it=15, stop_div=False, accumulate=accumulate
    )
    model.train()  # restored: the same weights, optimizer state and leftover gradients as the test started from
    expected = raw_loop_losses(model, opt, criterion, loader, 15, 1e-5, 1.0, accumulate)
    assert result.losses == expected
    assert result.lrs == [sweep_lr(i, 15, 1e-5, 1.0) for i in range(15)]
    avg, smooth = 0.0, []
    for n, loss in enumerate(expected, 1):
        avg = 0.98 * avg + 0.02 * loss
        smooth.append(avg / (1 - 0.98**n))
    assert result.smooth_losses == pytest.approx(smooth, rel=1e-12)


@pytest.mark.parametrize("n_groups", [1, 3])
@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
def test_its_curve_and_suggestions_equal_learn_lr_find_on_the_same_objects(opt_name, n_groups):
    model, opt, criterion, loader = make_objects(opt_name, n_groups)
    torch.manual_seed(3)  # the loader shuffles with torch's RNG, which both runs restore
    ours = lrcycle.range_test(model, opt, criterion, loader, num_it=30, start_lr=slice(1e-6), end_lr=1.0)
    splitter = sequential_splitter(n_groups) if n_groups > 1 else None
    learn = Learner(DataLoaders(loader), model, criterion, opt=opt, splitter=splitter, progress=False)
    torch.manual_seed(3)
    theirs = learn.lr_find(num_it=30, start_lr=slice(1e-6), end_lr=1.0)
    assert ours.lrs == theirs.lrs and ours.losses == theirs.losses and ours.smooth_losses == theirs.smooth_losses
    assert tuple(ours) == tuple(theirs) and ours._fields == theirs._fields
    assert ours.valley == ours[ours._fields.index("valley")]
    assert list(ours.df().columns) == ["iter", "lr", "loss", "smooth_loss"] and len(ours.df()) == len(ours.lrs)
    assert ours.plot() is not None


class CountingScaler(torch.amp.GradScaler):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.updates = 0

    def update(self, new_scale=None):
        self.updates += 1
        super().update(new_scale)


def test_a_grad_scaler_is_stepped_through_and_restored():
    """Scaling by a power of two and unscaling is exact in float32, so the curve is the unscaled one; the
    scaler is updated once per optimizer step (with accumulation), then put back."""
    model, opt, criterion, loader = make_objects("AdamW", shuffle=False)
    plain = lrcycle.range_test(model, opt, criterion, loader, num_it=12, stop_div=False, accumulate=2)
    scaler = CountingScaler("cpu", init_scale=2.0**8, growth_interval=3)
    before = scaler.state_dict()
    scaled = lrcycle.range_test(
        model, opt, criterion, loader, num_it=12, stop_div=False, accumulate=2, grad_scaler=scaler
    )
    assert scaled.losses == plain.losses
    assert scaler.updates == 12
    assert scaler.state_dict() == before


def test_an_overflowing_step_is_skipped_as_grad_scaler_step_does():
    """A loss of 4.4 at scale 2**127 overflows float32 (max ~2**128): those steps are skipped (and back off the
    scale), do not count as iterations, and the curve continues once the scaled loss fits."""
    model, opt, criterion, loader = make_objects("SGD", shuffle=False)
    scaler = CountingScaler("cpu", init_scale=2.0**127)
    before = capture(model, opt, scaler)
    big_loss = lambda pred, y: 4 * criterion(pred, y)
    result = lrcycle.range_test(model, opt, big_loss, loader, end_lr=1e-3, num_it=8, stop_div=False, grad_scaler=scaler)
    assert len(result.lrs) == 8 and all(math.isfinite(v) for v in result.losses)
    assert scaler.updates > 8  # the skipped steps updated (backed off) the scale too
    assert_same(before, capture(model, opt, scaler))


def first_batch_overflows():
    """A one-weight model whose first batch has x = 1e36: its loss (mean of w*x, about 1e35) is finite, but at
    scale 1024 the scaled gradient (x * 1024 / n, about 1e38 per sample summed over 4) overflows float32."""
    torch.manual_seed(0)
    model = nn.Linear(1, 1, bias=False)
    x = torch.ones(4 * 6, 1)
    x[:4] = 1e36
    loader = DataLoader(TensorDataset(x, torch.zeros(len(x), 1)), batch_size=4, shuffle=False)
    return model, loader, lambda pred, y: pred.mean()


@pytest.mark.parametrize("entry", ["range_test", "lr_find"])
def test_a_first_batch_that_overflows_leaves_no_point(entry):
    """The scaler skips the first step (inf gradients, finite loss): no point is recorded for it, so the curve
    starts at start_lr with the loss of an applied step, never with a mean folding in the huge loss."""
    model, loader, loss = first_batch_overflows()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    with torch.no_grad():
        first_loss = float(model(torch.ones(1, 1)).mean())  # the first applied step runs on a batch of ones
    kwargs = dict(start_lr=1e-5, end_lr=1e-3, num_it=4, stop_div=False)
    if entry == "range_test":
        result = lrcycle.range_test(model, opt, loss, loader, grad_scaler=scaler, **kwargs)
    else:
        cbs = [lrcycle.MixedPrecision(None, grad_scaler=scaler)]
        learn = Learner(DataLoaders(loader), model, loss, opt=opt, cbs=cbs, progress=False)
        result = learn.lr_find(**kwargs)
    assert len(result.lrs) == 4 and result.lrs[0] == 1e-5
    assert result.losses[0] == pytest.approx(first_loss, rel=1e-6)
    assert max(abs(v) for v in result.losses) < 1e3


def test_the_users_device_and_param_groups_are_untouched_and_a_wrong_device_is_refused():
    model, opt, criterion, loader = make_objects("SGD", 3)
    groups = opt.param_groups
    lrcycle.range_test(model, opt, criterion, loader, num_it=10, device="cpu")
    assert opt.param_groups is groups and [g["lr"] for g in groups] == [1e-3, 2e-3, 3e-3]
    assert "initial_lr" not in groups[0]
    with pytest.raises(ValueError, match="device"):
        lrcycle.range_test(model, opt, criterion, loader, num_it=10, device="meta")


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        ({"num_it": 1}, ValueError, "num_it"),
        ({"accumulate": 0}, ValueError, "accumulate"),
        ({"grad_scaler": "yes"}, TypeError, "grad_scaler"),
        ({"start_lr": [1e-7, 1e-6]}, ValueError, "start_lr"),
        ({"start_lr": 1.0, "end_lr": 0.1}, ValueError, "start_lr"),
    ],
)
def test_bad_arguments_are_errors_that_change_nothing(kwargs, error, words):
    model, opt, criterion, loader = make_objects("Adam")
    before = capture(model, opt)
    with pytest.raises(error, match=words):
        lrcycle.range_test(model, opt, criterion, loader, **kwargs)
    assert_same(before, capture(model, opt))


# ---- Learner(..., opt=optimizer) ----------------------------------------------------------------------------
def test_an_optimizer_given_as_opt_func_is_a_type_error_pointing_to_opt():
    model, opt, criterion, loader = make_objects("AdamW")
    with pytest.raises(TypeError, match=r"opt_func.*AdamW.*opt=optimizer"):
        Learner(DataLoaders(loader), model, criterion, opt_func=opt)


def test_opt_param_groups_become_the_layer_groups_and_the_fit_steps_that_optimizer():
    model, opt, criterion, loader = make_objects("SGD", 3)
    learn = Learner(DataLoaders(loader), model, criterion, opt=opt, progress=False)
    assert learn.n_groups == 3 and learn.opt is opt
    assert [[id(p) for p in g] for g in learn.layer_groups] == [[id(p) for p in g["params"]] for g in opt.param_groups]
    momentum_buffer = opt.state[opt.param_groups[0]["params"][0]]["momentum_buffer"]
    learn.fit_one_cycle(1, slice(1e-3, 1e-2))
    assert learn.opt is opt and opt.state[opt.param_groups[0]["params"][0]]["momentum_buffer"] is momentum_buffer
    t = (5 / 6 - 0.25) / 0.75  # the last of 6 steps: cosine from lr_max down to lr_max/1e5
    last = [hi / 1e5 + (hi - hi / 1e5) / 2 * (1 + math.cos(math.pi * t)) for hi in (1e-3, math.sqrt(1e-5), 1e-2)]
    assert [g["lr"] for g in opt.param_groups] == pytest.approx(last, rel=1e-12)


def test_a_splitter_that_disagrees_with_the_optimizer_says_what_differs():
    model, opt, criterion, loader = make_objects("SGD", 3)
    dls = DataLoaders(loader)
    with pytest.raises(ValueError, match="splitter gives 2 layer groups but the optimizer has 3"):
        Learner(dls, model, criterion, opt=opt, splitter=sequential_splitter(2))
    _, other, _, _ = make_objects("SGD", 3)
    with pytest.raises(ValueError, match="not parameters of the model"):
        Learner(dls, model, criterion, opt=other)
    children = list(model.children())
    swapped = lambda m: [list(children[1].parameters()), list(children[0].parameters()), list(children[2].parameters())]
    with pytest.raises(ValueError, match="layer group 0 differs"):
        Learner(dls, model, criterion, opt=opt, splitter=swapped)
    assert Learner(dls, model, criterion, opt=opt, splitter=sequential_splitter(3), progress=False).opt is opt


def test_an_optimizer_over_part_of_the_model_is_allowed():
    model = make_mlp()
    opt = torch.optim.SGD(model[2].parameters(), lr=0.1)
    learn = Learner(
        DataLoaders([(torch.randn(4, 8), torch.tensor([0, 1, 2, 0]))]), model, nn.CrossEntropyLoss(), opt=opt
    )
    assert learn.n_groups == 1 and learn.layer_groups[0] == list(model[2].parameters())
