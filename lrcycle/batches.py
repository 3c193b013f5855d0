"""Batches of any shape: what is input and what is target, how the model is called, where the loss comes from.

- A tuple or list batch: its first `n_inp` items are the inputs (default: all but the last), the rest the
  targets. `pred = model(*inputs)`, `loss = loss_func(pred, *targets)`.
- A mapping batch (a dict of tensors, as Hugging Face tokenizers and collators give): `pred = model(**batch)`,
  `loss = loss_func(pred, batch)` when a `loss_func` is given, else the output's `loss` (attribute or key).
- Metrics and predictions read the output's logits (its `logits` attribute or key, or the tensor itself)
  against the targets (the single target, or the mapping's `labels`).

`learn.xb` is the inputs (a tuple, or the mapping itself), `learn.yb` the targets (a tuple, or the mapping).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping

import torch

LABEL_KEYS = ("labels", "label", "targets", "target", "y")


def describe(batch) -> str:
    """A short picture of a batch's structure for error messages: `tuple(Tensor[32, 10], Tensor[32])`."""
    if isinstance(batch, torch.Tensor):
        return f"Tensor[{', '.join(str(d) for d in batch.shape)}]"
    if isinstance(batch, Mapping):
        return "{" + ", ".join(f"{k!r}: {describe(v)}" for k, v in batch.items()) + "}"
    if isinstance(batch, (tuple, list)):
        return f"{type(batch).__name__}(" + ", ".join(describe(v) for v in batch) + ")"
    return type(batch).__name__


def to_device(obj, device: torch.device):
    """`obj` with every tensor inside (tuples, lists, dicts, dataclasses, nested) moved to `device`.

    Containers keep their type (named tuples included); anything else is returned as it is. A tensor already
    on `device` is not copied.
    """
    if isinstance(obj, torch.Tensor):
        return obj if obj.device == device else obj.to(device)
    if type(obj) in (tuple, list) and _tensors_on(obj, device):
        return obj  # the hot path of a training loop (a DataLoader's list or tuple): tensors already in place
    if type(obj) is tuple:  # a plain tuple, rebuilt only when something moved
        moved = tuple([to_device(v, device) for v in obj])
        return obj if all(a is b for a, b in zip(moved, obj)) else moved
    if isinstance(obj, Mapping):
        moved = {k: to_device(v, device) for k, v in obj.items()}
        return moved if type(obj) is dict else _rebuild_mapping(obj, moved)
    if isinstance(obj, tuple):
        moved = [to_device(v, device) for v in obj]
        return type(obj)(*moved) if hasattr(obj, "_fields") else type(obj)(moved)
    if isinstance(obj, list):
        return [to_device(v, device) for v in obj]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.replace(obj, **{f.name: to_device(getattr(obj, f.name), device) for f in _init_fields(obj)})
    return obj


def _tensors_on(items, device: torch.device) -> bool:
    """Whether every item is a plain tensor already on `device` (a loop, not `all()`: this runs every batch)."""
    for v in items:
        if type(v) is not torch.Tensor or v.device != device:
            return False
    return True


def module_to(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """`model.to(device)`, skipped when every parameter and buffer is already there: `.to` walks every
    submodule in Python, about 0.2 ms for a small model when a Learner is first built."""
    tensors = itertools.chain(model.parameters(), model.buffers())
    return model if all(t.device == device for t in tensors) else model.to(device)


def _rebuild_mapping(obj: Mapping, moved: dict):
    """The same kind of mapping holding the moved values, or a plain dict when its type cannot be rebuilt."""
    try:
        return type(obj)(moved)
    except TypeError:
        return moved


def _init_fields(obj) -> list:
    return [f for f in dataclasses.fields(obj) if f.init]


def split(batch, n_inp: int | None) -> tuple:
    """`(inputs, targets)` of a batch: a tuple/list's first `n_inp` items and the rest; a mapping twice."""
    if not isinstance(batch, (tuple, list)):
        if isinstance(batch, Mapping):
            return batch, batch
        raise TypeError(
            f"batch: expected a tuple/list (inputs..., targets...) or a mapping of tensors, got {describe(batch)}"
        )
    n = len(batch) - 1 if n_inp is None else n_inp
    if not 0 < n <= len(batch):
        raise ValueError(
            f"batch: n_inp={n_inp!r} inputs cannot be taken from a batch of {len(batch)} items: {describe(batch)}"
        )
    return tuple(batch[:n]), tuple(batch[n:])


def forward(model, xb):
    """`model(**xb)` for a mapping, else `model(*xb)`."""
    return model(*xb) if type(xb) is tuple or not isinstance(xb, Mapping) else model(**xb)


def compute_loss(loss_func, pred, yb):
    """`loss_func(pred, *targets)`, `loss_func(pred, batch)` for a mapping, or the output's own `loss`; checked
    to be a 0-dim tensor, so a loss that is not says so here, before any callback reads it or backward runs."""
    if loss_func is not None:
        loss = loss_func(pred, *yb) if type(yb) is tuple or not isinstance(yb, Mapping) else loss_func(pred, yb)
    else:
        loss = output_field(pred, "loss")
        if loss is None:
            raise ValueError(
                f"loss_func: none given, and the model's output ({type(pred).__name__}) has no `loss` for the "
                f"batch {describe(yb)}; pass loss_func=..., or feed the model a mapping with its labels so it "
                "computes one"
            )
    if isinstance(loss, torch.Tensor) and loss.ndim == 0:
        return loss
    raise_bad_loss(loss, loss_func)


def raise_bad_loss(loss, loss_func) -> None:
    """The error for a loss that is not a scalar tensor: what came back, and how to fix it."""
    source = (
        "loss_func: none given; the output's loss is" if loss_func is None else f"loss_func: {loss_func!r} returned"
    )
    if not isinstance(loss, torch.Tensor):
        raise TypeError(
            f"{source} a {type(loss).__name__} ({loss!r}), not a tensor; it must be a scalar torch.Tensor so "
            "that backward() can run (do not call .item() inside the loss)"
        )
    raise ValueError(
        f"{source} a tensor of shape {tuple(loss.shape)}, not a scalar; reduce it to one number "
        "(reduction='mean', or .mean() at the end of your loss)"
    )


def output_field(output, name: str):
    """`output.<name>` or `output[name]` (a Hugging Face ModelOutput has both), else None."""
    value = output.get(name) if isinstance(output, Mapping) else None
    return value if value is not None else getattr(output, name, None)


def logits(output):
    """The tensor metrics and predictions read: the output's `logits`, or the output when it is a tensor."""
    if isinstance(output, torch.Tensor):
        return output
    value = output_field(output, "logits")
    if value is None:
        raise TypeError(f"model output: expected a tensor or an output with `logits`, got {type(output).__name__}")
    return value


def target(yb):
    """The target metrics compare against: the single target, or a mapping's labels."""
    if isinstance(yb, Mapping):
        for key in LABEL_KEYS:
            if key in yb:
                return yb[key]
        raise ValueError(f"batch: a mapping batch needs one of the keys {LABEL_KEYS} for metrics, got {describe(yb)}")
    return yb[0] if len(yb) == 1 else yb


def n_samples(batch) -> int:
    """Samples in a batch: the leading size of its first tensor (depth first)."""
    first = _first_tensor(batch)
    if first is None or first.dim() == 0:
        raise ValueError(f"batch: cannot count samples, no tensor with a batch dimension in {describe(batch)}")
    return first.shape[0]


def _first_tensor(obj):
    if isinstance(obj, torch.Tensor):
        return obj
    values = obj.values() if isinstance(obj, Mapping) else obj if isinstance(obj, (tuple, list)) else ()
    for value in values:
        found = _first_tensor(value)
        if found is not None:
            return found
    return None
