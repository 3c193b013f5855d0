"""Saving and loading a learner's model and optimizer state under `path/model_dir/<name>.pth`.

A checkpoint is a dict of plain data (tensors, lists, dicts, numbers, strings), read back with
`torch.load(weights_only=True)`: `{"format": "lrcycle", "version", "model", "opt", "opt_type"}`, and with
`with_state=True` a `"state"` entry holding what a resume needs (`resume.py`). `load` reads and checks the
whole file against the learner (`checkpoint_checks.py`) before it changes anything.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePath

import torch

from ..distributed import is_main_process, unwrap
from ..optim import build_optimizer, eval_weights
from ..validate import check_flag, check_name
from .checkpoint_checks import check_model_state, check_opt_state, model_state_of
from .training_state import training_state

FORMAT, VERSION = "lrcycle", 1


def model_path(learn, name) -> Path:
    """`path/model_dir/<name>.pth` for a plain name; a `pathlib.Path` is the file itself, as given."""
    name = check_name(name)
    if isinstance(name, PurePath):
        return Path(name)
    return learn.path / learn.model_dir / f"{name}.pth"


def save(learn, name, with_opt: bool = True, with_state: bool = False) -> Path:
    """Write model and optimizer (with `with_state`, everything a resume needs, the optimizer always); only
    rank 0 writes. Written beside its place and renamed into it: an interrupted save never leaves half a file."""
    file = model_path(learn, name)
    check_flag(with_opt, "with_opt")
    state = training_state(learn) if check_flag(with_state, "with_state") else None
    if is_main_process():
        with eval_weights(learn):  # a schedule-free optimizer saves its evaluation weights, in eval mode
            content = {"format": FORMAT, "version": VERSION, "model": unwrap(learn.model).state_dict()}
            if (with_opt or with_state) and learn.opt is not None:
                content["opt"], content["opt_type"] = learn.opt.state_dict(), type(learn.opt).__name__
            if state is not None:
                content["state"] = state
            write_atomically(content, file)
    return file


def write_atomically(content: dict, file: Path) -> None:
    """`torch.save` to a temporary file in the same folder, then `os.replace` (atomic on one file system)."""
    file.parent.mkdir(parents=True, exist_ok=True)
    partial = file.with_name(f".{file.name}.partial")
    try:
        torch.save(content, partial)
        os.replace(partial, file)
    finally:
        partial.unlink(missing_ok=True)


def read(learn, name) -> dict:
    """The file's content (`weights_only=True`: no code in it runs), on the learner's device."""
    return torch.load(model_path(learn, name), map_location=learn.device, weights_only=True)


def load(learn, name, with_opt: bool = True, strict: bool = True, model_only: bool = False) -> None:
    """Read what `save` wrote and check all of it against the learner, then load it: the model (keys and
    shapes; `strict=False` loads a partial match), and unless `model_only` the optimizer (its type and
    param-group layout). `model_only=True` also takes a bare `state_dict` file. On any error nothing changed."""
    file = model_path(learn, name)
    for flag, arg in ((with_opt, "with_opt"), (strict, "strict"), (model_only, "model_only")):
        check_flag(flag, arg)
    content = torch.load(file, map_location=learn.device, weights_only=True)
    model_state = model_state_of(content, file, model_only)
    model = unwrap(learn.model)
    check_model_state(model, model_state, strict, file)
    opt = None
    if with_opt and not model_only and "opt" in content:
        opt = learn.opt or build_optimizer(learn.opt_func, learn.layer_groups, learn.lr, learn.wd)
        check_opt_state(opt, content["opt"], content.get("opt_type"), file)
    model.load_state_dict(model_state, strict=strict)
    if opt is not None:
        opt.load_state_dict(content["opt"])
        learn.opt = opt
