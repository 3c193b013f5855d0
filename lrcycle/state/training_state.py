"""What a full-state checkpoint holds besides model and optimizer, as plain data (`weights_only=True` loads it):
where the fit stands, every callback's `state_dict()`, and the random number generators.

Only plain data goes in: tensors, lists, dicts, numbers, strings, None. numpy's and Python's RNG states
become lists (`rng.rng_state`) and are rebuilt from them by `rng.set_rng_state`.
"""

from __future__ import annotations

from pathlib import PurePath

from .rng import rng_state


def training_state(learn) -> dict:
    """`{"fit": position or None, "callbacks": [{"type", "state"}...], "rng": ..., "frozen": ...}` for `learn`
    now; `frozen` says which parameters train, layer group by layer group (`freeze_state`)."""
    state = {"fit": fit_position(learn), "callbacks": callback_states(learn.cbs), "rng": rng_state()}
    return {**state, "frozen": freeze_state(learn.layer_groups)}


def freeze_state(layer_groups) -> list[list[bool]]:
    """`requires_grad` of every parameter, one list per layer group: what `freeze_to` set (and `train_bn` kept)."""
    return [[bool(p.requires_grad) for p in group] for group in layer_groups]


def fit_position(learn) -> dict | None:
    """Where the fit stands, if at the end of an epoch: epochs done, of how many, its cycle ends, and the
    `cycle_save_name` / `best_save_name` it was called with. None when no epoch was completed or mid-epoch."""
    if not learn.n_epoch or not learn.total_iter:
        return None
    steps = learn.total_iter // learn.n_epoch
    done = learn.epoch + 1
    if learn.train_iter != done * steps:
        return None  # mid-epoch: a resume starts at an epoch boundary
    return {
        "epochs_done": done,
        "n_epoch": learn.n_epoch,
        "steps_per_epoch": steps,
        "cycle_ends": list(learn.cycle_ends),
        "with_valid": bool(learn.with_valid),
        **(learn.fit_call or {}),
    }


def plain_names(cycle_save_name, best_save_name) -> dict:
    """A fit call's file names as plain data (a `pathlib.Path` as `["path", str]`), for `learn.fit_call`."""
    names = {"cycle_save_name": cycle_save_name, "best_save_name": best_save_name}
    return {k: ["path", str(v)] if isinstance(v, PurePath) else v for k, v in names.items()}


def stateful(cbs) -> list:
    """The callbacks whose state a checkpoint keeps: those with `state_dict` and `load_state_dict`."""
    return [cb for cb in cbs if callable(getattr(cb, "state_dict", None)) and hasattr(cb, "load_state_dict")]


def callback_states(cbs) -> list[dict]:
    return [{"type": type(cb).__name__, "state": cb.state_dict()} for cb in stateful(cbs)]
