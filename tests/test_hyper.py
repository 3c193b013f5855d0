"""Reading and writing lr, momentum and weight decay on any torch optimizer's param groups."""

import pytest
import torch
from conftest import make_dls, make_mlp

from lrcycle import Learner, sequential_splitter
from lrcycle.optim import (
    apply_hypers,
    get_lrs,
    get_mom,
    get_moms,
    get_wds,
    hypers_snapshot,
    restore_hypers,
    set_lrs,
    set_mom,
    set_moms,
    set_wds,
)

# optimizer factory, the key its momentum lives under, and the default momentum
OPTIMIZERS = {
    "sgd": (lambda groups: torch.optim.SGD(groups, lr=0.1, momentum=0.9), "momentum", 0.9),
    "adam": (lambda groups: torch.optim.Adam(groups, lr=0.1), "betas", 0.9),
    "adamw": (lambda groups: torch.optim.AdamW(groups, lr=0.1, betas=(0.8, 0.99)), "betas", 0.8),
    "rmsprop": (lambda groups: torch.optim.RMSprop(groups, lr=0.1, momentum=0.5), "momentum", 0.5),
    "adagrad": (lambda groups: torch.optim.Adagrad(groups, lr=0.1), None, None),
}


def three_groups():
    torch.manual_seed(0)
    return [{"params": [torch.nn.Parameter(torch.randn(3))]} for _ in range(3)]


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_get_and_set_lr_per_group(name):
    opt = OPTIMIZERS[name][0](three_groups())
    assert get_lrs(opt) == [0.1] * 3
    set_lrs(opt, [1e-3, 1e-2, 1e-1])
    assert [g["lr"] for g in opt.param_groups] == [1e-3, 1e-2, 1e-1]
    set_lrs(opt, 0.5)
    assert get_lrs(opt) == [0.5] * 3
    with pytest.raises(ValueError, match="lr"):
        set_lrs(opt, [0.1, 0.2])


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_get_and_set_momentum(name):
    factory, key, default = OPTIMIZERS[name]
    opt = factory(three_groups())
    assert get_moms(opt) == [default] * 3
    set_moms(opt, [0.7, 0.8, 0.85])
    if key is None:  # no momentum at all: reading gives None, writing does nothing
        assert get_moms(opt) == [None] * 3
        assert all("momentum" not in g and "betas" not in g for g in opt.param_groups)
    elif key == "betas":
        second = opt.param_groups[0]["betas"][1]
        assert [g["betas"] for g in opt.param_groups] == [(0.7, second), (0.8, second), (0.85, second)]
    else:
        assert [g["momentum"] for g in opt.param_groups] == [0.7, 0.8, 0.85]
    set_mom(opt.param_groups[0], 0.6)
    assert get_mom(opt.param_groups[0]) == (None if key is None else 0.6)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_get_and_set_weight_decay(name):
    opt = OPTIMIZERS[name][0](three_groups())
    set_wds(opt, [0.0, 0.01, 0.1])
    assert get_wds(opt) == [0.0, 0.01, 0.1]
    assert [g["weight_decay"] for g in opt.param_groups] == [0.0, 0.01, 0.1]


@pytest.mark.parametrize("name", ["sgd", "adam", "rmsprop"])
def test_written_momentum_is_the_one_the_optimizer_uses(name):
    """A step after set_moms equals a step of an optimizer built with that momentum."""
    builders = {
        "sgd": lambda p, m: torch.optim.SGD(p, lr=0.1, momentum=m),
        "adam": lambda p, m: torch.optim.Adam(p, lr=0.1, betas=(m, 0.999)),
        "rmsprop": lambda p, m: torch.optim.RMSprop(p, lr=0.1, momentum=m),
    }
    results = []
    for written in (True, False):
        torch.manual_seed(0)
        w = torch.nn.Parameter(torch.randn(5))
        opt = builders[name]([w], 0.3 if written else 0.6)
        if written:
            set_moms(opt, [0.6])
        for _ in range(3):
            (w**2).sum().backward()
            opt.step()
            opt.zero_grad()
        results.append(w.detach().clone())
    assert torch.equal(*results)


def test_snapshot_and_restore_every_hyperparameter():
    opt = torch.optim.AdamW(three_groups(), lr=0.1)
    saved = hypers_snapshot(opt)
    set_lrs(opt, [1.0, 2.0, 3.0])
    set_moms(opt, 0.5)
    set_wds(opt, 0.3)
    restore_hypers(opt, saved)
    assert hypers_snapshot(opt) == saved
    assert all("params" not in s for s in saved)


def _learner(**kw):
    return Learner(make_dls(), make_mlp(), splitter=sequential_splitter(3), progress=False, **kw)


def test_learner_lr_and_wd_are_what_the_first_optimizer_gets():
    learn = _learner(lr=slice(1e-3, 1e-1), wd=0.01)
    learn.fit()
    assert get_lrs(learn.opt) == pytest.approx([1e-3, 1e-2, 1e-1], rel=1e-12)
    assert get_wds(learn.opt) == [0.01] * 3


def test_wd_given_to_a_fit_applies_from_that_fit_on():
    learn = _learner()
    learn.fit(0.1, wd=[0.0, 0.1, 0.2])
    learn.fit(slice(0.2))
    assert get_wds(learn.opt) == [0.0, 0.1, 0.2]
    assert get_lrs(learn.opt) == pytest.approx([0.02, 0.02, 0.2], rel=1e-12)


def test_create_opt_builds_a_fresh_optimizer_with_one_group_per_layer_group():
    learn = _learner(lr=0.05)
    learn.fit()
    old = learn.opt
    assert old.state  # momentum buffers exist after a fit
    new = learn.create_opt()
    assert new is learn.opt and new is not old and not new.state
    assert len(new.param_groups) == 3 and get_lrs(new) == [0.05] * 3


@pytest.mark.parametrize("mom", [None, 0.7])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_apply_hypers_writes_what_set_lrs_and_set_mom_write(name, mom):
    make, key, default = OPTIMIZERS[name]
    applied, expected = make(three_groups()), make(three_groups())
    apply_hypers(applied, [1e-3, 1e-2, 1e-1], mom)
    set_lrs(expected, [1e-3, 1e-2, 1e-1])
    for group in expected.param_groups:
        if mom is not None:
            set_mom(group, mom)
    strip = [{k: v for k, v in g.items() if k != "params"} for g in applied.param_groups]
    assert strip == [{k: v for k, v in g.items() if k != "params"} for g in expected.param_groups]
    assert get_moms(applied) == [default if mom is None or key is None else mom] * 3
    with pytest.raises(ValueError):
        apply_hypers(applied, [0.1, 0.2], mom)  # one lr per group
