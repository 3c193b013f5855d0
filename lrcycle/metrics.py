"""Metrics: functions of (pred, target) returning a 0-d tensor, averaged over the validation set by batch size."""

from __future__ import annotations

import torch

from .batches import logits


def accuracy(pred: torch.Tensor, target: torch.Tensor, thresh: float = 0.0) -> torch.Tensor:
    """Fraction of rows whose predicted class equals the target; `pred` may be a model output with `logits`.

    Several outputs per row (`[B, C]`, two classes included): the class is the arg-max. One output per row
    (`[B]` or `[B, 1]`, a binary model trained with `BCEWithLogitsLoss`): the class is 1 where the logit is
    above `thresh` (0: probability 0.5), compared with the target read as 0/1 (`target > 0.5`).
    """
    out = logits(pred)
    if out.ndim == 1 or out.shape[-1] == 1:
        return ((out.reshape(-1) > thresh) == (target.reshape(-1) > 0.5)).float().mean()
    return (out.argmax(dim=-1) == target).float().mean()


def error_rate(pred: torch.Tensor, target: torch.Tensor, thresh: float = 0.0) -> torch.Tensor:
    """1 - accuracy (one-logit outputs thresholded at `thresh` as there)."""
    return 1 - accuracy(pred, target, thresh)


def accuracy_multi(pred: torch.Tensor, target: torch.Tensor, thresh: float = 0.5, sigmoid: bool = True) -> torch.Tensor:
    """Multi-label accuracy (fastai's): the fraction of all (row, label) pairs where `sigmoid(pred) > thresh`
    (`pred > thresh` with `sigmoid=False`) agrees with the 0/1 target. `pred` and `target` have one value each
    per label, so the same number of elements."""
    out = logits(pred)
    if out.numel() != target.numel():
        raise ValueError(
            f"accuracy_multi: pred and target need one value per label each, got shapes {tuple(out.shape)} and "
            f"{tuple(target.shape)}"
        )
    out, target = out.reshape(-1), target.reshape(-1)
    if sigmoid:
        out = out.sigmoid()
    return ((out > thresh) == target.bool()).float().mean()
