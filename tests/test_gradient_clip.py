"""GradientClip: the same gradient norms and weights as `clip_grad_norm_` in a raw loop, once per optimizer step."""

from functools import partial

import pytest
import torch
from conftest import make_dls, make_mlp
from torch import nn

from lrcycle import Callback, GradientAccumulation, GradientClip, Learner

OPTS = {"sgd": partial(torch.optim.SGD, momentum=0.9), "adamw": partial(torch.optim.AdamW, weight_decay=0.01)}
MAX_NORM, LR = 0.05, 0.05


class Norms(Callback):
    """Reads the clip's total norm after every applied step."""

    def __init__(self, clip):
        self.clip, self.norms = clip, []

    def after_step(self, learn):
        if learn.stepped:
            self.norms.append(self.clip.norm.clone())


def raw_clipped_fit(model, dls, opt_func, n_accumulate, norm_type):
    opt = opt_func(model.parameters(), lr=LR)
    batches, norms = list(dls.train), []
    for start in range(0, len(batches), n_accumulate):
        group = batches[start : start + n_accumulate]
        for xb, yb in group:
            (nn.functional.cross_entropy(model(xb), yb) / len(group)).backward()
        norms.append(nn.utils.clip_grad_norm_(model.parameters(), MAX_NORM, norm_type))
        opt.step()
        opt.zero_grad()
    return norms


@pytest.mark.parametrize("opt_name", list(OPTS))
@pytest.mark.parametrize("n_accumulate", [1, 4])
@pytest.mark.parametrize("norm_type", [2.0, float("inf")])
def test_norms_and_weights_equal_clip_grad_norm_in_a_raw_loop(opt_name, n_accumulate, norm_type):
    dls = make_dls(shuffle=False)
    clip = GradientClip(MAX_NORM, norm_type)
    norms = Norms(clip)
    cbs = [clip, norms] + ([GradientAccumulation(n_accumulate)] if n_accumulate > 1 else [])
    learn = Learner(dls, make_mlp(), opt_func=OPTS[opt_name], progress=False, device="cpu")
    learn.fit(LR, 1, cbs=cbs)
    model = make_mlp()
    expected = raw_clipped_fit(model, make_dls(shuffle=False), OPTS[opt_name], n_accumulate, norm_type)
    assert len(norms.norms) == len(expected) == -(-len(dls.train) // n_accumulate)  # once per step
    assert all(torch.equal(a, b) for a, b in zip(norms.norms, expected))
    assert any(n > MAX_NORM for n in expected)  # clipping really happened
    assert all(torch.equal(a, b) for a, b in zip(learn.model.parameters(), model.parameters()))


def test_under_fp16_it_clips_the_unscaled_gradients():
    dls = make_dls(shuffle=False)
    clip = GradientClip(MAX_NORM)
    norms = Norms(clip)
    learn = Learner(dls, make_mlp(), progress=False, device="cpu").to_fp16()
    learn.fit(LR, 1, cbs=[clip, norms])
    model, opt = make_mlp(), None
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
    scaler, expected = torch.amp.GradScaler("cpu"), []
    for xb, yb in make_dls(shuffle=False).train:
        with torch.autocast("cpu", dtype=torch.float16):
            loss = nn.functional.cross_entropy(model(xb), yb)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        expected.append(nn.utils.clip_grad_norm_(model.parameters(), MAX_NORM))
        scaler.step(opt)
        scaler.update()
        opt.zero_grad()
    assert all(torch.equal(a, b) for a, b in zip(norms.norms, expected))
    assert all(n < 100 for n in expected)  # true gradient norms, not scaled by 2**16
    assert all(torch.equal(a, b) for a, b in zip(learn.model.parameters(), model.parameters()))


@pytest.mark.parametrize("kwargs", [dict(max_norm=0), dict(max_norm=-1.0), dict(max_norm=float("inf")),
                                    dict(max_norm="1"), dict(max_norm=1.0, norm_type=0)])  # fmt: skip
def test_bad_arguments_are_value_errors(kwargs):
    with pytest.raises(ValueError, match="max_norm|norm_type"):
        GradientClip(**kwargs)
