"""The default suggestion's guards: a pick only inside the fall (after the loss has clearly fallen, before it
climbs), nothing read past the break, NaN with a warning when the curve gives no answer."""

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrcycle import suggest
from lrcycle.finder.suggest import SuggestionWarning

DATA = Path(__file__).parent / "data"
N = 100  # lr_find's default: 100 iterations from 1e-7 to 10
LOG_LRS = np.linspace(-7, 1, N)
LRS = 10**LOG_LRS


def test_the_flat_start_curve_gets_a_pick_inside_its_fall():
    # a recorded test whose old default sat on the flat start (1.9e-6): the loss falls between 1e-2 and 3e-1
    curve = json.loads((DATA / "flat_start_pick.json").read_text())
    lrs, smoothed = curve["lrs"], curve["smooth_losses"]
    assert 0.02 <= suggest.cliff(lrs, smoothed) <= 0.2
    low, high = suggest.cliff_band(lrs, smoothed)
    assert 1e-2 <= low <= high <= 3e-1  # the band, too, stays on the fall


def test_a_flat_noisy_curve_is_nan_with_a_warning_never_a_tiny_lr():
    rng = np.random.default_rng(0)
    raw = 0.69 + rng.normal(0, 0.02, N)
    raw[5:9] += 0.08  # a bump of noise at the start is no top of a fall, and what follows no climb
    with pytest.warns(SuggestionWarning, match="never falls"):
        assert math.isnan(suggest.cliff(LRS, suggest.smooth(raw)))


def test_a_fall_within_the_noise_is_no_fall_and_the_pick_comes_from_the_break():
    rng = np.random.default_rng(1)
    sigma = 0.05
    raw = np.interp(LOG_LRS, [-3, -2], [1.0, 1.0 - 0.5 * sigma]) + rng.normal(0, sigma, N)  # falls half a std
    raw = np.where(LOG_LRS > -0.5, 1.0 + 10 ** (2 * (LOG_LRS + 0.5)), raw)  # then diverges from 10**-0.5
    with pytest.warns(SuggestionWarning, match="never falls clearly"):
        lr = suggest.cliff(LRS, suggest.smooth(raw))
    assert 10**-0.5 / suggest.CLIFF_DIVISOR <= lr <= 1.0 / suggest.CLIFF_DIVISOR  # a quarter of where it breaks


def fall_curve(fall_from, fall_to, climb_at, start=1.0, bottom=0.2):
    """Noise-free raw losses: flat at `start`, a straight fall in log lr to `bottom`, flat, a climb from `climb_at`."""
    raw = np.interp(LOG_LRS, [fall_from, fall_to], [start, bottom])
    return np.where(LOG_LRS > climb_at, bottom + 3 * (LOG_LRS - climb_at), raw)


def test_no_pick_past_the_point_where_the_loss_starts_to_climb():
    # settings that would put the pick a decade past the bottom: the climb's start caps it
    rng = np.random.default_rng(3)
    raw = fall_curve(-4.0, -2.0, climb_at=-1.5) + rng.normal(0, 0.01, N)
    lr = suggest.cliff(LRS, None, raw, factor=1e3, divisor=1.0, rise=5.0)
    assert 1e-2 < lr <= 10**-1.5  # on the flat bottom, not past it


def test_no_pick_before_the_loss_has_fallen_clearly():
    rng = np.random.default_rng(2)
    sigma, slope = 0.02, 0.8 / 1.5  # falls from 1.0 at 1e-3 to 0.2 at 10**-1.5: 0.53 a decade
    raw = fall_curve(-3.0, -1.5, climb_at=-1.0) + rng.normal(0, sigma, N)
    # settings that would put the pick on the first points: the clear fall is the floor
    lr = suggest.cliff(LRS, None, raw, factor=1e-6)
    assert lr > 10 ** (-3.0 + sigma / slope)  # past where the loss has fallen by one std of its noise


def test_spikes_and_zeros_past_the_break_set_neither_top_nor_bottom():
    raw = fall_curve(-4.0, -2.0, climb_at=-1.0)
    clean = suggest.cliff(LRS, None, raw)
    broken = np.nonzero(LOG_LRS > -1.0)[0]
    raw[broken] = np.where(np.arange(len(broken)) % 2, 0.0, 300.0)  # a diverging model: 0 between hundreds
    wild = suggest.cliff(LRS, None, raw)
    first_fall = 10**-4.0
    assert first_fall < wild <= LRS[broken[0]]
    assert wild == pytest.approx(clean, rel=0.5)


# ---------------------------------------------------------------- generated curves


@st.composite
def unstable_curves(draw):
    """(lrs, raw losses, (fall start, fall end, break) in log10 lr): a flat noisy start, a clear fall, a flat
    bottom, an unstable stretch (spikes far above the start, near-zero losses between) and a climb."""
    start = draw(st.floats(0.3, 3.0))
    sigma = start * draw(st.floats(0.002, 0.03))
    drop = start * draw(st.floats(0.3, 0.95))  # at least 10 stds
    fall_from = draw(st.floats(-5.5, -2.5))
    fall_to = fall_from + draw(st.floats(0.8, 2.0))
    breaks = fall_to + draw(st.floats(0.1, 0.8))
    climb = breaks + draw(st.floats(0.2, 0.8))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    raw = np.interp(LOG_LRS, [fall_from, fall_to], [start, start - drop]) + rng.normal(0, sigma, N)
    wild = np.nonzero((LOG_LRS > breaks) & (LOG_LRS <= climb))[0]
    spikes = start * 10 ** rng.uniform(0.3, 2.5, len(wild))
    zeros = 10 ** rng.uniform(-7, -3, len(wild))
    spike_first = np.arange(len(wild)) % 2 == 0
    raw[wild] = np.where(spike_first | (rng.random(len(wild)) < 0.3), spikes, zeros)
    raw[LOG_LRS > climb] = start * 10 ** (2 * (LOG_LRS[LOG_LRS > climb] - climb) + 0.5)
    return LRS, np.maximum(raw, 0.0), (fall_from, fall_to, breaks)


@settings(max_examples=60, deadline=None)
@given(unstable_curves())
def test_the_default_and_its_band_lie_inside_the_fall(curve):
    lrs, raw, (fall_from, fall_to, breaks) = curve
    smoothed = suggest.smooth(raw)  # what lr_find records; cliff reads the raw losses back from it
    lr = suggest.cliff(lrs, smoothed)
    low, high = suggest.cliff_band(lrs, smoothed)
    for value in (lr, low, high):
        assert 10**fall_from < value <= 10**breaks * (1 + 1e-9)
    assert low <= lr <= high


# ---------------------------------------------------------------- warnings point at the caller


def test_a_rules_warning_points_at_the_callers_line():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        suggest.cliff(LRS, np.ones(N))
        suggest.valley(LRS[:1], [1.0])
        suggest.check_agreement([1e-3, 1e-1])
    assert len(caught) == 3
    assert all(w.filename == __file__ for w in caught), [w.filename for w in caught]
