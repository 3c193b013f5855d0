"""`learn.predict` answers like fastai's: a classifier's (decoded class, probabilities), a regressor's value, for
an item given as a tensor, a numpy array or a list; `get_preds(with_decoded=True)` adds the decoded classes.
Every expectation is the model run here by hand, with softmax, sigmoid and argmax written out."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import make_dls, make_mlp
from torch import nn

from lrcycle import DataLoaders, Learner


def by_hand(model, x):
    model.eval()
    with torch.no_grad():
        out = model(x)
    model.train()
    return out


def learner(loss_func, n_out=3, targets="class"):
    g = torch.Generator().manual_seed(0)
    x_train, x_valid = torch.randn(48, 8, generator=g), torch.randn(16, 8, generator=g)
    if targets == "class":
        y_train, y_valid = torch.randint(0, n_out, (48,), generator=g), torch.randint(0, n_out, (16,), generator=g)
    else:
        y_train, y_valid = torch.randn(48, n_out, generator=g), torch.randn(16, n_out, generator=g)
    dls = DataLoaders.from_tensors(x_train, y_train, x_valid, y_valid, bs=16)
    model = make_mlp(n_out=n_out) if loss_func is not F.nll_loss else nn.Sequential(make_mlp(), nn.LogSoftmax(-1))
    return Learner(dls, model, loss_func=loss_func, progress=False, device="cpu"), x_valid


@pytest.mark.parametrize("loss_func", [nn.CrossEntropyLoss(), F.cross_entropy, nn.NLLLoss(), F.nll_loss])
def test_a_softmax_classifier_answers_class_and_probabilities(loss_func):
    if loss_func is F.nll_loss or isinstance(loss_func, nn.NLLLoss):
        learn, x = learner(F.nll_loss)
        learn.loss_func = loss_func
    else:
        learn, x = learner(loss_func)
    out = by_hand(learn.model, x[:4])
    exp = torch.exp(out - out.max(-1, keepdim=True).values)
    expected_probs = exp / exp.sum(-1, keepdim=True)
    item_class, item_probs = learn.predict(x[1])
    torch.testing.assert_close(item_probs, expected_probs[1])
    assert item_class.ndim == 0 and item_class.item() == int(np.argmax(expected_probs[1].numpy()))
    classes, probs = learn.predict(x[:4])
    torch.testing.assert_close(probs, expected_probs)
    assert classes.tolist() == [int(np.argmax(row)) for row in expected_probs.numpy()]


def test_an_item_as_numpy_float64_or_a_list_answers_as_the_tensor_does():
    learn, x = learner(nn.CrossEntropyLoss())
    item = x[2]
    as_tensor = learn.predict(item)
    for other in (item.double().numpy(), item.numpy(), item.tolist()):
        cls, probs = learn.predict(other)
        assert probs.dtype == torch.float32 and torch.equal(probs, as_tensor[1]) and cls == as_tensor[0]


def test_one_logit_with_bce_answers_sigmoid_and_a_0_1_class():
    learn, x = learner(nn.BCEWithLogitsLoss(), n_out=1, targets="float")
    out = by_hand(learn.model, x[:6])
    classes, probs = learn.predict(x[:6])
    expected = 1 / (1 + torch.exp(-out))
    torch.testing.assert_close(probs, expected)
    assert classes.tolist() == [int(v > 0.5) for v in expected[:, 0].tolist()]
    item_class, item_probs = learn.predict(x[0])
    assert item_class.ndim == 0 and item_class.item() == int(expected[0, 0] > 0.5)


def test_several_labels_with_bce_answer_a_mask():
    learn, x = learner(nn.BCEWithLogitsLoss(), n_out=4, targets="float")
    out = by_hand(learn.model, x[:5])
    mask, probs = learn.predict(x[:5])
    torch.testing.assert_close(probs, 1 / (1 + torch.exp(-out)))
    assert mask.dtype == torch.bool and mask.tolist() == (out > 0).tolist()


def test_a_regressor_answers_its_output():
    learn, x = learner(nn.MSELoss(), n_out=2, targets="float")
    assert torch.equal(learn.predict(x[3].double().numpy()), by_hand(learn.model, x[3:4])[0])
    assert torch.equal(learn.predict(x[:3].tolist()), by_hand(learn.model, x[:3]))


def test_get_preds_with_decoded_adds_the_decoded_column():
    learn = Learner(make_dls(), make_mlp(), progress=False, device="cpu")
    preds, targets, decoded = learn.get_preds(with_decoded=True)
    x = learn.dls.valid.dataset.tensors[0]
    torch.testing.assert_close(preds, by_hand(learn.model, x))
    assert decoded.tolist() == [int(np.argmax(row)) for row in preds.numpy()]
    inputs, preds2, targets2, decoded2 = learn.get_preds(with_input=True, with_decoded=True)
    assert torch.equal(inputs, x) and torch.equal(preds2, preds) and torch.equal(decoded2, decoded)
    assert torch.equal(targets2, targets)
    regressor, xr = learner(nn.MSELoss(), n_out=2, targets="float")
    preds, _, decoded = regressor.get_preds(with_decoded=True)
    assert torch.equal(decoded, preds) and torch.equal(preds, by_hand(regressor.model, xr))
