"""The range test driver: snapshot, sweep, stop, restore. Used by `learn.lr_find` (and any other entry point).

The test trains on training batches at growing lrs (`schedules.sweep_schedule`), stops on divergence
(`RangeTestStop`), then puts the model, optimizer, freeze state, hyperparameters and RNGs back exactly as
they were, on every exit. It returns the suggestions together with the curve they were read from.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections import namedtuple
from collections.abc import Callable
from functools import lru_cache, partial
from typing import TYPE_CHECKING

import numpy as np
import torch

from .. import plots
from ..callback import check_fit_start
from ..callbacks.loss_check import NonFiniteLossCheck
from ..callbacks.lr_finder import LRFinderCallback, RangeTestStop
from ..callbacks.param_scheduler import ParamScheduler
from ..callbacks.progress import ProgressCallback
from ..interrupt import guarded
from ..optim import set_lrs
from ..schedules import sweep_schedule
from ..state.snapshot import restore_snapshot, take_snapshot
from ..validate import check_flag, check_positive_int, spread, warn_user
from . import suggest

if TYPE_CHECKING:
    import pandas as pd


def run_range_test(learn, start_lr, end_lr, num_it, stop_div, linear, suggest_funcs, show_plot=False, n_repeats=1):
    """Run the test on `learn` and return its suggestions (default first) with the recorded curve.

    Trains for `num_it` optimizer steps (`ceil(num_it / steps_per_epoch)` epochs), then restores everything
    on every exit (a normal end, an early stop, an exception, Ctrl-C). With `n_repeats=k` it runs k tests from
    the same start on k batch orders (torch's RNG reseeded for each after the first), and reads the
    suggestions from their averaged curve (`suggest.average_curves`); the recorder keeps the last test's trace.
    `n_repeats="auto"` runs one test (the one `n_repeats=1` runs), and `AUTO_REPEATS` in all when the default
    finds no clear answer on it (it warns or gives NaN): averaging k tests divides the loss's noise by sqrt(k).
    """
    check_positive_int(num_it, "num_it", minimum=2)
    check_repeats(n_repeats)
    start_lrs, end_lrs = range_ends(start_lr, end_lr, learn.n_groups)
    if any(s >= e for s, e in zip(start_lrs, end_lrs, strict=True)):
        raise ValueError(f"start_lr/end_lr: start_lr must be below end_lr in every group, got {start_lr!r}, {end_lr!r}")
    check_flag(stop_div, "stop_div")
    check_flag(linear, "linear")
    check_flag(show_plot, "show_plot")
    funcs = check_suggest_funcs(suggest_funcs)
    schedule = sweep_schedule(start_lrs, end_lrs, num_it, learn.steps_per_epoch(), linear)
    # the learner's progress bar gives way to one bar over `num_it`; a loss that diverges is the test's answer,
    # not a mistake to warn about; a scheduler callback of the learner's sits out (the sweep sets the lrs)
    quiet = [cb for cb in learn.cbs if isinstance(cb, (ProgressCallback, NonFiniteLossCheck, ParamScheduler))]
    bars = [cb.sweep_bar(num_it) for cb in quiet if isinstance(cb, ProgressCallback)][:1]
    cbs = check_fit_start(learn, [LRFinderCallback(schedule), RangeTestStop(num_it, stop_div), *bars], quiet)

    # snapshot and restore are critical sections: Ctrl-C waits for them (interrupt.guarded)
    rec, curves = learn.recorder, []
    with guarded(partial(take_snapshot, learn), partial(restore_snapshot, learn)) as snapshot:
        # drawn inside: the RNG is restored too; "auto" draws it only when it needs more tests
        seed = int(torch.randint(2**31, ())) if n_repeats not in (1, "auto") else 0
        planned = 1 if n_repeats == "auto" else n_repeats
        while len(curves) < planned:
            if curves:  # the same start, another batch order
                restore_snapshot(learn, snapshot)
                torch.manual_seed(seed + len(curves))
            if learn.opt is None:
                learn.create_opt()
            set_lrs(learn.opt, start_lrs)
            with learn.removed_cbs(quiet):
                learn.fit_epochs(schedule.n_epoch, cbs, with_valid=False)
            curves.append((list(rec.lrs), list(rec.losses)))
            if n_repeats == "auto" and len(curves) == 1 and not clear_answer(funcs[0], *curves[0]):
                planned, seed = AUTO_REPEATS, int(torch.randint(2**31, ()))

    lrs, losses, smooth_losses = rec.lrs, rec.losses, rec.smooth_losses
    if len(curves) > 1:
        lrs, losses, smooth_losses = (list(map(float, a)) for a in suggest.average_curves(curves))
    values = suggestion_values(funcs, lrs, smooth_losses)
    rec.suggestions = {func.__name__: value for func, value in zip(funcs, values, strict=True)}
    result = suggestion_result(funcs, values, lrs, losses, smooth_losses)
    if len(curves) > 1:  # at once: the picks of the repeats are the band, and their disagreement warns now
        result.suggestion_band = suggest.suggestion_band(funcs[0], curves, lrs, losses, smooth_losses)
    else:  # read from the one curve when first asked for (`cliff_band` costs about as much as the six rules)
        result.band_from(funcs[0], curves)
    rec.lr_find_result = result  # `recorder.plot()` draws it, after later fits too
    if show_plot:
        result.plot()
    return result


AUTO_REPEATS = 3  # tests in all when n_repeats="auto" finds the first one unclear


def check_repeats(n_repeats) -> None:
    if isinstance(n_repeats, str) and n_repeats == "auto":
        return
    if isinstance(n_repeats, (bool, np.bool_)) or not isinstance(n_repeats, numbers.Integral) or n_repeats < 1:
        raise ValueError(f'n_repeats: expected a positive integer or "auto", got {n_repeats!r}')


def clear_answer(default, lrs, losses) -> bool:
    """Whether `default` reads a finite lr from one test's curve without a `SuggestionWarning`."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", suggest.SuggestionWarning)
        value = default(lrs, list(map(float, suggest.smooth(losses))))
    return found(value) and not any(issubclass(w.category, suggest.SuggestionWarning) for w in caught)


def suggestion_values(funcs, lrs, smooth_losses) -> list:
    """Each function's suggestion, the default first. The default's warnings reach the user (pointed at their
    call); another function's `SuggestionWarning` only when the default found nothing: otherwise its NaN in the
    result says enough."""
    values, shown = [], []
    with warnings.catch_warnings(record=True) as caught:
        for func in funcs:
            warnings.simplefilter("always")  # first again for each: no filter an earlier function set hides a warning
            seen = len(caught)
            values.append(check_suggestion(func, func(lrs, smooth_losses)))
            quiet = len(values) > 1 and found(values[0])
            shown += [w for w in caught[seen:] if not (quiet and issubclass(w.category, suggest.SuggestionWarning))]
    for w in shown:
        warn_user(str(w.message), w.category)
    return values


def found(value) -> bool:
    """Whether a suggestion (an lr or a `(low, high)` pair) holds a finite lr."""
    parts = value if isinstance(value, (tuple, list)) else (value,)
    return any(isinstance(v, (int, float)) and math.isfinite(v) for v in parts)


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


def check_suggest_funcs(suggest_funcs) -> list[Callable]:
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


def check_suggestion(func, value):
    """A suggestion function's answer: an lr (a number, NaN for none) or a `(low, high)` pair of them."""
    pair = isinstance(value, tuple) and len(value) == 2 and all(_is_number(v) for v in value)
    if not (_is_number(value) or pair):
        raise TypeError(
            f"suggest_funcs: {getattr(func, '__name__', func)} returned {value!r}; a suggestion function must "
            "return an lr (a float, NaN for none) or a (low, high) pair of floats"
        )
    return value


class RangeTestCurve:
    """What a range test recorded, kept with its suggestions so that `.plot()` and `.df()` still show this
    test after later fits have moved the recorder on."""

    lrs: list[float]
    losses: list[float]
    smooth_losses: list[float]
    _band: tuple[float, float] | None = None
    _band_source: tuple | None = None  # (default rule, curves): the band is read from them when first asked for

    @property
    def suggestion_band(self) -> tuple[float, float] | None:
        """The default suggestion's spread (`suggest.suggestion_band`), or None; worked out on first read."""
        if self._band_source is not None:
            default, curves = self._band_source
            band = suggest.suggestion_band(default, curves, self.lrs, self.losses, self.smooth_losses)
            self._band, self._band_source = band, None
        return self._band

    @suggestion_band.setter
    def suggestion_band(self, band: tuple[float, float] | None) -> None:
        self._band, self._band_source = band, None

    def band_from(self, default: Callable, curves: list) -> None:
        """`suggestion_band` is to be `suggest.suggestion_band(default, curves, ...)` of this curve, worked out
        when first read."""
        self._band, self._band_source = None, (default, curves)

    @property
    def suggestions(self) -> dict:
        """{name: suggested lr (or (low, high))}, default first."""
        return self._asdict()

    def df(self) -> pd.DataFrame:
        """One row per iteration: iter, lr, loss, smooth_loss."""
        import pandas as pd  # here, not at import: pandas costs `import lrcycle` about 0.15 s

        data = {"lr": self.lrs, "loss": self.losses, "smooth_loss": self.smooth_losses}
        return pd.DataFrame({"iter": range(len(self.lrs)), **data})

    def plot(self, skip_start: int = 10, skip_end: int = 5, suggestions: bool = True, ax=None):
        """Smoothed loss against lr (log x axis), the suggestions marked, the default's spread shaded."""
        marks, band = (self.suggestions, self.suggestion_band) if suggestions else (None, None)
        title = f"range test, {len(self.lrs)} iterations"
        return plots.plot_loss_vs_lr(self.lrs, self.smooth_losses, skip_start, skip_end, marks, ax, title, band)


@lru_cache(maxsize=64)
def _result_type(names: tuple[str, ...]):
    """One result class per set of suggestion names, made once (so repeated tests add no classes): the
    suggestions read by name or index, as a named tuple, plus the curve."""

    class SuggestedLRs(namedtuple("SuggestedLRs", names), RangeTestCurve):
        """The suggested lrs (by name, index or unpacking; the default first) and the curve they came from."""

        def __repr__(self) -> str:  # 3 significant digits: the suggestions are not more precise than that
            return f"SuggestedLRs({', '.join(f'{k}={three_digits(v)}' for k, v in self.suggestions.items())})"

    return SuggestedLRs


def three_digits(value) -> str:
    """An lr (or a `(low, high)` pair) to 3 significant digits: `0.00123`, `1.23e-06`, `nan`."""
    if isinstance(value, (tuple, list)):
        return f"({', '.join(three_digits(v) for v in value)})"
    return f"{value:.3g}" if isinstance(value, (int, float)) else repr(value)


def suggestion_result(funcs, values, lrs, losses, smooth_losses):
    """The suggestions of `funcs` (`values`, in order) together with copies of the curve."""
    result = _result_type(tuple(func.__name__ for func in funcs))(*values)
    result.lrs, result.losses, result.smooth_losses = list(lrs), list(losses), list(smooth_losses)
    return result
