"""The range test on a framework's own training step (`training_step(batch, batch_idx)` in Lightning,
`model(**batch).loss` in Hugging Face): the step becomes the model of a light Learner loop, its loss the loss.

The batch and its index travel as the Learner's input, so any batch shape (dicts, nested tuples) reaches the
step as the framework would pass it; the step's output is the loss (a tensor, or a dict / model output with
`loss`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import torch
from torch import nn

from ..range_test import range_test


class TrainingStepModel(nn.Module):
    """`forward((batch, batch_idx))` runs `step(batch, batch_idx)` with the batch on `device`. `module` is a
    child, so `train()`/`eval()` and the range test's snapshot reach all of its parameters and buffers."""

    def __init__(self, module: nn.Module, step: Callable, device: torch.device):
        super().__init__()
        self.module, self.step, self.device = module, step, device

    def forward(self, batch_and_index):
        batch, batch_idx = batch_and_index
        return self.step(move_to(batch, self.device), batch_idx)


class IndexedBatches:
    """`loader`'s batches as `((batch, batch_idx), 0)` pairs, the Learner's (input, target) shape; sized."""

    def __init__(self, loader: Iterable):
        self.loader = loader

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for i, batch in enumerate(self.loader):
            yield (batch, i), 0


def step_loss(output, _target) -> torch.Tensor:
    """The loss a training step returned: the tensor itself, `output["loss"]` or `output.loss`."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, Mapping) and "loss" in output:
        return output["loss"]
    loss = getattr(output, "loss", None)
    if loss is None:
        raise TypeError(f"the training step must return a loss tensor or something with a `loss`, got {type(output)}")
    return loss


def move_to(batch, device: torch.device):
    """Tensors in nested tuples, lists and dicts moved to `device` (other values as they are)."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return type(batch)({k: move_to(v, device) for k, v in batch.items()})
    if isinstance(batch, (list, tuple)) and not hasattr(batch, "_fields"):
        return type(batch)(move_to(v, device) for v in batch)
    return batch


def step_range_test(module: nn.Module, step: Callable, loader: Iterable, optimizer, **kwargs):
    """`lrcycle.range_test` where each iteration's loss is `step(batch, batch_idx)` on `loader`'s batches."""
    first = next(module.parameters(), None)
    device = torch.device("cpu") if first is None else first.device
    model = TrainingStepModel(module, step, device)
    return range_test(model, optimizer, step_loss, IndexedBatches(loader), **kwargs)
