"""Schedule-free optimizers (Defazio et al. 2024; the `schedulefree` package): train on one sequence of
weights (y), evaluate and save another (x, an average), switching with `opt.train()` / `opt.eval()`.

Frameworks forget the switch (schedule_free issues #11, #15; Lightning #20441), so the Learner does it for any
optimizer with `train()` and `eval()` methods: `ScheduleFreeSwitch` joins every fit of such an optimizer
and calls `opt.train()` before training batches, shows the evaluation weights to validation, and calls
`opt.eval()` at the end of a fit, on every exit; `optim.eval_weights(learn)` gives prediction and saving the same
view between or during fits. The optimizer's mode is read from its param groups' `train_mode` flag, as the
`schedulefree` optimizers keep it. Where the model has BatchNorm, its running statistics were gathered on the
training weights, so they are recomputed for the evaluation weights (as the schedule_free README advises)
over at most `BN_BATCHES` training batches, with torch's RNG put back afterwards.
"""

from __future__ import annotations

from ..callback import ORDER, Callback
from ..optim import EvalWeights, in_train_mode, recompute_bn


class ScheduleFreeSwitch(Callback):
    """Joins every fit of an optimizer with `train()` / `eval()`: `opt.train()` before training batches; for
    validation and the rest of that epoch (trackers, averaging) the evaluation weights (`EvalWeights`), the
    training ones coming back bit for bit before the next epoch trains, so a fit with validation trains
    exactly as one without; and `opt.eval()` (BatchNorm statistics recomputed) when the fit ends, however it
    ends, so that what is left, predicted and saved are the evaluation weights."""

    order = ORDER["schedule_free"]

    def __init__(self):
        self.switch = None

    def before_train(self, learn) -> None:
        if self.switch is not None:
            self.switch.leave()
            self.switch = None
        learn.opt.train()

    def before_validate(self, learn) -> None:
        if self.switch is None:
            self.switch = EvalWeights(learn)
            self.switch.enter()

    def after_fit(self, learn) -> None:
        self.switch = None  # the evaluation weights a validation put in place stay
        if in_train_mode(learn.opt):
            learn.opt.eval()
            recompute_bn(learn.model, learn.dls.train, learn.device, n_inp=learn.n_inp)

    def cleanup_fit(self, learn) -> None:
        self.after_fit(learn)
