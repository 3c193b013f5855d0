"""Scheduler callbacks, and the plans that turn a fit call's arguments into epochs and callbacks.

Each scheduler sets every param group's lr (each scaled to its own lr) and, where the optimizer has one,
the momentum, in `before_batch` of training, as a function of `learn.train_iter`: no hidden counters, so a
fit resumed with `start_epoch` lands on the same curve. Every argument is checked when a scheduler is built,
which the plans do before the fit touches the model or optimizer. The formulas are in `lrcycle.schedules`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from .. import schedules
from ..callback import ORDER, Callback
from ..checks import check_moms, check_positive_int
from ..hyper import set_mom
from ..layers import spread

_MODES = ("triangular", "triangular2", "exp_range")


class Plan(NamedTuple):
    """What a fit call runs: how many epochs, with which callbacks, and after which epochs cycles end."""

    n_epoch: int
    cbs: list
    cycle_ends: list[int]


# ---- argument checks: each raises a ValueError naming the argument and its accepted range --------------
def _number(value, name: str, low: float, high: float = math.inf, closed=(False, False)) -> float:
    """`value` as a float in the interval from `low` to `high`, its ends closed as `closed` says."""
    interval = f"{'[' if closed[0] else '('}{low}, {high}{']' if closed[1] else ')'}"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name}: must be a finite number in {interval}, got {value!r}")
    above = value >= low if closed[0] else value > low
    below = value <= high if closed[1] else value < high
    if not (above and below):
        raise ValueError(f"{name}: must be in {interval}, got {value!r}")
    return float(value)


def _lrs(values, name: str) -> list[float]:
    """One lr per layer group (a single float serves every group); each finite and > 0."""
    values = [values] if isinstance(values, (int, float)) else list(values)
    if not values:
        raise ValueError(f"{name}: need at least one learning rate")
    return [_number(v, name, 0.0) for v in values]


def _per_group(values: list[float], groups: list, name: str) -> list[float]:
    if len(values) == 1:
        return values * len(groups)
    if len(values) != len(groups):
        raise ValueError(f"{name}: {len(values)} values for an optimizer with {len(groups)} param groups")
    return values


def _cycle_args(cycle_len, cycle_mult) -> tuple[int, int]:
    check_positive_int(cycle_len, "cycle_len")
    check_positive_int(cycle_mult, "cycle_mult")
    return cycle_len, cycle_mult


# ---- the callbacks -------------------------------------------------------------------------------------
class Scheduler(Callback):
    """Base of the scheduler callbacks: before every training batch, sets what `hypers` gives for
    `learn.train_iter` (one lr per group, and a momentum or None to leave momentum alone).

    Subclasses define `hypers(i, total_iter, n_epoch)` and list their constructor arguments in
    `_state_names`: those are the whole state (`state_dict`), since the position comes from the learner."""

    order = ORDER["scheduler"]
    _state_names: tuple[str, ...] = ()

    def before_batch(self, learn) -> None:
        if not learn.training:
            return
        groups = learn.opt.param_groups
        lrs, mom = self.hypers(learn.train_iter, learn.total_iter, learn.n_epoch)
        for group, lr in zip(groups, _per_group(lrs, groups, "lrs"), strict=True):
            group["lr"] = lr
            if mom is not None:
                set_mom(group, mom)

    def hypers(self, i: int, total_iter: int, n_epoch: int) -> tuple[list[float], float | None]:
        raise NotImplementedError

    def state_dict(self) -> dict:
        """The schedule's arguments: with the learner's `train_iter`, all it needs to resume mid-fit."""
        return {name: _copy(getattr(self, name)) for name in self._state_names}

    def load_state_dict(self, state: dict) -> None:
        """Take the arguments a `state_dict()` returned, checked as when built (bad ones change nothing)."""
        self.__dict__.update(vars(type(self)(**state)))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.state_dict().items())
        return f"{type(self).__name__}({args})"


def _copy(value):
    return list(value) if isinstance(value, (list, tuple)) else value


class OneCycleCallback(Scheduler):
    """fastai v2 one cycle over the whole fit: cosine warm-up from lr_max/div to lr_max over `pct_start`,
    then cosine annealing to lr_max/div_final; momentum through `moms = (m0, m1, m2)` the same way.

    At iteration i of N: `lr = one_cycle(i/N, lr_max/div, lr_max, lr_max/div_final, pct_start)`.
    """

    _state_names = ("lr_max", "div", "div_final", "pct_start", "moms")

    def __init__(self, lr_max, div=25.0, div_final=1e5, pct_start=0.25, moms=(0.95, 0.85, 0.95)):
        self.lr_max = _lrs(lr_max, "lr_max")
        self.div, self.div_final = _number(div, "div", 0.0), _number(div_final, "div_final", 0.0)
        self.pct_start = _number(pct_start, "pct_start", 0.0, 1.0)
        self.moms = None if moms is None else check_moms(moms, 3)

    def hypers(self, i, total_iter, n_epoch):
        pos, pct = i / total_iter, self.pct_start
        lrs = [schedules.one_cycle(pos, lr / self.div, lr, lr / self.div_final, pct) for lr in self.lr_max]
        return lrs, None if self.moms is None else schedules.one_cycle(pos, *self.moms, pct)


class SGDRCallback(Scheduler):
    """Cosine annealing with warm restarts (fastai 0.7 `fit(lr, n, cycle_len, cycle_mult)`): cycle c lasts
    `cycle_len * cycle_mult**c` epochs; at its iteration j of nb, `lr_j = lr/2 * (1 + cos(pi*j/nb))`."""

    _state_names = ("lrs", "cycle_len", "cycle_mult")

    def __init__(self, lrs, cycle_len: int = 1, cycle_mult: int = 1):
        self.lrs = _lrs(lrs, "lr")
        self.cycle_len, self.cycle_mult = _cycle_args(cycle_len, cycle_mult)

    def hypers(self, i, total_iter, n_epoch):
        bounds = schedules.cycle_bounds(n_epoch, self.cycle_len, self.cycle_mult, total_iter / n_epoch)
        _, j, nb = schedules.locate_cycle(i, bounds)
        return [schedules.sgdr_lr(j, nb, lr) for lr in self.lrs], None


class CircularLRCallback(Scheduler):
    """fastai 0.7's triangular cycles: `use_clr` (`cut_div`: up over `nb // cut_div` iterations, down over
    the rest) or `use_clr_beta` (`pct`: up and down over `100 - pct` percent, then down to lr/(div*100)).

    Lr moves between lr/div and lr: `lr * (1 + p*(div - 1)) / div`; momentum, with `moms=(max, min)`,
    `max - p*(max - min)`. Cycles of `cycle_len * cycle_mult**c` epochs, as for SGDR.
    """

    _state_names = ("lrs", "div", "cut_div", "pct", "moms", "cycle_len", "cycle_mult")

    def __init__(self, lrs, div, cut_div=None, pct=None, moms=None, cycle_len: int = 1, cycle_mult: int = 1):
        self.lrs = _lrs(lrs, "lr")
        if (cut_div is None) == (pct is None):
            raise ValueError("cut_div/pct: give exactly one (cut_div for use_clr, pct for use_clr_beta)")
        self.div = _number(div, "div", 0.0)
        self.cut_div = None if cut_div is None else _number(cut_div, "cut_div", 1.0, closed=(True, False))
        self.pct = None if pct is None else _number(pct, "pct", 0.0, 100.0, closed=(True, False))
        self.moms = None if moms is None else check_moms(moms, 2)
        self.cycle_len, self.cycle_mult = _cycle_args(cycle_len, cycle_mult)

    def hypers(self, i, total_iter, n_epoch):
        bounds = schedules.cycle_bounds(n_epoch, self.cycle_len, self.cycle_mult, total_iter / n_epoch)
        _, j, nb = schedules.locate_cycle(i, bounds)
        if self.cut_div is not None:
            p = schedules.clr_pct(j, nb, self.cut_div)
            lrs = [schedules.clr_lr(lr, p, self.div) for lr in self.lrs]
        else:
            lrs, p = [], None
            for lr in self.lrs:
                value, p = schedules.clr_beta(j, nb, lr, self.div, self.pct)
                lrs.append(value)
        if self.moms is None:
            return lrs, None
        return lrs, self.moms[0] if p is None else schedules.clr_mom(p, *self.moms)


class CyclicCallback(Scheduler):
    """Smith's cyclical learning rates, as `torch.optim.lr_scheduler.CyclicLR` with equal half cycles:
    triangle waves from `base_lr` up to `lr_max` and back, `step_size` iterations each way (or `n_cycles`
    cycles over the fit); `triangular2` halves the amplitude each cycle, `exp_range` scales it by
    `gamma**iteration`. `moms=(max_mom, min_mom)` moves momentum inversely."""

    _state_names = ("lr_max", "base_lr", "step_size", "n_cycles", "mode", "gamma", "moms")

    def __init__(self, lr_max, base_lr=None, step_size=None, n_cycles=None, mode="triangular", gamma=1.0, moms=None):
        self.lr_max = _lrs(lr_max, "lr_max")
        base = [lr / 4 for lr in self.lr_max] if base_lr is None else _lrs(base_lr, "base_lr")
        self.base_lr = base * len(self.lr_max) if len(base) == 1 else base
        if len(self.base_lr) != len(self.lr_max):
            raise ValueError(f"base_lr: need 1 or {len(self.lr_max)} values, got {len(base)}")
        if any(b > m for b, m in zip(self.base_lr, self.lr_max, strict=True)):
            raise ValueError(f"base_lr: must be <= lr_max in every group, got {self.base_lr} vs {self.lr_max}")
        if step_size is not None and n_cycles is not None:
            raise ValueError("step_size/n_cycles: give at most one (iterations per half cycle, or cycles)")
        self.step_size = None if step_size is None else _number(step_size, "step_size", 0.0)
        self.n_cycles = None if n_cycles is None else _number(n_cycles, "n_cycles", 0.0)
        if self.step_size is None and self.n_cycles is None:
            self.n_cycles = 1.0
        if mode not in _MODES:
            raise ValueError(f"mode: must be one of {', '.join(_MODES)}, got {mode!r}")
        self.mode, self.gamma = mode, _number(gamma, "gamma", 0.0, 1.0, closed=(False, True))
        self.moms = None if moms is None else check_moms(moms, 2)

    def half_cycle(self, total_iter: float) -> float:
        """Iterations per half cycle: `step_size`, or `total_iter / (2 * n_cycles)`."""
        return self.step_size if self.step_size is not None else total_iter / (2 * self.n_cycles)

    def hypers(self, i, total_iter, n_epoch):
        step = self.half_cycle(total_iter)
        pairs = zip(self.base_lr, self.lr_max, strict=True)
        lrs = [schedules.cyclic_lr(i, step, base, top, self.mode, self.gamma) for base, top in pairs]
        if self.moms is None:
            return lrs, None
        return lrs, schedules.cyclic_mom(i, step, *self.moms, self.mode, self.gamma)


# ---- plans: a fit call's arguments -> epochs, callbacks, cycle ends ------------------------------------
def fit_plan(lrs, n_cycle, cycle_len, cycle_mult, use_clr, use_clr_beta) -> Plan:
    """fastai 0.7 `fit`: `n_cycle` epochs at constant lr without `cycle_len`; else `n_cycle` cycles of
    `cycle_len * cycle_mult**c` epochs, SGDR by default, `use_clr` / `use_clr_beta` for the triangles."""
    check_positive_int(n_cycle, "n_cycle")
    check_positive_int(cycle_mult, "cycle_mult")  # a bad value is an error even where it has no effect
    if cycle_len is None:
        if use_clr is not None or use_clr_beta is not None:
            raise ValueError("use_clr/use_clr_beta: need cycle_len (the cycle length in epochs)")
        return Plan(n_cycle, [], list(range(1, n_cycle + 1)))
    cycle_len, mult = _cycle_args(cycle_len, cycle_mult)
    ends = [sum(cycle_len * mult**k for k in range(c + 1)) for c in range(n_cycle)]
    if use_clr is not None and use_clr_beta is not None:
        raise ValueError("use_clr/use_clr_beta: give at most one")
    if use_clr is not None:
        div, cut_div, moms = _clr_tuple(use_clr, "use_clr", "(div, cut_div)")
        cb = CircularLRCallback(lrs, div, cut_div=cut_div, moms=moms, cycle_len=cycle_len, cycle_mult=cycle_mult)
    elif use_clr_beta is not None:
        div, pct, moms = _clr_tuple(use_clr_beta, "use_clr_beta", "(div, pct)")
        cb = CircularLRCallback(lrs, div, pct=pct, moms=moms, cycle_len=cycle_len, cycle_mult=cycle_mult)
    else:
        cb = SGDRCallback(lrs, cycle_len, mult)
    return Plan(ends[-1], [cb], ends)


def _clr_tuple(value, name: str, shape: str):
    """`(div, x)` or `(div, x, max_mom, min_mom)` -> (div, x, moms or None), naming `name` in errors."""
    if not isinstance(value, (tuple, list)) or len(value) not in (2, 4):
        raise ValueError(f"{name}: expected {shape} or {shape[:-1]}, max_mom, min_mom), got {value!r}")
    div = _number(value[0], f"{name} div", 0.0)
    if name == "use_clr":
        second = _number(value[1], f"{name} cut_div", 1.0, closed=(True, False))
    else:
        second = _number(value[1], f"{name} pct", 0.0, 100.0, closed=(True, False))
    moms = check_moms(tuple(value[2:]), 2, f"{name} momenta") if len(value) == 4 else None
    return div, second, moms


def one_cycle_plan(n_epoch, lrs, div, div_final, pct_start, moms) -> Plan:
    """fastai v2 `fit_one_cycle`: one cycle over all `n_epoch` epochs."""
    check_positive_int(n_epoch, "n_epoch")
    return Plan(n_epoch, [OneCycleCallback(lrs, div, div_final, pct_start, moms)], [n_epoch])


def cyclic_plan(n_epoch, n_iter, lrs, base_lr, step_size, n_cycles, mode, gamma, moms, n_groups) -> Plan:
    """Smith's cyclical lrs over `n_epoch` epochs of `n_iter` iterations; cycles end where one completes."""
    check_positive_int(n_epoch, "n_epoch")
    base = None if base_lr is None else spread(base_lr, n_groups, "base_lr")
    cb = CyclicCallback(lrs, base, step_size, n_cycles, mode, gamma, moms)
    cycle_epochs = 2 * cb.step_size / n_iter if cb.step_size is not None else n_epoch / cb.n_cycles
    return Plan(n_epoch, [cb], cyclic_cycle_ends(n_epoch, cycle_epochs))


def cyclic_cycle_ends(n_epoch: int, cycle_epochs: float) -> list[int]:
    """The epochs (1-based) during which a whole cycle completes, or `[n_epoch]` when none does.

    >>> cyclic_cycle_ends(6, 2.0), cyclic_cycle_ends(5, 1.5), cyclic_cycle_ends(3, 4.0)
    ([2, 4, 6], [2, 3, 5], [3])
    """
    ends, k = [], 1
    while k * cycle_epochs <= n_epoch * (1 + 1e-12):
        ends.append(min(n_epoch, math.ceil(k * cycle_epochs * (1 - 1e-12))))
        k += 1
    return sorted(set(ends)) or [n_epoch]
