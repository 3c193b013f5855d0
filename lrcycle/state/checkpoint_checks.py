"""Checks of a checkpoint file's content against a learner, all made before anything is loaded.

Each raises a ValueError that names the file and what differs, so a failed load leaves the learner as it was.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping

import torch

from ..optim import momentum_key

_SHOWN = 6  # differences listed in a message before "and N more"


def _listing(items) -> str:
    items = list(items)
    more = f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
    return ", ".join(str(i) for i in items[:_SHOWN]) + more


def payload_checksum(content: Mapping) -> str:
    """A CRC-32 of everything in a checkpoint but its `checksum` entry, in a defined order: each dict's items in
    their order, each list's items, each tensor's dtype, shape and raw bytes, each other value's type and repr.

    It finds damage, not forgery: any flipped bit or burst of up to 32, and other damage with odd 2**-32; a
    file saved on purpose with other content is refused by the other checks. CRC-32 reads about 3x faster
    than SHA-256 (the cost of a 100 MB checkpoint is in the documentation)."""
    crc = 0
    for chunk in _chunks({k: v for k, v in content.items() if k != "checksum"}):
        crc = zlib.crc32(chunk, crc)
    return f"crc32:{crc:08x}"


def _chunks(obj):
    """The bytes `payload_checksum` reads, piece by piece."""
    if torch.is_tensor(obj):
        t = obj.detach()
        yield f"tensor {t.dtype} {tuple(t.shape)};".encode()
        if t.numel():
            yield memoryview(t.cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    elif isinstance(obj, Mapping):
        yield f"dict {len(obj)};".encode()
        for key, value in obj.items():
            yield from _chunks(key)
            yield from _chunks(value)
    elif isinstance(obj, (list, tuple)):
        yield f"{type(obj).__name__} {len(obj)};".encode()
        for value in obj:
            yield from _chunks(value)
    else:
        yield f"{type(obj).__name__} {obj!r};".encode()


def check_checksum(content, file) -> None:
    """An lrcycle checkpoint of version 2 or later must carry its checksum, and the content must match it. A
    version 1 file (written before checksums) and a file of other code (a bare state_dict) have none to check."""
    if not (isinstance(content, Mapping) and content.get("format") == "lrcycle"):
        return
    version = content.get("version")
    if isinstance(version, int) and not isinstance(version, bool) and version < 2:
        return
    saved = content.get("checksum")
    if not isinstance(saved, str):
        raise ValueError(
            f"{file}: the checkpoint has no checksum (its 'checksum' entry is missing); nothing was loaded"
        )
    if saved != payload_checksum(content):
        raise ValueError(
            f"{file}: the checkpoint is damaged: its contents do not match the checksum saved with them (a flipped "
            "bit, or a file changed or cut after saving); nothing was loaded"
        )


def is_state_dict(obj) -> bool:
    """A mapping of names to tensors, as `module.state_dict()` returns."""
    return isinstance(obj, Mapping) and all(isinstance(k, str) and torch.is_tensor(v) for k, v in obj.items())


def is_lrcycle_checkpoint(obj) -> bool:
    return isinstance(obj, Mapping) and "model" in obj and is_state_dict(obj["model"])


def model_state_of(content, file, model_only: bool = False) -> Mapping:
    """The model's state dict in a file's content; a file that is not an lrcycle checkpoint is an error that
    says what it is (a bare state_dict is taken only with `model_only=True`)."""
    if is_lrcycle_checkpoint(content):
        return content["model"]
    if is_state_dict(content) and content:
        if model_only:
            return content
        raise ValueError(
            f"{file} is a bare state_dict (parameter names -> tensors), not an lrcycle checkpoint: use "
            "`learn.model.load_state_dict(torch.load(file))`, or `learn.load(name, model_only=True)`"
        )
    if isinstance(content, Mapping) and is_state_dict(content.get("state_dict")):
        raise ValueError(
            f"{file} is a training checkpoint of another library (weights under 'state_dict'), not an lrcycle "
            "checkpoint: use `learn.model.load_state_dict(torch.load(file)['state_dict'])`"
        )
    if isinstance(content, Mapping):
        what = f"a dict with keys {_listing(map(repr, content))}" if content else "an empty dict"
    else:
        what = "a single tensor" if torch.is_tensor(content) else f"a {type(content).__name__}"
    raise ValueError(f"{file} is not an lrcycle checkpoint (a dict with a 'model' state_dict): it holds {what}")


def check_model_state(model: torch.nn.Module, state: Mapping, strict: bool, file) -> None:
    """Keys and shapes of `state` against `model`: every shape must match; with `strict`, the keys too."""
    own = model.state_dict()
    shapes = [
        f"{k} (file {tuple(v.shape)}, model {tuple(own[k].shape)})"
        for k, v in state.items()
        if k in own and v.shape != own[k].shape
    ]
    if shapes:
        raise ValueError(f"{file}: tensor shapes differ from the model's: {_listing(shapes)}; nothing was loaded")
    dtypes = [
        f"{k} (file {v.dtype}, model {own[k].dtype})" for k, v in state.items() if k in own and v.dtype != own[k].dtype
    ]
    if dtypes:
        raise ValueError(
            f"{file}: tensor dtypes differ from the model's: {_listing(dtypes)}; nothing was loaded. Convert the "
            "model first (e.g. model.half()) if the file holds another precision on purpose"
        )
    if strict:
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if missing or unexpected:
            parts = [f"missing from the file: {_listing(missing)}"] if missing else []
            parts += [f"not in the model: {_listing(unexpected)}"] if unexpected else []
            raise ValueError(
                f"{file}: keys differ from the model's ({'; '.join(parts)}); nothing was loaded. "
                "Pass strict=False to load the tensors that match"
            )


def check_opt_state(opt: torch.optim.Optimizer, state: Mapping, opt_type: str | None, file) -> None:
    """The optimizer's type, its param-group layout and the shape of every per-parameter state tensor."""
    own_type = type(opt).__name__
    if opt_type is not None and opt_type != own_type:
        raise ValueError(
            f"{file}: the optimizer state is {opt_type}'s, this learner's optimizer is {own_type}; nothing was "
            "loaded. Build the learner with the same opt_func, or pass with_opt=False to load the model only"
        )
    groups = state.get("param_groups") if isinstance(state, Mapping) else None
    if not isinstance(groups, list) or not isinstance(state.get("state"), Mapping):
        raise ValueError(f"{file}: 'opt' is not an optimizer state_dict (needs 'state' and 'param_groups')")
    saved_layout = [len(g["params"]) for g in groups]
    own_layout = [len(g["params"]) for g in opt.param_groups]
    if saved_layout != own_layout:
        raise ValueError(
            f"{file}: the optimizer's param groups differ: the file has {len(groups)} group(s) of {saved_layout} "
            f"parameters, this learner's optimizer {len(own_layout)} of {own_layout} (a different splitter?); "
            "nothing was loaded"
        )
    for saved, own in zip(groups, opt.param_groups, strict=True):
        if momentum_key(saved) != momentum_key(own):
            raise ValueError(
                f"{file}: the optimizer state has momentum as {momentum_key(saved)!r}, this optimizer "
                f"({own_type}) as {momentum_key(own)!r}: a different optimizer type; nothing was loaded"
            )
    for g, (saved, own) in enumerate(zip(groups, opt.param_groups, strict=True)):
        _check_hypers(saved, own, g, file)
    params = [p for g in opt.param_groups for p in g["params"]]
    ids = [i for g in groups for i in g["params"]]
    for i, p in zip(ids, params, strict=True):
        entries = state["state"].get(i, {})
        if not isinstance(entries, Mapping):
            raise ValueError(f"{file}: optimizer state of parameter {i} is a {type(entries).__name__}, not a dict")
        for key, value in entries.items():
            _check_param_state(key, value, i, p, file)


def _is_number(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) or (
        torch.is_tensor(value) and value.dim() == 0 and not value.dtype == torch.bool
    )


def _check_hypers(saved: Mapping, own: Mapping, g: int, file) -> None:
    """Each hyperparameter of a saved param group has the kind of value the optimizer's own has: a finite
    number for a number (lr, weight_decay, momentum...), a bool for a bool, a same-length tuple of numbers for
    a tuple (Adam's betas)."""
    for key, mine in own.items():
        if key == "params":
            continue
        if key not in saved:
            raise ValueError(f"{file}: param group {g} of the optimizer state lacks its {key!r}; nothing was loaded")
        value, want = saved[key], None
        if _is_number(mine) and not (_is_number(value) and math.isfinite(float(value))):
            want = "a finite number"
        elif isinstance(mine, bool) and not isinstance(value, bool):
            want = "True or False"
        elif isinstance(mine, tuple) and all(_is_number(m) for m in mine):
            if not (isinstance(value, (tuple, list)) and len(value) == len(mine) and all(map(_is_number, value))):
                want = f"a tuple of {len(mine)} numbers"
        if want is not None:
            raise ValueError(
                f"{file}: param group {g} of the optimizer state has {key}={value!r}, where {want} belongs; "
                "nothing was loaded"
            )


def _check_param_state(key, value, i: int, p: torch.Tensor, file) -> None:
    """A per-parameter optimizer state entry: a tensor shaped like the parameter (or a scalar) of its kind of
    dtype, or a number."""
    where = f"{file}: optimizer state {key!r} of parameter {i}"
    if torch.is_tensor(value):
        if value.dim() > 0 and value.shape != p.shape:
            raise ValueError(
                f"{where} has shape {tuple(value.shape)}, the parameter {tuple(p.shape)}; nothing was loaded"
            )
        if value.dim() > 0 and value.is_floating_point() != p.is_floating_point():
            raise ValueError(f"{where} has dtype {value.dtype}, the parameter {p.dtype}; nothing was loaded")
    elif not (_is_number(value) or value is None):
        raise ValueError(f"{where} is {value!r}, not a tensor or a number; nothing was loaded")
