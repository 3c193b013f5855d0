"""The pure schedule math: annealer end points, and property tests that every shape stays within its bounds
and moves continuously where it should (hypothesis). References are the formulas, written out here."""

import math
from functools import partial

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrcycle import plans, schedules
from lrcycle.schedules import cyclic_cycle_ends

EPS = 1e-12
lrs = st.floats(1e-6, 10.0)
divs = st.floats(1.0, 1000.0)
pcts = st.floats(0.01, 0.99)
positions = st.floats(0.0, 1.0)
moms = st.floats(0.0, 0.999)


def test_annealers_go_from_start_to_end():
    for sched in (schedules.sched_lin, schedules.sched_cos, schedules.sched_exp):
        assert sched(2.0, 0.5, 0.0) == pytest.approx(2.0)
        assert sched(2.0, 0.5, 1.0) == pytest.approx(0.5)
    assert schedules.sched_lin(0.0, 1.0, 0.25) == 0.25
    assert schedules.sched_cos(0.0, 1.0, 0.25) == pytest.approx((1 - math.cos(math.pi / 4)) / 2)
    assert schedules.sched_exp(1e-4, 1e-2, 0.5) == pytest.approx(1e-3)
    assert schedules.sched_no(3.0, 1.0, 0.7) == 3.0


def test_combine_scheds_gives_each_phase_its_own_position():
    f = schedules.combine_scheds([0.3, 0.7], [partial(schedules.sched_lin, 0, 1), partial(schedules.sched_lin, 1, 3)])
    assert f(0.0) == 0 and f(0.15) == pytest.approx(0.5) and f(0.3) == pytest.approx(1.0)
    assert f(0.65) == pytest.approx(2.0) and f(1.0) == pytest.approx(3.0)


def test_combine_scheds_rejects_shares_that_do_not_sum_to_one():
    with pytest.raises(ValueError, match="pcts"):
        schedules.combine_scheds([0.3, 0.3], [math.cos, math.sin])


def test_cycle_bounds_double_with_cycle_mult():
    assert schedules.cycle_bounds(7, 1, 2, 5) == [0, 5, 15, 35]
    assert schedules.locate_cycle(14, [0, 5, 15, 35]) == (1, 9, 10)


def test_fit_plans_count_epochs_steps_and_cycle_ends():
    d = plans.PlanDefaults(n_groups=1, lr=0.1, moms=(0.95, 0.85, 0.95), steps_per_epoch=5)
    sgdr = plans.fit(d, 0.1, 3, cycle_len=1, cycle_mult=2)
    assert (sgdr.n_epoch, sgdr.n_steps, sgdr.cycle_ends) == (7, 35, [1, 3, 7])
    assert plans.fit(d, 0.1, 2, cycle_len=3, use_clr=(10, 10)).cycle_ends == [3, 6]
    assert plans.fit(d, 0.1, 4).cycle_ends == [1, 2, 3, 4]
    assert plans.fit_one_cycle(d, 5).cycle_ends == [5]
    assert plans.fit_flat_cos(d, 2).n_steps == 10


SPECS = {
    "constant": lambda: schedules.constant_schedule([0.1, 0.2], 2, 5),
    "sgdr": lambda: schedules.sgdr_schedule([0.1], 2, 1, 2, 5),
    "clr": lambda: schedules.clr_schedule([0.1], 2, 1, 1, 32.0, 5.0, (0.95, 0.85), 5),
    "clr_beta": lambda: schedules.clr_beta_schedule([0.1], 1, 2, 1, 10.0, 13.68, None, 5),
    "one_cycle": lambda: schedules.one_cycle_schedule([0.01, 0.1], 3, 25.0, 1e5, 0.3, (0.95, 0.85, 0.95), 4),
    "cyclic": lambda: schedules.cyclic_schedule([0.1], 3, [0.02], None, 2.5, "exp_range", 0.99, (0.9, 0.8), 4),
    "flat_cos": lambda: schedules.flat_cos_schedule([0.1], 4, 1e5, 0.75, 3),
    "sweep": lambda: schedules.sweep_schedule([1e-7, 1e-6], [1.0, 10.0], 30, 7),
}


@pytest.mark.parametrize("name", list(SPECS))
def test_a_schedule_is_rebuilt_from_its_plain_spec(name):
    schedule = SPECS[name]()
    again = schedules.build(schedule.spec)
    assert again.spec == schedule.spec and again.n_steps == schedule.n_steps
    assert again.cycle_ends == schedule.cycle_ends and again.lrs == schedule.lrs
    assert [again(i) for i in range(schedule.n_steps)] == [schedule(i) for i in range(schedule.n_steps)]
    assert all(isinstance(v, (str, int, float, bool, list, type(None))) for v in schedule.spec.values())


def test_build_rejects_an_unknown_builder():
    with pytest.raises(ValueError, match="spec"):
        schedules.build({"builder": "sawtooth"})


def test_flat_cos_is_flat_then_a_cosine_to_lr_over_div_final():
    lr, div_final, pct, n_epoch, steps = 0.1, 100.0, 0.75, 4, 5
    schedule = schedules.flat_cos_schedule([lr], n_epoch, div_final, pct, steps)
    total = n_epoch * steps
    for i in range(total):
        pos = i / total
        t = (pos - pct) / (1 - pct)
        expected = lr if pos < pct else lr / div_final + (lr - lr / div_final) / 2 * (1 + math.cos(math.pi * t))
        assert schedule(i)[0] == [pytest.approx(expected, rel=1e-12)]
        assert schedule(i)[1] is None


def test_cyclic_cycle_ends_are_epochs_where_a_cycle_completes():
    assert cyclic_cycle_ends(6, 2.0) == [2, 4, 6]
    assert cyclic_cycle_ends(5, 1.5) == [2, 3, 5]  # cycles end at epochs 1.5, 3 and 4.5
    assert cyclic_cycle_ends(3, 4.0) == [3]  # no whole cycle: the end of the fit


# ---- properties ----------------------------------------------------------------------------------------
@settings(deadline=None)
@given(lrs, divs, st.floats(1.0, 1e6), pcts, positions, moms, moms, moms)
def test_one_cycle_stays_within_bounds(lr_max, div, div_final, pct, pos, m0, m1, m2):
    lr = schedules.one_cycle(pos, lr_max / div, lr_max, lr_max / div_final, pct)
    assert min(lr_max / div, lr_max / div_final) * (1 - EPS) <= lr <= lr_max * (1 + EPS)
    mom = schedules.one_cycle(pos, m0, m1, m2, pct)
    assert min(m0, m1, m2) - EPS <= mom <= max(m0, m1, m2) + EPS


@settings(deadline=None)
@given(lrs, divs, st.floats(1.0, 1e6), pcts, st.floats(0.0, 1.0 - 1e-4))
def test_one_cycle_is_continuous(lr_max, div, div_final, pct, pos):
    """Lipschitz: a cosine phase of height h over width w changes by at most h*pi/(2w) per unit of pos."""
    h = 1e-5
    f = partial(schedules.one_cycle, start=lr_max / div, peak=lr_max, end=lr_max / div_final, pct_start=pct)
    slope = lr_max * math.pi / 2 / min(pct, 1 - pct)
    assert abs(f(pos + h) - f(pos)) <= slope * h * (1 + 1e-6) + lr_max * 1e-12


@settings(deadline=None)
@given(lrs, st.floats(0.01, 1000.0), st.floats(1.0, 50.0), st.integers(1, 500), st.data())
def test_use_clr_stays_within_bounds_and_moves_in_small_steps(lr, div, cut_div, nb, data):
    j = data.draw(st.integers(0, nb - 1))
    p = schedules.clr_pct(j, nb, cut_div)
    assert -EPS <= p <= 1 + EPS
    value = schedules.clr_lr(lr, p, div)
    assert min(lr, lr / div) * (1 - EPS) <= value <= max(lr, lr / div) * (1 + EPS)
    if j + 1 < nb:  # within a cycle, p moves by at most one step of the shorter slope
        cut = max(1, int(nb // cut_div))
        step = 1 / min(cut, nb - cut) if nb > cut else 1 / cut
        assert abs(schedules.clr_pct(j + 1, nb, cut_div) - p) <= step + EPS


@settings(deadline=None)
@given(lrs, st.floats(1.0, 1000.0), st.floats(0.0, 99.9), st.integers(1, 500), st.data())
def test_use_clr_beta_stays_within_bounds(lr, div, pct, nb, data):
    j = data.draw(st.integers(0, nb - 1))
    value, p = schedules.clr_beta(j, nb, lr, div, pct)
    assert lr / (div * 100) * (1 - EPS) <= value <= lr * (1 + EPS)
    assert p is None or -EPS <= p <= 1 + EPS


@settings(deadline=None)
@given(lrs, st.floats(1.0, 1000.0), st.floats(0.0, 99.9), st.integers(2, 300))
def test_use_clr_beta_moves_in_small_steps(lr, div, pct, nb):
    """No jump anywhere in a cycle, the peak and the start of the final decay included: a step up to
    iteration 2*half moves along the triangle, by `lr*(div-1)/(div*half)`; a step after it along the decay
    from lr/div, by `0.99*lr/(div*(nb-2*half))`."""
    half = max(1, int(nb * (1 - pct / 100) / 2))
    values = [schedules.clr_beta(j, nb, lr, div, pct) for j in range(nb)]
    for j in range(nb - 1):
        step = lr * (div - 1) / (div * half) if j + 1 <= 2 * half else 0.99 * lr / (div * (nb - 2 * half))
        (a, p), (b, q) = values[j], values[j + 1]
        assert abs(b - a) <= step * (1 + 1e-9) + lr * EPS, j
        if p is not None and q is not None:
            assert abs(q - p) <= 1 / half + EPS  # the momentum position moves as smoothly


@settings(deadline=None)
@given(lrs, st.integers(1, 500), st.data())
def test_sgdr_falls_from_lr_towards_zero_within_a_cycle(lr, nb, data):
    j = data.draw(st.integers(0, nb - 1))
    value = schedules.sgdr_lr(j, nb, lr)
    assert 0 < value <= lr
    if j + 1 < nb:
        assert schedules.sgdr_lr(j + 1, nb, lr) <= value
        assert value - schedules.sgdr_lr(j + 1, nb, lr) <= lr * math.pi / 2 / nb * (1 + 1e-9)


@settings(deadline=None)
@given(
    lrs,
    st.floats(0.0, 1.0),
    st.floats(0.5, 200.0),
    st.sampled_from(["triangular", "triangular2", "exp_range"]),
    st.floats(0.5, 1.0),
    st.integers(0, 2000),
)
def test_cyclic_stays_within_bounds_and_moves_in_small_steps(max_lr, frac, step, mode, gamma, i):
    base = max_lr * frac
    value = schedules.cyclic_lr(i, step, base, max_lr, mode, gamma)
    assert base * (1 - EPS) - EPS <= value <= max_lr * (1 + EPS)
    change = abs(schedules.cyclic_lr(i + 1, step, base, max_lr, mode, gamma) - value)
    assert change <= (max_lr - base) / step * (1 + 1e-9) + EPS
    mom = schedules.cyclic_mom(i, step, 0.95, 0.85, mode, gamma)
    assert 0.85 - EPS <= mom <= 0.95 + EPS


def test_cyclic_starts_each_whole_cycle_at_base_lr():
    for i in (0, 10, 20, 30):
        assert schedules.cyclic_lr(i, 5, 0.1, 1.0, "triangular", 1.0) == pytest.approx(0.1)
    assert schedules.cyclic_lr(5, 5, 0.1, 1.0, "triangular", 1.0) == pytest.approx(1.0)
    assert schedules.cyclic_lr(15, 5, 0.1, 1.0, "triangular2", 1.0) == pytest.approx(0.1 + 0.9 / 2)


def one_cycle_value(i, n, start, peak, end, pct):
    """fastai's one-cycle at step i of n, written out: cosine start -> peak over `pct`, then peak -> end."""
    pos = i / n
    if pos < pct:
        return peak + (start - peak) / 2 * (1 + math.cos(math.pi * (pos / pct)))
    return end + (peak - end) / 2 * (1 + math.cos(math.pi * ((pos - pct) / (1 - pct))))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(lrs, min_size=1, max_size=3),
    divs,
    st.floats(1.0, 1e6),
    st.one_of(pcts, st.sampled_from([0.0, 1.0])),
    st.one_of(st.none(), st.tuples(moms, moms, moms)),
    st.integers(1, 400),
    st.data(),
)
def test_one_cycle_read_many_steps_at_once_is_bit_for_bit_each_step(lr_list, div, div_final, pct, mom, n, data):
    schedule = schedules.one_cycle_schedule(lr_list, 1, div, div_final, pct, mom, n)
    first = data.draw(st.integers(0, n))
    end = data.draw(st.integers(first, n))
    values = schedule.values(first, end)
    assert values == [schedule(i) for i in range(first, end)]  # exact: == on floats
    assert all(type(lr) is float for lrs_now, _ in values for lr in lrs_now)
    for i, (lrs_now, mom_now) in zip(range(first, end), values):
        assert lrs_now == [one_cycle_value(i, n, lr / div, lr, lr / div_final, pct) for lr in lr_list]
        assert mom_now == (None if mom is None else one_cycle_value(i, n, *mom, pct))
