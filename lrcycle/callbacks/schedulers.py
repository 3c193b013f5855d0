"""Scheduler callbacks and the plans that turn a fit call's arguments into epochs and callbacks."""

from __future__ import annotations

from typing import NamedTuple

from ..checks import check_positive_int


class Plan(NamedTuple):
    """What a fit call runs: how many epochs, with which callbacks, and after which epochs cycles end."""

    n_epoch: int
    cbs: list
    cycle_ends: list[int]


def fit_plan(lrs, n_cycle, cycle_len, cycle_mult, use_clr, use_clr_beta) -> Plan:
    """fastai 0.7 `fit`: constant lr without `cycle_len`, else SGDR or the CLR shapes."""
    check_positive_int(n_cycle, "n_cycle")
    if cycle_len is None:
        if use_clr is not None or use_clr_beta is not None:
            raise ValueError("use_clr/use_clr_beta: need cycle_len (the cycle length in epochs)")
        return Plan(n_cycle, [], list(range(1, n_cycle + 1)))
    raise NotImplementedError("fit with cycle_len: see the schedules issue")


def one_cycle_plan(n_epoch, lrs, div, div_final, pct_start, moms) -> Plan:
    raise NotImplementedError("fit_one_cycle: see the schedules issue")


def cyclic_plan(n_epoch, n_iter, lrs, base_lr, step_size, n_cycles, mode, gamma, moms, n_groups) -> Plan:
    raise NotImplementedError("fit_cyclic: see the schedules issue")
