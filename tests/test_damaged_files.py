"""Damaged, foreign and inconsistent checkpoint files are refused before anything changes, each with one error that
names the file and what is wrong; resume restores which parameters train; saves are durable and a killed save
leaves nothing behind once the name is used again."""

import copy
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_dls, make_mlp

import lrcycle.state.checkpoint
from lrcycle import Checkpoint, Learner, sequential_splitter
from lrcycle.state.checkpoint_checks import payload_checksum


def learner(path, groups=1, seed=0):
    splitter = sequential_splitter(groups) if groups > 1 else None
    return Learner(
        make_dls(), make_mlp(seed=seed), opt_func=torch.optim.Adam, splitter=splitter, path=path, progress=False
    )


def everything(learn) -> dict:
    """What a refused load or resume must leave as it was: weights, optimizer (object and state), which
    parameters train, the recorder's traces, every RNG."""
    opt = None if learn.opt is None else copy.deepcopy(learn.opt.state_dict())
    return {
        "model": {k: v.clone() for k, v in learn.model.state_dict().items()},
        "opt_obj": learn.opt,
        "opt": opt,
        "flags": [p.requires_grad for p in learn.model.parameters()],
        "recorder": copy.deepcopy(learn.recorder.state_dict()),
        "rng": (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()),
    }


def assert_same(a, b, where="state"):
    if torch.is_tensor(a):
        assert torch.is_tensor(b) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), where
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b), where
    elif isinstance(a, float) and a != a:
        assert b != b, where
    else:
        assert a is b or a == b, f"{where}: {a!r} vs {b!r}"


def assert_unchanged(learn, before):
    assert_same(everything(learn), before)


def resign(content: dict, file: Path) -> None:
    """Write `content` as a consistent file whose entries were wrong when saved (its checksum matches them)."""
    content["checksum"] = payload_checksum(content)
    torch.save(content, file)


def flip_bit_in(file: Path, data: bytes, bit: int = 3) -> None:
    """Flip one bit inside the first copy of `data` (a tensor's raw bytes) in the file."""
    raw = bytearray(file.read_bytes())
    at = raw.find(data)
    assert at >= 0, "the tensor's bytes are stored as they are"
    raw[at + len(data) // 2] ^= 1 << bit
    file.write_bytes(bytes(raw))


@pytest.fixture
def saved(tmp_path):
    """A learner that trained one epoch and saved `m` (model and optimizer), and a second one to load into."""
    source = learner(tmp_path)
    source.fit(0.01, 1)
    source.save("m")
    target = learner(tmp_path, seed=1)
    target.fit(0.01, 1)
    return source, target, tmp_path / "models" / "m.pth"


# ---- files that cannot be read, or are damaged -------------------------------------------------------------------
@pytest.mark.parametrize(
    "cut, message",
    [
        (lambda raw: raw[:1], "only 1 byte long"),
        (lambda raw: b"", "only 0 bytes long"),
        (lambda raw: raw[: len(raw) // 2], "truncated or damaged"),
        (lambda raw: raw[:-100], "truncated or damaged"),
    ],
    ids=["1 byte", "empty", "half", "end cut"],
)
def test_a_truncated_file_is_named_and_refused(saved, cut, message):
    _, target, file = saved
    file.write_bytes(cut(file.read_bytes()))
    before = everything(target)
    with pytest.raises(ValueError, match=message) as error:
        target.load("m")
    assert str(file) in str(error.value) and "nothing was loaded" in str(error.value)
    assert_unchanged(target, before)


def test_a_text_file_is_named_and_refused(saved):
    _, target, file = saved
    file.write_text("epoch,loss\n0,1.25\n" * 20)
    before = everything(target)
    with pytest.raises(ValueError, match="it is a text file") as error:
        target.load("m")
    assert str(file) in str(error.value)
    assert_unchanged(target, before)


@pytest.mark.parametrize("part", ["weight", "optimizer state", "bias"])
def test_a_flipped_bit_in_tensor_data_is_refused(saved, part):
    source, target, file = saved
    weight = source.model[0][0].weight
    data = {
        "weight": weight,
        "bias": source.model[2].bias,
        "optimizer state": source.opt.state[weight]["exp_avg"],
    }[part]
    flip_bit_in(file, data.detach().numpy().tobytes())
    before = everything(target)
    with pytest.raises(ValueError, match="damaged: its contents do not match the checksum") as error:
        target.load("m")
    assert str(file) in str(error.value)
    assert_unchanged(target, before)


def test_every_flipped_bit_is_refused_or_changes_nothing_loaded(saved):
    """Bit flips anywhere in the file (120 random ones): each is refused with the file's name, or (a flip in the
    archive's bookkeeping that the reader skips) loads exactly the saved content."""
    source, _, file = saved
    pristine = file.read_bytes()
    expected = torch.load(file, weights_only=True)
    rng = random.Random(0)
    refused = 0
    for _ in range(120):
        raw = bytearray(pristine)
        raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
        file.write_bytes(bytes(raw))
        target = learner(file.parent.parent, seed=1)
        before = everything(target)
        try:
            target.load("m")
        except ValueError as error:
            assert str(file) in str(error)
            assert_unchanged(target, before)
            refused += 1
            continue
        assert_same({k: v for k, v in target.model.state_dict().items()}, expected["model"])
    assert refused >= 60  # most of the file is tensor data and its pickled description


# ---- consistent files whose entries have the wrong type ----------------------------------------------------------
def test_integer_weights_are_refused(saved):
    _, target, file = saved
    content = torch.load(file, weights_only=True)
    content["model"]["0.0.weight"] = content["model"]["0.0.weight"].long()
    resign(content, file)
    before = everything(target)
    with pytest.raises(ValueError, match=r"dtypes differ.*0\.0\.weight \(file torch.int64, model torch.float32\)"):
        target.load("m")
    assert_unchanged(target, before)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("lr", "abc", "lr='abc'"),
        ("betas", "fast", "betas='fast'"),
        ("eps", None, "eps=None"),
        ("lr", float("nan"), "lr=nan"),
    ],
)
def test_a_non_numeric_hyperparameter_is_refused(saved, key, value, message):
    _, target, file = saved
    content = torch.load(file, weights_only=True)
    content["opt"]["param_groups"][0][key] = value
    resign(content, file)
    before = everything(target)
    with pytest.raises(ValueError, match=message) as error:
        target.load("m")
    assert str(file) in str(error.value)
    assert_unchanged(target, before)


def test_optimizer_state_of_the_wrong_dtype_or_kind_is_refused(saved):
    _, target, file = saved
    content = torch.load(file, weights_only=True)
    good = copy.deepcopy(content)
    content["opt"]["state"][0]["exp_avg"] = content["opt"]["state"][0]["exp_avg"].long()
    resign(content, file)
    before = everything(target)
    with pytest.raises(ValueError, match="'exp_avg' of parameter 0 has dtype torch.int64"):
        target.load("m")
    good["opt"]["state"][0]["exp_avg_sq"] = "big"
    resign(good, file)
    with pytest.raises(ValueError, match="'exp_avg_sq' of parameter 0 is 'big'"):
        target.load("m")
    assert_unchanged(target, before)


def test_a_missing_model_entry_says_what_the_file_holds(saved):
    _, target, file = saved
    content = torch.load(file, weights_only=True)
    del content["model"]
    resign(content, file)
    before = everything(target)
    with pytest.raises(ValueError, match="is not an lrcycle checkpoint"):
        target.load("m")
    assert_unchanged(target, before)


def test_a_checkpoint_without_its_checksum_is_refused(saved):
    _, target, file = saved
    content = torch.load(file, weights_only=True)
    del content["checksum"]
    torch.save(content, file)
    with pytest.raises(ValueError, match="has no checksum"):
        target.load("m")


# ---- resume: the training state checked whole, first -------------------------------------------------------------
@pytest.fixture
def checkpoint(tmp_path):
    """A full-state checkpoint after 2 of 4 epochs (`ck.pth`), and a learner with traces of its own to resume in."""
    source = learner(tmp_path)
    source.fit_one_cycle(4, 0.01, cbs=saving())
    target = learner(tmp_path, seed=1)
    target.fit(0.01, 1)
    return target, tmp_path / "models" / "ck.pth"


def saving():
    return [Checkpoint("ck", every=2)]  # a full-state checkpoint after epoch 2 of 4


def set_entry(content, path, value):
    node = content
    for key in path[:-1]:
        node = node[key]
    if value is DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value(node[path[-1]]) if callable(value) else value


DELETE = object()
RECORDER = ("state", "callbacks", 0, "state")  # [Recorder, ParamScheduler]


@pytest.mark.parametrize(
    "path, value, message",
    [
        (("state", "fit", "n_epoch"), DELETE, r"\['fit'\] lacks 'n_epoch'"),
        (("state", "rng"), DELETE, r"training state|state lacks 'rng'"),
        (("state", "rng", "numpy"), DELETE, r"\['rng'\] lacks 'numpy'"),
        (("state", "rng", "torch"), lambda t: t[:100], r"\['torch'\] is a torch.uint8 tensor of shape \(100,\)"),
        (("state", "rng", "python", 1), lambda s: s[:10], r"\['python'\] is not a valid generator state"),
        (("state", "rng", "numpy", 1), lambda k: k[:5], r"\['numpy'\] is not a valid generator state"),
        (("state", "rng", "torch"), lambda t: t.float(), r"\['torch'\] is a torch.float32 tensor"),
        (("state", "fit", "epochs_done"), -3, r"\['epochs_done'\] is -3, out of range"),
        (("state", "fit", "cycle_ends"), [9], r"\['cycle_ends'\] is \[9\]"),
        (("state", "fit", "steps_per_epoch"), "6", r"\['steps_per_epoch'\] is '6', expected an integer"),
        (("state", "callbacks", 1), "junk", r"\['callbacks'\]\[1\] is 'junk', expected a dict"),
        ((*RECORDER, "losses"), lambda t: t[:-1], "Recorder state has traces of unequal lengths"),
        ((*RECORDER, "iters"), lambda t: [i + 1000 for i in t], "Recorder state has step numbers outside"),
        ((*RECORDER, "moms"), DELETE, "Recorder state lacks 'moms'"),
        (("state", "frozen"), DELETE, r"state lacks 'frozen'"),
        (("state", "frozen"), [[True] * 3], "layer groups hold"),
    ],
    ids=lambda v: "" if not isinstance(v, tuple) else "/".join(map(str, v[1:])),
)
def test_a_bad_training_state_is_refused_before_anything_changes(checkpoint, path, value, message):
    target, file = checkpoint
    content = torch.load(file, weights_only=True)
    set_entry(content, path, value)
    resign(content, file)
    before = everything(target)
    for resume in (
        lambda: target.resume("ck", cbs=saving()),
        lambda: target.fit_one_cycle(4, 0.01, cbs=saving(), resume="ck"),
    ):
        with pytest.raises(ValueError, match=message) as error:
            resume()
        assert str(file) in str(error.value)
        assert "start_epoch" not in str(error.value)  # the checkpoint's entries, not an argument never passed
        assert_unchanged(target, before)


def test_a_damaged_checkpoint_is_refused_by_resume_before_anything_changes(checkpoint):
    target, file = checkpoint
    content = torch.load(file, weights_only=True)
    flip_bit_in(file, content["state"]["rng"]["torch"].numpy().tobytes())
    before = everything(target)
    with pytest.raises(ValueError, match="damaged"):
        target.resume("ck", cbs=saving())
    assert_unchanged(target, before)


# ---- the freeze state --------------------------------------------------------------------------------------------
def test_resume_into_a_differently_frozen_learner_trains_what_the_checkpoint_trained(tmp_path):
    """A fit of a learner frozen to its head, saved after 2 of 4 epochs, resumed in an unfrozen learner: the
    resumed fit trains only the head again and ends as the uninterrupted one."""
    torch.manual_seed(5)
    whole = learner(tmp_path / "whole", groups=3)
    whole.freeze()
    whole.fit_one_cycle(4, 0.01)
    torch.manual_seed(5)
    cut = learner(tmp_path / "cut", groups=3)
    cut.freeze()
    cut.fit_one_cycle(4, 0.01, cbs=saving())
    resumed = learner(tmp_path / "cut", groups=3, seed=4)  # unfrozen, other weights
    resumed.resume("ck", cbs=saving())
    assert [p.requires_grad for p in resumed.model.parameters()] == [p.requires_grad for p in whole.model.parameters()]
    assert_same(resumed.model.state_dict(), whole.model.state_dict())


def test_resume_into_a_learner_with_other_layer_groups_is_refused(tmp_path):
    source = learner(tmp_path, groups=3)
    source.fit_one_cycle(4, 0.01, cbs=saving())
    other = learner(tmp_path, groups=2)
    before = everything(other)
    with pytest.raises(
        ValueError, match=r"layer groups hold \[2, 2, 2\] parameter tensors, this learner's hold \[4, 2\]"
    ):
        other.resume("ck", cbs=saving())
    assert_unchanged(other, before)


# ---- durable saves and what a killed save leaves -----------------------------------------------------------------
def test_a_save_flushes_the_file_then_the_folder_after_the_rename(tmp_path, monkeypatch):
    learn = learner(tmp_path)
    events, real_fsync, real_replace = [], os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", Path(os.readlink(f"/proc/self/fd/{fd}")).name))
        real_fsync(fd)

    def replace(a, b):
        events.append(("replace", Path(b).name))
        real_replace(a, b)

    monkeypatch.setattr(lrcycle.state.checkpoint.os, "fsync", fsync)
    monkeypatch.setattr(lrcycle.state.checkpoint.os, "replace", replace)
    learn.save("m")
    assert events == [("fsync", ".m.pth.partial"), ("replace", "m.pth"), ("fsync", "models")]


def test_a_stale_partial_file_goes_at_the_next_load_or_save(tmp_path):
    learn = learner(tmp_path)
    learn.save("m")
    partial = tmp_path / "models" / ".m.pth.partial"
    for use in (lambda: learn.load("m"), lambda: learn.save("m"), lambda: learn.load("m", model_only=True)):
        partial.write_bytes(b"half a save" * 1000)
        use()
        assert not partial.exists()
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["m.pth"]


def big_learner(path):
    """A learner whose save takes a while (a 24 MB model)."""
    x = torch.randn(8, 4)
    dls = lrcycle.DataLoaders.from_tensors(x, x[:, 0].long().clamp(0, 1), bs=4, loss_func=torch.nn.MSELoss())
    model = torch.nn.Sequential(torch.nn.Linear(4, 2), torch.nn.Linear(2, 2_000_000))
    return Learner(dls, model, path=path, progress=False)


KILLED_SAVER = textwrap.dedent(
    """
    import sys
    from test_damaged_files import big_learner
    learn = big_learner(sys.argv[1])
    learn.save("m")
    print("saved", flush=True)
    while True:
        learn.save("m", with_opt=False)
    """
)


@pytest.mark.slow
def test_a_killed_save_leaves_the_previous_file_and_its_partial_goes_at_the_next_load(tmp_path):
    """kill -9 while a save writes its .partial: the file under the name is whole, and the next load removes
    the partial."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}
    child = subprocess.Popen([sys.executable, "-c", KILLED_SAVER, str(tmp_path)], stdout=subprocess.PIPE, env=env)
    partial = tmp_path / "models" / ".m.pth.partial"
    try:
        assert child.stdout.readline().strip() == b"saved"
        deadline = time.time() + 60
        while not (partial.exists() and partial.stat().st_size > 1_000_000) and time.time() < deadline:
            time.sleep(0.002)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    assert partial.exists(), "the save was killed while writing its partial file"
    learn = big_learner(tmp_path)
    learn.load("m", with_opt=False)
    assert not partial.exists()
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["m.pth"]
