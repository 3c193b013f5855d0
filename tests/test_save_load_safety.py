"""Safe names and safe loads: a checkpoint name is a plain file name under path/model_dir (a pathlib.Path is the
user's explicit choice); `load` checks the whole file against the learner before it changes anything, and a
file that is not an lrcycle checkpoint gets an error saying what it is."""

import copy
from functools import partial
from pathlib import Path

import pytest
import torch
from conftest import make_dls, make_mlp

import lrcycle.state.checkpoint
from lrcycle import Checkpoint, Learner, SaveModelCallback, sequential_splitter

BAD_NAMES = ["../escape", "/tmp/abs", "a/b", "a\\b", "", ".", "..", " padded", None, 123, b"bytes"]


def learner(path, opt_func=torch.optim.Adam, n_out=3, groups=1, seed=0):
    splitter = sequential_splitter(groups) if groups > 1 else None
    model = make_mlp(n_out=n_out, seed=seed)
    return Learner(make_dls(n_out=n_out), model, opt_func=opt_func, splitter=splitter, path=path, progress=False)


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def state_of(learn) -> dict:
    """Model tensors and optimizer state, copied, to compare bit for bit."""
    opt = None if learn.opt is None else copy.deepcopy(learn.opt.state_dict())
    return {"model": {k: v.clone() for k, v in learn.model.state_dict().items()}, "opt": opt, "opt_obj": learn.opt}


def assert_unchanged(learn, before):
    now = learn.model.state_dict()
    assert list(now) == list(before["model"])
    assert all(torch.equal(now[k], before["model"][k]) for k in now)
    assert learn.opt is before["opt_obj"]
    if learn.opt is not None:
        saved, current = before["opt"], learn.opt.state_dict()
        assert saved["param_groups"] == current["param_groups"]
        assert saved["state"].keys() == current["state"].keys()
        for i, entry in saved["state"].items():
            for key, value in entry.items():
                assert torch.equal(current["state"][i][key], value) if torch.is_tensor(value) else value == value


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_a_bad_name_is_refused_everywhere_and_nothing_is_written(tmp_path, name):
    learn = learner(tmp_path / "run")
    calls = [
        lambda: learn.save(name),
        lambda: learn.save(name, with_state=True),
        lambda: learn.load(name),
        lambda: learn.resume(name),
        lambda: SaveModelCallback(name),
        lambda: Checkpoint(name),
    ]
    if name is not None:  # None is a fit's "no file" for these two
        calls += [lambda: learn.fit(0.01, 1, cycle_save_name=name), lambda: learn.fit(0.01, 1, best_save_name=name)]
    for call in calls:
        with pytest.raises(ValueError, match="name"):
            call()
    assert files_under(tmp_path) == []
    assert learn.opt is None  # no fit started


def test_a_path_is_the_users_choice_of_file(tmp_path):
    learn = learner(tmp_path / "run")
    learn.fit(0.01, 1, cycle_save_name=tmp_path / "elsewhere" / "snap.pth")
    file = learn.save(tmp_path / "elsewhere" / "w.pth")
    assert file == tmp_path / "elsewhere" / "w.pth"
    assert files_under(tmp_path) == ["elsewhere/snap_cyc_0.pth", "elsewhere/w.pth"]
    fresh = learner(tmp_path / "run", seed=1)
    fresh.load(file)
    assert all(torch.equal(a, b) for a, b in zip(fresh.model.state_dict().values(), learn.model.state_dict().values()))


def test_a_plain_name_stays_under_path_and_model_dir(tmp_path):
    learn = learner(tmp_path / "run")
    learn.fit(0.01, 1, best_save_name="best..v2", cycle_save_name="snap")
    assert files_under(tmp_path) == ["run/models/best..v2.pth", "run/models/snap_cyc_0.pth"]


@pytest.fixture
def trained(tmp_path):
    """A trained Adam learner (3 outputs, 1 group) saved as `m`, and a fresh learner to load into."""
    learn = learner(tmp_path)
    learn.fit(0.01, 1)
    learn.save("m")
    return learn


def fresh_with_opt(tmp_path, **kw):
    learn = learner(tmp_path, seed=7, **kw)
    learn.fit(0.001, 1)  # an optimizer with state of its own, which a refused load must keep
    return learn


def test_a_head_that_does_not_match_is_refused_and_nothing_is_loaded(tmp_path, trained):
    other = fresh_with_opt(tmp_path, n_out=4)
    before = state_of(other)
    with pytest.raises(ValueError, match=r"shapes differ.*2\.weight \(file \(3, 16\), model \(4, 16\)\)"):
        other.load("m")
    assert_unchanged(other, before)
    with pytest.raises(ValueError, match="shapes differ"):
        other.load("m", strict=False)  # a shape mismatch is never a partial match
    assert_unchanged(other, before)


def test_missing_keys_are_refused_unless_strict_false_loads_the_rest(tmp_path, trained):
    state = {k: v for k, v in trained.model.state_dict().items() if not k.startswith("2.")}
    file = tmp_path / "models" / "body.pth"
    torch.save({"model": {**state, "extra.weight": torch.zeros(2)}}, file)
    other = fresh_with_opt(tmp_path)
    before = state_of(other)
    with pytest.raises(ValueError, match=r"missing from the file: 2\.weight, 2\.bias; not in the model: extra"):
        other.load("body")
    assert_unchanged(other, before)
    other.load("body", strict=False)
    for key, value in other.model.state_dict().items():
        assert torch.equal(value, state[key] if key in state else before["model"][key]), key


def test_an_adam_checkpoint_is_refused_by_an_sgd_learner(tmp_path, trained):
    sgd = fresh_with_opt(tmp_path, opt_func=partial(torch.optim.SGD, momentum=0.9))
    before = state_of(sgd)
    with pytest.raises(ValueError, match="Adam's, this learner's optimizer is SGD"):
        sgd.load("m")
    assert_unchanged(sgd, before)
    # a file from before the optimizer's type was recorded: the momentum key tells them apart
    content = torch.load(tmp_path / "models" / "m.pth", weights_only=True)
    del content["opt_type"], content["checksum"]
    content["version"] = 1  # as such a file was: written before checksums too
    torch.save(content, tmp_path / "models" / "old.pth")
    with pytest.raises(ValueError, match="different optimizer type"):
        sgd.load("old")
    assert_unchanged(sgd, before)
    sgd.load("m", with_opt=False)  # the model alone is fine
    assert torch.equal(sgd.model[2].weight, trained.model[2].weight)


def test_another_param_group_layout_is_refused(tmp_path, trained):
    grouped = fresh_with_opt(tmp_path, groups=3)
    before = state_of(grouped)
    with pytest.raises(ValueError, match=r"param groups differ.*1 group\(s\) of \[6\].*3 of \[2, 2, 2\]"):
        grouped.load("m")
    assert_unchanged(grouped, before)


def test_a_refused_load_into_a_learner_without_optimizer_leaves_it_without(tmp_path, trained):
    sgd = learner(tmp_path, opt_func=torch.optim.SGD, seed=7)
    before = state_of(sgd)
    with pytest.raises(ValueError, match="SGD"):
        sgd.load("m")
    assert sgd.opt is None
    assert_unchanged(sgd, before)


def test_a_bare_state_dict_says_what_it_is_and_loads_with_model_only(tmp_path, trained):
    torch.save(trained.model.state_dict(), tmp_path / "models" / "bare.pth")
    other = learner(tmp_path, seed=7)
    before = state_of(other)
    with pytest.raises(ValueError, match=r"a bare state_dict.*model_only=True"):
        other.load("bare")
    assert_unchanged(other, before)
    other.load("bare", model_only=True)
    loaded, saved = other.model.state_dict(), trained.model.state_dict()
    assert all(torch.equal(loaded[k], saved[k]) for k in saved)
    assert other.opt is None
    other.load("m", model_only=True)  # an lrcycle checkpoint too: its model, not its optimizer
    assert other.opt is None


@pytest.mark.parametrize(
    "content, what",
    [
        (torch.zeros(3), "a single tensor"),
        ([1, 2], "a list"),
        ({"weights": torch.zeros(1), "epoch": 3}, "keys 'weights', 'epoch'"),
        ({}, "an empty dict"),
        ({"state_dict": {"w": torch.zeros(1)}, "epoch": 1}, "another library"),
    ],
)
def test_a_file_that_is_not_a_checkpoint_says_what_it_holds(tmp_path, content, what):
    learn = learner(tmp_path)
    (tmp_path / "models").mkdir()
    torch.save(content, tmp_path / "models" / "odd.pth")
    before = state_of(learn)
    with pytest.raises(ValueError, match=what):
        learn.load("odd")
    assert_unchanged(learn, before)


def test_an_interrupted_save_leaves_the_previous_file_whole(tmp_path, trained, monkeypatch):
    file = tmp_path / "models" / "m.pth"
    previous = file.read_bytes()
    real_save = torch.save

    def interrupted(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        f.truncate(100)  # half written when the Ctrl-C came (save writes to an open file)
        raise KeyboardInterrupt

    monkeypatch.setattr(lrcycle.state.checkpoint.torch, "save", interrupted)
    trained.fit(0.01, 1)
    with pytest.raises(KeyboardInterrupt):
        trained.save("m")
    assert file.read_bytes() == previous
    assert files_under(tmp_path) == ["models/m.pth"]


def test_bad_flags_are_refused(tmp_path, trained):
    for kwargs in ({"strict": "no"}, {"with_opt": 1}, {"model_only": None}):
        with pytest.raises(TypeError, match=next(iter(kwargs))):
            trained.load("m", **kwargs)
    with pytest.raises(TypeError, match="with_state"):
        trained.save("n", with_state="yes")
    assert files_under(tmp_path) == ["models/m.pth"]
