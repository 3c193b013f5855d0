"""Layer groups: splitting a model into groups and freezing the early ones (lrs are spread in `checks.spread`)."""

from __future__ import annotations

import torch
from torch import nn

_BN_TYPES = (nn.modules.batchnorm._BatchNorm,)


def single_group(model: nn.Module) -> list[list[nn.Parameter]]:
    """The default splitter: the whole model is one layer group."""
    return [list(model.parameters())]


def sequential_splitter(n_groups: int):
    """A splitter for an `nn.Sequential`: its children cut into `n_groups` consecutive, near-equal runs."""
    if n_groups < 1:
        raise ValueError(f"n_groups: must be >= 1, got {n_groups}")

    def split(model: nn.Sequential) -> list[list[nn.Parameter]]:
        children = list(model.children())
        if len(children) < n_groups:
            raise ValueError(f"sequential_splitter: {n_groups} groups asked of {len(children)} children")
        bounds = [round(i * len(children) / n_groups) for i in range(n_groups + 1)]
        runs = zip(bounds, bounds[1:], strict=False)
        return [[p for child in children[a:b] for p in child.parameters()] for a, b in runs]

    return split


def sequential_head_splitter(n_groups: int = 3):
    """A splitter for an `nn.Sequential` whose last child is the head: the head alone in the last group, the
    other children cut into `n_groups - 1` near-equal runs, so `freeze()` trains exactly the head."""
    if isinstance(n_groups, bool) or not isinstance(n_groups, int) or n_groups < 2:
        raise ValueError(f"n_groups: must be an integer >= 2 (a body group and the head), got {n_groups!r}")
    body_splitter = sequential_splitter(n_groups - 1)

    def split(model: nn.Sequential) -> list[list[nn.Parameter]]:
        children = list(model.children())
        if len(children) < n_groups:
            raise ValueError(f"sequential_head_splitter: {n_groups} groups asked of {len(children)} children")
        return body_splitter(nn.Sequential(*children[:-1])) + [list(children[-1].parameters())]

    return split


_RESNET_PARTS = ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc")


def resnet_splitter(model: nn.Module) -> list[list[nn.Parameter]]:
    """Three groups for a torchvision ResNet: stem (conv1, bn1) + layer1 + layer2 / layer3 + layer4 / fc.

    Early layers learn generic edges and textures that transfer as they are; later ones are more specific
    to the pretraining task, and the head is new, so each group wants its own learning rate.
    """
    missing = [name for name in _RESNET_PARTS if not hasattr(model, name)]
    if missing:
        raise TypeError(f"resnet_splitter: expected a torchvision ResNet; {type(model).__name__} lacks {missing}")
    parts = lambda *names: [p for name in names for p in getattr(model, name).parameters()]
    return [parts("conv1", "bn1", "layer1", "layer2"), parts("layer3", "layer4"), parts("fc")]


def check_has_parameters(model: nn.Module) -> list[nn.Parameter]:
    """`single_group(model)`'s one group, or a ValueError for a model without parameters."""
    (params,) = single_group(model)
    if not params:
        raise ValueError(f"model: {type(model).__name__} has no parameters to train; a Learner needs some")
    return params


def check_groups(groups, model: nn.Module) -> list[list[nn.Parameter]]:
    """Each parameter of the model in exactly one group, and no group empty."""
    groups = [list(g) for g in groups]
    if not groups or any(len(g) == 0 for g in groups):
        raise ValueError("splitter: returned an empty layer group; every group needs parameters")
    seen = [id(p) for g in groups for p in g]
    if len(seen) != len(set(seen)):
        raise ValueError("splitter: a parameter appears in more than one layer group")
    missing = {id(p) for p in model.parameters()} - set(seen)
    if missing:
        raise ValueError(f"splitter: {len(missing)} model parameters are in no layer group")
    return groups


def bn_param_ids(model: nn.Module) -> set[int]:
    return {id(p) for m in model.modules() if isinstance(m, _BN_TYPES) for p in m.parameters(recurse=False)}


def freeze_groups(groups, n: int, train_bn: bool, bn_ids: set[int]) -> None:
    """Groups before `n` stop requiring grad (BatchNorm parameters stay trainable when `train_bn`).

    Frozen parameters lose any leftover grad, so no optimizer steps, decays or updates their state. BatchNorm
    running statistics are buffers, not parameters: in train mode they keep updating in frozen groups too,
    as in fastai (put those layers in eval mode yourself to fix them).
    """
    n_groups = len(groups)
    if n_groups == 1 and n != 0:
        raise ValueError(
            "freeze_to: this model has a single layer group, so there is nothing to freeze apart from "
            "everything; pass a splitter to Learner(splitter=...) to split it into groups"
        )
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"freeze_to: n must be an integer layer-group index, got {n!r}")
    if not -n_groups <= n <= n_groups:
        raise ValueError(f"freeze_to: n must be in [{-n_groups}, {n_groups}] for {n_groups} layer groups, got {n}")
    n = n % n_groups if n < 0 else n
    for g, params in enumerate(groups):
        frozen = g < n
        for p in params:
            trainable = not frozen or (train_bn and id(p) in bn_ids)
            p.requires_grad_(trainable)
            if not trainable:
                p.grad = None  # optimizers skip params without a grad: no step, no weight decay, state kept


def learner_layer_groups(model, splitter, opt) -> list[list]:
    """The Learner's layer groups: the splitter's (default: one group), or with `opt=` the optimizer's."""
    if opt is None and splitter is None:  # one group holding each parameter once: nothing to check but that
        return [check_has_parameters(model)]
    if opt is None:
        return check_groups(splitter(model), model)
    return opt_layer_groups(opt, None if splitter is None else check_groups(splitter(model), model), model)


def opt_layer_groups(opt, splitter_groups, model) -> list[list]:
    """`Learner(..., opt=optimizer)`: its param groups are the layer groups. A splitter, when also given, must
    give the same groups (same count, the same parameters in each); a ValueError names the first difference.
    Model parameters outside the optimizer are allowed (the user's optimizer does not train them)."""
    if not isinstance(opt, torch.optim.Optimizer):
        raise TypeError(f"opt: expected a torch.optim.Optimizer instance, got {type(opt).__name__}")
    groups = [list(g["params"]) for g in opt.param_groups]
    model_ids = {id(p) for p in model.parameters()}
    outside = sum(id(p) not in model_ids for g in groups for p in g)
    if outside:
        raise ValueError(f"opt: {outside} of the optimizer's parameters are not parameters of the model")
    if splitter_groups is None:
        return groups
    split = [list(g) for g in splitter_groups]
    if len(split) != len(groups):
        raise ValueError(
            f"opt/splitter: the splitter gives {len(split)} layer groups but the optimizer has {len(groups)} param "
            "groups; give one of them, or build the optimizer with one param group per layer group"
        )
    for g, (a, b) in enumerate(zip(split, groups)):
        if [id(p) for p in a] != [id(p) for p in b]:
            raise ValueError(
                f"opt/splitter: layer group {g} differs: the splitter puts {len(a)} parameters in it, the "
                f"optimizer's param group {g} holds {len(b)} ({len({id(p) for p in a} ^ {id(p) for p in b})} "
                "parameters in only one of them, or the same ones in another order)"
            )
    return groups
