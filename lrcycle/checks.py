"""Argument checks shared by the Learner and the plans of its fits; each ValueError names the argument."""

from __future__ import annotations

import numbers

import numpy as np


def check_moms(moms, n: int, name: str = "moms") -> tuple[float, ...]:
    """A momentum tuple of length `n`, every value in [0, 1)."""
    if isinstance(moms, np.ndarray) and moms.ndim == 1:
        moms = moms.tolist()
    if not isinstance(moms, (tuple, list)) or len(moms) != n:
        raise ValueError(f"{name}: expected a tuple of {n} momenta in [0, 1), got {moms!r}")
    for m in moms:
        if isinstance(m, (bool, np.bool_)) or not isinstance(m, numbers.Real) or not 0 <= m < 1:
            raise ValueError(f"{name}: every momentum must be in [0, 1), got {moms!r}")
    return tuple(float(m) for m in moms)


def check_positive_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name}: must be an integer >= {minimum}, got {value!r}")
    return int(value)  # numpy integers too, as a plain int
