"""Schedules as pure math: annealers of a position in [0, 1], the per-iteration shapes, and the builders
that turn a fit form into a `Schedule` value.

Nothing here imports torch, so every formula can be read, tested and previewed on its own. A `Schedule`
maps an optimizer step to the per-group lrs and the momentum (or None); one callback
(`callbacks/param_scheduler.py`) applies any schedule, `preview` evaluates it, and `lrcycle.plans` turns
a fit call's checked arguments into one. Builders trust their arguments: the checks live in `checks.py`.

>>> [round(sched_cos(1.0, 0.0, pos), 3) for pos in (0, 0.5, 1)]
[1.0, 0.5, 0.0]
>>> from functools import partial
>>> one_cycle = combine_scheds([0.25, 0.75], [partial(sched_cos, 0.1, 1.0), partial(sched_cos, 1.0, 0.0)])
>>> [round(one_cycle(pos), 3) for pos in (0, 0.25, 1)]
[0.1, 1.0, 0.0]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

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
    "sched_lin",
    "sched_cos",
    "sched_exp",
    "sched_no",
    "sched_1_sqrt",
    "sched_lin_decay",
    "DECAY_SHAPES",
    "wsd_lr",
    "combine_scheds",
    "one_cycle",
    "cycle_bounds",
    "locate_cycle",
    "sgdr_lr",
    "clr_pct",
    "clr_beta",
    "clr_lr",
    "clr_mom",
    "cyclic_scale",
    "cyclic_lr",
    "cyclic_mom",
]

Annealer = Callable[[float], float]


# ---- annealers: a value moving from `start` to `end` as `pos` goes from 0 to 1 -------------------------
def sched_lin(start: float, end: float, pos: float) -> float:
    """Linear: `start + pos * (end - start)`."""
    return start + pos * (end - start)


def sched_cos(start: float, end: float, pos: float) -> float:
    """Half a cosine: `end + (start - end)/2 * (1 + cos(pi * pos))`, flat at both ends."""
    return end + (start - end) / 2 * (1 + math.cos(math.pi * pos))


def sched_exp(start: float, end: float, pos: float) -> float:
    """Exponential (geometric): `start * (end/start) ** pos`; both must be > 0."""
    return start * (end / start) ** pos


def sched_no(start: float, end: float, pos: float) -> float:
    """Constant: `start` throughout."""
    return start


def sched_1_sqrt(start: float, end: float, pos: float) -> float:
    """Hagele et al. 2024's cooldown: `end + (start - end) * (1 - sqrt(pos))`, steepest at the start."""
    return end + (start - end) * (1 - math.sqrt(pos))


def sched_lin_decay(start: float, end: float, pos: float) -> float:
    """Linear, written as the other decays: `end + (start - end) * (1 - pos)` (with `end` 0, exactly
    `start * (1 - pos)`, as transformers' `get_wsd_schedule` computes it)."""
    return end + (start - end) * (1 - pos)


DECAY_SHAPES = {"linear": sched_lin_decay, "cos": sched_cos, "1-sqrt": sched_1_sqrt}
"""The decay shapes of warmup-stable-decay, by name."""


def combine_scheds(pcts: Sequence[float], scheds: Sequence[Annealer]) -> Annealer:
    """Chain phases: phase k takes the share `pcts[k]` of [0, 1] and sees its own position in [0, 1].

    `scheds` are functions of one position, e.g. `partial(sched_cos, start, end)`; `pcts` sum to 1.
    """
    if len(pcts) != len(scheds) or not pcts:
        raise ValueError(f"pcts: need one share per schedule ({len(scheds)}), got {len(pcts)}")
    if any(p < 0 for p in pcts) or not math.isclose(sum(pcts), 1.0):
        raise ValueError(f"pcts: shares must be >= 0 and sum to 1, got {list(pcts)}")
    starts = [sum(pcts[:k]) for k in range(len(pcts))]

    def combined(pos: float) -> float:
        pos = min(max(pos, 0.0), 1.0)
        # the last non-empty phase that starts at or before pos (the first non-empty one starts at 0)
        k = max(k for k in range(len(pcts)) if pcts[k] > 0 and starts[k] <= pos)
        return scheds[k](min((pos - starts[k]) / pcts[k], 1.0))

    return combined


# ---- one cycle (fastai v2) -----------------------------------------------------------------------------
def one_cycle(pos: float, start: float, peak: float, end: float, pct_start: float) -> float:
    """Cosine from `start` to `peak` over the first `pct_start` of the fit, then cosine from `peak` to `end`.

    `pos < pct_start`: `sched_cos(start, peak, pos/pct_start)`;
    else `sched_cos(peak, end, (pos - pct_start)/(1 - pct_start))`. With `pos = i/N` at iteration i of N,
    `one_cycle(pos, lr_max/div, lr_max, lr_max/div_final, pct_start)` is the lr and
    `one_cycle(pos, *moms, pct_start)` the momentum.
    """
    if pos < pct_start or pct_start == 1:  # pct_start 1: all warm-up; 0: all anneal (as fastai)
        return sched_cos(start, peak, pos / pct_start)
    return sched_cos(peak, end, (pos - pct_start) / (1 - pct_start))


# ---- cycles of whole epochs (fastai 0.7 `fit` with cycle_len / cycle_mult) -----------------------------
def cycle_bounds(n_epoch: int, cycle_len: int, cycle_mult: int, iters_per_epoch: float) -> list[int]:
    """Iteration numbers where the cycles of a fit start, plus the end of the fit.

    Cycle c lasts `cycle_len * cycle_mult**c` epochs; the last cycle is cut at `n_epoch`. With a fractional
    number of iterations per epoch, each boundary is rounded to the nearest iteration.

    >>> cycle_bounds(7, 1, 2, 10)
    [0, 10, 30, 70]
    """
    epochs, c, bounds = 0, 0, [0]
    while epochs < n_epoch:
        epochs = min(epochs + cycle_len * cycle_mult**c, n_epoch)
        bounds.append(round(epochs * iters_per_epoch))
        c += 1
    return bounds


def locate_cycle(i: int, bounds: Sequence[int]) -> tuple[int, int, int]:
    """`(c, j, nb)`: iteration `i` is iteration `j` (0-based) of cycle `c`, which has `nb` iterations.

    Past the end of the last cycle, `i` counts as the last cycle's final iteration.
    """
    for c in range(len(bounds) - 1):
        if i < bounds[c + 1] or c == len(bounds) - 2:
            nb = bounds[c + 1] - bounds[c]
            return c, min(i - bounds[c], nb - 1), nb
    raise ValueError(f"bounds: need at least one cycle, got {list(bounds)}")


def sgdr_lr(j: int, nb: int, lr: float) -> float:
    """SGDR (cosine annealing with warm restarts) inside a cycle: `lr/2 * (1 + cos(pi * j/nb))`."""
    return lr / 2 * (1 + math.cos(math.pi * j / nb))


def clr_pct(j: int, nb: int, cut_div: float) -> float:
    """`use_clr`'s position p in [0, 1]: up linearly to `cut = max(1, nb // cut_div)`, then down to the end.

    `p = j/cut` for `j <= cut`, else `1 - (j - cut)/(nb - cut)`.
    """
    cut = max(1, int(nb // cut_div))
    return j / cut if j <= cut else 1 - (j - cut) / (nb - cut)


def clr_lr(lr: float, p: float, div: float) -> float:
    """The circular lr at position p: `lr * (1 + p*(div - 1)) / div`, from lr/div (p=0) to lr (p=1)."""
    return lr * (1 + p * (div - 1)) / div


def clr_mom(p: float, max_mom: float, min_mom: float) -> float:
    """Momentum opposite to the lr: `max_mom - p*(max_mom - min_mom)`."""
    return max_mom - p * (max_mom - min_mom)


def clr_beta(j: int, nb: int, lr: float, div: float, pct: float) -> tuple[float, float | None]:
    """`use_clr_beta`: `(lr_j, p)`, p being the momentum position (None in the final phase: momentum max).

    `half = max(1, int(nb*(1 - pct/100)/2))`; up over `j <= half` (`p = j/half`), down over
    `half < j <= 2*half` (`p = 1 - (j - half)/half`), both `lr*(1 + p*(div-1))/div`; then
    `q = (j - 2*half)/(nb - 2*half)` and `lr/div * (1 - 0.99*q)`, towards lr/(div*100).
    """
    half = max(1, int(nb * (1 - pct / 100) / 2))
    if j <= 2 * half:
        p = j / half if j <= half else 1 - (j - half) / half
        return clr_lr(lr, p, div), p
    q = (j - 2 * half) / (nb - 2 * half)
    return lr / div * (1 - 0.99 * q), None


# ---- Smith's cyclical learning rates (torch.optim.lr_scheduler.CyclicLR, step_size_up == step_size_down) ---
def cyclic_scale(i: int, step_size: float, mode: str, gamma: float) -> tuple[float, float]:
    """`(height, amplitude)` of iteration i on the triangle: height in [0, 1], amplitude the mode's factor.

    `cycle = floor(1 + i/(2*step_size))`, `x = 1 + i/(2*step_size) - cycle` (position in the cycle),
    height `x/0.5` rising and `(x - 1)/(0.5 - 1)` falling; amplitude `1` (triangular),
    `0.5**(cycle - 1)` (triangular2) or `gamma**i` (exp_range).
    """
    total = 2.0 * step_size
    cycle = math.floor(1 + i / total)
    x = 1.0 + i / total - cycle
    height = x / 0.5 if x <= 0.5 else (x - 1) / (0.5 - 1)
    if mode == "triangular":
        return height, 1.0
    if mode == "triangular2":
        return height, 0.5 ** (cycle - 1)  # = 1/2**(cycle-1) exactly, without overflow
    if mode == "exp_range":
        return height, gamma**i
    raise ValueError(f"mode: must be 'triangular', 'triangular2' or 'exp_range', got {mode!r}")


def cyclic_lr(i: int, step_size: float, base_lr: float, max_lr: float, mode: str, gamma: float) -> float:
    """Cyclical lr: `base_lr + (max_lr - base_lr) * height * amplitude`, each cycle starting at base_lr."""
    height, amplitude = cyclic_scale(i, step_size, mode, gamma)
    return base_lr + (max_lr - base_lr) * height * amplitude


def cyclic_mom(i: int, step_size: float, max_mom: float, min_mom: float, mode: str, gamma: float) -> float:
    """Momentum inverse to the cyclical lr: `max_mom - (max_mom - min_mom) * height * amplitude`."""
    height, amplitude = cyclic_scale(i, step_size, mode, gamma)
    return max_mom - (max_mom - min_mom) * height * amplitude


# ---- schedules as values -------------------------------------------------------------------------------
Hypers = tuple[list[float], "float | None"]


@dataclass(frozen=True)
class Schedule:
    """A fit's hyperparameters as a value: `schedule(i)` is `(lrs, mom)` at optimizer step `i` (0-based, set
    before the step), one lr per param group and a momentum or None (leave momentum alone).

    `n_steps` is its length (`n_epoch * steps_per_epoch` for a fit), `cycle_ends` the epoch counts after
    which its cycles end (snapshots and weight averaging act there), `lrs` the per-group base lrs the
    optimizer holds before the first step, and `spec` the builder's name and arguments as plain data, so
    `build(spec)` makes the same schedule again (a checkpoint stores the spec, never a function).
    """

    at: Callable[[int], Hypers] = field(repr=False)
    lrs: list[float]
    n_epoch: int
    steps_per_epoch: int
    n_steps: int
    cycle_ends: list[int]
    spec: dict

    def __call__(self, i: int) -> Hypers:
        return self.at(i)


def _schedule(at, lrs, n_epoch: int, steps_per_epoch: int, cycle_ends, spec: dict) -> Schedule:
    return Schedule(at, list(lrs), n_epoch, steps_per_epoch, n_epoch * steps_per_epoch, list(cycle_ends), spec)


def _cycle_epochs(n_cycle: int, cycle_len: int, cycle_mult: int) -> list[int]:
    """Epoch counts at which each of `n_cycle` cycles of `cycle_len * cycle_mult**c` epochs ends."""
    return [sum(cycle_len * cycle_mult**k for k in range(c + 1)) for c in range(n_cycle)]


def constant_schedule(lrs, n_epoch: int, steps_per_epoch: int) -> Schedule:
    """fastai 0.7 `fit(lr, n)` without `cycle_len`: every group at its lr, momentum left alone."""
    lrs = list(lrs)
    spec = {"builder": "constant", "lrs": lrs, "n_epoch": n_epoch, "steps_per_epoch": steps_per_epoch}
    return _schedule(lambda i: (lrs, None), lrs, n_epoch, steps_per_epoch, range(1, n_epoch + 1), spec)


def sgdr_schedule(lrs, n_cycle, cycle_len, cycle_mult, steps_per_epoch, warmup: bool = True) -> Schedule:
    """SGDR (fastai 0.7 `fit(lr, n_cycle, cycle_len, cycle_mult)`): in cycle c of `cycle_len * cycle_mult**c`
    epochs, at its iteration j of nb, `lr/2 * (1 + cos(pi*j/nb))`.

    With `warmup` (0.7's `CosAnneal`), the fit's first `nb0/20` iterations (nb0: the first cycle's length)
    run at `lr/100` while the cosine position keeps advancing, so iteration i after them is on the cosine.
    """
    ends = _cycle_epochs(n_cycle, cycle_len, cycle_mult)
    bounds = cycle_bounds(ends[-1], cycle_len, cycle_mult, steps_per_epoch)
    warm = bounds[1] / 20 if warmup else 0

    def at(i: int) -> Hypers:
        if i < warm:
            return [lr / 100 for lr in lrs], None
        _, j, nb = locate_cycle(i, bounds)
        return [sgdr_lr(j, nb, lr) for lr in lrs], None

    spec = _cycles_spec("sgdr", lrs, n_cycle, cycle_len, cycle_mult, steps_per_epoch, warmup=warmup)
    return _schedule(at, lrs, ends[-1], steps_per_epoch, ends, spec)


def clr_schedule(lrs, n_cycle, cycle_len, cycle_mult, div, cut_div, moms, steps_per_epoch) -> Schedule:
    """fastai 0.7 `use_clr=(div, cut_div[, max_mom, min_mom])`: in each cycle, up from lr/div to lr over
    `nb // cut_div` iterations, then down; momentum `max - p*(max - min)` at the same iteration (0.7 sets
    it one iteration ahead). Cycles stretch with `cycle_mult` (0.7's `CircularLR` ignores it)."""
    ends = _cycle_epochs(n_cycle, cycle_len, cycle_mult)
    bounds = cycle_bounds(ends[-1], cycle_len, cycle_mult, steps_per_epoch)

    def at(i: int) -> Hypers:
        _, j, nb = locate_cycle(i, bounds)
        p = clr_pct(j, nb, cut_div)
        return [clr_lr(lr, p, div) for lr in lrs], None if moms is None else clr_mom(p, *moms)

    spec = _cycles_spec("clr", lrs, n_cycle, cycle_len, cycle_mult, steps_per_epoch, div=div, cut_div=cut_div)
    return _schedule(at, lrs, ends[-1], steps_per_epoch, ends, {**spec, "moms": _plain(moms)})


def clr_beta_schedule(lrs, n_cycle, cycle_len, cycle_mult, div, pct, moms, steps_per_epoch) -> Schedule:
    """fastai 0.7 `use_clr_beta=(div, pct[, max_mom, min_mom])`: up and down over `100 - pct` percent of
    each cycle, then down towards lr/(div*100); momentum inverse in the first two phases, `max_mom` after."""
    ends = _cycle_epochs(n_cycle, cycle_len, cycle_mult)
    bounds = cycle_bounds(ends[-1], cycle_len, cycle_mult, steps_per_epoch)

    def at(i: int) -> Hypers:
        _, j, nb = locate_cycle(i, bounds)
        pairs = [clr_beta(j, nb, lr, div, pct) for lr in lrs]
        p = pairs[-1][1]
        mom = None if moms is None else (moms[0] if p is None else clr_mom(p, *moms))
        return [lr for lr, _ in pairs], mom

    spec = _cycles_spec("clr_beta", lrs, n_cycle, cycle_len, cycle_mult, steps_per_epoch, div=div, pct=pct)
    return _schedule(at, lrs, ends[-1], steps_per_epoch, ends, {**spec, "moms": _plain(moms)})


def one_cycle_schedule(lrs, n_epoch, div, div_final, pct_start, moms, steps_per_epoch) -> Schedule:
    """fastai v2 one cycle: at step i of N, `one_cycle(i/N, lr/div, lr, lr/div_final, pct_start)` per group,
    momentum `one_cycle(i/N, *moms, pct_start)` (or None)."""
    total = n_epoch * steps_per_epoch

    def at(i: int) -> Hypers:
        pos = i / total
        lr_now = [one_cycle(pos, lr / div, lr, lr / div_final, pct_start) for lr in lrs]
        return lr_now, None if moms is None else one_cycle(pos, *moms, pct_start)

    spec = {"builder": "one_cycle", "lrs": list(lrs), "n_epoch": n_epoch, "div": div, "div_final": div_final}
    spec.update(pct_start=pct_start, moms=_plain(moms), steps_per_epoch=steps_per_epoch)
    return _schedule(at, lrs, n_epoch, steps_per_epoch, [n_epoch], spec)


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
    """fastai v2 `fit_flat_cos`: flat at lr for `pct_start` of the fit, then cosine down to lr/div_final;
    at step i of N, `combine_scheds([pct_start, 1 - pct_start], [lr, sched_cos(lr, lr/div_final)])(i/N)`.
    Momentum is left alone."""
    total = n_epoch * steps_per_epoch
    shapes = [
        combine_scheds([pct_start, 1 - pct_start], [partial(sched_no, lr, lr), partial(sched_cos, lr, lr / div_final)])
        for lr in lrs
    ]

    def at(i: int) -> Hypers:
        return [shape(i / total) for shape in shapes], None

    spec = {"builder": "flat_cos", "lrs": list(lrs), "n_epoch": n_epoch, "div_final": div_final}
    spec.update(pct_start=pct_start, steps_per_epoch=steps_per_epoch)
    return _schedule(at, lrs, n_epoch, steps_per_epoch, [n_epoch], spec)


def wsd_lr(i: int, warmup_steps: int, decay_steps: int, n_steps: int, lr: float, start: float, end: float, shape):
    """Warmup-stable-decay at step i of `n_steps`, in whole steps so any prefix is the same for any length:
    `i < W`: `sched_lin(start, lr, i/W)`; `W <= i < N - D`: `lr`; else `shape(lr, end, (i - (N - D))/D)`."""
    if i < warmup_steps:
        return sched_lin(start, lr, i / warmup_steps)
    decay_start = n_steps - decay_steps
    if i < decay_start:
        return lr
    return shape(lr, end, min((i - decay_start) / decay_steps, 1.0))


def wsd_schedule(lrs, n_epoch, warmup_steps, decay_steps, decay_shape, div, div_final, moms, steps_per_epoch):
    """Warmup-stable-decay (MiniCPM; Hagele et al. 2024): per group, linear from lr/div (0 when div is inf) to lr
    over the first `warmup_steps`, flat at lr, then `DECAY_SHAPES[decay_shape]` down to `lr/div_final` (0 when
    it is inf) over the last `decay_steps`. `moms=(start, stable, end)` follows the same phases, or None (momentum left
    alone). Phase lengths are whole steps, so a decay started from a stable-phase checkpoint is exactly the
    schedule planned with that total length."""
    total = n_epoch * steps_per_epoch
    shape = DECAY_SHAPES[decay_shape]
    ends = [(lr, lr / div, lr / div_final) for lr in lrs]

    def at(i: int) -> Hypers:
        lr_now = [wsd_lr(i, warmup_steps, decay_steps, total, lr, start, end, shape) for lr, start, end in ends]
        if moms is None:
            return lr_now, None
        return lr_now, wsd_lr(i, warmup_steps, decay_steps, total, moms[1], moms[0], moms[2], shape)

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
