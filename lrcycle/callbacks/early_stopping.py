"""Stop a fit early: when the monitored value stops improving, or when the training loss is not finite."""

from __future__ import annotations

import copy

import torch

from ..callback import ORDER, Callback, CancelFitException
from ..distributed import group_active, is_main_process
from ..interrupt import holds_sigint
from ..validate import check_flag, check_positive_int
from .tracking import TrackerCallback


class EarlyStoppingCallback(TrackerCallback):
    """Ends the fit after `patience` epochs in a row without improvement of `monitor` (see TrackerCallback).

    Runs after the recorder, the snapshots and the best-model saving (order 80), so the last epoch is
    recorded and saved before the fit stops. `stopped_epoch` is the epoch it stopped after, else None.
    """

    order = ORDER["early_stopping"]

    def __init__(self, monitor: str = "valid_loss", mode: str = "auto", min_delta: float = 0.0, patience: int = 1):
        super().__init__(monitor, mode, min_delta)
        self.patience = check_positive_int(patience, "patience")

    def before_fit(self, learn) -> None:
        super().before_fit(learn)
        self.wait, self.stopped_epoch = 0, None

    def after_epoch(self, learn) -> None:
        if not self.active:
            return
        self.wait = 0 if self.improved(learn) else self.wait + 1
        if self.wait >= self.patience:
            self.stopped_epoch = learn.epoch
            if is_main_process():
                print(f"Early stop after epoch {learn.epoch}: best {self.monitor} at epoch {self.best_epoch}")
            raise CancelFitException

    def state_dict(self) -> dict:
        """The tracker's best, and the epochs waited so far (plain data, for a full-state checkpoint)."""
        return {**super().state_dict(), "wait": self.wait, "stopped_epoch": self.stopped_epoch}

    def load_state_dict(self, state: dict) -> None:
        wait, stopped_epoch = check_positive_int(state["wait"], "wait", minimum=0), state["stopped_epoch"]
        super().load_state_dict(state)
        self.wait, self.stopped_epoch = wait, stopped_epoch


class TerminateOnNaNCallback(Callback):
    """Ends the fit at the first training loss that is NaN or infinite, before its backward pass and step.
    `stopped_at` is `(epoch, iter)`, else None.

    The step before that loss may already have made the weights non-finite (gradients that overflowed). With
    `restore=True` the model's and optimizer's state are copied at the start of every epoch (one copy of
    each, kept on their device) and put back when the fit stops here: the model ends with the weights it had
    at the start of the epoch that diverged, the last ones known to give finite losses.

    Runs after callbacks that change the loss in `after_loss` (order 90). Under torch.distributed every
    rank stops together: one rank's non-finite loss stops them all.
    """

    order = ORDER["nan"]

    def __init__(self, restore: bool = False):
        self.restore = check_flag(restore, "restore")
        self.saved, self.stopped_at = None, None

    def before_fit(self, learn) -> None:
        self.stopped_at = None

    def before_epoch(self, learn) -> None:
        if self.restore:
            self.saved = (_copy_state(learn.model.state_dict()), copy.deepcopy(learn.opt.state_dict()))

    def after_loss(self, learn) -> None:
        if learn.training and not _finite_everywhere(learn.loss):
            self.stopped_at = (learn.epoch, learn.iter)
            if self.saved is not None:
                self._put_back(learn)
            if is_main_process():
                back = ", the weights put back to the start of the epoch" if self.saved is not None else ""
                print(f"Non-finite loss at epoch {learn.epoch}, batch {learn.iter}: stopping the fit{back}")
            raise CancelFitException

    def after_fit(self, learn) -> None:
        self.saved = None  # the copies live only during a fit

    @holds_sigint  # the model and the optimizer go back together, or neither does
    def _put_back(self, learn) -> None:
        model_state, opt_state = self.saved
        learn.model.load_state_dict(model_state)
        learn.opt.load_state_dict(opt_state)


def _copy_state(state: dict) -> dict:
    return {name: value.detach().clone() for name, value in state.items()}


def _finite_everywhere(loss: torch.Tensor) -> bool:
    """Whether the loss is finite on this process and, under torch.distributed, on every rank."""
    bad = (~torch.isfinite(loss.detach())).any().float()
    if group_active():
        torch.distributed.all_reduce(bad, op=torch.distributed.ReduceOp.MAX)
    return bad.item() == 0  # one device synchronisation, as the recorder's per-batch loss read
