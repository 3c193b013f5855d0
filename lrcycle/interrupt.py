"""Ctrl-C that never leaves anything half done: one process-wide way to hold SIGINT across critical sections.

The library's critical sections (the range test's snapshot and restore, adding and removing callbacks, each
batch of a fit or validation with its forward pass, autocast, backward pass, optimizer step and recorder point,
entering and leaving eval mode and `no_grad`) run inside `held_sigint()` blocks, functions
decorated `@holds_sigint`, or `guarded(setup, teardown)` blocks. While one is active (main thread only) a
recording handler replaces `signal.default_int_handler`; outside them Ctrl-C interrupts at once, as usual,
and once the outermost block ends the previous handler is back.

What a press does:
- 1st press inside a held section: recorded; the section completes, then `KeyboardInterrupt` is raised. A
  press during a `guarded` block's setup undoes the setup first, so the block never starts ("as before").
- 2nd press while still held: a notice on stderr; the section still completes, then stops.
- 3rd press while still held: `KeyboardInterrupt` at once, with a `RuntimeWarning` that state may be partial.
- A press anywhere else (between batches, a data loader fetching the next batch, your callbacks outside a
  batch, a `predict` or `get_preds` forward pass) interrupts at once; the `guarded` teardowns then run held on
  the way out (so a 2nd and 3rd press there behave as above).

Which code is held is decided when a press arrives, from the interrupted call stack: a frame inside a
`held_sigint()` block, a frame at the line of an active `guarded` block's `with` statement (between its
body's end and its teardown), or one of this module's enter/exit methods.
"""

from __future__ import annotations

import functools
import signal
import sys
import threading
import warnings
from collections.abc import Callable


class _SigintState:
    """The one process-wide record: how many sections are active, the handler to put back, the presses."""

    def __init__(self):
        self.depth = 0  # active sections (held and guarded) in the main thread
        self.previous = signal.default_int_handler  # the handler we replaced, put back by the outermost exit
        self.presses = 0  # Ctrl-C presses since the outermost section began
        self.raised = False  # whether one of them has already become a KeyboardInterrupt
        self.held_frames: list[tuple] = []  # (frame, None) for held blocks, (frame, with-line) for guarded ones


_STATE = _SigintState()
_MAIN_THREAD = threading.main_thread().ident  # Python runs signal handlers in the main thread only

PRESS_AGAIN = (
    "Ctrl-C: lrcycle is finishing a step or putting state back and stops right after; "
    "press Ctrl-C once more to stop at once (state may then be partial)."
)


def _on_sigint(signum, frame) -> None:
    """The recording handler: defer inside held code, act as the previous handler elsewhere."""
    state = _STATE
    state.presses += 1
    held = _is_held(frame, at_line=True)
    if held and state.presses < 3:
        if state.presses == 2:
            print(PRESS_AGAIN, file=sys.stderr, flush=True)
        return
    if held:
        warnings.warn(
            "Ctrl-C pressed three times: stopping at once, inside a critical section; the model, optimizer "
            "or callbacks may be partially updated or restored.",
            RuntimeWarning,
            stacklevel=2,
        )
    state.raised = True
    state.previous(signum, frame)


def _is_held(frame, at_line: bool) -> bool:
    """Whether code running in `frame` is held: it or a caller is in a held block or this module's own
    enter/exit code, or stands on an active guarded block's `with` line (`at_line=False` ignores that for
    `frame` itself: a block about to start or just ended in it is not holding it)."""
    first = frame
    while frame is not None:
        if frame.f_code in _HELD_CODE:
            return True
        for held_frame, line in _STATE.held_frames:
            if held_frame is frame and (line is None or (line == frame.f_lineno and (at_line or frame is not first))):
                return True
        frame = frame.f_back
    return False


def _install() -> bool:
    """Start a section: the recording handler goes in with the first one. False where nothing can be held
    (not the main thread, or SIGINT ignored or left to the operating system)."""
    state = _STATE
    if threading.get_ident() != _MAIN_THREAD:
        return False
    if state.depth == 0:
        previous = signal.getsignal(signal.SIGINT)
        if previous is _on_sigint:  # cannot happen unless a section was torn down by hand; be safe
            previous = signal.default_int_handler
        if not callable(previous):
            return False
        state.presses, state.raised, state.previous = 0, False, previous
        signal.signal(signal.SIGINT, _on_sigint)  # from here on a press is recorded (this code is held)
    state.depth += 1
    return True


def _uninstall(active: bool) -> None:
    """End a section: the last one puts the previous handler back."""
    if not active:
        return
    state = _STATE
    state.depth -= 1
    if state.depth == 0:
        signal.signal(signal.SIGINT, state.previous)


def _deliver(active: bool, frame, error: BaseException | None) -> None:
    """Raise the press a section held back, unless the code it returns to is held too (an outer section
    then raises it) or a KeyboardInterrupt is already on its way."""
    state = _STATE
    if not active or not state.presses or state.raised:
        return
    if isinstance(error, KeyboardInterrupt):
        state.raised = True
        return
    if state.depth and _is_held(frame, at_line=False):
        return
    state.raised = True
    state.previous(signal.SIGINT, frame)  # the default handler raises KeyboardInterrupt


def note_cleanup_error(error: BaseException, cleanup_error: Exception) -> None:
    """Attach a clean-up failure to the exception that was already propagating, which stays the one raised:
    in `error.cleanup_errors`, and as a note in its traceback (Python >= 3.11)."""
    error.cleanup_errors = [*getattr(error, "cleanup_errors", []), cleanup_error]
    if hasattr(error, "add_note"):
        error.add_note(f"While handling it, a clean-up failed too: {type(cleanup_error).__name__}: {cleanup_error}")


class _Section:
    """One `guarded` block: its set-up and teardown held, its body not."""

    def __init__(self, setup: Callable, teardown: Callable):
        self.setup, self.teardown = setup, teardown
        self.value, self.active, self.entry = None, False, None

    def __enter__(self):
        active = _install()
        caller = sys._getframe(1)
        try:
            value = self.setup()
        except BaseException:
            _uninstall(active)
            raise
        self.value, self.active = value, active
        if active and _STATE.presses and not _STATE.raised and not _is_held(caller, False):
            # a press during the setup: undo it, so the block never starts and everything is as before
            self._close(caller, None)
            raise KeyboardInterrupt  # only reached when the previous handler was a custom one that returned
        self.entry = (caller, caller.f_lineno)
        if active:
            _STATE.held_frames.append(self.entry)
        return value

    def __exit__(self, exc_type, exc, tb) -> bool:
        self._close(sys._getframe(1), exc)
        return False

    def _close(self, caller, exc: BaseException | None) -> None:
        """Teardown, then the handler back (last section), then a held press raised."""
        active = self.active
        if active and self.entry is not None:
            _STATE.held_frames.remove(self.entry)
        try:
            try:
                self.teardown(self.value)
            except Exception as cleanup_error:
                if exc is None:
                    raise
                note_cleanup_error(exc, cleanup_error)
        finally:
            self.value, self.active = None, False
            _uninstall(active)
        _deliver(active, caller, exc)


class _HeldBlock:
    """A `held_sigint()` block: `_Section` without set-up or teardown, in fewer calls (one guards every
    optimizer step)."""

    __slots__ = ("active", "entry")

    def __enter__(self) -> None:
        self.active = _install()
        if self.active:
            self.entry = (sys._getframe(1), None)
            _STATE.held_frames.append(self.entry)

    def __exit__(self, exc_type, exc, tb) -> bool:
        if self.active:
            self.active = False
            _STATE.held_frames.remove(self.entry)
            _uninstall(True)
            _deliver(True, sys._getframe(1), exc)
        return False


def held_sigint() -> _HeldBlock:
    """`with held_sigint(): ...`: Ctrl-C waits until the block (and everything it calls) is complete, then
    raises KeyboardInterrupt. Re-entrant and process-wide; only in the main thread (elsewhere it does
    nothing). Use it around state changes that must not be split, e.g. entering or leaving autocast."""
    return _HeldBlock()


def holds_sigint(func: Callable) -> Callable:
    """Decorator: each call of `func` is held as if its body were a `held_sigint()` block.

    Inside an active section (a fit's, where each batch and the recorder's per-step update use it) the
    handler is already in, so a call only runs `func` and then raises a press it held: the handler finds
    `func`'s code on the interrupted stack. That costs about 0.2 us against a block's 0.75 us, which matters
    for code that runs every step. Outside any section a call is a `held_sigint()` block.
    """

    @functools.wraps(func)
    def held(*args, **kwargs):
        if _STATE.depth == 0:  # no section: a block installs the handler (or, off the main thread, does nothing)
            with held_sigint():
                return func(*args, **kwargs)
        try:
            result = func(*args, **kwargs)
        except BaseException as error:
            if threading.get_ident() == _MAIN_THREAD:  # presses belong to the main thread, the only one held
                _deliver(True, sys._getframe(1), error)
            raise
        if _STATE.presses and threading.get_ident() == _MAIN_THREAD:
            _deliver(True, sys._getframe(1), None)
        return result

    _HELD_CODE.update((func.__code__, held.__code__))
    return held


def guarded(setup: Callable, teardown: Callable) -> _Section:
    """`with guarded(setup, teardown) as value: body`: `value = setup()` and `teardown(value)` each run with
    Ctrl-C held; the body stays interruptible, and on every exit (its end, an error, Ctrl-C) the teardown
    runs. A press during the setup runs the teardown at once and raises, so the body never starts.

    When the teardown raises while an exception is propagating, that original exception is the one raised:
    the clean-up error is attached to it (`error.cleanup_errors`, and a note in the traceback)."""
    return _Section(setup, teardown)


# Code that is held wherever it runs: the enter and exit code of the mechanism itself (a press while it
# switches is only recorded), and each function decorated with `holds_sigint` with its wrapper (added there).
_HELD_CODE = set(
    f.__code__
    for f in (_install, _uninstall, _deliver, note_cleanup_error, _on_sigint)
    + (_Section.__enter__, _Section.__exit__, _Section._close, _HeldBlock.__enter__, _HeldBlock.__exit__)
)
