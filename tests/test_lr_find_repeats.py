"""`lr_find(n_repeats=k)`: k range tests from the same start on k batch orders, restored exactly, their raw
losses averaged iteration by iteration and smoothed as the recorder smooths; the default's spread is the
range of its picks on the single curves."""

import math
import warnings

import numpy as np
import pytest
import torch
from conftest import make_dls, make_mlp
from test_recorder import debiased_ema as smoothed  # the recorder's smoothing, written out

from lrcycle import Learner, suggest


def learner():
    torch.manual_seed(0)
    return Learner(make_dls(n_train=160), make_mlp(), progress=False, device="cpu")


def single_curves(learn, k, num_it):
    """The k tests `n_repeats=k` runs, one call each: the seed drawn first, the first test on the RNG as it
    then stands, test r after `torch.manual_seed(seed + r)`."""
    seed = int(torch.randint(2**31, ()))
    curves = []
    for r in range(k):
        if r:
            torch.manual_seed(seed + r)
        result = learn.lr_find(num_it=num_it, stop_div=False)
        curves.append((result.lrs, result.losses))
    return curves


def test_repeats_average_the_raw_losses_of_tests_on_other_batch_orders():
    learn, k, num_it = learner(), 3, 40
    rng = torch.get_rng_state()
    curves = single_curves(learn, k, num_it)
    torch.set_rng_state(rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", suggest.SuggestionWarning)
        result = learn.lr_find(num_it=num_it, stop_div=False, n_repeats=k)
    assert all(c[0] == curves[0][0] for c in curves)  # the same lrs every time
    assert any(c[1] != curves[0][1] for c in curves[1:])  # other batch orders, other losses
    mean = [float(np.mean([c[1][i] for c in curves])) for i in range(num_it)]
    np.testing.assert_allclose(result.losses, mean, rtol=1e-12)
    np.testing.assert_allclose(result.smooth_losses, smoothed(mean), rtol=1e-12)
    assert result.lrs == curves[0][0]
    assert result.cliff == suggest.cliff(result.lrs, result.smooth_losses)
    picks = [suggest.cliff(lrs, smoothed(losses)) for lrs, losses in curves]
    assert result.suggestion_band == pytest.approx((min(picks), max(picks)), rel=1e-9)


def test_repeats_put_everything_back_bit_for_bit():
    learn = learner()
    learn.fit(0.05, 1)  # an optimizer with momentum buffers
    weights = {k: v.clone() for k, v in learn.model.state_dict().items()}
    opt_state = [t.clone() for s in learn.opt.state.values() for t in s.values() if torch.is_tensor(t)]
    rng, np_rng = torch.get_rng_state(), np.random.get_state()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", suggest.SuggestionWarning)
        learn.lr_find(num_it=30, n_repeats=3)
    assert all(torch.equal(v, learn.model.state_dict()[k]) for k, v in weights.items())
    after = [t for s in learn.opt.state.values() for t in s.values() if torch.is_tensor(t)]
    assert all(torch.equal(a, b) for a, b in zip(opt_state, after, strict=True))
    assert torch.equal(rng, torch.get_rng_state())
    assert all(np.array_equal(a, b) for a, b in zip(np_rng[1:2], np.random.get_state()[1:2]))


def test_one_test_reports_cliffs_own_band():
    learn = learner()
    result = learn.lr_find(num_it=60, stop_div=False)
    band = suggest.cliff_band(result.lrs, result.smooth_losses, result.losses)
    assert result.suggestion_band == band
    assert band[0] <= result.cliff <= band[1] or not all(map(math.isfinite, band))


def test_a_band_is_drawn_on_the_plot():
    learn = learner()
    learn.lr_find(num_it=60, stop_div=False)
    ax = learn.recorder.plot()
    assert any("spread" in t.get_text() for t in ax.get_legend().get_texts())


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_n_repeats_must_be_a_positive_integer(bad):
    learn = learner()
    with pytest.raises(ValueError, match="n_repeats"):
        learn.lr_find(n_repeats=bad)
    assert learn.opt is None
