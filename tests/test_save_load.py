"""save then load round-trips model and optimizer state exactly; files live at path/model_dir/name.pth."""

import pickle
from functools import partial

import pytest
import torch
from conftest import make_dls, make_mlp

from lrcycle import Learner

OPTS = {"sgd": partial(torch.optim.SGD, momentum=0.9), "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


def learner(tmp_path, opt_name="sgd", seed=0, **kw):
    model = make_mlp(seed=seed)
    return Learner(make_dls(), model, opt_func=OPTS[opt_name], path=tmp_path, progress=False, device="cpu", **kw)


def tensors_of(state):
    """Every tensor in a (nested) state dict, by its key path."""
    if torch.is_tensor(state):
        return {(): state}
    if isinstance(state, dict):
        items = state.items()
    elif isinstance(state, (list, tuple)):
        items = enumerate(state)
    else:
        return {}
    return {(k, *path): t for k, v in items for path, t in tensors_of(v).items()}


def assert_same_state(a, b):
    ta, tb = tensors_of(a), tensors_of(b)
    assert ta.keys() == tb.keys() and ta
    for key in ta:
        assert torch.equal(ta[key], tb[key]), key


@pytest.mark.parametrize("opt_name", list(OPTS))
def test_save_then_load_round_trips_model_and_optimizer(tmp_path, opt_name):
    learn = learner(tmp_path, opt_name)
    learn.fit(0.01, 1, wd=0.01)
    file = learn.save("stage1")
    assert file == tmp_path / "models" / "stage1.pth" and file.stat().st_size > 0

    fresh = learner(tmp_path, opt_name, seed=1)
    assert not torch.equal(fresh.model[0][0].weight, learn.model[0][0].weight)
    assert fresh.load("stage1") is fresh
    assert_same_state(fresh.model.state_dict(), learn.model.state_dict())
    saved, loaded = learn.opt.state_dict(), fresh.opt.state_dict()
    assert_same_state(loaded["state"], saved["state"])
    assert loaded["param_groups"] == saved["param_groups"]
    key = {"sgd": "momentum_buffer", "adam": "exp_avg", "adamw": "exp_avg_sq"}[opt_name]
    assert all(key in s for s in loaded["state"].values())

    # and both continue identically
    torch.manual_seed(5)
    learn.fit(0.01, 1)
    torch.manual_seed(5)
    fresh.fit(0.01, 1)
    assert_same_state(fresh.model.state_dict(), learn.model.state_dict())


def test_custom_model_dir(tmp_path):
    learn = learner(tmp_path, model_dir="ckpt")
    assert learn.save("x") == tmp_path / "ckpt" / "x.pth"
    assert (tmp_path / "ckpt" / "x.pth").exists()


def test_save_without_optimizer_and_load_model_only(tmp_path):
    learn = learner(tmp_path)
    learn.fit(0.01, 1)
    learn.save("weights", with_opt=False)
    keys = set(torch.load(tmp_path / "models" / "weights.pth", weights_only=True))
    assert keys == {"format", "version", "model", "checksum"}
    fresh = learner(tmp_path, seed=1)
    fresh.load("weights")
    assert fresh.opt is None
    assert_same_state(fresh.model.state_dict(), learn.model.state_dict())


def test_load_reads_with_weights_only(tmp_path, monkeypatch):
    learn = learner(tmp_path)
    learn.save("m")
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    learn.load("m")
    assert calls == [True]


class _Payload:
    def __reduce__(self):
        return (print, ("this code must never run",))


def test_load_refuses_a_file_that_would_run_code(tmp_path):
    learn = learner(tmp_path)
    file = tmp_path / "models" / "evil.pth"
    file.parent.mkdir(parents=True)
    torch.save({"model": learn.model.state_dict(), "extra": _Payload()}, file)
    with pytest.raises(pickle.UnpicklingError):
        learn.load("evil")


def test_load_of_a_missing_file_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        learner(tmp_path).load("nothing_here")
