"""Two calls that once departed from fastai 2.8 and transformers: `fit_one_cycle` with `pct_start` 0 (pure
anneal) and 1 (pure warm-up), against the formula written out here; and `fit_wsd` warming up from 0
(`div=math.inf`), step for step equal to transformers' `get_wsd_schedule` on a stand-in optimizer."""

import math

import pytest
import torch
from test_schedules_fit import N_ITER, StepSpy, close, make_learner

from lrcycle.validate import spread

LR = slice(1e-3, 1e-2)


def cos_anneal(a, b, t):
    return b + (a - b) / 2 * (1 + math.cos(math.pi * t))


@pytest.mark.parametrize("pct_start", [0.0, 1.0])
@pytest.mark.parametrize("n_groups", [1, 3])
def test_fit_one_cycle_takes_pct_start_0_and_1(pct_start, n_groups):
    learn, spy = make_learner("sgd", n_groups), StepSpy()
    learn.fit_one_cycle(2, LR, pct_start=pct_start, cbs=[spy])
    n, tops = 2 * N_ITER, spread(LR, n_groups)
    if pct_start == 0.0:  # all anneal: from lr_max down to lr_max/div_final, momentum 0.85 back up to 0.95
        lrs = [[cos_anneal(top, top / 1e5, i / n) for top in tops] for i in range(n)]
        moms = [[cos_anneal(0.85, 0.95, i / n)] * n_groups for i in range(n)]
    else:  # all warm-up: from lr_max/div up towards lr_max, momentum 0.95 down towards 0.85
        lrs = [[cos_anneal(top / 25, top, i / n) for top in tops] for i in range(n)]
        moms = [[cos_anneal(0.95, 0.85, i / n)] * n_groups for i in range(n)]
    close(spy.lrs, lrs)
    close(spy.moms, moms)
    assert learn.preview("fit_one_cycle", 2, LR, pct_start=pct_start)["lr"].tolist() == [lr[-1] for lr in spy.lrs]


@pytest.mark.parametrize("pct_start", [-0.1, 1.1])
def test_pct_start_outside_0_1_is_still_refused(pct_start):
    with pytest.raises(ValueError, match=r"pct_start: must be in \[0.0, 1.0\]"):
        make_learner().fit_one_cycle(1, 0.1, pct_start=pct_start)


TRANSFORMERS_DECAY = {"linear": "linear", "cos": "cosine", "1-sqrt": "1-sqrt"}


@pytest.mark.parametrize("n_groups", [1, 3])
@pytest.mark.parametrize("decay_shape", list(TRANSFORMERS_DECAY))
def test_fit_wsd_from_0_equals_transformers_get_wsd_schedule_bit_for_bit(decay_shape, n_groups):
    optimization = pytest.importorskip("transformers.optimization")
    learn, spy, n_epoch = make_learner("adamw", n_groups), StepSpy(), 4
    kwargs = {"warmup": 0.15, "decay": 0.4, "decay_shape": decay_shape, "div": math.inf, "div_final": math.inf}
    learn.fit_wsd(n_epoch, LR, cbs=[spy], **kwargs)
    n = n_epoch * N_ITER
    warmup_steps, decay_steps = round(0.15 * n), round(0.4 * n)
    tops = spread(LR, n_groups)
    dummy = torch.optim.AdamW([{"params": [torch.zeros(1, requires_grad=True)], "lr": top} for top in tops])
    sched = optimization.get_wsd_schedule(
        dummy, warmup_steps, decay_steps, num_training_steps=n, decay_type=TRANSFORMERS_DECAY[decay_shape]
    )
    expected = []
    for _ in range(n):
        expected.append([group["lr"] for group in dummy.param_groups])
        dummy.step()
        sched.step()
    assert spy.lrs[0] == [0.0] * n_groups  # the warm-up starts at exactly 0
    assert spy.lrs == expected  # bit for bit


def test_wsd_div_must_still_be_a_positive_number_or_inf():
    for bad in (0.0, -1.0, math.nan, "inf"):
        with pytest.raises(ValueError, match="div"):
            make_learner().fit_wsd(1, 0.1, div=bad)
