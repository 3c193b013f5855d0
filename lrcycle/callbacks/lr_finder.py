"""The range test's two callbacks: the lr sweep, and the stop on divergence (the driver is `range_test.py`)."""

from __future__ import annotations

import math

from ..callback import ORDER, Callback, CancelFitException
from .param_scheduler import ParamScheduler


class LRFinderCallback(ParamScheduler):
    """Applies the range test's sweep (`schedules.sweep_schedule`): every group's lr for step `i` of `num_it`,
    exponential `start * (end/start) ** (i/(num_it-1))` or linear. Low order: the lr is in place before
    anything else reads it in `before_batch`. `total_iter` is the sweep's length, so `pct_train` reads the
    test's progress.
    """

    order = ORDER["finder"]

    def before_fit(self, learn) -> None:
        learn.total_iter = self.schedule.n_steps


class RangeTestStop(Callback):
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
            # the one place that reads every iteration's loss: it must, to stop in time
            smooth = learn.recorder.latest_smooth_loss()
            # a loss that is not finite makes its smoothed loss not finite too (the average holds it), so one
            # test covers both: `avg = beta*avg + (1-beta)*loss` is inf or NaN with it, and so is `avg / (1-beta**n)`
            if not math.isfinite(smooth):
                raise CancelFitException()
            if smooth < self.best:
                self.best = smooth
            # a ratio only means something against a positive loss
            if self.best > 0 and smooth > self.div_factor * self.best:
                raise CancelFitException()
        if learn.train_iter >= self.num_it:
            raise CancelFitException()
