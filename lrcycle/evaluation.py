"""The one evaluation loop: a model run over a loader in eval mode without gradients, used by validation,
prediction and weight averaging alike."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import partial

import torch
from torch import nn

from .interrupt import guarded


def to_device(batch, device: torch.device):
    """A tensor moved to `device` (anything else as it is)."""
    if isinstance(batch, torch.Tensor) and batch.device != device:
        return batch.to(device)
    return batch


class EvalBatches:
    """`dl`'s `(x, y)` batches moved to `device`, with what evaluation changed: the model's train/eval mode
    and torch's grad mode before it."""

    def __init__(self, model: nn.Module, dl: Iterable, device: torch.device):
        self.model, self.dl, self.device = model, dl, device
        self.was_training, self.grad_was_enabled = model.training, torch.is_grad_enabled()

    def __iter__(self) -> Iterator[tuple]:
        return ((to_device(xb, self.device), to_device(yb, self.device)) for xb, yb in self.dl)


def eval_batches(model: nn.Module, dl: Iterable, device: torch.device):
    """`with eval_batches(model, dl, device) as batches: for xb, yb in batches: ...`

    Inside the block the model is in eval mode and gradients are off; `batches` yields `dl`'s `(x, y)` batches
    moved to `device`. The model's previous train/eval mode and the grad mode come back on every exit (the
    end, a `break`, an exception, Ctrl-C): switching both ways is a critical section (`interrupt.guarded`),
    so Ctrl-C can never leave gradients off for the rest of the process.
    """
    return guarded(partial(_start_eval, model, dl, device), _end_eval)


def _start_eval(model: nn.Module, dl: Iterable, device: torch.device) -> EvalBatches:
    batches = EvalBatches(model, dl, device)
    model.eval()
    torch.set_grad_enabled(False)
    return batches


def _end_eval(batches: EvalBatches) -> None:
    torch.set_grad_enabled(batches.grad_was_enabled)
    batches.model.train(batches.was_training)


def predictions(model: nn.Module, dl: Iterable, device: torch.device, with_input: bool = False):
    """`(predictions, targets)` (with `inputs` first when asked) over `dl`, gathered on the CPU."""
    preds, targets, inputs = [], [], []
    with eval_batches(model, dl, device) as batches:
        for xb, yb in batches:
            preds.append(model(xb).cpu())
            targets.append(yb.cpu() if isinstance(yb, torch.Tensor) else torch.as_tensor(yb))
            if with_input:
                inputs.append(xb.cpu())
    out = (torch.cat(preds), torch.cat(targets))
    return (torch.cat(inputs), *out) if with_input else out
