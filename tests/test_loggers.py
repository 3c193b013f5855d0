"""The loggers against the recorder: `CSVLogger`'s rows (fastai's format, written as each epoch ends) against
`recorder.epoch_df()`, and `TensorBoardCallback`'s event files, read back with tensorboard's own reader, against
the recorder's per-iteration and per-epoch traces."""

import csv

import numpy as np
import pytest
import torch
from conftest import make_dls, make_mlp

from lrcycle import Callback, Checkpoint, CSVLogger, Learner, TensorBoardCallback, accuracy, sequential_splitter

N_ITER = 6  # 96 / 16


def make_learner(path, n_groups=1, **kw):
    splitter = sequential_splitter(n_groups) if n_groups > 1 else None
    return Learner(make_dls(), make_mlp(), splitter=splitter, metrics=[accuracy], progress=False, path=path,
                   device="cpu", **kw)  # fmt: skip


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def mm_ss(seconds):
    t = int(seconds)
    return f"{t // 60:02d}:{t % 60:02d}"


class RowsSoFar(Callback):
    """The file's rows as each epoch ends, once the logger has written; and a crash in epoch `crash_at`."""

    order = 99

    def __init__(self, path, crash_at=None):
        self.path, self.crash_at, self.counts = path, crash_at, []

    def after_epoch(self, learn):
        self.counts.append(len(read_rows(self.path)) - 1)

    def before_epoch(self, learn):
        if learn.epoch == self.crash_at:
            raise RuntimeError("crash")


def test_csv_rows_are_the_recorders_epochs_in_fastais_format(tmp_path):
    learn = make_learner(tmp_path)
    spy = RowsSoFar(tmp_path / "history.csv")
    learn.fit_one_cycle(3, 0.05, cbs=[CSVLogger(), spy])
    header, *rows = read_rows(tmp_path / "history.csv")
    assert header == ["epoch", "train_loss", "valid_loss", "accuracy", "time"]
    df = learn.recorder.epoch_df()
    assert len(rows) == len(df) == 3 and spy.counts == [1, 2, 3]  # written as each epoch ended
    for row, (_, expected) in zip(rows, df.iterrows(), strict=True):
        assert int(row[0]) == expected["epoch"]
        for cell, name in zip(row[1:4], ["train_loss", "valid_loss", "accuracy"], strict=True):
            assert cell == f"{expected[name]:.6f}"
        assert row[4] == mm_ss(expected["time"])
    logger = CSVLogger()
    learn.fit(0.01, 1, cbs=[logger])
    assert logger.read_log().columns.tolist() == header and logger.file is None


def test_append_adds_rows_under_one_header_and_missing_values_are_na(tmp_path):
    learn = make_learner(tmp_path)
    learn.fit(0.05, 2, cbs=[CSVLogger("log.csv")])
    learn.dls.valid = None
    learn.fit(0.05, 1, cbs=[CSVLogger("log.csv", append=True)])
    header, *rows = read_rows(tmp_path / "log.csv")
    assert header[0] == "epoch" and len(rows) == 3 and [r[0] for r in rows] == ["0", "1", "0"]
    assert rows[2][2] == "#na#" and rows[2][3] == "#na#"  # no validation: no valid_loss, no metric


def test_a_crash_keeps_the_rows_written_and_closes_the_file(tmp_path):
    learn = make_learner(tmp_path)
    logger = CSVLogger()
    with pytest.raises(RuntimeError, match="crash"):
        learn.fit(0.05, 4, cbs=[logger, RowsSoFar(tmp_path / "history.csv", crash_at=2)])
    assert len(read_rows(tmp_path / "history.csv")) == 1 + 2 and logger.file is None


def test_a_range_test_logs_nothing(tmp_path):
    learn = make_learner(tmp_path, cbs=[CSVLogger(), TensorBoardCallback(tmp_path / "tb")])
    learn.lr_find(num_it=10)
    assert not (tmp_path / "history.csv").exists() and not (tmp_path / "tb").exists()


def scalars(log_dir):
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    events = accumulator.EventAccumulator(str(log_dir), size_guidance={accumulator.SCALARS: 0})
    events.Reload()
    return {tag: ([e.step for e in events.Scalars(tag)], [e.value for e in events.Scalars(tag)])
            for tag in events.Tags()["scalars"]}  # fmt: skip


def f32(values):
    return np.asarray(values, dtype=np.float32).tolist()  # an event file stores float32


def test_tensorboard_events_are_the_recorders_traces(tmp_path):
    learn = make_learner(tmp_path, n_groups=3)
    learn.fit_one_cycle(2, slice(1e-3, 1e-2), cbs=[TensorBoardCallback(tmp_path / "tb")])
    rec, got = learn.recorder, scalars(tmp_path / "tb")
    assert set(got) == {"train_loss", "smooth_loss", "lr_0", "lr_1", "lr_2", "mom_0", "mom_1", "mom_2",
                        "valid_loss", "accuracy"}  # fmt: skip
    assert got["train_loss"] == (rec.iters, f32(rec.losses)) and len(rec.iters) == 2 * N_ITER
    assert got["smooth_loss"] == (rec.iters, f32(rec.smooth_losses))
    for g in range(3):
        assert got[f"lr_{g}"] == (rec.iters, f32(rec.group_lrs[g]))
        assert got[f"mom_{g}"] == (rec.iters, f32(rec.moms))  # one cycle sets every group's momentum alike
    ends = [N_ITER * (e + 1) for e in range(2)]
    assert got["valid_loss"] == (ends, f32([row["valid_loss"] for row in rec.epochs]))
    assert got["accuracy"] == (ends, f32([row["accuracy"] for row in rec.epochs]))


def test_tensorboard_writes_each_groups_own_momentum(tmp_path):
    model = make_mlp()
    groups = sequential_splitter(2)(model)
    opt = torch.optim.SGD([{"params": groups[0], "momentum": 0.5}, {"params": groups[1], "momentum": 0.9}], lr=0.1)
    learn = Learner(make_dls(), model, opt=opt, progress=False, path=tmp_path, device="cpu")
    learn.fit(0.05, 1, cbs=[TensorBoardCallback(tmp_path / "tb")])
    got = scalars(tmp_path / "tb")
    assert got["mom_0"][1] == f32([0.5] * N_ITER) and got["mom_1"][1] == f32([0.9] * N_ITER)
    assert "accuracy" not in got and got["valid_loss"][0] == [N_ITER]


def test_a_resumed_fit_writes_the_same_csv_as_the_uninterrupted_one(tmp_path):
    from conftest import make_dls as dls_of

    def learner(path):
        torch.manual_seed(0)
        return Learner(dls_of(), make_mlp(), metrics=[accuracy], progress=False, path=path, device="cpu")

    whole = learner(tmp_path / "whole")
    whole.fit_one_cycle(4, 0.05, cbs=[CSVLogger()])
    cut = learner(tmp_path / "cut")
    with pytest.raises(RuntimeError, match="crash"):
        cut.fit_one_cycle(
            4, 0.05, cbs=[CSVLogger(), Checkpoint("ck", every=2), RowsSoFar(tmp_path / "cut" / "history.csv", 3)]
        )
    assert len(read_rows(tmp_path / "cut" / "history.csv")) == 1 + 3
    learner(tmp_path / "cut").fit_one_cycle(4, 0.05, cbs=[CSVLogger(), Checkpoint("ck", every=2)], resume="ck")
    without_time = lambda rows: [row[:-1] for row in rows]  # noqa: E731
    assert without_time(read_rows(tmp_path / "cut" / "history.csv")) == without_time(
        read_rows(tmp_path / "whole" / "history.csv")
    )
