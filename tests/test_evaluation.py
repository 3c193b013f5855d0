"""The one evaluation loop: eval mode and no gradients inside, the previous mode back on every exit."""

import contextlib

import pytest
import torch
from conftest import make_dls, make_mlp

from lrcycle import Learner
from lrcycle.evaluation import eval_batches, valid_loss


class Stop(Exception):
    pass


@pytest.mark.parametrize("training", [True, False])
def test_inside_the_model_is_in_eval_mode_without_gradients_and_its_mode_comes_back(training):
    model = make_mlp().train(training)
    dl = [(torch.randn(4, 8), torch.tensor([0, 1, 2, 0]))]
    with eval_batches(model, dl, torch.device("cpu")) as batches:
        for xb, _ in batches:
            assert not model.training and not any(m.training for m in model.modules())
            assert not torch.is_grad_enabled() and not model(xb).requires_grad
    assert torch.is_grad_enabled()
    assert all(m.training == training for m in model.modules())


@pytest.mark.parametrize("leave", ["break", "exception"])
def test_the_mode_and_gradients_come_back_when_the_loop_stops_early(leave):
    model = make_mlp().train()
    dl = [(torch.randn(2, 8), torch.tensor([0, 1]))] * 3
    seen = 0
    with pytest.raises(Stop) if leave == "exception" else contextlib.nullcontext():
        with eval_batches(model, dl, torch.device("cpu")) as batches:
            for _ in batches:
                seen += 1
                if leave == "exception":
                    raise Stop
                break
    assert seen == 1 and model.training and torch.is_grad_enabled()


def test_batches_are_moved_to_the_device_and_left_alone_when_already_there():
    x, y = torch.randn(3, 8), torch.tensor([0, 1, 2])
    with eval_batches(make_mlp(), [(x, y)], torch.device("meta")) as batches:
        ((xb, yb),) = list(batches)
    assert xb.device.type == "meta" and yb.device.type == "meta" and xb.shape == x.shape
    with eval_batches(make_mlp(), [(x, y)], torch.device("cpu")) as batches:
        ((xb, yb),) = list(batches)
    assert xb is x and yb is y


def test_validate_get_preds_and_the_averaging_loss_leave_the_models_mode_as_it_was():
    learn = Learner(make_dls(), make_mlp(), progress=False, device="cpu")
    for training in (True, False):
        learn.model.train(training)
        learn.validate()
        learn.get_preds()
        valid_loss(learn)
        assert all(m.training == training for m in learn.model.modules())


def test_the_averaging_loss_equals_the_validation_loss():
    learn = Learner(make_dls(n_valid=33), make_mlp(), progress=False, device="cpu")
    model, loss_func = learn.model.eval(), torch.nn.CrossEntropyLoss(reduction="sum")
    with torch.no_grad():
        total = sum(loss_func(model(xb), yb).item() for xb, yb in learn.dls.valid)
    assert valid_loss(learn) == pytest.approx(total / 33, rel=1e-6)
    assert learn.validate()[0] == pytest.approx(total / 33, rel=1e-6)
