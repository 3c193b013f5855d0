"""Gradient accumulation: one optimizer step per `n_batches` batches, equal to the large-batch step."""

from __future__ import annotations

import math

import torch

from ..callback import ORDER, Callback, CancelStepException
from ..validate import check_positive_int


class GradientAccumulation(Callback):
    """Sums the gradients of `n_batches` consecutive batches into one optimizer step (one iteration).

    Each batch's loss is scaled by 1/k for the backward pass, k the number of batches in its group, so the
    summed gradient is that of the mean loss over the group: with equal batch sizes and no BatchNorm, the
    step equals one step on the k batches joined into one. Groups restart at every epoch; the last group
    of an epoch may be shorter (k = its own size), so an epoch of `n_iter` batches has
    `ceil(n_iter / n_batches)` steps. `total_iter` and `train_iter` count those steps, so every schedule,
    the recorder (one point per step, the mean of the group's unscaled batch losses) and the range test
    count optimizer steps. `learn.loss` keeps its unscaled value (the backward pass runs on `learn.loss_grad`).
    Any batch shape: it reads only the loss and the batch count, never the batch.
    Runs first (order -20), so the step counts are set before any schedule reads them and the skipped
    steps are skipped before any other `before_step` hook (gradient clipping sees the summed gradient).
    """

    order = ORDER["accumulation"]

    def __init__(self, n_batches: int):
        self.n_batches = check_positive_int(n_batches, "n_batches")
        self.group_open, self.buffers, self.group_start = False, [], None

    def steps_per_epoch(self, n_batches: int) -> int:
        """Optimizer steps in an epoch of `n_batches` batches (read by the learner to plan cycles)."""
        return math.ceil(n_batches / self.n_batches)

    def state_dict(self) -> dict:
        return {"n_batches": self.n_batches}

    def load_state_dict(self, state: dict) -> None:
        """Checks the state is this callback's: a resume with another group size would step differently."""
        if state["n_batches"] != self.n_batches:
            raise ValueError(f"n_batches: the checkpoint has {state['n_batches']}, this callback {self.n_batches}")

    def before_fit(self, learn) -> None:
        steps = self.steps_per_epoch(learn.n_iter)
        learn.total_iter = learn.n_epoch * steps
        learn.train_iter = learn.start_epoch * steps
        self.group_open = False
        self.buffers = list(learn.model.buffers()) if self.n_batches > 1 else []
        self.group_start = None  # the buffers' values before the open group's first forward pass

    def before_batch(self, learn) -> None:
        if learn.training:
            self.group_open = True  # until a step completes it
            if self.buffers and learn.iter % self.n_batches == 0:
                self._keep_buffers()

    def _keep_buffers(self) -> None:
        """A copy of the buffers at a group's start (BatchNorm statistics are small: one copy a step)."""
        with torch.no_grad():
            if self.group_start is None:
                self.group_start = [b.detach().clone() for b in self.buffers]
            else:
                torch._foreach_copy_(self.group_start, [b.detach() for b in self.buffers])

    def after_batch(self, learn) -> None:
        if learn.training:
            self.group_open = not learn.stepped

    def cleanup_fit(self, learn) -> None:
        """A fit stopped inside a group (Ctrl-C between its batches, or an error) ends as its last completed
        step left it: the group's summed gradients cleared, the buffers its forward passes moved put back."""
        if not self.group_open:
            return
        self.group_open = False
        learn.opt.zero_grad()
        if self.group_start is not None:
            with torch.no_grad():
                torch._foreach_copy_([b.detach() for b in self.buffers], self.group_start)

    def before_train(self, learn) -> None:
        learn.opt.zero_grad()  # a group cut short by a cancelled epoch must not leak into the next one

    def _group_size(self, learn) -> int:
        start = learn.iter - learn.iter % self.n_batches
        return min(self.n_batches, learn.n_iter - start)

    def before_backward(self, learn) -> None:
        learn.loss_grad = learn.loss_grad / self._group_size(learn)  # `learn.loss` keeps the batch's own loss

    def before_step(self, learn) -> None:
        group_done = (learn.iter + 1) % self.n_batches == 0 or learn.iter + 1 == learn.n_iter
        if not group_done:
            raise CancelStepException
