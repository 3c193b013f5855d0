"""Suggestion functions on curves whose answer is known by construction, and on any curve at all."""

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrcycle import suggest
from lrcycle.suggest import SuggestionWarning, halfway, lr_range, minimum, steep, valley

LOG_LRS = np.linspace(-6, 1, 141)  # 1e-6 .. 10, 20 points a decade
LRS = 10**LOG_LRS


def at(log_lr):
    """The tested lr nearest to 10**log_lr (answers can only be lrs of the curve)."""
    return LRS[np.argmin(np.abs(LOG_LRS - log_lr))]


def flat_fall_rise(fall_from=-4.0, fall_to=-2.0, rise_from=-1.0, high=2.0, low=1.0):
    """Flat at `high`, a straight fall to `low` between two log lrs, flat, then a steep rise."""
    x = LOG_LRS
    loss = np.interp(x, [fall_from, fall_to], [high, low])
    return loss + np.where(x > rise_from, 5 * (x - rise_from) ** 2, 0.0)


def test_halfway_is_where_the_loss_has_made_half_its_fall():
    # falls linearly in log lr from 2 (at 1e-4) to 1 (at 1e-2): half the fall, loss 1.5, at 1e-3
    assert halfway(LRS, flat_fall_rise(-4.0, -2.0)) == pytest.approx(1e-3, rel=1e-6)


def test_halfway_measures_the_fall_from_the_highest_point_before_the_minimum():
    losses = flat_fall_rise(-4.0, -2.0, high=3.0)  # falls from 3 to 1: half way is loss 2, at 1e-3
    losses[: np.searchsorted(LOG_LRS, -5)] = 2.5  # a lower start does not change the top
    assert halfway(LRS, losses) == pytest.approx(1e-3, rel=1e-6)


@pytest.mark.parametrize("frac, log_lr", [(0.25, -2.5), (0.75, -3.5)])
def test_halfway_frac_picks_another_level(frac, log_lr):
    assert halfway(LRS, flat_fall_rise(-4.0, -2.0), frac=frac) == pytest.approx(10**log_lr, rel=1e-6)


def test_minimum_is_a_tenth_of_the_lr_at_the_lowest_loss():
    losses = (LOG_LRS + 2) ** 2 + 1  # lowest at 1e-2
    assert minimum(LRS, losses) == pytest.approx(at(-2) / 10)


def test_steep_is_where_the_loss_falls_fastest():
    losses = 2 - np.tanh(2 * (LOG_LRS + 3))  # falls fastest at 1e-3
    assert steep(LRS, losses) == pytest.approx(at(-3))


def test_valley_is_the_middle_of_the_longest_descending_stretch():
    assert valley(LRS, flat_fall_rise(-4.0, -2.0)) == pytest.approx(10**-3, rel=0.15)


def test_valley_ignores_a_short_dip_before_the_long_descent():
    losses = flat_fall_rise(-4.0, -2.0) + np.where(np.abs(LOG_LRS + 5) < 0.2, -0.3 * (0.2 - np.abs(LOG_LRS + 5)), 0)
    assert valley(LRS, losses) == pytest.approx(10**-3, rel=0.15)


def test_lr_range_brackets_the_fall():
    low, high = lr_range(LRS, flat_fall_rise(-4.0, -2.0))
    # 10% of the fall happens 0.2 decades after it starts; within 10% of the bottom 0.2 decades before it ends
    assert low == pytest.approx(10**-3.8, rel=0.15)
    assert high == pytest.approx(10**-2.2, rel=0.15)
    assert low < high


ALL_FUNCS = [halfway, minimum, steep, valley, lr_range, *suggest.DEFAULT_FUNCS]


def finite_lrs(value):
    return [v for v in (value if isinstance(value, tuple) else (value,)) if not math.isnan(v)]


@pytest.mark.parametrize("func", ALL_FUNCS, ids=lambda f: f.__name__)
@pytest.mark.parametrize(
    "losses",
    [
        [],
        [1.0],
        [2.0, 1.0],
        [2.0, 1.5, 1.0],
        [math.nan] * 20,
        [1.0] * 50,
        [math.inf, 1.0, 0.5],
        [1.0, 0.5, math.nan],
    ],
    ids=["empty", "one", "two", "three", "all_nan", "constant", "inf_first", "nan_last"],
)
def test_short_or_broken_curves_give_an_lr_or_nan_with_a_warning(func, losses):
    lrs = list(np.logspace(-5, 0, len(losses)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = func(lrs, losses)
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        assert isinstance(v, float)
    if any(math.isnan(v) for v in values):
        assert any(issubclass(w.category, SuggestionWarning) for w in caught)
    for v in finite_lrs(value):
        assert min(lrs) / 10 <= v <= max(lrs)


curves = st.integers(0, 60).flatmap(
    lambda n: st.tuples(
        st.lists(st.floats(1e-8, 1e3), min_size=n, max_size=n).map(sorted),
        st.lists(st.one_of(st.floats(-1e6, 1e6), st.just(math.nan), st.just(math.inf)), min_size=n, max_size=n),
    )
)


@settings(max_examples=150, deadline=None)
@given(curves)
def test_random_curves_never_crash_and_stay_in_the_tested_range(curve):
    lrs, losses = curve
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SuggestionWarning)
        for func in ALL_FUNCS:
            value = func(lrs, losses)
            for v in finite_lrs(value):
                assert min(lrs) / 10 * (1 - 1e-9) <= v <= max(lrs) * (1 + 1e-9), func.__name__
            if isinstance(value, tuple):
                low, high = value
                assert math.isnan(low) or math.isnan(high) or low <= high


@pytest.mark.parametrize("func", [halfway, lr_range], ids=lambda f: f.__name__)
@pytest.mark.parametrize("frac", [0.0, 1.0, -0.5])
def test_a_fraction_outside_0_1_is_an_error(func, frac):
    with pytest.raises(ValueError, match="frac"):
        func(LRS, flat_fall_rise(), frac=frac)
