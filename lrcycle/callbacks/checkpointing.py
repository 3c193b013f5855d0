"""Full-state checkpoints during a fit, so that `learn.resume(name)` continues it after a crash or Ctrl-C."""

from __future__ import annotations

from ..callback import ORDER, Callback
from ..validate import check_flag, check_name, check_positive_int, derived_name
from .lr_finder import LRFinderCallback


class Checkpoint(Callback):
    """Saves everything a resume needs (`learn.save(name, with_state=True)`) at the end of every `every`
    epochs (`'epoch'`: each one) but the fit's last, as `name` (overwritten) or, with `keep_all`, as
    `<name>_ep<k>` after k epochs. Runs after every other callback has finished the epoch (order 95), so the
    file holds the epoch's tracker, early-stopping and averaging state too; `learn.resume(name, cbs=...)`
    (or the same fit call with `resume=name`) then goes on as the uninterrupted fit would have. A range test
    (which puts everything back afterwards) is not a fit to resume: it saves nothing there.
    """

    order = ORDER["checkpoint"]

    def __init__(self, name="checkpoint", every="epoch", keep_all: bool = False):
        self.name = check_name(name, "name")
        self.every = 1 if every == "epoch" else check_positive_int(every, "every ('epoch' or a number of epochs)")
        self.keep_all = check_flag(keep_all, "keep_all")

    def after_epoch(self, learn) -> None:
        done = learn.epoch + 1
        in_range_test = any(isinstance(cb, LRFinderCallback) for cb in learn.cbs)
        if done % self.every == 0 and done < learn.n_epoch and not in_range_test:
            learn.save(derived_name(self.name, f"_ep{done}") if self.keep_all else self.name, with_state=True)
