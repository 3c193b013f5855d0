"""The suggestion rules' fast building blocks give, bit for bit, what their definitions give when worked out the
plain way (a median per window, the longest decreasing subsequence by its recurrence), on random and on recorded
curves."""

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrcycle import suggest
from lrcycle.finder.suggest import decreasing_run_lengths, running_median, trailing_median

DATA = Path(__file__).parent / "data"
RECORDED = json.loads((DATA / "range_test_curves.json").read_text())["curves"]
FLAT_START = json.loads((DATA / "flat_start_pick.json").read_text())
CURVES = {name: curve["smooth_losses"] for name, curve in RECORDED.items()}
CURVES["flat-start-pick"] = FLAT_START["smooth_losses"]

# values as a broken range test has them too: ties, zeros, NaN and infinities among ordinary losses
VALUES = st.lists(
    st.one_of(
        st.floats(-1e6, 1e6, allow_nan=False),
        st.sampled_from([0.0, 1.0, 2.5, np.nan, np.inf, -np.inf]),
    ),
    max_size=40,
)


def window_medians(values, window):
    """The definition, point by point: the median of `values[i - window//2 : i + window//2 + 1]`, cut at the ends."""
    values = np.asarray(values, dtype=float)
    half = window // 2
    return np.array([np.median(values[max(0, i - half) : i + half + 1]) for i in range(len(values))])


def trailing_window_medians(values, window):
    """The definition: the median of each point and the `window - 1` before it (fewer at the start)."""
    values = np.asarray(values, dtype=float)
    return np.array([np.median(values[max(0, i - window + 1) : i + 1]) for i in range(len(values))])


def longest_decreasing_ending_at(losses):
    """The recurrence, pair by pair: 1 + the longest run ending at an earlier, strictly higher point (1 if none)."""
    lds = [1] * len(losses)
    for i in range(len(losses)):
        for j in range(i):
            if losses[j] > losses[i]:
                lds[i] = max(lds[i], lds[j] + 1)
    return lds


def same(got, want):
    """Equal values (NaN where NaN; 0.0 and -0.0 are one value here, as a sort and numpy's partition may order the
    two zeros differently)."""
    assert got.shape == want.shape
    assert np.array_equal(got, want, equal_nan=True)


@pytest.mark.parametrize("window", [1, 2, 3, 4, 5, 7])
@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 6, 9, 100])
def test_running_median_is_each_windows_median(window, n):
    rng = np.random.default_rng(n * 10 + window)
    values = rng.normal(size=n) * 10 ** rng.uniform(-3, 3, size=n)
    if n > 4:
        values[[1, n // 2]] = [np.inf, np.nan]  # a broken loss: its windows' medians as numpy's median has them
    same(running_median(values, window), window_medians(values, window))


@pytest.mark.parametrize("window", [1, 2, 3, 9])
@pytest.mark.parametrize("n", [0, 1, 2, 8, 9, 10, 100])
def test_trailing_median_is_each_trailing_windows_median(window, n):
    rng = np.random.default_rng(n * 10 + window)
    values = rng.normal(size=n) * 10 ** rng.uniform(-3, 3, size=n)
    if n > 4:
        values[[1, n // 2]] = [np.inf, np.nan]
    same(trailing_median(values, window), trailing_window_medians(values, window))


@settings(max_examples=300, deadline=None)
@given(VALUES, st.integers(1, 12))
def test_running_and_trailing_medians_are_the_windows_medians_on_any_values(values, window):
    values = np.array(values, dtype=float)
    with np.errstate(invalid="ignore"):  # -inf and inf in one window: numpy's median is NaN, and warns
        same(running_median(values, window), window_medians(values, window))
        same(trailing_median(values, window), trailing_window_medians(values, window))


@pytest.mark.parametrize("name", list(CURVES))
@pytest.mark.parametrize("window", [3, 9])
def test_running_and_trailing_medians_of_recorded_raw_losses_are_the_windows_medians(name, window):
    raw = suggest.unsmooth(CURVES[name])
    same(running_median(raw, window), window_medians(raw, window))
    same(trailing_median(raw, window), trailing_window_medians(raw, window))


@settings(max_examples=300, deadline=None)
@given(VALUES)
def test_decreasing_run_lengths_follow_the_recurrence_on_any_values(values):
    assert decreasing_run_lengths(values).tolist() == longest_decreasing_ending_at(values)


@pytest.mark.parametrize("name", list(CURVES))
def test_decreasing_run_lengths_of_recorded_curves_follow_the_recurrence(name):
    losses = CURVES[name]
    assert decreasing_run_lengths(losses).tolist() == longest_decreasing_ending_at(losses)


def band_reading_each_fall_afresh(lrs, smooth_losses, scale=suggest.CLIFF_BAND_SCALE, window=suggest.CLIFF_WINDOW):
    """cliff_band as its docstring reads, each moved fall read from the curve anew (`read_fall` with the shift)."""
    fall = suggest.read_fall(lrs, smooth_losses, None, window)
    if fall is None:
        return None
    err = scale * fall.noise * np.sqrt(np.pi / (2 * window))
    settings = (suggest.CLIFF_FACTOR, suggest.CLIFF_DIVISOR, suggest.CLIFF_NEAR, suggest.CLIFF_RISE)
    picks = []
    for break_shift in (-err, err):
        moved = suggest.read_fall(lrs, smooth_losses, None, window, break_shift=break_shift) or fall
        picks += [suggest._cliff_pick(moved, *settings, shift, break_shift) for shift in (-err, err)]
    return min(picks), max(picks)


@pytest.mark.parametrize("name", list(RECORDED))
def test_cliff_band_reading_its_curve_once_is_reading_each_fall_afresh(name):
    lrs, smooth_losses = RECORDED[name]["lrs"], RECORDED[name]["smooth_losses"]
    want = band_reading_each_fall_afresh(lrs, smooth_losses)
    if want is not None:
        assert suggest.cliff_band(lrs, smooth_losses) == want


@pytest.mark.parametrize("median", [suggest.running_median, suggest.trailing_median])
@pytest.mark.parametrize("window", [0, -3, 2.5, True])
def test_a_window_that_is_not_a_positive_integer_is_a_value_error(median, window):
    with pytest.raises(ValueError, match="window: must be a positive integer"):
        median([1.0, 2.0, 3.0], window)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=60))
def test_finite_median_is_numpys_median(values):
    values = np.array(values, dtype=float)
    assert suggest.finite_median(values) == np.median(values)  # the same float, not a close one


@pytest.mark.parametrize("name", list(CURVES))
def test_loss_noise_of_recorded_raw_losses_is_the_formula_with_numpys_median(name):
    raw = suggest.unsmooth(CURVES[name])
    d = np.diff(raw)
    d = d[np.isfinite(d)]
    expected = float(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2))
    assert suggest.loss_noise(raw) == expected
