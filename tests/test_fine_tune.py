"""`learn.fine_tune` against fastai 2.8's definition written out here: per-group lr and momentum traces of both
one-cycle fits, the freeze of the first; resuming from a checkpoint of either fit ends exactly as the whole
call; Ctrl-C leaves the state of some number of completed steps; bad arguments change nothing."""

import math
import random
import shutil

import pytest
import torch
from conftest import make_dls, make_mlp
from test_ctrl_c import (
    assert_process_clean,
    count_line_events,
    model_copy,
    opt_state_copy,
    quiet,
    run_timed,
    run_traced,
    same_model,
    same_opt_state,
)
from test_schedules_fit import N_ITER, close

from lrcycle import Callback, Checkpoint, Learner, OneCycleCallback, sequential_splitter
from lrcycle.optim import get_lrs, get_moms
from lrcycle.validate import spread


class AllSteps(Callback):
    """Every step of every fit: per-group lrs and momenta, and which groups train (requires_grad)."""

    order = 100

    def __init__(self):
        self.lrs, self.moms, self.trains, self.fits = [], [], [], 0

    def before_fit(self, learn):
        self.fits += 1

    def before_step(self, learn):
        self.lrs.append(get_lrs(learn.opt))
        self.moms.append(get_moms(learn.opt))
        self.trains.append([all(p.requires_grad for p in g) for g in learn.layer_groups])


def make_learner(path=".", seed=0, n_train=16 * N_ITER, **kw):
    dls = make_dls(n_train=n_train)
    return Learner(dls, make_mlp(seed=seed), opt_func=torch.optim.Adam, splitter=sequential_splitter(3),
                   progress=False, path=path, device="cpu", **kw)  # fmt: skip


def cos_anneal(a, b, t):
    return b + (a - b) / 2 * (1 + math.cos(math.pi * t))


def one_cycle(i, n, top, div, div_final, pct, moms):
    """fastai's one cycle at step i of n: (lr, momentum)."""
    pos = i / n
    if pos < pct:
        return cos_anneal(top / div, top, pos / pct), cos_anneal(moms[0], moms[1], pos / pct)
    t = (pos - pct) / (1 - pct)
    return cos_anneal(top, top / div_final, t), cos_anneal(moms[1], moms[2], t)


def test_fine_tune_is_fastais_two_one_cycle_fits():
    learn, spy = make_learner(), AllSteps()
    before = model_copy(learn.model)
    learn.fine_tune(2, base_lr=1e-2, freeze_epochs=1, cbs=[spy])
    assert spy.fits == 2
    moms = (0.95, 0.85, 0.95)
    n1, n2 = N_ITER, 2 * N_ITER
    frozen_tops = [1e-2 / 10, 1e-2 / 10, 1e-2]  # slice(base_lr): the last group base_lr, the others a tenth
    half = 1e-2 / 2
    unfrozen_tops = [half / 100 * (100 ** (g / 2)) for g in range(3)]  # slice(half/lr_mult, half), geometric
    phase1 = [[one_cycle(i, n1, top, 25.0, 1e5, 0.99, moms) for top in frozen_tops] for i in range(n1)]
    phase2 = [[one_cycle(i, n2, top, 5.0, 1e5, 0.3, moms) for top in unfrozen_tops] for i in range(n2)]
    expected = phase1 + phase2
    close(spy.lrs, [[lr for lr, _ in row] for row in expected])
    close(spy.moms, [[m for _, m in row] for row in expected])
    assert spy.trains == [[False, False, True]] * n1 + [[True, True, True]] * n2
    assert unfrozen_tops[-1] == pytest.approx(spread(slice(half / 100, half), 3)[-1])
    # the frozen groups did not move in the first fit (checked at its end through the second fit's start)
    assert all(p.requires_grad for p in learn.model.parameters())
    assert not same_model(model_copy(learn.model), before)


def test_freeze_epochs_0_is_the_unfrozen_fit_only():
    learn, spy = make_learner(), AllSteps()
    learn.fine_tune(1, base_lr=4e-3, freeze_epochs=0, cbs=[spy])
    tops = [2e-3 / 100 * (100 ** (g / 2)) for g in range(3)]
    assert spy.fits == 1 and spy.trains == [[True] * 3] * N_ITER
    close(spy.lrs, [[one_cycle(i, N_ITER, top, 5.0, 1e5, 0.3, (0.95, 0.85, 0.95))[0] for top in tops]
                    for i in range(N_ITER)])  # fmt: skip


class FrozenWeights(Callback):
    """The first two groups' weights at the end of the first fit."""

    order = 100

    def after_fit(self, learn):
        if not hasattr(self, "weights"):
            self.weights = [p.detach().clone() for g in learn.layer_groups[:2] for p in g]


def test_the_frozen_fit_leaves_the_body_as_it_was():
    learn, spy = make_learner(), FrozenWeights()
    body = [p.detach().clone() for g in learn.layer_groups[:2] for p in g]
    learn.fine_tune(1, cbs=[spy])
    assert all(torch.equal(a, b) for a, b in zip(body, spy.weights, strict=True))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"freeze_epochs": -1}, "freeze_epochs"),
        ({"base_lr": 0}, "base_lr"),
        ({"lr_mult": -2}, "lr_mult"),
        ({"pct_start": 1.5}, "pct_start"),
        ({"div": 0}, "div"),
        ({"moms": (0.9,)}, "moms"),
        ({"cbs": [OneCycleCallback()]}, "OneCycleCallback"),  # a second schedule in the fits
    ],
)
def test_bad_arguments_change_nothing(kwargs, message):
    learn = make_learner()
    weights, flags = model_copy(learn.model), [p.requires_grad for p in learn.model.parameters()]
    with pytest.raises(ValueError, match=message):
        learn.fine_tune(1, **kwargs)
    assert same_model(model_copy(learn.model), weights) and learn.opt is None
    assert [p.requires_grad for p in learn.model.parameters()] == flags


def test_a_single_group_model_is_refused_with_the_fix():
    learn = Learner(make_dls(), make_mlp(), progress=False, device="cpu")
    with pytest.raises(ValueError, match="splitter"):
        learn.fine_tune(1)
    assert learn.opt is None


class KeepCheckpoints(Callback):
    """After each epoch's checkpoint, a copy of it as `kept/ck_<n>.pth`, n counting epochs over both fits."""

    order = 99

    def __init__(self):
        self.n = 0

    def after_epoch(self, learn):
        self.n += 1
        saved = learn.path / learn.model_dir / "ck.pth"
        if saved.exists():
            (learn.path / "kept").mkdir(exist_ok=True)
            shutil.move(saved, learn.path / "kept" / f"ck_{self.n}.pth")


def seed_all(seed):
    torch.manual_seed(seed)
    random.seed(seed)


def final(learn):
    return model_copy(learn.model), opt_state_copy(learn.opt), list(learn.recorder.losses), list(learn.recorder.lrs)


def test_resume_from_either_fit_ends_as_the_whole_call(tmp_path):
    seed_all(1)
    whole = make_learner(tmp_path / "whole")
    whole.fine_tune(3, freeze_epochs=2, cbs=[Checkpoint("ck"), KeepCheckpoints()])
    kept = sorted((tmp_path / "whole" / "kept").glob("ck_*.pth"))
    assert [p.stem for p in kept] == ["ck_1", "ck_3", "ck_4"]  # after epoch 1 of the frozen fit, 1 and 2 of the other
    weights, opt_state, losses, lrs = final(whole)
    for file in kept:
        path = tmp_path / f"from_{file.stem}"
        (path / "models").mkdir(parents=True)
        shutil.copy(file, path / "models" / "ck.pth")
        seed_all(50)
        learn = make_learner(path, seed=7)
        learn.fine_tune(3, freeze_epochs=2, cbs=[Checkpoint("ck")], resume="ck")
        r_weights, r_opt_state, r_losses, r_lrs = final(learn)
        assert same_model(r_weights, weights) and same_opt_state(r_opt_state, opt_state), file.stem
        assert (r_losses, r_lrs) == (losses, lrs)  # the last fit's traces, bit for bit


def test_resume_from_another_call_is_refused(tmp_path):
    learn = make_learner(tmp_path)
    learn.fine_tune(2, freeze_epochs=1, cbs=[Checkpoint("ck")])
    fresh = make_learner(tmp_path, seed=3)
    with pytest.raises(ValueError, match="none of this call's fits"):
        fresh.fine_tune(2, base_lr=1e-3, freeze_epochs=1, cbs=[Checkpoint("ck")], resume="ck")
    assert fresh.opt is None and all(p.requires_grad for p in fresh.model.parameters())


# ---- Ctrl-C ------------------------------------------------------------------------------------------------
def tiny_learner():
    return make_learner(n_train=24)  # 2 batches an epoch


def fine_tune_call(learn):
    def call():
        torch.manual_seed(3)
        learn.fine_tune(1)

    return lambda: quiet(call)


class EveryStep(Callback):
    """The state after every completed step, counted over both fits."""

    order = 1000

    def __init__(self, learn):
        self.states = [(model_copy(learn.model), None)]

    def after_step(self, learn):
        self.states.append((model_copy(learn.model), opt_state_copy(learn.opt)))


def matches_a_replayed_step(learn, states) -> bool:
    weights, opt_state = model_copy(learn.model), opt_state_copy(learn.opt)
    for k, (w, o) in enumerate(states):
        if same_model(weights, w) and (k == 0 or same_opt_state(opt_state, o)):
            return True
    return False


def test_ctrl_c_during_fine_tune_leaves_the_state_of_completed_steps():
    replay = tiny_learner()
    record = EveryStep(replay)
    replay.add_cbs([record])
    fine_tune_call(replay)()
    assert len(record.states) == 1 + 2 + 2
    points = range(1, count_line_events(fine_tune_call(tiny_learner())) + 1, 211)
    for at in points:
        learn = tiny_learner()
        cbs = list(learn.cbs)
        tracer, interrupted = run_traced(fine_tune_call(learn), at)
        assert tracer.fired and interrupted, f"line event {at}: the press was lost"
        assert_process_clean(learn, cbs)
        assert matches_a_replayed_step(learn, record.states), f"line event {at}"
        flags = [all(p.requires_grad for p in g) for g in learn.layer_groups]
        assert flags in ([True] * 3, [False, False, True]), f"half frozen at line event {at}: {flags}"
    for delay in (0.002, 0.01, 0.03):
        learn = tiny_learner()
        cbs = list(learn.cbs)
        run_timed(fine_tune_call(learn), delay)
        assert_process_clean(learn, cbs)
        assert matches_a_replayed_step(learn, record.states)
