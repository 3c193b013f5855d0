"""Progress display built on fastprogress's own bars: notebook widgets, live console bars in a terminal, and
terse lines in a log (CI, a file) where a redrawn bar would only add noise."""

from __future__ import annotations

import math
import sys
import time

from fastprogress import fastprogress
from fastprogress.fastprogress import format_time

from ..callback import ORDER, Callback
from ..distributed import is_main_process

LOSS_READ_EVERY = 0.25
"""Seconds between two reads of the smoothed loss for a bar's comment: a bar reads the loss at most 4 times a
second, whatever the batch rate (the recorder may keep losses on the device)."""


def _display_mode(in_notebook: bool | None, in_terminal: bool | None) -> str:
    """`notebook` (HTML widgets), `terminal` (console bars redrawn in place) or `log` (plain lines only)."""
    if fastprogress.IN_NOTEBOOK if in_notebook is None else in_notebook:
        return "notebook"
    terminal = in_terminal if in_terminal is not None else _stdout_is_a_terminal()
    return "terminal" if terminal else "log"


def _stdout_is_a_terminal() -> bool:
    isatty = getattr(sys.stdout, "isatty", None)
    return bool(isatty and isatty())


class _LossComment:
    """The smoothed loss shown beside a bar, read from the recorder at most every `LOSS_READ_EVERY` seconds."""

    def __init__(self):
        self.next_read = 0.0

    def refresh(self, bar, learn) -> None:
        now = time.monotonic()
        if now < self.next_read:
            return
        self.next_read = now + LOSS_READ_EVERY
        learn.recorder.flush()  # the losses kept on the device so far: one read, at most 4 times a second
        smooth = learn.recorder.smooth_losses
        if len(smooth):
            bar.comment = f"smoothed loss {float(smooth[-1]):.4f}"


class ProgressCallback(Callback):
    """A master bar over epochs, a bar over each epoch's training batches and one over its validation batches,
    and the epoch table.

    - notebook: fastprogress's HTML widgets (`NBMasterBar`, `NBProgressBar`) and table.
    - terminal (stdout is a tty): fastprogress's console bars (`ConsoleMasterBar`, `ConsoleProgressBar`):
      one live line `Epoch k/n : |bar| pct [i/n elapsed<remaining smoothed loss x]`, redrawn in place about
      5 times a second, then the epoch's table row.
    - log (stdout redirected: CI, a file): a header line and one table line per epoch, nothing redrawn.
    `in_notebook` / `in_terminal` force a mode; None detects it when each fit starts.
    """

    order = ORDER["progress"]

    def __init__(self, in_notebook: bool | None = None, in_terminal: bool | None = None):
        self.in_notebook, self.in_terminal = in_notebook, in_terminal
        # set here too: `validate()` or a fit cancelled before our `before_fit` still calls the other hooks
        self.show, self.pbar, self.mbar, self.mode = False, None, None, "log"

    def sweep_bar(self, num_it: int) -> SweepProgress:
        """The range test's bar, in this callback's display mode: one bar over its `num_it` iterations."""
        return SweepProgress(num_it, self.in_notebook, self.in_terminal)

    def before_fit(self, learn) -> None:
        self.show = is_main_process()
        if not self.show:
            return
        self.mode = _display_mode(self.in_notebook, self.in_terminal)
        self.names = ["epoch", "train_loss", "valid_loss", *learn.recorder.metric_names, "time"]
        self.pbar, self.loss_comment = None, _LossComment()
        if self.mode == "log":
            print("  ".join(f"{name:>10}" for name in self.names), flush=True)
            return
        bars = fastprogress.NBMasterBar if self.mode == "notebook" else fastprogress.ConsoleMasterBar
        self.mbar = bars(range(learn.n_epoch))
        self.mbar.update(learn.start_epoch)
        self.mbar.write(self.names, table=True)

    def _child_bar(self, total: int, learn):
        bar = fastprogress.NBProgressBar if self.mode == "notebook" else fastprogress.ConsoleProgressBar
        self.pbar = bar(range(total), parent=self.mbar)
        if self.mode == "terminal":  # fastprogress writes `Epoch 1/n` for the table's epoch 0: count as the table
            self.pbar.prefix = f"epoch {learn.epoch} of 0-{learn.n_epoch - 1} :"
        self.pbar.update(0)

    def before_train(self, learn) -> None:
        if self.show and self.mbar is not None:
            self._child_bar(learn.n_iter, learn)

    def before_validate(self, learn) -> None:
        self.pbar = None
        if self.show and self.mbar is not None and hasattr(learn.dls.valid, "__len__") and len(learn.dls.valid):
            self._child_bar(len(learn.dls.valid), learn)

    def after_batch(self, learn) -> None:
        if self.pbar is None:
            return
        if learn.training:
            self.loss_comment.refresh(self.pbar, learn)
        self.pbar.update(learn.iter + 1)

    def after_train(self, learn) -> None:
        self.pbar = None

    def after_validate(self, learn) -> None:
        self.pbar = None

    def after_epoch(self, learn) -> None:
        if not self.show:
            return
        row = learn.recorder.epochs[-1]
        cells = [str(row["epoch"])] + [_fmt(row[name]) for name in self.names[1:-1]] + [format_time(row["time"])]
        if self.mbar is None:
            print("  ".join(f"{cell:>10}" for cell in cells), flush=True)
            return
        self.mbar.write(cells, table=True)
        self.mbar.update(learn.epoch + 1)

    def cleanup_fit(self, learn) -> None:
        if self.pbar is not None and self.mode == "terminal":
            print(flush=True)  # a bar cut short by an error: the next output starts on its own line
        if self.mbar is not None and self.mode == "notebook":
            self.mbar.on_iter_end()
        self.pbar, self.mbar = None, None


class SweepProgress(Callback):
    """The range test's bar: one bar over its `num_it` iterations with the smoothed loss (notebook or terminal);
    in a log, one summary line at its end (`_sweep_summary`). An early stop leaves the bar where the test
    stopped, and says why in a terminal."""

    order = ORDER["progress"]

    def __init__(self, num_it: int, in_notebook: bool | None = None, in_terminal: bool | None = None):
        self.num_it, self.in_notebook, self.in_terminal, self.bar = num_it, in_notebook, in_terminal, None

    def before_fit(self, learn) -> None:
        self.mode = _display_mode(self.in_notebook, self.in_terminal)
        if not is_main_process() or self.mode == "log":
            return
        bar = fastprogress.NBProgressBar if self.mode == "notebook" else fastprogress.ConsoleProgressBar
        self.bar, self.loss_comment = bar(range(self.num_it)), _LossComment()
        if self.mode == "terminal":
            self.bar.prefix = "range test"
        self.bar.update(0)

    def after_batch(self, learn) -> None:
        if self.bar is not None and learn.training and learn.stepped:
            self.loss_comment.refresh(self.bar, learn)
            self.bar.update(min(learn.train_iter, self.num_it))

    def after_fit(self, learn) -> None:
        if self.mode == "log" and is_main_process():
            print(_sweep_summary(learn.recorder, self.num_it), flush=True)

    def cleanup_fit(self, learn) -> None:
        if self.bar is not None and self.mode == "terminal":
            done = len(learn.recorder.losses)
            if 0 < done < self.num_it:
                self.bar.update_bar(done)  # the last position, which the bar's own throttling may have skipped
            stopped = f"\nrange test: stopped early, after {done} of {self.num_it} iterations"
            print(stopped if done < self.num_it else "")
        self.bar = None


def _sweep_summary(recorder, num_it: int) -> str:
    """One line for a log: `range test: 100 of 100 iterations, lr 1e-07 to 10, lowest smoothed loss 0.4321 at
    lr 0.0123`, with `(stopped early: the loss diverged)` when it ended before `num_it`."""
    recorder.flush()
    lrs, smooth = recorder.lrs, [float(v) for v in recorder.smooth_losses]
    if not lrs:
        return f"range test: 0 of {num_it} iterations"
    finite = [i for i, v in enumerate(smooth) if math.isfinite(v)]
    best = min(finite, key=smooth.__getitem__) if finite else None
    lowest = f", lowest smoothed loss {smooth[best]:.4f} at lr {lrs[best]:.3g}" if best is not None else ""
    early = " (stopped early: the loss diverged)" if len(lrs) < num_it else ""
    return f"range test: {len(lrs)} of {num_it} iterations, lr {lrs[0]:.3g} to {lrs[-1]:.3g}{lowest}{early}"


def _fmt(value) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.6f}"
