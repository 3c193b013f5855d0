"""The embedded digits data and DataLoaders.from_tensors."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from lrcycle import DataLoaders, digits

N_IMAGES = 1797


def tensors(dls):
    ds_train, ds_valid = dls.train.dataset, dls.valid.dataset
    return ds_train.tensors + ds_valid.tensors


def test_shapes_types_and_loss():
    dls = digits(bs=32)
    xb, yb = next(iter(dls.train))
    assert xb.shape == (32, 1, 8, 8) and xb.dtype == torch.float32 and yb.dtype == torch.int64
    assert isinstance(dls.loss_func, nn.CrossEntropyLoss)
    assert dls.train.batch_size == 32 and dls.valid.batch_size == 64


def test_split_sizes_and_labels_cover_the_whole_data_set():
    x_train, y_train, x_valid, y_valid = tensors(digits(valid_pct=0.2))
    assert len(x_valid) == round(N_IMAGES * 0.2) and len(x_train) + len(x_valid) == N_IMAGES
    counts = np.bincount(np.concatenate([y_train.numpy(), y_valid.numpy()]))
    assert counts.tolist() == np.bincount(load_digits().target).tolist()


def test_standardized_with_the_training_statistics():
    x_train, _, x_valid, _ = tensors(digits())
    assert x_train.mean().item() == pytest.approx(0, abs=1e-5)
    assert x_train.std(unbiased=False).item() == pytest.approx(1, abs=1e-5)
    assert abs(x_valid.mean().item()) < 0.1  # the validation set is scaled by the same, not its own, stats


def test_images_are_the_scaled_digits():
    x_train, y_train, _, _ = tensors(digits())
    raw = load_digits()
    first = x_train[0, 0].numpy()
    # an affine map of one of the original images with the same label
    matches = [
        i
        for i in np.flatnonzero(raw.target == y_train[0].item())
        if np.corrcoef(raw.images[i].ravel(), first.ravel())[0, 1] > 0.999999
    ]
    assert len(matches) >= 1


def test_the_split_is_fixed_by_the_seed():
    a, b, c = tensors(digits(seed=0)), tensors(digits(seed=0)), tensors(digits(seed=1))
    assert all(torch.equal(s, t) for s, t in zip(a, b, strict=True))
    assert not torch.equal(a[3], c[3])


def test_classes_keeps_those_digits_relabelled_in_sorted_order():
    x_train, y_train, x_valid, y_valid = tensors(digits(classes=[7, 3]))
    target = load_digits().target
    labels = torch.cat([y_train, y_valid])
    assert set(labels.tolist()) == {0, 1}
    assert (labels == 0).sum().item() == (target == 3).sum()  # 3 < 7, so 3 becomes 0
    assert (labels == 1).sum().item() == (target == 7).sum()
    assert len(x_train) + len(x_valid) == ((target == 3) | (target == 7)).sum()


def test_n_train_keeps_only_that_many_training_images():
    full = tensors(digits())
    small = tensors(digits(n_train=100))
    assert len(small[0]) == 100 and torch.equal(small[0], full[0][:100])
    assert torch.equal(small[2], full[2])  # validation untouched


@pytest.mark.parametrize("kw", [dict(n_train=0), dict(n_train=10**6), dict(valid_pct=0), dict(valid_pct=1.5)])
def test_bad_arguments(kw):
    with pytest.raises(ValueError, match=next(iter(kw))):
        digits(**kw)


def test_from_tensors():
    x, y = torch.randn(10, 3), torch.arange(10)
    dls = DataLoaders.from_tensors(x, y, x[:4], y[:4], bs=3)
    assert len(dls.train) == 4 and [len(b[0]) for b in dls.valid] == [4]
    torch.manual_seed(0)
    order = torch.cat([yb for _, yb in dls.train])
    assert sorted(order.tolist()) == list(range(10)) and order.tolist() != list(range(10))
    in_order = DataLoaders.from_tensors(x, y, bs=3, shuffle=False)
    assert torch.cat([yb for _, yb in in_order.train]).tolist() == list(range(10)) and in_order.valid is None
    with pytest.raises(ValueError, match="bs"):
        DataLoaders.from_tensors(x, y, bs=0)
