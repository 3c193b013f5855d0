"""Ctrl-C during a fit: held back while the optimizer steps, so no step is ever left half done."""

from __future__ import annotations

import signal
import threading

from .callback import ORDER


class InterruptAfterStep:
    """Ctrl-C during an optimizer step is held until the step is complete, so the model and optimizer are
    never left half-updated; anywhere else it interrupts at once. Only in the main thread (signals).
    The learner says when it is inside a step through its public `in_step` flag."""

    def __init__(self, learn):
        self.learn = learn
        self.pending = False

    def __enter__(self):
        self.learn.in_step = False
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.getsignal(signal.SIGINT)
            if self.previous is signal.default_int_handler:
                signal.signal(signal.SIGINT, self._handle)
            else:
                self.previous = None  # someone else handles SIGINT: leave it to them
        return self

    def _handle(self, signum, frame):
        if self.learn.in_step:
            self.pending = True
            self.learn.in_step = False  # `_step` then finishes; the next batch raises below
            self.learn.add_cbs([_RaisePendingInterrupt()])
        else:
            raise KeyboardInterrupt

    def __exit__(self, exc_type, exc, tb):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        leftover = [cb for cb in self.learn.cbs if isinstance(cb, _RaisePendingInterrupt)]
        if leftover:
            self.learn.remove_cbs(leftover)
            if exc_type is None:
                raise KeyboardInterrupt
        return False


class _RaisePendingInterrupt:
    """Raises the held-back Ctrl-C right after the step it waited for."""

    order = ORDER["interrupt"]

    def after_step(self, learn):
        learn.remove_cbs([self])
        raise KeyboardInterrupt
