"""The range test: its lr sequence, its length, its stopping rule, and the exact restore on every exit."""

import math
import random
from collections import Counter
from functools import partial

import numpy as np
import pytest
import torch
from conftest import make_dls, make_mlp
from torch import nn

from lrcycle import Callback, DataLoaders, Learner, sequential_splitter, suggest

# short or flat test curves make some suggestion functions warn; that is theirs to test (test_suggest.py)
pytestmark = pytest.mark.filterwarnings("ignore::lrcycle.finder.suggest.SuggestionWarning")

OPTIMIZERS = {
    "SGD": partial(torch.optim.SGD, momentum=0.9),
    "Adam": torch.optim.Adam,
    "AdamW": torch.optim.AdamW,
}


def make_learner(n_groups=1, opt_func=OPTIMIZERS["SGD"], dls=None, model=None, **kwargs):
    splitter = sequential_splitter(n_groups) if n_groups > 1 else None
    model = make_mlp() if model is None else model
    return Learner(dls or make_dls(), model, opt_func=opt_func, splitter=splitter, progress=False, **kwargs)


def bn_model(seed=0):
    """Three children, BatchNorm in the first, so buffers (running stats, num_batches_tracked) are covered."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU()),
        nn.Sequential(nn.Linear(16, 16), nn.ReLU()),
        nn.Linear(16, 3),
    )


# ---- the lr sequence ---------------------------------------------------------------------------------------
def reference_lrs(scheduler_cls, n, **kwargs):
    """The lrs a torch scheduler gives over n steps, starting from the optimizer's lr."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=kwargs.pop("lr"))
    sched = scheduler_cls(opt, **kwargs)
    lrs = []
    for _ in range(n):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def test_recorded_lrs_follow_the_exponential_formula():
    learn = make_learner()
    learn.lr_find(start_lr=1e-6, end_lr=1.0, num_it=30, stop_div=False)
    expected = [1e-6 * (1.0 / 1e-6) ** (i / 29) for i in range(30)]
    assert learn.recorder.lrs == pytest.approx(expected, rel=1e-12)
    gamma = (1.0 / 1e-6) ** (1 / 29)
    torch_lrs = reference_lrs(torch.optim.lr_scheduler.ExponentialLR, 30, lr=1e-6, gamma=gamma)
    assert learn.recorder.lrs == pytest.approx(torch_lrs, rel=1e-9)


def test_recorded_lrs_follow_the_linear_formula():
    learn = make_learner()
    learn.lr_find(start_lr=1e-4, end_lr=0.1, num_it=20, stop_div=False, linear=True)
    expected = [1e-4 + (0.1 - 1e-4) * i / 19 for i in range(20)]
    assert learn.recorder.lrs == pytest.approx(expected, rel=1e-12)
    torch_lrs = reference_lrs(
        torch.optim.lr_scheduler.LinearLR, 20, lr=0.1, start_factor=1e-3, end_factor=1.0, total_iters=19
    )
    assert learn.recorder.lrs == pytest.approx(torch_lrs, rel=1e-9)


def test_a_float_gives_every_group_the_same_lr():
    learn = make_learner(n_groups=3)
    learn.lr_find(start_lr=1e-5, end_lr=1e-1, num_it=12, stop_div=False)
    expected = [1e-5 * (1e-1 / 1e-5) ** (i / 11) for i in range(12)]
    for trace in learn.recorder.group_lrs:
        assert trace == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("linear", [False, True])
def test_a_slice_moves_every_group_by_the_same_factor(linear):
    learn = make_learner(n_groups=3)
    learn.lr_find(start_lr=slice(1e-7, 1e-5), end_lr=slice(1e-3, 1e-1), num_it=12, stop_div=False, linear=linear)
    starts = [1e-7, 1e-6, 1e-5]  # geometric from lo to hi over the groups
    ends = [1e-3, 1e-2, 1e-1]
    for s, e, trace in zip(starts, ends, learn.recorder.group_lrs, strict=True):
        if linear:
            expected = [s + (e - s) * i / 11 for i in range(12)]
        else:
            expected = [s * (e / s) ** (i / 11) for i in range(12)]
        assert trace == pytest.approx(expected, rel=1e-9)
    if not linear:  # the discriminative ratios hold at every iteration
        group_lrs = np.array(learn.recorder.group_lrs)
        np.testing.assert_allclose(group_lrs / group_lrs[-1], [[0.01], [0.1], [1.0]] * np.ones(12), rtol=1e-9)


# ---- length, epochs, training only -------------------------------------------------------------------------
class NeverIterate:
    """A validation loader that fails the test if anything iterates it."""

    def __iter__(self):
        raise AssertionError("the range test touched the validation loader")


def test_runs_enough_epochs_for_num_it_and_never_validates():
    base = make_dls(n_train=92, bs=4, shuffle=True)
    dls = DataLoaders(base.train, NeverIterate(), loss_func=nn.CrossEntropyLoss())
    assert len(dls.train) == 23
    learn = make_learner(dls=dls)
    learn.lr_find(start_lr=1e-6, end_lr=1e-3, num_it=100)  # stop_div on, but nothing diverges here
    rec = learn.recorder
    assert learn.n_epoch == math.ceil(100 / 23) == 5
    assert len(rec.lrs) == len(rec.losses) == len(rec.smooth_losses) == 100
    assert Counter(rec.iter_epochs) == {0: 23, 1: 23, 2: 23, 3: 23, 4: 8}
    assert rec.iters == list(range(100))


def first_stop(losses, smooth_losses, factor=4.0):
    """The stopping rule, written out: the first iteration with a non-finite loss or a smoothed loss over
    `factor` x the lowest smoothed loss so far."""
    best = math.inf
    for i, (loss, smooth) in enumerate(zip(losses, smooth_losses, strict=True)):
        if not (math.isfinite(loss) and math.isfinite(smooth)):
            return i
        best = min(best, smooth)
        if smooth > factor * best:
            return i
    return None


def test_stops_at_the_first_diverging_iteration():
    learn = make_learner()
    learn.lr_find(start_lr=1e-3, end_lr=1e4, num_it=60)
    rec = learn.recorder
    assert len(rec.smooth_losses) < 60
    stop = first_stop(rec.losses, rec.smooth_losses)
    assert stop == len(rec.smooth_losses) - 1  # the stopping iteration is the last one recorded


def test_without_stop_div_it_runs_to_the_end():
    learn = make_learner()
    learn.lr_find(start_lr=1e-3, end_lr=1e4, num_it=60, stop_div=False)
    assert len(learn.recorder.lrs) == 60
    assert first_stop(learn.recorder.losses, learn.recorder.smooth_losses) is not None


class NanAt:
    """Cross-entropy, except that the call number `k` (0-based, once armed) returns NaN."""

    def __init__(self, k):
        self.k, self.calls, self.armed = k, 0, False
        self.ce = nn.CrossEntropyLoss()

    def __call__(self, pred, yb):
        loss = self.ce(pred, yb)
        if self.armed:
            self.calls += 1
            if self.calls - 1 == self.k:
                return loss * float("nan")
        return loss


def test_a_nan_loss_stops_it():
    loss_func = NanAt(7)
    loss_func.armed = True
    learn = make_learner(loss_func=loss_func)
    learn.lr_find(start_lr=1e-6, end_lr=1e-3, num_it=50)
    rec = learn.recorder
    assert len(rec.losses) == 8 and math.isnan(rec.losses[-1])
    assert all(math.isfinite(v) for v in rec.losses[:-1])
    assert all(torch.isfinite(p).all() for p in learn.model.parameters())  # restored


@pytest.mark.parametrize("value", [math.inf, -math.inf])
def test_an_infinite_loss_stops_it(value):
    ce, calls = nn.CrossEntropyLoss(), []

    def loss_func(pred, yb):  # cross-entropy, except that the sixth call returns `value`
        calls.append(1)
        loss = ce(pred, yb)
        return loss * 0 + value if len(calls) == 6 else loss

    learn = make_learner(loss_func=loss_func)
    learn.lr_find(start_lr=1e-6, end_lr=1e-3, num_it=50)
    rec = learn.recorder
    assert len(rec.losses) == 6 and rec.losses[-1] == value
    assert first_stop(rec.losses, rec.smooth_losses) == 5


# ---- the exact restore -------------------------------------------------------------------------------------
def bits(t: torch.Tensor) -> torch.Tensor:
    """The raw bytes of a tensor, so -0.0 vs 0.0 or a different NaN would count as a difference."""
    return t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).clone()


def capture(learn):
    """Everything the range test must leave as it found, taken independently of lrcycle's snapshot."""
    model, opt = learn.model, learn.opt
    state = {
        "tensors": {k: (v.dtype, bits(v)) for k, v in model.state_dict().items()},
        "grads": [None if p.grad is None else bits(p.grad) for p in model.parameters()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "modes": [m.training for m in model.modules()],
        "torch_rng": torch.get_rng_state().clone(),
        "numpy_rng": np.random.get_state(),
        "python_rng": random.getstate(),
        "opt": opt,
    }
    if opt is not None:
        sd = opt.state_dict()
        state["opt_state"] = {
            p: {k: (bits(v) if torch.is_tensor(v) else v) for k, v in s.items()} for p, s in sd["state"].items()
        }
        state["opt_state_objects"] = {id(p): {k: id(v) for k, v in s.items()} for p, s in opt.state.items()}
        state["hypers"] = [{k: v for k, v in g.items() if k != "params"} for g in sd["param_groups"]]
    return state


def assert_same(before, after):
    assert after["opt"] is before["opt"]
    assert after["tensors"].keys() == before["tensors"].keys()
    for k, (dtype, b) in before["tensors"].items():
        assert after["tensors"][k][0] == dtype and torch.equal(after["tensors"][k][1], b), k
    for a, b in zip(after["grads"], before["grads"], strict=True):
        assert (a is None and b is None) or torch.equal(a, b)
    assert after["requires_grad"] == before["requires_grad"]
    assert after["modes"] == before["modes"]
    assert torch.equal(after["torch_rng"], before["torch_rng"])
    a_np, b_np = after["numpy_rng"], before["numpy_rng"]
    assert a_np[0] == b_np[0] and np.array_equal(a_np[1], b_np[1]) and a_np[2:] == b_np[2:]
    assert after["python_rng"] == before["python_rng"]
    if before["opt"] is not None:
        assert after["opt_state"].keys() == before["opt_state"].keys()
        for p, s in before["opt_state"].items():
            assert after["opt_state"][p].keys() == s.keys()
            for k, v in s.items():
                got = after["opt_state"][p][k]
                assert torch.equal(got, v) if torch.is_tensor(v) else got == v, (p, k)
        assert after["opt_state_objects"] == before["opt_state_objects"]  # the same tensors, refilled
        assert after["hypers"] == before["hypers"]


class RaiseAt(Callback):
    """Raises `exc` after the optimizer step of iteration `k`, so the weights have already moved."""

    def __init__(self, exc, k=3):
        self.exc, self.k = exc, k

    def after_step(self, learn):
        if learn.train_iter == self.k + 1:
            raise self.exc


def run_exit_path(learn, path, loss_func):
    if path == "full":
        learn.lr_find(start_lr=1e-5, end_lr=1e-1, num_it=12, stop_div=False)
        assert len(learn.recorder.lrs) == 12
    elif path == "early_stop":
        learn.lr_find(start_lr=1e-2, end_lr=1e6, num_it=40)
        assert len(learn.recorder.lrs) < 40
    elif path == "nan":
        loss_func.armed = True
        learn.lr_find(start_lr=1e-5, end_lr=1e-1, num_it=12)
        assert math.isnan(learn.recorder.losses[-1])
    else:
        exc = RuntimeError("boom") if path == "exception" else KeyboardInterrupt()
        with learn.added_cbs([RaiseAt(exc)]), pytest.raises(type(exc)):
            learn.lr_find(start_lr=1e-5, end_lr=1e-1, num_it=12)


EXIT_PATHS = ["full", "early_stop", "nan", "exception", "keyboard_interrupt"]


@pytest.mark.parametrize("path", EXIT_PATHS)
@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
@pytest.mark.parametrize("n_groups", [1, 3])
def test_everything_is_restored_exactly(path, opt_name, n_groups, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    loss_func = NanAt(4)
    learn = make_learner(n_groups, OPTIMIZERS[opt_name], model=bn_model(), loss_func=loss_func, path=tmp_path)
    learn.fit(1e-2, wd=1e-3)  # an optimizer with state: momentum buffers, Adam moments, step counts
    if n_groups == 3:
        learn.freeze_to(1)
    learn.model.eval()  # a mode the test must put back (it trains in train mode)
    files_before = sorted(tmp_path.rglob("*"))
    before = capture(learn)
    run_exit_path(learn, path, loss_func)
    assert_same(before, capture(learn))
    assert sorted(tmp_path.rglob("*")) == files_before  # no checkpoint, no model_dir


@pytest.mark.parametrize("path", EXIT_PATHS)
def test_a_learner_without_optimizer_ends_without_one(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    loss_func = NanAt(4)
    learn = make_learner(model=bn_model(), loss_func=loss_func, path=tmp_path)
    before = capture(learn)
    run_exit_path(learn, path, loss_func)
    assert learn.opt is None
    assert_same(before, capture(learn))
    assert list(tmp_path.iterdir()) == []


def test_the_learner_trains_the_same_after_a_range_test():
    """A fit after lr_find is the fit that would have happened without it (weights, optimizer, RNG)."""
    results = []
    for with_test in (False, True):
        learn = make_learner(model=make_mlp(seed=1))
        torch.manual_seed(5)
        if with_test:
            learn.lr_find(num_it=20)
        learn.fit(0.05)
        results.append([p.detach().clone() for p in learn.model.parameters()])
    for a, b in zip(*results, strict=True):
        assert torch.equal(a, b)


def test_repeated_range_tests_keep_no_tensors_alive():
    import gc

    learn = make_learner(model=bn_model())
    learn.fit(1e-2)

    def n_tensors():
        gc.collect()
        return sum(1 for obj in gc.get_objects() if type(obj) in (torch.Tensor, nn.Parameter))

    learn.lr_find(num_it=10)
    start = n_tensors()
    for _ in range(5):
        learn.lr_find(num_it=10)
    assert n_tensors() == start


# ---- results -----------------------------------------------------------------------------------------------
def test_returns_one_field_per_suggestion_function_and_marks_them_for_the_plot():
    def first(lrs, losses):
        return lrs[0]

    def last(lrs, losses):
        return lrs[-1]

    learn = make_learner()
    result = learn.lr_find(start_lr=1e-5, end_lr=1e-1, num_it=12, suggest_funcs=[last, first], stop_div=False)
    assert result._fields == ("last", "first")
    assert result.last == pytest.approx(1e-1) and result.first == pytest.approx(1e-5)
    assert learn.recorder.suggestions == {"last": result.last, "first": result.first}


def test_default_suggestions_are_finite_lrs_within_the_tested_range():
    learn = make_learner()
    result = learn.lr_find()
    rec = learn.recorder
    assert result._fields == tuple(f.__name__ for f in suggest.DEFAULT_FUNCS)
    for name, value in zip(result._fields, result, strict=True):
        for v in value if isinstance(value, tuple) else (value,):
            assert min(rec.lrs) / 10 <= v <= max(rec.lrs), name


def test_show_plot_draws_the_curve():
    import matplotlib.pyplot as plt

    learn = make_learner()
    learn.lr_find(num_it=30, show_plot=True)
    ax = plt.gca()
    assert ax.get_xscale() == "log" and len(ax.lines) >= 1


# ---- bad input ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, error, word",
    [
        ({"start_lr": 1.0, "end_lr": 1e-3}, ValueError, "start_lr"),
        ({"start_lr": -1.0}, ValueError, "start_lr"),
        ({"end_lr": float("inf")}, ValueError, "end_lr"),
        ({"end_lr": [1.0, 2.0]}, ValueError, "end_lr"),
        ({"num_it": 1}, ValueError, "num_it"),
        ({"num_it": 10.5}, ValueError, "num_it"),
        ({"suggest_funcs": [1]}, TypeError, "suggest_funcs"),
        ({"stop_div": "no"}, TypeError, "stop_div"),
        ({"linear": None}, TypeError, "linear"),
        ({"show_plot": 1}, TypeError, "show_plot"),
        ({"suggest_funcs": [lambda lrs, losses: 1.0]}, ValueError, "suggest_funcs"),
    ],
)
def test_bad_arguments_raise_before_training(kwargs, error, word):
    learn = make_learner()
    weights = [p.detach().clone() for p in learn.model.parameters()]
    with pytest.raises(error, match=word):
        learn.lr_find(**kwargs)
    assert learn.opt is None
    assert all(torch.equal(a, b) for a, b in zip(weights, learn.model.parameters(), strict=True))


def test_hyperparameter_keys_added_during_the_test_are_removed():
    """A callback (a torch scheduler, say) may add keys to the param groups; the restore drops them."""

    class AddInitialLr(Callback):
        def before_batch(self, learn):
            for group in learn.opt.param_groups:
                group["initial_lr"] = group["lr"]

    learn = make_learner(n_groups=3)
    learn.fit(1e-2)
    before = [{k: v for k, v in g.items() if k != "params"} for g in learn.opt.param_groups]
    with learn.added_cbs([AddInitialLr()]):
        learn.lr_find(num_it=5, stop_div=False)
    assert [{k: v for k, v in g.items() if k != "params"} for g in learn.opt.param_groups] == before


@pytest.mark.parametrize("start_lr, end_lr", [(1e-5, 1e-1), (slice(1e-7, 1e-5), slice(1e-3, 1e-1))])
def test_frozen_groups_stay_frozen_during_the_test(start_lr, end_lr):
    """Checked at every step, not only after the restore (which would hide an update)."""
    learn = make_learner(n_groups=3)
    learn.freeze()
    frozen = learn.layer_groups[0] + learn.layer_groups[1]
    head = learn.layer_groups[2]
    frozen_before, head_before = [p.detach().clone() for p in frozen], [p.detach().clone() for p in head]
    moved = []

    class Watch(Callback):
        order = 100

        def after_step(self, learn):
            assert all(torch.equal(a, p) for a, p in zip(frozen_before, frozen, strict=True))
            assert not any(p.requires_grad for p in frozen)
            moved.append(not all(torch.equal(a, p) for a, p in zip(head_before, head, strict=True)))

    with learn.added_cbs([Watch()]):
        learn.lr_find(start_lr=start_lr, end_lr=end_lr, num_it=8, stop_div=False)
    assert len(moved) == 8 and all(moved)
    assert [p.requires_grad for p in learn.model.parameters()] == [False] * 4 + [True] * 2


def test_a_slice_start_with_a_float_end_keeps_the_ratios_up_to_the_last_groups_end():
    learn = make_learner(n_groups=3)
    learn.lr_find(start_lr=slice(1e-9, 1e-7), end_lr=10, num_it=12, stop_div=False)
    starts = [1e-9, 1e-8, 1e-7]
    factor = 10 / 1e-7  # the last group's, applied to every group
    for s, trace in zip(starts, learn.recorder.group_lrs, strict=True):
        assert trace == pytest.approx([s * factor ** (i / 11) for i in range(12)], rel=1e-9)


def test_a_float_start_with_a_slice_end_keeps_the_ratios_of_the_end():
    learn = make_learner(n_groups=3)
    learn.lr_find(start_lr=1e-6, end_lr=slice(1e-2, 1.0), num_it=12, stop_div=False)
    ends = [1e-2, 1e-1, 1.0]
    for e, trace in zip(ends, learn.recorder.group_lrs, strict=True):
        s = e * 1e-6 / 1.0
        assert trace == pytest.approx([s * (e / s) ** (i / 11) for i in range(12)], rel=1e-9)
