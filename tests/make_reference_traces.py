"""Record the lr and momentum traces of every fit form, as the code of the commit named in the output records them.

Run once, before the schedule refactor (issue 11), to freeze what the schedules set; `tests/test_reference_traces.py`
then checks that the refactored code records the same values bit for bit:

    python tests/make_reference_traces.py > tests/data/reference_traces.json

Floats are written with `repr`, which round-trips exactly. Every case trains a 3-child MLP on 112 random rows in
batches of 16 (7 batches an epoch, so cycle lengths are not multiples of cut_div), with 1 or 3 layer groups,
SGD (momentum) or Adam (betas[0]), and with or without GradientAccumulation(2).
"""

import json
import subprocess
import sys
from functools import partial

import torch
from torch import nn

from lrcycle import DataLoaders, GradientAccumulation, Learner, sequential_splitter

CASES = {
    "constant": ("fit", (2,), {}),
    "sgdr": ("fit", (3,), {"cycle_len": 1, "cycle_mult": 2}),
    "clr": ("fit", (2,), {"cycle_len": 2, "use_clr": (32, 5)}),
    "clr_moms_mult": ("fit", (2,), {"cycle_len": 1, "cycle_mult": 2, "use_clr": (10, 3, 0.95, 0.85)}),
    "clr_beta": ("fit", (2,), {"cycle_len": 1, "use_clr_beta": (10, 13.68, 0.95, 0.85)}),
    "clr_beta_plain": ("fit", (1,), {"cycle_len": 3, "use_clr_beta": (20, 20)}),
    "one_cycle": ("fit_one_cycle", (3,), {}),
    "one_cycle_args": (
        "fit_one_cycle",
        (2,),
        {"div": 10.0, "div_final": 1e3, "pct_start": 0.3, "moms": (0.9, 0.8, 0.9)},
    ),
    "cyclic_tri": ("fit_cyclic", (4,), {"n_cycle": 1.5, "moms": (0.95, 0.85)}),
    "cyclic_tri2": ("fit_cyclic", (4,), {"step_size": 4, "mode": "triangular2"}),
    "cyclic_exp": ("fit_cyclic", (3,), {"mode": "exp_range", "gamma": 0.97, "base_lr": 1e-4}),
}
OPTS = {"sgd": partial(torch.optim.SGD, momentum=0.9), "adam": torch.optim.Adam}


def make_learner(n_groups: int, opt: str) -> Learner:
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(112, 8, generator=g), torch.randn(8, 3, generator=g)
    dls = DataLoaders.from_tensors(x, (x @ w).argmax(1), bs=16, loss_func=nn.CrossEntropyLoss())
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Sequential(nn.Linear(8, 16), nn.ReLU()), nn.Sequential(nn.Linear(16, 16), nn.ReLU()), nn.Linear(16, 3)
    )
    splitter = sequential_splitter(n_groups) if n_groups > 1 else None
    return Learner(dls, model, opt_func=OPTS[opt], splitter=splitter, progress=False)


def record(name: str, n_groups: int, opt: str, accumulate: bool) -> dict:
    method, args, kwargs = CASES[name]
    learn = make_learner(n_groups, opt)
    lr = 1e-2 if n_groups == 1 else slice(1e-3, 1e-2)
    cbs = [GradientAccumulation(2)] if accumulate else None
    if method == "fit":  # fit(lr, n_cycle, ...); the others take (n_epoch, lr_max, ...)
        learn.fit(lr, *args, cbs=cbs, **kwargs)
    else:
        getattr(learn, method)(*args, lr, cbs=cbs, **kwargs)
    rec = learn.recorder
    return {"lrs": rec.lrs, "moms": rec.moms, "group_lrs": rec.group_lrs}


def key(name: str, n_groups: int, opt: str, accumulate: bool) -> str:
    return f"{name}/{n_groups}/{opt}/{'accum' if accumulate else 'plain'}"


def main() -> None:
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    traces = {
        key(name, n, opt, acc): record(name, n, opt, acc)
        for name in CASES
        for n in (1, 3)
        for opt in OPTS
        for acc in (False, True)
    }
    json.dump({"made_at_commit": commit, "torch": torch.__version__, "traces": traces}, sys.stdout)


if __name__ == "__main__":
    main()
