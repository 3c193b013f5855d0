"""The one evaluation loop: a model run over a loader in eval mode without gradients, used by validation,
prediction and weight averaging alike."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import torch
from torch import nn


def to_device(batch, device: torch.device):
    """A tensor moved to `device` (anything else as it is)."""
    if isinstance(batch, torch.Tensor) and batch.device != device:
        return batch.to(device)
    return batch


@contextlib.contextmanager
def eval_batches(model: nn.Module, dl: Iterable, device: torch.device) -> Iterator[Iterator[tuple]]:
    """`with eval_batches(model, dl, device) as batches: for xb, yb in batches: ...`

    Inside the block the model is in eval mode and gradients are off; `batches` yields `dl`'s `(x, y)` batches
    moved to `device`. The model's previous train/eval mode comes back on every exit (the end, a `break`, an
    exception). A context manager rather than a generator, so that the mode and grad state cannot outlive a
    loop that stops early.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield ((to_device(xb, device), to_device(yb, device)) for xb, yb in dl)
    finally:
        model.train(was_training)


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
