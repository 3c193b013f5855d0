"""Progress display built on fastprogress: bars and a live table in notebooks, one line per epoch elsewhere."""

from __future__ import annotations

import math

from fastprogress import fastprogress
from fastprogress.fastprogress import format_time

from ..callback import ORDER, Callback
from ..distributed import is_main_process


class ProgressCallback(Callback):
    """A master bar over epochs, a bar over each epoch's batches, and the epoch table.

    In a notebook the bars are fastprogress's HTML widgets. In a terminal or log file there are no bars,
    only one table line per epoch, so nothing is redrawn thousands of times.
    """

    order = ORDER["progress"]

    def __init__(self, in_notebook: bool | None = None):
        self.in_notebook = fastprogress.IN_NOTEBOOK if in_notebook is None else in_notebook
        # set here too: `validate()` or a fit cancelled before our `before_fit` still calls the other hooks
        self.show, self.pbar, self.mbar = False, None, None

    def before_fit(self, learn) -> None:
        self.show = is_main_process()
        if not self.show:
            return
        self.names = ["epoch", "train_loss", "valid_loss", *learn.recorder.metric_names, "time"]
        self.pbar = None
        if self.in_notebook:
            self.mbar = fastprogress.NBMasterBar(range(learn.n_epoch))
            self.mbar.update(learn.start_epoch)
            self.mbar.write(self.names, table=True)
        else:
            print("  ".join(f"{name:>10}" for name in self.names), flush=True)

    def before_train(self, learn) -> None:
        if self.show and self.in_notebook:
            self.pbar = fastprogress.NBProgressBar(range(learn.n_iter), parent=self.mbar)
            self.pbar.update(0)

    def after_batch(self, learn) -> None:
        if self.pbar is not None and learn.training:
            self.pbar.update(learn.iter + 1)

    def after_train(self, learn) -> None:
        self.pbar = None

    def after_epoch(self, learn) -> None:
        if not self.show:
            return
        row = learn.recorder.epochs[-1]
        cells = [str(row["epoch"])] + [_fmt(row[name]) for name in self.names[1:-1]] + [format_time(row["time"])]
        if self.in_notebook:
            self.mbar.write(cells, table=True)
            self.mbar.update(learn.epoch + 1)
        else:
            print("  ".join(f"{cell:>10}" for cell in cells), flush=True)

    def cleanup_fit(self, learn) -> None:
        self.pbar = None
        if self.show and self.in_notebook and self.mbar is not None:
            self.mbar.on_iter_end()
        self.mbar = None


def _fmt(value) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.6f}"
