"""DataLoaders and the embedded data set (scikit-learn's handwritten digits, shipped inside that package)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class DataLoaders:
    """A training loader (a sized iterable of `(x, y)` batches) and a validation one (any iterable).

    `loss_func`, when given, is what a Learner uses if it is given none.
    """

    def __init__(self, train: Iterable, valid: Iterable | None = None, loss_func=None):
        self.train, self.valid, self.loss_func = train, valid, loss_func

    @classmethod
    def from_tensors(
        cls, x_train, y_train, x_valid=None, y_valid=None, bs: int = 64, loss_func=None, shuffle: bool = True
    ) -> DataLoaders:
        """Loaders over in-memory tensors: the training one shuffled, the validation one in order at 2*bs."""
        if not isinstance(bs, int) or bs < 1:
            raise ValueError(f"bs: must be a positive integer, got {bs!r}")
        train = DataLoader(tensor_dataset(x_train, y_train, "train"), batch_size=bs, shuffle=shuffle)
        valid = None
        if x_valid is not None or y_valid is not None:
            valid = DataLoader(tensor_dataset(x_valid, y_valid, "valid"), batch_size=2 * bs)
        return cls(train, valid, loss_func)


def tensor_dataset(x, y, split: str) -> TensorDataset:
    """`TensorDataset(x, y)` from tensors, numpy arrays, lists or pandas objects (`as_tensor`), lengths checked."""
    if x is None or y is None:
        raise ValueError(f"x_{split}/y_{split}: give both the inputs and the targets, or neither")
    x, y = as_tensor(x, f"x_{split}"), as_tensor(y, f"y_{split}", target=True)
    if x.ndim == 0 or y.ndim == 0 or len(x) != len(y):
        raise ValueError(
            f"x_{split}/y_{split}: need one target per input row, got shapes {tuple(x.shape)} and {tuple(y.shape)}"
        )
    return TensorDataset(x, y)


def as_tensor(data, name: str = "x", target: bool = False) -> torch.Tensor:
    """`data` as a tensor a float32 model takes: a numpy array, list, pandas DataFrame or Series, or a tensor.

    Floating values become float32 (numpy and pandas default to float64, which a float32 model rejects);
    integer (and boolean) targets become int64, the class indices `CrossEntropyLoss` expects; other inputs
    keep their dtype (token ids, uint8 images). A tensor is returned as it is: its dtype is the caller's choice.
    """
    if isinstance(data, torch.Tensor):
        return data
    array = np.asarray(data.to_numpy() if hasattr(data, "to_numpy") else data)  # pandas: its values
    if array.dtype.kind == "f":
        return torch.tensor(array, dtype=torch.float32)  # a copy: the caller's array stays theirs
    if array.dtype.kind in "iub":
        return torch.tensor(array.astype(np.int64) if target else array)
    fix = "encode the labels as integers (pandas.factorize, sklearn LabelEncoder)" if target else "convert to numbers"
    raise TypeError(f"{name}: expected numbers (a float or integer array), got dtype {array.dtype}; {fix}")


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
