"""`learn.predict(x)`: the model's answer for one item or one batch, as fastai users call it: a classifier's
decoded class and probabilities, a regressor's value.

Whether the model is a classifier is read from its loss function: `CrossEntropyLoss`, `NLLLoss` (softmax over
the last dimension, the class the argmax) and `BCEWithLogitsLoss` (sigmoid; the class `p > 0.5`) are; any
other loss function's model answers with its raw output.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
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


SOFTMAX_LOSSES = (nn.CrossEntropyLoss, nn.NLLLoss)
SIGMOID_LOSSES = (nn.BCEWithLogitsLoss,)
SOFTMAX_FUNCTIONS = (F.cross_entropy, F.nll_loss)
SIGMOID_FUNCTIONS = (F.binary_cross_entropy_with_logits,)


def activation(loss_func) -> str | None:
    """'softmax' or 'sigmoid' for a classifier's loss function, None for any other (a regressor's)."""
    if isinstance(loss_func, SOFTMAX_LOSSES) or any(loss_func is f for f in SOFTMAX_FUNCTIONS):
        return "softmax"
    if isinstance(loss_func, SIGMOID_LOSSES) or any(loss_func is f for f in SIGMOID_FUNCTIONS):
        return "sigmoid"
    return None


def as_input(x) -> torch.Tensor:
    """One item or batch as a tensor: a numpy array or a list converted (float64 to float32, torch's default
    float), a tensor as it is."""
    if isinstance(x, torch.Tensor):
        return x
    x = torch.as_tensor(np.asarray(x))
    return x.float() if x.dtype == torch.float64 else x


def decode(logits: torch.Tensor, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """`(decoded, probabilities)` of a classifier's logits (last dimension: the classes). One logit, or
    `kind='sigmoid'`: `p = sigmoid(logits)`, decoded `p > 0.5` (a 0/1 class index for one logit, a mask for
    several labels); else `p = softmax(logits, -1)`, decoded `argmax(p, -1)`."""
    if kind == "sigmoid" or logits.shape[-1:] == (1,):
        probs = torch.sigmoid(logits)
        above = probs > 0.5
        return (above[..., 0].long() if logits.shape[-1:] == (1,) else above), probs
    probs = torch.softmax(logits, dim=-1)
    return probs.argmax(dim=-1), probs
