"""`valley` is fastai 2.8's rule, checked against its formula written out here on recorded and generated curves."""

import json
from pathlib import Path

import numpy as np
import pytest

from lrcycle import suggest

DATA = Path(__file__).parent / "data"
RECORDED = json.loads((DATA / "range_test_curves.json").read_text())["curves"]
FLAT_START = json.loads((DATA / "flat_start_pick.json").read_text())


def fastai_valley(lrs, smooth_losses, num_it=100):
    """fastai 2.8: on the recorder's lrs and smoothed losses without the first num_it // 10 and the last 5
    points, lds[i] = 1 + the longest lds[j] (j < i) with losses[j] > losses[i] (1 when none); `end` is the
    first index of the longest, `start = end - lds[end]`, and the lr is at `start + int(s) + int(s / 2)`,
    `s = (end - start) / 3`."""
    lrs, losses = list(lrs)[num_it // 10 : -5], list(smooth_losses)[num_it // 10 : -5]
    lds = [1] * len(losses)
    for i in range(1, len(losses)):
        for j in range(i):
            if losses[i] < losses[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
    end = 0
    for i in range(len(losses)):
        if lds[i] > lds[end]:
            end = i
    start = end - lds[end]
    sections = (end - start) / 3
    return lrs[start + int(sections) + int(sections / 2)]


def generated(seed):
    """A range test's smoothed curve: flat with noise, a fall somewhere, a climb, as lr_find records it."""
    rng = np.random.default_rng(seed)
    log_lrs = np.linspace(-7, 1, 100)
    fall_from = rng.uniform(-6, -2)
    fall_to = fall_from + rng.uniform(0.5, 2.5)
    start, drop = rng.uniform(0.5, 3), rng.uniform(0.1, 0.9)
    raw = np.interp(log_lrs, [fall_from, fall_to], [start, start * (1 - drop)])
    raw = raw + np.where(log_lrs > fall_to + 0.5, 5 * (log_lrs - fall_to - 0.5) ** 2, 0)
    raw = raw + rng.normal(0, start * rng.uniform(0.005, 0.1), 100)
    return list(10**log_lrs), list(suggest.smooth(raw))


CURVES = {name: (c["lrs"], c["smooth_losses"]) for name, c in RECORDED.items() if len(c["lrs"]) >= 30}
CURVES["flat-start-pick"] = (FLAT_START["lrs"], FLAT_START["smooth_losses"])
CURVES |= {f"generated-{seed}": generated(seed) for seed in range(6)}


def test_there_are_at_least_twenty_recorded_curves():
    assert sum(not name.startswith("generated") for name in CURVES) >= 20


@pytest.mark.parametrize("name", list(CURVES))
def test_valley_is_fastais_formula(name):
    lrs, smooth_losses = CURVES[name]
    assert suggest.valley(lrs, smooth_losses) == pytest.approx(fastai_valley(lrs, smooth_losses), rel=1e-9)
