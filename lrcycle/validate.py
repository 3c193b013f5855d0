"""The primitive argument checks (numbers, flags, names of kinds, loaders, metrics) and `spread`, the lr forms
over the layer groups, the names of checkpoint files, and the warnings that point at the user's own line.
Checks that belong to one part live beside it (fit forms in `schedules/forms.py`, callbacks in `callback.py`,
layer groups in `layers.py`, checkpoint contents in `state/checkpoint_checks.py`).

Each raises a ValueError or TypeError that names the argument and says what was expected, before anything
is trained or changed. An lr argument is checked and spread over the layer groups once, here, where it enters.
"""

from __future__ import annotations

import math
import numbers
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import PurePath

import numpy as np
import torch


def check_learner_args(dls, model, loss_func, splitter=None, opt_func=None):
    """`Learner(dls, model, loss_func, splitter=..., opt_func=...)`: the loss function to use (`dls.loss_func`
    when none is given). None when neither gives one: the loss is then the model output's own `loss` (Hugging
    Face models with labels in the batch); a batch whose output has none is a ValueError at its first forward."""
    if opt_func is not None:
        check_opt_func(opt_func)
    if splitter is not None and not callable(splitter):
        raise TypeError(
            f"splitter: expected a function model -> list of parameter groups (e.g. lrcycle.sequential_splitter), "
            f"got {type(splitter).__name__}"
        )
    if not hasattr(dls, "train"):
        raise TypeError("dls: expected a DataLoaders(train, valid), got " + type(dls).__name__)
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model: expected a torch nn.Module, got {type(model).__name__}")
    loss_func = loss_func if loss_func is not None else getattr(dls, "loss_func", None)
    if loss_func is not None and not callable(loss_func):
        raise TypeError(f"loss_func: expected a function (pred, *targets) -> loss, got {type(loss_func).__name__}")
    return loss_func


def check_n_inp(n_inp):
    """`Learner(n_inp=...)`: None (every item of a tuple batch but the last is an input) or a positive int."""
    return n_inp if n_inp is None else check_positive_int(n_inp, "n_inp")


def check_hypers(lr, wd, moms, n_groups: int) -> tuple[float, ...]:
    """The Learner's `lr` and `wd` forms checked against the layer groups; returns `moms` as a 3-tuple."""
    spread(lr, n_groups, "lr")
    if wd is not None:
        spread_wd(wd, n_groups)
    return check_moms(moms, 3)


def check_train_loader(train) -> int:
    """The number of batches in an epoch of `dls.train`, which must be sized and not empty."""
    try:
        n_batches = len(train)
    except TypeError:
        raise TypeError("dls.train: must be a sized iterable of (x, y) batches (len() is needed)") from None
    if n_batches == 0:
        raise ValueError("dls.train: the training data loader is empty (0 batches)")
    return n_batches


def check_moms(moms, n: int, name: str = "moms") -> tuple[float, ...]:
    """A momentum tuple of length `n`, every value in [0, 1)."""
    if isinstance(moms, np.ndarray) and moms.ndim == 1:
        moms = moms.tolist()
    if not isinstance(moms, (tuple, list)) or len(moms) != n:
        raise ValueError(f"{name}: expected a tuple of {n} momenta in [0, 1), got {moms!r}")
    for m in moms:
        if isinstance(m, (bool, np.bool_)) or not isinstance(m, numbers.Real) or not 0 <= m < 1:
            raise ValueError(f"{name}: every momentum must be in [0, 1), got {moms!r}")
    return tuple(float(m) for m in moms)


def check_positive_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name}: must be an integer >= {minimum}, got {value!r}")
    return int(value)  # numpy integers too, as a plain int


def check_flag(value, name: str) -> bool:
    """True or False only: a string such as "no" would silently count as True."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False, got {value!r}")
    return bool(value)


def check_number(value, name: str, low: float, high: float = math.inf, closed=(False, False)) -> float:
    """`value` as a float in the interval from `low` to `high`, its ends closed as `closed` says."""
    interval = f"{'[' if closed[0] else '('}{low}, {high}{']' if closed[1] else ')'}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name}: must be a finite number in {interval}, got {value!r}")
    above = value >= low if closed[0] else value > low
    below = value <= high if closed[1] else value < high
    if not (above and below):
        raise ValueError(f"{name}: must be in {interval}, got {value!r}")
    return float(value)


def check_fraction(value, name: str) -> float:
    """A share of the fit, in [0, 1]."""
    return check_number(value, name, 0.0, 1.0, closed=(True, True))


def check_start_epoch(start_epoch, n_epoch: int) -> int:
    if isinstance(start_epoch, bool) or not isinstance(start_epoch, numbers.Integral) or not 0 <= start_epoch < n_epoch:
        raise ValueError(f"start_epoch: must be an integer in [0, {n_epoch}), got {start_epoch!r}")
    return int(start_epoch)


def check_metrics(metrics) -> list:
    """Metric functions `metric(pred, targets) -> tensor` as a list; a single function counts as a one-item list.
    A name such as 'accuracy' is a TypeError: pass the function itself."""
    if metrics is None:
        return []
    if callable(metrics) and not isinstance(metrics, (list, tuple)):
        metrics = [metrics]
    if isinstance(metrics, str) or not isinstance(metrics, (list, tuple)):
        raise TypeError(f"metrics: expected a list of metric functions, e.g. metrics=[accuracy], got {metrics!r}")
    for metric in metrics:
        if isinstance(metric, str):
            raise TypeError(
                f"metrics: {metric!r} is a name, not a metric; pass the function itself, e.g. metrics=[accuracy] "
                "(from lrcycle import accuracy)"
            )
        if not callable(metric):
            raise TypeError(f"metrics: each metric must be a function (pred, targets) -> tensor, got {metric!r}")
    return list(metrics)


def wd_or_wds(wd, wds):
    """A fit's weight decay: `wds` is fastai 0.7's name for `wd`; both at once is ambiguous."""
    if wds is None:
        return wd
    if wd is not None:
        raise ValueError(f"wd/wds: give one (wds is fastai 0.7's name for wd), got wd={wd!r} and wds={wds!r}")
    return wds


def check_wd(wd, n_groups: int) -> list[float] | None:
    """A fit's `wd`: None leaves weight decay as it is, else one value per group (`spread_wd`)."""
    return None if wd is None else spread_wd(wd, n_groups)


def check_valid_loader(dl, name: str = "dl"):
    """A loader to evaluate on: an iterable of batches, not empty when its length is known (an empty one would
    give a NaN loss with no warning)."""
    if dl is None:
        raise ValueError(f"{name}: no validation data; pass dl=... or give DataLoaders a valid loader")
    if not hasattr(dl, "__iter__") or isinstance(dl, (str, bytes)):
        raise TypeError(f"{name}: expected a data loader (an iterable of batches), got {type(dl).__name__}")
    try:
        n = len(dl)
    except TypeError:  # an iterable without a length: nothing to check before it runs
        return dl
    if n == 0:
        raise ValueError(
            f"{name}: the validation data loader is empty (0 batches), which would give a NaN loss; pass one with "
            "batches, or build DataLoaders without a valid loader to train without validation"
        )
    return dl


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


def check_opt_func(opt_func) -> None:
    """`opt_func` is a factory (`torch.optim.AdamW`, a partial); an optimizer already built belongs in `opt=`."""
    if isinstance(opt_func, torch.optim.Optimizer):
        raise TypeError(
            f"opt_func: got an optimizer instance ({type(opt_func).__name__}); opt_func builds one from param "
            "groups (e.g. torch.optim.AdamW or partial(torch.optim.SGD, momentum=0.9)). To train with an "
            "optimizer you already have, pass it as Learner(..., opt=optimizer)"
        )
    if not callable(opt_func):
        raise TypeError(f"opt_func: expected an optimizer factory (callable), got {type(opt_func).__name__}")


def check_name(name, arg: str = "name"):
    """A checkpoint name: a plain file name (no separators, not `.` or `..`, not empty), kept under
    `path/model_dir`; a `pathlib.Path` is the user's explicit choice of file and passes as it is."""
    if isinstance(name, PurePath):
        return name
    if not isinstance(name, str):
        # a ValueError like every other bad name (the issue asks one kind of error for any unusable name)
        raise ValueError(f"{arg}: expected a plain file name (str) or a pathlib.Path, got {type(name).__name__}")
    if not name or name in (".", "..") or any(c in name for c in "/\\\0") or name.strip() != name:
        raise ValueError(
            f"{arg}: expected a plain file name without separators, not '.' or '..', not empty and without "
            f"surrounding spaces, got {name!r}; pass a pathlib.Path to choose a file elsewhere yourself"
        )
    return name


def derived_name(name, extra: str):
    """`name` with `extra` appended (`snap` -> `snap_cyc_0`); for a Path, to its file name before the suffix."""
    name = check_name(name)
    if isinstance(name, PurePath):
        return name.with_name(f"{name.stem}{extra}{name.suffix}")
    return f"{name}{extra}"


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn_user(message: str, category: type[Warning] = UserWarning) -> None:
    """`warnings.warn` pointed at the first caller outside lrcycle (the user's line), however deep inside
    lrcycle the warning is raised: a fixed `stacklevel` is right for one call path only."""
    frame, level = sys._getframe(1), 2  # level 2: warn_user's caller
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


def renamed(value, old_value, name: str, old_name: str):
    """An argument given by its name, or by the old spelling it had (accepted with a DeprecationWarning at the
    user's line); both at once is a ValueError."""
    if old_value is None:
        return value
    if value is not None:
        raise ValueError(f"{name}/{old_name}: give one ({old_name} is the old spelling of {name}), got both")
    warn_user(f"{old_name}= is now spelt {name}=, as in fit(lr, n_cycle); {old_name}= will go", DeprecationWarning)
    return old_value


def loss_without_graph(loss_func, loss: torch.Tensor, model: torch.nn.Module) -> ValueError:
    """The error for a training loss that backward cannot follow to the weights (it does not require grad):
    what the loss is, and whether the model has any parameter left to train."""
    params = list(model.parameters())
    training = sum(p.requires_grad for p in params)
    if training == 0:
        frozen = (
            f"every one of the model's {len(params)} parameter tensors is frozen (requires_grad=False): call "
            "learn.unfreeze(), or freeze_to(n) with n below the number of layer groups"
        )
    else:
        frozen = f"{training} of the model's {len(params)} parameter tensors train (requires_grad=True)"
    return ValueError(
        f"loss_func: {loss_func!r} gave a loss without a gradient graph (a {loss.dtype} tensor with "
        "requires_grad=False), so backward cannot reach the weights; it must return a floating tensor computed "
        f"from the model's output, without .item(), .detach() or an integer cast. Freeze state: {frozen}"
    )
