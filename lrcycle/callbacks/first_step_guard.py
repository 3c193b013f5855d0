"""Nothing changes when a fit fails before its first optimizer step: the forward passes already run have
moved buffers (BatchNorm running statistics, `num_batches_tracked`) and the modules' train/eval modes; this
puts them back."""

from __future__ import annotations

import torch

from ..callback import ORDER, Callback


class FirstStepGuard(Callback):
    """Copies the model's buffers and notes every module's train/eval mode at the start of a fit and, if the fit
    ends by an error or interrupt before its first optimizer step (`train_iter` never moved), puts both back
    (the buffers bit for bit).

    Parameters need no copy: nothing changes them before the first step. The copy is one clone per buffer
    (BatchNorm statistics are a small fraction of a model), made once per fit; the batches pay nothing.
    Runs after gradient accumulation has set the fit's starting `train_iter`.
    """

    order = ORDER["guard"]

    def __init__(self):
        self.saved, self.finished, self.start_iter = None, True, 0

    def before_fit(self, learn) -> None:
        self.saved = [(buffer, buffer.detach().clone()) for buffer in learn.model.buffers()]
        self.modes = [(module, module.training) for module in learn.model.modules()]
        self.finished, self.start_iter = False, learn.train_iter

    def after_fit(self, learn) -> None:
        self.finished = True  # a normal end or a cancel: whatever the batches did is the fit's result

    def cleanup_fit(self, learn) -> None:
        saved, self.saved = self.saved, None
        if saved is None or self.finished or learn.train_iter != self.start_iter:
            return
        with torch.no_grad():
            for buffer, copy in saved:
                buffer.copy_(copy)
        for module, mode in self.modes:  # train/eval as before the fit, module by module
            module.training = mode
