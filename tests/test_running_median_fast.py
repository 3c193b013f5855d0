"""`suggest.running_median` gives, bit for bit, the median of each point's window as its docstring defines it."""

import numpy as np
import pytest

from lrcycle.finder.suggest import running_median


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
