"""The named scheduler callbacks: passed to `fit(lr, n)` they set bit for bit what the matching fit form sets
(lrs and momenta per step, every group), they follow DESIGN.md's formulas written out here, the fit forms carry
them, two in one fit are refused, `preview` shows them, and `learn.resume(name, cbs=[...])` takes them back."""

import math
import sys
from pathlib import Path

import pytest
import torch
from test_schedules_fit import N_ITER, StepSpy, close, make_learner

from lrcycle import (
    Callback,
    Checkpoint,
    CircularLRBetaCallback,
    CircularLRCallback,
    CyclicLRCallback,
    FlatCosCallback,
    LRFinderCallback,
    OneCycleCallback,
    ParamScheduler,
    SGDRCallback,
    WSDCallback,
    schedules,
)
from lrcycle.validate import spread

sys.path.insert(0, str(Path(__file__).resolve().parent))


def trace(opt, n_groups, call):
    """Every step's per-group lrs and momenta (read from the optimizer as it steps) under `call(learn, spy)`."""
    learn, spy = make_learner(opt, n_groups), StepSpy()
    call(learn, [spy])
    return spy.lrs, spy.moms


# (callback call, fit-form call) pairs that must set exactly the same values
SAME = {
    "one_cycle": (
        lambda learn, cbs: learn.fit(0.05, 3, cbs=[OneCycleCallback(), *cbs]),
        lambda learn, cbs: learn.fit_one_cycle(3, 0.05, cbs=cbs),
    ),
    "one_cycle_args": (
        lambda learn, cbs: learn.fit(0.9, 3, cbs=[OneCycleCallback(slice(1e-3, 1e-2), 10, 1e4, 0.4), *cbs]),
        lambda learn, cbs: learn.fit_one_cycle(3, slice(1e-3, 1e-2), 10, 1e4, 0.4, cbs=cbs),
    ),
    "circular": (
        lambda learn, cbs: learn.fit(0.1, 3, cbs=[CircularLRCallback(32, 5), *cbs]),
        lambda learn, cbs: learn.fit(0.1, 1, cycle_len=3, use_clr=(32, 5), cbs=cbs),
    ),
    "circular_moms": (
        lambda learn, cbs: learn.fit(0.1, 3, cbs=[CircularLRCallback(32, 5, moms=(0.95, 0.85)), *cbs]),
        lambda learn, cbs: learn.fit(0.1, 1, cycle_len=3, use_clr=(32, 5, 0.95, 0.85), cbs=cbs),
    ),
    "circular_cycles": (
        lambda learn, cbs: learn.fit(0.1, 3, cbs=[CircularLRCallback(cycle_len=1, cycle_mult=2), *cbs]),
        lambda learn, cbs: learn.fit(0.1, 2, cycle_len=1, cycle_mult=2, use_clr=(4, 8), cbs=cbs),
    ),
    "circular_beta": (
        lambda learn, cbs: learn.fit(0.1, 3, cbs=[CircularLRBetaCallback(10, 10, (0.95, 0.85)), *cbs]),
        lambda learn, cbs: learn.fit(0.1, 1, cycle_len=3, use_clr_beta=(10, 10, 0.95, 0.85), cbs=cbs),
    ),
    "sgdr": (
        lambda learn, cbs: learn.fit(0.1, 3, cbs=[SGDRCallback(), *cbs]),
        lambda learn, cbs: learn.fit(0.1, 3, cycle_len=1, cbs=cbs),
    ),
    "sgdr_mult": (
        lambda learn, cbs: learn.fit(0.1, 7, cbs=[SGDRCallback(1, 2), *cbs]),
        lambda learn, cbs: learn.fit(0.1, 3, cycle_len=1, cycle_mult=2, cbs=cbs),
    ),
    "cyclic": (
        lambda learn, cbs: learn.fit(0.1, 4, cbs=[CyclicLRCallback(n_cycle=1.5, moms=(0.95, 0.85)), *cbs]),
        lambda learn, cbs: learn.fit_cyclic(4, 0.1, n_cycle=1.5, moms=(0.95, 0.85), cbs=cbs),
    ),
    "flat_cos": (
        lambda learn, cbs: learn.fit(0.1, 4, cbs=[FlatCosCallback(pct_start=0.5), *cbs]),
        lambda learn, cbs: learn.fit_flat_cos(4, 0.1, pct_start=0.5, cbs=cbs),
    ),
    "wsd": (
        lambda learn, cbs: learn.fit(0.1, 4, cbs=[WSDCallback(warmup=0.1, decay=0.3, moms=(0.9, 0.8, 0.9)), *cbs]),
        lambda learn, cbs: learn.fit_wsd(4, 0.1, warmup=0.1, decay=0.3, moms=(0.9, 0.8, 0.9), cbs=cbs),
    ),
}


@pytest.mark.parametrize("opt", ["sgd", "adam"])
@pytest.mark.parametrize("n_groups", [1, 3])
@pytest.mark.parametrize("case", list(SAME))
def test_a_callback_passed_to_fit_sets_exactly_what_its_fit_form_sets(case, opt, n_groups):
    with_callback, fit_form = SAME[case]
    lrs, moms = trace(opt, n_groups, with_callback)
    assert len(lrs) >= 3 * N_ITER
    assert (lrs, moms) == trace(opt, n_groups, fit_form)  # bit for bit: Python floats compared with ==


def cos_anneal(a, b, t):
    return b + (a - b) / 2 * (1 + math.cos(math.pi * t))


def test_one_cycle_callback_follows_the_formula_per_group():
    lrs, moms = trace("sgd", 3, lambda learn, cbs: learn.fit(0.5, 2, cbs=[OneCycleCallback(slice(1e-3, 1e-2)), *cbs]))
    n, tops = 2 * N_ITER, spread(slice(1e-3, 1e-2), 3)

    def at(i, start, peak, end):
        pos = i / n
        if pos < 0.25:
            return cos_anneal(start, peak, pos / 0.25)
        return cos_anneal(peak, end, (pos - 0.25) / 0.75)

    close(lrs, [[at(i, top / 25, top, top / 1e5) for top in tops] for i in range(n)])
    close(moms, [[at(i, 0.95, 0.85, 0.95)] * 3 for i in range(n)])


def test_circular_callback_follows_the_formula_each_cycle():
    cb = CircularLRCallback(div=32, cut_div=5, moms=(0.95, 0.85), cycle_len=1)
    lrs, moms = trace("sgd", 1, lambda learn, cbs: learn.fit(0.1, 3, cbs=[cb, *cbs]))
    nb, cut = N_ITER, max(1, N_ITER // 5)
    ps = [j / cut if j <= cut else 1 - (j - cut) / (nb - cut) for j in range(nb)] * 3
    close(lrs, [[0.1 * (1 + p * 31) / 32] for p in ps])
    close(moms, [[0.95 - p * 0.1] for p in ps])


def test_sgdr_callback_follows_the_formula_with_the_warm_up():
    lrs, moms = trace("sgd", 1, lambda learn, cbs: learn.fit(0.1, 3, cbs=[SGDRCallback(1, 2), *cbs]))
    bounds = [0, N_ITER, 3 * N_ITER]
    expected = []
    for c in range(2):
        nb = bounds[c + 1] - bounds[c]
        expected += [0.1 / 2 * (1 + math.cos(math.pi * j / nb)) for j in range(nb)]
    warm = N_ITER / 20  # 0.7's lr/100 for the first nb0/20 iterations
    expected = [0.1 / 100 if i < warm else lr for i, lr in enumerate(expected)]
    close(lrs, [[lr] for lr in expected])
    assert moms == [[0.9]] * len(expected)  # SGDR leaves momentum alone


class SchedulerSpy(Callback):
    """The scheduler callbacks taking part in the fit, by type name, as `learn.cbs` has them."""

    order = 0

    def before_fit(self, learn):
        self.names = [type(cb).__name__ for cb in learn.cbs if isinstance(cb, ParamScheduler)]


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda learn, cbs: learn.fit_one_cycle(2, 0.1, cbs=cbs), "OneCycleCallback"),
        (lambda learn, cbs: learn.fit(0.1, 1, cycle_len=2, use_clr=(32, 5), cbs=cbs), "CircularLRCallback"),
        (lambda learn, cbs: learn.fit(0.1, 1, cycle_len=2, use_clr_beta=(10, 10), cbs=cbs), "CircularLRBetaCallback"),
        (lambda learn, cbs: learn.fit(0.1, 2, cycle_len=1, cbs=cbs), "SGDRCallback"),
        (lambda learn, cbs: learn.fit_cyclic(2, 0.1, cbs=cbs), "CyclicLRCallback"),
        (lambda learn, cbs: learn.fit_flat_cos(2, 0.1, cbs=cbs), "FlatCosCallback"),
        (lambda learn, cbs: learn.fit_wsd(2, 0.1, cbs=cbs), "WSDCallback"),
        (lambda learn, cbs: learn.fit(0.1, 2, cbs=cbs), "ParamScheduler"),
        (lambda learn, cbs: learn.fit(0.1, 2, cbs=[SGDRCallback(2), *cbs]), "SGDRCallback"),
    ],
)
def test_each_fit_form_carries_its_named_callback(call, name):
    learn, spy = make_learner(), SchedulerSpy()
    call(learn, [spy])
    assert spy.names == [name]
    assert not any(isinstance(cb, ParamScheduler) for cb in learn.cbs)  # the fit's own leaves with the fit


def test_two_schedulers_in_one_fit_are_refused_naming_both_and_nothing_changes():
    learn = make_learner()
    learn.fit(0.1, 1)
    weights, opt, cb = [p.clone() for p in learn.model.parameters()], learn.opt, OneCycleCallback()
    with pytest.raises(ValueError, match="OneCycleCallback and SGDRCallback"):
        learn.fit(0.1, 2, cbs=[cb, SGDRCallback()])
    with pytest.raises(ValueError, match="OneCycleCallback.*CircularLRCallback"):
        learn.fit_one_cycle(2, 0.1, cbs=[CircularLRCallback()])
    with pytest.raises(ValueError, match="ends inside a cycle.*1, 3, 7"):
        learn.fit(0.1, 4, cbs=[SGDRCallback(1, 2)])
    with pytest.raises(ValueError, match="start_epoch"):
        learn.fit(0.1, 2, cbs=[cb], start_epoch=5)
    assert cb.schedule is None  # a refused fit leaves a passed callback unbound
    assert all(torch.equal(a, b) for a, b in zip(weights, learn.model.parameters())) and learn.opt is opt
    learn.add_cbs([OneCycleCallback()])  # a learner's own scheduler counts too
    with pytest.raises(ValueError, match="OneCycleCallback and SGDRCallback"):
        learn.fit(0.1, 2, cbs=[SGDRCallback()])


def test_a_plain_param_scheduler_passed_to_fit_applies_its_schedule_of_the_same_length():
    schedule = schedules.one_cycle_schedule([0.05], 2, 25.0, 1e5, 0.25, None, N_ITER)
    lrs, moms = trace("sgd", 1, lambda learn, cbs: learn.fit(0.9, 2, cbs=[ParamScheduler(schedule), *cbs]))
    assert lrs == [schedule(i)[0] for i in range(2 * N_ITER)] and moms == [[0.9]] * (2 * N_ITER)
    with pytest.raises(ValueError, match="runs 2 epochs of 7 steps, this fit 3 of 7"):
        make_learner().fit(0.9, 3, cbs=[ParamScheduler(schedule)])


def test_bad_arguments_are_refused_when_the_callback_is_made():
    with pytest.raises(ValueError, match="pct_start"):
        OneCycleCallback(pct_start=1.5)
    with pytest.raises(ValueError, match="moms"):
        OneCycleCallback(moms=(0.9, 0.8))
    with pytest.raises(ValueError, match=r"^cut_div: must be in \[1.0, inf\)"):
        CircularLRCallback(32, 0.5)
    with pytest.raises(ValueError, match="^moms"):
        CircularLRCallback(moms=(0.95,))
    with pytest.raises(ValueError, match="^pct"):
        CircularLRBetaCallback(10, 100)
    with pytest.raises(ValueError, match="cycle_len"):
        SGDRCallback(0)
    with pytest.raises(ValueError, match="mode"):
        CyclicLRCallback(mode="square")
    with pytest.raises(ValueError, match="decay_shape"):
        WSDCallback(decay_shape="exp")


def test_an_unbound_callback_outside_a_fit_form_says_how_to_use_it():
    learn = make_learner()
    with pytest.raises(ValueError, match=r"learn.fit\(lr, n_epoch, cbs=\[OneCycleCallback"):
        learn.fit_epochs(1, cbs=[OneCycleCallback()])
    assert learn.opt is None


@pytest.mark.parametrize("case", ["one_cycle_args", "circular_moms", "sgdr_mult", "wsd"])
def test_preview_with_a_callback_shows_what_the_fit_sets(case):
    with_callback, _ = SAME[case]
    previewed = {}

    class Preview:
        def fit(self, *args, cbs):
            previewed["df"] = learn.preview("fit", *args, cbs=cbs)

    learn = make_learner("sgd", 3)
    with_callback(Preview(), [])
    lrs, moms = trace("sgd", 3, with_callback)
    df = previewed["df"]
    assert [list(row) for row in df[["lr_0", "lr_1", "lr_2"]].itertuples(index=False)] == lrs
    assert list(df["mom"]) == [m[-1] for m in moms]


def test_state_dict_round_trips_and_an_unbound_one_saves_none():
    source = OneCycleCallback()
    assert source.state_dict() == {"spec": None}
    learn = make_learner()
    learn.fit(0.05, 2, cbs=[source])
    target = OneCycleCallback(lr_max=1.0)
    target.load_state_dict(source.state_dict())
    n = 2 * N_ITER
    assert [target.schedule(i) for i in range(n)] == [source.schedule(i) for i in range(n)]
    expected = schedules.one_cycle_schedule([0.05], 2, 25.0, 1e5, 0.25, (0.95, 0.85, 0.95), N_ITER)
    assert source.schedule.spec == expected.spec


def test_learn_resume_takes_the_passed_scheduler_back(tmp_path):
    from resume_cases import make_learner as resume_learner
    from resume_cases import seed_all

    seed_all(0)
    whole = resume_learner(tmp_path / "whole")
    whole.fit(0.05, 4, cbs=[CircularLRCallback(20, 4, cycle_len=2)])
    seed_all(0)
    cut = resume_learner(tmp_path / "cut")
    cut.fit(0.05, 4, cbs=[CircularLRCallback(20, 4, cycle_len=2), Checkpoint("ck", every=3)])
    fresh = resume_learner(tmp_path / "cut", seed=9)
    passed = CircularLRCallback(20, 4, cycle_len=2)
    fresh.resume("ck", cbs=[passed])  # the same callbacks as the saved fit: it carries the saved schedule
    assert passed.schedule.spec["builder"] == "clr" and passed.schedule.spec["n_cycle"] == 2
    for a, b in zip(fresh.model.state_dict().values(), whole.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert fresh.recorder.lrs == whole.recorder.lrs and fresh.recorder.moms == whole.recorder.moms


def test_a_learners_scheduler_sits_out_the_range_test():
    learn = make_learner()
    cb = OneCycleCallback()
    learn.add_cbs([cb])
    learn.lr_find(start_lr=1e-5, end_lr=1.0, num_it=10)
    expected = [1e-5 * (1.0 / 1e-5) ** (i / 9) for i in range(10)]
    close(learn.recorder.lrs, expected[: len(learn.recorder.lrs)])
    assert cb in learn.cbs and not any(isinstance(c, LRFinderCallback) for c in learn.cbs)
    learn.fit(0.05, 2)  # and applies the fit's one cycle afterwards
    assert cb.schedule.spec["builder"] == "one_cycle"
