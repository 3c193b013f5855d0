"""Every fit form records the lrs and momenta the code before the schedule refactor recorded, bit for bit.

`tests/data/reference_traces.json` was made by `tests/make_reference_traces.py` at the commit it names,
before the refactor; this test runs the same cases on today's code. The one deliberate change is SGDR's
fastai 0.7 warm-up (lr/100 for the fit's first nb/20 iterations): those iterations are checked against that
formula, the rest against the reference.
"""

import json
import math
from pathlib import Path

import pytest
from make_reference_traces import CASES, key, record

REFERENCE = json.loads((Path(__file__).parent / "data" / "reference_traces.json").read_text())["traces"]
CASE_KEYS = [(name, n, opt, acc) for name in CASES for n in (1, 3) for opt in ("sgd", "adam") for acc in (False, True)]


@pytest.mark.parametrize("name, n_groups, opt, accumulate", CASE_KEYS, ids=[key(*k) for k in CASE_KEYS])
def test_fit_records_the_reference_trace(name, n_groups, opt, accumulate):
    expected = REFERENCE[key(name, n_groups, opt, accumulate)]
    got = record(name, n_groups, opt, accumulate)
    assert got["moms"] == expected["moms"]
    warm = 0
    if name == "sgdr":  # the first cycle is one epoch: 7 batches, or 4 steps of 2 accumulated batches
        first_cycle = 4 if accumulate else 7
        warm = math.ceil(first_cycle / 20)
        for g, trace in enumerate(expected["group_lrs"]):
            base = trace[0]  # the cosine starts at the group's lr
            assert got["group_lrs"][g][:warm] == [base / 100] * warm
    assert [t[warm:] for t in got["group_lrs"]] == [t[warm:] for t in expected["group_lrs"]]
    assert got["lrs"][warm:] == expected["lrs"][warm:]
