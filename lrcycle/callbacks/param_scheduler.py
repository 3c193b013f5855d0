"""The one callback that applies any schedule to the optimizer."""

from __future__ import annotations

from ..callback import ORDER, Callback
from ..optim import apply_hypers
from ..schedules.schedule import Schedule, build

STEPS_AT_ONCE = 1024
"""How many steps' values `ParamScheduler` reads off the schedule at a time (about 190 KiB with one param group)."""


class ParamScheduler(Callback):
    """Before every training batch, sets what `schedule(learn.train_iter)` gives: each param group's lr and,
    where the optimizer has one and the schedule gives one, the momentum (`momentum` or `betas[0]`).

    It holds no counter: the position is the learner's `train_iter`, so a fit resumed with `start_epoch`
    lands on the same curve. Its state is the schedule's plain-data `spec` (`state_dict`), from which
    `load_state_dict` rebuilds the same schedule.

    The named subclasses (`callbacks/schedulers.py`) start without a schedule: a fit form `plan`s one from its
    own lr and length when it starts, and `bind`s it. Passed to `learn.fit(lr, n, cbs=[...])`, a plain
    `ParamScheduler` applies its own schedule instead of the fit's constant lr.

    The values are read off the schedule `STEPS_AT_ONCE` steps at a time (`_read_ahead`), so a batch only looks
    its step up; they are what `schedule(i)` gives. Steps past the schedule's `n_steps` ask the schedule one at
    a time.
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
        self._first, self._ahead = 0, []  # nothing read off it yet

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
        i = learn.train_iter
        k, ahead = i - self._first, self._ahead
        if not 0 <= k < len(ahead):
            if i >= self._schedule.n_steps:
                self._set_from_schedule(learn, i)
                return
            k, ahead = 0, self._read_ahead(i)
        lrs, mom = ahead[k]
        apply_hypers(learn.opt, lrs, mom)

    def _read_ahead(self, first: int) -> list:
        """`schedule(i)` for the next `STEPS_AT_ONCE` steps from `first` (none past `n_steps`)."""
        end = min(first + STEPS_AT_ONCE, self._schedule.n_steps)
        self._first, self._ahead = first, self._schedule.values(first, end)
        return self._ahead

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
