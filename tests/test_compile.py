"""A `torch.compile`d model trains, lr_find restores it exactly, and checkpoints carry the plain model's keys."""

import pytest
import torch
from conftest import make_dls, make_mlp
from test_lr_find import assert_same, capture

from lrcycle import Learner
from lrcycle.distributed import unwrap

pytestmark = pytest.mark.slow  # compiling is slow on CPU


def test_a_compiled_model_trains_restores_after_lr_find_and_saves_plain_keys(tmp_path):
    torch._dynamo.reset()
    compiled = torch.compile(make_mlp())
    assert unwrap(compiled) is compiled._orig_mod

    torch.manual_seed(0)
    learn = Learner(make_dls(shuffle=False), compiled, progress=False, device="cpu", path=tmp_path)
    learn.fit_one_cycle(2, 0.05)
    # the same fit of the plain model: compiled kernels may round differently, so close, not bitwise
    torch.manual_seed(0)
    reference = Learner(make_dls(shuffle=False), make_mlp(), progress=False, device="cpu", path=tmp_path)
    reference.fit_one_cycle(2, 0.05)
    assert learn.recorder.losses == pytest.approx(reference.recorder.losses, rel=1e-4)

    before = capture(learn)
    learn.lr_find(start_lr=1e-4, end_lr=10, num_it=12)
    assert_same(before, capture(learn))

    # compiled -> plain: the keys are the module's own, no `_orig_mod.` prefix
    path = learn.save("compiled")
    keys = torch.load(path, weights_only=True)["model"].keys()
    assert keys == make_mlp().state_dict().keys()
    fresh = Learner(make_dls(), make_mlp(seed=5), progress=False, device="cpu", path=tmp_path).load("compiled")
    assert all(
        torch.equal(a, b) for a, b in zip(fresh.model.state_dict().values(), unwrap(learn.model).state_dict().values())
    )
    # plain -> compiled
    reference.model = make_mlp(seed=7)
    reference.save("plain")
    learn.load("plain")
    assert all(
        torch.equal(a, b)
        for a, b in zip(unwrap(learn.model).state_dict().values(), make_mlp(seed=7).state_dict().values())
    )
    learn.fit(0.01, 1)  # and the compiled model still trains after loading
    assert len(learn.recorder.losses) == len(learn.dls.train)
