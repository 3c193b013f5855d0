"""Shared fixtures: small seeded data and models, so every test is fast and independent of the others."""

import matplotlib

matplotlib.use("Agg")

import pytest
import torch
from torch import nn

from lrcycle import DataLoaders

# Tiny models gain nothing from intra-op threads, and on a loaded machine two spinning threads per test
# process make every op ~20x slower.
torch.set_num_threads(1)


def make_dls(n_train=96, n_valid=32, bs=16, n_in=8, n_out=3, seed=0, shuffle=True):
    """A random classification problem as DataLoaders (training loader shuffled by torch's global RNG)."""
    g = torch.Generator().manual_seed(seed)
    x_train, x_valid = torch.randn(n_train, n_in, generator=g), torch.randn(n_valid, n_in, generator=g)
    w = torch.randn(n_in, n_out, generator=g)
    y_train, y_valid = (x_train @ w).argmax(1), (x_valid @ w).argmax(1)
    return DataLoaders.from_tensors(
        x_train, y_train, x_valid, y_valid, bs=bs, loss_func=nn.CrossEntropyLoss(), shuffle=shuffle
    )


def make_mlp(n_in=8, n_out=3, hidden=16, seed=0):
    """Three children (two hidden blocks and a head), so it splits into 1 or 3 layer groups."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU()),
        nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU()),
        nn.Linear(hidden, n_out),
    )


def smoothed(values, beta=0.98):
    """The recorder's smoothing written out: `avg = beta*avg + (1-beta)*loss`, `avg / (1 - beta**n)`."""
    avg, out = 0.0, []
    for n, loss in enumerate(values, 1):
        avg = beta * avg + (1 - beta) * loss
        out.append(avg / (1 - beta**n))
    return out


@pytest.fixture
def dls():
    return make_dls()


@pytest.fixture
def mlp():
    return make_mlp()


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")
