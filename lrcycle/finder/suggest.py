"""Suggestion functions: each reads a range test's `(lrs, smooth_losses)` and returns a learning rate.

Every function is a plain function of the two lists, so it works on any recorded curve, and copes with a
short one (a test stopped after a few iterations): it returns its best answer, or NaN with a
`SuggestionWarning`, never raises. The first and last points are skipped like `Recorder.plot` skips them
(the debiased smoothed loss is noisy at first, the last points are the divergence), fewer when the curve
is short. The default, `cliff`, reads the raw losses, which it recovers exactly from the whole smoothed curve,
and picks only inside the fall (`read_fall`). `valley` is fastai 2.8's rule; `steep` is torch-lr-finder's
(central differences; fastai's `steep` takes forward differences). Every warning points at the caller's line
(`warn_user`).

Around the rules: `cliff_band` (the default's spread from the loss's noise), `average_curves` (several tests
on other batch orders), `check_agreement` (a `SuggestionWarning` when picks disagree) and `suggestion_band` (what a
range test reports as the default's spread).
"""

from __future__ import annotations

import bisect
import math
import statistics
import warnings
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from ..validate import warn_user

# cliff's settings, fitted on every task, seed and batch order of benchmarks/suggest_quality.py at once (--fit)
CLIFF_FACTOR, CLIFF_DIVISOR, CLIFF_NEAR, CLIFF_RISE, CLIFF_WINDOW = 3.0, 4.0, 0.3, 2.0, 3
CLIFF_CLEAR = 2.5  # a fall, a climb or a break counts once it is this many stds of the raw loss's noise clear
CLIFF_MIN_FALL = 0.01  # ... and at least this share of the starting loss (a loss without noise)
START_POINTS = 20  # the start level: the median of this many first raw losses read
GUARD_WINDOW = 9  # the guards' running median: its noise is sqrt(pi / (2 * 9)) = 0.42 of a single loss's
CLIFF_BAND_SCALE = 8.0  # cliff_band's width in standard errors: it then holds about 2/3 (63%) of other orders' picks
# Picks further apart than this cannot all be good: on every benchmark task, 2x off the best lr costs > 0.5 points.
AGREE_FACTOR = 2.0


class SuggestionWarning(UserWarning):
    """A suggestion could not be read from the curve (too short, flat or not finite)."""


def _curve(lrs, losses, skip_start: int = 10, skip_end: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """(log10 lr, smoothed loss) of the finite points, the ends skipped; shorter curves skip less."""
    lrs, losses = np.asarray(lrs, dtype=float).ravel(), np.asarray(losses, dtype=float).ravel()
    n = min(len(lrs), len(losses))
    lrs, losses = lrs[:n], losses[:n]
    # a point past the first non-finite loss is training on broken weights
    bad = ~np.isfinite(losses)
    if bad.any():
        lrs, losses = lrs[: np.argmax(bad)], losses[: np.argmax(bad)]
    keep = np.isfinite(lrs) & (lrs > 0)
    lrs, losses = lrs[keep], losses[keep]
    n = len(lrs)
    if skip_start + skip_end > n // 2:  # keep at least half of a short curve
        scale = (n // 2) / max(skip_start + skip_end, 1)
        skip_start, skip_end = int(skip_start * scale), int(skip_end * scale)
    return np.log10(lrs[skip_start : n - skip_end]), losses[skip_start : n - skip_end]


def _nan(name: str, why: str) -> float:
    warn_user(f"{name}: {why}; returning NaN", SuggestionWarning)
    return math.nan


def _slopes(log_lrs: np.ndarray, losses: np.ndarray) -> np.ndarray:
    """d(loss)/d(log10 lr) at every point (central differences; equal lrs give 0, not a division by 0)."""
    if len(log_lrs) < 2:
        return np.zeros(len(log_lrs))
    with np.errstate(divide="ignore", invalid="ignore"):
        slopes = np.gradient(losses, log_lrs)
    return np.where(np.isfinite(slopes), slopes, 0.0)


def _fall(name: str, lrs, smooth_losses, **curve_args):
    """What a level rule reads: `(log_lrs, losses, bottom_at, top, bottom)`, the curve with its lowest point and
    the highest loss before it; None, after `name`'s NaN warning, when it has fewer than two finite points or
    never falls."""
    log_lrs, losses = _curve(lrs, smooth_losses, **curve_args)
    if len(losses) < 2:
        _nan(name, "fewer than two finite points")
        return None
    bottom_at = int(np.argmin(losses))
    top, bottom = losses[: bottom_at + 1].max(), losses[bottom_at]
    if bottom_at == 0 or not top > bottom:
        _nan(name, "the loss never falls")
        return None
    return log_lrs, losses, bottom_at, top, bottom


def halfway(lrs, smooth_losses, frac: float = 0.5) -> float:
    """The lr at which the smoothed loss has made half (`frac`) of its fall to its minimum.

    With `top` the highest smoothed loss before the minimum and `bottom` the minimum, the answer is where
    the curve last crosses `bottom + frac * (top - bottom)` on its way down (interpolated in log lr).
    Where the steepest point reads a noisy derivative, this reads a level, which smoothing keeps stable;
    and it always lies before the minimum, on the falling part of the curve. It was lrcycle's default until
    the wider `benchmarks/suggest_quality.py` showed it lands low where the best lr sits near the break.
    """
    if not 0 < frac < 1:
        raise ValueError(f"frac: must be in (0, 1), got {frac!r}")
    fall = _fall("halfway", lrs, smooth_losses)
    if fall is None:
        return math.nan
    log_lrs, losses, bottom_at, top, bottom = fall
    level = bottom + frac * (top - bottom)
    above = np.nonzero(losses[:bottom_at] > level)[0][-1]  # the last point above it, before the minimum
    x0, x1, y0, y1 = log_lrs[above], log_lrs[above + 1], losses[above], losses[above + 1]
    return float(10 ** (x0 + (x1 - x0) * (y0 - level) / (y0 - y1)))


def minimum(lrs, smooth_losses) -> float:
    """The lr at the lowest smoothed loss, divided by 10 (fastai's rule: train well below the minimum)."""
    log_lrs, losses = _curve(lrs, smooth_losses)
    if len(losses) == 0:
        return _nan("minimum", "no finite point in the curve")
    return float(10 ** log_lrs[np.argmin(losses)] / 10)


def steep(lrs, smooth_losses) -> float:
    """The lr where the smoothed loss falls fastest against log lr: the most negative central difference
    `(loss[i+1] - loss[i-1]) / (log lr[i+1] - log lr[i-1])`, torch-lr-finder's rule. fastai's `steep` takes
    forward differences, `(loss[i+1] - loss[i]) / (log lr[i+1] - log lr[i])`, and can land one point lower."""
    log_lrs, losses = _curve(lrs, smooth_losses)
    if len(losses) < 2:
        return _nan("steep", "fewer than two finite points")
    slopes = _slopes(log_lrs, losses)
    if slopes.min() >= 0:
        return _nan("steep", "the loss never falls")
    return float(10 ** log_lrs[np.argmin(slopes)])


def valley(lrs, smooth_losses) -> float:
    """fastai's `valley`: about two thirds of the way along the longest decreasing subsequence of the smoothed loss.

    With `lds[i]` the length of the longest strictly decreasing subsequence ending at point i, `end` the first
    point where it is longest and `start = end - lds[end]`, the answer is the lr at index
    `start + int(s) + int(s / 2)`, `s = (end - start) / 3` (fastai 2.8's arithmetic; the same points skipped).
    NaN when no point is below an earlier one (fastai's index would wrap to the last lr there)."""
    log_lrs, losses = _curve(lrs, smooth_losses)
    if len(losses) < 2:
        return _nan("valley", "fewer than two finite points")
    lds = decreasing_run_lengths(losses)
    if lds.max() < 2:
        return _nan("valley", "the loss never falls")
    end = int(np.argmax(lds))  # the first point where the subsequence is longest
    start = end - int(lds[end])
    third = (end - start) / 3
    return float(10 ** log_lrs[max(start + int(third) + int(third / 2), 0)])


def decreasing_run_lengths(losses) -> np.ndarray:
    """`lds[i]`: the length of the longest strictly decreasing subsequence of `losses` that ends at point i,
    `1 + max(lds[j] for j < i if losses[j] > losses[i])` (1 where no earlier point is higher; a NaN is never higher
    nor lower).

    In one pass (patience sorting): `highest[k]` is the highest loss that ends a decreasing subsequence of length
    k + 1 so far; it falls as k grows, so the subsequences a loss extends (those ending above it) are the first
    ones, counted by bisection of `-loss` into the rising `-highest`.
    """
    lds, rising = [], []  # rising[k] = -highest[k]
    for negated in (-np.asarray(losses, dtype=float).ravel()).tolist():
        if negated != negated:  # NaN
            lds.append(1)
            continue
        k = bisect.bisect_left(rising, negated)  # the subsequences ending above this loss: k of them
        if k < len(rising):
            rising[k] = negated
        else:
            rising.append(negated)
        lds.append(k + 1)
    return np.array(lds, dtype=int)


def lr_range(lrs, smooth_losses, frac: float = 0.1) -> tuple[float, float]:
    """(low, high) for cyclical schedules, after Smith's range test: `low` where the loss has fallen by
    `frac` of its total fall (it starts falling), `high` where it is within `frac` of its minimum (it
    stops falling). NaNs when the loss never falls."""
    if not 0 < frac < 1:
        raise ValueError(f"frac: must be in (0, 1), got {frac!r}")
    log_lrs, losses = _curve(lrs, smooth_losses)
    if len(losses) < 2:
        return (_nan("lr_range", "fewer than two finite points"), math.nan)
    best = int(np.argmin(losses))
    drop = losses[0] - losses[best]
    if best == 0 or not drop > 0:
        return (_nan("lr_range", "the loss never falls"), math.nan)
    low = int(np.argmax(losses[: best + 1] < losses[0] - frac * drop))
    high = int(np.argmax(losses[: best + 1] < losses[best] + frac * drop))
    return (float(10 ** log_lrs[low]), float(10 ** log_lrs[max(high, low)]))


def divergence(lrs, smooth_losses, rise: float = 0.5, shift: float = 0.0) -> float:
    """The lr at which the smoothed loss, past its lowest point, first climbs back above a level: `bottom +
    rise * (top - bottom) + shift` (`top` the highest smoothed loss before the bottom), interpolated in log lr.

    When it never climbs that far (the test stopped first, or ran out of lrs), the last finite point: the
    training broke there or later. A negative `shift` that puts the level below the bottom gives the bottom's lr.
    """
    if not rise > 0:
        raise ValueError(f"rise: must be > 0, got {rise!r}")
    fall = _fall("divergence", lrs, smooth_losses, skip_end=0)
    if fall is None:
        return math.nan
    log_lrs, losses, bottom_at, top, bottom = fall
    level = bottom + rise * (top - bottom) + shift
    over = np.nonzero(losses[bottom_at:] > level)[0]
    if len(over) == 0:
        return float(10 ** log_lrs[-1])
    if over[0] == 0:  # a level moved below the bottom (cliff_band): the loss is over it from its bottom on
        return float(10 ** log_lrs[bottom_at])
    i = bottom_at + int(over[0])  # losses[i - 1] <= level < losses[i]
    x0, x1, y0, y1 = log_lrs[i - 1], log_lrs[i], losses[i - 1], losses[i]
    return float(10 ** (x0 + (x1 - x0) * (level - y0) / (y1 - y0)))


def trailing_median(values, window: int) -> np.ndarray:
    """The median of each point and the `window - 1` before it (fewer at the start): what the loss has done so far."""
    _check_window(window)
    return window_medians(np.asarray(values, dtype=float).ravel(), window - 1, 0)


def running_median(values, window: int) -> np.ndarray:
    """The median of each point and its neighbours, `window` points centred on it (fewer at the ends): a
    smoothing that does not trail the curve, unlike a moving average, and shrugs off single spikes."""
    _check_window(window)
    return window_medians(np.asarray(values, dtype=float).ravel(), window // 2, window // 2)


def _check_window(window) -> None:
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise ValueError(f"window: must be a positive integer, got {window!r}")


def window_medians(values: np.ndarray, before: int, after: int) -> np.ndarray:
    """`np.median(values[max(0, i - before) : i + after + 1])` for every point i, bit for bit, in one sort.

    Each point's window is a row of `before + after + 1` values, NaN past the ends (NaN sorts last), so the
    median of the `count` values in it is the middle one of the sorted row (odd `count`) or the mean
    `(lo + hi) / 2` of the middle two (even), and NaN where the row holds more NaNs than its padding (numpy's
    median of a window with a NaN). One call for the curve, where a median per point costs ~10 us. (A window
    holding both 0.0 and -0.0 may give the other zero than numpy's partition picks: equal, and never read as a sign.)
    """
    n, width = len(values), before + after + 1
    if n == 0:
        return np.empty(0)
    take, middle, even, pads = _window_layout(n, before, after)
    padded = np.full(n + width - 1, np.nan)
    padded[before : before + n] = values
    rows = padded.take(take)
    rows.sort(axis=1)
    sorted_values = rows.ravel()
    medians = sorted_values.take(middle)
    if len(even):  # the mean of the middle two only where there are two: no overflow from the others
        medians[even] = (medians[even] + sorted_values.take(middle[even] + 1)) / 2
    if np.isnan(values).any():
        medians[np.isnan(rows).sum(axis=1) > pads] = np.nan
    return medians


@lru_cache(maxsize=16)
def _window_layout(n: int, before: int, after: int) -> tuple[np.ndarray, ...]:
    """What `window_medians` needs for `n` points, the same for every curve of that length: the positions in the
    padded values of each row, the flat position of each sorted row's (lower) middle value, the rows with an even
    count of values and each row's padding. Read-only: the cache hands the same arrays to every call."""
    width = before + after + 1
    points = np.arange(n)
    counts = np.minimum(points + after + 1, n) - np.maximum(points - before, 0)
    layout = (points[:, None] + np.arange(width), points * width + (counts - 1) // 2, np.nonzero(counts % 2 == 0)[0])
    layout += (width - counts,)
    for part in layout:
        part.flags.writeable = False
    return layout


def cliff(
    lrs,
    smooth_losses,
    losses=None,
    factor: float = CLIFF_FACTOR,
    divisor: float = CLIFF_DIVISOR,
    near: float = CLIFF_NEAR,
    rise: float = CLIFF_RISE,
    window: int = CLIFF_WINDOW,
) -> float:
    """lrcycle's default: three times the lr where the loss has done 70% of its fall, or a quarter of the lr where
    training breaks, whichever is lower, always inside the fall.

    In three sentences: the raw loss's fall is read up to the break, the first batch whose loss is worse than the
    untrained model's by a clear margin of its noise, so spikes and zeros of a diverging model are never read.
    The pick is `min(factor * fallen, broken / divisor)`, with `fallen` where the running median of the raw loss
    is within `near` of its fall from the bottom and `broken` where it climbs `rise` falls above the bottom (or
    the break, if sooner). It is kept between the point where the loss has clearly fallen (`CLIFF_CLEAR` noise
    stds, `read_fall`) and the start of the climb.

    A loss that never falls clearly gives `broken / divisor` with a `SuggestionWarning` (`lr_find(n_repeats=
    "auto")` then averages three tests), or NaN with one when it does not break either: never a tiny lr.

    The raw losses (`losses`, else recovered exactly from the whole smoothed curve by `unsmooth`) are read
    because the recorder's average trails them by about 1/(1 - 0.98) = 50 iterations, half a default test;
    `window` points go into the running median. The constants were fitted on `benchmarks/suggest_quality.py`.
    """
    _check_cliff(factor, divisor, near, rise)
    fall = read_fall(lrs, smooth_losses, losses, window)
    if fall is not None:
        return _cliff_pick(fall, factor, divisor, near, rise)
    broken = climbed_at(lrs, smooth_losses, losses)
    if math.isnan(broken):
        return _nan("cliff", f"the loss never falls clearly (by {CLIFF_CLEAR:g} stds of its noise), nor breaks")
    warn_user(
        f"cliff: the loss never falls clearly (by {CLIFF_CLEAR:g} stds of its noise); read from the break alone, "
        f"at {broken:.3g}: try lr_find(n_repeats=3) to average out the noise",
        SuggestionWarning,
    )
    return broken / divisor


def cliff_band(
    lrs,
    smooth_losses,
    losses=None,
    noise: float | None = None,
    scale: float = CLIFF_BAND_SCALE,
    factor: float = CLIFF_FACTOR,
    divisor: float = CLIFF_DIVISOR,
    near: float = CLIFF_NEAR,
    rise: float = CLIFF_RISE,
    window: int = CLIFF_WINDOW,
) -> tuple[float, float]:
    """(low, high) around `cliff` from one test: the lowest and highest `cliff` with each of its two levels moved
    down or up by `scale` standard errors of the running median, `scale * noise * sqrt(pi / (2 * window))` (the
    median of `window` normal draws), each kept inside the fall as `cliff` is; `noise` is the raw loss's
    (`loss_noise` over the first half of the points read) when not given. The loss's noise alone moves the pick far less
    than another batch order does, so the default `scale` is calibrated on the benchmark: the band holds about
    two thirds of the picks that other batch orders give (docs/benchmarks.md, "Suggestion quality")."""
    _check_cliff(factor, divisor, near, rise)
    if not scale >= 0:
        raise ValueError(f"scale: must be >= 0, got {scale!r}")
    curve = fall_curve(lrs, smooth_losses, losses, window)
    fall = None if curve is None else fall_in(curve)
    if fall is None:
        return (_nan("cliff_band", f"the loss never falls clearly (by {CLIFF_CLEAR:g} stds of its noise)"), math.nan)
    noise = fall.noise if noise is None else noise
    if not noise >= 0:
        return (_nan("cliff_band", "no noise estimate"), math.nan)
    err = scale * noise * math.sqrt(math.pi / (2 * window))
    picks = []
    for break_shift in (-err, err):
        moved = fall_in(curve, break_shift=break_shift) or fall
        picks += [_cliff_pick(moved, factor, divisor, near, rise, shift, break_shift) for shift in (-err, err)]
    return (min(picks), max(picks))


def _check_cliff(factor: float, divisor: float, near: float, rise: float) -> None:
    for name, value in (("factor", factor), ("divisor", divisor), ("rise", rise)):
        if not value > 0:
            raise ValueError(f"{name}: must be > 0, got {value!r}")
    if not 0 < near < 1:
        raise ValueError(f"near: must be in (0, 1), got {near!r}")


class Fall(NamedTuple):
    """A range test's fall as `read_fall` reads it; indices count the points read (the start skipped)."""

    log_lrs: np.ndarray  # log10 lr of the points (ended at the first non-finite loss, or a median past 4x its first)
    raw: np.ndarray  # the raw losses there
    median: np.ndarray  # their running median
    noise: float  # the raw loss's noise (`loss_noise`) over the first half of the points
    break_at: int  # the break: the first loss `margin` above the start after a clear fall (the last point if none)
    top: float  # the highest median before the bottom, both read before the break
    bottom_at: int
    clear_at: int  # where the loss has clearly fallen (`first_clear_fall`): the earliest pick
    climb_at: int  # the last point before the median climbs `margin` above the bottom: the latest pick


def read_fall(
    lrs, smooth_losses, losses, window: int, clear: float = CLIFF_CLEAR, min_drop: float = 0.05, break_shift=0.0
):
    """The fall of the raw loss, read only up to the break; None when the loss never falls clearly.

    `start` and `margin` are `start_and_margin`'s: the starting loss, and `clear` stds of its noise. The loss has
    fallen clearly once the median of its last `GUARD_WINDOW` values stays `margin` below `start`
    (`first_clear_fall`): the earliest pick. The break is the first later batch whose loss is `margin` above
    `start`, worse than the untrained model: the spikes of a model that diverges, and the zeros between them,
    are never read. Up to the break, `bottom` is the lowest `window`-point median and `top` the highest before
    it; the climb starts after the last point within `margin` of the lowest `GUARD_WINDOW`-point centred median
    that follows that lowest point without a gap: the latest pick. A fall smaller than `margin` or `min_drop *
    |start|` is no fall (None), so a bump of noise never makes a bottom or a climb. `break_shift` raises the
    break's level (`cliff_band`; a negative one leaves it).
    """
    curve = fall_curve(lrs, smooth_losses, losses, window, clear)
    return None if curve is None else fall_in(curve, min_drop, break_shift)


class FallCurve(NamedTuple):
    """What `read_fall` reads a fall from, whatever its `break_shift` (`cliff_band` reads three falls from one)."""

    log_lrs: np.ndarray  # as in `Fall`
    raw: np.ndarray
    median: np.ndarray  # the `window`-point running median of `raw`
    start: float  # `start_and_margin`
    margin: float
    noise: float
    guard: np.ndarray  # the `GUARD_WINDOW`-point running median of `raw`
    trailing: np.ndarray  # ... and its trailing median


def fall_curve(lrs, smooth_losses, losses, window: int, clear: float = CLIFF_CLEAR) -> FallCurve | None:
    """The raw losses (`losses`, else `unsmooth`), their medians and their start level, on the points `read_fall`
    reads; None with fewer than three points or no margin."""
    raw = unsmooth(smooth_losses) if losses is None else np.asarray(losses, dtype=float).ravel()
    lrs, median = median_curve(lrs, smooth_losses, raw, window)
    log_lrs, median = _curve(lrs, median, skip_end=0)
    _, raw = _curve(lrs, raw[: len(lrs)], skip_end=0)
    if len(median) < 3:
        return None
    start, margin, noise = start_and_margin(raw, clear)
    if not margin >= 0:
        return None
    guard, trailing = running_median(raw, GUARD_WINDOW), trailing_median(raw, GUARD_WINDOW)
    return FallCurve(log_lrs, raw, median, start, margin, noise, guard, trailing)


def fall_in(curve: FallCurve, min_drop: float = 0.05, break_shift=0.0) -> Fall | None:
    """`read_fall`'s answer on the points of `curve`."""
    raw, start, margin = curve.raw, curve.start, curve.margin
    fall = first_clear_fall(curve.trailing, raw, start, margin, margin + max(break_shift, 0.0))
    if fall is None:
        return None
    clear_at, break_at = fall
    spiked = break_at < len(raw)
    break_at = min(break_at, len(raw) - 1)
    n_read = break_at + (not spiked)  # a broken point itself is not read
    guard = curve.guard[:n_read]  # centred: the first broken point moves a median by one rank at most
    low_at = int(np.argmin(guard))
    if not start - guard[low_at] >= max(margin, min_drop * abs(start)):
        return None
    bottom_at = int(np.argmin(curve.median[:n_read]))
    top = float(curve.median[: bottom_at + 1].max())
    above = np.nonzero(guard[low_at:] > guard[low_at] + margin)[0]
    climb_at = low_at + int(above[0]) - 1 if len(above) else n_read - 1
    return Fall(
        curve.log_lrs, raw, curve.median, curve.noise, break_at, top, bottom_at, clear_at, max(climb_at, clear_at)
    )


def climbed_at(lrs, smooth_losses, losses=None, clear: float = CLIFF_CLEAR) -> float:
    """Where training breaks without a fall: the first lr at which the wide running median of the raw loss
    (`GUARD_WINDOW` points) is `clear` noise stds above the start (`start_and_margin`: a climb, not a spike), or
    where the curve ends at a non-finite loss or a median past 4x its first (`median_curve`); NaN if neither."""
    raw = unsmooth(smooth_losses) if losses is None else np.asarray(losses, dtype=float).ravel()
    lrs_kept, _ = median_curve(lrs, smooth_losses, losses, 1)
    log_lrs, kept = _curve(lrs_kept, raw[: len(lrs_kept)], skip_end=0)
    if len(kept) < 3:
        return math.nan
    start, margin, _ = start_and_margin(kept, clear)
    above = np.nonzero(running_median(kept, GUARD_WINDOW) > start + margin)[0]
    if len(above) and margin >= 0:
        return float(10 ** log_lrs[above[0]])
    cut = len(lrs_kept) < min(len(lrs), len(raw))  # the curve was ended at a broken point, its last
    return float(10 ** log_lrs[-1]) if cut else math.nan


def start_and_margin(raw: np.ndarray, clear: float) -> tuple[float, float, float]:
    """(start, margin, noise): the median of the first `START_POINTS` raw losses (a quarter of a short curve),
    `clear * noise` but at least `CLIFF_MIN_FALL * |start|`, and the noise (`loss_noise` of the first half)."""
    start = finite_median(raw[: min(START_POINTS, max(len(raw) // 4, 1))])  # `raw` is finite: cut at its first NaN
    noise = loss_noise(raw[: max(len(raw) // 2, 3)])
    return start, max(clear * noise, CLIFF_MIN_FALL * abs(start)), noise


def first_clear_fall(trailing: np.ndarray, raw: np.ndarray, start: float, margin: float, spike: float):
    """(where the loss has first fallen clearly, the break after it: `len(raw)` if none), None without a clear fall.

    The loss has fallen clearly at the first point from which the median of the last `GUARD_WINDOW` raw losses
    (`trailing`) stays `margin` below `start` for `GUARD_WINDOW` points, or up to the break if that comes sooner
    (a dip of noise comes back up); the break is the first later raw loss `spike` above `start`."""
    below = trailing <= start - margin
    below[: GUARD_WINDOW - 1] = False  # a median of fewer losses is not clear of the noise
    for i in np.nonzero(below)[0]:
        spikes = np.nonzero(raw[i + 1 :] > start + spike)[0]
        end = i + 1 + int(spikes[0]) if len(spikes) else len(raw)
        if below[i : min(i + GUARD_WINDOW, end)].all():
            return int(i), end
    return None


def _cliff_pick(fall: Fall, factor, divisor, near, rise, fall_shift=0.0, break_shift=0.0) -> float:
    """min(factor * fallen, broken / divisor), each level moved by its shift, kept between the fall's clear
    point and the start of its climb."""
    log_lrs, median, bottom_at = fall.log_lrs, fall.median, fall.bottom_at
    bottom = float(median[bottom_at])
    drop = fall.top - bottom
    fallen = _first_crossing(log_lrs[: bottom_at + 1], median[: bottom_at + 1], bottom + near * drop + fall_shift, -1)
    end = fall.break_at + 1
    broken = _first_crossing(log_lrs[bottom_at:end], median[bottom_at:end], bottom + rise * drop + break_shift, 1)
    pick = min(fallen + math.log10(factor), broken - math.log10(divisor))
    return float(10 ** np.clip(pick, log_lrs[fall.clear_at], log_lrs[fall.climb_at]))


def _first_crossing(log_lrs: np.ndarray, values: np.ndarray, level: float, direction: int) -> float:
    """The log lr where `values` first gets to `level` going down (`direction` -1: at or below it) or up (+1:
    above it), interpolated between points; the first point when it starts there, the last when it never gets
    there."""
    there = values <= level if direction < 0 else values > level
    if not there.any():
        return float(log_lrs[-1])
    i = int(np.argmax(there))
    if i == 0:
        return float(log_lrs[0])
    x0, x1, y0, y1 = log_lrs[i - 1], log_lrs[i], values[i - 1], values[i]
    return float(x0 + (x1 - x0) * (level - y0) / (y1 - y0))


def fallen_at(lrs, losses, near: float, shift: float = 0.0, min_drop: float = 0.05) -> float:
    """The first lr at which the loss is at or below `bottom + near * (top - bottom) + shift`, interpolated in
    log lr (the bottom's lr when a negative `shift` puts the level below the bottom); NaN when it falls by less
    than `min_drop` of |top| (no fall to read)."""
    log_lrs, losses = _curve(lrs, losses, skip_end=0)
    if len(losses) < 2:
        return math.nan
    bottom_at = int(np.argmin(losses))
    top, bottom = losses[: bottom_at + 1].max(), losses[bottom_at]
    if bottom_at == 0 or not top - bottom >= min_drop * abs(top):
        return math.nan
    level = bottom + near * (top - bottom) + shift
    reached = losses[: bottom_at + 1] <= level
    if not reached.any():  # a level moved below the bottom (cliff_band): the loss gets closest at its bottom
        return float(10 ** log_lrs[bottom_at])
    i = int(np.argmax(reached))
    if i == 0:
        return float(10 ** log_lrs[0])
    x0, x1, y0, y1 = log_lrs[i - 1], log_lrs[i], losses[i - 1], losses[i]
    return float(10 ** (x0 + (x1 - x0) * (y0 - level) / (y0 - y1)))


def divergence_quiet(lrs, losses, rise: float, shift: float = 0.0) -> float:
    """`divergence` without its warning (the caller names itself in its own)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SuggestionWarning)
        return divergence(lrs, losses, rise=rise, shift=shift)


def median_curve(lrs, smooth_losses, losses, window: int) -> tuple[np.ndarray, np.ndarray]:
    """(lrs, running median of the raw losses), ended at the first non-finite loss and at the first median
    above 4x its first value (lr_find's stop_div factor): past that the weights are broken, and a loss that
    swings between 0 and 10 there must not count as a bottom."""
    raw = unsmooth(smooth_losses) if losses is None else np.asarray(losses, dtype=float).ravel()
    lrs = np.asarray(lrs, dtype=float).ravel()[: len(raw)]
    raw = raw[: len(lrs)]
    finite = np.isfinite(raw)
    n = len(raw) if finite.all() else int(np.argmin(finite))
    lrs, median = lrs[:n], running_median(raw[:n], window)
    if n and median[0] > 0 and (median > 4 * median[0]).any():
        n = int(np.argmax(median > 4 * median[0])) + 1  # the first broken point stays: it marks the break
    return lrs[:n], median[:n]


def smooth(losses, beta: float = 0.98) -> np.ndarray:
    """The recorder's debiased moving average: `avg = beta*avg + (1-beta)*loss`, `avg / (1 - beta**n)` at n."""
    if not 0 <= beta < 1:
        raise ValueError(f"beta: must be in [0, 1), got {beta!r}")
    losses = np.asarray(losses, dtype=float).ravel()
    out, avg = np.empty(len(losses)), 0.0
    for n, loss in enumerate(losses, start=1):
        avg = beta * avg + (1 - beta) * loss
        out[n - 1] = avg / (1 - beta**n)
    return out


def unsmooth(smooth_losses, beta: float = 0.98) -> np.ndarray:
    """The raw losses behind a whole debiased moving average (from its first iteration), by inverting it:
    `avg_n = smooth_n * (1 - beta**n)`, `loss_n = (avg_n - beta * avg_{n-1}) / (1 - beta)`."""
    if not 0 <= beta < 1:
        raise ValueError(f"beta: must be in [0, 1), got {beta!r}")
    smoothed = np.asarray(smooth_losses, dtype=float).ravel()
    avg = smoothed * (1 - beta ** np.arange(1, len(smoothed) + 1))
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf past a divergence is nan, as it should be
        return (avg - beta * np.concatenate([[0.0], avg[:-1]])) / (1 - beta)


def average_curves(curves, beta: float = 0.98) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lrs, losses, smooth_losses) of several range tests over the same lrs (other batch orders): the mean raw
    loss per iteration, smoothed as the recorder smooths, over the iterations every test reached with a finite
    loss (the first test to diverge ends the average; averaging smoothed curves gives the same, by linearity).

    `curves` is a sequence of `(lrs, losses)` pairs of raw losses.
    """
    pairs = [(np.asarray(lrs, dtype=float).ravel(), np.asarray(losses, dtype=float).ravel()) for lrs, losses in curves]
    if not pairs:
        raise ValueError("curves: expected at least one (lrs, losses) pair, got none")
    for lrs, losses in pairs:
        if len(lrs) != len(losses):
            raise ValueError(f"curves: each pair needs as many lrs as losses, got {len(lrs)} and {len(losses)}")
    n = min(len(lrs) for lrs, _ in pairs)
    finite = np.all([np.isfinite(losses[:n]) for _, losses in pairs], axis=0)
    n = int(np.argmin(finite)) if not finite.all() else n
    lrs = pairs[0][0][:n]
    if not all(np.allclose(other[:n], lrs, rtol=1e-9, atol=0) for other, _ in pairs):
        raise ValueError("curves: the tests were run over different lrs; average only repeats of one test")
    mean = np.mean([losses[:n] for _, losses in pairs], axis=0) if n else np.empty(0)
    return lrs, mean, smooth(mean, beta)


def loss_noise(losses) -> float:
    """The raw loss's batch-to-batch noise (std): `1.4826 * median(|d - median(d)|) / sqrt(2)` over the first
    differences `d` (a difference of two independent draws has twice the variance; the median keeps the
    divergence's jumps and the slow trend out)."""
    d = np.diff(np.asarray(losses, dtype=float).ravel())
    d = d[np.isfinite(d)]
    if len(d) == 0:
        return math.nan
    return 1.4826 * finite_median(np.abs(d - finite_median(d))) / math.sqrt(2)


def finite_median(values: np.ndarray) -> float:
    """`np.median` of finite values, the same float (the middle value, or the mean `(lo + hi) / 2` of the middle two),
    read with `statistics.median` off a list: on the few dozen losses the rules read, a sort of a list costs a
    tenth of numpy's median."""
    return statistics.median(values.tolist())


def check_agreement(suggestions, factor: float = AGREE_FACTOR, what: str = "suggestions") -> float:
    """max/min of the finite lrs among `suggestions` (a mapping or a sequence; pairs count both ends), with a
    `SuggestionWarning` when it exceeds `factor`: the curve does not point at one lr."""
    if not factor >= 1:
        raise ValueError(f"factor: must be >= 1, got {factor!r}")
    values = suggestions.values() if isinstance(suggestions, dict) else suggestions
    flat = [v for value in values for v in (value if isinstance(value, (tuple, list)) else (value,))]
    lrs = [float(v) for v in flat if isinstance(v, (int, float)) and math.isfinite(v) and v > 0]
    if len(lrs) < 2:
        return 1.0
    ratio = max(lrs) / min(lrs)
    if ratio > factor:
        warn_user(
            f"{what} disagree by {ratio:.1f}x (more than {factor:g}x): the range test does not point at one "
            f"lr; try a short grid of fits from {min(lrs):.2g} to {max(lrs):.2g}",
            SuggestionWarning,
        )
    return ratio


def suggestion_band(default, curves, lrs, losses, smooth_losses) -> tuple[float, float] | None:
    """The default suggestion's spread: over several tests on other batch orders (`curves`, `(lrs, losses)` pairs),
    the lowest and highest of their own picks, with a `SuggestionWarning` past `AGREE_FACTOR`; from a single
    test of `cliff`, `cliff_band`; otherwise None (nothing to measure it by)."""
    if len(curves) > 1:
        picks = [default(c_lrs, smooth(c_losses)) for c_lrs, c_losses in curves]
        finite = [p for p in picks if isinstance(p, float) and math.isfinite(p) and p > 0]
        check_agreement(finite, what=f"{default.__name__} over {len(curves)} batch orders")
        return (min(finite), max(finite)) if finite else None
    if default is cliff:
        return cliff_band(lrs, smooth_losses, losses)
    return None


DEFAULT_FUNCS = (cliff, halfway, minimum, steep, valley, lr_range)
"""What lr_find suggests, the default first."""
