"""Steps through a user's `torch.amp.GradScaler` (used by `lrcycle.range_test(..., grad_scaler=...)`)."""

from __future__ import annotations

import torch

from ..callback import ORDER, Callback, CancelStepException


class GradScalerStep(Callback):
    """The scaler's recipe inside the loop: `scaler.scale(loss).backward()`, `scaler.step(opt)`, `scaler.update()`.

    `before_backward` scales the loss (the recorder still reads the unscaled one); `before_step` unscales the
    gradients and, as `scaler.step` does, skips the step (`CancelStepException`: it does not count as an
    iteration) when any gradient is inf or NaN; `after_step` updates the scale (x backoff after a skip,
    x growth after `growth_interval` good steps). Runs right after gradient accumulation (which divides the
    loss first and skips the steps inside a group), so a skipped accumulation step neither unscales nor updates.
    `grad_scaler` is what the range test snapshots and restores (`state_dict()`), bit for bit.
    """

    order = ORDER["grad_scaler"]

    def __init__(self, grad_scaler: torch.amp.GradScaler):
        if not isinstance(grad_scaler, torch.amp.GradScaler):
            raise TypeError(f"grad_scaler: expected a torch.amp.GradScaler, got {type(grad_scaler).__name__}")
        self.grad_scaler = grad_scaler
        self.pending_update = False  # unscaled, not yet updated: the scaler must be updated before reuse

    def before_backward(self, learn) -> None:
        learn.loss_grad = self.grad_scaler.scale(learn.loss_grad)  # the recorder reads `learn.loss`, unscaled

    def before_step(self, learn) -> None:
        self.grad_scaler.unscale_(learn.opt)
        self.pending_update = True
        grads = [p.grad for group in learn.opt.param_groups for p in group["params"] if p.grad is not None]
        if grads and not bool(torch.stack([g.isfinite().all() for g in grads]).all()):  # one sync
            learn.opt.zero_grad()  # the loop zeroes only after a step taken
            raise CancelStepException  # what scaler.step does on an overflow: no optimizer step

    def after_step(self, learn) -> None:
        self.update()

    def cleanup_fit(self, learn) -> None:
        self.update()  # a test interrupted between unscale_ and update leaves the scaler usable

    def update(self) -> None:
        if self.pending_update:
            self.grad_scaler.update()
            self.pending_update = False
