"""`learn.summary()`: per top-level block the output shape on one batch, the parameters, trainable or frozen and
the layer group, then the totals, each checked against the model taken apart by hand; and afterwards the model,
its modes, the optimizer, the gradients and every RNG are what they were, bit for bit."""

import random

import numpy as np
import torch
from conftest import make_dls
from test_ctrl_c import model_copy, opt_state_copy, rng_states, same_model, same_opt_state, same_rng
from torch import nn

from lrcycle import Learner, sequential_splitter


def make_model():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU()),
        nn.Linear(16, 12),
        nn.Dropout(0.3),
        nn.Linear(12, 3),
    )


def make_learner():
    return Learner(make_dls(), make_model(), opt_func=torch.optim.Adam, splitter=sequential_splitter(2),
                   progress=False, device="cpu")  # fmt: skip


def test_summary_rows_and_totals_match_the_model_taken_apart():
    learn = make_learner()
    learn.freeze()
    table = learn.summary().table
    children = list(learn.model.children())
    x = torch.zeros(16, 8)  # one batch of the training loader: 16 items of 8 features
    shapes = []
    for child in children:
        x = child.eval()(x)
        shapes.append(str(list(x.shape)))
    counts = [sum(p.numel() for p in child.parameters()) for child in children]
    assert table["block"].tolist() == ["0", "1", "2", "3"]
    assert table["type"].tolist() == ["Sequential", "Linear", "Dropout", "Linear"]
    assert table["output_shape"].tolist() == shapes == ["[16, 16]", "[16, 12]", "[16, 12]", "[16, 3]"]
    assert table["params"].tolist() == counts == [8 * 16 + 16 + 2 * 16, 16 * 12 + 12, 0, 12 * 3 + 3]
    # frozen: the first group except BatchNorm (train_bn); the last group (the head) trains
    assert table["trains"].tolist() == ["partly", "frozen", "-", "trainable"]
    assert table["group"].tolist() == ["0", "0", "-", "1"]
    text = learn.summary()
    total, trainable = sum(counts), 2 * 16 + counts[3]
    assert f"Total params: {total:,}   trainable: {trainable:,}   frozen: {total - trainable:,}" in text
    assert "Layer groups: 2" in text and "one batch of inputs [16, 8]" in text
    assert repr(text) == str(text)  # prints as a table in a notebook too


def test_summary_puts_everything_back_bit_for_bit():
    learn = make_learner()
    learn.fit(0.01, 1)
    loss = nn.CrossEntropyLoss()(learn.model(torch.randn(4, 8)), torch.tensor([0, 1, 2, 0]))
    loss.backward()  # gradients left in place
    learn.model[0].eval()  # mixed modes
    learn.model[2].train()
    torch.manual_seed(5)
    np.random.seed(5)
    random.seed(5)
    weights, opt, opt_state = model_copy(learn.model), learn.opt, opt_state_copy(learn.opt)
    modes = [m.training for m in learn.model.modules()]
    grads = [p.grad.clone() for p in learn.model.parameters()]
    flags, rng = [p.requires_grad for p in learn.model.parameters()], rng_states()
    learn.summary()
    assert same_model(model_copy(learn.model), weights)  # BatchNorm statistics too
    assert learn.opt is opt and same_opt_state(opt_state_copy(learn.opt), opt_state)
    assert [m.training for m in learn.model.modules()] == modes and torch.is_grad_enabled()
    assert all(torch.equal(p.grad, g) for p, g in zip(learn.model.parameters(), grads, strict=True))
    assert [p.requires_grad for p in learn.model.parameters()] == flags
    assert same_rng(rng_states(), rng)  # the shuffled batch draw left no trace
    assert all(not module._forward_hooks for module in learn.model.modules())


def test_a_model_without_children_is_one_block():
    learn = Learner(make_dls(), nn.Linear(8, 3), progress=False, device="cpu")
    table = learn.summary().table
    assert table.values.tolist() == [["Linear", "Linear", "[16, 3]", 27, "trainable", "0"]]
