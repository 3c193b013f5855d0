"""Bad input is a clear ValueError/TypeError naming the argument, raised before any training."""

import math

import pytest
import torch
from conftest import make_dls, make_mlp
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lrcycle import Callback, DataLoaders, Learner, sequential_splitter


def snapshot(model):
    return [t.clone() for t in model.state_dict().values()]


def assert_untouched(model, before):
    after = list(model.state_dict().values())
    assert all(torch.equal(a, b) for a, b in zip(after, before, strict=True))


class Typo(Callback):
    def after_bacth(self, learn):
        pass


BAD_FIT_CALLS = {
    "lr zero": (dict(lr=0.0), ValueError, "lr"),
    "lr negative": (dict(lr=-0.1), ValueError, "lr"),
    "lr nan": (dict(lr=math.nan), ValueError, "lr"),
    "lr inf": (dict(lr=math.inf), ValueError, "lr"),
    "lr string": (dict(lr="0.1"), TypeError, "lr"),
    "lr bool": (dict(lr=True), TypeError, "lr"),
    "lr sequence too long": (dict(lr=[0.1, 0.1]), ValueError, "lr"),
    "lr sequence with a zero": (dict(lr=[0.0]), ValueError, "lr"),
    "lr slice from zero": (dict(lr=slice(0, 0.1)), ValueError, "lr"),
    "lr slice with nan": (dict(lr=slice(math.nan)), ValueError, "lr"),
    "n_cycle zero": (dict(lr=0.1, n_cycle=0), ValueError, "n_cycle"),
    "n_cycle negative": (dict(lr=0.1, n_cycle=-2), ValueError, "n_cycle"),
    "n_cycle float": (dict(lr=0.1, n_cycle=1.5), ValueError, "n_cycle"),
    "wd negative": (dict(lr=0.1, wd=-1e-2), ValueError, "wd"),
    "wd nan": (dict(lr=0.1, wd=math.nan), ValueError, "wd"),
    "use_clr without cycle_len": (dict(lr=0.1, use_clr=(32, 5)), ValueError, "cycle_len"),
    "unknown hook name": (dict(lr=0.1, cbs=[Typo()]), ValueError, "after_bacth"),
    "callback class": (dict(lr=0.1, cbs=[Typo]), TypeError, "instances"),
}


@pytest.mark.parametrize("case", list(BAD_FIT_CALLS))
def test_bad_fit_arguments_fail_before_training(case):
    kwargs, error, name = BAD_FIT_CALLS[case]
    learn = Learner(make_dls(), make_mlp(), progress=False, device="cpu")
    before = snapshot(learn.model)
    with pytest.raises(error, match=name):
        learn.fit(**kwargs)
    assert learn.opt is None
    assert_untouched(learn.model, before)
    assert learn.recorder.losses == [] and learn.train_iter == 0


@pytest.mark.parametrize("case", ["lr nan", "lr sequence too long", "n_cycle zero", "unknown hook name"])
def test_bad_fit_after_a_fit_leaves_model_and_optimizer_as_they_were(case):
    kwargs, error, name = BAD_FIT_CALLS[case]
    learn = Learner(make_dls(), make_mlp(), progress=False, device="cpu")
    learn.fit(0.1, 1)
    before = snapshot(learn.model)
    opt_state = [t.clone() for s in learn.opt.state.values() for t in s.values() if torch.is_tensor(t)]
    hypers = [dict((k, v) for k, v in g.items() if k != "params") for g in learn.opt.param_groups]
    if "lr" in kwargs and kwargs["lr"] == 0.1:
        kwargs = {**kwargs, "lr": 0.5}  # a valid lr that must still not be applied
    with pytest.raises(error, match=name):
        learn.fit(**kwargs)
    assert_untouched(learn.model, before)
    after = [t for s in learn.opt.state.values() for t in s.values() if torch.is_tensor(t)]
    assert all(torch.equal(a, b) for a, b in zip(after, opt_state, strict=True))
    assert [dict((k, v) for k, v in g.items() if k != "params") for g in learn.opt.param_groups] == hypers


def test_lr_sequence_of_wrong_length_with_three_groups():
    learn = Learner(make_dls(), make_mlp(), splitter=sequential_splitter(3), progress=False)
    before = snapshot(learn.model)
    for lrs in ([0.1, 0.1], [0.1] * 4):
        with pytest.raises(ValueError, match=r"lr.*\(3\)"):
            learn.fit(lrs)
    assert learn.opt is None
    assert_untouched(learn.model, before)


def test_empty_training_loader_fails_before_training():
    empty = DataLoader(TensorDataset(torch.zeros(0, 8), torch.zeros(0, dtype=torch.long)), batch_size=4)
    dls = DataLoaders(empty, None, loss_func=nn.CrossEntropyLoss())
    learn = Learner(dls, make_mlp(), progress=False)
    before = snapshot(learn.model)
    with pytest.raises(ValueError, match="dls.train.*empty"):
        learn.fit(0.1)
    with pytest.raises(ValueError, match="dls.train.*empty"):
        learn.fit_epochs(1)
    assert learn.opt is None
    assert_untouched(learn.model, before)


def test_unsized_training_data_is_a_type_error():
    batches = ((torch.randn(4, 8), torch.zeros(4, dtype=torch.long)) for _ in range(3))
    learn = Learner(DataLoaders(batches, None), make_mlp(), loss_func=nn.CrossEntropyLoss(), progress=False)
    with pytest.raises(TypeError, match="dls.train"):
        learn.fit(0.1)
    assert learn.opt is None


def test_fit_epochs_checks_its_arguments():
    learn = Learner(make_dls(), make_mlp(), progress=False)
    with pytest.raises(ValueError, match="n_epoch"):
        learn.fit_epochs(0)
    with pytest.raises(ValueError, match="start_epoch"):
        learn.fit_epochs(2, start_epoch=2)
    assert learn.opt is None


def test_missing_loss_func_is_a_value_error_naming_the_batch_before_any_step():
    # no loss_func is allowed (a Hugging Face model computes its own loss, integer or float targets get a
    # default); a model whose output has none and whose targets fit no default (float targets [16] against
    # a [16, 3] prediction) fails at the first batch, before any step, with the batch's structure in the message
    dls = make_dls()
    x, y = dls.train.dataset.tensors
    dls = DataLoaders(DataLoader(TensorDataset(x, y.float()), batch_size=16))
    learn = Learner(dls, make_mlp(), progress=False, device="cpu")
    before = snapshot(learn.model)
    with pytest.raises(ValueError, match=r"loss_func.*tuple\(Tensor\[16\]\)"):
        learn.fit(0.1, 1)
    assert_untouched(learn.model, before)
    with pytest.raises(TypeError, match="loss_func"):
        Learner(dls, make_mlp(), loss_func="mse", progress=False)


@pytest.mark.parametrize("bad", ["tuple", "dataloader", "none"])
def test_wrong_dls_type_is_a_type_error(bad):
    dls = make_dls()
    value = {"tuple": (dls.train, dls.valid), "dataloader": dls.train, "none": None}[bad]
    with pytest.raises(TypeError, match="dls"):
        Learner(value, make_mlp(), loss_func=nn.CrossEntropyLoss())


def test_model_that_is_not_a_module_is_a_type_error():
    with pytest.raises(TypeError, match="model"):
        Learner(make_dls(), lambda x: x)


def test_a_model_without_parameters_is_a_value_error_naming_the_model():
    with pytest.raises(ValueError, match="model: ReLU has no parameters to train"):
        Learner(make_dls(), nn.ReLU())


@pytest.mark.parametrize("lr", [0, -1e-3, math.nan, math.inf, [1e-3, 1e-3]])
def test_bad_learner_lr_is_rejected_at_construction(lr):
    with pytest.raises(ValueError, match="lr"):
        Learner(make_dls(), make_mlp(), lr=lr)


@pytest.mark.parametrize("moms", [(0.95, 0.85), (0.95, 1.2, 0.95), "abc"])
def test_bad_learner_moms_are_rejected_at_construction(moms):
    with pytest.raises(ValueError, match="moms"):
        Learner(make_dls(), make_mlp(), moms=moms)


def test_unknown_hook_on_learner_cbs_is_rejected_at_construction():
    with pytest.raises(ValueError, match="after_bacth"):
        Learner(make_dls(), make_mlp(), cbs=[Typo()])


@pytest.mark.parametrize("start_epoch", [-1, 3, 1.5, True])
def test_a_start_epoch_outside_the_fit_fails_before_the_optimizer_is_built(start_epoch):
    learn = Learner(make_dls(), make_mlp(), progress=False)
    before = [p.detach().clone() for p in learn.model.parameters()]
    with pytest.raises(ValueError, match="start_epoch"):
        learn.fit_one_cycle(3, 1e-2, start_epoch=start_epoch)
    assert learn.opt is None
    assert all(torch.equal(a, b) for a, b in zip(before, learn.model.parameters()))


def test_best_save_name_without_validation_data_fails_before_training(tmp_path):
    dls = make_dls()
    dls.valid = None
    learn = Learner(dls, make_mlp(), progress=False, path=tmp_path)
    with pytest.raises(ValueError, match="best_save_name"):
        learn.fit(1e-2, 2, best_save_name="best")
    assert learn.opt is None and not (tmp_path / "models").exists()


def test_numpy_numbers_are_taken_like_python_numbers():
    import numpy as np

    learn = Learner(make_dls(), make_mlp(), progress=False)
    learn.fit_one_cycle(np.int64(1), np.float32(1e-2), moms=np.array([0.95, 0.85, 0.95]), wd=np.float32(1e-4))
    assert len(learn.recorder.epochs) == 1
    assert learn.opt.param_groups[0]["weight_decay"] == pytest.approx(1e-4)
    with pytest.raises(ValueError, match="moms"):
        learn.fit_one_cycle(1, 1e-2, moms=np.array([0.95, 1.5, 0.95]))
