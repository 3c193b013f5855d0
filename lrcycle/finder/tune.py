"""`learn.lr_tune`: short trial fits around the range test's estimate, each restored, to pick the lr.

One range test reads the lr off one curve, and on the benchmark (`benchmarks/suggest_quality.py`) no rule
that reads one curve comes within 0.5 accuracy points of a grid search on every task. `lr_tune` pays for more:
it runs the fit you plan at a few multiples of the estimate, each compressed (every epoch cut to `budget` of
its optimizer steps, the schedule planned on those shorter epochs, so it keeps the planned shape), scores each
trial on the validation set, and returns the best trial's lr times `margin`. A compressed fit survives an lr
that the full fit does not, so the full fit's best lr sits below the best trial's; `margin` backs off by that.
Everything is put back after each trial and at the end, as `lr_find` does.

Cost: `len(factors) * budget` of the planned fit's training steps (about 1.0x with the defaults), one
validation per trial, and one range test when no `lr` is given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from ..callback import ORDER, Callback, CancelTrainException, CancelValidException
from ..interrupt import guarded
from ..recorder import auto_mode, metric_name
from ..schedules import forms
from ..state.snapshot import restore_snapshot, take_snapshot
from ..validate import check_number, check_valid_loader

if TYPE_CHECKING:
    import pandas as pd

# The defaults were chosen on every task and seed of benchmarks/suggest_quality.py at once (`--tune-fit`, by
# worst-task regret, then cost, then mean regret); docs/benchmarks.md's "Suggestion quality" has the figures.
TUNE_FACTORS = (0.5, 1.0, 2.0)  # multiples of the estimate tried
TUNE_BUDGET = 0.34  # share of each epoch's optimizer steps a trial runs
TUNE_MARGIN = 2**-0.5  # the best trial's lr times this is the answer

TUNABLE = {"fit": 0, "fit_one_cycle": 1, "fit_flat_cos": 1, "fit_wsd": 1}
"""Fit forms whose lr may be left out of the call (the learner's `lr` then plans it, so a trial can set it),
and the lr's position among their arguments."""


class TrialEpochs(Callback):
    """Cuts every epoch of a fit to its first `steps` optimizer steps, and skips validation.

    The fit plans its schedule on epochs of `steps` steps (`steps_per_epoch`), so the compressed fit runs the
    planned schedule's whole shape in `steps` steps an epoch. The cut falls before the first batch of the next
    step, so an accumulated group is never left half done.
    """

    order = ORDER["finder"]

    def __init__(self, steps: int):
        self.steps, self.epoch_start = steps, 0

    def steps_per_epoch(self, steps: int) -> int:
        return min(steps, self.steps)

    def before_train(self, learn) -> None:
        self.epoch_start = learn.train_iter

    def before_batch(self, learn) -> None:
        if learn.training and learn.train_iter - self.epoch_start >= self.steps:
            raise CancelTrainException

    def before_validate(self, learn) -> None:
        raise CancelValidException  # the trial is scored once, at its end


@dataclass
class TuneResult:
    """`lr`: the chosen lr (the best trial's times `margin`); `estimate`: the lr the factors multiply; `trials`:
    one row per candidate (`factor, lr, valid_loss`, one column per metric); `cost`: the trials' training steps
    as a share of the planned fit's; `range_test`: the `lr_find` result the estimate came from (or None)."""

    lr: float
    estimate: float
    monitor: str
    trials: pd.DataFrame
    cost: float
    range_test: object = field(default=None, repr=False)


def lr_tune(learn, method, args, kwargs, lr=None, factors=TUNE_FACTORS, budget=TUNE_BUDGET, margin=TUNE_MARGIN,
            monitor="valid_loss") -> TuneResult:  # fmt: skip
    """The lr for `learn.<method>(*args, **kwargs)` (its lr left out): `margin` times the best trial's lr.

    The estimate is `lr`, or the default suggestion of `learn.lr_find()`. A trial runs the call at
    `factor * estimate` (one lr for every layer group) with every epoch cut to `budget` of its steps
    (`TrialEpochs`), then `validate()`; `monitor` ('valid_loss' or a metric's name; lower is better for
    names with 'loss' or 'error' in them) ranks the trials, a NaN last. The call's arguments are checked
    first; model, optimizer, RNGs, grad scalers and the learner's lr are put back after every trial, on
    every exit.
    """
    name = check_tunable(method, args, kwargs)
    forms.plan_call(learn.plan_defaults(kwargs.get("cbs")), name, args, kwargs)  # the call's own checks, up front
    check_valid_loader(learn.dls.valid)
    factors = check_factors(factors)
    budget = check_number(budget, "budget", 0.0, 1.0, closed=(False, True))
    margin = check_number(margin, "margin", 0.0)
    higher_is_better = check_monitor(learn, monitor)
    find_result = None
    if lr is None:
        find_result = learn.lr_find()
        lr = float(find_result[0])
        if not math.isfinite(lr):
            raise ValueError("lr: lr_find gave no suggestion to start from (NaN); pass lr= yourself")
    lr = check_number(lr, "lr", 0.0)
    steps = learn.steps_per_epoch()
    trial_steps = max(1, math.ceil(budget * steps))
    rows = []
    with guarded(partial(take_state, learn), partial(restore_state, learn)) as state:
        for factor in factors:
            scores = run_trial(learn, name, args, kwargs, lr * factor, trial_steps)
            rows.append({"factor": factor, "lr": lr * factor, **scores})
            restore_state(learn, state)
    import pandas as pd  # here, not at import: pandas costs `import lrcycle` about 0.15 s

    trials = pd.DataFrame(rows)
    ranked = trials[monitor].fillna(-math.inf if higher_is_better else math.inf)
    best = ranked.idxmax() if higher_is_better else ranked.idxmin()
    cost = len(factors) * trial_steps / steps
    return TuneResult(float(trials["lr"][best]) * margin, lr, monitor, trials, cost, find_result)


def run_trial(learn, name, args, kwargs, lr, steps) -> dict:
    """One compressed fit at `lr`, then its validation scores by name (the caller restores)."""
    learn.lr = lr
    cbs = [*(kwargs.get("cbs") or []), TrialEpochs(steps)]
    getattr(learn, name)(*args, **{**kwargs, "cbs": cbs})
    values = learn.validate()
    return dict(zip(["valid_loss", *learn.recorder.metric_names], values, strict=True))


def take_state(learn):
    """What a trial changes: everything a range test puts back, and the learner's default lr."""
    return take_snapshot(learn), learn.lr


def restore_state(learn, state) -> None:
    snapshot, lr = state
    restore_snapshot(learn, snapshot)
    learn.lr = lr


def check_tunable(method, args, kwargs) -> str:
    name = getattr(method, "__name__", method)
    if name not in TUNABLE:
        raise ValueError(f"method: lr_tune tunes one of {', '.join(TUNABLE)}, got {method!r}")
    lr_names = {"lr", "lr_max"} & set(kwargs)
    if lr_names:
        raise ValueError(f"{lr_names.pop()}: lr_tune chooses the lr; leave it out (pass lr= for the estimate)")
    positional_lr = TUNABLE[name]
    if len(args) > positional_lr and args[positional_lr] is not None:
        raise ValueError(f"args: {name}'s lr (argument {positional_lr + 1}) is what lr_tune chooses; pass None there")
    saving = [k for k in ("cycle_save_name", "best_save_name", "resume") if kwargs.get(k) is not None]
    if saving:
        raise ValueError(f"{saving[0]}: trials are thrown away; save or resume in the real fit, not in lr_tune")
    return name


def check_factors(factors) -> tuple[float, ...]:
    try:
        values = tuple(float(f) for f in factors)
    except (TypeError, ValueError):
        raise TypeError(f"factors: expected a sequence of positive numbers, got {factors!r}") from None
    if not values or not all(math.isfinite(f) and f > 0 for f in values):
        raise ValueError(f"factors: expected a non-empty sequence of positive numbers, got {factors!r}")
    return values


def check_monitor(learn, monitor) -> bool:
    """Whether a higher `monitor` is better, as the trackers' `mode='auto'` decides."""
    names = [metric_name(m) for m in learn.metrics]
    if monitor != "valid_loss" and monitor not in names:
        raise ValueError(f"monitor: expected 'valid_loss' or one of the metrics {names}, got {monitor!r}")
    return auto_mode(monitor) == "max"
