"""Layer groups: spreading an lr, the splitters, and which parameters `freeze_to` leaves trainable."""

import math

import numpy as np
import pytest
import torch
import torchvision
from conftest import make_dls, make_mlp
from torch import nn

from lrcycle import Learner, digits_cnn
from lrcycle.layers import check_groups, resnet_splitter, sequential_head_splitter, sequential_splitter
from lrcycle.validate import spread


def ids(params):
    return [id(p) for p in params]


# ---- spread -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_groups", [1, 3, 5])
def test_spread_float_gives_every_group_the_same_lr(n_groups):
    assert spread(3e-3, n_groups) == [3e-3] * n_groups


@pytest.mark.parametrize("n_groups", [1, 3, 5])
def test_spread_slice_hi_gives_the_last_group_hi_and_the_others_a_tenth(n_groups):
    assert spread(slice(1e-2), n_groups) == pytest.approx([1e-3] * (n_groups - 1) + [1e-2], rel=1e-12)


@pytest.mark.parametrize("n_groups", [2, 3, 5])
def test_spread_slice_lo_hi_is_geometric_from_first_to_last_group(n_groups):
    lo, hi = 1e-5, 1e-2
    expected = [math.exp(math.log(lo) + g * (math.log(hi) - math.log(lo)) / (n_groups - 1)) for g in range(n_groups)]
    got = spread(slice(lo, hi), n_groups)
    assert got == pytest.approx(expected, rel=1e-12)
    assert got[0] == pytest.approx(lo, rel=1e-12) and got[-1] == hi
    ratios = [b / a for a, b in zip(got, got[1:], strict=False)]
    assert ratios == pytest.approx([ratios[0]] * len(ratios), rel=1e-9)


def test_spread_slice_lo_hi_on_one_group_is_hi():
    assert spread(slice(1e-5, 1e-2), 1) == [1e-2]


@pytest.mark.parametrize("values", [[1e-4, 1e-3, 1e-2], (1, 2, 3)])
def test_spread_sequence_is_one_value_per_group(values):
    assert spread(values, 3) == [float(v) for v in values]


@pytest.mark.parametrize(
    "bad",
    [
        0,
        -1e-3,
        math.inf,
        math.nan,
        slice(0),
        slice(-1, 1),
        slice(1e-3, math.nan),
        [1e-3, 1e-2],
        [1e-3, 0, 1e-2],
    ],
)
def test_spread_rejects_bad_values_with_a_value_error_naming_the_argument(bad):
    with pytest.raises(ValueError, match="lr_max"):
        spread(bad, 3, "lr_max")


@pytest.mark.parametrize("bad", [True, "1e-3", None, {"lr": 1}, slice(1e-4, 1e-2, 2)])
def test_spread_rejects_other_types(bad):
    with pytest.raises((TypeError, ValueError), match="lr"):
        spread(bad, 3)


# ---- splitters -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_groups", [1, 2, 3, 4])
def test_sequential_splitter_cuts_the_children_into_consecutive_runs(n_groups):
    model = digits_cnn()
    groups = sequential_splitter(n_groups)(model)
    assert len(groups) == n_groups
    assert sum(map(ids, groups), []) == ids(model.parameters())  # every parameter once, in model order
    if n_groups == 4:
        assert [ids(g) for g in groups] == [ids(child.parameters()) for child in model]


def test_sequential_splitter_rejects_more_groups_than_children():
    with pytest.raises(ValueError, match="5 groups"):
        sequential_splitter(5)(digits_cnn())
    with pytest.raises(ValueError, match="n_groups"):
        sequential_splitter(0)


def test_sequential_head_splitter_puts_the_head_alone_in_the_last_group():
    model = nn.Sequential(*[nn.Linear(4, 4) for _ in range(5)])
    groups = sequential_head_splitter(3)(model)
    assert [len(g) for g in groups] == [4, 4, 2]
    assert ids(groups[-1]) == ids(model[-1].parameters())
    with pytest.raises(ValueError, match="n_groups"):
        sequential_head_splitter(1)


def test_resnet_splitter_groups_stem_and_early_blocks_then_late_blocks_then_head():
    model = torchvision.models.resnet18(weights=None)
    groups = resnet_splitter(model)
    of = lambda *names: [id(p) for name in names for p in getattr(model, name).parameters()]
    assert [ids(g) for g in groups] == [
        of("conv1", "bn1", "layer1", "layer2"),
        of("layer3", "layer4"),
        of("fc"),
    ]
    assert check_groups(groups, model) == groups


def test_resnet_splitter_rejects_a_model_that_is_not_a_resnet():
    with pytest.raises(TypeError, match="ResNet"):
        resnet_splitter(make_mlp())


def test_check_groups_rejects_empty_duplicate_and_missing_parameters():
    model = make_mlp()
    params = list(model.parameters())
    with pytest.raises(ValueError, match="empty"):
        check_groups([params, []], model)
    with pytest.raises(ValueError, match="more than one"):
        check_groups([params, params[:1]], model)
    with pytest.raises(ValueError, match="no layer group"):
        check_groups([params[1:]], model)


def test_learner_layer_groups_are_the_splitters_groups():
    model = make_mlp()
    learn = Learner(make_dls(), model, splitter=sequential_splitter(3), progress=False)
    assert [ids(g) for g in learn.layer_groups] == [ids(child.parameters()) for child in model]
    assert len(Learner(make_dls(), make_mlp(), progress=False).layer_groups) == 1


# ---- freeze_to --------------------------------------------------------------------------------------------
def trainable(learn):
    return [[p.requires_grad for p in g] for g in learn.layer_groups]


@pytest.mark.parametrize("n, n_frozen", [(0, 0), (1, 1), (2, 2), (3, 3), (-1, 2), (-2, 1), (-3, 0)])
def test_freeze_to_freezes_the_groups_before_n(n, n_frozen):
    learn = Learner(make_dls(), make_mlp(), splitter=sequential_splitter(3), progress=False)
    learn.freeze_to(n)
    assert trainable(learn) == [[g >= n_frozen] * len(group) for g, group in enumerate(learn.layer_groups)]


def test_freeze_trains_only_the_last_group_and_unfreeze_trains_all():
    learn = Learner(make_dls(), make_mlp(), splitter=sequential_splitter(3), progress=False)
    learn.freeze()
    assert trainable(learn) == [[False, False], [False, False], [True, True]]
    learn.unfreeze()
    assert trainable(learn) == [[True, True]] * 3


@pytest.mark.parametrize("n", [4, -4, 100])
def test_freeze_to_out_of_range_says_the_valid_range(n):
    learn = Learner(make_dls(), make_mlp(), splitter=sequential_splitter(3), progress=False)
    with pytest.raises(ValueError, match=r"\[-3, 3\]"):
        learn.freeze_to(n)
    assert trainable(learn) == [[True, True]] * 3


@pytest.mark.parametrize("n", [1.0, "1", None, True])
def test_freeze_to_rejects_a_non_integer(n):
    learn = Learner(make_dls(), make_mlp(), splitter=sequential_splitter(3), progress=False)
    with pytest.raises(TypeError, match="integer"):
        learn.freeze_to(n)


def test_freeze_on_a_single_group_says_to_pass_a_splitter():
    learn = Learner(make_dls(), make_mlp(), progress=False)
    with pytest.raises(ValueError, match="splitter"):
        learn.freeze()
    learn.unfreeze()  # nothing to freeze, nothing wrong
    assert trainable(learn) == [[True] * 6]


@pytest.mark.parametrize("train_bn", [True, False])
def test_batchnorm_parameters_of_frozen_groups_stay_trainable_only_with_train_bn(train_bn):
    learn = Learner(make_dls(), digits_cnn(), splitter=sequential_splitter(4), train_bn=train_bn, progress=False)
    learn.freeze()
    for child, group in zip(learn.model, learn.layer_groups, strict=True):
        for module in child.modules():
            for p in module.parameters(recurse=False):
                expected = group is learn.layer_groups[-1] or (train_bn and isinstance(module, nn.BatchNorm2d))
                assert p.requires_grad == expected


def test_freezing_drops_leftover_gradients_of_frozen_parameters():
    learn = Learner(make_dls(), make_mlp(), splitter=sequential_splitter(3), progress=False)
    for p in learn.model.parameters():
        p.grad = torch.ones_like(p)
    learn.freeze()
    assert [[p.grad is None for p in g] for g in learn.layer_groups] == [
        [True, True],
        [True, True],
        [False, False],
    ]


# ---- arrays and numpy scalars, as fastai 0.7 notebooks pass them ---------------------------------------
@pytest.mark.parametrize(
    "value",
    [np.array([1e-4, 1e-3, 1e-2]), np.array([1e-4, 1e-3, 1e-2], dtype=np.float32), torch.tensor([1e-4, 1e-3, 1e-2])],
)
def test_spread_takes_a_one_dimensional_array_as_one_value_per_group(value):
    assert spread(value, 3) == pytest.approx([1e-4, 1e-3, 1e-2], rel=1e-6)
    with pytest.raises(ValueError, match=r"lr.*\(2\)"):
        spread(value, 2)


def test_spread_takes_numpy_scalars():
    assert spread(np.float32(1e-2), 2) == pytest.approx([1e-2, 1e-2], rel=1e-6)
    assert spread(slice(np.float64(1e-4), np.float64(1e-2)), 3) == pytest.approx([1e-4, 1e-3, 1e-2], rel=1e-12)


@pytest.mark.parametrize("bad", [["1e-3", "1e-2", "1e-1"], [True, 1e-2, 1e-1], [None, 1e-2, 1e-1]])
def test_spread_rejects_sequences_of_non_numbers(bad):
    with pytest.raises(TypeError, match="lr"):
        spread(bad, 3)


def test_fit_with_a_numpy_array_of_lrs_sets_each_group():
    learn = Learner(make_dls(), make_mlp(), splitter=sequential_splitter(3), progress=False)
    learn.fit(np.array([1e-4, 1e-3, 1e-2]), 1)
    assert [g["lr"] for g in learn.opt.param_groups] == pytest.approx([1e-4, 1e-3, 1e-2], rel=1e-12)
