"""Preview a fit call's lr and momentum curves before training, without touching the model or optimizer.

The fit call's arguments go through the same plan as the real fit, and its scheduler callbacks run over a
dry loop (no data, no model) against a throwaway copy of the optimizer's param-group hyperparameters, so
the preview is what the recorder will record, one row per optimizer step (under `GradientAccumulation`,
one per group of batches).
"""

from __future__ import annotations

import inspect

import pandas as pd
import torch

from . import plots
from .callbacks import schedulers
from .checks import check_moms
from .hyper import get_mom, hypers_snapshot
from .layers import spread

PREVIEWABLE = ("fit", "fit_one_cycle", "fit_cyclic")


def preview(learn, method: str, *args, plot: bool = False, **kwargs) -> pd.DataFrame:
    """Rows `iter, epoch, lr, mom` (+ `lr_<g>` per group when there are several), as `recorder.iter_df()`.

    `method` names the fit call (`"fit"`, `"fit_one_cycle"`, `"fit_cyclic"`, or the bound method itself);
    `args`/`kwargs` are that call's. Bad arguments raise the ValueError the fit itself would raise.
    `plot=True` also draws it (`plots.plot_schedule`).
    """
    name = getattr(method, "__name__", method)
    if name not in PREVIEWABLE:
        raise ValueError(f"method: must be one of {', '.join(PREVIEWABLE)}, got {method!r}")
    call = inspect.signature(getattr(type(learn), name)).bind(learn, *args, **kwargs)
    call.apply_defaults()
    plan, lrs = _plan(learn, name, call.arguments)
    n_iter = learn.steps_per_epoch(call.arguments["cbs"])
    df = dry_run(plan, _throwaway_groups(learn, lrs), n_iter, call.arguments["start_epoch"])
    if plot:
        plots.plot_schedule(df)
    return df


def _plan(learn, name: str, a: dict) -> tuple[schedulers.Plan, list[float]]:
    """The plan and lrs that `Learner.<name>` builds from the same arguments."""
    n = learn.n_groups
    if name == "fit":
        lrs = spread(learn.lr if a["lr"] is None else a["lr"], n, "lr")
        args = (a["n_cycle"], a["cycle_len"], a["cycle_mult"], a["use_clr"], a["use_clr_beta"])
        return schedulers.fit_plan(lrs, *args), lrs
    if name == "fit_one_cycle":
        lrs = spread(learn.lr if a["lr_max"] is None else a["lr_max"], n, "lr_max")
        moms = check_moms(learn.moms if a["moms"] is None else a["moms"], 3)
        args = (a["div"], a["div_final"], a["pct_start"], moms)
        return schedulers.one_cycle_plan(a["n_epoch"], lrs, *args), lrs
    lrs = spread(a["lr_max"], n, "lr_max")
    args = (a["base_lr"], a["step_size"], a["n_cycles"], a["mode"], a["gamma"], a["moms"], n)
    return schedulers.cyclic_plan(a["n_epoch"], learn.steps_per_epoch(a["cbs"]), lrs, *args), lrs


def _throwaway_groups(learn, lrs: list[float]) -> list[dict]:
    """Copies of the optimizer's param-group hyperparameters (of a stand-in optimizer on dummy tensors when
    the learner has none yet), set to the fit's lrs as the fit would set them."""
    if learn.opt is not None:
        groups = hypers_snapshot(learn.opt)
    else:
        dummies = [{"params": [torch.zeros(1, requires_grad=True)]} for _ in range(learn.n_groups)]
        groups = hypers_snapshot(learn.opt_func(dummies, lr=lrs[-1]))
    for group, lr in zip(groups, lrs, strict=True):
        group["lr"] = lr
    return groups


class _DryLearner:
    """The learner state a scheduler reads, with nothing behind it: no model, data or real optimizer."""

    def __init__(self, groups: list[dict], n_epoch: int, n_iter: int):
        self.opt = _Groups(groups)
        self.n_epoch, self.n_iter, self.total_iter = n_epoch, n_iter, n_epoch * n_iter
        self.training, self.train_iter, self.epoch, self.iter = True, 0, 0, 0


class _Groups:
    def __init__(self, param_groups: list[dict]):
        self.param_groups = param_groups


def dry_run(plan: schedulers.Plan, groups: list[dict], n_iter: int, start_epoch: int = 0) -> pd.DataFrame:
    """Fire the plan's `before_fit` and per-batch `before_batch` hooks over `n_iter` iterations an epoch,
    reading every group's lr and the last group's momentum after them, as the recorder does after a step."""
    learn = _DryLearner(groups, plan.n_epoch, n_iter)
    cbs = sorted(plan.cbs, key=lambda cb: cb.order)
    for cb in cbs:
        if hasattr(cb, "before_fit"):
            cb.before_fit(learn)
    rows = []
    for learn.epoch in range(start_epoch, plan.n_epoch):
        for learn.iter in range(n_iter):
            learn.train_iter = learn.epoch * n_iter + learn.iter
            for cb in cbs:
                if hasattr(cb, "before_batch"):
                    cb.before_batch(learn)
            lrs = [g["lr"] for g in groups]
            rows.append([learn.train_iter, learn.epoch, lrs[-1], get_mom(groups[-1]), *lrs])
    columns = ["iter", "epoch", "lr", "mom", *[f"lr_{g}" for g in range(len(groups))]]
    df = pd.DataFrame(rows, columns=columns)
    return df if len(groups) > 1 else df.drop(columns="lr_0")
