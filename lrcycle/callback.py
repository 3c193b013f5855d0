"""The callback base class, the fixed event vocabulary, the order table and the cancel exceptions."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from functools import cache, partial

from .interrupt import guarded, held_sigint, note_cleanup_error
from .validate import check_metrics

ORDER = {
    "mixed_precision": -1100,
    "loss_check": -30,
    "accumulation": -20,
    "schedule_free": -12,
    "guard": -10,
    "clip": -5,
    "finder": 0,
    "scheduler": 10,
    "distributed": 40,
    "recorder": 50,
    "progress": 60,
    "logger": 62,
    "averaging": 65,
    "tracker": 70,
    "early_stopping": 80,
    "nan": 90,
    "checkpoint": 95,
    "resume": 1000,
}
"""Where each shipped callback runs: lower runs first, ties keep list order. Your own callbacks fit in between.

- `mixed_precision`: chooses the autocast context before anything runs a forward pass, and completes a
  float16 step (the GradScaler's update, and undoing a skipped step's count) before anything sees the step.
- `loss_check`: a loss that is not a scalar tensor is an error before anything reads it; a non-finite loss
  warns at the end of the fit.
- `accumulation`: gradient accumulation sets the step counts and skips steps before anyone reads them.
- `schedule_free`: a schedule-free optimizer's `train()`/`eval()` switch, before anyone reads the weights of
  a training or validation stage.
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
- `logger`: writes the epoch's row and iterations (CSV, TensorBoard) from what the recorder wrote.
- `averaging`: weight averaging at cycle ends, after the recorder, before the snapshots are saved.
- `tracker`: reads the recorded values: best-model saving, cycle snapshots, the range test's stop.
- `early_stopping`: may end the fit, so it runs after the epoch is recorded and saved.
- `nan`: stops at a non-finite loss after the callbacks that change the loss in `after_loss`.
- `checkpoint`: saves the whole state at an epoch's end, once every other callback has finished the epoch.
- `resume`: a resumed fit loads the checkpoint's state in `before_fit`, after every callback has reset its own.
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
_EVENT_SET = frozenset(EVENTS)  # for membership tests, which run over every attribute of every callback
_HOOK_PREFIXES = ("before_", "after_", "cleanup_")

# Hook names of Keras, fastai 0.7 and fastai v1 (`on_*`), and the event each one corresponds to here.
ON_STYLE_NAMES = {
    "on_train_begin": "before_fit",
    "on_train_end": "after_fit",
    "on_epoch_begin": "before_epoch",
    "on_epoch_end": "after_epoch",
    "on_phase_begin": "before_epoch",
    "on_phase_end": "after_epoch",
    "on_batch_begin": "before_batch",
    "on_batch_end": "after_batch",
    "on_train_batch_begin": "before_batch",
    "on_train_batch_end": "after_batch",
    "on_loss_begin": "after_pred",
    "on_backward_begin": "before_backward",
    "on_backward_end": "before_step",
    "on_step_end": "after_step",
    "on_test_begin": "before_validate",
    "on_test_end": "after_validate",
    "on_validation_begin": "before_validate",
    "on_validation_end": "after_validate",
    "on_train_start": "before_fit",
    "on_fit_start": "before_fit",
    "on_fit_end": "after_fit",
    "on_train_epoch_start": "before_epoch",
    "on_train_epoch_end": "after_epoch",
    "on_train_batch_start": "before_batch",
    "on_validation_start": "before_validate",
    "on_validation_batch_end": "after_batch",
}


class Callback:
    """Base for callbacks: define any hooks named in EVENTS as `hook(self, learn)`; lower `order` runs first.

    A callback may also define `check(self, learn)`: it is called on every callback at the start of each fit
    and range test, before anything changes (no optimizer built, no lr set), to check its arguments against
    the learner (a monitored column that exists, validation data it needs) and raise a clear error early.
    """

    order = 0


class NonFiniteLossWarning(RuntimeWarning):
    """A fit's training loss became NaN or infinite (pass `cbs=[TerminateOnNaNCallback()]` to stop there)."""


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


# Each stage's events and the exception that cancels it, built once rather than formatted on every batch.
STAGES = {
    stage: (f"before_{stage}", f"after_cancel_{stage}", f"after_{stage}", cancel)
    for stage, cancel in (
        ("fit", CancelFitException),
        ("epoch", CancelEpochException),
        ("train", CancelTrainException),
        ("validate", CancelValidException),
        ("batch", CancelBatchException),
        ("step", CancelStepException),
    )
}


def check_callback(cb) -> None:
    """Raise if `cb` has no integer order or defines a hook-like method outside the vocabulary (a typo)."""
    if isinstance(cb, type):
        raise TypeError(f"cbs: pass callback instances, not the class {cb.__name__}; write {cb.__name__}()")
    if not isinstance(getattr(cb, "order", None), int):
        raise TypeError(f"cbs: {type(cb).__name__}.order must be an int, got {getattr(cb, 'order', None)!r}")
    for name in (*hook_like_names(type(cb)), *hook_like_names_in(getattr(cb, "__dict__", {}))):
        if callable(getattr(cb, name)):
            meant = misspelt_hook(name)
            hint = f"did you mean {meant}? " if meant else ""
            raise ValueError(
                f"{type(cb).__name__}.{name} is not an event: {hint}hooks must be one of: {', '.join(EVENTS)}"
            )


def checked_callbacks(cbs) -> list:
    """`cbs` as a list, each one checked (`check_callback`) before any is used."""
    cbs = list(cbs)
    for cb in cbs:
        check_callback(cb)
    return cbs


@cache  # callbacks are checked at every fit; a class's names are read once (`dir` costs ~10 us a call)
def hook_like_names(cls: type) -> tuple[str, ...]:
    """The public names of `cls` (its bases' included) that look like a hook but are not an event."""
    return hook_like_names_in(dir(cls))


def hook_like_names_in(names) -> tuple[str, ...]:
    return tuple(n for n in names if n not in _EVENT_SET and not n.startswith("_") and misspelt_hook(n) is not None)


@cache  # a pure function of the name; callbacks are checked at every fit, with the same method names
def misspelt_hook(name: str) -> str | None:
    """For a method name that looks like a hook but is not an event: the event it most likely means ('' when
    none is close); None for a name that does not look like a hook. Hook-like: `before_`/`after_`/`cleanup_`
    names, names within a small edit distance of an event (`befor_batch`), and Keras/fastai 0.7 `on_*` hooks."""
    close = difflib.get_close_matches(name, EVENTS, n=1, cutoff=0.85)
    if name.startswith("on_") and (name in ON_STYLE_NAMES or name.endswith(("_begin", "_end", "_start"))):
        return ON_STYLE_NAMES.get(name, close[0] if close else "")
    if close:
        return close[0]
    if name.startswith(_HOOK_PREFIXES):
        return ""
    return None


def hook_table(cbs) -> dict[str, list]:
    """For each event, the bound hooks to call, sorted by `order` (stable, so ties keep list order).

    Built once when the callbacks change, so the loop never sorts or looks up attributes per event.
    """
    table = {event: [] for event in EVENTS}
    for cb in sorted(cbs, key=lambda cb: cb.order):
        for event in events_of(cb):
            table[event].append(getattr(cb, event))
    return table


def events_of(cb) -> tuple[str, ...]:
    """The events `cb` has a hook for: its class's, and any set on the instance itself."""
    if hasattr(type(cb), "__getattr__"):  # attributes made up on request: ask the instance for each event
        return tuple(event for event in EVENTS if hasattr(cb, event))
    events = class_events(type(cb))
    on_instance = _EVENT_SET.intersection(getattr(cb, "__dict__", ()))  # hooks set on the instance itself
    if not on_instance:
        return events
    return events + tuple(name for name in EVENTS if name in on_instance and name not in events)


@cache  # read once a class: the table is rebuilt whenever the callbacks change, several times a fit
def class_events(cls: type) -> tuple[str, ...]:
    return tuple(event for event in EVENTS if hasattr(cls, event))


def dispatch_table(hooks: dict[str, list]) -> dict[str, Callable | None]:
    """For each event, one thing to call with the learner: None when no callback has a hook for it (the loop
    skips it), the hook itself when there is one, `call_in_order` over the hooks when there are several. Only
    the events with hooks are visited: most have none, and the table is rebuilt several times a range test."""
    dispatch = dict.fromkeys(EVENTS)
    for event, event_hooks in hooks.items():
        if event_hooks:
            dispatch[event] = event_hooks[0] if len(event_hooks) == 1 else partial(call_in_order, tuple(event_hooks))
    return dispatch


def call_in_order(hooks: tuple, learn) -> None:
    """Each hook with the learner, in order; one that raises stops the rest, as a loop over them would."""
    for hook in hooks:
        hook(learn)


# The events inside a training batch, between `before_batch` and `after_batch`.
INNER_EVENTS = ("after_pred", "after_loss", "before_backward", "before_step", "after_step", "after_cancel_step")


class CallbackList:
    """A learner's callbacks in list order, with `hooks`: for each event, the bound hooks to call in `order`,
    `dispatch`: for each event, the one call that runs them (None when there are none; `dispatch_table`), and
    `inner_hooks`: whether any callback hooks an event inside a batch (`INNER_EVENTS`; the loop's fast path
    needs none).

    The tables are rebuilt whenever the list changes, so the loop never sorts or looks up attributes per event.
    Every change is a critical section (`interrupt.held_sigint`): Ctrl-C never leaves the list and the table
    disagreeing, and the `with` blocks below put the list back on every exit, Ctrl-C included.
    """

    def __init__(self, cbs=()):
        """Starts with `cbs` (checked), without holding Ctrl-C: nobody holds a list still being built."""
        self.items: list = checked_callbacks(cbs)
        self._rebuild()

    def add(self, cbs) -> None:
        cbs = checked_callbacks(cbs)
        with held_sigint():
            self.items.extend(cbs)
            self._rebuild()

    def remove(self, cbs) -> None:
        items = list(self.items)
        for cb in cbs:
            items.remove(cb)  # a callback not in the list raises here, before anything changes
        with held_sigint():
            self.items[:] = items
            self._rebuild()

    def added(self, cbs):
        """Callbacks that take part only inside this `with` block (one already in the list is not added twice)."""
        cbs = [cb for cb in (cbs or []) if cb not in self.items]
        return guarded(partial(self.add, cbs), partial(self._remove_added, cbs))

    def _remove_added(self, cbs, _=None) -> None:
        self.remove([cb for cb in cbs if cb in self.items])

    def removed(self, cbs):
        """These callbacks sit out this `with` block, and come back after it in their old places."""
        return guarded(partial(self._take_out, list(cbs)), self._put_back)

    def _take_out(self, cbs) -> tuple[list, list]:
        before = list(self.items)
        self.remove(cbs)
        return cbs, before

    def _put_back(self, taken: tuple[list, list]) -> None:
        cbs, before = taken
        with held_sigint():
            added = [cb for cb in self.items if cb not in before]
            self.items[:] = [cb for cb in before if cb in cbs or cb in self.items] + added
            self._rebuild()

    def _rebuild(self) -> None:
        """Both tables from the list as it is now, and `inner_hooks` (callers hold Ctrl-C around the change and
        this)."""
        self.hooks = hook_table(self.items)
        self.dispatch = dispatch_table(self.hooks)
        self.inner_hooks = any(self.hooks[event] for event in INNER_EVENTS)

    def fitting(self, learn, cbs):
        """The `with` block around a fit's events: `cbs` take part in it, and on every exit (Ctrl-C included)
        every `cleanup_fit` hook runs, the last batch is let go and `cbs` leave, all with Ctrl-C held. When
        a `cleanup_fit` hook raises while an error propagates, the original error is raised, the clean-up
        error attached to it (`error.cleanup_errors`, and a note in the traceback)."""
        cbs = [cb for cb in cbs if cb not in self.items]
        return guarded(partial(self.add, cbs), partial(self._end_fit, learn, cbs))

    def _end_fit(self, learn, cbs, _=None) -> None:
        try:
            self.run_all("cleanup_fit", learn)
        finally:
            learn.xb = learn.yb = learn.pred = learn.loss = None  # free the last batch's graph
            self._remove_added(cbs)

    def run_all(self, event: str, learn) -> None:
        """Every hook of `event` runs, even when one before it raises (each may have state to put back, as
        `cleanup_fit` hooks do); the first error is raised once all have run, the later ones attached to it."""
        errors = []
        for hook in self.hooks[event]:
            try:
                hook(learn)
            except Exception as error:
                errors.append(error)
        if errors:
            for later in errors[1:]:
                note_cleanup_error(errors[0], later)
            raise errors[0]


def check_cbs(cbs, name: str = "cbs") -> list:
    """A list (or tuple) of callback instances, each with an int `order` and no misspelt hook; None is none."""
    if cbs is None:
        return []
    if not isinstance(cbs, (list, tuple)):
        if isinstance(getattr(cbs, "order", None), int):  # one callback, not in a list
            kind = type(cbs).__name__
            raise TypeError(
                f"{name}: expected a list of callbacks, got one {kind}; wrap it in a list: {name}=[{kind}(...)]"
            )
        raise TypeError(f"{name}: expected a list of callbacks, got {type(cbs).__name__}; write {name}=[...]")
    for cb in cbs:
        check_callback(cb)
    return list(cbs)


def check_fit_start(learn, cbs, sitting_out=()) -> list:
    """What a fit or range test checks before it changes anything: its callbacks (`check_cbs`), the learner's
    metrics, then every taking-part callback's own `check(learn)` (its arguments against this learner; the
    learner's callbacks in `sitting_out` take no part). Returns the call's callbacks as a list."""
    cbs = check_cbs(cbs)
    check_metrics(learn.metrics)
    for cb in [*learn.cbs, *cbs]:
        if any(cb is out for out in sitting_out):
            continue
        check = getattr(cb, "check", None)
        if callable(check):
            check(learn)
    return cbs
