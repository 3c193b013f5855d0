"""The callback base class, the fixed event vocabulary, the order table and the cancel exceptions."""

from __future__ import annotations

import contextlib

ORDER = {
    "mixed_precision": -1100,
    "interrupt": -1000,
    "loss_check": -30,
    "accumulation": -20,
    "guard": -10,
    "clip": -5,
    "finder": 0,
    "scheduler": 10,
    "distributed": 40,
    "recorder": 50,
    "progress": 60,
    "averaging": 65,
    "tracker": 70,
    "early_stopping": 80,
    "nan": 90,
}
"""Where each shipped callback runs: lower runs first, ties keep list order. Your own callbacks fit in between.

- `mixed_precision`: chooses the autocast context before anything runs a forward pass, and completes a
  float16 step (the GradScaler's update, and undoing a skipped step's count) before anything, even a held-back
  Ctrl-C, sees the step.
- `interrupt`: raises a Ctrl-C held back during the optimizer step, right after it, before anything else.
- `loss_check`: a loss that is not a scalar tensor is an error before anything reads it; a non-finite loss
  warns at the end of the fit.
- `accumulation`: gradient accumulation sets the step counts and skips steps before anyone reads them.
- `guard`: copies the buffers once the fit's starting step is known, to put them back should the fit fail
  before its first step.
- `clip`: gradient clipping, after accumulation has cancelled the steps of unfinished groups, before any other
  `before_step` hook reads the gradients.
- `finder`: the range test sets each iteration's lr before anything reads it in `before_batch`.
- `scheduler`: the fit's schedule sets lr and momentum before the step.
- `distributed`: averages each iteration's loss and reduces validation sums across processes, before the
  recorder reads them.
- `recorder`: records the iteration and writes each epoch's row (the Recorder only observes).
- `progress`: draws the bars and the epoch table from what the recorder wrote.
- `averaging`: weight averaging at cycle ends, after the recorder, before the snapshots are saved.
- `tracker`: reads the recorded values: best-model saving, cycle snapshots, the range test's stop.
- `early_stopping`: may end the fit, so it runs after the epoch is recorded and saved.
- `nan`: stops at a non-finite loss after the callbacks that change the loss in `after_loss`.
"""

EVENTS = (
    "before_fit",
    "before_epoch",
    "before_train",
    "before_batch",
    "after_pred",
    "after_loss",
    "before_backward",
    "before_step",
    "after_step",
    "after_batch",
    "after_train",
    "before_validate",
    "after_validate",
    "after_epoch",
    "after_fit",
    "cleanup_fit",
    "after_cancel_fit",
    "after_cancel_epoch",
    "after_cancel_train",
    "after_cancel_validate",
    "after_cancel_batch",
    "after_cancel_step",
)
_HOOK_PREFIXES = ("before_", "after_", "cleanup_")


class Callback:
    """Base for callbacks: define any hooks named in EVENTS as `hook(self, learn)`; lower `order` runs first."""

    order = 0


class CancelFitException(Exception):
    """Ends the fit: fires `after_cancel_fit`, then `after_fit`."""


class CancelEpochException(Exception):
    """Skips the rest of this epoch: fires `after_cancel_epoch`, then `after_epoch`."""


class CancelTrainException(Exception):
    """Skips the rest of this epoch's training: fires `after_cancel_train`, then `after_train`."""


class CancelValidException(Exception):
    """Skips the rest of this validation: fires `after_cancel_validate`, then `after_validate`."""


class CancelBatchException(Exception):
    """Skips the rest of this batch: fires `after_cancel_batch`, then `after_batch`."""


class CancelStepException(Exception):
    """Skips this optimizer step (and the zeroing of gradients): fires `after_cancel_step`, then `after_step`."""


def check_callback(cb) -> None:
    """Raise if `cb` has no integer order or defines a hook-like method outside the vocabulary (a typo)."""
    if isinstance(cb, type):
        raise TypeError(f"cbs: pass callback instances, not the class {cb.__name__}; write {cb.__name__}()")
    if not isinstance(getattr(cb, "order", None), int):
        raise TypeError(f"cbs: {type(cb).__name__}.order must be an int, got {getattr(cb, 'order', None)!r}")
    for name in dir(cb):
        if name.startswith(_HOOK_PREFIXES) and name not in EVENTS and callable(getattr(cb, name)):
            raise ValueError(f"{type(cb).__name__}.{name} is not an event; hooks must be one of: {', '.join(EVENTS)}")


def hook_table(cbs) -> dict[str, list]:
    """For each event, the bound hooks to call, sorted by `order` (stable, so ties keep list order).

    Built once when the callbacks change, so the loop never sorts or looks up attributes per event.
    """
    ordered = sorted(cbs, key=lambda cb: cb.order)
    return {event: [getattr(cb, event) for cb in ordered if hasattr(cb, event)] for event in EVENTS}


class CallbackList:
    """A learner's callbacks in list order, with `hooks`: for each event, the bound hooks to call in `order`.

    The table is rebuilt whenever the list changes, so the loop never sorts or looks up attributes per event.
    """

    def __init__(self):
        self.items: list = []
        self.hooks = hook_table([])

    def add(self, cbs) -> None:
        for cb in cbs:
            check_callback(cb)
        self.items.extend(cbs)
        self.hooks = hook_table(self.items)

    def remove(self, cbs) -> None:
        for cb in cbs:
            self.items.remove(cb)
        self.hooks = hook_table(self.items)

    @contextlib.contextmanager
    def added(self, cbs):
        """Callbacks that take part only inside this block (one already in the list is not added twice)."""
        cbs = [cb for cb in (cbs or []) if cb not in self.items]
        self.add(cbs)
        try:
            yield
        finally:
            self.remove(cbs)

    @contextlib.contextmanager
    def removed(self, cbs):
        """These callbacks sit out this block, and come back after it in their old places."""
        cbs, before = list(cbs), list(self.items)
        self.remove(cbs)
        try:
            yield
        finally:
            added = [cb for cb in self.items if cb not in before]
            self.items[:] = [cb for cb in before if cb in cbs or cb in self.items] + added
            self.hooks = hook_table(self.items)

    def run_all(self, event: str, learn) -> None:
        """Every hook of `event` runs, even when one before it raises (each may have state to put back, as
        `cleanup_fit` hooks do); the first error is raised once all have run."""
        errors = []
        for hook in self.hooks[event]:
            try:
                hook(learn)
            except Exception as error:
                errors.append(error)
        if errors:
            raise errors[0]
