"""A fit resumed from a full-state checkpoint after any epoch k ends exactly as the uninterrupted fit: weights,
optimizer state, recorder traces, callback states (early stop, averaging, a user's random draws) and the files
written, bit for bit; in this process (fast) and in a fresh one (slow). Then what resume refuses, and how."""

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from resume_cases import (
    FORMS,
    HAS_MIXED_PRECISION,
    final_state,
    fit_callbacks,
    make_learner,
    resume_at,
    resume_points,
    run_reference,
    seed_all,
    written_files,
)

from lrcycle import Callback, Checkpoint, CycleAverage, EarlyStoppingCallback

WORKER = Path(__file__).resolve().parent / "resume_worker.py"
NO_MIXED_PRECISION = "lrcycle.MixedPrecision is not on this branch yet (issue 12)"


def assert_same(a, b, where="state"):
    """Equal in structure and value; tensors bit for bit (and dtype), NaN equal to NaN."""
    if torch.is_tensor(a):
        assert torch.is_tensor(b) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), f"{where}: keys {list(a)} vs {list(b)}"
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), f"{where}: lengths {len(a)} vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b), where
    else:
        assert a == b, f"{where}: {a!r} vs {b!r}"


def check_resumes(tmp_path, form, mixed_precision, ks=None, hows=("resume", "same_call")):
    reference, ref_cbs = run_reference(tmp_path, form, mixed_precision)
    expected, expected_files = final_state(reference, ref_cbs), written_files(tmp_path / "reference")
    points = resume_points(tmp_path)
    assert len(points) >= 3  # the reference left checkpoints to resume from
    for k in points if ks is None else [k for k in ks if k in points]:
        for how in hows:
            learn, cbs = resume_at(tmp_path, form, k, how, mixed_precision)
            assert_same(final_state(learn, cbs), expected, f"{form} k={k} {how}")
            assert_same(written_files(tmp_path / f"resumed_{k}_{how}"), expected_files, f"files k={k} {how}")


@pytest.mark.parametrize("form", list(FORMS))
def test_resume_after_every_epoch_equals_the_uninterrupted_fit(tmp_path, form):
    check_resumes(tmp_path, form, False, hows=("resume",))


@pytest.mark.parametrize("form", ["fit_sgdr", "fit_one_cycle", "cb_one_cycle", "cb_circular"])
def test_the_same_fit_call_with_resume_equals_the_uninterrupted_fit(tmp_path, form):
    check_resumes(tmp_path, form, False, ks=[2], hows=("same_call",))


@pytest.mark.skipif(not HAS_MIXED_PRECISION, reason=NO_MIXED_PRECISION)
def test_resume_under_bf16_mixed_precision(tmp_path):
    check_resumes(tmp_path, "fit_one_cycle", True, ks=[2])


@pytest.mark.slow
@pytest.mark.parametrize("mixed_precision", [False, True], ids=["fp32", "bf16"])
@pytest.mark.parametrize("form", list(FORMS))
def test_resume_in_a_fresh_process_after_every_epoch(tmp_path, form, mixed_precision):
    if mixed_precision and not HAS_MIXED_PRECISION:
        pytest.skip(NO_MIXED_PRECISION)
    reference, ref_cbs = run_reference(tmp_path, form, mixed_precision)
    expected, expected_files = final_state(reference, ref_cbs), written_files(tmp_path / "reference")
    points = resume_points(tmp_path)
    assert len(points) >= 3
    # this checkout's lrcycle first, whichever one the environment installed
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(WORKER.parent.parent), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, str(WORKER), str(tmp_path), form, str(int(mixed_precision))], check=True, env=env)
    for k in points:
        for how in ("resume", "same_call") if k == 2 else ("resume",):
            resumed = torch.load(tmp_path / f"final_{k}_{how}.pt", weights_only=True)
            assert_same(resumed, expected, f"{form} k={k} {how} (fresh process)")
            assert_same(written_files(tmp_path / f"resumed_{k}_{how}"), expected_files, f"files k={k} {how}")


PLAIN = (int, float, str, bool, type(None))


def assert_plain(value, where="checkpoint"):
    """Only tensors, lists, tuples, dicts with str/int keys and plain scalars: nothing a pickle would rebuild."""
    if torch.is_tensor(value) or isinstance(value, PLAIN):
        return
    if isinstance(value, dict):
        for key, item in value.items():
            assert isinstance(key, (str, int)), f"{where}: key {key!r}"
            assert_plain(item, f"{where}.{key}")
    else:
        assert isinstance(value, (list, tuple)), f"{where}: a {type(value).__name__}"
        for i, item in enumerate(value):
            assert_plain(item, f"{where}[{i}]")


def stopped_after_two_epochs(tmp_path, **fit_kwargs):
    """A learner whose one-cycle fit left a full-state checkpoint `ck` after 2 of 4 epochs."""
    learn = make_learner(tmp_path)
    learn.fit_one_cycle(4, 0.05, cbs=[EarlyStoppingCallback(patience=3), Checkpoint("ck", every=2)], **fit_kwargs)
    return learn


def test_a_checkpoint_is_plain_data_with_every_part_of_the_state(tmp_path):
    stopped_after_two_epochs(tmp_path, best_save_name="best")
    content = torch.load(tmp_path / "models" / "ck.pth", weights_only=True)
    assert_plain(content)
    assert {"model", "opt", "opt_type", "state"} <= set(content) and content["opt_type"] == "Adam"
    state = content["state"]
    assert set(state) == {"fit", "callbacks", "rng", "frozen"} and set(state["rng"]) >= {"torch", "numpy", "python"}
    assert state["fit"]["epochs_done"] == 2 and state["fit"]["n_epoch"] == 4
    assert state["fit"]["best_save_name"] == "best" and state["fit"]["cycle_save_name"] is None
    types = [entry["type"] for entry in state["callbacks"]]
    assert types == ["Recorder", "OneCycleCallback", "SaveModelCallback", "EarlyStoppingCallback"]
    assert len(state["callbacks"][0]["state"]["losses"]) == 2 * 7  # two epochs of seven steps recorded


def unchanged(learn):
    """A copy of what a refused resume must leave as it was."""
    return {"model": {k: v.clone() for k, v in learn.model.state_dict().items()}, "opt": learn.opt,
            "recorder": learn.recorder.state_dict(), "rng": torch.get_rng_state()}  # fmt: skip


@pytest.mark.parametrize(
    "how, message",
    [
        ("no_cbs", "callbacks"),
        ("other_lr", "different fit call"),
        ("start_epoch", "resume/start_epoch"),
        ("plain_save", "no training state"),
        ("other_accumulation", "steps an epoch"),
    ],
)
def test_a_resume_that_does_not_match_is_refused_before_anything_changes(tmp_path, how, message):
    stopped_after_two_epochs(tmp_path)
    learn = make_learner(tmp_path, seed=3)
    learn.fit_one_cycle(1, 0.01)  # it has an optimizer and traces of its own
    learn.save("plain")
    before = unchanged(learn)
    cbs = [EarlyStoppingCallback(patience=3), Checkpoint("ck", every=2)]
    with pytest.raises(ValueError, match=message):
        if how == "no_cbs":
            learn.resume("ck")
        elif how == "other_lr":
            learn.fit_one_cycle(4, 0.03, cbs=cbs, resume="ck")
        elif how == "start_epoch":
            learn.fit_one_cycle(4, 0.05, cbs=cbs, resume="ck", start_epoch=2)
        elif how == "plain_save":
            learn.resume("plain", cbs=cbs)
        else:
            from lrcycle import GradientAccumulation

            learn.resume("ck", cbs=[GradientAccumulation(2), *cbs])
    assert_same(unchanged(learn)["model"], before["model"])
    assert learn.opt is before["opt"] and torch.equal(torch.get_rng_state(), before["rng"])
    assert_same(learn.recorder.state_dict(), before["recorder"])


def test_a_checkpoint_after_the_last_epoch_or_mid_epoch_has_nothing_to_resume(tmp_path):
    learn = make_learner(tmp_path)
    learn.fit_one_cycle(2, 0.05)
    learn.save("done", with_state=True)
    with pytest.raises(ValueError, match="not saved at the end of an epoch|after the fit's last epoch"):
        make_learner(tmp_path).resume("done")


def test_checkpoint_every_n_epochs_and_keep_all(tmp_path):
    learn = make_learner(tmp_path)
    learn.fit(0.05, 5, cbs=[Checkpoint("a", every=2, keep_all=True), Checkpoint("b")])
    names = sorted(p.name for p in (tmp_path / "models").iterdir())
    assert names == ["a_ep2.pth", "a_ep4.pth", "b.pth"]  # never after the last epoch: nothing to resume there
    assert torch.load(tmp_path / "models" / "b.pth", weights_only=True)["state"]["fit"]["epochs_done"] == 4
    with pytest.raises(ValueError, match="every"):
        Checkpoint(every=0)
    with pytest.raises(ValueError, match="name"):
        Checkpoint("../up")


def test_cycle_average_state_round_trips(tmp_path):
    learn = make_learner(tmp_path)
    avg = CycleAverage()
    learn.fit(0.05, 2, cbs=[avg])
    other = CycleAverage()
    other.before_fit(learn)
    other.load_state_dict(avg.state_dict())
    assert other.n_averaged == avg.n_averaged == 2
    assert_same(other.averaged.state_dict(), avg.averaged.state_dict())


def test_a_range_test_writes_no_checkpoint(tmp_path):
    learn = make_learner(tmp_path)
    learn.add_cbs([Checkpoint("ck")])
    learn.lr_find(num_it=20)  # three epochs of seven batches
    assert not (tmp_path / "models").exists()


class InterruptAt(Callback):
    """A Ctrl-C in the middle of an epoch."""

    order = 1

    def __init__(self, epoch, batch):
        self.epoch, self.batch = epoch, batch

    def before_batch(self, learn):
        if learn.training and (learn.epoch, learn.iter) == (self.epoch, self.batch):
            raise KeyboardInterrupt


def test_a_fit_interrupted_mid_epoch_resumes_from_its_last_checkpoint(tmp_path):
    seed_all(1)
    whole, whole_cbs = make_learner(tmp_path / "whole"), fit_callbacks()
    whole.fit_one_cycle(4, 0.05, cbs=whole_cbs, best_save_name="best")
    seed_all(1)
    learn = make_learner(tmp_path / "cut")
    with pytest.raises(KeyboardInterrupt):
        learn.fit_one_cycle(4, 0.05, cbs=[*fit_callbacks(), InterruptAt(2, 3)], best_save_name="best")
    seed_all(7)
    learn, cbs = make_learner(tmp_path / "cut", seed=5), fit_callbacks()
    learn.resume("ck_ep2", cbs=cbs)  # the last checkpoint before the Ctrl-C
    assert_same(final_state(learn, cbs), final_state(whole, whole_cbs))
    assert (tmp_path / "cut/models/best.pth").read_bytes() == (tmp_path / "whole/models/best.pth").read_bytes()


def test_a_bad_callback_state_changes_nothing(tmp_path):
    from lrcycle import GradientAccumulation

    stop = EarlyStoppingCallback(patience=2)
    stop.best, stop.best_epoch, stop.wait, stop.stopped_epoch = 0.5, 1, 1, None
    before = stop.state_dict()
    with pytest.raises(ValueError, match="wait"):
        stop.load_state_dict({**before, "wait": -1, "best": 0.1})
    assert stop.state_dict() == before
    with pytest.raises(ValueError, match="n_batches"):
        GradientAccumulation(2).load_state_dict({"n_batches": 3})
    learn = make_learner(tmp_path)
    avg = CycleAverage()
    avg.before_fit(learn)
    with pytest.raises(ValueError, match="n_averaged"):
        avg.load_state_dict({"averaged": avg.averaged.state_dict(), "n_averaged": -1})
    assert avg.n_averaged == 0


def test_learn_resume_reads_the_checkpoint_file_once(tmp_path, monkeypatch):
    """`learn.resume` reads the schedule from the file and checks the same content it then loads: one read."""
    from lrcycle.state import checkpoint

    stopped_after_two_epochs(tmp_path)
    reads = []
    real_read_file = checkpoint.read_file
    monkeypatch.setattr(checkpoint, "read_file", lambda file: reads.append(file) or real_read_file(file))
    learn = make_learner(tmp_path)
    learn.resume("ck", cbs=[EarlyStoppingCallback(patience=3), Checkpoint("ck", every=2)])
    assert len(reads) == 1 and learn.epoch == 3
