"""Every fit form as a torch LR scheduler, for your own loop, Lightning or the Hugging Face Trainer.

`lrcycle.scheduler(opt, "fit_one_cycle", 5, steps_per_epoch=len(loader))` evaluates the very plan
`learn.fit_one_cycle(5)` runs (`forms.PLANS`, so fit forms added later work too) and, at each `.step()` (one
per optimizer step), sets what the fit would set: each param group's lr and, where the plan moves it, the
momentum (`momentum`, or `betas[0]` for Adam-like optimizers).
"""

from __future__ import annotations

import warnings

import torch
from torch.optim.lr_scheduler import LRScheduler

from ..optim import apply_hypers, get_lrs, set_hypers, set_mom
from ..validate import check_positive_int, check_wd
from . import forms
from . import schedule as schedules

DEFAULT_MOMS = (0.95, 0.85, 0.95)  # the Learner's default `moms`, for plans whose `moms=None` means "the default"


class PlanScheduler(LRScheduler):
    """A `torch.optim.lr_scheduler.LRScheduler` stepping a `schedules.Schedule`: after the k-th `.step()` the
    optimizer holds `schedule(k)` (construction applies `schedule(0)`), so step k of the optimizer runs with
    what the fit's step k would. Past the schedule's `n_steps` it keeps the last values and warns once.

    `state_dict()` is plain data (the schedule's `spec` and the step count), so `torch.load(weights_only=True)`
    reads it back and `load_state_dict` continues exactly where it stopped.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, schedule: schedules.Schedule):
        check_schedule_groups(schedule, optimizer)
        self.schedule, self.warned_past_end, self.mom = schedule, False, None
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        """The lrs for the step about to be taken (`self.last_epoch`, 0-based); notes the momentum to set."""
        i = self.last_epoch
        if i > self.schedule.n_steps and not self.warned_past_end:
            self.warned_past_end = True
            warnings.warn(past_end_message(i, self.schedule), UserWarning, stacklevel=3)
        lrs, self.mom = self.schedule(min(i, self.schedule.n_steps - 1))
        return list(lrs)

    def step(self, epoch=None) -> None:
        """One call per optimizer step, after it: the next step's lrs (torch's `step`) and momentum."""
        if epoch is not None:
            raise TypeError("epoch: lrcycle schedulers count optimizer steps themselves; call .step() without it")
        super().step()
        if self.mom is not None:
            for group in self.optimizer.param_groups:
                set_mom(group, self.mom)

    def state_dict(self) -> dict:
        """Plain data: the schedule's spec, the step reached, torch's step count, whether it warned."""
        return {
            "spec": dict(self.schedule.spec),
            "last_epoch": self.last_epoch,
            "step_count": self._step_count,
            "warned_past_end": self.warned_past_end,
        }

    def load_state_dict(self, state_dict: dict) -> None:
        """Continue where `state_dict()` was taken: the same schedule, the same step, and the optimizer set to
        that step's values (so it does not matter whether the optimizer's own state is loaded before or after)."""
        missing = {"spec", "last_epoch", "step_count", "warned_past_end"} - set(state_dict)
        if missing:
            raise ValueError(f"state_dict: not an lrcycle scheduler state, missing {sorted(missing)}")
        schedule = schedules.build(state_dict["spec"])
        check_schedule_groups(schedule, self.optimizer)
        self.schedule, self.warned_past_end = schedule, bool(state_dict["warned_past_end"])
        self.last_epoch, self._step_count = int(state_dict["last_epoch"]), int(state_dict["step_count"])
        apply_hypers(self.optimizer, *schedule(min(self.last_epoch, schedule.n_steps - 1)))
        self._last_lr = get_lrs(self.optimizer)

    def get_last_lr(self) -> list[float]:
        """The lrs the last `.step()` (or the construction) set, one per param group."""
        return list(self._last_lr)


def scheduler(optimizer: torch.optim.Optimizer, method, *args, steps_per_epoch: int, **kwargs) -> PlanScheduler:
    """`learn.<method>(*args, **kwargs)`'s schedule as a torch LR scheduler on `optimizer`; step it once per
    optimizer step. `method`: any fit form (`"fit"`, `"fit_one_cycle"`, `"fit_cyclic"`, `"fit_flat_cos"`, ...).

    The plan sees the optimizer as a Learner would: one layer group per param group, the default lr (where
    the call gives none) the groups' current lrs, the default `moms` (0.95, 0.85, 0.95). lr arguments take
    every lr form (`slice`, one per group). `steps_per_epoch`: optimizer steps in an epoch (batches, divided
    by gradient accumulation); with `steps_per_epoch=1` the epochs of the call are scheduler steps. `wd=`
    sets weight decay now, as the fit would; the Learner's other fit arguments do not apply here.
    """
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer: expected a torch.optim.Optimizer, got {type(optimizer).__name__}")
    steps_per_epoch = check_positive_int(steps_per_epoch, "steps_per_epoch")
    n_groups = len(optimizer.param_groups)
    defaults = forms.PlanDefaults(n_groups, get_lrs(optimizer), DEFAULT_MOMS, steps_per_epoch)
    schedule, fit_args = forms.plan_call(defaults, method, args, kwargs)
    unused = sorted(k for k in fit_args if k != "wd")
    if unused:
        raise ValueError(f"{', '.join(unused)}: Learner fit arguments; lrcycle.scheduler only sets lr and momentum")
    wds = check_wd(fit_args.get("wd"), n_groups)
    if wds is not None:
        set_hypers(optimizer, get_lrs(optimizer), wds)
    return PlanScheduler(optimizer, schedule)


def check_schedule_groups(schedule: schedules.Schedule, optimizer: torch.optim.Optimizer) -> None:
    if len(schedule.lrs) != len(optimizer.param_groups):
        raise ValueError(
            f"optimizer: the schedule has {len(schedule.lrs)} lrs (one per group) but the optimizer has "
            f"{len(optimizer.param_groups)} param groups"
        )


def past_end_message(i: int, schedule: schedules.Schedule) -> str:
    return (
        f"lrcycle.scheduler: stepped {i} times, past the plan's {schedule.n_steps} optimizer steps "
        f"({schedule.n_epoch} epochs x steps_per_epoch={schedule.steps_per_epoch}); the lr and momentum stay at "
        "their last values. Call .step() once per optimizer step (per batch) with steps_per_epoch = batches per "
        "epoch (divided by gradient accumulation); if you step once per epoch, pass steps_per_epoch=1. Stepping "
        "per batch a plan made per epoch (or the other way round) is the usual cause."
    )
