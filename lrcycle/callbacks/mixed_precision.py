"""Mixed precision: the forward pass and loss under `torch.autocast`, float16 with a `torch.amp.GradScaler`."""

from __future__ import annotations

from contextlib import nullcontext

import torch

from ..callback import ORDER, Callback

DTYPES = (torch.bfloat16, torch.float16)


class MixedPrecision(Callback):
    """The one recipe for autocast and loss scaling, for fits, `lr_find` and `lrcycle.range_test(grad_scaler=...)`.

    Runs each batch's forward pass and loss under `torch.autocast(learn.device.type, dtype)`; the weights,
    gradients and optimizer stay float32. The learner enters the context in a `with` (`learn.autocast`), so
    autocast ends on every exit, exceptions included; this callback only chooses the context, for training
    (`before_train`) and validation (`before_validate`), and puts `nullcontext()` back after each.

    float16 adds a GradScaler (`learn.scaler` during a fit; `self.scaler` keeps it between fits): the loss is
    scaled before the backward pass (`learn.loss_grad`), the learner steps through `scaler.step`, and the
    scaler is updated right after. A step the scaler skips (inf/NaN gradients) is not an optimizer step:
    `train_iter` goes back (so the schedule stays where it was and the range test counts only applied steps),
    the gradients are zeroed, `learn.stepped` is False, and the recorder drops the iteration's point and
    notes its position in `recorder.skipped_steps` (`Recorder.drop_step`): a point is an applied step, and the
    retried step runs at the same lr. A loss that is itself not finite keeps its point (divergence, which the
    range test stops on, not overflow). Knowing a step was skipped reads the scale once per step (one sync,
    besides the one GradScaler itself needs); bfloat16 needs no scaler and no sync.

    `grad_scaler=`: step through a GradScaler you already have (the same object, its state changed as your own
    loop would change it) instead of one made here; `dtype=None` then leaves autocast to your model's forward.
    """

    order = ORDER["mixed_precision"]

    def __init__(self, dtype: torch.dtype | None = torch.bfloat16, grad_scaler: torch.amp.GradScaler | None = None):
        if grad_scaler is not None and not isinstance(grad_scaler, torch.amp.GradScaler):
            raise TypeError(f"grad_scaler: expected a torch.amp.GradScaler, got {type(grad_scaler).__name__}")
        if dtype not in DTYPES and not (dtype is None and grad_scaler is not None):
            raise ValueError(
                f"dtype: expected torch.bfloat16 or torch.float16 (or None with a grad_scaler), got {dtype!r}"
            )
        self.dtype = dtype
        self.scaler = grad_scaler  # float16 without one: made at the first fit, for the learner's device type
        self.own_scaler = grad_scaler is None  # a user's scaler is never replaced, only its state restored
        self.device_type = None
        self.updated = True  # the last step's scaler update done (a Ctrl-C can land between step and update)

    @property
    def grad_scaler(self) -> torch.amp.GradScaler | None:
        """The scaler the learner steps through (what a range test snapshots and restores)."""
        return self.scaler

    def before_fit(self, learn) -> None:
        self.device_type = learn.device.type
        if self.dtype == torch.float16 and self.scaler is None:
            self.scaler = torch.amp.GradScaler(self.device_type)
        learn.scaler = self.scaler

    def before_train(self, learn) -> None:
        if self.dtype is not None:
            learn.autocast = torch.autocast(learn.device.type, dtype=self.dtype)

    def after_train(self, learn) -> None:
        learn.autocast = nullcontext()

    def before_validate(self, learn) -> None:
        if self.dtype is not None:
            learn.autocast = torch.autocast(learn.device.type, dtype=self.dtype)

    def after_validate(self, learn) -> None:
        learn.autocast = nullcontext()

    def before_backward(self, learn) -> None:
        if learn.scaler is not None:
            learn.loss_grad = learn.scaler.scale(learn.loss_grad)

    def before_step(self, learn) -> None:
        self.updated = False

    def after_step(self, learn) -> None:
        scaler = learn.scaler
        if scaler is None or not learn.stepped:
            return
        scale = scaler.get_scale()
        scaler.update()
        self.updated = True
        if scaler.get_scale() < scale:  # update() lowers the scale only after inf/NaN gradients: skipped
            learn.opt.zero_grad()
            learn.train_iter -= 1
            learn.stepped = False
            if bool(torch.isfinite(learn.loss).all()):  # overflow in the scaled gradients: retried, no point
                learn.recorder.drop_step()
            # a non-finite loss itself is divergence, not overflow: its point stays for the range test to stop on

    def cleanup_fit(self, learn) -> None:
        if not self.own_scaler and learn.stepped and not self.updated:
            self.scaler.update()  # a user's scaler stepped but not updated would refuse its next step
        self.updated = True
        learn.autocast, learn.scaler = nullcontext(), None
        if self.scaler is not None and self.own_scaler:  # a fresh scaler: no half-done step survives an interrupt
            self.load_state_dict(self.state_dict())

    def state_dict(self) -> dict:
        """The GradScaler's state (scale, growth tracker, factors) as plain data; None for bfloat16."""
        scaler = None if self.scaler is None else self.scaler.state_dict()
        return {"dtype": str(self.dtype), "device_type": self.device_type, "scaler": scaler}

    def load_state_dict(self, state: dict) -> None:
        """A scaler in the state `state_dict()` describes: a new object (no step half done in it), or the
        user's own `grad_scaler`, loaded in place."""
        if not self.own_scaler:
            self.scaler.load_state_dict(state["scaler"])
            return
        if state["scaler"] is None:
            self.scaler = None
            return
        self.device_type = state["device_type"]
        self.scaler = torch.amp.GradScaler(self.device_type)
        self.scaler.load_state_dict(state["scaler"])

    def __repr__(self) -> str:
        return f"MixedPrecision({self.dtype})"
