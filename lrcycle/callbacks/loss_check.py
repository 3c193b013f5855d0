"""A fit whose loss became NaN or infinite warns at its end, instead of training on in silence. (A loss that is
not a scalar tensor is an error at the batch that produced it: `batches.compute_loss` checks every loss.)"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from ..callback import ORDER, Callback, NonFiniteLossWarning


class NonFiniteLossCheck(Callback):
    """At the end of a fit, warns if a training loss was NaN or infinite, naming the first iteration where it
    was (read from the recorder's trace once, at the end, so the batches pay nothing), whether the weights
    are now non-finite and how to get back. A fit whose first loss is non-finite after a fit that left the
    weights non-finite says they were broken before it started (the first loss comes before any step)."""

    order = ORDER["loss_check"]

    def __init__(self):
        self.left_broken = False  # whether the last fit ended with non-finite weights (checked only then)

    def after_fit(self, learn) -> None:
        rec = learn.recorder
        rec.flush()  # the losses still on the device (the recorder's own after_fit runs later)
        not_finite = np.flatnonzero(~np.isfinite(np.asarray(rec.losses, dtype=float)))  # one pass, not a Python loop
        broken_before, self.left_broken = self.left_broken, False
        if not_finite.size == 0:
            return
        first = int(not_finite[0])
        self.left_broken = not bool(_all_finite(learn.model))  # one read, only after a non-finite loss
        if first == 0 and broken_before and self.left_broken:
            warnings.warn(
                f"the training loss was {rec.losses[0]} from this fit's first iteration: the model's weights were "
                "already non-finite (NaN or inf) before it started, left so by the fit before, which diverged. "
                f"{GET_BACK}",
                NonFiniteLossWarning,
                stacklevel=2,
            )
            return
        n_bad = not_finite.size
        weights = f"The model's weights are now non-finite, so later fits and predictions give NaN too. {GET_BACK}"
        warnings.warn(
            f"the training loss became {rec.losses[first]} at iteration {rec.iters[first]} (epoch "
            f"{rec.iter_epochs[first]}, lr {rec.lrs[first]:.3g}) and was not finite for {n_bad} of the "
            f"{len(rec.losses) - first} iterations from there; the lr may be too high. "
            + (weights if self.left_broken else "cbs=[TerminateOnNaNCallback()] stops a fit at the first such loss"),
            NonFiniteLossWarning,
            stacklevel=2,
        )


GET_BACK = (
    "To get back, reload weights you saved (learn.load(name)) or build the model again; then fit with "
    "cbs=[TerminateOnNaNCallback(restore=True)], which stops at the first non-finite loss and puts the model and "
    "optimizer back as they were at the start of that epoch"
)


def _all_finite(model) -> torch.Tensor:
    """Whether every parameter of `model` is finite, as a 0-d bool tensor on the device."""
    flags = [torch.isfinite(p.detach()).all() for p in model.parameters()]
    return torch.stack([f.to(flags[0].device) for f in flags]).all() if flags else torch.tensor(True)
