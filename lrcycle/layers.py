"""Layer groups: splitting a model into groups, freezing the early ones, spreading an lr over them."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

_BN_TYPES = (nn.modules.batchnorm._BatchNorm,)


def spread(value, n_groups: int, name: str = "lr") -> list[float]:
    """One value per layer group from a float, `slice(hi)`, `slice(lo, hi)` or a per-group sequence.

    `slice(hi)`: the last group gets `hi`, the others `hi/10`. `slice(lo, hi)`: geometric from `lo` on the
    first group to `hi` on the last, `lo * (hi/lo) ** (g/(n-1))`. Every value must be finite and > 0.

    >>> spread(slice(1e-4, 1e-2), 3)
    [0.0001, 0.001, 0.01]
    """
    if isinstance(value, bool):
        raise TypeError(f"{name}: expected a float, slice or sequence of floats, got {value!r}")
    if isinstance(value, (np.ndarray, torch.Tensor)) and value.ndim == 1:
        value = value.tolist()  # fastai 0.7 notebooks pass `np.array([lr / 100, lr / 10, lr])`
    if isinstance(value, numbers.Real):  # also numpy scalars
        values = [float(value)] * n_groups
    elif isinstance(value, slice):
        if value.step is not None:
            raise ValueError(f"{name}: a slice takes (hi) or (lo, hi), not a step; got {value}")
        if value.start is None:
            _check_positive(value.stop, name)
            values = [value.stop / 10] * (n_groups - 1) + [float(value.stop)]
        else:
            lo, hi = _check_positive(value.start, name), _check_positive(value.stop, name)
            if n_groups == 1:
                values = [float(hi)]
            else:
                values = [lo * (hi / lo) ** (g / (n_groups - 1)) for g in range(n_groups)]
                values[-1] = float(hi)
    elif isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != n_groups:
            raise ValueError(
                f"{name}: a sequence needs one value per layer group ({n_groups}), got {len(value)} values"
            )
        values = [_check_positive(v, name) for v in value]  # strings and bools are not lrs
    else:
        raise TypeError(f"{name}: expected a float, slice or sequence of floats, got {type(value).__name__}")
    for v in values:
        _check_positive(v, name)
    return values


def spread_wd(wd, n_groups: int) -> list[float]:
    """Weight decay per group: like `spread`, but 0 is allowed."""
    if isinstance(wd, (np.ndarray, torch.Tensor)) and wd.ndim == 1:
        wd = wd.tolist()
    values = [wd] * n_groups if isinstance(wd, numbers.Real) and not isinstance(wd, (bool, np.bool_)) else None
    if values is None:
        if isinstance(wd, slice) or not hasattr(wd, "__len__"):
            return spread(wd, n_groups, "wd")
        if len(wd) != n_groups:
            raise ValueError(f"wd: a sequence needs one value per layer group ({n_groups}), got {len(wd)}")
        values = list(wd)
    for v in values:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v < 0:
            raise ValueError(f"wd: every value must be finite and >= 0, got {wd!r}")
    return [float(v) for v in values]


def _check_positive(v, name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name}: values must be numbers, got {v!r}")
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name}: every value must be finite and > 0, got {v!r}")
    return float(v)


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
