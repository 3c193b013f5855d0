"""Resuming a fit from a full-state checkpoint (`learn.save(name, with_state=True)`, or the `Checkpoint`
callback), so that it goes on exactly as the uninterrupted fit would have.

The fit is rebuilt from plain data: the schedule from its `spec`, `cycle_save_name`/`best_save_name` from the
saved call, the callbacks are the ones the user passes again (matched in order and by type). The whole
checkpoint is checked before anything changes: its checksum, every key and the type, shape and range of
every value (the fit's position, the callbacks' states, the RNG states, the freeze state), then all of it
against the learner and the call. The state is loaded in `before_fit`, after each callback has reset its
own, as one critical section (Ctrl-C waits for it), the RNGs last, so the next epoch shuffles as the
uninterrupted one did; which parameters train comes back too.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from ..callback import ORDER, Callback
from ..callbacks.schedulers import SCHEDULER_TYPES
from ..distributed import unwrap
from ..interrupt import holds_sigint
from ..optim import build_optimizer
from ..schedules import forms
from ..schedules import schedule as schedules
from .checkpoint import model_path, read
from .checkpoint_checks import check_model_state, check_opt_state, is_lrcycle_checkpoint
from .rng import set_rng_state
from .training_state import stateful

NAME_ARGS = ("cycle_save_name", "best_save_name")


def _name_back(value):
    return Path(value[1]) if isinstance(value, list) else value


def resumable(content, file) -> dict:
    """The `state` entry of a checkpoint that a fit can resume from, checked whole (`check_state`), else a
    ValueError saying why not."""
    if not is_lrcycle_checkpoint(content) or not isinstance(content.get("state"), dict):
        raise ValueError(f"resume: {file} holds no training state; save it with learn.save(name, with_state=True)")
    state = content["state"]
    version = content.get("version")
    check_state(state, file, needs_frozen=isinstance(version, int) and version >= 2)
    fit = state["fit"]
    if fit is None:
        raise ValueError(f"resume: {file} was not saved at the end of an epoch of a fit; there is nothing to resume")
    if fit["epochs_done"] >= fit["n_epoch"]:
        raise ValueError(f"resume: {file} was saved after the fit's last epoch; there is nothing left to resume")
    return state


# ---- the checkpoint's own consistency: keys, types, shapes, ranges ------------------------------------------
class _Reader:
    """Reads a checkpoint's nested entries, each missing key or wrong type one ValueError naming the file and
    the entry (`state['fit']['n_epoch']`): never a raw KeyError or TypeError."""

    def __init__(self, file):
        self.file = file

    def fail(self, where: str, problem: str):
        raise ValueError(f"{self.file}: the checkpoint's {where} {problem}; nothing was loaded")

    def get(self, mapping, key, where: str, kinds, expected: str, optional: bool = False):
        name = f"{where}[{key!r}]"
        if key not in mapping:
            if optional:
                return None
            self.fail(where, f"lacks {key!r} (the file is incomplete or not from this version of lrcycle)")
        value = mapping[key]
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in _as_tuple(kinds)):
            self.fail(name, f"is {_describe(value)}, expected {expected}")
        return value

    def integer(self, mapping, key, where: str, low: int, high: int | None = None) -> int:
        value = self.get(mapping, key, where, int, "an integer")
        if value < low or (high is not None and value > high):
            bound = f"from {low} to {high}" if high is not None else f">= {low}"
            self.fail(f"{where}[{key!r}]", f"is {value}, out of range (it must be {bound})")
        return value


def _as_tuple(kinds) -> tuple:
    return kinds if isinstance(kinds, tuple) else (kinds,)


def _describe(value) -> str:
    if torch.is_tensor(value):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return f"{value!r}" if isinstance(value, (int, float, str, type(None))) else f"a {type(value).__name__}"


def check_state(state: dict, file, needs_frozen: bool = True) -> None:
    """Every entry of a checkpoint's training state present, of its type, shape and range (the file alone; the
    learner and the call are checked against it in `prepare`)."""
    read = _Reader(file)
    fit = read.get(state, "fit", "state", (dict, type(None)), "a dict or None")
    if fit is not None:
        _check_fit(read, fit)
    entries = read.get(state, "callbacks", "state", list, "a list")
    for i, entry in enumerate(entries):
        where = f"state['callbacks'][{i}]"
        if not isinstance(entry, dict):
            read.fail(where, f"is {_describe(entry)}, expected a dict")
        read.get(entry, "type", where, str, "a callback class name")
        read.get(entry, "state", where, dict, "a dict")
    _check_rng(read, read.get(state, "rng", "state", dict, "a dict"))
    frozen = read.get(state, "frozen", "state", list, "a list of lists of True/False", optional=not needs_frozen)
    if frozen is not None and not all(isinstance(g, list) and all(isinstance(f, bool) for f in g) for g in frozen):
        read.fail("state['frozen']", "is not a list of lists of True/False (one per layer group)")


def _check_fit(read: _Reader, fit: dict) -> None:
    where = "state['fit']"
    n_epoch = read.integer(fit, "n_epoch", where, 1)
    read.integer(fit, "epochs_done", where, 1, n_epoch)
    read.integer(fit, "steps_per_epoch", where, 1)
    ends = read.get(fit, "cycle_ends", where, list, "a list of epoch numbers")
    if not all(isinstance(e, int) and not isinstance(e, bool) and 0 <= e <= n_epoch for e in ends):
        read.fail(f"{where}['cycle_ends']", f"is {ends!r}, expected epoch numbers from 0 to n_epoch ({n_epoch})")
    read.get(fit, "with_valid", where, bool, "True or False")
    for key in NAME_ARGS:
        value = read.get(fit, key, where, (str, list, type(None)), "a file name, ['path', str] or None", True)
        if isinstance(value, list) and not (len(value) == 2 and value[0] == "path" and isinstance(value[1], str)):
            read.fail(f"{where}[{key!r}]", f"is {value!r}, expected ['path', str]")


def _check_rng(read: _Reader, rng: dict) -> None:
    """Each generator's state is tried on a new generator of its kind (the process's own stay untouched)."""
    where = "state['rng']"
    own = torch.get_rng_state()
    torch_state = read.get(rng, "torch", where, torch.Tensor, "a uint8 tensor")
    if torch_state.dtype != own.dtype or torch_state.shape != own.shape:
        read.fail(
            f"{where}['torch']", f"is {_describe(torch_state)}, expected a uint8 tensor of shape {tuple(own.shape)}"
        )
    numpy_state = read.get(rng, "numpy", where, (list, tuple), "a list of 5 entries")
    python_state = read.get(rng, "python", where, (list, tuple), "a list of 3 entries")
    cuda = read.get(rng, "cuda", where, list, "a list of uint8 tensors", optional=True)
    if cuda is not None and not all(torch.is_tensor(s) and s.dtype == torch.uint8 for s in cuda):
        read.fail(f"{where}['cuda']", "is not a list of uint8 tensors")
    for name, trial in (("torch", _try_torch), ("numpy", _try_numpy), ("python", _try_python)):
        try:
            trial({"torch": torch_state, "numpy": numpy_state, "python": python_state}[name])
        except (TypeError, ValueError, RuntimeError, OverflowError, IndexError) as error:
            read.fail(f"{where}[{name!r}]", f"is not a valid generator state ({type(error).__name__}: {error})")


def _try_torch(state) -> None:
    torch.Generator().set_state(state.cpu())


def _try_numpy(state) -> None:
    kind, keys, pos, has_gauss, cached = state
    if not torch.is_tensor(keys):
        raise TypeError(f"its keys are a {type(keys).__name__}, not a tensor")
    values = keys.cpu().numpy()
    if values.shape != (624,) or values.min() < 0 or values.max() >= 2**32:
        raise ValueError("its keys must be 624 values in [0, 2**32)")
    np.random.RandomState().set_state((kind, values.astype(np.uint32), pos, has_gauss, cached))


def _try_python(state) -> None:
    version, internal, gauss_next = state
    random.Random().setstate((version, tuple(internal), gauss_next))


# ---- the checkpoint against the learner and the call --------------------------------------------------------
def saved_fit(learn, name) -> tuple[schedules.Schedule, dict, dict]:
    """The schedule and the `cycle_save_name`/`best_save_name` of the fit a checkpoint was saved in, and the
    checkpoint's content as read (so that resuming from it reads the file once)."""
    file = model_path(learn, name)
    content = read(learn, name)
    state = resumable(content, file)
    specs = [cb["state"].get("spec") for cb in state["callbacks"] if cb["type"] in SCHEDULER_TYPES]
    if len(specs) != 1:
        raise ValueError(f"resume: {file} holds {len(specs)} schedules; it must come from one fit form's fit")
    try:
        schedule = schedules.build(specs[0])
    except (TypeError, ValueError, KeyError, AttributeError) as error:
        raise ValueError(f"{file}: the checkpoint's schedule cannot be rebuilt from {specs[0]!r}: {error}") from None
    return schedule, {k: _name_back(state["fit"].get(k)) for k in NAME_ARGS}, content


def saved_phase(learn, name, phases: list[schedules.Schedule]) -> int:
    """Which of a multi-fit call's fits (`phases`, their planned schedules) checkpoint `name` was saved in."""
    saved, _, _ = saved_fit(learn, name)
    for k, planned in enumerate(phases):
        if planned.spec == saved.spec:
            return k
    raise ValueError(
        f"resume: {model_path(learn, name)} comes from a fit with the schedule {saved.spec}, which is none of this "
        "call's fits; repeat the call it was saved in"
    )


def prepare(learn, name, cbs: list, start_epoch: int, content: dict | None = None) -> tuple[list, int]:
    """A fit's callbacks and first epoch. Without `name`, as given; with it, the whole checkpoint (`content`, when
    the caller has read it already) is checked against the learner and this call first, then a callback that
    loads it joins and the fit starts at the first epoch the checkpoint had not done."""
    if name is None:
        return cbs, start_epoch
    if start_epoch != 0:
        raise ValueError(f"resume/start_epoch: give one (the checkpoint says where to start), got {start_epoch}")
    file = model_path(learn, name)
    content = read(learn, name) if content is None else content
    state = resumable(content, file)
    check_model_state(unwrap(learn.model), content["model"], True, file)
    _check_layer_groups(learn, state.get("frozen"), file)
    if "opt" in content:
        opt = learn.opt or build_optimizer(learn.opt_func, learn.layer_groups, learn.lr, learn.wd)
        check_opt_state(opt, content["opt"], content.get("opt_type"), file)
    steps = forms.steps_per_epoch(learn.dls.train, [*learn.cbs, *cbs])
    if steps != state["fit"]["steps_per_epoch"]:
        raise ValueError(
            f"resume: {file} comes from a fit of {state['fit']['steps_per_epoch']} steps an epoch, this one takes "
            f"{steps} (other data, or another GradientAccumulation?)"
        )
    callbacks = stateful([*learn.cbs, *(cb for cb in cbs if cb not in learn.cbs)])
    _check_callbacks(callbacks, state["callbacks"], file)
    for cb, entry in zip(callbacks, state["callbacks"], strict=True):
        _check_callback_state(cb, entry, state["fit"], file)
    return [*cbs, ResumeFrom(content, callbacks)], state["fit"]["epochs_done"]


def _check_layer_groups(learn, frozen, file) -> None:
    """The checkpoint's layer groups (their parameter counts) must be the learner's: the freeze state is
    restored group by group."""
    if frozen is None:  # a file from before the freeze state was saved
        return
    saved, own = [len(g) for g in frozen], [len(g) for g in learn.layer_groups]
    if saved != own:
        raise ValueError(
            f"resume: {file} comes from a learner whose layer groups hold {saved} parameter tensors, this learner's "
            f"hold {own}: build it with the same model and splitter to resume"
        )


def _check_callback_state(cb, entry: dict, fit: dict, file) -> None:
    """A callback that can check a state without loading it (`check_state(state, fit)`) does so now."""
    check = getattr(cb, "check_state", None)
    if not callable(check):
        return
    try:
        check(entry["state"], fit)
    except ValueError as error:
        raise ValueError(f"{file}: the checkpoint's {entry['type']} state {error}; nothing was loaded") from None


def _check_callbacks(callbacks: list, saved: list, file) -> None:
    """The fit's stateful callbacks must be the checkpoint's, in the same order; its schedule the same."""
    types, saved_types = [type(cb).__name__ for cb in callbacks], [s["type"] for s in saved]
    if types != saved_types:
        raise ValueError(
            f"resume: {file} holds the states of the callbacks {saved_types}, this fit has {types}; pass the "
            "callbacks of the saved fit again (cbs=[...], in the same order)"
        )
    for cb, entry in zip(callbacks, saved, strict=True):
        if entry["type"] in SCHEDULER_TYPES and cb.state_dict() != entry["state"]:
            raise ValueError(
                f"resume: {file} comes from a different fit call: its schedule is {entry['state'].get('spec')}, "
                f"this call's {cb.state_dict()['spec']}; repeat the same call, or use learn.resume(name)"
            )


class ResumeFrom(Callback):
    """Loads a checked full-state checkpoint at the start of a resumed fit: every callback's state, then the
    model, the optimizer, which parameters train, and last the RNGs. Runs after every other `before_fit` (they
    reset their state)."""

    order = ORDER["resume"]

    def __init__(self, content: dict, callbacks: list):
        self.content, self.callbacks = content, callbacks

    @holds_sigint  # all of the checkpoint or, should a press come before, none of it
    def before_fit(self, learn) -> None:
        state = self.content["state"]
        for cb, entry in zip(self.callbacks, state["callbacks"], strict=True):
            cb.load_state_dict(entry["state"])
        unwrap(learn.model).load_state_dict(self.content["model"])
        if "opt" in self.content:
            learn.opt.load_state_dict(self.content["opt"])
        if state.get("frozen") is not None:
            for group, flags in zip(learn.layer_groups, state["frozen"], strict=True):
                for p, flag in zip(group, flags, strict=True):
                    p.requires_grad_(flag)
        set_rng_state(state["rng"])
        self.content = None  # the fit no longer needs the file's tensors
