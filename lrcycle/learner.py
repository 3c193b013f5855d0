"""The Learner: owns model, optimizer, data and counters, runs the loop and fires the events.

Its entry points are short and parallel: each fit form checks its arguments and builds a schedule
(`plans.py`), then runs the loop with the one callback that applies it; `lr_find` hands over to
`range_test.py`. Argument checks live in `checks.py`, saving in `checkpoint.py`.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import torch
from torch import nn

from . import checkpoint, distributed, plans, plots
from .callback import (
    CallbackList,
    CancelBatchException,
    CancelEpochException,
    CancelFitException,
    CancelStepException,
    CancelTrainException,
    CancelValidException,
    check_callback,
)
from .callbacks import tracking
from .callbacks.param_scheduler import ParamScheduler
from .callbacks.progress import ProgressCallback
from .checks import (
    check_cbs,
    check_learner_args,
    check_moms,
    check_positive_int,
    check_start_epoch,
    check_train_loader,
    spread,
    spread_wd,
)
from .hyper import set_lrs, set_wds
from .interrupt import InterruptAfterStep
from .layers import bn_param_ids, check_groups, freeze_groups, single_group
from .preview import current_momentum, schedule_df
from .range_test import run_range_test
from .recorder import Recorder


def default_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def _to_device(batch, device):
    if isinstance(batch, torch.Tensor) and batch.device != device:
        return batch.to(device)
    return batch


# Each stage's event names, built once rather than formatted on every batch.
_STAGE_EVENTS = {
    stage: (f"before_{stage}", f"after_cancel_{stage}", f"after_{stage}")
    for stage in ("fit", "epoch", "train", "validate", "batch", "step")
}


class Learner:
    """Trains `model` on `dls` with `loss_func`, firing the events of `callback.EVENTS` to its callbacks."""

    def __init__(
        self,
        dls,
        model: nn.Module,
        loss_func=None,
        opt_func=partial(torch.optim.SGD, momentum=0.9),
        lr=1e-3,
        splitter=None,
        cbs=None,
        metrics=(),
        wd=None,
        train_bn: bool = True,
        moms=(0.95, 0.85, 0.95),
        device=None,
        progress: bool = True,
        path=".",
        model_dir="models",
    ):
        loss_func = check_learner_args(dls, model, loss_func)
        self.dls, self.loss_func, self.opt_func = dls, loss_func, opt_func
        self.splitter = splitter if splitter is not None else single_group
        self.layer_groups = check_groups(self.splitter(model), model)
        spread(lr, len(self.layer_groups), "lr")
        self.lr, self.wd, self.train_bn = lr, wd, train_bn
        if wd is not None:
            spread_wd(wd, len(self.layer_groups))
        self.moms = check_moms(moms, 3)
        cbs = check_cbs(cbs)
        # moved only once every argument checked out (Module.to keeps the same Parameter objects)
        self.device = torch.device(device) if device is not None else default_device()
        self.model = model.to(self.device)
        self.metrics = list(metrics)
        self.path, self.model_dir = Path(path), model_dir
        self.opt = None
        self.recorder = self.sched = Recorder()  # `sched`: the name fastai 0.7 notebooks use
        self.progress = ProgressCallback() if progress else None
        self.callbacks = CallbackList()
        self.add_cbs([self.recorder] + ([self.progress] if progress else []) + cbs)
        self.xb = self.yb = self.pred = self.loss = None
        self.epoch, self.n_epoch, self.iter, self.n_iter, self.train_iter, self.total_iter = 0, 0, 0, 0, 0, 0
        self.cycle_ends: list[int] = []
        self.training, self.stepped, self.validated_this_epoch = False, False, False

    # ---- callbacks -----------------------------------------------------------------------------------
    @property
    def cbs(self) -> list:
        return self.callbacks.items

    def add_cbs(self, cbs) -> None:
        self.callbacks.add(cbs)

    def remove_cbs(self, cbs) -> None:
        self.callbacks.remove(cbs)

    def added_cbs(self, cbs):
        """Callbacks that take part only inside this `with` block."""
        return self.callbacks.added(cbs)

    def removed_cbs(self, cbs):
        """These callbacks sit out this `with` block, and come back after it in their old places."""
        return self.callbacks.removed(cbs)

    def no_bar(self):
        """Turn the progress bar off inside this `with` block."""
        return self.removed_cbs([cb for cb in self.cbs if isinstance(cb, ProgressCallback)])

    def _fire(self, event: str) -> None:
        for hook in self.callbacks.hooks[event]:
            hook(self)

    def _with_events(self, body, stage: str, cancel: type[Exception]) -> None:
        """`before_<stage>`, the body, then `after_<stage>`; the stage's cancel exception skips to the end.
        Hooks are looped over here, on the per-batch path; the table is read at each event, as a hook may
        add or remove callbacks."""
        before, cancelled, after = _STAGE_EVENTS[stage]
        try:
            for hook in self.callbacks.hooks[before]:
                hook(self)
            body()
        except cancel:
            for hook in self.callbacks.hooks[cancelled]:
                hook(self)
        for hook in self.callbacks.hooks[after]:
            hook(self)

    # ---- optimizer and layer groups ------------------------------------------------------------------
    @property
    def n_groups(self) -> int:
        return len(self.layer_groups)

    def create_opt(self) -> torch.optim.Optimizer:
        """A fresh optimizer, one param group per layer group, at the learner's lr (and wd if set)."""
        lrs = spread(self.lr, self.n_groups, "lr")
        self.opt = self.opt_func([{"params": group} for group in self.layer_groups], lr=lrs[-1])
        set_lrs(self.opt, lrs)
        if self.wd is not None:
            set_wds(self.opt, spread_wd(self.wd, self.n_groups))
        return self.opt

    def freeze_to(self, n: int) -> None:
        """Groups before `n` stop training (BatchNorm parameters stay trainable when `train_bn`)."""
        freeze_groups(self.layer_groups, n, self.train_bn, bn_param_ids(self.model))

    def freeze(self) -> None:
        self.freeze_to(-1)

    def unfreeze(self) -> None:
        self.freeze_to(0)

    # ---- the loop --------------------------------------------------------------------------------------
    @property
    def pct_train(self) -> float:
        return self.train_iter / self.total_iter if self.total_iter else 0.0

    def steps_per_epoch(self, cbs=()) -> int:
        """Optimizer steps an epoch takes: one per batch, unless a callback of the learner's or of the call
        (gradient accumulation) says otherwise through a `steps_per_epoch(n_batches)` method."""
        steps = check_train_loader(self.dls.train)
        for cb in [*self.cbs, *(cbs or [])]:
            if hasattr(cb, "steps_per_epoch"):
                steps = cb.steps_per_epoch(steps)
        return steps

    def fit_epochs(self, n_epoch: int, cbs=(), start_epoch: int = 0, with_valid: bool = True, cycle_ends=None) -> None:
        """Run the loop for `n_epoch` epochs with extra callbacks: every fit form comes down to this.

        `start_epoch` resumes a fit in its middle: epochs and `train_iter` count from there, so a schedule
        read at `train_iter` picks up where it left off. `cycle_ends` (epoch counts after which the plan's
        cycles end) is kept as `learn.cycle_ends` for the callbacks that act there (snapshots, averaging).
        """
        n_iter = check_train_loader(self.dls.train)
        check_positive_int(n_epoch, "n_epoch")
        check_start_epoch(start_epoch, n_epoch)
        if self.opt is None:
            self.create_opt()
        self.n_epoch, self.n_iter, self.start_epoch = n_epoch, n_iter, start_epoch
        self.total_iter, self.train_iter = n_epoch * n_iter, start_epoch * n_iter
        self.cycle_ends = [] if cycle_ends is None else list(cycle_ends)
        self.with_valid = with_valid and self.dls.valid is not None
        with self.added_cbs(cbs), InterruptAfterStep(self):
            try:
                self._with_events(self._do_fit, "fit", CancelFitException)
            finally:
                self.callbacks.run_all("cleanup_fit", self)
                self.xb = self.yb = self.pred = self.loss = None  # free the last batch's graph

    def _do_fit(self) -> None:
        for epoch in range(self.start_epoch, self.n_epoch):
            self.epoch = epoch
            self._with_events(self._do_epoch, "epoch", CancelEpochException)

    def _do_epoch(self) -> None:
        self.validated_this_epoch = False
        self._with_events(self._do_train, "train", CancelTrainException)
        if self.with_valid:
            self._run_validation(self.dls.valid)

    def _do_train(self) -> None:
        self.training = True
        self.model.train()
        device = self.device
        for i, (xb, yb) in enumerate(self.dls.train):
            self.iter, self.xb, self.yb = i, _to_device(xb, device), _to_device(yb, device)
            self._with_events(self._train_batch, "batch", CancelBatchException)

    def _train_batch(self) -> None:
        self.stepped = False
        self.loss = None
        self.pred = self.model(self.xb)
        self._fire("after_pred")
        self.loss = self.loss_func(self.pred, self.yb)
        self._fire("after_loss")
        self._fire("before_backward")
        self.loss.backward()
        self._with_events(self._step, "step", CancelStepException)
        if self.stepped:
            self.opt.zero_grad()

    def _step(self) -> None:
        self._in_step = True
        self.opt.step()
        self.stepped = True
        self.train_iter += 1
        self._in_step = False

    def _run_validation(self, dl) -> None:
        self.training = False
        self.model.eval()
        self._valid_dl = dl
        self._with_events(self._do_validate, "validate", CancelValidException)
        self.validated_this_epoch = True

    def _do_validate(self) -> None:
        device = self.device
        with torch.no_grad():
            for i, (xb, yb) in enumerate(self._valid_dl):
                self.iter, self.xb, self.yb = i, _to_device(xb, device), _to_device(yb, device)
                self._with_events(self._valid_batch, "batch", CancelBatchException)

    def _valid_batch(self) -> None:
        self.loss = None
        self.pred = self.model(self.xb)
        self._fire("after_pred")
        self.loss = self.loss_func(self.pred, self.yb)
        self._fire("after_loss")

    # ---- entry points: arguments, then schedule, then the loop ---------------------------------------
    def fit(self, lr=None, n_cycle=1, cycle_len=None, cycle_mult=1, use_clr=None, use_clr_beta=None, **kwargs):
        """fastai 0.7 `fit`: `n_cycle` epochs at constant `lr`, or with `cycle_len`, `n_cycle` cycles of SGDR
        (0.7's warm-up at lr/100 first), `use_clr=(div, cut_div)` or `use_clr_beta=(div, pct)`; cycle c lasts
        `cycle_len * cycle_mult**c` epochs. `kwargs`, for every fit form: `wd, cbs, cycle_save_name,
        best_save_name, start_epoch`."""
        self._fit(plans.fit, (lr, n_cycle, cycle_len, cycle_mult, use_clr, use_clr_beta), **kwargs)

    def fit_one_cycle(self, n_epoch, lr_max=None, div=25.0, div_final=1e5, pct_start=0.25, moms=None, **kwargs):
        """One cycle (fastai v2): cosine warm-up from lr_max/div to lr_max over `pct_start`, then cosine down to
        lr_max/div_final; momentum through `moms` the other way."""
        self._fit(plans.fit_one_cycle, (n_epoch, lr_max, div, div_final, pct_start, moms), **kwargs)

    def fit_cyclic(
        self,
        n_epoch,
        lr_max,
        base_lr=None,
        step_size=None,
        n_cycles=None,
        mode="triangular",
        gamma=1.0,
        moms=None,
        **kwargs,
    ):
        """Smith's cyclical lrs: triangle waves between `base_lr` (default lr_max/4) and `lr_max`, `step_size`
        iterations per half cycle or `n_cycles` cycles over the fit."""
        self._fit(plans.fit_cyclic, (n_epoch, lr_max, base_lr, step_size, n_cycles, mode, gamma, moms), **kwargs)

    def fit_flat_cos(self, n_epoch, lr=None, div_final=1e5, pct_start=0.75, **kwargs):
        """fastai v2 `fit_flat_cos`: flat at `lr` for `pct_start` of the fit, then cosine down to lr/div_final."""
        self._fit(plans.fit_flat_cos, (n_epoch, lr, div_final, pct_start), **kwargs)

    def plan_defaults(self, cbs=None) -> plans.PlanDefaults:
        """What a plan reads from the learner: group count, default lr and momenta, steps an epoch."""
        return plans.PlanDefaults(self.n_groups, self.lr, self.moms, self.steps_per_epoch(check_cbs(cbs)))

    def _fit(self, plan, args, wd=None, cbs=None, cycle_save_name=None, best_save_name=None, start_epoch=0) -> None:
        """What every fit form does: its plan's schedule, every check, the optimizer, then the loop."""
        schedule = plan(self.plan_defaults(cbs), *args)
        check_start_epoch(start_epoch, schedule.n_epoch)
        if best_save_name is not None and self.dls.valid is None:
            raise ValueError("best_save_name: keeping the best model needs validation data (DataLoaders.valid)")
        saving = tracking.save_callbacks(cycle_save_name, best_save_name, schedule.cycle_ends)
        cbs = [ParamScheduler(schedule), *saving, *check_cbs(cbs)]
        for cb in cbs:
            check_callback(cb)
        wds = None if wd is None else spread_wd(wd, self.n_groups)
        if self.opt is None:
            self.create_opt()
        set_lrs(self.opt, schedule.lrs)
        if wds is not None:
            set_wds(self.opt, wds)
        self.fit_epochs(schedule.n_epoch, cbs, start_epoch, cycle_ends=schedule.cycle_ends)

    def lr_find(
        self, start_lr=1e-7, end_lr=10, num_it=100, stop_div=True, linear=False, suggest_funcs=None, show_plot=False
    ):
        """The learning-rate range test; the model, optimizer and RNGs are put back exactly afterwards.
        Returns the suggestions (by name or index, default first) with the curve (`.plot()`, `.df()`)."""
        return run_range_test(self, start_lr, end_lr, num_it, stop_div, linear, suggest_funcs, show_plot)

    def preview(self, method, *args, plot: bool = False, **kwargs):
        """The lr and momentum per step that `learn.<method>(*args, **kwargs)` would set, as a DataFrame like
        `recorder.iter_df()` (and a plot): the schedule the fit would build, evaluated; nothing is touched."""
        schedule, fit_args = plans.plan_call(self.plan_defaults(kwargs.get("cbs")), method, args, kwargs)
        start_epoch = check_start_epoch(fit_args.get("start_epoch", 0), schedule.n_epoch)
        df = schedule_df(schedule, current_momentum(self), start_epoch)
        if plot:
            plots.plot_schedule(df)
        return df

    def distrib_ctx(self):
        """Under torchrun, train data-parallel inside this `with` block; outside torchrun it does nothing."""
        return distributed.distrib_ctx(self)

    # ---- evaluation ------------------------------------------------------------------------------------
    def validate(self, dl=None) -> list[float]:
        """[valid_loss, *metrics] over `dl` (default the validation loader), with the validation events."""
        dl = self.dls.valid if dl is None else dl
        if dl is None:
            raise ValueError("dl: no validation data; pass dl=... or give DataLoaders a valid loader")
        was_training = self.model.training
        try:
            self._run_validation(dl)
        finally:
            self.model.train(was_training)
            self.xb = self.yb = self.pred = self.loss = None
        return list(self.recorder.last_valid)

    def get_preds(self, dl=None, with_input: bool = False):
        """(predictions, targets) over `dl` (default the validation loader), model in eval mode, no events."""
        dl = self.dls.valid if dl is None else dl
        if dl is None:
            raise ValueError("dl: no validation data; pass dl=... or give DataLoaders a valid loader")
        was_training = self.model.training
        self.model.eval()
        preds, targets, inputs = [], [], []
        try:
            with torch.no_grad():
                for xb, yb in dl:
                    xb = _to_device(xb, self.device)
                    preds.append(self.model(xb).cpu())
                    targets.append(yb.cpu() if isinstance(yb, torch.Tensor) else torch.as_tensor(yb))
                    if with_input:
                        inputs.append(xb.cpu())
        finally:
            self.model.train(was_training)
        out = (torch.cat(preds), torch.cat(targets))
        return (torch.cat(inputs), *out) if with_input else out

    # ---- saving ------------------------------------------------------------------------------------------
    def model_path(self, name: str) -> Path:
        return checkpoint.model_path(self, name)

    def save(self, name: str, with_opt: bool = True) -> Path:
        """Write model (and optimizer) state to `path/model_dir/<name>.pth`; only rank 0 writes."""
        return checkpoint.save(self, name, with_opt)

    def load(self, name: str, with_opt: bool = True, strict: bool = True) -> Learner:
        """Read what `save` wrote (`weights_only=True`: no code in the file is run)."""
        checkpoint.load(self, name, with_opt, strict)
        return self
