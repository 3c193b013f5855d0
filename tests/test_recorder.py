"""The Recorder's traces against formulas and raw loops computed here."""

import math
from functools import partial

import pytest
import torch
from conftest import make_dls, make_mlp

from lrcycle import (
    Callback,
    CancelStepException,
    CancelValidException,
    Learner,
    accuracy,
    error_rate,
    sequential_splitter,
)

BETA = 0.98


def fitted(n_epoch=2, n_groups=1, lr=0.05, metrics=(accuracy,), opt_func=None, cbs=()):
    kw = {"opt_func": opt_func} if opt_func else {}
    splitter = sequential_splitter(3) if n_groups == 3 else None
    learn = Learner(make_dls(), make_mlp(), metrics=metrics, splitter=splitter, progress=False, device="cpu", **kw)
    learn.fit(lr, n_epoch, cbs=list(cbs))
    return learn


def debiased_ema(values, beta=BETA):
    out, avg = [], 0.0
    for n, v in enumerate(values, start=1):
        avg = beta * avg + (1 - beta) * v
        out.append(avg / (1 - beta**n))
    return out


def raw_valid(model, dl, loss_func):
    """Validation loss and accuracy as a plain eval loop computes them: means over samples."""
    model.eval()
    total_loss = total_correct = count = 0.0
    with torch.no_grad():
        for xb, yb in dl:
            pred = model(xb)
            total_loss += loss_func(pred, yb).item() * len(yb)
            total_correct += (pred.argmax(1) == yb).sum().item()
            count += len(yb)
    return total_loss / count, total_correct / count


def test_smoothed_loss_is_the_debiased_ema_of_the_raw_losses():
    rec = fitted().recorder
    assert len(rec.losses) == 12
    assert rec.smooth_losses == pytest.approx(debiased_ema(rec.losses), rel=1e-12)
    assert rec.smooth_losses[0] == pytest.approx(rec.losses[0], rel=1e-12)  # debiased from the first point


def test_smoothing_restarts_with_every_fit():
    learn = fitted(n_epoch=1)
    learn.fit(0.05, 1)
    rec = learn.recorder
    assert len(rec.losses) == 6 and rec.iters == list(range(6))
    assert rec.smooth_losses == pytest.approx(debiased_ema(rec.losses), rel=1e-12)


def test_train_loss_per_epoch_is_the_mean_of_that_epochs_raw_losses():
    rec = fitted().recorder
    n_iter = 6  # 96 samples in batches of 16
    for epoch, row in enumerate(rec.epochs):
        chunk = rec.losses[epoch * n_iter : (epoch + 1) * n_iter]
        assert row["epoch"] == epoch
        assert row["train_loss"] == pytest.approx(sum(chunk) / n_iter, rel=1e-12)
    assert rec.iter_epochs == [0] * 6 + [1] * 6


def test_valid_loss_and_accuracy_equal_a_raw_eval_loop():
    learn = fitted(metrics=[accuracy, error_rate])
    loss, acc = raw_valid(learn.model, learn.dls.valid, torch.nn.CrossEntropyLoss())
    row = learn.recorder.epochs[-1]
    valid_loss, rec_acc, rec_err, seconds = row["valid_loss"], row["accuracy"], row["error_rate"], row["time"]
    assert valid_loss == pytest.approx(loss, rel=1e-6)
    assert rec_acc == pytest.approx(acc, abs=1e-6) and rec_err == pytest.approx(1 - acc, abs=1e-6)
    assert seconds > 0
    assert learn.validate() == pytest.approx([loss, acc, 1 - acc], rel=1e-6)
    assert learn.recorder.values[-1] == [valid_loss, rec_acc, rec_err]


def test_epoch_results_are_read_by_name_with_the_epoch_tables_columns():
    rec = fitted(metrics=[accuracy, error_rate]).recorder
    df = rec.epoch_df()
    assert list(df.columns) == ["epoch", "train_loss", "valid_loss", "accuracy", "error_rate", "time"]
    assert [list(row) for row in rec.epochs] == [list(df.columns)] * 2
    assert [list(row.values()) for row in rec.epochs] == df.values.tolist()
    assert rec.values == [[row["valid_loss"], row["accuracy"], row["error_rate"]] for row in rec.epochs]


def test_reduce_valid_replaces_the_totals_before_the_mean_is_taken():
    """What distributed training does with an all-reduce: here a second shard's totals, computed by a raw
    loop, are added, so the recorded mean must be the mean over both shards together."""
    dls = make_dls(n_valid=32)
    other = make_dls(n_valid=20, seed=1).valid
    learn = Learner(dls, make_mlp(), metrics=[accuracy], progress=False, device="cpu")
    loss_func = torch.nn.CrossEntropyLoss()
    loss_a, acc_a = raw_valid(learn.model, dls.valid, loss_func)
    loss_b, acc_b = raw_valid(learn.model, other, loss_func)
    other_totals = torch.tensor([loss_b * 20, acc_b * 20, 20.0], dtype=torch.double)

    class AddOtherShard(Callback):
        order = 40  # before the recorder's after_validate, as the distributed callback

        def after_validate(self, learn):
            learn.recorder.reduce_valid(lambda packed: packed + other_totals, 2)

    learn.add_cbs([AddOtherShard()])
    expected = [(loss_a * 32 + loss_b * 20) / 52, (acc_a * 32 + acc_b * 20) / 52]
    assert learn.validate() == pytest.approx(expected, rel=1e-6)


def test_reduce_valid_with_no_batches_seen_packs_zeros():
    seen = []

    class CancelThenReduce(Callback):
        order = 40

        def before_validate(self, learn):
            raise CancelValidException

        def after_validate(self, learn):
            learn.recorder.reduce_valid(lambda packed: seen.append(packed.clone()) or packed, 3)

    learn = Learner(make_dls(), make_mlp(), metrics=[accuracy, error_rate], progress=False, cbs=[CancelThenReduce()])
    result = learn.validate()
    assert len(seen) == 1 and seen[0].dtype == torch.double and seen[0].tolist() == [0.0] * 4
    assert len(result) == 3 and all(math.isnan(v) for v in result)


def test_valid_loss_weighs_batches_by_their_size():
    # 33 validation samples in batches of 32: an unweighted mean of batch means would differ
    dls = make_dls(n_valid=33)
    learn = Learner(dls, make_mlp(), metrics=[accuracy], progress=False)
    loss, acc = raw_valid(learn.model, dls.valid, torch.nn.CrossEntropyLoss())
    assert learn.validate() == pytest.approx([loss, acc], rel=1e-6)


def test_get_preds_equals_the_model_on_the_validation_data():
    learn = fitted(n_epoch=1)
    preds, targets = learn.get_preds()
    learn.model.eval()
    with torch.no_grad():
        expected = torch.cat([learn.model(xb) for xb, _ in learn.dls.valid])
    assert torch.equal(preds, expected)
    assert torch.equal(targets, torch.cat([yb for _, yb in learn.dls.valid]))
    x, _, _ = learn.get_preds(with_input=True)
    assert x.shape == (32, 8)


@pytest.mark.parametrize(
    "opt_func, mom",
    [(partial(torch.optim.SGD, momentum=0.8), 0.8), (torch.optim.Adam, 0.9), (torch.optim.Adagrad, None)],
)
def test_lr_and_momentum_traces(opt_func, mom):
    lrs = [1e-3, 1e-2, 1e-1]
    rec = fitted(n_epoch=1, n_groups=3, lr=lrs, opt_func=opt_func).recorder
    assert rec.group_lrs == [[lr] * 6 for lr in lrs]
    assert rec.lrs == [lrs[-1]] * 6
    assert rec.moms == [mom] * 6


def test_iter_df_and_epoch_df_columns_and_lengths():
    learn = fitted(n_epoch=2, metrics=[accuracy, error_rate])
    idf, edf = learn.recorder.iter_df(), learn.recorder.epoch_df()
    assert list(idf.columns) == ["iter", "epoch", "loss", "smooth_loss", "lr", "mom"]
    assert len(idf) == 12 and idf["iter"].tolist() == list(range(12))
    assert idf["loss"].tolist() == learn.recorder.losses
    assert list(edf.columns) == ["epoch", "train_loss", "valid_loss", "accuracy", "error_rate", "time"]
    assert len(edf) == 2 and edf["epoch"].tolist() == [0, 1]


def test_iter_df_has_one_lr_column_per_group_when_there_are_several():
    learn = fitted(n_epoch=1, n_groups=3, lr=[1e-3, 1e-2, 1e-1], metrics=())
    idf = learn.recorder.iter_df()
    assert list(idf.columns) == ["iter", "epoch", "loss", "smooth_loss", "lr", "mom", "lr_0", "lr_1", "lr_2"]
    assert idf["lr_0"].tolist() == [1e-3] * 6 and idf["lr_2"].tolist() == idf["lr"].tolist()
    assert list(learn.recorder.epoch_df().columns) == ["epoch", "train_loss", "valid_loss", "time"]


def test_sched_is_the_recorder():
    learn = Learner(make_dls(), make_mlp(), progress=False)
    assert learn.sched is learn.recorder


def test_accumulated_batches_make_one_point_with_their_mean_loss():
    batch_losses = []

    class Accumulate(Callback):
        """Steps every second batch only: two batches per iteration."""

        order = 5

        def after_loss(self, learn):
            if learn.training:
                batch_losses.append(learn.loss.item())

        def before_step(self, learn):
            if learn.iter % 2 == 0:
                raise CancelStepException

    learn = fitted(n_epoch=2, cbs=[Accumulate()])
    rec = learn.recorder
    pairs = [(a + b) / 2 for a, b in zip(batch_losses[::2], batch_losses[1::2], strict=True)]
    assert rec.losses == pytest.approx(pairs, rel=1e-12) and len(rec.losses) == 6
    assert rec.iters == list(range(6)) and learn.train_iter == 6
    assert rec.smooth_losses == pytest.approx(debiased_ema(pairs), rel=1e-12)


def test_a_lower_order_callback_may_replace_the_loss_the_recorder_reads():
    class Halve(Callback):
        order = 40

        def after_batch(self, learn):
            if learn.training:
                learn.loss = learn.loss.detach() / 2

    raw = []

    class Spy(Callback):
        order = 30

        def after_batch(self, learn):
            if learn.training:
                raw.append(learn.loss.item())

    rec = fitted(n_epoch=1, cbs=[Halve(), Spy()]).recorder
    assert rec.losses == [v / 2 for v in raw]


def test_an_epoch_without_validation_data_records_nan():
    dls = make_dls()
    dls.valid = None
    learn = Learner(dls, make_mlp(), metrics=[accuracy], progress=False)
    learn.fit(0.05, 1)
    row = learn.recorder.epochs[0]
    assert math.isfinite(row["train_loss"]) and math.isnan(row["valid_loss"]) and math.isnan(row["accuracy"])


def test_validation_cancelled_before_the_recorder_sees_it_records_nan_not_stale_values():
    class SkipSecondValidation(Callback):
        order = 0

        def before_validate(self, learn):
            if learn.epoch == 1:
                raise CancelValidException

    learn = fitted(n_epoch=2, cbs=[SkipSecondValidation()])
    first, second = learn.recorder.epochs
    assert math.isfinite(first["valid_loss"]) and math.isfinite(first["accuracy"])
    assert math.isnan(second["valid_loss"]) and math.isnan(second["accuracy"])


@pytest.mark.parametrize(
    "values",
    [
        [torch.tensor(1.5, dtype=torch.float16), torch.tensor(0.1, dtype=torch.bfloat16), torch.tensor(0.1)],
        [torch.tensor(0.1, dtype=torch.float64), torch.tensor(0.1)],
        [torch.tensor(2.0), torch.tensor([3.0])],  # a 1-element 1-d tensor among 0-d ones
        [torch.tensor([2.0]), torch.tensor(3.0)],
        [0.25, torch.tensor(0.1)],  # a loss read on the CPU beside one still on its device
        [torch.tensor(0.1), 0.25],
    ],
)
def test_the_chunked_transfer_gives_each_tensors_own_float(values):
    from lrcycle.recorder import host_floats

    assert host_floats(values) == [v if isinstance(v, float) else v.item() for v in values]
