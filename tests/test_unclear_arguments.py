"""Arguments that used to pass in silence or fail deep inside torch get a clear error, raised before anything changes:
flags given as strings, an empty or non-loader validation set, a suggestion function that returns no lr, a loss
without a gradient graph or a model with nothing left to train, and a fit whose first batch fails."""

import copy

import pytest
import torch
import torch.nn.functional as F
from conftest import make_dls, make_mlp
from torch import nn

from lrcycle import DataLoaders, Learner


def learner(**kwargs):
    return Learner(make_dls(), make_mlp(), opt_func=torch.optim.Adam, **{"progress": False, **kwargs})


def weights(learn):
    return {k: v.clone() for k, v in learn.model.state_dict().items()}


def assert_same_weights(a, b):
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("arg", ["progress", "train_bn"])
def test_flags_given_as_strings_are_refused(arg):
    with pytest.raises(TypeError, match=f"{arg}: expected True or False, got 'no'"):
        learner(**{arg: "no"})


def test_an_empty_validation_loader_is_refused_at_the_fit_call():
    train = make_dls().train
    empty = DataLoaders(train, torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.zeros(0, 8))))
    learn = Learner(empty, make_mlp(), progress=False)
    before = weights(learn)
    for call in (lambda: learn.fit(0.01, 1), lambda: learn.fit_one_cycle(1, 0.01), lambda: learn.validate()):
        with pytest.raises(ValueError, match="validation data loader is empty"):
            call()
    with pytest.raises(ValueError, match="validation data loader is empty"):
        learn.lr_tune("fit_one_cycle", 1, lr=0.01)
    assert learn.opt is None and learn.recorder.iters == []  # nothing was built or recorded
    assert_same_weights(weights(learn), before)


def test_get_preds_of_something_that_is_not_a_loader_says_so():
    learn = learner()
    with pytest.raises(TypeError, match="dl: expected a data loader \\(an iterable of batches\\), got int"):
        learn.get_preds(dl=5)
    with pytest.raises(TypeError, match="dl: expected a data loader"):
        learn.validate(dl="valid")


def test_a_suggestion_function_returning_a_string_is_refused():
    learn = learner()
    learn.fit(0.01, 1)
    before, suggestions = weights(learn), learn.recorder.suggestions

    def words(lrs, losses):
        return "1e-3"

    with pytest.raises(TypeError, match="suggest_funcs: words returned '1e-3'"):
        learn.lr_find(num_it=5, suggest_funcs=[words])
    assert_same_weights(weights(learn), before)
    assert learn.recorder.suggestions == suggestions


@pytest.mark.parametrize(
    "loss_func, dtype",
    [
        (lambda pred, y: (pred.argmax(1) == y).sum(), "torch.int64"),
        (lambda pred, y: F.cross_entropy(pred, y).detach(), "torch.float32"),
        (lambda pred, y: torch.tensor(F.cross_entropy(pred, y).item()), "torch.float32"),
    ],
    ids=["integer", "detached", "item"],
)
def test_a_loss_without_a_graph_names_loss_func(loss_func, dtype):
    learn = learner(loss_func=loss_func)
    before = weights(learn)
    with pytest.raises(ValueError, match="loss_func: .* gave a loss without a gradient graph") as error:
        learn.fit(0.01, 1)
    assert f"a {dtype} tensor with requires_grad=False" in str(error.value)
    assert "6 of the model's 6 parameter tensors train" in str(error.value)
    assert isinstance(error.value.__cause__, RuntimeError)  # torch's own message stays in the chain
    assert_same_weights(weights(learn), before)


def test_a_model_with_every_parameter_frozen_says_so():
    learn = learner()
    learn.model.requires_grad_(False)  # every parameter frozen by hand
    before = weights(learn)
    with pytest.raises(ValueError, match="every one of the model's 6 parameter tensors is frozen") as error:
        learn.fit(0.01, 1)
    assert "loss_func" in str(error.value) and "learn.unfreeze()" in str(error.value)
    assert_same_weights(weights(learn), before)


class BadFirstBatch:
    """A training loader whose first batch does not fit the model (5 features instead of 8)."""

    def __init__(self, good):
        self.good = good

    def __len__(self):
        return len(self.good)

    def __iter__(self):
        yield torch.randn(4, 5), torch.zeros(4, dtype=torch.long)
        yield from self.good


def test_a_bad_first_batch_leaves_the_recorder_history_and_the_modes_as_they_were():
    dls = make_dls()
    model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
    learn = Learner(dls, model, progress=False)
    learn.fit(0.01, 2)
    history = copy.deepcopy(learn.recorder.state_dict())
    modes = [m.training for m in learn.model.modules()]
    assert not any(modes)  # left in eval mode by the last validation
    before = weights(learn)
    learn.dls = DataLoaders(BadFirstBatch(dls.train), dls.valid)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        learn.fit(0.01, 1)
    assert learn.recorder.state_dict() == history
    assert [m.training for m in learn.model.modules()] == modes
    assert_same_weights(weights(learn), before)
