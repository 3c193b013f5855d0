"""Gradient clipping by total norm, once per optimizer step."""

from __future__ import annotations

import math

import torch

from ..callback import ORDER, Callback


class GradientClip(Callback):
    """Before each optimizer step, scales the gradients so their total norm is at most `max_norm`
    (`torch.nn.utils.clip_grad_norm_`: `norm = ||(||g_1||, ..., ||g_n||)||_p`, each gradient times
    `min(1, max_norm / (norm + 1e-6))`), over every parameter the optimizer holds.

    Under float16 it unscales the gradients first (`learn.scaler.unscale_`), so the norm is that of the true
    gradients. It runs after GradientAccumulation (whose unfinished groups cancel the step before this hook),
    so under accumulation it clips once per step, the summed gradient. `norm` keeps the last total norm
    (before clipping) as a tensor, unread (no sync).
    """

    order = ORDER["clip"]

    def __init__(self, max_norm: float, norm_type: float = 2.0):
        for name, value in (("max_norm", max_norm), ("norm_type", norm_type)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name}: must be a number > 0, got {value!r}")
        if not math.isfinite(max_norm):
            raise ValueError(f"max_norm: must be finite, got {max_norm!r}")
        self.max_norm, self.norm_type = float(max_norm), float(norm_type)
        self.norm = None

    def before_step(self, learn) -> None:
        if learn.scaler is not None:
            learn.scaler.unscale_(learn.opt)
        params = [p for group in learn.opt.param_groups for p in group["params"]]
        self.norm = torch.nn.utils.clip_grad_norm_(params, self.max_norm, self.norm_type)

    def __repr__(self) -> str:
        return f"GradientClip(max_norm={self.max_norm}, norm_type={self.norm_type})"
