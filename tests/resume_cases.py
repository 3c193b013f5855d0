"""The resume set-ups shared by tests/test_resume.py and its fresh-process worker (tests/resume_worker.py).

A reference fit runs uninterrupted with a `Checkpoint(keep_all=True)` and, after every epoch k, copies the
whole `models/` folder as it stands to `at_<k>/` (the files a run stopped there would have left). A resume
starts from such a copy in a fresh learner (other initial weights, other RNG state) and must end with the
reference's weights, optimizer state, recorder traces and files.
"""

import random
import shutil
from pathlib import Path

import numpy as np
import torch
from conftest import make_dls, make_mlp

import lrcycle
from lrcycle import (
    Callback,
    Checkpoint,
    CycleAverage,
    EarlyStoppingCallback,
    GradientAccumulation,
    Learner,
    plans,
    sequential_splitter,
)

N_EPOCH = 5
LR = 0.05

# Every fit form, with arguments giving it N_EPOCH epochs; a form added to plans.PLANS later is called as
# `learn.<form>(N_EPOCH)` (its other arguments at their defaults).
KNOWN = {
    "fit_constant": ("fit", (LR, N_EPOCH), {}),
    "fit_sgdr": ("fit", (LR, 2), {"cycle_len": 1, "cycle_mult": 4}),
    "fit_use_clr": ("fit", (LR, N_EPOCH), {"cycle_len": 1, "use_clr": (20, 4)}),
    "fit_use_clr_beta": ("fit", (LR, 2), {"cycle_len": 1, "cycle_mult": 4, "use_clr_beta": (10, 10, 0.95, 0.85)}),
    "fit_one_cycle": ("fit_one_cycle", (N_EPOCH, LR), {}),
    "fit_cyclic": ("fit_cyclic", (N_EPOCH, LR), {"n_cycle": 2}),
    "fit_flat_cos": ("fit_flat_cos", (N_EPOCH, LR), {}),
    # a named scheduler callback passed to `fit(lr, n)` (it is made afresh for every call: `scheduler`)
    "cb_one_cycle": ("fit", (LR, N_EPOCH), {"scheduler": lambda: lrcycle.OneCycleCallback(pct_start=0.3)}),
    "cb_circular": ("fit", (LR, N_EPOCH), {"scheduler": lambda: lrcycle.CircularLRCallback(20, 4, (0.95, 0.85))}),
    "cb_sgdr": ("fit", (LR, N_EPOCH), {"scheduler": lambda: lrcycle.SGDRCallback(1, 1)}),
}
FORMS = {**KNOWN, **{name: (name, (N_EPOCH,), {}) for name in plans.PLANS if name not in ("fit", *KNOWN)}}
HAS_MIXED_PRECISION = hasattr(lrcycle, "MixedPrecision")


class DrawsRandom(Callback):
    """A user's callback with state: at every epoch's start it draws from numpy's, Python's and torch's RNGs
    and keeps the draws, so a resume that restored any RNG wrongly (or lost the state) shows."""

    order = 5

    def __init__(self):
        self.draws = []

    def before_epoch(self, learn):
        self.draws.append([float(np.random.rand()), random.random(), torch.rand(1).item()])

    def state_dict(self):
        return {"draws": [list(d) for d in self.draws]}

    def load_state_dict(self, state):
        self.draws = [list(d) for d in state["draws"]]


def fit_callbacks(mixed_precision: bool = False) -> list:
    """What each fit is given, the resumed one too: early stopping, averaging, accumulation, checkpoints."""
    cbs = [EarlyStoppingCallback(patience=2, min_delta=0.02), CycleAverage(), GradientAccumulation(2), DrawsRandom()]
    if mixed_precision:
        cbs.append(lrcycle.MixedPrecision(torch.bfloat16))
    return [*cbs, Checkpoint("ck", keep_all=True)]


def make_learner(path, seed=0) -> Learner:
    dls = make_dls(n_train=112)  # 7 batches: accumulation by 2 leaves a short last group
    model = make_mlp(seed=seed)
    return Learner(dls, model, opt_func=torch.optim.Adam, splitter=sequential_splitter(3), path=path,
                   progress=False, device="cpu")  # fmt: skip


class CopyModelsDir(Callback):
    """After the checkpoint of each epoch k, the `models/` folder as it stands, copied to `at_<k>/models`."""

    order = 99

    def after_epoch(self, learn):
        done = learn.epoch + 1
        shutil.copytree(learn.path / learn.model_dir, learn.path / f"at_{done}" / learn.model_dir)


def fit_call(form: str, **extra):
    method, args, kwargs = FORMS[form]
    kwargs = dict(kwargs)
    scheduler = kwargs.pop("scheduler", None)
    if scheduler is not None:  # a fresh scheduler callback first in the call's callbacks
        extra = {**extra, "cbs": [scheduler(), *extra.get("cbs", [])]}
    return method, args, {**kwargs, "best_save_name": "best", "cycle_save_name": "snap", **extra}


def seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def run_reference(root: Path, form: str, mixed_precision: bool = False) -> tuple[Learner, list]:
    """The uninterrupted fit, leaving a checkpoint and a copy of `models/` after every epoch."""
    seed_all(1)
    learn = make_learner(root / "reference")
    cbs = fit_callbacks(mixed_precision)
    method, args, kwargs = fit_call(form, cbs=[*cbs, CopyModelsDir()])
    getattr(learn, method)(*args, **kwargs)
    return learn, cbs


def resume_points(root: Path) -> list[int]:
    """The epochs k after which the reference left a checkpoint (fewer when early stopping ended it)."""
    return sorted(int(p.stem.split("_ep")[1]) for p in (root / "reference" / "models").glob("ck_ep*.pth"))


def resume_at(root: Path, form: str, k: int, how: str, mixed_precision: bool = False) -> tuple[Learner, list]:
    """A fresh learner in a copy of the reference's folder after epoch k, resumed from the checkpoint there
    by `learn.resume(name, cbs=...)` (`how='resume'`) or by the same fit call with `resume=name`."""
    path = root / f"resumed_{k}_{how}"
    shutil.copytree(root / "reference" / f"at_{k}", path)
    seed_all(1234 + k)  # another RNG state: the checkpoint's must be the one that counts
    learn = make_learner(path, seed=100 + k)  # other initial weights
    cbs = fit_callbacks(mixed_precision)
    if how == "resume":
        learn.resume(f"ck_ep{k}", cbs=cbs)
    else:
        method, args, kwargs = fit_call(form, cbs=cbs, resume=f"ck_ep{k}")
        getattr(learn, method)(*args, **kwargs)
    return learn, cbs


def final_state(learn: Learner, cbs: list) -> dict:
    """What must equal the reference's: weights, optimizer state, the recorder's traces (not epoch times),
    the random draws, the early stop and the averaging's result."""
    recorder = learn.recorder.state_dict()
    recorder["epochs"] = [{k: v for k, v in row.items() if k != "time"} for row in recorder["epochs"]]
    by_type = {type(cb).__name__: cb for cb in cbs}
    return {
        "model": learn.model.state_dict(),
        "opt": learn.opt.state_dict(),
        "recorder": recorder,
        "draws": by_type["DrawsRandom"].draws,
        "stopped_epoch": by_type["EarlyStoppingCallback"].stopped_epoch,
        "n_averaged": by_type["CycleAverage"].n_averaged,
    }


def written_files(path: Path) -> dict:
    """The model files a fit wrote (best model, cycle snapshots) by name, as bytes; checkpoints as content
    without the epochs' times (and the checksum over them) and with file names for paths (what differs between
    two runs)."""
    files = {}
    for file in sorted((path / "models").glob("*.pth")):
        if file.stem.startswith("ck_ep"):
            content = torch.load(file, weights_only=True)
            content.pop("checksum")  # it covers the times too
            for entry in content["state"]["callbacks"]:
                if entry["type"] == "Recorder":
                    for row in entry["state"]["epochs"]:
                        row.pop("time")
                if entry["type"] == "CycleSnapshotCallback":  # the files it saved, in whichever run's folder
                    entry["state"]["saved"] = [Path(f).name for f in entry["state"]["saved"]]
            files[file.name] = content
        else:
            files[file.name] = file.read_bytes()
    return files
