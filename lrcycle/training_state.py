"""What a full-state checkpoint holds besides model and optimizer, as plain data (`weights_only=True` loads it):
where the fit stands, every callback's `state_dict()`, and the random number generators.

Only plain data goes in: tensors, lists, dicts, numbers, strings, None. numpy's and Python's RNG states
become lists here and are rebuilt from them by `set_rng_state`.
"""

from __future__ import annotations

import random
from pathlib import PurePath

import numpy as np
import torch


def training_state(learn) -> dict:
    """`{"fit": position or None, "callbacks": [{"type", "state"}...], "rng": ...}` for `learn` now."""
    return {"fit": fit_position(learn), "callbacks": callback_states(learn.cbs), "rng": rng_state()}


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


def rng_state() -> dict:
    """torch (CPU, and CUDA once in use), numpy and Python RNG states as plain data."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [str(kind), torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "python": [version, list(internal), gauss_next],
    }
    # only when CUDA is already in use: asking for its state would otherwise start a CUDA context
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Put back what `rng_state` gave (CUDA's only where it was saved and CUDA is available)."""
    torch.set_rng_state(state["torch"].cpu())
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.cpu().numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
