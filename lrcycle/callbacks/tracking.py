"""Tracking callbacks: cycle snapshots and best-model saving."""

from __future__ import annotations


def save_callbacks(cycle_save_name, best_save_name, cycle_ends) -> list:
    """The callbacks that `cycle_save_name` / `best_save_name` of a fit call ask for."""
    if cycle_save_name is None and best_save_name is None:
        return []
    raise NotImplementedError("cycle_save_name/best_save_name: see the tracking issue")
