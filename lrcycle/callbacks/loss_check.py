"""Loss checks that turn silent mistakes into messages: a loss that is not a scalar tensor is an error at the
batch that produced it; a fit whose loss became NaN or infinite warns at its end."""

from __future__ import annotations

import math
import warnings

import torch

from ..callback import ORDER, Callback


class NonFiniteLossWarning(RuntimeWarning):
    """A fit's training loss became NaN or infinite (pass `cbs=[TerminateOnNaNCallback()]` to stop there)."""


class ScalarLossCheck(Callback):
    """Raises at the first loss that is not a 0-dim tensor, naming `loss_func`, before its backward pass.

    Two attribute reads a batch (no device synchronisation); runs first in `after_loss`, before anything
    reads or scales the loss.
    """

    order = ORDER["loss_check"]

    def after_loss(self, learn) -> None:
        loss = learn.loss
        if isinstance(loss, torch.Tensor) and loss.ndim == 0:
            return
        raise_bad_loss(loss, learn.loss_func)


def raise_bad_loss(loss, loss_func) -> None:
    """The error for a loss that is not a scalar tensor: what came back, and how to fix it."""
    if not isinstance(loss, torch.Tensor):
        raise TypeError(
            f"loss_func: {loss_func!r} returned a {type(loss).__name__} ({loss!r}), not a tensor; it must "
            "return a scalar torch.Tensor so that backward() can run (do not call .item() inside the loss)"
        )
    raise ValueError(
        f"loss_func: {loss_func!r} returned a tensor of shape {tuple(loss.shape)}, not a scalar; reduce it "
        "to one number (reduction='mean', or .mean() at the end of your loss)"
    )


class NonFiniteLossCheck(Callback):
    """At the end of a fit, warns if a training loss was NaN or infinite, naming the first iteration where it
    was (read from the recorder's trace once, at the end, so the batches pay nothing)."""

    order = ORDER["loss_check"]

    def after_fit(self, learn) -> None:
        rec = learn.recorder
        rec.flush()  # the losses still on the device (the recorder's own after_fit runs later)
        first = next((i for i, loss in enumerate(rec.losses) if not math.isfinite(loss)), None)
        if first is None:
            return
        n_bad = sum(1 for loss in rec.losses[first:] if not math.isfinite(loss))
        warnings.warn(
            f"the training loss became {rec.losses[first]} at iteration {rec.iters[first]} (epoch "
            f"{rec.iter_epochs[first]}, lr {rec.lrs[first]:.3g}) and was not finite for {n_bad} of the "
            f"{len(rec.losses) - first} iterations from there; the lr may be too high. "
            "cbs=[TerminateOnNaNCallback()] stops a fit at the first such loss",
            NonFiniteLossWarning,
            stacklevel=2,
        )
