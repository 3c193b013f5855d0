"""Resuming a fit from a full-state checkpoint (`learn.save(name, with_state=True)`, or the `Checkpoint`
callback), so that it goes on exactly as the uninterrupted fit would have.

The fit is rebuilt from plain data: the schedule from its `spec`, `cycle_save_name`/`best_save_name` from the
saved call, the callbacks are the ones the user passes again (matched in order and by type). Every check of
the file runs before anything changes; the state is loaded in `before_fit`, after each callback has reset its
own, and the RNGs last, so the next epoch shuffles as the uninterrupted one did.
"""

from __future__ import annotations

from pathlib import Path

from ..callback import ORDER, Callback
from ..callbacks.schedulers import SCHEDULER_TYPES
from ..distributed import unwrap
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
    """The `state` entry of a checkpoint that a fit can resume from, else a ValueError saying why not."""
    if not is_lrcycle_checkpoint(content) or not isinstance(content.get("state"), dict):
        raise ValueError(f"resume: {file} holds no training state; save it with learn.save(name, with_state=True)")
    fit = content["state"].get("fit")
    if fit is None:
        raise ValueError(f"resume: {file} was not saved at the end of an epoch of a fit; there is nothing to resume")
    if fit["epochs_done"] >= fit["n_epoch"]:
        raise ValueError(f"resume: {file} was saved after the fit's last epoch; there is nothing left to resume")
    return content["state"]


def saved_fit(learn, name) -> tuple[schedules.Schedule, dict]:
    """The schedule and the `cycle_save_name`/`best_save_name` of the fit a checkpoint was saved in."""
    file = model_path(learn, name)
    state = resumable(read(learn, name), file)
    specs = [cb["state"]["spec"] for cb in state["callbacks"] if cb["type"] in SCHEDULER_TYPES]
    if len(specs) != 1:
        raise ValueError(f"resume: {file} holds {len(specs)} schedules; it must come from one fit form's fit")
    return schedules.build(specs[0]), {k: _name_back(state["fit"].get(k)) for k in NAME_ARGS}


def saved_phase(learn, name, phases: list[schedules.Schedule]) -> int:
    """Which of a multi-fit call's fits (`phases`, their planned schedules) checkpoint `name` was saved in."""
    saved, _ = saved_fit(learn, name)
    for k, planned in enumerate(phases):
        if planned.spec == saved.spec:
            return k
    raise ValueError(
        f"resume: {model_path(learn, name)} comes from a fit with the schedule {saved.spec}, which is none of this "
        "call's fits; repeat the call it was saved in"
    )


def prepare(learn, name, cbs: list, start_epoch: int) -> tuple[list, int]:
    """A fit's callbacks and first epoch. Without `name`, as given; with it, the whole checkpoint is checked
    against the learner and this call first, then a callback that loads it joins and the fit starts at the
    first epoch the checkpoint had not done."""
    if name is None:
        return cbs, start_epoch
    if start_epoch != 0:
        raise ValueError(f"resume/start_epoch: give one (the checkpoint says where to start), got {start_epoch}")
    file = model_path(learn, name)
    content = read(learn, name)
    state = resumable(content, file)
    check_model_state(unwrap(learn.model), content["model"], True, file)
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
    return [*cbs, ResumeFrom(content, callbacks)], state["fit"]["epochs_done"]


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
                f"resume: {file} comes from a different fit call: its schedule is {entry['state']['spec']}, "
                f"this call's {cb.state_dict()['spec']}; repeat the same call, or use learn.resume(name)"
            )


class ResumeFrom(Callback):
    """Loads a checked full-state checkpoint at the start of a resumed fit: every callback's state, then the
    model, the optimizer and last the RNGs. Runs after every other `before_fit` (they reset their state)."""

    order = ORDER["resume"]

    def __init__(self, content: dict, callbacks: list):
        self.content, self.callbacks = content, callbacks

    def before_fit(self, learn) -> None:
        state = self.content["state"]
        for cb, entry in zip(self.callbacks, state["callbacks"], strict=True):
            cb.load_state_dict(entry["state"])
        unwrap(learn.model).load_state_dict(self.content["model"])
        if "opt" in self.content:
            learn.opt.load_state_dict(self.content["opt"])
        set_rng_state(state["rng"])
        self.content = None  # the fit no longer needs the file's tensors
