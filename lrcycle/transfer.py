"""Transfer learning: a pretrained body, a new head for your classes, three layer groups, body frozen."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from .layers import resnet_splitter, sequential_head_splitter
from .learner import Learner
from .validate import check_positive_int


def transfer_learner(
    dls, arch, n_out: int | None, weights=None, splitter: Callable | None = None, **learner_kwargs
) -> Learner:
    """A Learner that fine-tunes `arch` for `n_out` classes, starting frozen (only the new head trains).

    `arch` is a torchvision constructor such as `torchvision.models.resnet18`, called as
    `arch(weights=weights)` (`weights=None`, the default, downloads nothing: random weights), or a built
    model (a ResNet-like module with `fc`, or an `nn.Sequential` whose last child ends in its head). The head
    (`fc`, or the last `nn.Linear` at the end of the Sequential) is replaced by a fresh `nn.Linear` with
    `n_out` outputs; `n_out=None` keeps it. `splitter=None` picks `resnet_splitter` or
    `sequential_head_splitter(3)`; any other `splitter(model) -> [params, ...]` works (head group last).
    The other keyword arguments go to `Learner`. Then `fit_one_cycle` trains the head, and after
    `learn.unfreeze()`, `fit_one_cycle(n, slice(lo, hi))` trains everything with discriminative rates.
    """
    model = _build(arch, weights)
    if n_out is not None:
        check_positive_int(n_out, "n_out")
        replace_head(model, n_out)
    if splitter is None:
        splitter = default_splitter(model)
    learn = Learner(dls, model, splitter=splitter, **learner_kwargs)
    learn.freeze()
    return learn


def _build(arch, weights) -> nn.Module:
    if isinstance(arch, nn.Module):
        if weights is not None:
            raise ValueError("weights: only for an architecture constructor; this model is already built")
        return arch
    if not callable(arch):
        raise TypeError(f"arch: expected a model constructor or an nn.Module, got {type(arch).__name__}")
    model = arch(weights=weights)
    if not isinstance(model, nn.Module):
        raise TypeError(f"arch: arch(weights=...) must return an nn.Module, got {type(model).__name__}")
    return model


def _is_resnet(model: nn.Module) -> bool:
    return all(hasattr(model, name) for name in ("conv1", "bn1", "layer1", "layer4")) and isinstance(
        getattr(model, "fc", None), nn.Linear
    )


def default_splitter(model: nn.Module) -> Callable:
    """`resnet_splitter` for a ResNet, `sequential_head_splitter(3)` for an `nn.Sequential`."""
    if _is_resnet(model):
        return resnet_splitter
    if isinstance(model, nn.Sequential):
        return sequential_head_splitter(3)
    raise TypeError(
        f"splitter: no known splitter for {type(model).__name__}; pass splitter=f with f(model) returning "
        "a list of parameter lists, earliest layers first and the head last"
    )


def replace_head(model: nn.Module, n_out: int) -> nn.Linear:
    """Swap the final `nn.Linear` (ResNet `fc`, or the end of a Sequential) for a fresh one, `n_out` wide."""
    if _is_resnet(model):
        parent, name = model, "fc"
    elif isinstance(model, nn.Sequential) and len(model) > 0:
        parent, name = model, str(len(model) - 1)
        while isinstance(getattr(parent, name), nn.Sequential) and len(getattr(parent, name)) > 0:
            parent = getattr(parent, name)
            name = str(len(parent) - 1)
    else:
        raise TypeError(f"arch: no known head on {type(model).__name__}; replace it yourself and pass n_out=None")
    old = getattr(parent, name)
    if not isinstance(old, nn.Linear):
        raise TypeError(f"arch: the model ends in {type(old).__name__}, not an nn.Linear head; pass n_out=None")
    head = nn.Linear(old.in_features, n_out, bias=old.bias is not None)
    head.to(device=old.weight.device, dtype=old.weight.dtype)
    setattr(parent, name, head)
    return head
