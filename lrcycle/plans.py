"""A fit call's arguments -> a `Schedule`: one function per fit form, shared by the Learner's fit methods,
`learn.preview` and `lrcycle.scheduler`, so what is previewed is what is trained.

Each plan checks its arguments (`checks.py`), spreads the lr over the layer groups once, and calls a builder
of `lrcycle.schedules`. Adding a fit form is a builder there, a plan here, a method on the Learner, a test.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import schedules
from .checks import (
    check_clr,
    check_cyclic,
    check_moms,
    check_number,
    check_positive_int,
    check_train_loader,
    check_wsd,
    spread,
)
from .schedules import Schedule

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
    n_cycles=None,
    mode="triangular",
    gamma=1.0,
    moms=None,
):
    """Smith's cyclical lrs between `base_lr` (default lr_max/4) and `lr_max`."""
    check_positive_int(n_epoch, "n_epoch")
    lrs = spread(lr_max, d.n_groups, "lr_max")
    base, step_size, n_cycles, gamma = check_cyclic(lrs, base_lr, step_size, n_cycles, mode, gamma)
    moms = None if moms is None else check_moms(moms, 2)
    return schedules.cyclic_schedule(lrs, n_epoch, base, step_size, n_cycles, mode, gamma, moms, d.steps_per_epoch)


def fit_flat_cos(d: PlanDefaults, n_epoch, lr=None, div_final=1e5, pct_start=0.75):
    """fastai v2 `fit_flat_cos`: flat at `lr` (default the learner's) for `pct_start`, then cosine down."""
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
