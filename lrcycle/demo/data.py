"""The embedded data set: scikit-learn's 8x8 handwritten digits (shipped inside that package, nothing downloaded)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ..data import DataLoaders


def digits_arrays(valid_pct: float = 0.2, seed: int = 0, classes: Sequence[int] | None = None):
    """(x_train, y_train, x_valid, y_valid) as tensors: 1x8x8 float images standardized with the training
    set's mean and std, a split fixed by `seed`; `classes` keeps only those digits, relabelled 0..k-1."""
    from sklearn.datasets import load_digits

    if not 0 < valid_pct < 1:
        raise ValueError(f"valid_pct: must be in (0, 1), got {valid_pct!r}")
    bunch = load_digits()
    x, y = bunch.images.astype(np.float32), bunch.target.astype(np.int64)
    if classes is not None:
        keep = np.isin(y, classes)
        x, y = x[keep], np.searchsorted(np.asarray(sorted(classes)), y[keep])
    order = np.random.RandomState(seed).permutation(len(x))
    n_valid = int(round(len(x) * valid_pct))
    valid_idx, train_idx = order[:n_valid], order[n_valid:]
    mean, std = x[train_idx].mean(), x[train_idx].std()
    x = (x - mean) / std
    as_images = lambda idx: torch.from_numpy(x[idx]).unsqueeze(1)
    return as_images(train_idx), torch.from_numpy(y[train_idx]), as_images(valid_idx), torch.from_numpy(y[valid_idx])


def digits(
    bs: int = 64,
    valid_pct: float = 0.2,
    seed: int = 0,
    classes: Sequence[int] | None = None,
    n_train: int | None = None,
) -> DataLoaders:
    """The embedded data set: 1,797 8x8 handwritten digits, 10 classes, cross-entropy loss.

    `n_train` keeps only the first `n_train` training images (a deliberately small data set).
    """
    x_train, y_train, x_valid, y_valid = digits_arrays(valid_pct, seed, classes)
    if n_train is not None:
        if not 1 <= n_train <= len(x_train):
            raise ValueError(f"n_train: must be in [1, {len(x_train)}], got {n_train!r}")
        x_train, y_train = x_train[:n_train], y_train[:n_train]
    return DataLoaders.from_tensors(x_train, y_train, x_valid, y_valid, bs=bs, loss_func=nn.CrossEntropyLoss())
