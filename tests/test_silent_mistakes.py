"""Mistakes that used to pass silently are errors or warnings now (issue 16), and a fit that fails before
its first optimizer step leaves the model bitwise as it was, buffers included."""

import warnings

import pytest
import torch
from conftest import make_dls, make_mlp
from torch import nn

from lrcycle import Callback, Learner, NonFiniteLossWarning, accuracy


def bn_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))


def state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_bitwise_equal(before, model):
    after = model.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), k


def test_cycle_mult_without_cycle_len_is_an_error():
    learn = Learner(make_dls(), make_mlp(), progress=False)
    with pytest.raises(ValueError, match="cycle_mult: needs cycle_len"):
        learn.fit(1e-2, 2, cycle_mult=2)
    assert learn.opt is None and learn.recorder.losses == []


def test_a_single_metric_function_is_one_metric():
    learn = Learner(make_dls(), make_mlp(), metrics=accuracy, progress=False)
    learn.fit(0.05, 1)
    preds, targets = learn.get_preds()
    expected = (preds.argmax(1) == targets).float().mean().item()
    assert learn.recorder.epochs[-1]["accuracy"] == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("metrics", ["accuracy", ["accuracy"], [accuracy, 3]])
def test_metrics_that_are_not_functions_are_a_type_error_at_construction(metrics):
    with pytest.raises(TypeError, match="metrics"):
        Learner(make_dls(), make_mlp(), metrics=metrics, progress=False)


def first_non_finite_iteration_of_a_raw_loop(lr, dls, model):
    """The same fit written as a plain PyTorch loop: the 0-based step whose loss is first not finite."""
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    step = 0
    for xb, yb in dls.train:
        loss = nn.functional.cross_entropy(model(xb), yb)
        if not torch.isfinite(loss):
            return step
        loss.backward()
        opt.step()
        opt.zero_grad()
        step += 1
    return None


def test_a_fit_whose_loss_becomes_non_finite_warns_naming_the_first_iteration():
    lr = 1e6
    expected = first_non_finite_iteration_of_a_raw_loop(lr, make_dls(shuffle=False), make_mlp())
    assert expected is not None
    learn = Learner(make_dls(shuffle=False), make_mlp(), progress=False)
    with pytest.warns(NonFiniteLossWarning, match=f"at iteration {expected} ") as record:
        learn.fit(lr, 1)
    assert len(record) == 1
    assert "TerminateOnNaNCallback" in str(record[0].message)


@pytest.mark.filterwarnings("ignore::lrcycle.finder.suggest.SuggestionWarning")  # a NaN curve has nothing to suggest
def test_a_finite_fit_and_a_diverging_range_test_do_not_warn():
    calls = []

    def loss_going_nan(pred, y):  # finite for the first 10 batches, NaN after: a diverging range test
        calls.append(1)
        loss = nn.functional.cross_entropy(pred, y)
        return loss if len(calls) <= 10 else loss * float("nan")

    learn = Learner(make_dls(), make_mlp(), loss_func=loss_going_nan, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NonFiniteLossWarning)
        learn.fit(0.05, 1)  # 6 batches, all finite
        result = learn.lr_find(num_it=30, stop_div=False)
    assert any(loss != loss for loss in result.losses)  # it did diverge


@pytest.mark.parametrize(
    "loss_func, error, match",
    [
        (nn.CrossEntropyLoss(reduction="none"), ValueError, r"loss_func: .*shape \(16,\)"),
        (lambda pred, y: nn.functional.cross_entropy(pred, y).item(), TypeError, "loss_func: .*float"),
    ],
    ids=["reduction-none", "python-float"],
)
def test_a_loss_that_is_not_a_scalar_tensor_is_a_clear_error_and_changes_nothing(loss_func, error, match):
    model = bn_model()
    before = state(model)
    learn = Learner(make_dls(), model, loss_func=loss_func, progress=False)
    with pytest.raises(error, match=match):
        learn.fit(0.1, 1)
    assert_bitwise_equal(before, model)  # the forward pass had moved the BatchNorm statistics
    assert model.training  # as it was built


def test_an_error_in_the_first_batchs_loss_leaves_the_buffers_as_they_were():
    def broken_loss(pred, y):
        raise RuntimeError("my loss is broken")

    model = bn_model()
    before = state(model)
    learn = Learner(make_dls(), model, loss_func=broken_loss, progress=False)
    with pytest.raises(RuntimeError, match="my loss is broken"):
        learn.fit_one_cycle(1, 0.1)
    assert_bitwise_equal(before, model)


def test_an_interrupt_before_the_first_step_leaves_the_buffers_as_they_were():
    class CtrlC(Callback):
        def before_backward(self, learn):
            raise KeyboardInterrupt

    model = bn_model()
    before = state(model)
    learn = Learner(make_dls(), model, progress=False)
    with pytest.raises(KeyboardInterrupt):
        learn.fit(0.1, 1, cbs=[CtrlC()])
    assert_bitwise_equal(before, model)


def test_a_failure_after_the_first_step_keeps_what_the_steps_did():
    """The buffers are not put back once a step has changed the parameters (they belong together)."""

    class FailSecondBatch(Callback):
        def before_batch(self, learn):
            if learn.train_iter == 1:
                raise RuntimeError("stop")

    dls = make_dls(shuffle=False)
    model = bn_model()
    reference = bn_model()  # the first step alone, as a raw loop
    opt = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
    xb, yb = next(iter(dls.train))
    nn.functional.cross_entropy(reference(xb), yb).backward()
    opt.step()
    learn = Learner(dls, model, progress=False)
    with pytest.raises(RuntimeError, match="stop"):
        learn.fit(0.1, 1, cbs=[FailSecondBatch()])
    assert_bitwise_equal(state(reference), model)


def test_wds_is_fastai_07s_name_for_wd():
    learn = Learner(make_dls(), make_mlp(), progress=False)
    learn.fit(0.05, 1, wds=0.01)
    assert [g["weight_decay"] for g in learn.opt.param_groups] == [0.01]
    df = learn.preview("fit", 0.05, 1, wds=0.02)
    assert len(df) == len(learn.dls.train)
    with pytest.raises(ValueError, match="wd/wds"):
        learn.fit(0.05, 1, wd=0.01, wds=0.02)


class EventSpy(Callback):
    def __init__(self):
        self.seen = []

    def before_batch(self, learn):
        self.seen.append("before_batch")

    def after_pred(self, learn):
        self.seen.append("after_pred")


def test_predict_one_item_or_a_batch_in_eval_mode_without_events():
    model = bn_model()
    spy = EventSpy()
    learn = Learner(make_dls(), model, cbs=[spy], progress=False)
    learn.fit(0.1, 1)
    spy.seen.clear()
    x = make_dls(seed=1).valid.dataset.tensors[0][:5]
    model.eval()
    with torch.no_grad():
        expected, expected_item = model(x), model(x[2:3])[0]
    model.train()
    (batch_class, batch), (item_class, item) = learn.predict(x), learn.predict(x[2])  # a classifier's answer
    assert torch.equal(batch, torch.softmax(expected, -1)) and torch.equal(item, torch.softmax(expected_item, -1))
    assert torch.equal(batch_class, expected.argmax(-1)) and item_class.item() == expected_item.argmax().item()
    assert item.shape == (3,) and not batch.requires_grad
    assert model.training and spy.seen == []
