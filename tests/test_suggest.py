"""Suggestion functions on curves whose answer is known by construction, and on any curve at all."""

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrcycle import suggest
from lrcycle.finder.suggest import SuggestionWarning, halfway, lr_range, minimum, steep, valley

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


def test_valley_is_two_thirds_along_the_longest_decreasing_subsequence():
    # flat at 2 until 1e-4 (index 40), a straight fall to 1e-2 (index 80), flat: after the 10 skipped points, the
    # longest decreasing subsequence is one flat point and the 40 falling ones, ending at index 70 of the points
    # read; start = 70 - 41 = 29, s = 41 / 3, index 29 + 13 + 6 = 48 of the points read: 10**(-6 + 58 * 0.05)
    assert valley(LRS, flat_fall_rise(-4.0, -2.0)) == pytest.approx(10**-3.1, rel=1e-9)


def test_valley_skips_points_a_run_of_consecutive_decreases_would_stop_at():
    losses = flat_fall_rise(-4.0, -2.0)
    losses[60:80:4] += 0.01  # small bumps on the fall: a subsequence steps over them, fastai's valley does too
    assert valley(LRS, losses) == pytest.approx(valley(LRS, flat_fall_rise(-4.0, -2.0)), rel=0.15)


def test_lr_range_brackets_the_fall():
    low, high = lr_range(LRS, flat_fall_rise(-4.0, -2.0))
    # 10% of the fall happens 0.2 decades after it starts; within 10% of the bottom 0.2 decades before it ends
    assert low == pytest.approx(10**-3.8, rel=0.15)
    assert high == pytest.approx(10**-2.2, rel=0.15)
    assert low < high


ALL_FUNCS = [suggest.cliff, suggest.cliff_band, halfway, minimum, steep, valley, lr_range, *suggest.DEFAULT_FUNCS]


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


# ---------------------------------------------------------------- divergence, averaging, noise, agreement


def fall_then_climb(bottom_at=-2.0, climb_per_decade=4.0, high=2.0, low=1.0):
    """Flat at `high`, a straight fall to `low` ending at `bottom_at`, then a straight climb in log lr."""
    x = LOG_LRS
    return np.interp(x, [bottom_at - 2, bottom_at], [high, low]) + np.where(
        x > bottom_at, climb_per_decade * (x - bottom_at), 0.0
    )


@pytest.mark.parametrize("rise", [0.25, 0.5, 1.0, 2.0])
def test_divergence_is_where_the_loss_climbs_back_over_the_level(rise):
    # from its bottom (1 at 1e-2) the loss climbs 4 per decade: it passes 1 + rise * (2 - 1) after rise/4 decades
    assert suggest.divergence(LRS, fall_then_climb(), rise=rise) == pytest.approx(10 ** (-2 + rise / 4), rel=1e-6)


def test_divergence_is_the_last_lr_when_the_loss_never_climbs_that_far():
    losses = fall_then_climb()[: np.searchsorted(LOG_LRS, -1.9)]  # stopped 0.1 decade past the bottom
    assert suggest.divergence(LRS[: len(losses)], losses, rise=1.0) == pytest.approx(LRS[len(losses) - 1])


def test_divergence_stops_at_the_first_non_finite_loss():
    losses = fall_then_climb(climb_per_decade=0.1)  # would pass the level only after 10 decades
    cut = np.searchsorted(LOG_LRS, -1.5)
    losses[cut] = math.nan
    assert suggest.divergence(LRS, losses, rise=1.0) == pytest.approx(LRS[cut - 1])


def test_smooth_is_the_debiased_moving_average():
    losses, beta = [3.0, 1.0, 2.0], 0.9
    # avg_n = beta * avg_{n-1} + (1 - beta) * loss_n, then divided by 1 - beta**n
    a1 = 0.1 * 3.0
    a2 = 0.9 * a1 + 0.1 * 1.0
    a3 = 0.9 * a2 + 0.1 * 2.0
    expected = [a1 / (1 - 0.9), a2 / (1 - 0.9**2), a3 / (1 - 0.9**3)]
    assert suggest.smooth(losses, beta) == pytest.approx(expected)


def test_average_curves_is_the_mean_loss_over_the_common_finite_prefix():
    lrs = list(LRS[:6])
    a, b = [4.0, 3.0, 2.0, 1.0, 2.0, 3.0], [2.0, 3.0, 4.0, math.inf, 0.0, 0.0]
    c = [1.0, 1.0, 1.0, 1.0, 1.0]  # stopped one iteration earlier
    got_lrs, mean, smoothed = suggest.average_curves([(lrs, a), (lrs, b), (lrs[:5], c)])
    # b's infinite loss at iteration 3 ends the average after three iterations
    assert got_lrs == pytest.approx(lrs[:3])
    assert mean == pytest.approx([7 / 3, 7 / 3, 7 / 3])
    assert smoothed == pytest.approx([7 / 3] * 3)  # a constant stays constant under the debiased average


def test_average_of_one_curve_is_that_curve_and_the_recorders_smoothing():
    losses = np.linspace(3, 1, 20)
    lrs, mean, smoothed = suggest.average_curves([(LRS[:20], losses)])
    assert mean == pytest.approx(losses)
    avg, expected = 0.0, []
    for n, loss in enumerate(losses, start=1):
        avg = 0.98 * avg + 0.02 * loss
        expected.append(avg / (1 - 0.98**n))
    assert smoothed == pytest.approx(expected)


def test_average_curves_refuses_curves_over_different_lrs():
    with pytest.raises(ValueError, match="curves"):
        suggest.average_curves([(LRS[:5], np.ones(5)), (2 * LRS[:5], np.ones(5))])


@pytest.mark.parametrize("curves", [[], [(LRS[:5], np.ones(4))]], ids=["none", "lengths_differ"])
def test_average_curves_bad_input_names_the_argument(curves):
    with pytest.raises(ValueError, match="curves"):
        suggest.average_curves(curves)


@pytest.mark.parametrize("sigma", [0.01, 0.1, 0.5])
def test_loss_noise_recovers_the_std_of_white_noise_around_a_trend(sigma):
    rng = np.random.default_rng(0)
    trend = np.linspace(2.0, 1.0, 4000)  # the slow fall must not count as noise
    assert suggest.loss_noise(trend + rng.normal(0, sigma, 4000)) == pytest.approx(sigma, rel=0.05)


def test_loss_noise_ignores_a_few_jumps():
    rng = np.random.default_rng(1)
    losses = 1 + rng.normal(0, 0.1, 4000)
    losses[::200] += 50  # 20 divergence-sized spikes
    assert suggest.loss_noise(losses) == pytest.approx(0.1, rel=0.1)


def test_check_agreement_warns_above_the_factor_and_returns_the_ratio():
    with pytest.warns(SuggestionWarning, match="disagree by 5.0x"):
        assert suggest.check_agreement({"a": 1e-3, "b": 5e-3, "c": (2e-3, 4e-3)}, factor=4) == pytest.approx(5)


def test_check_agreement_is_silent_within_the_factor_and_skips_nan():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert suggest.check_agreement([1e-3, 3e-3, math.nan], factor=4) == pytest.approx(3)


def test_check_agreement_bad_factor_names_the_argument():
    with pytest.raises(ValueError, match="factor"):
        suggest.check_agreement([1e-3], factor=0.5)


def test_unsmooth_gives_back_the_raw_losses():
    raw = 2 + np.sin(np.arange(50.0)) + np.linspace(0, 3, 50)
    assert suggest.unsmooth(suggest.smooth(raw)) == pytest.approx(raw, rel=1e-9)


# ---------------------------------------------------------------- cliff, the default


def fall_flat_climb(high=2.3, low=0.3, climb_per_decade=3.0):
    """Raw losses: flat at `high`, a straight fall to `low` from 1e-4 to 1e-2, flat to 1e-1, then a straight
    climb of `climb_per_decade`."""
    x = LOG_LRS
    return np.interp(x, [-4.0, -2.0], [high, low]) + np.where(x > -1.0, climb_per_decade * (x - -1.0), 0.0)


def expected_cliff(factor, divisor, near, rise, fall_shift=0.0, break_shift=0.0, high=2.3, low=0.3, climb=3.0):
    """min(factor * fallen, broken / divisor) on fall_flat_climb, from its straight segments, kept inside the fall:
    not past 1e-1, where the climb starts, nor before the loss is 1% (the least clear fall, without noise) below
    its start. `broken` is read no further than the break, the first loss 1% above the start."""
    fall, raw = high - low, fall_flat_climb(high, low, climb)
    fallen = -4.0 + (high - (low + near * fall + fall_shift)) / (fall / 2)  # falls fall/2 a decade
    broken = -1.0 + (rise * fall + break_shift) / climb  # climbs `climb` a decade from the bottom
    broken = min(broken, LOG_LRS[np.argmax(raw > high + max(0.01 * high + break_shift, 0.0))])
    clear = LRS[np.argmax(raw <= 0.99 * high)]
    return float(np.clip(min(factor * 10**fallen, 10**broken / divisor), clear, 1e-1))


@pytest.mark.parametrize(
    "factor, divisor, near, rise, window",
    [(3.0, 4.0, 0.3, 2.0, 3), (1000.0, 4.0, 0.3, 0.5, 3), (2.0, 2.0, 0.1, 1.0, 1), (1e4, 8.0, 0.5, 1.5, 5)],
    ids=["fallen_wins", "broken_wins", "window_1", "window_5"],
)
def test_cliff_is_the_smaller_of_factor_times_fallen_and_broken_over_divisor(factor, divisor, near, rise, window):
    settings = dict(factor=factor, divisor=divisor, near=near, rise=rise, window=window)
    lr = suggest.cliff(LRS, None, fall_flat_climb(), **settings)
    assert lr == pytest.approx(expected_cliff(factor, divisor, near, rise), rel=1e-6)


def test_cliff_reads_the_same_raw_losses_back_from_the_smoothed_curve():
    raw = fall_flat_climb()
    assert suggest.cliff(LRS, suggest.smooth(raw)) == pytest.approx(suggest.cliff(LRS, None, raw), rel=1e-6)


def test_cliff_defaults_are_the_fitted_constants():
    s = suggest
    expected = expected_cliff(s.CLIFF_FACTOR, s.CLIFF_DIVISOR, s.CLIFF_NEAR, s.CLIFF_RISE)
    assert suggest.cliff(LRS, suggest.smooth(fall_flat_climb())) == pytest.approx(expected, rel=1e-6)


def test_cliff_without_a_real_fall_is_the_break_over_the_divisor_with_a_warning():
    raw = fall_flat_climb(high=2.3, low=2.25)  # falls 2% of its top: too little to read
    broken = LRS[np.argmax(raw > 2.3 * 1.01)]  # it climbs 1% (the least clear climb, without noise) above its start
    with pytest.warns(SuggestionWarning, match="never falls clearly.*break alone"):
        assert suggest.cliff(LRS, None, raw, divisor=4.0, rise=2.0) == pytest.approx(broken / 4, rel=1e-9)


def test_cliff_without_a_fall_or_a_break_is_nan_with_a_warning():
    with pytest.warns(SuggestionWarning, match="never falls clearly.*nor breaks"):
        assert math.isnan(suggest.cliff(LRS, None, np.full(len(LRS), 2.3)))


def test_cliff_ignores_a_single_spike():
    raw = fall_flat_climb()
    raw[np.searchsorted(LOG_LRS, -1.5)] = 50.0  # one bad batch on the flat bottom
    assert suggest.cliff(LRS, None, raw, window=3) == pytest.approx(suggest.cliff(LRS, None, fall_flat_climb()))


def test_cliff_ignores_the_loss_past_four_times_its_start():
    raw = fall_flat_climb(climb_per_decade=10.0)
    wild = raw > 4 * 2.3  # broken weights: the loss swings, down to 0
    raw[wild] = np.where(np.arange(wild.sum()) % 2, 0.0, 50.0)
    expected = expected_cliff(1e4, 4.0, 0.3, 2.0, climb=10.0)  # the break before the swings
    assert suggest.cliff(LRS, None, raw, factor=1e4, divisor=4.0, near=0.3, rise=2.0) == pytest.approx(
        expected, rel=1e-6
    )


def test_cliff_uses_the_last_lr_as_the_break_when_the_test_stopped_before_the_level():
    raw = fall_flat_climb()[: np.searchsorted(LOG_LRS, -0.9)]  # stopped 0.1 decade into the climb
    lr = suggest.cliff(LRS, None, raw, factor=1e6, divisor=2.0)
    assert lr == pytest.approx(LRS[len(raw) - 1] / 2.0)


@pytest.mark.parametrize("name, value", [("factor", 0), ("divisor", -1), ("rise", 0), ("near", 1.0), ("window", 0)])
def test_cliff_bad_settings_name_the_argument(name, value):
    with pytest.raises(ValueError, match=name):
        suggest.cliff(LRS, None, fall_flat_climb(), **{name: value})


@pytest.mark.parametrize("noise, window, factor", [(0.0, 3, 3.0), (0.3, 3, 3.0), (0.3, 7, 3.0), (0.2, 3, 1000.0)])
def test_cliff_band_moves_each_level_by_the_medians_standard_error(noise, window, factor):
    # with scale 1 each level moves by one standard error of the running median
    err = noise * math.sqrt(math.pi / (2 * window))
    picks = [expected_cliff(factor, 4.0, 0.3, 2.0, f, b) for f in (-err, err) for b in (-err, err)]
    settings = dict(factor=factor, divisor=4.0, near=0.3, rise=2.0, window=window)
    band = suggest.cliff_band(LRS, None, fall_flat_climb(), noise=noise, scale=1.0, **settings)
    assert band == pytest.approx((min(picks), max(picks)), rel=1e-6)


def test_a_level_moved_below_the_bottom_is_reached_at_the_bottom():
    # fall_flat_climb reaches its bottom, 0.3, at 1e-2; a level 0.1 below that is never reached
    assert suggest.fallen_at(LRS, fall_flat_climb(), near=0.1, shift=-0.3) == pytest.approx(1e-2, rel=1e-9)
    low, high = suggest.cliff_band(LRS, None, fall_flat_climb(), noise=1.0, scale=1.0, near=0.1, window=1)
    assert low <= suggest.cliff(LRS, None, fall_flat_climb(), near=0.1, window=1) <= high


def test_a_break_level_moved_below_the_bottom_is_passed_at_the_bottom():
    # fall_flat_climb's bottom is 0.3 from 1e-2 on, after a fall of 2.0; rise 0.5 and shift -1.1 put the level at 0.2
    assert suggest.divergence(LRS, fall_flat_climb(), rise=0.5, shift=-1.1) == pytest.approx(1e-2, rel=1e-9)
    # found by hypothesis: a loss that falls at once to its last point; the band must stay within the tested lrs
    lrs, losses = [0.5, 0.5, 1.0], [1.0, 0.0, 0.0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SuggestionWarning)  # three points: too short to read a fall from
        low, high = suggest.cliff_band(lrs, losses)
    assert (math.isnan(low) and math.isnan(high)) or 0.5 / 10 <= low <= high <= 1.0


def test_cliff_band_reads_the_noise_of_the_first_half_of_the_points_read():
    rng = np.random.default_rng(0)
    raw = fall_flat_climb() + rng.normal(0, 0.05, len(LRS))
    read = len(LRS) - 10  # the first 10 points are skipped
    sigma = suggest.loss_noise(raw[10 : 10 + read // 2])
    assert suggest.cliff_band(LRS, None, raw) == pytest.approx(suggest.cliff_band(LRS, None, raw, noise=sigma))
    low, high = suggest.cliff_band(LRS, None, raw)
    assert low <= suggest.cliff(LRS, None, raw) <= high


def test_cliff_band_scale_multiplies_the_standard_error():
    wide = suggest.cliff_band(LRS, None, fall_flat_climb(), noise=0.1, scale=3.0)
    assert wide == pytest.approx(suggest.cliff_band(LRS, None, fall_flat_climb(), noise=0.3, scale=1.0))


@pytest.mark.parametrize("ratio, warns", [(1.5, False), (2.5, True)])
def test_check_agreement_warns_by_default_above_agree_factor(ratio, warns):
    picks = [1e-3, 1e-3 * ratio * suggest.AGREE_FACTOR / 2]  # max/min = ratio * AGREE_FACTOR / 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        suggest.check_agreement(picks)
    assert any(issubclass(w.category, SuggestionWarning) for w in caught) == warns


@pytest.mark.parametrize("near", [0.1, 0.3, 0.5])
def test_fallen_at_is_the_first_lr_within_near_of_the_fall_from_the_bottom(near):
    # fall_flat_climb falls 1 a decade from 2.3 at 1e-4: it reaches 0.3 + near * 2.0 after 2 - 2 near decades
    assert suggest.fallen_at(LRS, fall_flat_climb(), near) == pytest.approx(10 ** (-2 - 2 * near), rel=1e-6)


def test_fallen_at_is_nan_when_the_loss_falls_less_than_min_drop():
    assert math.isnan(suggest.fallen_at(LRS, fall_flat_climb(high=2.3, low=2.25), 0.3, min_drop=0.05))
