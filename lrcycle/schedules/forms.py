"""A fit call's arguments -> a `Schedule`: one function per fit form, shared by the Learner's fit methods,
`learn.preview` and `lrcycle.scheduler`, so what is previewed is what is trained.

Each plan checks its arguments (the checks below and `validate.py`), spreads the lr over the layer groups
once, and calls a builder of `schedule.py`. Adding a fit form is a builder there, a plan here, a method on the
Learner, a test. The defaults of each form live here.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from ..validate import (
    check_fraction,
    check_moms,
    check_number,
    check_positive_int,
    check_train_loader,
    renamed,
    spread,
)
from . import schedule as schedules
from .schedule import Schedule


# ---- checks of the fit forms' own arguments ------------------------------------------------------------
def check_argument_order(method: str, count, lr, count_name: str, lr_name: str) -> None:
    """The two orders of a fit's first arguments: fastai 0.7's `fit(lr, n_cycle)`, kept by `fit`, and fastai
    v2's `fit_one_cycle(n_epoch, lr_max)`, kept by every other fit form. A count below 1 that is not a whole
    number (an lr) beside an integer lr (or none, in the v2 forms) is the other order: the error names both."""
    count_is_lr = isinstance(count, numbers.Real) and not isinstance(count, (bool, np.bool_, numbers.Integral))
    count_is_lr = count_is_lr and 0 < count < 1
    lr_is_count = isinstance(lr, numbers.Integral) and not isinstance(lr, (bool, np.bool_))
    if not count_is_lr or not (lr_is_count or (lr is None and method != "fit")):
        return
    if method == "fit":
        fix = f"learn.fit({count!r}, {lr!r}) for {lr} epochs at lr {count!r}, or learn.fit_one_cycle({lr!r}, {count!r})"
    else:
        fix = f"learn.{method}({lr!r}, {count!r})" if lr is not None else f"learn.{method}(n_epoch, lr_max={count!r})"
    raise ValueError(
        f"{count_name}/{lr_name}: got {count_name}={count!r} and {lr_name}={lr!r}, the arguments in the other "
        f"order? fit takes fastai 0.7's order, fit(lr, n_cycle); fit_one_cycle, fit_cyclic, fit_flat_cos and "
        f"fit_wsd take fastai v2's, fit_one_cycle(n_epoch, lr_max). Write {fix}"
    )


def check_clr(value, name: str) -> tuple[float, float, tuple[float, float] | None]:
    """`use_clr=(div, cut_div[, max_mom, min_mom])` or `use_clr_beta=(div, pct[, ...])` -> (div, x, moms)."""
    shape = "(div, cut_div)" if name == "use_clr" else "(div, pct)"
    if not isinstance(value, (tuple, list)) or len(value) not in (2, 4):
        raise ValueError(f"{name}: expected {shape} or {shape[:-1]}, max_mom, min_mom), got {value!r}")
    div = check_number(value[0], f"{name} div", 0.0)
    if name == "use_clr":
        second = check_number(value[1], f"{name} cut_div", 1.0, closed=(True, False))
    else:
        second = check_number(value[1], f"{name} pct", 0.0, 100.0, closed=(True, False))
    moms = check_moms(tuple(value[2:]), 2, f"{name} momenta") if len(value) == 4 else None
    return div, second, moms


CYCLIC_MODES = ("triangular", "triangular2", "exp_range")


def check_cyclic(lrs, base_lr, step_size, n_cycles, mode, gamma):
    """`fit_cyclic`'s arguments -> (base_lrs, step_size, n_cycles, gamma); `base_lr` defaults to lr_max/4.
    (The call's `n_cycle`; inside, the schedule's spec keeps the name `n_cycles` its checkpoints were saved with.)"""
    base = [lr / 4 for lr in lrs] if base_lr is None else spread(base_lr, len(lrs), "base_lr")
    if any(b > m for b, m in zip(base, lrs, strict=True)):
        raise ValueError(f"base_lr: must be <= lr_max in every group, got {base} vs {lrs}")
    if step_size is not None and n_cycles is not None:
        raise ValueError("step_size/n_cycle: give at most one (iterations per half cycle, or cycles)")
    step_size = None if step_size is None else check_number(step_size, "step_size", 0.0)
    n_cycles = None if n_cycles is None else check_number(n_cycles, "n_cycle", 0.0)
    if step_size is None and n_cycles is None:
        n_cycles = 1.0
    if mode not in CYCLIC_MODES:
        raise ValueError(f"mode: must be one of {', '.join(CYCLIC_MODES)}, got {mode!r}")
    return base, step_size, n_cycles, check_number(gamma, "gamma", 0.0, 1.0, closed=(False, True))


WSD_SHAPES = ("linear", "cos", "1-sqrt")


def check_wsd(n_steps, steps_per_epoch, warmup, decay, decay_shape, div, div_final, warmup_epochs, decay_epochs):
    """`fit_wsd`'s phases -> (warmup_steps, decay_steps, decay_shape, div, div_final).

    A phase is a fraction of the fit (`warmup`, `decay`, in [0, 1], summing to at most 1) or, when given, a
    number of epochs (`warmup_epochs`, `decay_epochs`, which replace the fraction), rounded to whole steps.
    `div_final` may be `math.inf`: the decay then ends at exactly 0.
    """
    n_epoch = n_steps / steps_per_epoch
    if warmup_epochs is None:
        warmup_steps = round(check_fraction(warmup, "warmup") * n_steps)
    else:
        warmup_steps = round(check_number(warmup_epochs, "warmup_epochs", 0.0, n_epoch, (True, True)) * steps_per_epoch)
    if decay_epochs is None:
        decay_steps = round(check_fraction(decay, "decay") * n_steps)
        fractions = check_fraction(warmup, "warmup") + decay if warmup_epochs is None else 0.0
        if fractions > 1 + 1e-12:
            raise ValueError(f"warmup/decay: warmup + decay must be <= 1 (shares of the fit), got {warmup} + {decay}")
    else:
        decay_steps = round(check_number(decay_epochs, "decay_epochs", 0.0, n_epoch, (True, True)) * steps_per_epoch)
    if warmup_steps + decay_steps > n_steps:
        if warmup_epochs is None and decay_epochs is None:
            warmup_steps = n_steps - decay_steps  # both shares rounded up past the end: the warmup gives a step
        else:
            raise ValueError(
                f"warmup/decay: the warmup ({warmup_steps} steps) and decay ({decay_steps}) exceed the fit ({n_steps})"
            )
    if not isinstance(decay_shape, str) or decay_shape not in WSD_SHAPES:
        raise ValueError(f"decay_shape: must be one of {', '.join(map(repr, WSD_SHAPES))}, got {decay_shape!r}")
    return warmup_steps, decay_steps, decay_shape, _div_or_inf(div, "div"), _div_or_inf(div_final, "div_final")


def _div_or_inf(value, name: str) -> float:
    """A divisor > 0, or `math.inf` (the phase then starts or ends at exactly 0)."""
    return math.inf if isinstance(value, float) and value == math.inf else check_number(value, name, 0.0)


# What a fit call takes besides its schedule's arguments (the Learner's `_fit` reads them).
FIT_ARGS = ("wd", "wds", "cbs", "cycle_save_name", "best_save_name", "start_epoch", "resume")


@dataclass(frozen=True)
class PlanDefaults:
    """What a plan reads besides the call: the number of layer groups, the lr and momenta used when the call
    gives none, and the optimizer steps an epoch takes."""

    n_groups: int
    lr: object
    moms: tuple
    steps_per_epoch: int


def steps_per_epoch(train, cbs) -> int:
    """Optimizer steps an epoch of `train` takes: one per batch, unless a callback (gradient accumulation)
    says otherwise through a `steps_per_epoch(n_batches)` method."""
    steps = check_train_loader(train)
    for cb in cbs:
        if hasattr(cb, "steps_per_epoch"):
            steps = cb.steps_per_epoch(steps)
    return steps


def fit(d: PlanDefaults, lr=None, n_cycle=1, cycle_len=None, cycle_mult=1, use_clr=None, use_clr_beta=None):
    """fastai 0.7 `fit`: `n_cycle` epochs at constant lr; with `cycle_len`, `n_cycle` cycles of
    `cycle_len * cycle_mult**c` epochs, SGDR (with 0.7's warm-up) or `use_clr` / `use_clr_beta`."""
    check_argument_order("fit", n_cycle, lr, "n_cycle", "lr")
    lrs = spread(d.lr if lr is None else lr, d.n_groups, "lr")
    check_positive_int(n_cycle, "n_cycle")
    check_positive_int(cycle_mult, "cycle_mult")
    if cycle_len is None:
        if use_clr is not None or use_clr_beta is not None:
            raise ValueError("use_clr/use_clr_beta: need cycle_len (the cycle length in epochs)")
        if cycle_mult != 1:
            raise ValueError(f"cycle_mult: needs cycle_len (the first cycle's length in epochs), got {cycle_mult}")
        return schedules.constant_schedule(lrs, n_cycle, d.steps_per_epoch)
    check_positive_int(cycle_len, "cycle_len")
    if use_clr is not None and use_clr_beta is not None:
        raise ValueError("use_clr/use_clr_beta: give at most one")
    cycles = (lrs, n_cycle, cycle_len, cycle_mult)
    if use_clr is not None:
        return schedules.clr_schedule(*cycles, *check_clr(use_clr, "use_clr"), d.steps_per_epoch)
    if use_clr_beta is not None:
        return schedules.clr_beta_schedule(*cycles, *check_clr(use_clr_beta, "use_clr_beta"), d.steps_per_epoch)
    return schedules.sgdr_schedule(*cycles, d.steps_per_epoch)


def fit_one_cycle(d: PlanDefaults, n_epoch, lr_max=None, div=25.0, div_final=1e5, pct_start=0.25, moms=None):
    """fastai v2 one cycle over all `n_epoch` epochs; `lr_max` and `moms` default to the learner's."""
    check_argument_order("fit_one_cycle", n_epoch, lr_max, "n_epoch", "lr_max")
    check_positive_int(n_epoch, "n_epoch")
    lrs = spread(d.lr if lr_max is None else lr_max, d.n_groups, "lr_max")
    div, div_final = check_number(div, "div", 0.0), check_number(div_final, "div_final", 0.0)
    pct_start = check_number(pct_start, "pct_start", 0.0, 1.0, closed=(True, True))  # 0: pure anneal, 1: warm-up
    moms = check_moms(d.moms if moms is None else moms, 3)
    return schedules.one_cycle_schedule(lrs, n_epoch, div, div_final, pct_start, moms, d.steps_per_epoch)


def fit_cyclic(
    d: PlanDefaults,
    n_epoch,
    lr_max,
    base_lr=None,
    step_size=None,
    n_cycle=None,
    mode="triangular",
    gamma=1.0,
    moms=None,
    n_cycles=None,
):
    """Smith's cyclical lrs between `base_lr` (default lr_max/4) and `lr_max`, `n_cycle` cycles over the fit or
    `step_size` steps a half (`n_cycles`: the old spelling of `n_cycle`)."""
    n_cycles = renamed(n_cycle, n_cycles, "n_cycle", "n_cycles")
    check_argument_order("fit_cyclic", n_epoch, lr_max, "n_epoch", "lr_max")
    check_positive_int(n_epoch, "n_epoch")
    lrs = spread(lr_max, d.n_groups, "lr_max")
    base, step_size, n_cycles, gamma = check_cyclic(lrs, base_lr, step_size, n_cycles, mode, gamma)
    moms = None if moms is None else check_moms(moms, 2)
    return schedules.cyclic_schedule(lrs, n_epoch, base, step_size, n_cycles, mode, gamma, moms, d.steps_per_epoch)


def fit_flat_cos(d: PlanDefaults, n_epoch, lr=None, div_final=1e5, pct_start=0.75):
    """fastai v2 `fit_flat_cos`: flat at `lr` (default the learner's) for `pct_start`, then cosine down."""
    check_argument_order("fit_flat_cos", n_epoch, lr, "n_epoch", "lr")
    check_positive_int(n_epoch, "n_epoch")
    lrs = spread(d.lr if lr is None else lr, d.n_groups, "lr")
    div_final = check_number(div_final, "div_final", 0.0)
    pct_start = check_number(pct_start, "pct_start", 0.0, 1.0, closed=(True, False))
    return schedules.flat_cos_schedule(lrs, n_epoch, div_final, pct_start, d.steps_per_epoch)


def fit_wsd(
    d: PlanDefaults,
    n_epoch,
    lr_max=None,
    warmup=0.05,
    decay=0.2,
    decay_shape="1-sqrt",
    div=25.0,
    div_final=1e5,
    moms=None,
    warmup_epochs=None,
    decay_epochs=None,
):
    """Warmup-stable-decay: linear warmup from lr_max/div (0 with `div=math.inf`, as transformers'
    `get_wsd_schedule`) over `warmup` of the fit, flat at `lr_max` (default
    the learner's), then `decay_shape` ('linear', 'cos', '1-sqrt') down to lr_max/div_final over `decay`.

    `warmup_epochs` / `decay_epochs` give a phase in epochs instead of a share. `moms=None` leaves momentum
    (or betas[0]) as the optimizer has it, as WSD recipes do; `moms=(start, stable, end)` follows the phases.
    Linear decay to zero: `warmup=w, decay=1 - w, decay_shape='linear', div_final=math.inf`.
    """
    check_argument_order("fit_wsd", n_epoch, lr_max, "n_epoch", "lr_max")
    steps = d.steps_per_epoch * check_positive_int(n_epoch, "n_epoch")
    lrs = spread(d.lr if lr_max is None else lr_max, d.n_groups, "lr_max")
    phases = (warmup, decay, decay_shape, div, div_final, warmup_epochs, decay_epochs)
    phases = check_wsd(steps, d.steps_per_epoch, *phases)
    moms = None if moms is None else check_moms(moms, 3)
    return schedules.wsd_schedule(lrs, n_epoch, *phases, moms, d.steps_per_epoch)


def fine_tune_phases(epochs, base_lr, freeze_epochs, lr_mult, pct_start, div, kwargs: dict) -> list[tuple]:
    """fastai 2.8's `fine_tune` as its `fit_one_cycle` calls, `[(freeze_to, args, kwargs), ...]`: frozen (all
    groups but the last), `fit_one_cycle(freeze_epochs, slice(base_lr), pct_start=0.99, **kwargs)`; then with
    `base_lr` halved, unfrozen, `fit_one_cycle(epochs, slice(base_lr/lr_mult, base_lr), pct_start=pct_start,
    div=div, **kwargs)`. `freeze_epochs=0` leaves out the frozen phase."""
    check_positive_int(epochs, "epochs")
    freeze_epochs = check_positive_int(freeze_epochs, "freeze_epochs", minimum=0)
    base_lr = check_number(base_lr, "base_lr", 0.0)
    lr_mult = check_number(lr_mult, "lr_mult", 0.0)
    frozen = (-1, (freeze_epochs, slice(base_lr)), {**kwargs, "pct_start": 0.99})
    base_lr /= 2
    unfrozen = (0, (epochs, slice(base_lr / lr_mult, base_lr)), {**kwargs, "pct_start": pct_start, "div": div})
    return [frozen, unfrozen] if freeze_epochs else [unfrozen]


PLANS = {
    "fit": fit,
    "fit_one_cycle": fit_one_cycle,
    "fit_cyclic": fit_cyclic,
    "fit_flat_cos": fit_flat_cos,
    "fit_wsd": fit_wsd,
}


def plan_call(defaults: PlanDefaults, method, args: tuple, kwargs: dict) -> tuple[Schedule, dict]:
    """`(schedule, fit_kwargs)` for `learn.<method>(*args, **kwargs)`: the schedule the call would run, and
    the arguments it takes besides (`FIT_ARGS`)."""
    name = getattr(method, "__name__", method)
    if name not in PLANS:
        raise ValueError(f"method: must be one of {', '.join(PLANS)}, got {method!r}")
    kwargs = dict(kwargs)
    fit_kwargs = {k: kwargs.pop(k) for k in FIT_ARGS if k in kwargs}
    return PLANS[name](defaults, *args, **kwargs), fit_kwargs
