"""Loggers: the recorder's traces written out as a fit goes, a CSV file of epochs and TensorBoard event files.

Both read `learn.recorder` at the end of each epoch (after it has flushed the epoch's losses), so they add no
host-device sync to an iteration, and neither writes during a range test.
"""

from __future__ import annotations

import math
from pathlib import Path

from fastprogress.fastprogress import format_time  # fastai's epoch time: mm:ss, or h:mm:ss

from ..callback import ORDER, Callback
from ..optim import get_mom
from ..validate import check_flag
from .lr_finder import LRFinderCallback


def _in_range_test(learn) -> bool:
    return any(isinstance(cb, LRFinderCallback) for cb in learn.cbs)


def _format_value(value) -> str:
    """fastai's CSV cell: an int as it is, a float with 6 decimals, a missing value (NaN) as `#na#`."""
    if isinstance(value, int):
        return str(value)
    return "#na#" if value is None or math.isnan(value) else f"{value:.6f}"


class CSVLogger(Callback):
    """fastai's CSV log: `learn.path/fname` gets the header `epoch,train_loss,valid_loss,<metrics>,time`, then
    one row per epoch, written and flushed as the epoch ends (a crash keeps the rows so far). `append=True`
    adds to an existing file (the header only when it is new). A resumed fit writes the checkpoint's epochs
    first (with `append=True`, only the new ones). `learn.fit(0.1, 3, cbs=[CSVLogger()])`.
    """

    order = ORDER["logger"]

    def __init__(self, fname="history.csv", append: bool = False):
        self.fname, self.append, self.file = Path(fname), check_flag(append, "append"), None

    def before_fit(self, learn) -> None:
        if _in_range_test(learn):
            return
        self.path = learn.path / self.fname
        new = not (self.append and self.path.exists() and self.path.stat().st_size > 0)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = self.path.open("a" if self.append else "w")
        if new:
            names = ["epoch", "train_loss", "valid_loss", *learn.recorder.metric_names, "time"]
            self.file.write(",".join(names) + "\n")
            self.file.flush()
        self.rows_written = None  # known at the first epoch, once a resumed fit has loaded its epochs

    def before_epoch(self, learn) -> None:
        if self.file is not None and self.rows_written is None:
            self.rows_written = len(learn.recorder.epochs) if self.append else 0

    def after_epoch(self, learn) -> None:
        if self.file is None:
            return
        names = ["epoch", "train_loss", "valid_loss", *learn.recorder.metric_names]
        for row in learn.recorder.epochs[self.rows_written :]:
            cells = [_format_value(row[name]) for name in names] + [format_time(row["time"])]
            self.file.write(",".join(cells) + "\n")
        self.rows_written = len(learn.recorder.epochs)
        self.file.flush()

    def cleanup_fit(self, learn) -> None:
        """Closes the file on every exit of the fit, Ctrl-C included."""
        if self.file is not None:
            self.file.close()
            self.file = None

    def read_log(self):
        """The file as a DataFrame (`#na#` read as NaN)."""
        import pandas as pd  # where a table is read, not at `import lrcycle`

        return pd.read_csv(self.path, na_values=["#na#"])


class TensorBoardCallback(Callback):
    """TensorBoard event files in `log_dir` (None: `runs/<date>_<host>`, as `SummaryWriter` picks): per
    iteration `train_loss`, `smooth_loss`, `lr_<g>` and `mom_<g>` for every layer group g (step: the iteration);
    per epoch `valid_loss` and each metric (step: the iterations done). Iterations are written at the epoch's
    end from the recorder, with no sync per iteration. Needs `pip install lrcycle[tensorboard]`.
    `learn.fit_one_cycle(3, 0.1, cbs=[TensorBoardCallback('runs/one')])`.
    """

    order = ORDER["logger"]

    def __init__(self, log_dir=None):
        try:
            from tensorboard.compat.proto.summary_pb2 import Summary
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as error:
            raise ImportError("TensorBoardCallback needs tensorboard: pip install 'lrcycle[tensorboard]'") from error
        self.log_dir, self.writer, self.writer_class, self.summary_class = log_dir, None, SummaryWriter, Summary

    def before_fit(self, learn) -> None:
        if _in_range_test(learn):
            return
        log_dir = None if self.log_dir is None else str(self.log_dir)
        self.writer = self.writer_class(log_dir=log_dir, max_queue=1024)  # a longer queue: no wait per event
        self.before_epoch(learn)  # also here: an epoch may be cancelled before this callback's before_epoch

    def before_epoch(self, learn) -> None:
        """The epoch's iterations start here (a resumed fit's recorder holds the earlier ones by now)."""
        self.written = len(learn.recorder.iters)
        self.group_moms = []  # momenta of every group, when there are several (the recorder keeps the last's)

    def after_batch(self, learn) -> None:
        """Only with several layer groups: each group's momentum (host floats, no sync)."""
        if self.writer is not None and learn.training and learn.stepped and len(learn.opt.param_groups) > 1:
            self.group_moms.append([get_mom(group) for group in learn.opt.param_groups])

    def after_epoch(self, learn) -> None:
        if self.writer is None:
            return
        rec = learn.recorder
        smooth = rec.smooth_losses  # worked out once here, not looked up for every iteration
        new = range(self.written, len(rec.iters))
        moms = self.group_moms if len(self.group_moms) == len(new) else [[m] for m in rec.moms[self.written :]]
        for i, group_moms in zip(new, moms, strict=True):
            values = {"train_loss": rec.losses[i], "smooth_loss": smooth[i]}
            values.update((f"lr_{g}", trace[i]) for g, trace in enumerate(rec.group_lrs))
            values.update((f"mom_{g}", mom) for g, mom in enumerate(group_moms) if mom is not None)
            self.write(values, rec.iters[i])
        self.written, self.group_moms = len(rec.iters), []
        row = rec.epochs[-1]
        self.write({name: row[name] for name in ["valid_loss", *rec.metric_names] if not math.isnan(row[name])},
                   learn.train_iter)  # fmt: skip
        self.writer.flush()

    def write(self, values: dict, step: int) -> None:
        """One event holding every scalar of a step (what `add_scalar` writes one event each for: the event
        files' checksums are computed in Python, so fewer events cost several times less)."""
        if values:
            summary = self.summary_class(
                value=[self.summary_class.Value(tag=k, simple_value=v) for k, v in values.items()]
            )
            self.writer.file_writer.add_summary(summary, step)

    def cleanup_fit(self, learn) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
