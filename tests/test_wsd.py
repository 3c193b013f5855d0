"""`fit_wsd` (warmup-stable-decay) against its formula written out here, over SGD, Adam and AdamW and one or
three layer groups; its preview, plot, resume, decay from a stable-phase checkpoint, and argument checks."""

import json
import math
from functools import partial

import pytest
import torch
from test_schedules_fit import LR, N_ITER, StepSpy, close, make_learner
from test_schedules_resume import CheckpointAndStop

from lrcycle import ParamScheduler, plans, schedules
from lrcycle.validate import spread

N_EPOCH = 4
N = N_EPOCH * N_ITER  # 28 optimizer steps


def expected_lr(i, lr, warmup_steps, decay_steps, shape, div=25.0, div_final=1e5, n=N):
    """WSD as the issue states it: linear from lr/div over the warmup, flat, then the decay shape to lr/div_final."""
    start, end = lr / div, lr / div_final
    if i < warmup_steps:
        return start + (lr - start) * i / warmup_steps
    if i < n - decay_steps:
        return lr
    t = (i - (n - decay_steps)) / decay_steps
    if shape == "linear":
        return lr - (lr - end) * t
    if shape == "cos":
        return end + (lr - end) * (1 + math.cos(math.pi * t)) / 2
    return end + (lr - end) * (1 - math.sqrt(t))  # '1-sqrt', Hagele et al. 2024


@pytest.mark.parametrize("opt", ["sgd", "adam", "adamw"])
@pytest.mark.parametrize("n_groups", [1, 3])
@pytest.mark.parametrize("shape", ["linear", "cos", "1-sqrt"])
def test_fit_wsd_sets_its_formula_and_leaves_momentum_alone(opt, n_groups, shape):
    learn, spy = make_learner(opt, n_groups), StepSpy()
    learn.fit_wsd(N_EPOCH, LR, warmup=0.1, decay=0.3, decay_shape=shape, cbs=[spy])
    warmup_steps, decay_steps = round(0.1 * N), round(0.3 * N)  # 3 and 8 steps
    lrs = spread(LR, n_groups)
    close(spy.lrs, [[expected_lr(i, lr, warmup_steps, decay_steps, shape) for lr in lrs] for i in range(N)])
    # moms=None: momentum (SGD) / betas[0] (Adam, AdamW) stays what the optimizer was built with, 0.9
    assert spy.moms == [[0.9] * n_groups] * N


@pytest.mark.parametrize("opt", ["sgd", "adam", "adamw"])
@pytest.mark.parametrize("n_groups", [1, 3])
def test_fit_wsd_moms_follow_the_phases_and_epochs_give_the_phases(opt, n_groups):
    learn, spy = make_learner(opt, n_groups), StepSpy()
    moms = (0.95, 0.85, 0.99)
    learn.fit_wsd(N_EPOCH, LR, warmup_epochs=1, decay_epochs=1.5, div=10, div_final=100, moms=moms, cbs=[spy])
    warmup_steps, decay_steps = N_ITER, round(1.5 * N_ITER)
    lrs = spread(LR, n_groups)
    lr_at = partial(expected_lr, warmup_steps=warmup_steps, decay_steps=decay_steps, shape="1-sqrt", div=10)
    close(spy.lrs, [[lr_at(i, lr, div_final=100) for lr in lrs] for i in range(N)])
    # the momentum moves like an lr from 0.95 (start) to 0.85 (stable) and on to 0.99 (end)
    mom = [expected_lr(i, 0.85, warmup_steps, decay_steps, "1-sqrt", 0.85 / 0.95, 0.85 / 0.99) for i in range(N)]
    close(spy.moms, [[m] * n_groups for m in mom])


def test_linear_decay_to_zero_is_a_wsd_with_infinite_div_final():
    learn, spy = make_learner("sgd", 1), StepSpy()
    learn.fit_wsd(N_EPOCH, 0.1, warmup=0.25, decay=0.75, decay_shape="linear", div_final=math.inf, cbs=[spy])
    warmup_steps = 7
    expected = [0.1 / 25 + (0.1 - 0.1 / 25) * i / 7 for i in range(warmup_steps)]
    expected += [0.1 * (1 - (i - warmup_steps) / (N - warmup_steps)) for i in range(warmup_steps, N)]
    close(spy.lrs, [[lr] for lr in expected])
    schedule, _ = plans.plan_call(
        learn.plan_defaults(), "fit_wsd", (N_EPOCH, 0.1, 0.25, 0.75, "linear", 25, math.inf), {}
    )
    restored = ParamScheduler(schedules.constant_schedule([1.0], 1, 1))
    restored.load_state_dict(ParamScheduler(schedule).state_dict())
    assert restored.schedule(N)[0] == [0.0]  # where the decay ends: exactly zero


WSD_FITS = {
    "1-sqrt": ((N_EPOCH, LR), {}),
    "linear, epochs": ((N_EPOCH, LR), {"warmup_epochs": 1, "decay_epochs": 2, "decay_shape": "linear"}),
    "cos, moms": ((N_EPOCH, LR), {"decay": 0.5, "decay_shape": "cos", "moms": (0.95, 0.85, 0.95)}),
    "to zero": ((N_EPOCH, LR), {"warmup": 0.1, "decay": 0.9, "decay_shape": "linear", "div_final": math.inf}),
}


@pytest.mark.parametrize("fit", list(WSD_FITS))
@pytest.mark.parametrize("n_groups", [1, 3])
def test_preview_is_what_fit_wsd_records_and_the_plot_draws_it(fit, n_groups):
    learn = make_learner("adamw", n_groups)
    args, kw = WSD_FITS[fit]
    df = learn.preview("fit_wsd", *args, **kw)
    assert learn.opt is None
    learn.fit_wsd(*args, **kw)
    recorded = learn.recorder.iter_df()
    assert df.to_dict("list") == recorded[df.columns].to_dict("list")
    lines = learn.recorder.plot_lr().get_lines()
    assert len(lines) == n_groups and list(lines[-1].get_ydata()) == learn.recorder.lrs


@pytest.mark.parametrize("fit", list(WSD_FITS))
def test_spec_rebuilds_the_same_schedule_as_plain_data(fit):
    learn = make_learner("sgd", 3)
    args, kw = WSD_FITS[fit]
    schedule, _ = plans.plan_call(learn.plan_defaults(), "fit_wsd", args, kw)
    rebuilt = schedules.build(json.loads(json.dumps(schedule.spec)))
    assert [rebuilt(i) for i in range(N + 1)] == [schedule(i) for i in range(N + 1)]
    assert "fit_wsd" in plans.PLANS


def run(tmp_path, args, kw, seed=1, **extra):
    torch.manual_seed(seed)
    learn = make_learner("adam", 3, path=tmp_path)
    learn.fit_wsd(*args, **kw, **extra)
    return learn


def resume(tmp_path, stop, args, kw, start_epoch):
    """A fresh learner from the checkpoint `stop` wrote, the RNG as it was there, running `args, kw` from
    `start_epoch`."""
    learn = make_learner("adam", 3, path=tmp_path)
    torch.nn.init.zeros_(learn.model[0][0].weight)  # make sure the weights come from the checkpoint
    learn.load("mid")
    torch.set_rng_state(stop.rng)
    learn.fit_wsd(*args, **kw, start_epoch=start_epoch)
    return learn


def assert_same_continuation(whole, resumed, start_epoch):
    first = start_epoch * N_ITER
    assert resumed.recorder.iters == whole.recorder.iters[first:]
    assert [lrs[first:] for lrs in whole.recorder.group_lrs] == resumed.recorder.group_lrs
    assert whole.recorder.moms[first:] == resumed.recorder.moms
    for a, b in zip(whole.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("fit", list(WSD_FITS))
def test_fit_wsd_resumed_with_start_epoch_follows_the_uninterrupted_fit(tmp_path, fit):
    args, kw = WSD_FITS[fit]
    whole = run(tmp_path, args, kw)
    stop = CheckpointAndStop(2)
    run(tmp_path, args, kw, cbs=[stop])
    assert_same_continuation(whole, resume(tmp_path, stop, args, kw, 2), 2)


@pytest.mark.parametrize("shape", ["linear", "1-sqrt"])
def test_decay_from_a_stable_phase_checkpoint_equals_wsd_planned_for_that_length(tmp_path, shape):
    """Trained 3 epochs of a run planned for 20 (1 epoch of warmup, still flat at epoch 3), then decayed over 2
    epochs from the checkpoint: the same weights and trace as a 5-epoch WSD planned from the start."""
    long_run = ((20, LR), {"warmup_epochs": 1, "decay_epochs": 4, "decay_shape": shape})
    stop = CheckpointAndStop(3)
    stable = run(tmp_path, *long_run, cbs=[stop])
    assert stable.recorder.group_lrs[-1][N_ITER:] == [LR.stop] * (2 * N_ITER)  # stopped in the stable phase
    short = ((5, LR), {"warmup_epochs": 1, "decay_epochs": 2, "decay_shape": shape})
    decayed = resume(tmp_path, stop, *short, start_epoch=3)
    planned = run(tmp_path, *short)
    assert_same_continuation(planned, decayed, 3)
    assert stable.recorder.group_lrs[-1] == planned.recorder.group_lrs[-1][: 3 * N_ITER]
    assert decayed.recorder.group_lrs[-1][-1] < LR.stop / 10  # it did decay


BAD = [
    ({"warmup": -0.1}, "warmup"),
    ({"warmup": 1.5}, "warmup"),
    ({"decay": 1.2}, "decay"),
    ({"warmup": 0.6, "decay": 0.5}, "warmup \\+ decay"),
    ({"decay_shape": "cosine"}, "decay_shape"),
    ({"decay_shape": None}, "decay_shape"),
    ({"div": 0}, "div"),
    ({"div_final": -1.0}, "div_final"),
    ({"div_final": math.nan}, "div_final"),
    ({"moms": (0.95, 0.85)}, "moms"),
    ({"warmup_epochs": -1}, "warmup_epochs"),
    ({"decay_epochs": N_EPOCH + 1}, "decay_epochs"),
    ({"warmup_epochs": 2, "decay_epochs": 3}, "exceed"),
    ({"lr_max": -1e-3}, "lr_max"),
    ({"n_epoch": 0}, "n_epoch"),
    ({"start_epoch": N_EPOCH}, "start_epoch"),
]


@pytest.mark.parametrize("kw, name", BAD, ids=[str(kw) for kw, _ in BAD])
def test_bad_arguments_raise_before_training(kw, name):
    learn = make_learner("sgd", 1)
    weights = {k: v.clone() for k, v in learn.model.state_dict().items()}
    kw = {"n_epoch": N_EPOCH, "lr_max": 1e-2, **kw}
    for call in (learn.fit_wsd, partial(learn.preview, "fit_wsd")):
        with pytest.raises(ValueError, match=name):
            call(**kw)
    assert learn.opt is None and learn.recorder.iters == []
    assert all(torch.equal(v, learn.model.state_dict()[k]) for k, v in weights.items())
