"""Batches of any shape through fit, lr_find, validate, get_preds and metrics, each against a plain torch loop."""

import dataclasses
from collections import OrderedDict, namedtuple

import pytest
import torch
from test_lr_find import assert_same, capture
from torch import nn

from lrcycle import CancelFitException, DataLoaders, GradientAccumulation, Learner, accuracy
from lrcycle.batches import describe, to_device

N_TRAIN, N_VALID, BS = 48, 24, 8


def make_data(seed=0):
    g = torch.Generator().manual_seed(seed)
    n = N_TRAIN + N_VALID
    img, meta = torch.randn(n, 6, generator=g), torch.randn(n, 2, generator=g)
    y = (img[:, :3].sum(1) + meta[:, 0] > 0).long() + (meta[:, 1] > 1).long()
    return img, meta, y


# ---- tuple batches with two inputs -------------------------------------------------------------------------
class TwoInputs(nn.Module):
    """`forward(x_img, x_meta)`: two inputs, as a multi-input model has."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.img, self.meta, self.head = nn.Linear(6, 8), nn.Linear(2, 8), nn.Linear(8, 3)

    def forward(self, x_img, x_meta):
        return self.head(torch.relu(self.img(x_img) + self.meta(x_meta)))


def two_input_batches():
    img, meta, y = make_data()
    batches = [(img[i : i + BS], meta[i : i + BS], y[i : i + BS]) for i in range(0, len(y), BS)]
    return batches[: N_TRAIN // BS], batches[N_TRAIN // BS :]


def test_tuple_batches_with_two_inputs_train_like_a_raw_loop_and_evaluate():
    train, valid = two_input_batches()
    learn = Learner(DataLoaders(train, valid), TwoInputs(), loss_func=nn.CrossEntropyLoss(), n_inp=2,
                    metrics=[accuracy], progress=False, device="cpu")  # fmt: skip
    learn.fit(0.1, 2)

    model = TwoInputs()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for _ in range(2):
        for img, meta, y in train:
            loss = nn.functional.cross_entropy(model(img, meta), y)
            loss.backward()
            opt.step()
            opt.zero_grad()
            losses.append(loss.item())
    assert learn.recorder.losses == losses
    assert all(torch.equal(a, b) for a, b in zip(learn.model.parameters(), model.parameters()))

    with torch.no_grad():
        logits = torch.cat([model(img, meta) for img, meta, _ in valid])
    targets = torch.cat([y for *_, y in valid])
    preds, targs = learn.get_preds()
    assert torch.equal(preds, logits) and torch.equal(targs, targets)
    valid_loss, acc = learn.validate()
    assert valid_loss == pytest.approx(nn.functional.cross_entropy(logits, targets).item(), rel=1e-6)
    assert acc == pytest.approx((logits.argmax(1) == targets).float().mean().item(), rel=1e-6)
    inputs, _, _ = learn.get_preds(with_input=True)
    assert torch.equal(inputs[0], torch.cat([b[0] for b in valid])) and torch.equal(
        inputs[1], torch.cat([b[1] for b in valid])
    )


def test_tuple_batches_with_two_inputs_restore_exactly_after_lr_find():
    train, valid = two_input_batches()
    learn = Learner(DataLoaders(train, valid), TwoInputs(), loss_func=nn.CrossEntropyLoss(), n_inp=2,
                    progress=False, device="cpu")  # fmt: skip
    learn.fit(0.01, 1)
    before = capture(learn)
    learn.lr_find(start_lr=1e-4, end_lr=10, num_it=12)
    assert len(learn.recorder.losses) >= 2
    assert_same(before, capture(learn))


def test_several_targets_go_to_the_loss_function_in_order():
    img, meta, y = make_data()
    batches = [(img[i : i + BS], y[i : i + BS], meta[i : i + BS, 0]) for i in range(0, N_TRAIN, BS)]
    seen = []

    def loss_func(pred, target, weight):  # two targets: a class and a per-sample weight
        seen.append((target, weight))
        return (nn.functional.cross_entropy(pred, target, reduction="none") * weight.abs()).mean()

    learn = Learner(DataLoaders(batches, None), nn.Linear(6, 3), loss_func=loss_func, n_inp=1, progress=False)
    learn.fit(0.1, 1)
    assert all(t is b[1] and w is b[2] for (t, w), b in zip(seen, batches, strict=True))


# ---- mapping batches with a model that computes its own loss -------------------------------------------------
@dataclasses.dataclass
class Output:
    """What a Hugging Face model returns, in miniature: `loss` (when labels are given) and `logits`."""

    logits: torch.Tensor
    loss: torch.Tensor | None = None


class DictModel(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed, self.head = nn.Embedding(20, 8), nn.Linear(8, 3)

    def forward(self, input_ids, attention_mask, labels=None):
        h = (self.embed(input_ids) * attention_mask[..., None]).sum(1) / attention_mask.sum(1, keepdim=True)
        logits = self.head(h)
        loss = None if labels is None else nn.functional.cross_entropy(logits, labels)
        return Output(logits=logits, loss=loss)


def dict_batches(n=N_TRAIN + N_VALID, seq=5):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 20, (n, seq), generator=g)
    mask = (torch.rand(n, seq, generator=g) > 0.2).long()
    mask[:, 0] = 1
    labels = ids[:, 0] % 3
    batches = [
        {"input_ids": ids[i : i + BS], "attention_mask": mask[i : i + BS], "labels": labels[i : i + BS]}
        for i in range(0, n, BS)
    ]
    return batches[: N_TRAIN // BS], batches[N_TRAIN // BS :]


def raw_dict_fit(model, batches, n_epoch, lr):
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    losses = []
    for _ in range(n_epoch):
        for batch in batches:
            loss = model(**batch).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
            losses.append(loss.item())
    return losses


def test_dict_batches_use_the_outputs_loss_and_logits():
    train, valid = dict_batches()
    learn = Learner(DataLoaders(train, valid), DictModel(), metrics=[accuracy], progress=False, device="cpu")
    learn.fit(0.1, 2)
    model = DictModel()
    assert learn.recorder.losses == raw_dict_fit(model, train, 2, 0.1)
    assert all(torch.equal(a, b) for a, b in zip(learn.model.parameters(), model.parameters()))

    with torch.no_grad():
        outs = [model(**b) for b in valid]
    logits, targets = torch.cat([o.logits for o in outs]), torch.cat([b["labels"] for b in valid])
    preds, targs = learn.get_preds()
    assert torch.equal(preds, logits) and torch.equal(targs, targets)
    valid_loss, acc = learn.validate()
    expected_loss = sum(o.loss.item() * len(b["labels"]) for o, b in zip(outs, valid)) / len(targets)
    assert valid_loss == pytest.approx(expected_loss, rel=1e-6)
    assert acc == pytest.approx((logits.argmax(1) == targets).float().mean().item(), rel=1e-6)
    assert accuracy(outs[0], valid[0]["labels"]) == (outs[0].logits.argmax(1) == valid[0]["labels"]).float().mean()
    inputs, _, _ = learn.get_preds(with_input=True)
    assert torch.equal(inputs["input_ids"], torch.cat([b["input_ids"] for b in valid]))


def test_dict_batches_restore_exactly_after_lr_find():
    train, valid = dict_batches()
    learn = Learner(DataLoaders(train, valid), DictModel(), progress=False, device="cpu")
    learn.fit(0.01, 1)
    before = capture(learn)
    result = learn.lr_find(start_lr=1e-4, end_lr=10, num_it=12)
    assert len(result.losses) >= 2
    assert_same(before, capture(learn))


def test_dict_batches_with_a_loss_func_get_the_whole_batch():
    train, _ = dict_batches()
    seen = []

    def loss_func(pred, batch):
        seen.append(batch)
        return nn.functional.cross_entropy(pred.logits, batch["labels"]) * 2

    learn = Learner(DataLoaders(train, None), DictModel(), loss_func=loss_func, progress=False)
    learn.fit(0.1, 1)
    assert [b["labels"] for b in seen] == [b["labels"] for b in train]
    model = DictModel()
    expected = [2 * nn.functional.cross_entropy(model(**b).logits, b["labels"]).item() for b in train[:1]]
    assert learn.recorder.losses[0] == pytest.approx(expected[0], rel=1e-6)


def test_gradient_accumulation_on_dict_batches_equals_the_joined_batch_step():
    train, _ = dict_batches()
    learn = Learner(DataLoaders(train[:4], None), DictModel(), opt_func=torch.optim.SGD, progress=False)
    learn.fit(0.1, 1, cbs=[GradientAccumulation(2)])
    model = DictModel()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    losses = []
    for first, second in (train[0:2], train[2:4]):
        joined = {k: torch.cat([first[k], second[k]]) for k in first}
        loss = model(**joined).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert learn.train_iter == 2
    assert learn.recorder.losses == pytest.approx(losses, rel=1e-5)
    for a, b in zip(learn.model.parameters(), model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


# ---- device moves ----------------------------------------------------------------------------------------------
Pair = namedtuple("Pair", "a b")


@dataclasses.dataclass
class Holder:
    x: torch.Tensor
    name: str = "h"


def test_to_device_moves_every_tensor_of_a_nested_structure_and_keeps_the_containers():
    t = torch.ones(2)
    batch = ({"ids": t, "extra": [t, (t, 3)], "tag": "s"}, Pair(t, t), Holder(t), OrderedDict(k=t), t)
    moved = to_device(batch, torch.device("meta"))
    ids = moved[0]
    assert isinstance(moved, tuple) and isinstance(moved[1], Pair) and isinstance(moved[2], Holder)
    assert isinstance(moved[3], OrderedDict) and ids["tag"] == "s" and ids["extra"][1][1] == 3
    tensors = [ids["ids"], ids["extra"][0], ids["extra"][1][0], *moved[1], moved[2].x, moved[3]["k"], moved[4]]
    assert all(x.device.type == "meta" for x in tensors) and moved[2].name == "h"
    assert to_device(batch, torch.device("cpu"))[4] is t  # already there: the same tensor


class RecordDevices:
    order = 0

    def __init__(self):
        self.seen = []

    def before_batch(self, learn):
        self.seen.append((learn.xb, learn.yb))
        raise CancelFitException


def test_the_learner_moves_nested_batches_to_its_device_before_any_hook_sees_them():
    # a fake device: `meta` tensors carry no data, and the fit is cancelled before the model runs
    t = torch.zeros(4, 3)
    batches = [(({"a": t, "b": [t]}, t), t.long()[:, 0])]
    spy = RecordDevices()
    learn = Learner(DataLoaders(batches, None), nn.Linear(3, 2), loss_func=nn.CrossEntropyLoss(), n_inp=1,
                    progress=False, device="meta")  # fmt: skip
    learn.fit(0.1, 1, cbs=[spy])
    ((xb, yb),) = spy.seen
    (((mapping, tensor),),) = (xb,)
    assert mapping["a"].device.type == "meta" and mapping["b"][0].device.type == "meta"
    assert tensor.device.type == "meta" and yb[0].device.type == "meta"


class CountsTo(nn.Linear):
    """A model that counts its `.to` calls."""

    calls = 0

    def to(self, *args, **kwargs):
        CountsTo.calls += 1
        return super().to(*args, **kwargs)


def test_the_learner_moves_the_model_only_when_a_parameter_or_buffer_is_elsewhere():
    dls = DataLoaders([(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long))], None)
    model = CountsTo(3, 2)
    weight = model.weight
    Learner(dls, model, loss_func=nn.CrossEntropyLoss(), progress=False, device="cpu")
    assert CountsTo.calls == 0 and model.weight is weight  # all on the device already: left alone
    model.register_buffer("stat", torch.zeros(2, device="meta"))  # one buffer elsewhere
    Learner(dls, model, loss_func=nn.CrossEntropyLoss(), progress=False, device="meta")
    assert CountsTo.calls == 1 and model.weight.device.type == "meta" and model.bias.device.type == "meta"


# ---- errors that name the batch ------------------------------------------------------------------------------
def test_a_batch_that_is_neither_a_tuple_nor_a_mapping_is_a_type_error_describing_it():
    learn = Learner(DataLoaders([torch.zeros(4, 3)], None), nn.Linear(3, 2), loss_func=nn.MSELoss(), progress=False)
    with pytest.raises(TypeError, match=r"batch: expected a tuple/list.*Tensor\[4, 3\]"):
        learn.fit(0.1, 1)


def test_n_inp_larger_than_the_batch_is_a_value_error_describing_it():
    batches = [(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long))]
    learn = Learner(DataLoaders(batches, None), nn.Linear(3, 2), loss_func=nn.CrossEntropyLoss(), n_inp=3,
                    progress=False)  # fmt: skip
    with pytest.raises(ValueError, match=r"n_inp=3.*tuple\(Tensor\[4, 3\], Tensor\[4\]\)"):
        learn.fit(0.1, 1)
    with pytest.raises(ValueError, match="n_inp"):
        Learner(DataLoaders(batches, None), nn.Linear(3, 2), loss_func=nn.CrossEntropyLoss(), n_inp=0)


def test_a_dict_batch_whose_output_has_no_loss_and_no_loss_func_names_the_batch():
    train, _ = dict_batches()
    train = [{k: v for k, v in b.items() if k != "labels"} for b in train]
    learn = Learner(DataLoaders(train, None), DictModel(), progress=False)
    with pytest.raises(ValueError, match=r"loss_func: none given.*Output.*'input_ids': Tensor\[8, 5\]"):
        learn.fit(0.1, 1)


class PerItemLossModel(DictModel):
    """Returns an unreduced (per-item) loss, as a model built with reduction='none' would."""

    def forward(self, input_ids, attention_mask, labels=None):
        out = super().forward(input_ids, attention_mask)
        return Output(out.logits, nn.functional.cross_entropy(out.logits, labels, reduction="none"))


def test_an_outputs_loss_that_is_not_a_scalar_is_a_value_error_before_any_step():
    train, _ = dict_batches()
    model = PerItemLossModel()
    before = [p.detach().clone() for p in model.parameters()]
    learn = Learner(DataLoaders(train, None), model, progress=False)
    with pytest.raises(ValueError, match=r"loss_func: none given; the output's loss is a tensor of shape \(8,\)"):
        learn.fit(0.1, 1)
    assert learn.train_iter == 0 and all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_describe_shows_nested_structures():
    assert (
        describe(({"a": torch.zeros(2, 3)}, [torch.zeros(2)], 1)) == "tuple({'a': Tensor[2, 3]}, list(Tensor[2]), int)"
    )
