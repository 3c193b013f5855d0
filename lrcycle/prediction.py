"""`learn.predict(x)`: the model's output for one item or one batch, as fastai users call it."""

from __future__ import annotations

import torch
from torch import nn

from .evaluation import eval_batches


def item_ndim(train) -> int | None:
    """Dimensions of one input item, read from the training set's first item when it can be indexed (a torch
    `DataLoader` over a map-style dataset); None when it cannot be known."""
    try:
        x = train.dataset[0][0]
    except Exception:  # no dataset, not indexable, or items that are not (x, y) pairs
        return None
    return x.ndim if isinstance(x, torch.Tensor) else None


def predict(model: nn.Module, x, device: torch.device, ndim: int | None) -> torch.Tensor:
    """The model's output for `x` on the CPU, in eval mode without gradients (no events, no callbacks).

    `x` with `ndim` dimensions (one training item's) is one item: it goes through as a batch of one and its
    single row comes back. Anything else is a batch, returned whole.
    """
    x = torch.as_tensor(x)
    single = ndim is not None and x.ndim == ndim
    with eval_batches(model, [(x.unsqueeze(0) if single else x, None)], device) as batches:
        (xb, _), *_ = batches
        pred = model(xb).cpu()
    return pred[0] if single else pred
