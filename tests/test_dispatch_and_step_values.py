"""The loop's per-step bookkeeping: one call per event that has hooks, and the scheduler's values read ahead
in blocks, the same floats as the one-cycle formula written out, past block ends and the schedule's end."""

import math
from types import SimpleNamespace

import pytest
import torch

from lrcycle import Callback, ParamScheduler
from lrcycle.callback import EVENTS, CallbackList
from lrcycle.callbacks.param_scheduler import STEPS_AT_ONCE
from lrcycle.schedules import one_cycle_schedule

LR_MAXES, DIV, DIV_FINAL, PCT, MOMS = (0.01, 0.1), 25.0, 1e5, 0.25, (0.95, 0.85, 0.95)


def cos_anneal(start, end, t):
    return end + (start - end) / 2 * (1 + math.cos(math.pi * t))


def one_cycle(i, n, start, peak, end):
    """fastai v2's one cycle at step i of n, written out: cosine up over PCT of the fit, then down."""
    pos = i / n
    if pos < PCT:
        return cos_anneal(start, peak, pos / PCT)
    return cos_anneal(peak, end, (pos - PCT) / (1 - PCT))


class Log(Callback):
    def __init__(self, name, log):
        self.name, self.log = name, log

    def before_batch(self, learn):
        self.log.append(self.name)


def test_dispatch_is_none_without_hooks_the_hook_alone_and_every_hook_in_order():
    log = []
    first, second = Log("first", log), Log("second", log)
    one, two = CallbackList([first]), CallbackList([second, first])
    assert all(one.dispatch[e] is None for e in EVENTS if e != "before_batch")
    assert one.dispatch["before_batch"] == first.before_batch
    two.dispatch["before_batch"](None)
    assert log == ["second", "first"]
    two.remove([second])  # the table follows the list
    log.clear()
    two.dispatch["before_batch"](None)
    assert log == ["first"]


def sgd_groups():
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in LR_MAXES]
    return torch.optim.SGD([{"params": [p]} for p in params], lr=1.0, momentum=0.9)


@pytest.mark.parametrize("start", [0, STEPS_AT_ONCE - 3, 2 * STEPS_AT_ONCE + 5])
def test_scheduler_sets_the_formula_at_every_step_across_blocks_and_past_the_end(start):
    n_steps = 2 * STEPS_AT_ONCE + 100
    schedule = one_cycle_schedule(list(LR_MAXES), 1, DIV, DIV_FINAL, PCT, MOMS, n_steps)
    opt = sgd_groups()
    learn = SimpleNamespace(training=True, train_iter=0, opt=opt)
    cb = ParamScheduler(schedule)
    for i in range(start, n_steps + 20):  # 20 steps past the schedule's end, where it is asked step by step
        learn.train_iter = i
        cb.before_batch(learn)
        for group, lr_max in zip(opt.param_groups, LR_MAXES):
            assert group["lr"] == one_cycle(i, n_steps, lr_max / DIV, lr_max, lr_max / DIV_FINAL), i
            assert group["momentum"] == one_cycle(i, n_steps, *MOMS), i


def test_a_new_schedule_is_read_afresh():
    opt, learn = sgd_groups(), SimpleNamespace(training=True, train_iter=3, opt=None)
    learn.opt = opt
    cb = ParamScheduler(one_cycle_schedule(list(LR_MAXES), 1, DIV, DIV_FINAL, PCT, MOMS, 10))
    cb.before_batch(learn)
    cb.load_state_dict({"spec": {**cb.state_dict()["spec"], "lrs": [1.0, 2.0]}})  # a resume loads another
    cb.before_batch(learn)
    assert [g["lr"] for g in opt.param_groups] == [one_cycle(3, 10, lr / DIV, lr, lr / DIV_FINAL) for lr in (1.0, 2.0)]


def test_a_schedule_without_momentum_leaves_it_alone():
    opt = sgd_groups()
    learn = SimpleNamespace(training=True, train_iter=0, opt=opt)
    cb = ParamScheduler(one_cycle_schedule(list(LR_MAXES), 1, DIV, DIV_FINAL, PCT, None, 10))
    cb.before_batch(learn)
    assert [g["momentum"] for g in opt.param_groups] == [0.9, 0.9]
