"""Tracking callbacks: a snapshot at every cycle end, and the best model by a monitored epoch value."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from ..callback import ORDER, Callback
from ..distributed import group_active
from ..recorder import auto_mode, metric_name
from ..validate import check_name, derived_name


class TrackerCallback(Callback):
    """Follows one column of the recorder's epoch table (`valid_loss`, `train_loss` or a metric's name).

    `mode='min'` counts a value as better when it is below the best by more than `min_delta`, `'max'`
    when above; `'auto'` is `min` for names with 'loss' or 'error' in them and `max` otherwise. The best
    value starts afresh at every fit. Runs after the Recorder (order 50), which writes the epoch row.
    A fit without validation (a range test, `with_valid=False`) leaves a tracker of a validation value idle.
    """

    order = ORDER["tracker"]

    def __init__(self, monitor: str = "valid_loss", mode: str = "auto", min_delta: float = 0.0):
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode: expected 'auto', 'min' or 'max', got {mode!r}")
        if isinstance(min_delta, bool) or not isinstance(min_delta, (int, float)) or not min_delta >= 0:
            raise ValueError(f"min_delta: must be a number >= 0, got {min_delta!r}")
        if mode == "auto":
            mode = auto_mode(monitor)
        self.monitor, self.mode, self.min_delta = monitor, mode, float(min_delta)

    def check(self, learn) -> None:
        """Before anything changes: the monitored name must be an epoch column of this learner."""
        columns = ["train_loss", "valid_loss", *(metric_name(m) for m in learn.metrics)]
        if self.monitor not in columns:
            raise ValueError(f"monitor: {self.monitor!r} is not an epoch column; choose one of {columns}")

    def before_fit(self, learn) -> None:
        self.active = self.monitor == "train_loss" or learn.with_valid
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = None

    def improved(self, learn) -> bool:
        """Read this epoch's value; if it beats the best, keep it as the best and say so (NaN never does)."""
        if not self.active:
            return False
        value = learn.recorder.epochs[-1][self.monitor]
        better = value < self.best - self.min_delta if self.mode == "min" else value > self.best + self.min_delta
        if better:
            self.best, self.best_epoch = value, learn.epoch
        return better

    def state_dict(self) -> dict:
        """The best value so far and its epoch (plain data, for a full-state checkpoint)."""
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a `state_dict()`; call it after `before_fit`, which starts the best afresh."""
        best, best_epoch = float(state["best"]), state["best_epoch"]
        self.best, self.best_epoch = best, best_epoch


class SaveModelCallback(TrackerCallback):
    """Saves the model as `name` whenever the monitored value improves (fastai's `best_save_name`).

    `load_at_end` loads the best model back after the fit; otherwise the learner keeps the last weights.
    """

    def __init__(
        self,
        name: str = "model",
        monitor: str = "valid_loss",
        mode: str = "auto",
        min_delta: float = 0.0,
        with_opt: bool = True,
        load_at_end: bool = False,
    ):
        super().__init__(monitor, mode, min_delta)
        self.name, self.with_opt, self.load_at_end = check_name(name, "name"), with_opt, load_at_end

    def after_epoch(self, learn) -> None:
        if self.improved(learn):
            learn.save(self.name, with_opt=self.with_opt)

    def after_fit(self, learn) -> None:
        if self.load_at_end and self.best_epoch is not None:
            if group_active():
                torch.distributed.barrier()  # rank 0 wrote the file: wait for it before every rank reads it
            learn.load(self.name, with_opt=self.with_opt)


class CycleSnapshotCallback(Callback):
    """Saves the model as `<name>_cyc_<c>` at the end of every cycle c (0-based), where the lr is lowest.

    Cycles end after the epoch counts in `cycle_ends`; `None` takes the fit's own (`learn.cycle_ends`).
    """

    order = ORDER["tracker"]

    def __init__(self, name: str, cycle_ends=None, with_opt: bool = True):
        self.name, self.with_opt = check_name(name, "cycle_save_name"), with_opt
        self.cycle_ends = None if cycle_ends is None else list(cycle_ends)

    def before_fit(self, learn) -> None:
        self._ends = learn.cycle_ends if self.cycle_ends is None else self.cycle_ends
        self.saved: list = []

    def after_epoch(self, learn) -> None:
        if learn.epoch + 1 in self._ends:
            cycle = self._ends.index(learn.epoch + 1)
            self.saved.append(learn.save(derived_name(self.name, f"_cyc_{cycle}"), with_opt=self.with_opt))

    def state_dict(self) -> dict:
        """The files saved so far in this fit, as strings (plain data, for a full-state checkpoint)."""
        return {"saved": [str(file) for file in self.saved]}

    def load_state_dict(self, state: dict) -> None:
        self.saved = [Path(file) for file in state["saved"]]
