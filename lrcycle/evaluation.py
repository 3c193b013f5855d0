"""The one evaluation loop: a model run over a loader in eval mode without gradients, used by validation,
prediction and weight averaging alike. Batches may have any shape `batches.py` knows."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping

import torch
from torch import nn

from . import batches as B
from .batches import to_device


@contextlib.contextmanager
def eval_batches(model: nn.Module, dl: Iterable, device: torch.device) -> Iterator[Iterator]:
    """`with eval_batches(model, dl, device) as batches: for batch in batches: ...`

    Inside the block the model is in eval mode and gradients are off; `batches` yields `dl`'s batches with
    every tensor in them moved to `device`. The model's previous train/eval mode comes back on every exit
    (the end, a `break`, an exception). A context manager rather than a generator, so that the mode and grad
    state cannot outlive a loop that stops early.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield (to_device(batch, device) for batch in dl)
    finally:
        model.train(was_training)


def loss_sums(model: nn.Module, dl: Iterable, device: torch.device, loss_func, n_inp=None) -> torch.Tensor:
    """`[sum of loss * samples, samples]` over `dl` (a device tensor: no sync), without firing events."""
    sums = torch.zeros(2, device=device)
    with eval_batches(model, dl, device) as batches:
        for batch in batches:
            xb, yb = B.split(batch, n_inp)
            n = B.n_samples(yb)
            loss = B.compute_loss(loss_func, B.forward(model, xb), yb)
            sums += torch.stack([loss.float() * n, sums.new_tensor(n)])
    return sums


def predictions(model: nn.Module, dl: Iterable, device: torch.device, with_input: bool = False, n_inp=None):
    """`(predictions, targets)` (with `inputs` first when asked) over `dl`, gathered on the CPU.

    Predictions are the logits (`batches.logits`); targets the single target or a mapping's labels; inputs
    the single input, a tuple of inputs, or a dict of the mapping's tensors, each concatenated over batches.
    """
    preds, targets, inputs = [], [], []
    with eval_batches(model, dl, device) as batches:
        for batch in batches:
            xb, yb = B.split(batch, n_inp)
            preds.append(B.logits(B.forward(model, xb)).cpu())
            targets.append(to_device(B.target(yb), torch.device("cpu")))
            if with_input:
                inputs.append(to_device(xb if isinstance(xb, Mapping) or len(xb) > 1 else xb[0], torch.device("cpu")))
    out = (torch.cat(preds), _cat(targets))
    return (_cat(inputs), *out) if with_input else out


def _cat(items: list):
    """Concatenate per-batch tensors, tuples of tensors or mappings of tensors along the batch dimension."""
    first = items[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(items)
    if isinstance(first, Mapping):
        return {k: _cat([item[k] for item in items]) for k in first if isinstance(first[k], torch.Tensor)}
    if isinstance(first, (tuple, list)):
        return tuple(_cat([item[i] for item in items]) for i in range(len(first)))
    return torch.as_tensor(items)
