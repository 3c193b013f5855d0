"""Small reference models for the embedded digits data (1x8x8 images, 10 classes)."""

from __future__ import annotations

from torch import nn


def digits_cnn(n_out: int = 10, bn: bool = True, width: int = 16) -> nn.Sequential:
    """A small CNN for 1x8x8 digits: two conv blocks, then a linear head (three children groups + head)."""
    norm = (lambda c: nn.BatchNorm2d(c)) if bn else (lambda c: nn.Identity())
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(1, width, 3, padding=1), norm(width), nn.ReLU()),
        nn.Sequential(nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), norm(2 * width), nn.ReLU()),
        nn.Sequential(nn.Conv2d(2 * width, 4 * width, 3, stride=2, padding=1), norm(4 * width), nn.ReLU()),
        nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * width, n_out)),
    )


def digits_mlp(n_out: int = 10, hidden: int = 64) -> nn.Sequential:
    """A small MLP for flattened 8x8 digits."""
    return nn.Sequential(
        nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, n_out)
    )
