"""A schedule as a value: `Schedule` maps an optimizer step to the per-group lrs and the momentum (or None),
and the builders turn a fit form's checked arguments into one, from the shapes of `shapes.py`.

One callback (`callbacks/param_scheduler.py`) applies any schedule, `preview` evaluates it, and
`schedules/forms.py` turns a fit call into one. Builders trust their arguments: `forms.py` checks them.
`join` runs schedules one after another. Nothing here imports torch.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import repeat

from .shapes import (
    DECAY_SHAPES,
    clr_beta,
    clr_lr,
    clr_mom,
    clr_pct,
    cos_weights,
    cycle_bounds,
    cyclic_lr,
    cyclic_mom,
    locate_cycle,
    sched_cos,
    sched_cos_weighted,
    sched_exp,
    sched_lin,
    sgdr_lr,
)

# ---- schedules as values -------------------------------------------------------------------------------
__all__ = [
    "Schedule",
    "BUILDERS",
    "build",
    "constant_schedule",
    "sgdr_schedule",
    "clr_schedule",
    "clr_beta_schedule",
    "one_cycle_schedule",
    "cyclic_schedule",
    "cyclic_cycle_ends",
    "flat_cos_schedule",
    "wsd_schedule",
    "sweep_schedule",
    "join",
    "phase_start",
]

Hypers = tuple[list[float], "float | None"]


@dataclass(frozen=True)
class Schedule:
    """A fit's hyperparameters as a value: `schedule(i)` is `(lrs, mom)` at optimizer step `i` (0-based, set
    before the step), one lr per param group and a momentum or None (leave momentum alone).

    `n_steps` is its length (`n_epoch * steps_per_epoch` for a fit), `cycle_ends` the epoch counts after
    which its cycles end (snapshots and weight averaging act there), `lrs` the per-group base lrs the
    optimizer holds before the first step, and `spec` the builder's name and arguments as plain data, so
    `build(spec)` makes the same schedule again (a checkpoint stores the spec, never a function).

    `at_range(first, end)`, where a builder gives one, works out `[at(i) for i in range(first, end)]` in one go
    (`one_cycle_schedule`'s); `values` reads a range either way.
    """

    at: Callable[[int], Hypers] = field(repr=False)
    lrs: list[float]
    n_epoch: int
    steps_per_epoch: int
    n_steps: int
    cycle_ends: list[int]
    spec: dict
    at_range: Callable[[int, int], list[Hypers]] | None = field(default=None, repr=False, compare=False)

    def __call__(self, i: int) -> Hypers:
        return self.at(i)

    def values(self, first: int, end: int) -> list[Hypers]:
        """`[schedule(i) for i in range(first, end)]`: what `ParamScheduler` reads ahead."""
        if self.at_range is None:
            return [self.at(i) for i in range(first, end)]
        return self.at_range(first, end)


def _schedule(at, lrs, n_epoch: int, steps_per_epoch: int, cycle_ends, spec: dict, at_range=None) -> Schedule:
    n_steps = n_epoch * steps_per_epoch
    return Schedule(at, list(lrs), n_epoch, steps_per_epoch, n_steps, list(cycle_ends), spec, at_range)


def _cycle_epochs(n_cycle: int, cycle_len: int, cycle_mult: int) -> list[int]:
    """Epoch counts at which each of `n_cycle` cycles of `cycle_len * cycle_mult**c` epochs ends."""
    return [sum(cycle_len * cycle_mult**k for k in range(c + 1)) for c in range(n_cycle)]


def join(pieces: Sequence[Callable[[int], Hypers]], boundaries: Sequence[int]) -> Callable[[int], Hypers]:
    """Pieces one after another, as optax's `join_schedules`: step i runs `pieces[k]`, k being the number of
    `boundaries` at or below i (`boundaries[k-1]` is the step where piece k begins; equal boundaries leave a
    piece out). Each piece is read at the fit's own step i, not at a step counted from its start: the fastai
    formulas are written in the fit's position i/N, and reading them there keeps every trace bit for bit.

    Examples:
        >>> at = join([lambda i: ([1.0], None), lambda i: ([float(i)], None)], [2])
        >>> [at(i)[0][0] for i in range(4)]
        [1.0, 1.0, 2.0, 3.0]
    """
    bounds = list(boundaries)
    if len(bounds) != len(pieces) - 1 or bounds != sorted(bounds):
        raise ValueError(
            f"boundaries: need {len(pieces) - 1} ascending steps (one per piece after the first), got {bounds}"
        )

    def at(i: int) -> Hypers:
        return pieces[bisect.bisect_right(bounds, i)](i)

    return at


def phase_start(pct: float, total: int) -> int:
    """The first step i of `total` whose position `i/total` is at or past `pct`: where a phase that begins at
    the share `pct` of the fit starts, read exactly as the comparison `i/total >= pct` reads it."""
    i = min(max(math.ceil(pct * total), 0), total)
    while i > 0 and (i - 1) / total >= pct:
        i -= 1
    while i < total and i / total < pct:
        i += 1
    return i


def constant_schedule(lrs, n_epoch: int, steps_per_epoch: int) -> Schedule:
    """fastai 0.7 `fit(lr, n)` without `cycle_len`: every group at its lr, momentum left alone."""
    lrs = list(lrs)
    spec = {"builder": "constant", "lrs": lrs, "n_epoch": n_epoch, "steps_per_epoch": steps_per_epoch}
    return _schedule(lambda i: (lrs, None), lrs, n_epoch, steps_per_epoch, range(1, n_epoch + 1), spec)


def _cycles_schedule(in_cycle, lrs, n_cycle, cycle_len, cycle_mult, steps_per_epoch, spec: dict) -> Schedule:
    """`n_cycle` cycles of `cycle_len * cycle_mult**c` epochs (fastai 0.7's `fit` with `cycle_len`): step i is
    `in_cycle(c, j, nb)`, i being iteration j of nb in cycle c."""
    ends = _cycle_epochs(n_cycle, cycle_len, cycle_mult)
    bounds = cycle_bounds(ends[-1], cycle_len, cycle_mult, steps_per_epoch)

    def at(i: int) -> Hypers:
        return in_cycle(*locate_cycle(i, bounds))

    return _schedule(at, lrs, ends[-1], steps_per_epoch, ends, spec)


def sgdr_schedule(lrs, n_cycle, cycle_len, cycle_mult, steps_per_epoch, warmup: bool = True) -> Schedule:
    """SGDR (fastai 0.7 `fit(lr, n_cycle, cycle_len, cycle_mult)`): in cycle c of `cycle_len * cycle_mult**c`
    epochs, at its iteration j of nb, `lr/2 * (1 + cos(pi*j/nb))`.

    With `warmup` (0.7's `CosAnneal`), the fit's first `nb0/20` iterations (nb0: the first cycle's length)
    run at `lr/100` while the cosine position keeps advancing, so iteration i after them is on the cosine.
    """

    def in_cycle(c: int, j: int, nb: int) -> Hypers:
        if warmup and c == 0 and j < nb / 20:
            return [lr / 100 for lr in lrs], None
        return [sgdr_lr(j, nb, lr) for lr in lrs], None

    spec = _cycles_spec("sgdr", lrs, n_cycle, cycle_len, cycle_mult, steps_per_epoch, warmup=warmup)
    return _cycles_schedule(in_cycle, lrs, n_cycle, cycle_len, cycle_mult, steps_per_epoch, spec)


def clr_schedule(lrs, n_cycle, cycle_len, cycle_mult, div, cut_div, moms, steps_per_epoch) -> Schedule:
    """fastai 0.7 `use_clr=(div, cut_div[, max_mom, min_mom])`: in each cycle, up from lr/div to lr over
    `nb // cut_div` iterations, then down; momentum `max - p*(max - min)` at the same iteration (0.7 sets
    it one iteration ahead). Cycles stretch with `cycle_mult` (0.7's `CircularLR` ignores it)."""

    def in_cycle(c: int, j: int, nb: int) -> Hypers:
        p = clr_pct(j, nb, cut_div)
        return [clr_lr(lr, p, div) for lr in lrs], None if moms is None else clr_mom(p, *moms)

    spec = _cycles_spec("clr", lrs, n_cycle, cycle_len, cycle_mult, steps_per_epoch, div=div, cut_div=cut_div)
    return _cycles_schedule(
        in_cycle, lrs, n_cycle, cycle_len, cycle_mult, steps_per_epoch, {**spec, "moms": _plain(moms)}
    )


def clr_beta_schedule(lrs, n_cycle, cycle_len, cycle_mult, div, pct, moms, steps_per_epoch) -> Schedule:
    """fastai 0.7 `use_clr_beta=(div, pct[, max_mom, min_mom])`: up and down over `100 - pct` percent of
    each cycle, then down towards lr/(div*100); momentum inverse in the first two phases, `max_mom` after."""

    def in_cycle(c: int, j: int, nb: int) -> Hypers:
        pairs = [clr_beta(j, nb, lr, div, pct) for lr in lrs]
        p = pairs[-1][1]
        mom = None if moms is None else (moms[0] if p is None else clr_mom(p, *moms))
        return [lr for lr, _ in pairs], mom

    spec = _cycles_spec("clr_beta", lrs, n_cycle, cycle_len, cycle_mult, steps_per_epoch, div=div, pct=pct)
    return _cycles_schedule(
        in_cycle, lrs, n_cycle, cycle_len, cycle_mult, steps_per_epoch, {**spec, "moms": _plain(moms)}
    )


def one_cycle_schedule(lrs, n_epoch, div, div_final, pct_start, moms, steps_per_epoch) -> Schedule:
    """fastai v2 one cycle, two cosine pieces joined where `pos = i/N` reaches `pct_start`: the warm-up
    `sched_cos(lr/div, lr, pos/pct_start)`, then `sched_cos(lr, lr/div_final, (pos - pct_start)/(1 - pct_start))`
    per group; momentum `moms = (m0, m1, m2)` the same way (m0 -> m1, m1 -> m2), or None. `pct_start` 0 is a
    pure anneal and 1 a pure warm-up (a piece of no steps is never read)."""
    total = n_epoch * steps_per_epoch

    def warm_up(i: int) -> Hypers:
        t = i / total / pct_start
        return [sched_cos(lr / div, lr, t) for lr in lrs], None if moms is None else sched_cos(moms[0], moms[1], t)

    def anneal(i: int) -> Hypers:
        t = (i / total - pct_start) / (1 - pct_start)
        lr_now = [sched_cos(lr, lr / div_final, t) for lr in lrs]
        return lr_now, None if moms is None else sched_cos(moms[1], moms[2], t)

    def at_range(first: int, end: int) -> list[Hypers]:
        """Steps `first` to `end - 1` at once, each position's cosine worked out once for the lrs and the
        momentum (`sched_cos_weighted`): bit for bit what `warm_up` and `anneal` give step by step."""
        up = cos_weights([i / total / pct_start for i in range(first, min(end, peak))])
        down = cos_weights([(i / total - pct_start) / (1 - pct_start) for i in range(max(first, peak), end)])

        def both_pieces(start: float, middle: float, final: float) -> list[float]:
            return sched_cos_weighted(start, middle, up) + sched_cos_weighted(middle, final, down)

        lrs_now = zip(*[both_pieces(lr / div, lr, lr / div_final) for lr in lrs])
        moms_now = repeat(None) if moms is None else both_pieces(*moms)
        return list(zip(map(list, lrs_now), moms_now))

    peak = phase_start(pct_start, total)
    at = join([warm_up, anneal], [peak])
    spec = {"builder": "one_cycle", "lrs": list(lrs), "n_epoch": n_epoch, "div": div, "div_final": div_final}
    spec.update(pct_start=pct_start, moms=_plain(moms), steps_per_epoch=steps_per_epoch)
    return _schedule(at, lrs, n_epoch, steps_per_epoch, [n_epoch], spec, at_range)


def cyclic_schedule(lrs, n_epoch, base_lrs, step_size, n_cycles, mode, gamma, moms, steps_per_epoch) -> Schedule:
    """Smith's cyclical lrs (`CyclicLR` with equal half cycles) from `base_lrs` up to `lrs` and back,
    `step_size` steps each way, or `n_cycles` cycles over the fit (`step_size = N / (2*n_cycles)`);
    momentum `moms=(max, min)` inverse, or None. Cycles end in the epochs where one completes."""
    total = n_epoch * steps_per_epoch
    half = step_size if step_size is not None else total / (2 * n_cycles)
    pairs = list(zip(base_lrs, lrs, strict=True))

    def at(i: int) -> Hypers:
        lr_now = [cyclic_lr(i, half, base, top, mode, gamma) for base, top in pairs]
        return lr_now, None if moms is None else cyclic_mom(i, half, *moms, mode, gamma)

    cycle_epochs = 2 * step_size / steps_per_epoch if step_size is not None else n_epoch / n_cycles
    spec = {"builder": "cyclic", "lrs": list(lrs), "n_epoch": n_epoch, "base_lrs": list(base_lrs)}
    spec.update(step_size=step_size, n_cycles=n_cycles, mode=mode, gamma=gamma, moms=_plain(moms))
    spec.update(steps_per_epoch=steps_per_epoch)
    return _schedule(at, lrs, n_epoch, steps_per_epoch, cyclic_cycle_ends(n_epoch, cycle_epochs), spec)


def cyclic_cycle_ends(n_epoch: int, cycle_epochs: float) -> list[int]:
    """The epochs (1-based) during which a whole cycle completes, or `[n_epoch]` when none does.

    >>> cyclic_cycle_ends(6, 2.0), cyclic_cycle_ends(5, 1.5), cyclic_cycle_ends(3, 4.0)
    ([2, 4, 6], [2, 3, 5], [3])
    """
    ends, k = [], 1
    while k * cycle_epochs <= n_epoch * (1 + 1e-12):
        ends.append(min(n_epoch, math.ceil(k * cycle_epochs * (1 - 1e-12))))
        k += 1
    return sorted(set(ends)) or [n_epoch]


def flat_cos_schedule(lrs, n_epoch, div_final, pct_start, steps_per_epoch) -> Schedule:
    """fastai v2 `fit_flat_cos`: flat at lr for `pct_start` of the fit, then joined where `pos = i/N` reaches
    `pct_start`, `sched_cos(lr, lr/div_final, min((pos - pct_start)/(1 - pct_start), 1))` (fastai's
    `combine_scheds` of the two phases, read the same way). Momentum is left alone."""
    total = n_epoch * steps_per_epoch
    cos_share = 1 - pct_start

    def flat(i: int) -> Hypers:
        return list(lrs), None

    def anneal(i: int) -> Hypers:
        t = min((i / total - pct_start) / cos_share, 1.0)
        return [sched_cos(lr, lr / div_final, t) for lr in lrs], None

    at = join([flat, anneal], [phase_start(pct_start, total) if cos_share > 0 else total])
    spec = {"builder": "flat_cos", "lrs": list(lrs), "n_epoch": n_epoch, "div_final": div_final}
    spec.update(pct_start=pct_start, steps_per_epoch=steps_per_epoch)
    return _schedule(at, lrs, n_epoch, steps_per_epoch, [n_epoch], spec)


def wsd_schedule(lrs, n_epoch, warmup_steps, decay_steps, decay_shape, div, div_final, moms, steps_per_epoch):
    """Warmup-stable-decay (MiniCPM; Hagele et al. 2024), three pieces joined at whole steps W and N - D, so any
    prefix is the same for any length (a decay started from a stable-phase checkpoint is exactly the schedule
    planned with that total length). Per group: `sched_lin(lr/div, lr, i/W)` for `i < W` (from 0 when div is
    inf), then flat at lr, then `DECAY_SHAPES[decay_shape](lr, lr/div_final, min((i - (N - D))/D, 1))` (down to
    0 when div_final is inf).
    `moms=(start, stable, end)` follows the same pieces, or None (momentum left alone)."""
    total = n_epoch * steps_per_epoch
    shape, decay_start = DECAY_SHAPES[decay_shape], total - decay_steps
    ends = [(lr / div, lr, lr / div_final) for lr in lrs] + ([tuple(moms)] if moms is not None else [])

    def values(phase: Callable[[float, float, float], float]) -> Callable[[int], Hypers]:
        def at(i: int) -> Hypers:
            now = [phase(*e, i) for e in ends]
            return (now[:-1], now[-1]) if moms is not None else (now, None)

        return at

    warm_up = values(lambda start, lr, end, i: sched_lin(start, lr, i / warmup_steps))
    stable = values(lambda start, lr, end, i: lr)
    decay = values(lambda start, lr, end, i: shape(lr, end, min((i - decay_start) / decay_steps, 1.0)))
    at = join([warm_up, stable, decay], [warmup_steps, decay_start])
    spec = {"builder": "wsd", "lrs": list(lrs), "n_epoch": n_epoch, "warmup_steps": warmup_steps}
    spec.update(decay_steps=decay_steps, decay_shape=decay_shape, div=div, div_final=div_final)
    spec.update(moms=_plain(moms), steps_per_epoch=steps_per_epoch)
    return _schedule(at, lrs, n_epoch, steps_per_epoch, [n_epoch], spec)


def sweep_schedule(start_lrs, end_lrs, num_it: int, steps_per_epoch: int, linear: bool = False) -> Schedule:
    """The range test's sweep over `num_it` steps, per group, so groups given as a slice keep their ratios:
    `start * (end/start) ** t` (linear: `start + (end - start) * t`), `t = i/(num_it - 1)`, capped at 1.
    It runs `ceil(num_it / steps_per_epoch)` epochs; momentum is left alone."""
    anneal = sched_lin if linear else sched_exp
    ends = list(zip(start_lrs, end_lrs, strict=True))

    def at(i: int) -> Hypers:
        t = min(i, num_it - 1) / (num_it - 1)
        return [anneal(start, end, t) for start, end in ends], None

    n_epoch = math.ceil(num_it / steps_per_epoch)
    spec = {"builder": "sweep", "start_lrs": list(start_lrs), "end_lrs": list(end_lrs), "num_it": num_it}
    spec.update(steps_per_epoch=steps_per_epoch, linear=linear)
    return Schedule(at, list(start_lrs), n_epoch, steps_per_epoch, num_it, [], spec)


def _plain(moms):
    return None if moms is None else list(moms)


def _cycles_spec(builder, lrs, n_cycle, cycle_len, cycle_mult, steps_per_epoch, **args) -> dict:
    spec = {"builder": builder, "lrs": list(lrs), "n_cycle": n_cycle, "cycle_len": cycle_len}
    return {**spec, "cycle_mult": cycle_mult, "steps_per_epoch": steps_per_epoch, **args}


BUILDERS = {
    "constant": constant_schedule,
    "sgdr": sgdr_schedule,
    "clr": clr_schedule,
    "clr_beta": clr_beta_schedule,
    "one_cycle": one_cycle_schedule,
    "cyclic": cyclic_schedule,
    "flat_cos": flat_cos_schedule,
    "wsd": wsd_schedule,
    "sweep": sweep_schedule,
}


def build(spec: dict) -> Schedule:
    """The schedule a `Schedule.spec` describes (plain data, as a checkpoint stores it)."""
    args = dict(spec)
    name = args.pop("builder", None)
    if name not in BUILDERS:
        raise ValueError(f"spec: unknown schedule builder {name!r}; expected one of {', '.join(BUILDERS)}")
    return BUILDERS[name](**args)
