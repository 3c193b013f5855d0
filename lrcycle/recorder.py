"""The Recorder: every training iteration's loss, smoothed loss, lr and momentum, and every epoch's results."""

from __future__ import annotations

import copy
import itertools
import math
import time
from array import array
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from . import plots
from .batches import logits, n_samples, target
from .callback import ORDER, Callback
from .interrupt import held_sigint, holds_sigint
from .optim import get_mom

if TYPE_CHECKING:
    import pandas as pd


class Recorder(Callback):
    """Observes the loop and keeps its traces; it changes nothing in the learner.

    Smoothed loss, the n-th iteration (1-based): `avg = beta*avg + (1-beta)*loss`,
    `smooth = avg / (1 - beta**n)`, reset at the start of every fit and range test.
    An iteration is one optimizer step: with gradient accumulation, the losses of the batches
    that make one step are averaged into one point.

    No host-device sync per iteration: each batch's loss stays on its device (`learn.loss.detach()`; a plain
    CPU tensor, with no device to wait for, is read at once with `tolist()`, which costs less) and the values move
    to `losses` in one transfer every `sync_every` iterations, at the end of each epoch's training and of the fit
    (`flush()`; the range test calls it every iteration, as it must read each loss to stop). The values are the
    same as reading each loss at once. `smooth_losses` are worked out from `losses` when read. A callback that
    reads `losses` during training calls `flush()` first; `iters`, `lrs` and `moms` are current at every batch.

    A step a GradScaler skipped (`drop_step`) leaves no point: its position is in `skipped_steps`.

    The per-iteration traces are typed (`Trace`: 8 bytes a value, 48 bytes an iteration with one param group, where
    lists of Python floats took about 190) and read like lists: index, slice, `len`, iterate, `== [...]`. `lrs` is the
    last group's trace, the same object as `group_lrs[-1]`.

    Each epoch's results are a dict read by name, `epochs[-1]["valid_loss"]`: keys `epoch, train_loss,
    valid_loss`, one per metric name, `time`, the columns of `epoch_df()`.
    """

    order = ORDER["recorder"]

    def __init__(self, beta: float = 0.98, sync_every: int = 64):
        if not 0 <= beta < 1:
            raise ValueError(f"beta: must be in [0, 1), got {beta!r}")
        if isinstance(sync_every, bool) or not isinstance(sync_every, int) or sync_every < 1:
            raise ValueError(f"sync_every: must be an integer >= 1, got {sync_every!r}")
        self.beta, self.sync_every = beta, sync_every
        self.metric_names: list[str] = []
        self._reset_traces()
        self.epochs: list[dict] = []
        self.suggestions = None
        self.lr_find_result = None  # the last range test's result, kept through later fits for `plot()`
        self.last_valid: list[float] = []
        self._previous, self._start_iter, self._finished = None, 0, True  # the history a fit replaces (`before_fit`)

    def _reset_traces(self, n_groups: int = 0) -> None:
        self.iters, self.iter_epochs = Trace("q"), Trace("q")
        self.losses, self._smooth = Trace("d"), Trace("d")
        self.moms = OptionalTrace()
        self._use_group_lrs([Trace("d") for _ in range(n_groups)])
        self._avg, self._n = 0.0, 0  # the smoothing's running average and count, as of `_smooth`'s last point
        # on the device, not yet read: every batch loss since the last flush; the number of batches making
        # each recorded step (more than one under accumulation); batches of the step still open
        self._unread, self._step_sizes, self._open = [], [], 0
        self._drop, self.skipped_steps = False, []
        self._valid_sums, self._valid_count = None, 0

    # ---- hooks -------------------------------------------------------------------------------------
    # what `before_fit` replaces: put back when a fit ends (an error, Ctrl-C) before its first step
    _HISTORY = ("iters", "iter_epochs", "losses", "_smooth", "lrs", "moms", "group_lrs", "_avg", "_n",
                "_unread", "_step_sizes", "_open", "_drop", "skipped_steps", "_valid_sums", "_valid_count",
                "epochs", "suggestions", "metric_names")  # fmt: skip

    def before_fit(self, learn) -> None:
        # references suffice: the traces are new lists from here on, the old ones stay as they were
        self._previous = {name: getattr(self, name) for name in self._HISTORY}
        self._start_iter, self._finished = learn.train_iter, False
        self._reset_traces(len(learn.opt.param_groups))
        self.epochs = []
        self.suggestions = None  # a range test sets {name: lr or (low, high)} after it ends
        self.metric_names = [metric_name(m) for m in learn.metrics]
        self.before_epoch(learn)  # also here: a callback may cancel an epoch before our before_epoch runs

    def before_epoch(self, learn) -> None:
        self._epoch_start = time.perf_counter()
        self._epoch_losses_start = len(self.losses)

    def after_batch(self, learn) -> None:
        """Per training iteration; on the hot path, so it keeps to local variables and waits for no device. The
        loop holds Ctrl-C over the whole batch, this hook included, so every trace gets its entry for the step or
        none does."""
        if not learn.training:
            self._after_valid_batch(learn)
            return
        loss = learn.loss
        if loss is None:  # the batch was cancelled before a loss existed
            return
        if self._drop:  # the step was skipped: the batches that made it leave no point
            self._drop_open_step(learn)
            return
        on_cpu = type(loss) is torch.Tensor and loss.is_cpu
        if on_cpu and learn.stepped and not self._unread:
            self.losses.append(loss.tolist())  # a one-batch step on the CPU, no loss waiting before it: read now
        else:
            self._unread.append(loss.tolist() if on_cpu else loss.detach())
            if not learn.stepped:  # accumulated into a step still open: the step's point is the mean
                self._open += 1
                return
            self._step_sizes.append(self._open + 1)
            self._open = 0
            if len(self._step_sizes) >= self.sync_every:
                self.flush()
        self.iters.append(learn.train_iter - 1)
        self.iter_epochs.append(learn.epoch)
        groups = learn.opt.param_groups
        for trace, group in zip(self.group_lrs, groups):
            trace.append(group["lr"])  # the last group's is `lrs`
        mom = get_mom(groups[-1])
        self.moms.append(math.nan if mom is None else mom)  # `OptionalTrace` keeps None as NaN

    def flush(self) -> None:
        """Move the recorded steps' losses off the device (one transfer) into `losses`.

        A step of k accumulated batches records their mean, `sum(losses) / k`; the same floats as reading each
        loss with `.item()` as it comes.
        """
        if not self._step_sizes:
            return
        sizes, n_done = self._step_sizes, sum(self._step_sizes)
        values = host_floats(self._unread[:n_done])
        if n_done > len(sizes):  # some steps accumulated several batches: each step's loss is their mean
            starts = itertools.accumulate(sizes[:-1], initial=0)
            values = [values[i] if k == 1 else sum(values[i : i + k]) / k for i, k in zip(starts, sizes, strict=True)]
        with held_sigint():  # the trace and the losses still on the device change together, or not at all
            del self._unread[:n_done]
            self.losses.extend(values)
            self._step_sizes = []

    @property
    def smooth_losses(self) -> Trace:
        """The smoothed losses (the class docstring's formula) of every loss in `losses`, worked out when read:
        a fit that never reads them spends nothing on them per step."""
        if len(self._smooth) < len(self.losses):
            self._smooth_new_losses()
        return self._smooth

    @holds_sigint  # the smoothed trace and the running average change together, or not at all
    def _smooth_new_losses(self) -> None:
        for loss in self.losses[len(self._smooth) :]:
            self._smooth_next(loss)

    def _smooth_next(self, loss: float) -> float:
        """The next point of the smoothing, `avg = beta*avg + (1-beta)*loss`, `avg / (1 - beta**n)`, appended to the
        smoothed trace and returned (callers hold Ctrl-C: the trace and the running average change together)."""
        n = self._n + 1
        avg = self.beta * self._avg + (1 - self.beta) * loss
        value = avg / (1 - self.beta**n)
        self._smooth.append(value)
        self._avg, self._n = avg, n
        return value

    @holds_sigint  # the losses read, the smoothed trace and the running average change together
    def latest_smooth_loss(self) -> float:
        """`smooth_losses[-1]`, every loss read first (`flush`): what the range test's stop reads after each step,
        where one loss is new each time and is smoothed here directly."""
        self.flush()
        losses, smooth = self.losses, self._smooth
        if len(smooth) + 1 == len(losses):
            return self._smooth_next(array.__getitem__(losses, -1))
        return self.smooth_losses[-1]

    def drop_step(self) -> None:
        """The optimizer step of this iteration was not applied (a GradScaler found inf/NaN gradients): its
        batches leave no point (a point is an applied step; the next one is tried at the same lr). Called
        by MixedPrecision before this iteration's `after_batch`."""
        self._drop = True

    def _drop_open_step(self, learn) -> None:
        if self._open:
            del self._unread[-self._open :]
        self._open, self._drop = 0, False
        self.skipped_steps.append(learn.train_iter)

    def after_train(self, learn) -> None:
        self.flush()

    def after_fit(self, learn) -> None:
        self.flush()
        self._finished = True

    def cleanup_fit(self, learn) -> None:
        self.flush()  # an interrupted fit keeps every step it recorded
        previous, self._previous = self._previous, None
        if previous is not None and not self._finished and learn.train_iter == self._start_iter:
            for name, value in previous.items():  # no step was taken: the history is the previous fit's
                setattr(self, name, value)

    def before_validate(self, learn) -> None:
        self._valid_sums = None
        self._valid_count = 0

    def _after_valid_batch(self, learn) -> None:
        if learn.loss is None:
            return
        n = n_samples(learn.yb)
        pred, targ = (logits(learn.pred), target(learn.yb)) if learn.metrics else (None, None)
        values = [learn.loss.detach().float()] + [m(pred, targ).detach().float() for m in learn.metrics]
        batch = torch.stack(values) * n
        self._valid_sums = batch if self._valid_sums is None else self._valid_sums + batch
        self._valid_count += n

    def reduce_valid(self, reduce: Callable[[torch.Tensor], torch.Tensor], width: int) -> None:
        """Replace this validation's running totals by `reduce(packed)`, where `packed` is the float64 CPU
        tensor `[loss*n, metric*n, ..., n]` summed over this process's batches (`width` = 1 + metrics values
        before the count; zeros when no batch was seen). Distributed training passes an all-reduce here, so
        the mean taken in `after_validate` is over every process's shard; call it before that hook runs.
        """
        sums = self._valid_sums if self._valid_sums is not None else torch.zeros(width)
        count = torch.tensor([float(self._valid_count)], dtype=torch.double)
        total = reduce(torch.cat([sums.detach().double().cpu(), count]))
        self._valid_count = int(total[-1].item())
        self._valid_sums = total[:-1] if self._valid_count > 0 else None

    def after_validate(self, learn) -> None:
        sums, count = self._valid_sums, self._valid_count
        # cleared here too: a validation cancelled before our before_validate must not reuse them
        self._valid_sums, self._valid_count = None, 0
        if sums is None:
            self.last_valid = [math.nan] * (1 + len(learn.metrics))
            return
        self.last_valid = (sums / count).tolist()

    def after_epoch(self, learn) -> None:
        self.flush()
        epoch_losses = self.losses[self._epoch_losses_start :]
        train_loss = sum(epoch_losses) / len(epoch_losses) if epoch_losses else math.nan
        valid = self.last_valid if learn.validated_this_epoch else [math.nan] * (1 + len(learn.metrics))
        names = ["valid_loss", *self.metric_names]
        row = {"epoch": learn.epoch, "train_loss": train_loss, **dict(zip(names, valid, strict=True))}
        row["time"] = time.perf_counter() - self._epoch_start
        self.epochs.append(row)
        self.before_epoch(learn)  # the next epoch starts here should its before_epoch be cancelled early

    # ---- state, for a full-state checkpoint ----------------------------------------------------------
    _TRACES = ("iters", "iter_epochs", "losses", "smooth_losses", "lrs", "moms")
    _PLAIN = ("epochs", "last_valid")

    def state_dict(self) -> dict:
        """The traces so far and the smoothing's running average, as plain data (lists, dicts, numbers)."""
        # reading `smooth_losses` among the traces smooths every loss, so `avg` and `n` below are the last one's
        state = {name: getattr(self, name).tolist() for name in self._TRACES}
        state["group_lrs"] = [trace.tolist() for trace in self.group_lrs]
        state.update({name: copy.deepcopy(getattr(self, name)) for name in self._PLAIN})
        return {**state, "metric_names": list(self.metric_names), "avg": self._avg, "n": self._n}

    _STEP_TRACES = ("iters", "iter_epochs", "losses", "smooth_losses", "lrs", "moms")

    def check_state(self, state: dict, fit: dict) -> None:
        """A ValueError (its text goes on "the checkpoint's Recorder state ...") unless `state` is one this
        recorder can go on from after `fit["epochs_done"]` epochs of `fit["steps_per_epoch"]` steps: every
        entry there, every per-step trace of one length, the step numbers within the epochs done, one row an
        epoch."""
        missing = [name for name in (*self._TRACES, "metric_names", "avg", "n") if name not in state]
        if missing:
            raise ValueError(f"lacks {', '.join(map(repr, missing))}")
        if not all(isinstance(state[name], list) for name in (*self._STEP_TRACES, "group_lrs", "epochs")):
            raise ValueError("has traces that are not lists")
        traces = {name: state[name] for name in self._STEP_TRACES}
        traces.update({f"group_lrs[{g}]": t for g, t in enumerate(state["group_lrs"])})
        if not all(isinstance(t, list) for t in traces.values()):
            raise ValueError("has a group_lrs trace that is not a list")
        lengths = {name: len(trace) for name, trace in traces.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"has traces of unequal lengths (a truncated trace?): {lengths}")
        done, steps = fit["epochs_done"], fit["steps_per_epoch"]
        if not all(isinstance(i, int) and 0 <= i < done * steps for i in state["iters"]):
            raise ValueError(f"has step numbers outside the {done} epochs of {steps} steps done")
        if len(state["epochs"]) != done or not all(isinstance(row, dict) for row in state["epochs"]):
            raise ValueError(f"has {len(state['epochs'])} epoch rows for the {done} epochs done")
        if not isinstance(state["n"], int) or not isinstance(state["avg"], (int, float)):
            raise ValueError(f"has avg={state['avg']!r} and n={state['n']!r}, expected numbers")

    def load_state_dict(self, state: dict) -> None:
        """Continue from a `state_dict()` taken at an epoch's end; call it after `before_fit`, which resets."""
        iters, iter_epochs = Trace("q", state["iters"]), Trace("q", state["iter_epochs"])
        losses, smooth_losses = Trace("d", state["losses"]), Trace("d", state["smooth_losses"])
        moms, group_lrs = OptionalTrace(state["moms"]), [Trace("d", trace) for trace in state["group_lrs"]]
        lrs = None if group_lrs else Trace("d", state["lrs"])
        plain = {name: copy.deepcopy(state[name]) for name in self._PLAIN}
        avg, n, names = float(state["avg"]), int(state["n"]), list(state["metric_names"])
        self.iters, self.iter_epochs, self.losses, self._smooth = iters, iter_epochs, losses, smooth_losses
        self.moms = moms
        self._use_group_lrs(group_lrs, lrs)
        self.epochs, self.last_valid = plain["epochs"], plain["last_valid"]
        self._avg, self._n, self.metric_names = avg, n, names
        self._epoch_losses_start = len(self.losses)

    def _use_group_lrs(self, group_lrs: list[Trace], lrs: Trace | None = None) -> None:
        """`group_lrs` and `lrs`, the last group's trace (`lrs` itself only where there is no group yet)."""
        self.group_lrs = group_lrs
        self.lrs = group_lrs[-1] if group_lrs else (lrs if lrs is not None else Trace("d"))

    # ---- views -------------------------------------------------------------------------------------
    def iter_df(self) -> pd.DataFrame:
        """One row per training iteration: iter, epoch, loss, smooth_loss, lr, mom (+ lr_<g> per group)."""
        import pandas as pd  # here, not at import: pandas costs `import lrcycle` about 0.15 s

        df = pd.DataFrame(
            {
                "iter": self.iters.tolist(),
                "epoch": self.iter_epochs.tolist(),
                "loss": self.losses.tolist(),
                "smooth_loss": self.smooth_losses.tolist(),
                "lr": self.lrs.tolist(),
                "mom": self.moms.tolist(),
            }
        )
        if len(self.group_lrs) > 1:
            for g, trace in enumerate(self.group_lrs):
                df[f"lr_{g}"] = trace.tolist()
        return df

    def epoch_df(self) -> pd.DataFrame:
        """One row per epoch: epoch, train_loss, valid_loss, one column per metric, time (seconds)."""
        import pandas as pd  # here, not at import: pandas costs `import lrcycle` about 0.15 s

        columns = ["epoch", "train_loss", "valid_loss", *self.metric_names, "time"]
        return pd.DataFrame([[row[name] for name in columns] for row in self.epochs], columns=columns)

    @property
    def values(self) -> list[list[float]]:
        """Per epoch: [valid_loss, *metrics], as fastai users read them."""
        return [[row["valid_loss"], *(row[name] for name in self.metric_names)] for row in self.epochs]

    # ---- drawing -----------------------------------------------------------------------------------
    def plot(self, skip_start: int = 10, skip_end: int = 5, suggestions: bool = True, ax=None):
        """The last range test's smoothed loss against lr (log x axis), its suggestions marked, even after later
        fits (`lr_find_result.plot()`); with no range test yet, this trace's (which warns if the lr was constant)."""
        if self.lr_find_result is not None:
            return self.lr_find_result.plot(skip_start, skip_end, suggestions, ax=ax)
        marks = self.suggestions if suggestions else None
        return plots.plot_loss_vs_lr(self.lrs, self.smooth_losses, skip_start, skip_end, marks, ax=ax)

    def plot_lr(self, show_moms: bool = False, ax=None):
        """Learning rate per iteration, every layer group; momentum beneath when `show_moms` (`ax=` then takes
        two Axes). Returns the lr panel's Axes, as every plot method returns one Axes (`ax.figure.axes`: all)."""
        return plots.plot_lr_trace(self.iters, self.group_lrs, self.moms if show_moms else None, ax=ax)

    def plot_losses(self, skip_start: int = 0, ax=None):
        """Raw training loss per iteration, its centered moving average over about a tenth of the run
        (`plots.smoothing_window`), and validation loss at each epoch's end; skipped iterations are said."""
        return plots.plot_loss_trace(self, skip_start, ax=ax)

    def plot_metrics(self, ax=None):
        """The losses per epoch in one panel, each metric in its own beneath; returns the loss panel's Axes."""
        return plots.plot_epoch_metrics(self.epoch_df(), ax=ax)

    # the names fastai users type: 0.7's `sched.plot_loss`, v2's `plot_loss`, `plot_lr_find`, `plot_sched`
    plot_loss = plot_losses
    plot_lr_find = plot
    plot_sched = plot_lr


def host_floats(losses: list) -> list[float]:
    """Python floats of losses that are floats already (read on the CPU) or 1-element tensors: one stacked
    transfer when the tensors are 0-d on one device (`stack` promotes mixed dtypes to one that holds each value
    exactly), else one `.item()` each."""
    if not losses or type(losses[0]) is float:
        return losses if all(type(v) is float for v in losses) else [_host_float(v) for v in losses]
    if losses[0].dim() != 0:
        return [_host_float(v) for v in losses]
    if len(losses) == 1:  # one loss (the range test reads each): its own `tolist()`, 0.2 us where stacking takes 1.8
        return [losses[0].tolist()]
    try:
        return torch.stack(losses).tolist()
    except (RuntimeError, TypeError):  # other shapes, devices or floats among them
        return [_host_float(v) for v in losses]


def _host_float(loss) -> float:
    return loss if type(loss) is float else loss.item()


def metric_name(metric) -> str:
    return getattr(metric, "__name__", type(metric).__name__)


class Trace(array):
    """A per-iteration trace in typed storage (`array.array`: 8 bytes a value, where a list of Python floats takes
    32), read like the list it stands for: an index gives the value, a slice a list, and it equals a list of the
    same values (`trace == [...]`). `typecode` 'd' holds floats, 'q' integers."""

    __slots__ = ()  # no instance dict: an append (every step) finds `array.append` at once

    def __getitem__(self, index):
        value = array.__getitem__(self, index)  # not `super()`: the range test reads an item every step
        return value.tolist() if type(index) is slice else value

    def __eq__(self, other):
        other = other.tolist() if isinstance(other, Trace) else other
        return self.tolist() == other if isinstance(other, list) else super().__eq__(other)

    def __ne__(self, other):
        other = other.tolist() if isinstance(other, Trace) else other
        return self.tolist() != other if isinstance(other, list) else super().__ne__(other)

    def __repr__(self) -> str:
        return repr(self.tolist())

    def __copy__(self) -> Trace:
        return Trace(self.typecode, self)

    def __deepcopy__(self, memo) -> Trace:
        return self.__copy__()


class OptionalTrace(Trace):
    """A float trace in which a value may be None (momentum, for an optimizer without one), kept as NaN: a
    momentum is never NaN, so a NaN reads back as None. Built from values that may be None; `append` (every
    step, so `array`'s own) takes a float, NaN for None."""

    __slots__ = ()

    def __new__(cls, values=()):
        return super().__new__(cls, "d", [math.nan if v is None else v for v in values])

    def __getitem__(self, index):
        return _none_for_nan(super().__getitem__(index))

    def __iter__(self):
        return iter(self.tolist())

    def tolist(self) -> list:
        return _none_for_nan(super().tolist())

    def __copy__(self) -> OptionalTrace:
        return OptionalTrace(self.tolist())

    def __reduce__(self):
        return OptionalTrace, (self.tolist(),)


def _none_for_nan(value):
    """None where `value` (a float, or a list of them) is NaN."""
    if isinstance(value, list):
        return [None if v != v else v for v in value]
    return None if value != value else value


def auto_mode(monitor: str) -> str:
    """'min' for names with 'loss' or 'error' in them (lower is better), 'max' otherwise."""
    return "min" if "loss" in monitor or "error" in monitor else "max"
