"""Saving and loading a learner's model and optimizer state under `path/model_dir/<name>.pth`.

A checkpoint is a dict of plain data (tensors, lists, dicts, numbers, strings), read back with
`torch.load(weights_only=True)`: `{"format": "lrcycle", "version", "model", "opt", "opt_type", "checksum"}`, and
with `with_state=True` a `"state"` entry holding what a resume needs (`resume.py`). `checksum` is a CRC-32 of
all the rest (`checkpoint_checks.payload_checksum`). `load` reads the file, checks the checksum and then the
whole content against the learner (`checkpoint_checks.py`) before it changes anything; a file that cannot be
read, is damaged or is not a checkpoint is one ValueError naming the file and what is wrong with it.

Saving is durable: the file is written beside its place, flushed to the disk (`fsync`), renamed into place
and the folder's entry flushed too. A `.partial` file a killed save left behind is removed by the next save
or load under that name.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path, PurePath

import torch

from ..distributed import is_main_process, unwrap
from ..optim import build_optimizer, eval_weights
from ..validate import check_flag, check_name
from .checkpoint_checks import check_checksum, check_model_state, check_opt_state, model_state_of, payload_checksum
from .training_state import training_state

FORMAT, VERSION = "lrcycle", 2  # version 2: with a checksum (a version 1 file, without one, still loads)


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
            content["checksum"] = payload_checksum(content)
            write_atomically(content, file)
    return file


def write_atomically(content: dict, file: Path) -> None:
    """`torch.save` to a temporary file in the same folder, flushed to the disk, then `os.replace` (atomic on one
    file system) and the folder flushed, so the rename itself survives a power loss once this returns."""
    file.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(file)
    try:
        with open(partial, "wb") as out:
            torch.save(content, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, file)
        sync_folder(file.parent)
    finally:
        partial.unlink(missing_ok=True)


def partial_path(file: Path) -> Path:
    """Where a save of `file` writes before the rename."""
    return file.with_name(f".{file.name}.partial")


def sync_folder(folder: Path) -> None:
    """Flush a folder's entries (a rename into it) to the disk, where the system allows opening a folder."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows cannot open a folder: its rename is flushed by the file system itself
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on a folder
        pass
    finally:
        os.close(fd)


def read(learn, name) -> dict:
    """The file's content, checked whole (`weights_only=True`: no code in it runs; the checksum verified), on the
    CPU: loading into the model and optimizer moves it to their device. A stale `.partial` beside it goes."""
    file = model_path(learn, name)
    partial_path(file).unlink(missing_ok=True)  # left by a killed save of this name; no save of it is running
    content = read_file(file)
    check_checksum(content, file)
    return content


def read_file(file: Path):
    """`torch.load(file, weights_only=True)`, with any failure one ValueError naming the file and what is wrong."""
    if not file.is_file():
        raise FileNotFoundError(f"{file}: no such checkpoint file")
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:
        refused = _refused_global(error)
        if refused is None:
            raise ValueError(f"{file}: {unreadable(file, error)}; nothing was loaded") from error
        raise UnsafeCheckpointError(
            f"{file}: holds objects other than tensors and plain data, which loading refuses to run (not a file "
            f"lrcycle wrote; {refused}); nothing was loaded"
        ) from error


class UnsafeCheckpointError(ValueError, pickle.UnpicklingError):
    """A file whose content torch's weights-only loading refused to build: a ValueError like every other file
    lrcycle refuses, and the UnpicklingError torch itself raises."""


def _refused_global(error: Exception) -> str | None:
    """The line of torch's weights-only refusal naming the object it would not build, if that is the error."""
    if not isinstance(error, pickle.UnpicklingError):
        return None
    lines = [line.strip() for line in str(error).splitlines() if "unsupported global" in line.lower()]
    return lines[0] if lines else None


def unreadable(file: Path, error: Exception) -> str:
    """Why torch could not read `file`, in words."""
    size = file.stat().st_size
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if size < 64:
        unit = "byte" if size == 1 else "bytes"
        return f"cannot be read as a checkpoint: it is only {size} {unit} long (empty or truncated)"
    with open(file, "rb") as f:
        head = f.read(256)
    if not head.startswith(b"PK\x03\x04"):  # how every archive torch.save writes begins
        kind = "a text file" if _is_text(head) else "not a file torch.save wrote"
        return (
            f"cannot be read as a checkpoint: it is {kind} ({size} bytes; torch said: {type(error).__name__}: {first})"
        )
    said = f"{type(error).__name__}: {first}"
    return f"cannot be read as a checkpoint: truncated or damaged ({size} bytes; torch said: {said})"


def _is_text(head: bytes) -> bool:
    """Whether a file's first bytes read as UTF-8 text (a character cut by the end of `head` allowed)."""
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        return error.start >= len(head) - 3 and error.reason == "unexpected end of data"
    return True


def load(learn, name, with_opt: bool = True, strict: bool = True, model_only: bool = False) -> None:
    """Read what `save` wrote and check all of it against the learner, then load it: the model (keys, shapes and
    dtypes; `strict=False` loads a partial match), and unless `model_only` the optimizer (its type, param-group
    layout, hyperparameters and state). `model_only=True` also takes a bare `state_dict` file. On any error
    nothing changed."""
    for flag, arg in ((with_opt, "with_opt"), (strict, "strict"), (model_only, "model_only")):
        check_flag(flag, arg)
    file = model_path(learn, name)
    content = read(learn, name)
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
