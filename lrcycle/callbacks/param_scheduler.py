"""The one callback that applies any schedule to the optimizer."""

from __future__ import annotations

import math
from array import array

from ..callback import ORDER, Callback
from ..optim import apply_hypers, set_mom
from ..schedules.schedule import Schedule, build

STEPS_AT_ONCE = 1024
"""How many steps' values `ParamScheduler` reads off the schedule at a time (8 KiB a param group)."""


class ParamScheduler(Callback):
    """Before every training batch, sets what `schedule(learn.train_iter)` gives: each param group's lr and,
    where the optimizer has one and the schedule gives one, the momentum (`momentum` or `betas[0]`).

    It holds no counter: the position is the learner's `train_iter`, so a fit resumed with `start_epoch`
    lands on the same curve. Its state is the schedule's plain-data `spec` (`state_dict`), from which
    `load_state_dict` rebuilds the same schedule.

    The named subclasses (`callbacks/schedulers.py`) start without a schedule: a fit form `plan`s one from its
    own lr and length when it starts, and `bind`s it. Passed to `learn.fit(lr, n, cbs=[...])`, a plain
    `ParamScheduler` applies its own schedule instead of the fit's constant lr.

    The values are read off the schedule `STEPS_AT_ONCE` steps at a time into typed arrays (`_StepValues`), so a
    batch only looks its step up; they are the very floats `schedule(i)` gives. Steps past the schedule's
    `n_steps` ask the schedule one at a time.
    """

    order = ORDER["scheduler"]

    def __init__(self, schedule: Schedule):
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule: expected a lrcycle.schedules.Schedule, got {type(schedule).__name__}")
        self.schedule = schedule

    @property
    def schedule(self) -> Schedule:
        return self._schedule

    @schedule.setter
    def schedule(self, schedule: Schedule | None) -> None:
        self._schedule = schedule
        self._values = None if schedule is None else _StepValues(schedule, 0, 0)  # nothing read off it yet

    def plan(self, fit: Schedule) -> Schedule:
        """The schedule this callback applies in a fit whose own schedule is `fit`: here, its own."""
        return self.schedule

    def bind(self, schedule: Schedule | None) -> Schedule | None:
        """Apply `schedule` from now on (a fit form binds what `plan` gave); returns the one it replaces."""
        previous, self.schedule = self.schedule, schedule
        return previous

    def bound(self, schedule: Schedule):
        """This callback, applying `schedule`."""
        self.bind(schedule)
        return self

    def check(self, learn) -> None:
        if self.schedule is None:
            name = type(self).__name__
            raise ValueError(
                f"{name}: it takes the fit's lr and length when a fit form starts; pass it to one, e.g. "
                f"learn.fit(lr, n_epoch, cbs=[{name}(...)])"
            )

    def before_batch(self, learn) -> None:
        if not learn.training:
            return
        i, values = learn.train_iter, self._values
        if not values.first <= i < values.end:
            if i >= self._schedule.n_steps:
                self._set_from_schedule(learn, i)
                return
            values = self._values = _StepValues(self._schedule, i, STEPS_AT_ONCE)
        i -= values.first
        groups = learn.opt.param_groups
        for group, lrs in zip(groups, values.group_lrs, strict=True):
            group["lr"] = lrs[i]
        mom = values.moms[i]
        if mom == mom:  # NaN where the schedule leaves momentum alone
            for group in groups:
                set_mom(group, mom)

    def _set_from_schedule(self, learn, i: int) -> None:
        """Step `i` straight from the schedule: past its `n_steps`, where nothing is read ahead."""
        apply_hypers(learn.opt, *self._schedule(i))

    def state_dict(self) -> dict:
        """The schedule as plain data (with the learner's `train_iter`, all a resume needs)."""
        return {"spec": None if self.schedule is None else dict(self.schedule.spec)}

    def load_state_dict(self, state: dict) -> None:
        """Rebuild the schedule a `state_dict()` describes; a bad state changes nothing."""
        self.schedule = None if state["spec"] is None else build(state["spec"])

    def __repr__(self) -> str:
        return f"{type(self).__name__}({None if self.schedule is None else self.schedule.spec})"


class _StepValues:
    """`schedule(i)` for the steps `first <= i < end` (at most `count` of them, none past `n_steps`), kept as one
    array of lrs per param group and one of momenta (NaN where the schedule gives None)."""

    def __init__(self, schedule: Schedule, first: int, count: int):
        self.first, self.end = first, min(first + count, schedule.n_steps)
        at = schedule.at
        steps = [at(i) for i in range(first, self.end)]
        self.group_lrs = [array("d", group) for group in zip(*[lrs for lrs, _ in steps], strict=True)]
        self.moms = array("d", [math.nan if mom is None else mom for _, mom in steps])
