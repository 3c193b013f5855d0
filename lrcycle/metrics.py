"""Metrics: functions of (pred, target) returning a 0-d tensor, averaged over the validation set by batch size."""

from __future__ import annotations

import torch

from .batches import logits


def accuracy(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Fraction of rows whose arg-max class equals the target; `pred` may be a model output with `logits`."""
    return (logits(pred).argmax(dim=-1) == target).float().mean()


def error_rate(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - accuracy."""
    return 1 - accuracy(pred, target)
