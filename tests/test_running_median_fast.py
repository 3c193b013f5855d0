"""`suggest.running_median` and `trailing_median` give, bit for bit, the median of each point's window as their
docstrings define it."""

import numpy as np
import pytest

from lrcycle.finder.suggest import running_median, trailing_median


def window_medians(values, window):
    """The definition, point by point: the median of `values[i - window//2 : i + window//2 + 1]`, cut at the ends."""
    values = np.asarray(values, dtype=float)
    half = window // 2
    return np.array([np.median(values[max(0, i - half) : i + half + 1]) for i in range(len(values))])


@pytest.mark.parametrize("window", [1, 2, 3, 4, 5, 7])
@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 6, 9, 100])
def test_running_median_is_each_windows_median(window, n):
    rng = np.random.default_rng(n * 10 + window)
    values = rng.normal(size=n) * 10 ** rng.uniform(-3, 3, size=n)
    if n > 4:
        values[[1, n // 2]] = [np.inf, np.nan]  # a broken loss: its windows' medians as numpy's median has them
    got, want = running_median(values, window), window_medians(values, window)
    assert got.shape == want.shape
    assert np.array_equal(got, want, equal_nan=True)


def trailing_window_medians(values, window):
    """The definition: the median of each point and the `window - 1` before it (fewer at the start)."""
    values = np.asarray(values, dtype=float)
    return np.array([np.median(values[max(0, i - window + 1) : i + 1]) for i in range(len(values))])


@pytest.mark.parametrize("window", [1, 2, 3, 9])
@pytest.mark.parametrize("n", [0, 1, 2, 8, 9, 10, 100])
def test_trailing_median_is_each_trailing_windows_median(window, n):
    rng = np.random.default_rng(n * 10 + window)
    values = rng.normal(size=n) * 10 ** rng.uniform(-3, 3, size=n)
    if n > 4:
        values[[1, n // 2]] = [np.inf, np.nan]
    got, want = trailing_median(values, window), trailing_window_medians(values, window)
    assert got.shape == want.shape
    assert np.array_equal(got, want, equal_nan=True)
