"""A fit whose loss became NaN or infinite warns at its end, instead of training on in silence. (A loss that is
not a scalar tensor is an error at the batch that produced it: `batches.compute_loss` checks every loss.)"""

from __future__ import annotations

import math
import warnings

from ..callback import ORDER, Callback, NonFiniteLossWarning


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
