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
import inspect
import itertools
from collections.abc import Mapping

import torch
from torch import nn

LABEL_KEYS = ("labels", "label", "targets", "target", "y")
CPU = torch.device("cpu")


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


def inputs_and_targets(batch, device: torch.device, n_inp: int | None) -> tuple:
    """`split(to_device(batch, device), n_inp)`; the usual batch, two plain tensors already on `device` and one
    input, takes a short way (this runs every batch: the general one costs about 1 us more, and in a real loop
    reading each tensor's `.device` costs 0.3 us where `.is_cpu` costs next to nothing)."""
    if (type(batch) is list or type(batch) is tuple) and len(batch) == 2 and (n_inp is None or n_inp == 1):
        x, y = batch
        if type(x) is torch.Tensor and type(y) is torch.Tensor:
            if x.is_cpu and y.is_cpu if device == CPU else x.device == device and y.device == device:
                return (x,), (y,)
    return split(to_device(batch, device), n_inp)


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


def check_forward_args(model, xb, n_inp: int | None) -> None:
    """Whether `model.forward` takes the batch's inputs as `forward` passes them (`model(**batch)` for a dict,
    `model(*inputs)` for a tuple), checked on its signature before the first forward; the error says how to
    adapt the batch. A forward whose signature cannot be read (or takes `*args`) passes."""
    try:
        signature = inspect.signature(model.forward)
    except (TypeError, ValueError):
        return
    is_mapping = type(xb) is not tuple and isinstance(xb, Mapping)
    try:
        signature.bind(**xb) if is_mapping else signature.bind(*xb)
    except TypeError as err:
        forward_name = f"{type(model).__name__}.forward{signature}"
        if is_mapping:
            raise TypeError(
                f"batch: a dict batch is passed to the model as model(**batch), each key a keyword argument, but "
                f"{forward_name} cannot take the keys {list(xb)} ({err}). Give the model a forward that takes "
                "those keywords, or make the loader yield tuples (inputs..., target), e.g. with a collate_fn "
                "returning (batch['x'], batch['y']): the first n_inp items of a tuple batch go to the model by "
                "position, the rest are the targets"
            ) from None
        raise TypeError(
            f"batch: the first n_inp={len(xb) if n_inp is None else n_inp} item(s) of each batch are passed to "
            f"the model by position, model(*inputs) with inputs {describe(xb)}, but {forward_name} does not take "
            f"them ({err}). For nested inputs such as ((x, meta), y), yield the batch flat as (x, meta, y) (a "
            "collate_fn, or a Dataset returning a flat tuple): every item but the last is an input by default; "
            "Learner(n_inp=...) sets how many"
        ) from None


def first_forward(model, xb):
    """`forward(model, xb)` for a fit's first batch: a float64 input meeting float32 weights (numpy's default
    dtype) becomes an error that says how to convert the data, instead of torch's dtype mismatch."""
    try:
        return forward(model, xb)
    except RuntimeError as err:
        weights = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
        if weights is None or weights == torch.float64 or "double" not in str(err).lower():
            raise
        if not any(t.dtype == torch.float64 for t in _tensors_in(xb)):
            raise
        raise TypeError(
            f"batch: the inputs are float64 (torch.double: {describe(xb)}) but the model's weights are {weights}; "
            "convert the data to float32: X.astype('float32') for numpy arrays (DataLoaders.from_tensors does "
            "it for you), x.float() for tensors, or a Dataset / collate_fn that yields float32"
        ) from err


def first_loss(loss_func, pred, yb):
    """`compute_loss` for a fit's first batch: integer class targets other than int64 (int32 from numpy on
    some platforms, int16) meeting a loss that needs int64 become an error that says how to convert them."""
    try:
        return compute_loss(loss_func, pred, yb)
    except RuntimeError as err:
        narrow = [t.dtype for t in _tensors_in(yb) if t.dtype in (torch.int32, torch.int16, torch.int8)]
        if not narrow or "Long" not in str(err):
            raise
        raise TypeError(
            f"batch: the targets are {narrow[0]}, but the loss ({loss_func!r}) needs class indices as int64 "
            "(torch.long); convert them: y.astype('int64') for numpy arrays (DataLoaders.from_tensors does it "
            "for you), y.long() for tensors"
        ) from err


def _tensors_in(obj) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    values = obj.values() if isinstance(obj, Mapping) else obj if isinstance(obj, (tuple, list)) else ()
    return [t for value in values for t in _tensors_in(value)]


class MSELossFlat(nn.Module):
    """Mean squared error of the flattened prediction and target, `mean((pred.reshape(-1) - target.reshape(-1))**2)`:
    a `[B, 1]` prediction meets a `[B]` target row by row, where `nn.MSELoss` would broadcast to `[B, B]`."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.mse_loss(pred.reshape(-1), target.reshape(-1).to(pred.dtype))


def resolve_loss_func(loss_func, pred, yb):
    """A fit's loss function, decided at its first batch: `loss_func` when given (its prediction and target
    checked not to broadcast, `check_loss_shapes`), None when the output carries its own `loss` (or the batch
    is a mapping, whose loss must), else the default the prediction and target call for (`default_loss_func`)."""
    if loss_func is not None:
        check_loss_shapes(pred, yb)
        return loss_func
    if output_field(pred, "loss") is not None or type(yb) is not tuple:
        return None
    return default_loss_func(pred, yb)


def default_loss_func(pred, yb):
    """`CrossEntropyLoss` for integer class targets `[B, ...]` against scores `[B, C, ...]` (C >= 2),
    `MSELossFlat` for floating targets with as many values as the prediction; anything else names `loss_func=`."""
    target = yb[0] if len(yb) == 1 else None
    if isinstance(pred, torch.Tensor) and isinstance(target, torch.Tensor) and pred.is_floating_point():
        is_class = not target.is_floating_point() and not target.is_complex() and target.dtype != torch.bool
        if is_class and pred.ndim == target.ndim + 1 and pred.shape[:1] + pred.shape[2:] == target.shape:
            if pred.shape[1] >= 2:
                return nn.CrossEntropyLoss()
            raise ValueError(
                f"loss_func: none given, and a prediction {describe(pred)} with one value per row against integer "
                f"targets {describe(target)} is a binary model: pass loss_func=nn.BCEWithLogitsLoss() with float "
                "0/1 targets, or give the model two outputs for the default CrossEntropyLoss"
            )
        if target.is_floating_point() and target.numel() == pred.numel():
            return MSELossFlat()
    raise ValueError(
        f"loss_func: none given, and none can be chosen for a prediction {describe(pred)} against the targets "
        f"{describe(yb)}: integer class targets [B] with scores [B, C] get CrossEntropyLoss, floating targets with "
        "as many values as the prediction get MSELossFlat; pass loss_func=... for anything else"
    )


def check_loss_shapes(pred, yb) -> None:
    """A prediction and a single target whose shapes broadcast to something larger than both (`[B, 1]` against
    `[B]` gives `[B, B]`: every prediction against every target) are an error, not a silently wrong loss."""
    target = yb[0] if type(yb) is tuple and len(yb) == 1 else None
    if not isinstance(pred, torch.Tensor) or not isinstance(target, torch.Tensor) or pred.shape == target.shape:
        return
    shape = broadcast_shape(tuple(pred.shape), tuple(target.shape))
    if shape is None:
        return  # shapes that do not broadcast (class scores against class indices): the loss decides
    if shape != tuple(pred.shape) and shape != tuple(target.shape):
        raise ValueError(
            f"loss_func: the prediction's shape {list(pred.shape)} and the target's {list(target.shape)} broadcast "
            f"to {list(shape)}, every prediction against every target, which trains silently wrong; make them "
            "match: pred.squeeze(-1) in the model (or nn.Flatten(0) as its last layer), targets shaped like the "
            "prediction, or loss_func=lrcycle.MSELossFlat(), which flattens both"
        )


def broadcast_shape(a: tuple, b: tuple) -> tuple | None:
    """The shape torch broadcasts `a` and `b` to (sizes aligned from the right, a 1 stretching to the other
    size), or None if they do not broadcast; plain Python, as `torch.broadcast_shapes` raises an exception
    that costs about 0.3 ms."""
    n = max(len(a), len(b))
    a, b = (1,) * (n - len(a)) + a, (1,) * (n - len(b)) + b
    out = []
    for x, y in zip(a, b):
        if x != y and 1 not in (x, y):
            return None
        out.append(y if x == 1 else x)
    return tuple(out)


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
