"""examples/own_loop.py runs on CPU: a range test and one cycle in a plain loop, no Learner."""

import importlib.util
import warnings
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "own_loop.py"


@pytest.mark.slow
def test_own_loop_example_trains_at_the_range_tests_lr(capsys):
    spec = importlib.util.spec_from_file_location("own_loop", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # the scheduler is stepped exactly within its plan
        results = module.main(epochs=2)
    assert 1e-7 < results["lr"] < 10
    assert results["accuracy"] > 0.8  # ten classes: chance is 0.1
    out = capsys.readouterr().out
    assert "range test: valley" in out and f"{results['accuracy']:.3f}" in out
