"""The named scheduler callbacks: each a `ParamScheduler` over one builder of `lrcycle.schedules`, its schedule
planned from the fit's own lr and length when a fit starts, and the fit forms carry exactly these.

`learn.fit(lr, n, cbs=[OneCycleCallback()])` runs the schedule of `learn.fit_one_cycle(n, lr)`: the callback
replaces `fit`'s constant schedule for that call. `the Learner's `fit_scheduler` decides which callback applies
a fit's schedule; `learn.preview` asks it too, so what is previewed is what is trained.
"""

from __future__ import annotations

from ..schedules import forms
from ..schedules import schedule as schedules
from ..schedules.schedule import Schedule
from ..validate import check_moms, check_number, check_positive_int, renamed, spread
from .param_scheduler import ParamScheduler

__all__ = [
    "OneCycleCallback",
    "CircularLRCallback",
    "CircularLRBetaCallback",
    "SGDRCallback",
    "CyclicLRCallback",
    "FlatCosCallback",
    "WSDCallback",
]


def _defaults(fit: Schedule, lrs=None) -> forms.PlanDefaults:
    """A plan's defaults for the fit `fit`: its group count, its lrs (or `lrs`), its steps an epoch."""
    return forms.PlanDefaults(len(fit.lrs), fit.lrs if lrs is None else lrs, None, fit.steps_per_epoch)


def _lrs(lr, fit: Schedule, name: str) -> list[float]:
    """`lr` spread over the fit's layer groups, or the fit's own lrs when `lr` is None."""
    return list(fit.lrs) if lr is None else spread(lr, len(fit.lrs), name)


def _cycles_in(n_epoch: int, cycle_len: int, cycle_mult: int, who: str) -> int:
    """How many cycles of `cycle_len * cycle_mult**c` epochs make up exactly `n_epoch` epochs (else a ValueError)."""
    ends, total = [], 0
    while total < n_epoch:
        total += cycle_len * cycle_mult ** len(ends)
        ends.append(total)
    if total != n_epoch:
        fits = ", ".join(map(str, ends))
        raise ValueError(
            f"{who}: a fit of {n_epoch} epochs ends inside a cycle (cycles of cycle_len={cycle_len}, "
            f"cycle_mult={cycle_mult} end after {fits} epochs); fit one of those numbers of epochs"
        )
    return len(ends)


class OneCycleCallback(ParamScheduler):
    """fastai's one cycle (`schedules.one_cycle_schedule`): cosine from lr_max/div up to lr_max over `pct_start`
    of the fit, then down to lr_max/div_final; momentum `moms` the other way (None: left alone).
    `lr_max=None` takes the fit's lr. `learn.fit(0.05, 3, cbs=[OneCycleCallback()])` == `fit_one_cycle(3, 0.05)`.
    """

    def __init__(self, lr_max=None, div=25.0, div_final=1e5, pct_start=0.25, moms=(0.95, 0.85, 0.95)):
        self.lr_max = lr_max
        self.div, self.div_final = check_number(div, "div", 0.0), check_number(div_final, "div_final", 0.0)
        self.pct_start = check_number(pct_start, "pct_start", 0.0, 1.0, closed=(True, True))
        self.moms = None if moms is None else check_moms(moms, 3)
        self.schedule = None

    def plan(self, fit: Schedule) -> Schedule:
        lrs = _lrs(self.lr_max, fit, "lr_max")
        args = (self.div, self.div_final, self.pct_start, self.moms, fit.steps_per_epoch)
        return schedules.one_cycle_schedule(lrs, fit.n_epoch, *args)

    @classmethod
    def from_schedule(cls, schedule: Schedule) -> OneCycleCallback:
        s = schedule.spec
        return cls(s["lrs"], s["div"], s["div_final"], s["pct_start"], s["moms"]).bound(schedule)


class _CycleCallback(ParamScheduler):
    """What the two circular callbacks share: fastai 0.7's `fit` with `cycle_len` cycles (None: one over the fit)
    and one of its CLR arguments, `fit_arg`, given `(*shape, *moms)`; `shape_keys` name the shape in a spec."""

    fit_arg: str
    shape_keys: tuple[str, str]

    def _set_cycles(self, shape: tuple, moms, cycle_len, cycle_mult) -> None:
        self.shape = shape
        self.moms = None if moms is None else check_moms(moms, 2)
        self.cycle_len = None if cycle_len is None else check_positive_int(cycle_len, "cycle_len")
        self.cycle_mult = check_positive_int(cycle_mult, "cycle_mult")
        self.schedule = None

    def plan(self, fit: Schedule) -> Schedule:
        cycle_len = fit.n_epoch if self.cycle_len is None else self.cycle_len
        n_cycle = _cycles_in(fit.n_epoch, cycle_len, self.cycle_mult, type(self).__name__)
        arg = (*self.shape, *(self.moms or ()))
        return forms.fit(_defaults(fit), None, n_cycle, cycle_len, self.cycle_mult, **{self.fit_arg: arg})

    @classmethod
    def from_schedule(cls, schedule: Schedule) -> _CycleCallback:
        s = schedule.spec
        shape = (s[key] for key in cls.shape_keys)
        return cls(*shape, s["moms"], s["cycle_len"], s["cycle_mult"]).bound(schedule)


class CircularLRCallback(_CycleCallback):
    """fastai 0.7's `use_clr=(div, cut_div[, *moms])` (`schedules.clr_schedule`): each cycle up from lr/div to
    lr over `1/cut_div` of it, then down; `moms=(max, min)` the other way. `cycle_len=None`: one cycle over the
    fit. `learn.fit(0.1, 3, cbs=[CircularLRCallback(32, 5)])` == `fit(0.1, 1, cycle_len=3, use_clr=(32, 5))`.
    """

    fit_arg = "use_clr"
    shape_keys = ("div", "cut_div")

    def __init__(self, div=4, cut_div=8, moms=None, cycle_len=None, cycle_mult=1):
        self.div = check_number(div, "div", 0.0)
        self.cut_div = check_number(cut_div, "cut_div", 1.0, closed=(True, False))
        self._set_cycles((self.div, self.cut_div), moms, cycle_len, cycle_mult)


class CircularLRBetaCallback(_CycleCallback):
    """fastai 0.7's `use_clr_beta=(div, pct[, *moms])` (`schedules.clr_beta_schedule`): up and down over
    `100 - pct` percent of each cycle, then down towards lr/(div*100). `cycle_len=None`: one cycle over the fit.
    `learn.fit(0.1, 3, cbs=[CircularLRBetaCallback(10, 10)])` == `fit(0.1, 1, cycle_len=3, use_clr_beta=(10, 10))`.
    """

    fit_arg = "use_clr_beta"
    shape_keys = ("div", "pct")

    def __init__(self, div=10, pct=10, moms=None, cycle_len=None, cycle_mult=1):
        self.div, self.pct = check_number(div, "div", 0.0), check_number(pct, "pct", 0.0, 100.0, closed=(True, False))
        self._set_cycles((self.div, self.pct), moms, cycle_len, cycle_mult)


class SGDRCallback(ParamScheduler):
    """fastai 0.7's SGDR (`schedules.sgdr_schedule`): cosine restarts every `cycle_len * cycle_mult**c` epochs
    after 0.7's lr/100 warm-up; the fit's epochs must end with a cycle.
    `learn.fit(0.1, 3, cbs=[SGDRCallback(1, 2)])` == `learn.fit(0.1, 2, cycle_len=1, cycle_mult=2)`.
    """

    def __init__(self, cycle_len=1, cycle_mult=1):
        self.cycle_len = check_positive_int(cycle_len, "cycle_len")
        self.cycle_mult = check_positive_int(cycle_mult, "cycle_mult")
        self.schedule = None

    def plan(self, fit: Schedule) -> Schedule:
        n_cycle = _cycles_in(fit.n_epoch, self.cycle_len, self.cycle_mult, type(self).__name__)
        return forms.fit(_defaults(fit), None, n_cycle, self.cycle_len, self.cycle_mult)

    @classmethod
    def from_schedule(cls, schedule: Schedule) -> SGDRCallback:
        return cls(schedule.spec["cycle_len"], schedule.spec["cycle_mult"]).bound(schedule)


class CyclicLRCallback(ParamScheduler):
    """Smith's cyclical lrs (`schedules.cyclic_schedule`, as `learn.fit_cyclic`): between `base_lr` (lr_max/4)
    and `lr_max` (None: the fit's lr), `step_size` steps a half or `n_cycle` cycles over the fit (`n_cycles`:
    its old spelling, which warns). `learn.fit(0.1, 4, cbs=[CyclicLRCallback(n_cycle=2)])` ==
    `learn.fit_cyclic(4, 0.1, n_cycle=2)`.
    """

    def __init__(self, lr_max=None, base_lr=None, step_size=None, n_cycle=None, mode="triangular", gamma=1.0,
                 moms=None, n_cycles=None):  # fmt: skip
        n_cycles = renamed(n_cycle, n_cycles, "n_cycle", "n_cycles")
        self.lr_max, self.base_lr, self.step_size, self.n_cycles = lr_max, base_lr, step_size, n_cycles
        self.mode, self.gamma, self.moms = mode, gamma, moms
        forms.fit_cyclic(forms.PlanDefaults(1, None, None, 1), 1, 1.0, None, step_size, n_cycles, mode, gamma, moms)
        self.schedule = None

    def plan(self, fit: Schedule) -> Schedule:
        lrs = _lrs(self.lr_max, fit, "lr_max")
        args = (self.base_lr, self.step_size, self.n_cycles, self.mode, self.gamma, self.moms)
        return forms.fit_cyclic(_defaults(fit), fit.n_epoch, lrs, *args)

    @classmethod
    def from_schedule(cls, schedule: Schedule) -> CyclicLRCallback:
        s = schedule.spec
        args = (s["step_size"], s["n_cycles"], s["mode"], s["gamma"], s["moms"])
        return cls(s["lrs"], s["base_lrs"], *args).bound(schedule)


class FlatCosCallback(ParamScheduler):
    """fastai's flat-cos (`schedules.flat_cos_schedule`, as `learn.fit_flat_cos`): flat at `lr` (None: the
    fit's) for `pct_start` of the fit, then cosine down to lr/div_final.
    `learn.fit(0.1, 4, cbs=[FlatCosCallback()])` == `learn.fit_flat_cos(4, 0.1)`.
    """

    def __init__(self, lr=None, div_final=1e5, pct_start=0.75):
        self.lr, self.div_final, self.pct_start = lr, div_final, pct_start
        forms.fit_flat_cos(forms.PlanDefaults(1, 1.0, None, 1), 1, None, div_final, pct_start)
        self.schedule = None

    def plan(self, fit: Schedule) -> Schedule:
        lrs = _lrs(self.lr, fit, "lr")
        return forms.fit_flat_cos(_defaults(fit), fit.n_epoch, lrs, self.div_final, self.pct_start)

    @classmethod
    def from_schedule(cls, schedule: Schedule) -> FlatCosCallback:
        s = schedule.spec
        return cls(s["lrs"], s["div_final"], s["pct_start"]).bound(schedule)


class WSDCallback(ParamScheduler):
    """Warmup-stable-decay (`schedules.wsd_schedule`, as `learn.fit_wsd`): linear from lr_max/div (0 with
    `div=math.inf`) over `warmup`, flat, then `decay_shape` down to lr_max/div_final over `decay`.
    `learn.fit(0.1, 4, cbs=[WSDCallback()])` == `learn.fit_wsd(4, 0.1)`.
    """

    def __init__(self, lr_max=None, warmup=0.05, decay=0.2, decay_shape="1-sqrt", div=25.0, div_final=1e5,
                 moms=None, warmup_epochs=None, decay_epochs=None):  # fmt: skip
        self.lr_max, self.moms = lr_max, moms
        self.phases = (warmup, decay, decay_shape, div, div_final)
        self.phase_epochs = (warmup_epochs, decay_epochs)
        if warmup_epochs is None and decay_epochs is None:  # epochs are checked against the fit's length
            forms.fit_wsd(forms.PlanDefaults(1, 1.0, None, 10**6), 1, None, *self.phases, moms)
        self.schedule = None

    def plan(self, fit: Schedule) -> Schedule:
        lrs = _lrs(self.lr_max, fit, "lr_max")
        return forms.fit_wsd(_defaults(fit), fit.n_epoch, lrs, *self.phases, self.moms, *self.phase_epochs)

    @classmethod
    def from_schedule(cls, schedule: Schedule) -> WSDCallback:
        """The spec holds the phases in steps: the callback's arguments say them as shares of the fit."""
        s = schedule.spec
        n_steps = s["n_epoch"] * s["steps_per_epoch"]
        warmup, decay = s["warmup_steps"] / n_steps, s["decay_steps"] / n_steps
        args = (s["decay_shape"], s["div"], s["div_final"], s["moms"])
        return cls(s["lrs"], warmup, decay, *args).bound(schedule)


NAMED = {
    "one_cycle": OneCycleCallback,
    "clr": CircularLRCallback,
    "clr_beta": CircularLRBetaCallback,
    "sgdr": SGDRCallback,
    "cyclic": CyclicLRCallback,
    "flat_cos": FlatCosCallback,
    "wsd": WSDCallback,
}
"""The callback each schedule builder's fits carry (a constant schedule: a plain `ParamScheduler`)."""

SCHEDULER_TYPES = frozenset(["ParamScheduler", *(cls.__name__ for cls in NAMED.values())])
"""The type names under which a checkpoint stores a fit's schedule."""
