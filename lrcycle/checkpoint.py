"""Saving and loading a learner's model and optimizer state under `path/model_dir/<name>.pth`."""

from __future__ import annotations

from pathlib import Path

import torch

from .callbacks.schedule_free import eval_weights
from .distributed import is_main_process, unwrap


def model_path(learn, name: str) -> Path:
    return learn.path / learn.model_dir / f"{name}.pth"


def save(learn, name: str, with_opt: bool = True) -> Path:
    """Write model (and optimizer) state; only rank 0 writes."""
    file = model_path(learn, name)
    if is_main_process():
        file.parent.mkdir(parents=True, exist_ok=True)
        with eval_weights(learn):  # a schedule-free optimizer saves its evaluation weights, in eval mode
            state = {"model": unwrap(learn.model).state_dict()}
            if with_opt and learn.opt is not None:
                state["opt"] = learn.opt.state_dict()
            torch.save(state, file)
    return file


def load(learn, name: str, with_opt: bool = True, strict: bool = True) -> None:
    """Read what `save` wrote (`weights_only=True`: no code in the file is run)."""
    state = torch.load(model_path(learn, name), map_location=learn.device, weights_only=True)
    unwrap(learn.model).load_state_dict(state["model"], strict=strict)
    if with_opt and "opt" in state:
        if learn.opt is None:
            learn.create_opt()
        learn.opt.load_state_dict(state["opt"])
