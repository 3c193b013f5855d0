"""Cycle snapshots, best-model saving, early stopping and the stop on a non-finite loss."""

import pytest
import torch
from conftest import make_dls, make_mlp

from lrcycle import Callback, Learner, accuracy
from lrcycle.callbacks.early_stopping import EarlyStoppingCallback, TerminateOnNaNCallback
from lrcycle.callbacks.tracking import CycleSnapshotCallback, SaveModelCallback
from lrcycle.state import checkpoint


class StatesAtEpochEnds(Callback):
    """Test probe: the model's state after every epoch, keyed by epochs done (1-based)."""

    order = 100

    def __init__(self):
        self.states = {}

    def after_epoch(self, learn):
        self.states[learn.epoch + 1] = {k: v.clone() for k, v in learn.model.state_dict().items()}


class ScriptedValidLoss(Callback):
    """Test probe: replaces each epoch's validation loss with a value chosen by the test."""

    order = 55  # after the recorder has computed it, before it writes the epoch row

    def __init__(self, values):
        self.values = values

    def after_validate(self, learn):
        learn.recorder.last_valid[0] = self.values[learn.epoch]


def make_learner(tmp_path, **kwargs):
    return Learner(make_dls(), make_mlp(), lr=0.1, path=tmp_path, progress=False, **kwargs)


def assert_state_equal(actual, expected):
    assert actual.keys() == expected.keys()
    for k in expected:
        assert torch.equal(actual[k], expected[k]), k


def saved_model(learn, name):
    return torch.load(checkpoint.model_path(learn, name), weights_only=True)["model"]


def test_constant_fit_saves_a_snapshot_after_every_epoch(tmp_path):
    learn, probe = make_learner(tmp_path), StatesAtEpochEnds()
    learn.fit(0.1, 3, cycle_save_name="snap", cbs=[probe])
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [f"snap_cyc_{c}.pth" for c in range(3)]
    for c in range(3):
        assert_state_equal(saved_model(learn, f"snap_cyc_{c}"), probe.states[c + 1])


def test_snapshots_at_every_sgdr_cycle_end_load_back_exactly(tmp_path):
    learn, probe = make_learner(tmp_path), StatesAtEpochEnds()
    learn.fit(0.1, 3, cycle_len=1, cycle_mult=2, cycle_save_name="x", cbs=[probe])
    assert len(probe.states) == 7
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [
        "x_cyc_0.pth",
        "x_cyc_1.pth",
        "x_cyc_2.pth",
    ]
    opt_state_at_end = learn.opt.state_dict()
    for c, epochs_done in enumerate([1, 3, 7]):
        learn.load(f"x_cyc_{c}")
        assert_state_equal(learn.model.state_dict(), probe.states[epochs_done])
    # the last snapshot was written after the last epoch: its optimizer state is the final one
    loaded = learn.opt.state_dict()["state"]
    for key, value in opt_state_at_end["state"].items():
        assert torch.equal(loaded[key]["momentum_buffer"], value["momentum_buffer"])


@pytest.mark.parametrize(
    "method, args, kwargs, ends",
    [
        ("fit_one_cycle", (2, 0.1), {}, [2]),  # one cycle: a snapshot at the end of the fit
        ("fit_cyclic", (4, 0.1), {"n_cycle": 2}, [2, 4]),  # cycles of 2 epochs
        ("fit_cyclic", (3, 0.1), {"step_size": 6}, [2]),  # 6 batches an epoch: the second cycle is cut short
    ],
)
def test_one_cycle_and_cyclic_fits_save_a_snapshot_at_every_cycle_end(tmp_path, method, args, kwargs, ends):
    learn, probe = make_learner(tmp_path), StatesAtEpochEnds()
    assert len(learn.dls.train) == 6
    getattr(learn, method)(*args, **kwargs, cycle_save_name="c", cbs=[probe])
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [f"c_cyc_{c}.pth" for c in range(len(ends))]
    for c, epochs_done in enumerate(ends):
        assert_state_equal(saved_model(learn, f"c_cyc_{c}"), probe.states[epochs_done])


def test_snapshot_callback_takes_explicit_cycle_ends(tmp_path):
    learn, probe = make_learner(tmp_path), StatesAtEpochEnds()
    learn.fit(0.1, 4, cbs=[CycleSnapshotCallback("s", cycle_ends=[1, 3]), probe])
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["s_cyc_0.pth", "s_cyc_1.pth"]
    assert_state_equal(saved_model(learn, "s_cyc_1"), probe.states[3])


def test_best_model_is_the_epoch_with_the_lowest_recorded_valid_loss(tmp_path):
    learn, probe = make_learner(tmp_path), StatesAtEpochEnds()
    learn.fit(1.0, 6, best_save_name="best", cbs=[probe])  # a large lr, so the valid loss goes up and down
    df = learn.recorder.epoch_df()
    best_epoch = int(df["valid_loss"].idxmin())
    assert_state_equal(saved_model(learn, "best"), probe.states[best_epoch + 1])


@pytest.mark.parametrize(
    "values, mode, expected_epoch",
    [
        ([0.5, 0.3, 0.4, 0.2, 0.6], "auto", 3),  # valid_loss: lowest
        ([0.5, 0.3, 0.4, 0.2, 0.6], "max", 4),
        ([0.5, 0.3, 0.3, 0.6, 0.9], "min", 1),  # a tie is no improvement: the first stays
    ],
)
def test_best_model_follows_the_monitored_values(tmp_path, values, mode, expected_epoch):
    learn, probe = make_learner(tmp_path), StatesAtEpochEnds()
    saver = SaveModelCallback("best", mode=mode)
    learn.fit_epochs(len(values), cbs=[ScriptedValidLoss(values), saver, probe])
    assert learn.recorder.epoch_df()["valid_loss"].tolist() == values
    assert saver.best_epoch == expected_epoch
    assert_state_equal(saved_model(learn, "best"), probe.states[expected_epoch + 1])


def test_best_model_by_a_metric_is_the_highest_and_can_be_loaded_at_the_end(tmp_path):
    learn, probe = make_learner(tmp_path, metrics=[accuracy]), StatesAtEpochEnds()
    saver = SaveModelCallback("best_acc", monitor="accuracy", load_at_end=True)
    learn.fit(1.0, 4, cbs=[saver, probe])
    accs = learn.recorder.epoch_df()["accuracy"]
    assert saver.mode == "max" and saver.best_epoch == int(accs.idxmax())
    assert_state_equal(learn.model.state_dict(), probe.states[saver.best_epoch + 1])


def test_bad_names_and_monitors_are_rejected_before_training(tmp_path):
    learn = make_learner(tmp_path)
    before = {k: v.clone() for k, v in learn.model.state_dict().items()}
    with pytest.raises(ValueError, match="cycle_save_name"):
        learn.fit(0.1, 2, cycle_save_name="")
    with pytest.raises(ValueError, match="best_save_name"):
        learn.fit(0.1, 2, best_save_name=3)
    with pytest.raises(ValueError, match="monitor.*accuracy"):
        learn.fit(0.1, 2, cbs=[SaveModelCallback("b", monitor="accuracy")])
    with pytest.raises(ValueError, match="mode"):
        SaveModelCallback("b", mode="lowest")
    with pytest.raises(ValueError, match="patience"):
        EarlyStoppingCallback(patience=0)
    assert_state_equal(learn.model.state_dict(), before)
    assert not (tmp_path / "models").exists()


@pytest.mark.parametrize(
    "values, patience, min_delta, epochs_run",
    [
        ([1.0, 0.8, 0.9, 0.85, 0.7, 0.6, 0.5, 0.4], 2, 0.0, 4),  # no improvement after epoch 1 for 2 epochs
        ([1.0, 0.8, 0.9, 0.85, 0.7, 0.6, 0.5, 0.4], 3, 0.0, 8),  # 0.7 at epoch 4 comes in time
        ([1.0, 0.97, 0.95, 0.9, 0.8, 0.7, 0.6, 0.5], 2, 0.06, 3),  # improvements below min_delta do not count
        ([1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3], 1, 0.0, 8),  # always improving: never stops
    ],
)
def test_early_stopping_after_patience_epochs_without_improvement(tmp_path, values, patience, min_delta, epochs_run):
    learn = make_learner(tmp_path)
    stopper = EarlyStoppingCallback(patience=patience, min_delta=min_delta)
    learn.fit_epochs(len(values), cbs=[ScriptedValidLoss(values), stopper])
    assert len(learn.recorder.epochs) == epochs_run
    assert stopper.stopped_epoch == (epochs_run - 1 if epochs_run < len(values) else None)


def test_early_stopping_on_a_growing_train_loss(tmp_path):
    learn = make_learner(tmp_path)
    stopper = EarlyStoppingCallback(monitor="train_loss", patience=2)
    learn.fit(50.0, 10, cbs=[stopper])  # far too large an lr: the training loss climbs
    losses = learn.recorder.epoch_df()["train_loss"].tolist()
    assert len(losses) < 10
    best = losses.index(min(losses))
    assert len(losses) == best + 3  # stopped on the second epoch in a row without a new low


class NaNLossAt(Callback):
    """Test probe: makes the training loss NaN at one optimizer step."""

    def __init__(self, step):
        self.step = step

    def after_loss(self, learn):
        if learn.training and learn.train_iter == self.step:
            learn.loss = learn.loss * float("nan")


class ParamsAtSteps(Callback):
    order = 100

    def __init__(self):
        self.params = []

    def after_step(self, learn):
        self.params.append([p.detach().clone() for p in learn.model.parameters()])


def test_terminate_on_nan_stops_before_the_non_finite_step(tmp_path):
    learn, probe = make_learner(tmp_path), ParamsAtSteps()
    stopper = TerminateOnNaNCallback()
    learn.fit(0.1, 3, cbs=[NaNLossAt(8), stopper, probe])  # 6 batches per epoch: step 8 is epoch 1, batch 2
    assert stopper.stopped_at == (1, 2)
    assert learn.train_iter == 8
    assert len(learn.recorder.losses) == 8
    for p, expected in zip(learn.model.parameters(), probe.params[-1], strict=True):
        assert torch.isfinite(p).all() and torch.equal(p.detach(), expected)


def test_terminate_on_nan_lets_finite_fits_run(tmp_path):
    learn, stopper = make_learner(tmp_path), TerminateOnNaNCallback()
    learn.fit(0.1, 2, cbs=[stopper])
    assert stopper.stopped_at is None and learn.train_iter == 12


def test_trackers_stay_idle_in_a_range_test(tmp_path):
    saver, stopper = SaveModelCallback("best"), EarlyStoppingCallback(patience=1)
    learn = make_learner(tmp_path, cbs=[saver, stopper, CycleSnapshotCallback("snap")])
    learn.lr_find(num_it=20, stop_div=False)  # 6 batches per epoch: 4 epochs without validation
    assert len(learn.recorder.losses) == 20
    assert saver.best_epoch is None and stopper.stopped_epoch is None
    assert not (tmp_path / "models").exists()
