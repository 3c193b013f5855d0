"""Scheduled fits against independent references: torch's CyclicLR, CosineAnnealingWarmRestarts and
OneCycleLR, and DESIGN.md's formulas written out here; read from the optimizer in `before_step`, over SGD,
Adam and AdamW and one or three layer groups."""

import math
from functools import partial

import numpy as np
import pytest
import torch
from conftest import make_dls, make_mlp
from torch.optim import lr_scheduler

from lrcycle import Callback, Learner, schedules, sequential_splitter
from lrcycle.optim import get_lrs, get_moms
from lrcycle.validate import spread

OPTS = {
    "sgd": partial(torch.optim.SGD, momentum=0.9),
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
}
N_ITER = 7  # batches per epoch: 112 / 16, so cycle lengths are not multiples of cut_div


class StepSpy(Callback):
    """What the optimizer holds when it steps: every group's lr and momentum."""

    order = 100

    def before_fit(self, learn):
        self.lrs, self.moms = [], []

    def before_step(self, learn):
        self.lrs.append(get_lrs(learn.opt))
        self.moms.append(get_moms(learn.opt))


def make_learner(opt="sgd", n_groups=1, **kw):
    splitter = sequential_splitter(n_groups) if n_groups > 1 else None
    dls = make_dls(n_train=16 * N_ITER)
    return Learner(dls, make_mlp(), opt_func=OPTS[opt], splitter=splitter, progress=False, **kw)


def dummy_opt(opt, n_groups):
    """An optimizer like the learner's, over stand-in tensors, for torch's schedulers to drive."""
    return OPTS[opt]([{"params": [torch.zeros(1, requires_grad=True)]} for _ in range(n_groups)], lr=1.0)


def drive(sched, opt, n_steps):
    """Each step's lrs and momenta under a torch scheduler (set before the step, as torch documents)."""
    lrs, moms = [], []
    for _ in range(n_steps):
        lrs.append(get_lrs(opt))
        moms.append(get_moms(opt))
        opt.step()
        sched.step()
    return lrs, moms


def close(actual, expected):
    np.testing.assert_allclose(np.array(actual, dtype=float), np.array(expected, dtype=float), rtol=1e-10)


both = pytest.mark.parametrize("n_groups", [1, 3])
every_opt = pytest.mark.parametrize("opt", list(OPTS))
LR = slice(1e-3, 1e-2)


# ---- torch references ----------------------------------------------------------------------------------
@every_opt
@both
@pytest.mark.parametrize(
    "mode, gamma, cycles",
    [("triangular", 1.0, {"n_cycle": 1.5}), ("triangular2", 1.0, {"step_size": 4}), ("exp_range", 0.97, {})],
)
def test_fit_cyclic_equals_torch_cyclic_lr(opt, n_groups, mode, gamma, cycles):
    learn, spy, n_epoch = make_learner(opt, n_groups), StepSpy(), 4
    learn.fit_cyclic(n_epoch, LR, mode=mode, gamma=gamma, moms=(0.95, 0.85), cbs=[spy], **cycles)
    total = n_epoch * N_ITER
    step = cycles.get("step_size") or total / (2 * cycles.get("n_cycle", 1))
    max_lrs = spread(LR, n_groups)
    ref = dummy_opt(opt, n_groups)
    sched = lr_scheduler.CyclicLR(
        ref, [lr / 4 for lr in max_lrs], max_lrs, step_size_up=step, step_size_down=step, mode=mode,
        gamma=gamma, cycle_momentum=True, base_momentum=0.85, max_momentum=0.95,
    )  # fmt: skip
    lrs, moms = drive(sched, ref, total)
    close(spy.lrs, lrs)
    close(spy.moms, moms)


@every_opt
@both
@pytest.mark.parametrize("n_cycle, cycle_len, cycle_mult", [(3, 1, 2), (2, 2, 1)])
def test_sgdr_builder_without_warmup_equals_torch_cosine_annealing_warm_restarts(
    opt, n_groups, n_cycle, cycle_len, cycle_mult
):
    lrs = spread(LR, n_groups)
    schedule = schedules.sgdr_schedule(lrs, n_cycle, cycle_len, cycle_mult, N_ITER, warmup=False)
    ref = dummy_opt(opt, n_groups)
    for group, lr in zip(ref.param_groups, lrs, strict=True):
        group["lr"] = lr
    sched = lr_scheduler.CosineAnnealingWarmRestarts(ref, T_0=cycle_len * N_ITER, T_mult=cycle_mult, eta_min=0)
    expected, _ = drive(sched, ref, schedule.n_steps)
    close([schedule(i)[0] for i in range(schedule.n_steps)], expected)
    assert all(schedule(i)[1] is None for i in range(schedule.n_steps))  # SGDR leaves momentum alone


def sgdr_with_warmup(i, lr, n_epoch, cycle_len, cycle_mult):
    """fastai 0.7's CosAnneal, written out: lr/100 while i < nb0/20 (nb0 the first cycle's iterations); else
    lr/2 * (1 + cos(pi * j/nb)) at iteration j of the cycle i falls in, cycles of cycle_len * cycle_mult**c epochs."""
    nb0 = cycle_len * N_ITER
    if i < nb0 / 20:
        return lr / 100
    start, nb = 0, nb0
    while i >= start + nb:
        start, nb = start + nb, nb * cycle_mult
    return lr / 2 * (1 + math.cos(math.pi * (i - start) / nb))


@every_opt
@both
@pytest.mark.parametrize("n_cycle, cycle_len, cycle_mult", [(3, 1, 2), (2, 2, 1), (1, 3, 1)])
def test_fit_sgdr_has_fastai_07_warmup_then_the_cosine(opt, n_groups, n_cycle, cycle_len, cycle_mult):
    learn, spy = make_learner(opt, n_groups), StepSpy()
    learn.fit(LR, n_cycle, cycle_len=cycle_len, cycle_mult=cycle_mult, cbs=[spy])
    n_epoch = sum(cycle_len * cycle_mult**c for c in range(n_cycle))
    expected = [
        [sgdr_with_warmup(i, lr, n_epoch, cycle_len, cycle_mult) for lr in spread(LR, n_groups)]
        for i in range(n_epoch * N_ITER)
    ]
    close(spy.lrs, expected)
    first = spread(LR, n_groups)
    warm = [i for i in range(len(expected)) if expected[i][-1] == first[-1] / 100]
    assert warm == list(range(math.ceil(cycle_len * N_ITER / 20)))  # the warm-up covers i < nb0/20, at least one
    assert spy.moms == [get_moms(learn.opt)] * len(spy.moms)  # momentum left alone


@every_opt
@both
@pytest.mark.parametrize("pct_start, div_final", [(0.75, 1e5), (0.5, 10.0), (0.0, 100.0)])
def test_fit_flat_cos_is_flat_then_cosine_down(opt, n_groups, pct_start, div_final):
    learn, spy, n_epoch = make_learner(opt, n_groups), StepSpy(), 3
    learn.fit_flat_cos(n_epoch, LR, div_final=div_final, pct_start=pct_start, cbs=[spy])
    total = n_epoch * N_ITER
    expected = []
    for i in range(total):
        pos = i / total
        row = []
        for lr in spread(LR, n_groups):
            if pos < pct_start:  # fastai v2: flat at lr, then half a cosine from lr to lr/div_final
                row.append(lr)
            else:
                t = (pos - pct_start) / (1 - pct_start)
                row.append(lr / div_final + (lr - lr / div_final) / 2 * (1 + math.cos(math.pi * t)))
        expected.append(row)
    close(spy.lrs, expected)
    assert spy.moms == [get_moms(learn.opt)] * total  # momentum left alone


def test_fit_with_three_cycles_doubling_trains_seven_epochs():
    learn = make_learner()
    learn.fit(1e-2, 3, cycle_len=1, cycle_mult=2)
    assert len(learn.recorder.epochs) == 7
    assert len(learn.recorder.lrs) == 7 * N_ITER


def one_cycle_formula(i, n, lr_max, div, div_final, pct, moms):
    def cos_anneal(a, b, t):
        return b + (a - b) / 2 * (1 + math.cos(math.pi * t))

    pos = i / n
    if pos < pct:
        return cos_anneal(lr_max / div, lr_max, pos / pct), cos_anneal(moms[0], moms[1], pos / pct)
    t = (pos - pct) / (1 - pct)
    return cos_anneal(lr_max, lr_max / div_final, t), cos_anneal(moms[1], moms[2], t)


@every_opt
@both
def test_fit_one_cycle_equals_the_formula(opt, n_groups):
    learn, spy = make_learner(opt, n_groups), StepSpy()
    learn.fit_one_cycle(3, LR, div=10.0, div_final=1e3, pct_start=0.3, moms=(0.95, 0.8, 0.9), cbs=[spy])
    n = 3 * N_ITER
    for g, lr_max in enumerate(spread(LR, n_groups)):
        expected = [one_cycle_formula(i, n, lr_max, 10.0, 1e3, 0.3, (0.95, 0.8, 0.9)) for i in range(n)]
        close([row[g] for row in spy.lrs], [lr for lr, _ in expected])
        close([row[g] for row in spy.moms], [m for _, m in expected])


@every_opt
def test_fit_one_cycle_lies_between_torch_one_cycle_steps(opt):
    """OneCycleLR reaches the peak one step earlier and ends on lr_max/div/final_div_factor at step N-1, while
    ours (fastai's) reaches it at pct_start*N: each of our lrs lies between torch's at the step before and at
    the same step, and both start at lr_max/div."""
    learn, spy, lr_max = make_learner(opt), StepSpy(), 1e-2
    learn.fit_one_cycle(4, lr_max, div=25.0, div_final=1e5, pct_start=0.25, cbs=[spy])
    n = 4 * N_ITER
    ref = dummy_opt(opt, 1)
    sched = lr_scheduler.OneCycleLR(
        ref, lr_max, total_steps=n, pct_start=0.25, anneal_strategy="cos", div_factor=25.0,
        final_div_factor=1e5 / 25.0, three_phase=False, cycle_momentum=True, base_momentum=0.85,
        max_momentum=0.95,
    )  # fmt: skip
    lrs, moms = drive(sched, ref, n)
    ours, torch_lrs = [row[0] for row in spy.lrs], [row[0] for row in lrs]
    assert ours[0] == pytest.approx(torch_lrs[0]) == pytest.approx(lr_max / 25)
    assert max(ours) == pytest.approx(max(torch_lrs)) == pytest.approx(lr_max)
    for i in range(1, n):
        low, high = sorted((torch_lrs[i - 1], torch_lrs[i]))
        assert low * (1 - 1e-9) <= ours[i] <= high * (1 + 1e-9)
        low, high = sorted((moms[i - 1][0], moms[i][0]))
        assert low - 1e-12 <= spy.moms[i][0] <= high + 1e-12


def clr_formula(j, nb, lr, div, cut_div, max_mom, min_mom):
    cut = max(1, nb // cut_div)
    p = j / cut if j <= cut else 1 - (j - cut) / (nb - cut)
    return lr * (1 + p * (div - 1)) / div, max_mom - p * (max_mom - min_mom)


def clr_beta_formula(j, nb, lr, div, pct, max_mom, min_mom):
    half = max(1, int(nb * (1 - pct / 100) / 2))
    if j <= 2 * half:
        p = j / half if j <= half else 1 - (j - half) / half
        return lr * (1 + p * (div - 1)) / div, max_mom - p * (max_mom - min_mom)
    q = (j - 2 * half) / (nb - 2 * half)
    return lr / div * (1 - 0.99 * q), max_mom


def cycle_positions(cycle_epochs):
    """(j, nb) for every iteration of cycles of the given lengths in epochs."""
    return [(j, e * N_ITER) for e in cycle_epochs for j in range(e * N_ITER)]


@every_opt
@both
@pytest.mark.parametrize("use_clr", [(32, 5), (10, 10, 0.95, 0.85), (5, 3, 0.9, 0.8)])
def test_use_clr_equals_the_formula(opt, n_groups, use_clr):
    learn, spy = make_learner(opt, n_groups), StepSpy()
    learn.fit(LR, 2, cycle_len=2, cycle_mult=2, use_clr=use_clr, cbs=[spy])  # cycles of 14 and 28 iterations
    div, cut_div, *mom = use_clr
    spots = cycle_positions([2, 4])
    for g, lr in enumerate(spread(LR, n_groups)):
        expected = [clr_formula(j, nb, lr, div, cut_div, *(mom or (0, 0))) for j, nb in spots]
        close([row[g] for row in spy.lrs], [e[0] for e in expected])
        if mom:
            close([row[g] for row in spy.moms], [e[1] for e in expected])
    if not mom:
        assert {row[-1] for row in spy.moms} == {get_moms(learn.opt)[-1]}  # left alone


@every_opt
@both
@pytest.mark.parametrize("use_clr_beta", [(10, 13.68), (20, 40, 0.95, 0.85)])
def test_use_clr_beta_equals_the_formula(opt, n_groups, use_clr_beta):
    learn, spy = make_learner(opt, n_groups), StepSpy()
    learn.fit(LR, 2, cycle_len=2, use_clr_beta=use_clr_beta, cbs=[spy])
    div, pct, *mom = use_clr_beta
    spots = cycle_positions([2, 2])
    for g, lr in enumerate(spread(LR, n_groups)):
        expected = [clr_beta_formula(j, nb, lr, div, pct, *(mom or (0, 0))) for j, nb in spots]
        close([row[g] for row in spy.lrs], [e[0] for e in expected])
        if mom:
            close([row[g] for row in spy.moms], [e[1] for e in expected])


# ---- recorder, preview, what stays after the fit -------------------------------------------------------
SCHEDULED_FITS = {
    "one_cycle": ("fit_one_cycle", (3, LR), {}),
    "sgdr": ("fit", (LR, 2), {"cycle_len": 1, "cycle_mult": 2}),
    "use_clr": ("fit", (LR, 1), {"cycle_len": 3, "use_clr": (32, 5, 0.95, 0.85)}),
    "use_clr_beta": ("fit", (LR, 1), {"cycle_len": 3, "use_clr_beta": (10, 10, 0.95, 0.85)}),
    "cyclic": ("fit_cyclic", (3, LR), {"n_cycle": 2, "mode": "triangular2", "moms": (0.95, 0.85)}),
    "flat_cos": ("fit_flat_cos", (3, LR), {"pct_start": 0.6}),
    "constant": ("fit", (LR, 3), {}),
}
every_fit = pytest.mark.parametrize("fit", list(SCHEDULED_FITS))


@every_fit
@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_recorder_records_the_lr_the_optimizer_stepped_with(fit, opt):
    learn, spy = make_learner(opt, 3), StepSpy()
    method, args, kw = SCHEDULED_FITS[fit]
    getattr(learn, method)(*args, cbs=[spy], **kw)
    rec = learn.recorder
    assert [list(row) for row in zip(*rec.group_lrs, strict=True)] == spy.lrs
    assert rec.moms == [row[-1] for row in spy.moms]
    assert get_lrs(learn.opt) == spy.lrs[-1]  # the optimizer keeps the last lr and momentum set
    assert get_moms(learn.opt) == spy.moms[-1]


@every_fit
@pytest.mark.parametrize("n_groups", [1, 3])
def test_preview_is_what_the_fit_records_and_touches_nothing(fit, n_groups):
    learn = make_learner("adamw", n_groups)
    method, args, kw = SCHEDULED_FITS[fit]
    weights = {k: v.clone() for k, v in learn.model.state_dict().items()}
    df = learn.preview(method, *args, **kw)
    assert learn.opt is None
    assert all(torch.equal(v, learn.model.state_dict()[k]) for k, v in weights.items())
    getattr(learn, method)(*args, **kw)
    recorded = learn.recorder.iter_df()
    assert list(df.columns) == [c for c in recorded.columns if c not in ("loss", "smooth_loss")]
    assert df.to_dict("list") == recorded[df.columns].to_dict("list")


def test_preview_leaves_an_existing_optimizer_as_it_was_and_draws():
    learn = make_learner("sgd", 3)
    learn.fit(1e-3, 1)
    hypers = [dict(g, params=None) for g in learn.opt.param_groups]
    df = learn.preview("fit_one_cycle", 2, slice(1e-3), plot=True)
    assert [dict(g, params=None) for g in learn.opt.param_groups] == hypers
    assert df["mom"].iloc[0] == 0.95 and len(df) == 2 * N_ITER


def test_plot_lr_draws_every_group_with_momentum_beneath():
    learn = make_learner("sgd", 3)
    learn.fit_one_cycle(1, slice(1e-3, 1e-2))
    lr_ax, mom_ax = learn.recorder.plot_lr(show_moms=True).figure.axes
    assert len(lr_ax.get_lines()) == 3 and len(mom_ax.get_lines()) == 1
    assert list(mom_ax.get_lines()[0].get_ydata()) == learn.recorder.moms


# ---- bad input -----------------------------------------------------------------------------------------
BAD = [
    ("fit", (1e-2, 1), {"cycle_len": 1, "use_clr": (32,)}, "use_clr"),
    ("fit", (1e-2, 1), {"cycle_len": 1, "use_clr": (0, 5)}, "use_clr div"),
    ("fit", (1e-2, 1), {"cycle_len": 1, "use_clr": (32, 0.5)}, "use_clr cut_div"),
    ("fit", (1e-2, 1), {"cycle_len": 1, "use_clr": (32, 5, 0.95)}, "use_clr"),
    ("fit", (1e-2, 1), {"cycle_len": 1, "use_clr": (32, 5, 1.2, 0.8)}, "use_clr momenta"),
    ("fit", (1e-2, 1), {"use_clr": (32, 5)}, "cycle_len"),
    ("fit", (1e-2, 1), {"use_clr_beta": (10, 10)}, "cycle_len"),
    ("fit", (1e-2, 1), {"cycle_len": 0}, "cycle_len"),
    ("fit", (1e-2, 1), {"cycle_len": 1.5}, "cycle_len"),
    ("fit", (1e-2, 1), {"cycle_len": 1, "cycle_mult": 0}, "cycle_mult"),
    ("fit", (1e-2, 1), {"cycle_mult": 0}, "cycle_mult"),  # checked even when there are no cycles to grow
    ("fit", (1e-2, 2), {"cycle_mult": 2}, "cycle_mult"),  # without cycle_len there is nothing to stretch
    ("fit_flat_cos", (2, 1e-2), {"pct_start": 1.0}, "pct_start"),
    ("fit_flat_cos", (2, 1e-2), {"div_final": 0}, "div_final"),
    ("fit", (1e-2, 1), {"cycle_len": 1, "use_clr_beta": (10, 100)}, "use_clr_beta pct"),
    ("fit", (1e-2, 1), {"cycle_len": 1, "use_clr_beta": (-1, 10)}, "use_clr_beta div"),
    ("fit", (1e-2, 1), {"cycle_len": 1, "use_clr": (32, 5), "use_clr_beta": (10, 10)}, "use_clr"),
    ("fit_one_cycle", (2, 1e-2), {"pct_start": -0.1}, "pct_start"),  # 0 and 1 are fastai's pure anneal, warm-up
    ("fit_one_cycle", (2, 1e-2), {"pct_start": 1.1}, "pct_start"),
    ("fit_one_cycle", (2, 1e-2), {"div": 0}, "div"),
    ("fit_one_cycle", (2, 1e-2), {"div_final": -1.0}, "div_final"),
    ("fit_one_cycle", (2, 1e-2), {"moms": (0.95, 0.85)}, "moms"),
    ("fit_one_cycle", (2, 1e-2), {"moms": (0.95, 0.85, 1.0)}, "moms"),
    ("fit_cyclic", (2, 1e-2), {"step_size": 3, "n_cycle": 2}, "step_size"),
    ("fit_cyclic", (2, 1e-2), {"step_size": 0}, "step_size"),
    ("fit_cyclic", (2, 1e-2), {"n_cycle": -1}, "n_cycle"),
    ("fit_cyclic", (2, 1e-2), {"mode": "sawtooth"}, "mode"),
    ("fit_cyclic", (2, 1e-2), {"mode": "exp_range", "gamma": 0}, "gamma"),
    ("fit_cyclic", (2, 1e-2), {"moms": (0.95, 0.85, 0.9)}, "moms"),
    ("fit_cyclic", (2, 1e-2), {"base_lr": 0.1}, "base_lr"),
]


@pytest.mark.parametrize("method, args, kw, name", BAD, ids=[f"{b[0]}-{b[3]}-{i}" for i, b in enumerate(BAD)])
def test_bad_arguments_raise_before_training(method, args, kw, name):
    learn = make_learner("sgd", 1)
    weights = {k: v.clone() for k, v in learn.model.state_dict().items()}
    for call in (getattr(learn, method), partial(learn.preview, method)):
        with pytest.raises(ValueError, match=name):
            call(*args, **kw)
    assert learn.opt is None and learn.recorder.iters == []
    assert all(torch.equal(v, learn.model.state_dict()[k]) for k, v in weights.items())


def test_preview_counts_optimizer_steps_under_gradient_accumulation():
    from lrcycle import GradientAccumulation

    learn = make_learner("sgd", 1)
    df = learn.preview("fit_one_cycle", 2, 1e-2, cbs=[GradientAccumulation(2)])
    learn.fit_one_cycle(2, 1e-2, cbs=[GradientAccumulation(2)])
    recorded = learn.recorder.iter_df()
    assert len(df) == 2 * math.ceil(N_ITER / 2) == len(recorded)
    assert df.to_dict("list") == recorded[df.columns].to_dict("list")


def test_fit_cyclic_cycle_ends_count_optimizer_steps_under_gradient_accumulation():
    from lrcycle import GradientAccumulation

    learn = make_learner("sgd", 1)
    steps = math.ceil(N_ITER / 2)  # optimizer steps per epoch when 2 batches make one step
    learn.fit_cyclic(4, 1e-2, step_size=steps, cbs=[GradientAccumulation(2)])  # a cycle is 2 epochs of steps
    assert learn.cycle_ends == [2, 4]
    assert len(learn.recorder.lrs) == 4 * steps
