"""Mixed precision: the forward pass and loss under `torch.autocast`, float16 with a `torch.amp.GradScaler`."""

from __future__ import annotations

from contextlib import nullcontext

import torch

from ..callback import ORDER, Callback

DTYPES = (torch.bfloat16, torch.float16)


class MixedPrecision(Callback):
    """Runs each batch's forward pass and loss under `torch.autocast(learn.device.type, dtype)`; the weights,
    gradients and optimizer stay float32. The learner enters the context in a `with` (`learn.autocast`), so
    autocast ends on every exit, exceptions included; this callback only chooses the context, for training
    (`before_train`) and validation (`before_validate`), and puts `nullcontext()` back after each.

    float16 adds a GradScaler (`learn.scaler` during a fit; `self.scaler` keeps it between fits): the loss is
    scaled before the backward pass (`learn.loss_grad`), the learner steps through `scaler.step`, and the
    scaler is updated right after. A step the scaler skips (inf/NaN gradients) is not an optimizer step:
    `train_iter` goes back (so the schedule stays where it was and the range test counts only applied steps),
    the gradients are zeroed, `learn.stepped` is False, and the recorder drops the iteration's point and
    notes its position in `recorder.skipped_steps` (`Recorder.drop_step`): a point is an applied step, and the
    retried step runs at the same lr. Knowing a step was skipped reads the scale once per step (one sync,
    besides the one GradScaler itself needs); bfloat16 needs no scaler and no sync.
    """

    order = ORDER["mixed_precision"]

    def __init__(self, dtype: torch.dtype = torch.bfloat16):
        if dtype not in DTYPES:
            raise ValueError(f"dtype: expected torch.bfloat16 or torch.float16, got {dtype!r}")
        self.dtype = dtype
        self.scaler = None  # float16: made at the first fit, for the learner's device type
        self.device_type = None

    def before_fit(self, learn) -> None:
        self.device_type = learn.device.type
        if self.dtype == torch.float16:
            if self.scaler is None:
                self.scaler = torch.amp.GradScaler(self.device_type)
            learn.scaler = self.scaler

    def before_train(self, learn) -> None:
        learn.autocast = torch.autocast(learn.device.type, dtype=self.dtype)

    def after_train(self, learn) -> None:
        learn.autocast = nullcontext()

    def before_validate(self, learn) -> None:
        learn.autocast = torch.autocast(learn.device.type, dtype=self.dtype)

    def after_validate(self, learn) -> None:
        learn.autocast = nullcontext()

    def before_backward(self, learn) -> None:
        if learn.scaler is not None:
            learn.loss_grad = learn.scaler.scale(learn.loss_grad)

    def after_step(self, learn) -> None:
        scaler = learn.scaler
        if scaler is None or not learn.stepped:
            return
        scale = scaler.get_scale()
        scaler.update()
        if scaler.get_scale() < scale:  # update() lowers the scale only after inf/NaN gradients: skipped
            learn.opt.zero_grad()
            learn.train_iter -= 1
            learn.stepped = False
            learn.recorder.drop_step()

    def cleanup_fit(self, learn) -> None:
        learn.autocast, learn.scaler = nullcontext(), None
        if self.scaler is not None:  # a fresh scaler in the same state: no half-done step survives an interrupt
            self.load_state_dict(self.state_dict())

    def state_dict(self) -> dict:
        """The GradScaler's state (scale, growth tracker, factors) as plain data; None for bfloat16."""
        scaler = None if self.scaler is None else self.scaler.state_dict()
        return {"dtype": str(self.dtype), "device_type": self.device_type, "scaler": scaler}

    def load_state_dict(self, state: dict) -> None:
        """A scaler in the state `state_dict()` describes (a new object: no step half done in it)."""
        if state["scaler"] is None:
            self.scaler = None
            return
        self.device_type = state["device_type"]
        self.scaler = torch.amp.GradScaler(self.device_type)
        self.scaler.load_state_dict(state["scaler"])

    def __repr__(self) -> str:
        return f"MixedPrecision({self.dtype})"


def use_mixed_precision(learn, dtype: torch.dtype):
    """`learn.to_bf16()`/`to_fp16()`: replace any MixedPrecision callback by one for `dtype`; returns `learn`."""
    callback = MixedPrecision(dtype)
    learn.remove_cbs([cb for cb in learn.cbs if isinstance(cb, MixedPrecision)])
    learn.add_cbs([callback])
    return learn
