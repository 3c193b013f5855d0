"""The shapes of schedules as pure math: annealers of a position in [0, 1] and the per-iteration formulas of
every cycle form (SGDR, fastai 0.7's CLR and CLR-beta, Smith's triangular modes, one-cycle, WSD decays).

Nothing here imports torch, so every formula can be read and tested on its own.

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

__all__ = [
    "sched_lin",
    "sched_cos",
    "cos_weights",
    "sched_cos_weighted",
    "sched_exp",
    "sched_no",
    "sched_1_sqrt",
    "sched_lin_decay",
    "combine_scheds",
    "one_cycle",
    "cycle_bounds",
    "locate_cycle",
    "sgdr_lr",
    "clr_pct",
    "clr_lr",
    "clr_mom",
    "clr_beta",
    "cyclic_scale",
    "cyclic_lr",
    "cyclic_mom",
    "DECAY_SHAPES",
]

Annealer = Callable[[float], float]


# ---- annealers: a value moving from `start` to `end` as `pos` goes from 0 to 1 -------------------------
def sched_lin(start: float, end: float, pos: float) -> float:
    """Linear: `start + pos * (end - start)`."""
    return start + pos * (end - start)


def sched_cos(start: float, end: float, pos: float) -> float:
    """Half a cosine: `end + (start - end)/2 * (1 + cos(pi * pos))`, flat at both ends."""
    return end + (start - end) / 2 * (1 + math.cos(math.pi * pos))


def cos_weights(positions: Sequence[float]) -> list[float]:
    """`1 + cos(pi * pos)` at each position: `sched_cos`'s weight, worked out once for every value read there
    (`sched_cos_weighted`)."""
    pi = math.pi
    return [1 + c for c in map(math.cos, [pi * pos for pos in positions])]


def sched_cos_weighted(start: float, end: float, weights: Sequence[float]) -> list[float]:
    """`sched_cos` at many positions from their `cos_weights`, `end + (start - end)/2 * w`: the same float
    operations in the same order, so each value is bit for bit `sched_cos(start, end, pos)`.

    >>> positions = [0.0, 0.3, 1.0]
    >>> sched_cos_weighted(2.0, 1.0, cos_weights(positions)) == [sched_cos(2.0, 1.0, p) for p in positions]
    True
    """
    half = (start - end) / 2
    return [end + half * w for w in weights]


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
