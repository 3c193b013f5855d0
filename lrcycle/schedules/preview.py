"""Preview a fit call's lr and momentum curves before training: the schedule the call would run, evaluated.

Nothing is trained and the model and optimizer are not touched. Where the schedule leaves momentum alone,
the preview shows the momentum the optimizer holds (or would be built with).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from .. import plots
from ..optim import get_mom
from ..validate import check_start_epoch
from .schedule import Schedule

if TYPE_CHECKING:
    import pandas as pd


def preview_schedule(learn, schedule: Schedule, fit_args: dict, plot: bool = False) -> pd.DataFrame:
    """What a fit running `schedule` (the one the call would apply: `learn.preview` plans it) sets per step from
    its `start_epoch`, and a plot if asked."""
    start_epoch = check_start_epoch(fit_args.get("start_epoch", 0), schedule.n_epoch)
    df = schedule_df(schedule, current_momentum(learn), start_epoch)
    if plot:
        plots.plot_schedule(df)
    return df


def schedule_df(schedule: Schedule, mom_default: float | None, start_epoch: int = 0) -> pd.DataFrame:
    """Rows `iter, epoch, lr, mom` (+ `lr_<g>` per group when there are several), as `recorder.iter_df()`
    has them, one per optimizer step from `start_epoch` on."""
    import pandas as pd  # here, not at import: pandas costs `import lrcycle` about 0.15 s

    rows = []
    for i in range(start_epoch * schedule.steps_per_epoch, schedule.n_steps):
        lrs, mom = schedule(i)
        rows.append([i, i // schedule.steps_per_epoch, lrs[-1], mom_default if mom is None else mom, *lrs])
    n_groups = len(schedule.lrs)
    df = pd.DataFrame(rows, columns=["iter", "epoch", "lr", "mom", *[f"lr_{g}" for g in range(n_groups)]])
    return df if n_groups > 1 else df.drop(columns="lr_0")


def current_momentum(learn) -> float | None:
    """The last group's momentum: the optimizer's, or what `opt_func` builds (on stand-in tensors) if none."""
    if learn.opt is not None:
        return get_mom(learn.opt.param_groups[-1])
    dummies = [{"params": [torch.zeros(1, requires_grad=True)]} for _ in range(learn.n_groups)]
    return get_mom(learn.opt_func(dummies, lr=1e-3).param_groups[-1])
