"""DataLoaders, and turning arrays (numpy, lists, pandas) into the tensors a float32 model takes."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
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
