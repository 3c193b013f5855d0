"""Schedule-free optimizers (Defazio et al. 2024; the `schedulefree` package): train on one sequence of
weights (y), evaluate and save another (x, an average), switching with `opt.train()` / `opt.eval()`.

Frameworks forget the switch (schedule_free issues #11, #15; Lightning #20441), so the Learner does it for any
optimizer with `train()` and `eval()` methods: `ScheduleFreeSwitch` joins every fit (`schedule_free_switches`)
and calls `opt.train()` before training batches, shows the evaluation weights to validation, and calls
`opt.eval()` at the end of a fit, on every exit; `eval_weights(learn)` gives prediction and saving the same
view between or during fits. The optimizer's mode is read from its param groups' `train_mode` flag, as the
`schedulefree` optimizers keep it. Where the model has BatchNorm, its running statistics were gathered on the
training weights, so they are recomputed for the evaluation weights (as the schedule_free README advises)
over at most `BN_BATCHES` training batches, with torch's RNG put back afterwards.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from ..batches import forward, split, to_device
from ..callback import ORDER, Callback

BN_BATCHES = 50
"""Training batches the BatchNorm statistics of the evaluation weights are recomputed over."""


def has_modes(opt) -> bool:
    """An optimizer with `train()` / `eval()` (a schedule-free one); torch's own have neither."""
    return opt is not None and callable(getattr(opt, "train", None)) and callable(getattr(opt, "eval", None))


def in_train_mode(opt) -> bool:
    """Whether the model holds the training weights: any param group's `train_mode` flag is set."""
    return has_modes(opt) and any(group.get("train_mode", False) for group in opt.param_groups)


def schedule_free_switches(opt) -> list:
    """The callbacks a fit with `opt` needs: a `ScheduleFreeSwitch` for an optimizer with modes, else none."""
    return [ScheduleFreeSwitch()] if has_modes(opt) else []


def batchnorm_layers(model: nn.Module) -> list:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


@torch.no_grad()
def recompute_bn(model: nn.Module, train_dl, device, max_batches: int = BN_BATCHES, n_inp=None) -> None:
    """BatchNorm running statistics as the plain average (`momentum=None`) over up to `max_batches` training
    batches seen by the current weights; the model's modes, momenta and torch's RNG come back as they were."""
    layers = batchnorm_layers(model)
    if not layers:
        return
    modes, momenta = [(m, m.training) for m in model.modules()], [(m, m.momentum) for m in layers]
    with torch.random.fork_rng(devices=[]):
        for layer in layers:
            layer.reset_running_stats()
            layer.momentum = None
        model.train()
        try:
            for i, batch in enumerate(train_dl):
                if i >= max_batches:
                    break
                inputs, _ = split(to_device(batch, device), n_inp)  # any batch shape the Learner takes
                forward(model, inputs)
        finally:
            for layer, momentum in momenta:
                layer.momentum = momentum
            for module, mode in modes:
                module.training = mode


class EvalWeights:
    """The switch to the evaluation weights and exactly back: `enter()` keeps a copy of every parameter and
    buffer, calls `opt.eval()` and recomputes BatchNorm statistics; `leave()` copies the training weights and
    buffers back bit for bit and sets the optimizer's train mode again (no `opt.train()` round trip, whose
    interpolation would not give back the same bits). Does nothing when the optimizer is not in train mode."""

    def __init__(self, learn):
        self.learn, self.saved = learn, None

    def enter(self) -> None:
        learn = self.learn
        if not in_train_mode(learn.opt):
            return
        tensors = [*learn.model.parameters(), *learn.model.buffers()]
        self.saved = [(t, t.detach().clone()) for t in tensors]
        self.flags = [group["train_mode"] for group in learn.opt.param_groups]
        learn.opt.eval()
        recompute_bn(learn.model, learn.dls.train, learn.device, n_inp=learn.n_inp)

    @torch.no_grad()
    def leave(self) -> None:
        if self.saved is None:
            return
        for tensor, copy in self.saved:
            tensor.copy_(copy)
        for group, flag in zip(self.learn.opt.param_groups, self.flags, strict=True):
            group["train_mode"] = flag
        self.saved = None


@contextlib.contextmanager
def eval_weights(learn):
    """`with eval_weights(learn):` the model holds the optimizer's evaluation weights (a no-op for other
    optimizers, or one already in eval mode); afterwards the training weights come back exactly."""
    switch = EvalWeights(learn)
    switch.enter()
    try:
        yield
    finally:
        switch.leave()


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
