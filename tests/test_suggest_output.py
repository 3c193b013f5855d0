"""What a person reads from a range test: the printed suggestions, the warnings (pointed at their own line,
only the ones that matter) and the plot (the default bold, the legend off the curve)."""

import math
import re
import warnings

import pytest
from conftest import make_dls, make_mlp

from lrcycle import Learner, suggest
from lrcycle.finder.suggest import SuggestionWarning


def learner():
    return Learner(make_dls(), make_mlp(), progress=False)


def fixed(lrs, smooth_losses):
    return 1.23456e-3


def finds_nothing(lrs, smooth_losses):
    warnings.warn("finds_nothing: nothing here", SuggestionWarning, stacklevel=2)
    return math.nan


def run(funcs, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = learner().lr_find(suggest_funcs=funcs, num_it=30, **kwargs)
    return result, [w for w in caught if issubclass(w.category, SuggestionWarning)]


def test_print_shows_every_suggestion_to_three_significant_digits():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SuggestionWarning)
        result = learner().lr_find(num_it=40)
    text = repr(result)
    shown = []
    for name, value in result.suggestions.items():
        parts = value if isinstance(value, tuple) else (value,)
        cells = ", ".join(format(v, ".3g") for v in parts)
        shown.append(f"{name}=({cells})" if isinstance(value, tuple) else f"{name}={cells}")
    assert text == f"SuggestedLRs({', '.join(shown)})"
    assert str(result) == text
    for number in re.findall(r"[0-9.]+(?:e[-+]\d+)?", text):
        mantissa = number.split("e")[0].replace(".", "").lstrip("0")
        assert len(mantissa) <= 3, number


def test_another_rules_nan_is_printed_not_warned_when_the_default_found_an_lr():
    result, caught = run([fixed, finds_nothing])
    assert caught == []
    assert math.isnan(result.finds_nothing)
    assert "finds_nothing=nan" in repr(result)
    assert "fixed=0.00123" in repr(result)


def test_every_warning_is_shown_when_the_default_found_nothing():
    result, caught = run([finds_nothing, fixed])
    assert [str(w.message) for w in caught] == ["finds_nothing: nothing here"]
    assert math.isnan(result.finds_nothing) and result.fixed == pytest.approx(1.23456e-3)


def test_the_defaults_warning_points_at_the_users_call():
    # lrs too small to move the weights: the loss never falls, and the default says so
    result, caught = run([suggest.cliff, suggest.valley], start_lr=1e-12, end_lr=1e-11)
    assert math.isnan(result.cliff)
    assert caught and all(w.filename == __file__ for w in caught), [(w.filename, w.lineno) for w in caught]


def test_the_plot_draws_the_default_boldly_and_keeps_the_legend_off_the_curve():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SuggestionWarning)
        result = learner().lr_find(num_it=40, suggest_funcs=[fixed, suggest.steep, suggest.minimum])
    result.suggestion_band = (1e-3, 2e-3)
    ax = result.plot()
    marks = [line for line in ax.get_lines() if len(set(line.get_xdata())) == 1 and len(line.get_xdata()) == 2]
    default = [line for line in marks if line.get_xdata()[0] == pytest.approx(1.23456e-3)]
    others = [line for line in marks if line not in default]
    assert default and others
    alpha = lambda line: 1.0 if line.get_alpha() is None else line.get_alpha()
    assert all(alpha(d) == 1.0 and alpha(o) < 0.6 for d in default for o in others)
    assert all(d.get_linewidth() > 2 * o.get_linewidth() for d in default for o in others)
    ax.figure.canvas.draw()
    legend, axes = ax.get_legend().get_window_extent(), ax.get_window_extent()
    assert legend.x0 >= axes.x1  # beside the axes, never over the curve
