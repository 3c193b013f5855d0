"""transfer_learner: a new head, three layer groups, starting frozen; ResNets with nothing downloaded."""

import pytest
import torch
import torchvision
from conftest import make_dls, make_mlp
from torch import nn

from lrcycle import DataLoaders, digits_cnn
from lrcycle.layers import resnet_splitter, sequential_splitter
from lrcycle.transfer import transfer_learner


@pytest.fixture
def no_download(monkeypatch):
    """Any attempt to fetch weights fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to download weights")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


def image_dls(n=4, n_out=3):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 3, 32, 32, generator=g), torch.arange(n) % n_out
    return DataLoaders.from_tensors(x, y, bs=n, loss_func=nn.CrossEntropyLoss())  # one batch, no validation


def is_bn(model):
    ids = {id(p) for m in model.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters(recurse=False)}
    return lambda p: id(p) in ids


def snapshot(model):
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def changed(before, model):
    return {name for name, p in model.named_parameters() if not torch.equal(before[name], p)}


def test_resnet18_trains_one_batch_frozen_then_unfrozen_with_the_expected_groups(no_download):
    torch.manual_seed(0)
    learn = transfer_learner(image_dls(), torchvision.models.resnet18, n_out=3, progress=False)
    model = learn.model
    assert model.fc.out_features == 3
    assert [[id(p) for p in g] for g in learn.layer_groups] == [[id(p) for p in g] for g in resnet_splitter(model)]
    bn = is_bn(model)
    head = {id(p) for p in model.fc.parameters()}
    # starts frozen: the head and (train_bn) the BatchNorm parameters train, nothing else
    assert all(p.requires_grad == (id(p) in head or bn(p)) for p in model.parameters())

    before = snapshot(model)
    learn.fit(1e-2)
    expected = {n for n, p in model.named_parameters() if id(p) in head or bn(p)}
    assert changed(before, model) == expected

    learn.unfreeze()
    assert all(p.requires_grad for p in model.parameters())
    before = snapshot(model)
    learn.fit(1e-2)
    assert changed(before, model) == set(before)


def test_arch_is_called_with_the_weights_given():
    calls = []

    def arch(weights=None):
        calls.append(weights)
        return torchvision.models.resnet18(weights=None)

    transfer_learner(image_dls(), arch, n_out=3, weights="FAKE_WEIGHTS", progress=False)
    assert calls == ["FAKE_WEIGHTS"]


def test_a_built_sequential_gets_a_new_head_and_three_groups_with_the_head_last():
    model = digits_cnn(n_out=10)
    old_head = model[-1][-1]
    learn = transfer_learner(make_dls(), model, n_out=5, progress=False)
    new_head = learn.model[-1][-1]
    assert isinstance(new_head, nn.Linear) and new_head is not old_head
    assert (new_head.in_features, new_head.out_features) == (old_head.in_features, 5)
    assert len(learn.layer_groups) == 3
    assert [id(p) for p in learn.layer_groups[-1]] == [id(p) for p in learn.model[-1].parameters()]
    assert [p.requires_grad for p in learn.layer_groups[-1]] == [True, True]


def test_a_sequential_ending_in_a_linear_gets_that_linear_replaced():
    model = make_mlp(n_out=3)
    learn = transfer_learner(make_dls(), model, n_out=7, progress=False)
    assert learn.model[-1].out_features == 7


def test_body_weights_are_kept_and_n_out_none_keeps_the_head():
    model = make_mlp(n_out=3)
    body = {k: v.clone() for k, v in model.state_dict().items()}
    learn = transfer_learner(make_dls(), model, n_out=None, progress=False)
    assert all(torch.equal(v, learn.model.state_dict()[k]) for k, v in body.items())


def test_a_custom_splitter_and_learner_arguments_pass_through():
    learn = transfer_learner(
        make_dls(),
        make_mlp(),
        n_out=3,
        splitter=sequential_splitter(3),
        lr=slice(1e-3),
        train_bn=False,
        progress=False,
    )
    assert len(learn.layer_groups) == 3 and learn.lr == slice(1e-3) and learn.train_bn is False
    assert [[p.requires_grad for p in g] for g in learn.layer_groups] == [
        [False, False],
        [False, False],
        [True, True],
    ]


def test_bad_arguments_say_what_to_do():
    with pytest.raises(ValueError, match="weights"):
        transfer_learner(make_dls(), make_mlp(), n_out=3, weights="x")
    with pytest.raises(TypeError, match="arch"):
        transfer_learner(make_dls(), "resnet18", n_out=3)
    with pytest.raises(ValueError, match="n_out"):
        transfer_learner(make_dls(), make_mlp(), n_out=0)

    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.out = nn.Linear(8, 8), nn.Linear(8, 3)

        def forward(self, x):
            return self.out(self.body(x))

    with pytest.raises(TypeError, match="n_out=None"):
        transfer_learner(make_dls(), Custom(), n_out=3)
    with pytest.raises(TypeError, match="splitter"):
        transfer_learner(make_dls(), Custom(), n_out=None)
    custom = Custom()
    split = lambda m: [list(m.body.parameters()), list(m.out.parameters())]
    learn = transfer_learner(make_dls(), custom, n_out=None, splitter=split, progress=False)
    assert [p.requires_grad for p in custom.parameters()] == [False, False, True, True]
    with pytest.raises(TypeError, match="nn.Linear"):
        transfer_learner(make_dls(), nn.Sequential(nn.Linear(8, 3), nn.ReLU()), n_out=3)
    assert learn.model is custom
