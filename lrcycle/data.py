"""DataLoaders and the embedded data set (scikit-learn's handwritten digits, shipped inside that package)."""

from __future__ import annotations

from collections.abc import Iterable

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
        train = DataLoader(TensorDataset(x_train, y_train), batch_size=bs, shuffle=shuffle)
        valid = None
        if x_valid is not None:
            valid = DataLoader(TensorDataset(x_valid, y_valid), batch_size=2 * bs)
        return cls(train, valid, loss_func)
