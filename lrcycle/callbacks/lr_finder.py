"""The learning-rate range test: train briefly at growing lrs, record the loss, put everything back."""

from __future__ import annotations

import math
from collections import namedtuple
from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np

from .. import suggest
from ..callback import ORDER, CancelFitException
from ..checks import check_positive_int
from ..hyper import set_lrs
from ..layers import spread
from ..snapshot import TrainingSnapshot
from .progress import ProgressCallback


class LRFinderCallback:
    """Sets every group's lr for iteration `i` (set before the step) of `num_it`.

    Exponential: `start * (end/start) ** (i/(num_it-1))`; linear: `start + (end-start) * i/(num_it-1)`,
    per layer group, so groups given as a slice keep their ratios. Low order: the lr is in place before
    anything else reads it in `before_batch`.
    """

    order = ORDER["finder"]

    def __init__(self, start_lrs: Sequence[float], end_lrs: Sequence[float], num_it: int, linear: bool = False):
        self.start_lrs, self.end_lrs, self.num_it, self.linear = (
            list(start_lrs),
            list(end_lrs),
            num_it,
            linear,
        )

    def lrs_at(self, i: int) -> list[float]:
        t = min(i, self.num_it - 1) / (self.num_it - 1)
        if self.linear:
            return [s + (e - s) * t for s, e in zip(self.start_lrs, self.end_lrs, strict=True)]
        return [s * (e / s) ** t for s, e in zip(self.start_lrs, self.end_lrs, strict=True)]

    def before_fit(self, learn) -> None:
        # Plan by optimizer steps, not batches: under gradient accumulation (whose before_fit ran first
        # and counted total_iter in steps) an epoch holds fewer steps than batches. The loop reads
        # n_epoch only after before_fit.
        steps_per_epoch = learn.total_iter / learn.n_epoch
        learn.n_epoch = math.ceil(self.num_it / steps_per_epoch)
        learn.total_iter = self.num_it  # so pct_train reads the test's progress

    def before_batch(self, learn) -> None:
        if learn.training:
            set_lrs(learn.opt, self.lrs_at(learn.train_iter))


class RangeTestStop:
    """Ends the test after `num_it` iterations or, with `stop_div`, at the first iteration whose smoothed
    loss exceeds `div_factor` x the lowest so far, or whose loss is not finite.

    It reads the Recorder's trace after the Recorder (order 50) has recorded the iteration, so the
    iteration that stops the test is the last one recorded, and the smoothed loss tested is the one plotted.
    """

    order = ORDER["tracker"]  # after the Recorder and the progress bar have seen the batch

    def __init__(self, num_it: int, stop_div: bool = True, div_factor: float = 4.0):
        self.num_it, self.stop_div, self.div_factor = num_it, stop_div, div_factor

    def before_fit(self, learn) -> None:
        self.best = math.inf

    def after_batch(self, learn) -> None:
        if not (learn.training and learn.stepped):
            return
        if self.stop_div:
            rec = learn.recorder
            loss, smooth = rec.losses[-1], rec.smooth_losses[-1]
            if not (math.isfinite(loss) and math.isfinite(smooth)):
                raise CancelFitException()
            self.best = min(self.best, smooth)
            # a ratio only means something against a positive loss
            if self.best > 0 and smooth > self.div_factor * self.best:
                raise CancelFitException()
        if learn.train_iter >= self.num_it:
            raise CancelFitException()


def lr_find(
    learn,
    start_lr=1e-7,
    end_lr=10,
    num_it: int = 100,
    stop_div: bool = True,
    linear: bool = False,
    suggest_funcs: Sequence[Callable] | None = None,
    show_plot: bool = False,
):
    """Run the range test on `learn` and return its suggestions as a named tuple (default first).

    Trains on training batches only for `num_it` iterations (`ceil(num_it / len(train_dl))` epochs),
    then puts the model, optimizer, freeze state, hyperparameters and RNGs back exactly as they were,
    on every exit (a normal end, an early stop, an exception, Ctrl-C). The recorder keeps the trace.
    """
    n_iter = learn._check_data()
    check_positive_int(num_it, "num_it", minimum=2)
    start_lrs, end_lrs = range_ends(start_lr, end_lr, learn.n_groups)
    if any(s >= e for s, e in zip(start_lrs, end_lrs, strict=True)):
        raise ValueError(f"start_lr/end_lr: start_lr must be below end_lr in every group, got {start_lr!r}, {end_lr!r}")
    for flag, value in (("stop_div", stop_div), ("linear", linear), ("show_plot", show_plot)):
        if not isinstance(value, (bool, np.bool_)):  # a string such as "no" would silently count as True
            raise TypeError(f"{flag}: expected True or False, got {value!r}")
    funcs = _check_funcs(suggest_funcs)
    cbs = [LRFinderCallback(start_lrs, end_lrs, num_it, linear), RangeTestStop(num_it, stop_div)]

    snapshot = TrainingSnapshot(learn.model, learn.opt)
    try:
        if learn.opt is None:
            learn.create_opt()
        set_lrs(learn.opt, start_lrs)
        # In a terminal the test prints nothing (an epoch table of a range test means little);
        # in a notebook its bar shows as usual.
        with learn.removed_cbs([cb for cb in learn.cbs if isinstance(cb, ProgressCallback) and not cb.in_notebook]):
            learn.fit_epochs(math.ceil(num_it / n_iter), cbs, with_valid=False)
    finally:
        snapshot.restore()
        learn.opt = snapshot.opt  # a learner that had no optimizer ends without one
        del snapshot

    rec = learn.recorder
    values = [func(rec.lrs, rec.smooth_losses) for func in funcs]
    rec.suggestions = {func.__name__: value for func, value in zip(funcs, values, strict=True)}
    if show_plot:
        rec.plot()
    return _result_type(tuple(func.__name__ for func in funcs))(*values)


def range_ends(start_lr, end_lr, n_groups: int) -> tuple[list[float], list[float]]:
    """Per-group first and last lrs of the test.

    Two floats: every group the same. A slice or sequence on one side and a float on the other: the float is
    the last group's, and every group moves by that group's factor, keeping the ratios the slice gives
    (`lr_find(start_lr=slice(1e-9, 1e-7))` ends at `[0.1, 1, 10]` on three groups). Both per group: as given.
    """
    start_is_float, end_is_float = _is_number(start_lr), _is_number(end_lr)
    start_lrs = spread(start_lr, n_groups, "start_lr") if not start_is_float or end_is_float else None
    end_lrs = spread(end_lr, n_groups, "end_lr") if not end_is_float or start_is_float else None
    if start_lrs is None:
        start_lrs = [e * float(start_lr) / end_lrs[-1] for e in end_lrs]
        spread(start_lrs, n_groups, "start_lr")
    if end_lrs is None:
        end_lrs = [s * float(end_lr) / start_lrs[-1] for s in start_lrs]
        spread(end_lrs, n_groups, "end_lr")
    return start_lrs, end_lrs


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, (bool, np.bool_))


def _check_funcs(suggest_funcs) -> list[Callable]:
    if suggest_funcs is None:
        return list(suggest.DEFAULT_FUNCS)
    funcs = [suggest_funcs] if callable(suggest_funcs) else list(suggest_funcs)
    if not funcs or not all(callable(f) for f in funcs):
        raise TypeError(
            f"suggest_funcs: expected a non-empty sequence of functions (lrs, losses), got {suggest_funcs!r}"
        )
    names = [getattr(f, "__name__", "") for f in funcs]
    if not all(n.isidentifier() and not n.startswith("_") for n in names) or len(set(names)) != len(names):
        raise ValueError(f"suggest_funcs: each function needs a distinct public name (a field name), got {names}")
    return funcs


@lru_cache(maxsize=64)
def _result_type(names: tuple[str, ...]):
    """One named-tuple class per set of suggestion names, made once (so repeated tests add no classes)."""
    return namedtuple("SuggestedLRs", names)
