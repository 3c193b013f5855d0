"""Training frozen groups: frozen parameters get no update, no weight decay, and keep optimizer state."""

from functools import partial

import pytest
import torch
from conftest import make_dls, make_mlp

from lrcycle import DataLoaders, Learner, digits_cnn
from lrcycle.layers import sequential_splitter

OPTIMIZERS = {
    "SGD": partial(torch.optim.SGD, momentum=0.9, weight_decay=0.1),
    "Adam": partial(torch.optim.Adam, weight_decay=0.1),
    "AdamW": partial(torch.optim.AdamW, weight_decay=0.1),
}


def mlp_learner(opt_name, **kwargs):
    return Learner(
        make_dls(),
        make_mlp(),
        opt_func=OPTIMIZERS[opt_name],
        splitter=sequential_splitter(3),
        progress=False,
        **kwargs,
    )


def snapshot(groups):
    return [[p.detach().clone() for p in g] for g in groups]


def unchanged(before, groups):
    """Per group, per parameter: bitwise equal to the snapshot."""
    return [[torch.equal(a, p) for a, p in zip(ga, g, strict=True)] for ga, g in zip(before, groups, strict=True)]


@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
def test_after_freeze_and_a_fit_only_the_head_changes_then_unfreeze_changes_all(opt_name):
    learn = mlp_learner(opt_name)
    learn.freeze()
    before = snapshot(learn.layer_groups)
    learn.fit(1e-2, 2, wd=0.1)
    assert unchanged(before, learn.layer_groups) == [[True, True], [True, True], [False, False]]
    learn.unfreeze()
    before = snapshot(learn.layer_groups)
    learn.fit(1e-2)
    assert unchanged(before, learn.layer_groups) == [[False, False]] * 3


@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
def test_weight_decay_touches_no_frozen_parameter(opt_name):
    """A loss with zero gradient leaves weight decay as the only force: it must move the head alone."""
    learn = Learner(
        make_dls(),
        make_mlp(),
        loss_func=lambda pred, y: pred.sum() * 0.0,
        opt_func=OPTIMIZERS[opt_name],
        splitter=sequential_splitter(3),
        progress=False,
    )
    learn.freeze()
    before = snapshot(learn.layer_groups)
    learn.fit(1e-2, wd=[0.5, 0.5, 0.5])
    assert unchanged(before, learn.layer_groups) == [[True, True], [True, True], [False, False]]
    head, head_before = learn.layer_groups[-1][0], before[-1][0]
    assert head.abs().sum() < head_before.abs().sum()  # decayed towards zero


def opt_state(learn, params):
    """A deep copy of the optimizer state of `params` (tensors cloned, step counters included)."""
    copy = lambda v: v.detach().clone() if isinstance(v, torch.Tensor) else v
    return [{k: copy(v) for k, v in learn.opt.state[p].items()} for p in params]


def same_state(a, b):
    if len(a) != len(b):
        return False
    for sa, sb in zip(a, b, strict=True):
        if sa.keys() != sb.keys():
            return False
        for k in sa:
            va, vb = sa[k], sb[k]
            if isinstance(va, torch.Tensor) and not torch.equal(va, vb):
                return False
            if not isinstance(va, torch.Tensor) and va != vb:
                return False
    return True


@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
def test_frozen_parameters_keep_their_optimizer_state(opt_name):
    learn = mlp_learner(opt_name)
    learn.fit(1e-2)  # every parameter now has momentum / Adam moments and step counts
    body = learn.layer_groups[0] + learn.layer_groups[1]
    head = learn.layer_groups[2]
    body_state, head_state = opt_state(learn, body), opt_state(learn, head)
    assert all(body_state)  # there is state to disturb
    learn.freeze()
    learn.fit(1e-2)
    assert same_state(opt_state(learn, body), body_state)
    assert not same_state(opt_state(learn, head), head_state)


@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
def test_leftover_gradients_do_not_move_parameters_frozen_after_them(opt_name):
    learn = mlp_learner(opt_name)
    for p in learn.model.parameters():
        p.grad = torch.ones_like(p)  # as a cancelled step would leave them
    learn.freeze()
    before = snapshot(learn.layer_groups)
    learn.fit(1e-2)
    assert unchanged(before, learn.layer_groups)[:2] == [[True, True], [True, True]]


def bn_and_other_params(child):
    bn = [p for m in child.modules() if isinstance(m, torch.nn.BatchNorm2d) for p in m.parameters(recurse=False)]
    bn_ids = {id(p) for p in bn}
    return bn, [p for p in child.parameters() if id(p) not in bn_ids]


@pytest.mark.parametrize("train_bn", [True, False])
def test_frozen_batchnorm_parameters_train_only_with_train_bn_and_running_stats_always_update(train_bn):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 1, 8, 8, generator=g), torch.randint(0, 3, (64,), generator=g)
    dls = DataLoaders.from_tensors(x, y, bs=16, loss_func=torch.nn.CrossEntropyLoss())
    learn = Learner(dls, digits_cnn(n_out=3), splitter=sequential_splitter(4), train_bn=train_bn, progress=False)
    learn.freeze()
    body = list(learn.model)[:3]
    bn_before = [[p.detach().clone() for p in bn_and_other_params(c)[0]] for c in body]
    other_before = [[p.detach().clone() for p in bn_and_other_params(c)[1]] for c in body]
    stats_before = [c[1].running_mean.clone() for c in body]
    learn.fit(1e-2, wd=0.1)
    for c, bn0, other0, stats0 in zip(body, bn_before, other_before, stats_before, strict=True):
        bn, other = bn_and_other_params(c)
        assert all(torch.equal(a, b) for a, b in zip(other0, other, strict=True))
        assert [torch.equal(a, b) for a, b in zip(bn0, bn, strict=True)] == [not train_bn] * len(bn)
        # fastai's behaviour, documented in freeze_groups: BatchNorm running statistics are buffers and keep
        # updating in train mode even in frozen groups
        assert not torch.equal(c[1].running_mean, stats0)
