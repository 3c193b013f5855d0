"""The one callback that applies any schedule to the optimizer."""

from __future__ import annotations

from ..callback import ORDER, Callback
from ..optim import set_mom
from ..schedules.schedule import Schedule, build


class ParamScheduler(Callback):
    """Before every training batch, sets what `schedule(learn.train_iter)` gives: each param group's lr and,
    where the optimizer has one and the schedule gives one, the momentum (`momentum` or `betas[0]`).

    It holds no counter: the position is the learner's `train_iter`, so a fit resumed with `start_epoch`
    lands on the same curve. Its state is the schedule's plain-data `spec` (`state_dict`), from which
    `load_state_dict` rebuilds the same schedule.
    """

    order = ORDER["scheduler"]

    def __init__(self, schedule: Schedule):
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule: expected a lrcycle.schedules.Schedule, got {type(schedule).__name__}")
        self.schedule = schedule

    def before_batch(self, learn) -> None:
        if not learn.training:
            return
        lrs, mom = self.schedule(learn.train_iter)
        for group, lr in zip(learn.opt.param_groups, lrs, strict=True):
            group["lr"] = lr
            if mom is not None:
                set_mom(group, mom)

    def state_dict(self) -> dict:
        """The schedule as plain data (with the learner's `train_iter`, all a resume needs)."""
        return {"spec": dict(self.schedule.spec)}

    def load_state_dict(self, state: dict) -> None:
        """Rebuild the schedule a `state_dict()` describes; a bad state changes nothing."""
        self.schedule = build(state["spec"])

    def __repr__(self) -> str:
        return f"ParamScheduler({self.schedule.spec})"
