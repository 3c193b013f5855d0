"""Checks of a checkpoint file's content against a learner, all made before anything is loaded.

Each raises a ValueError that names the file and what differs, so a failed load leaves the learner as it was.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ..optim import momentum_key

_SHOWN = 6  # differences listed in a message before "and N more"


def _listing(items) -> str:
    items = list(items)
    more = f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
    return ", ".join(str(i) for i in items[:_SHOWN]) + more


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
    params = [p for g in opt.param_groups for p in g["params"]]
    ids = [i for g in groups for i in g["params"]]
    for i, p in zip(ids, params, strict=True):
        for key, value in state["state"].get(i, {}).items():
            if torch.is_tensor(value) and value.dim() > 0 and value.shape != p.shape:
                raise ValueError(
                    f"{file}: optimizer state {key!r} of parameter {i} has shape {tuple(value.shape)}, the "
                    f"parameter {tuple(p.shape)}; nothing was loaded"
                )
