"""The Learner: owns model, optimizer, data and counters, runs the loop and fires the events."""

from __future__ import annotations

import contextlib
from functools import partial
from pathlib import Path

import torch
from torch import nn

from . import distributed
from .callback import (
    CancelBatchException,
    CancelEpochException,
    CancelFitException,
    CancelStepException,
    CancelTrainException,
    CancelValidException,
    check_callback,
    hook_table,
)
from .callbacks import lr_finder, schedulers, tracking
from .callbacks.progress import ProgressCallback
from .checks import check_moms, check_positive_int
from .distributed import is_main_process, unwrap
from .evaluation import eval_batches
from .hyper import set_lrs, set_wds
from .interrupt import InterruptAfterStep
from .layers import bn_param_ids, check_groups, freeze_groups, single_group, spread, spread_wd
from .preview import preview as preview_schedule
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
        if not hasattr(dls, "train"):
            raise TypeError("dls: expected a DataLoaders(train, valid), got " + type(dls).__name__)
        if not isinstance(model, nn.Module):
            raise TypeError(f"model: expected a torch nn.Module, got {type(model).__name__}")
        loss_func = loss_func if loss_func is not None else getattr(dls, "loss_func", None)
        if loss_func is None:
            raise ValueError("loss_func: none given and the DataLoaders carries none; pass loss_func=...")
        self.dls, self.loss_func, self.opt_func = dls, loss_func, opt_func
        self.splitter = splitter if splitter is not None else single_group
        self.layer_groups = check_groups(self.splitter(model), model)
        spread(lr, len(self.layer_groups), "lr")
        self.lr, self.wd, self.train_bn = lr, wd, train_bn
        if wd is not None:
            spread_wd(wd, len(self.layer_groups))
        self.moms = check_moms(moms, 3)
        # moved only once every argument checked out (Module.to keeps the same Parameter objects)
        self.device = torch.device(device) if device is not None else default_device()
        self.model = model.to(self.device)
        self.metrics = list(metrics)
        self.path, self.model_dir = Path(path), model_dir
        self.opt = None
        self.recorder = Recorder()
        self.sched = self.recorder  # the name fastai 0.7 notebooks use
        self.progress = ProgressCallback() if progress else None
        self.cbs = []
        self.add_cbs([self.recorder] + ([self.progress] if progress else []) + list(cbs or []))
        self._reset_state()

    def _reset_state(self) -> None:
        self.xb = self.yb = self.pred = self.loss = None
        self.epoch, self.n_epoch, self.iter, self.n_iter = 0, 0, 0, 0
        self.train_iter, self.total_iter = 0, 0
        self.cycle_ends: list[int] = []
        self.training, self.stepped, self.validated_this_epoch = False, False, False

    # ---- callbacks -----------------------------------------------------------------------------------
    def add_cbs(self, cbs) -> None:
        cbs = list(cbs)
        for cb in cbs:
            check_callback(cb)
        self.cbs.extend(cbs)
        self._hooks = hook_table(self.cbs)

    def remove_cbs(self, cbs) -> None:
        for cb in cbs:
            self.cbs.remove(cb)
        self._hooks = hook_table(self.cbs)

    @contextlib.contextmanager
    def added_cbs(self, cbs):
        """Callbacks that take part only inside this block (one the learner already has is not added twice)."""
        cbs = [cb for cb in (cbs or []) if cb not in self.cbs]
        self.add_cbs(cbs)
        try:
            yield
        finally:
            self.remove_cbs(cbs)

    @contextlib.contextmanager
    def removed_cbs(self, cbs):
        """These callbacks sit out this block, and come back after it."""
        cbs, before = list(cbs), list(self.cbs)
        self.remove_cbs(cbs)
        try:
            yield
        finally:
            # back in their old places, so the callback list reads as it did (ties in order keep list order)
            added = [cb for cb in self.cbs if cb not in before]
            self.cbs = [cb for cb in before if cb in cbs or cb in self.cbs] + added
            self._hooks = hook_table(self.cbs)

    def no_bar(self):
        """Turn the progress bar off inside this block."""
        return self.removed_cbs([cb for cb in self.cbs if isinstance(cb, ProgressCallback)])

    def _fire(self, event: str) -> None:
        for hook in self._hooks[event]:
            hook(self)

    def _with_events(self, body, stage: str, cancel: type[Exception]) -> None:
        """`before_<stage>`, the body, then `after_<stage>`; the stage's cancel exception skips to the end.

        On the per-batch path, so hooks are looped over here rather than through `_fire` (one call fewer
        each); `self._hooks` is read at each event, as callbacks may be added or removed by a hook.
        """
        before, cancelled, after = _STAGE_EVENTS[stage]
        try:
            for hook in self._hooks[before]:
                hook(self)
            body()
        except cancel:
            for hook in self._hooks[cancelled]:
                hook(self)
        for hook in self._hooks[after]:
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
        if self.n_groups == 1 and n != 0:
            raise ValueError(
                "freeze_to: this model has a single layer group, so there is nothing to freeze apart from "
                "everything; pass a splitter to Learner(splitter=...) to split it into groups"
            )
        freeze_groups(self.layer_groups, n, self.train_bn, bn_param_ids(self.model))

    def freeze(self) -> None:
        """Train only the last layer group."""
        self.freeze_to(-1)

    def unfreeze(self) -> None:
        """Train every layer group."""
        self.freeze_to(0)

    # ---- fitting ---------------------------------------------------------------------------------------
    @property
    def pct_train(self) -> float:
        return self.train_iter / self.total_iter if self.total_iter else 0.0

    def steps_per_epoch(self, cbs=()) -> int:
        """Optimizer steps an epoch will take: one per batch, unless a callback of the learner's or of the call
        (gradient accumulation) says otherwise through a `steps_per_epoch(n_batches)` method."""
        steps = self._check_data()
        for cb in [*self.cbs, *(cbs or [])]:
            if hasattr(cb, "steps_per_epoch"):
                steps = cb.steps_per_epoch(steps)
        return steps

    def _check_data(self) -> int:
        try:
            n_iter = len(self.dls.train)
        except TypeError:
            raise TypeError("dls.train: must be a sized iterable of (x, y) batches (len() is needed)") from None
        if n_iter == 0:
            raise ValueError("dls.train: the training data loader is empty (0 batches)")
        return n_iter

    def _prepare(self, lr, wd, cbs=()) -> list[float]:
        """Check lr, wd and the call's callbacks, then build the optimizer if needed; nothing is trained
        or changed on bad input."""
        self._check_data()
        for cb in cbs:
            check_callback(cb)
        lrs = spread(self.lr if lr is None else lr, self.n_groups, "lr")
        wds = None if wd is None else spread_wd(wd, self.n_groups)
        if self.opt is None:
            self.create_opt()
        set_lrs(self.opt, lrs)
        if wds is not None:
            set_wds(self.opt, wds)
        return lrs

    def fit_epochs(self, n_epoch: int, cbs=(), start_epoch: int = 0, with_valid: bool = True, cycle_ends=None) -> None:
        """Run the loop for `n_epoch` epochs with extra callbacks: every fit method comes down to this.

        `start_epoch` resumes a fit in its middle: epochs and `train_iter` count from there, so a
        schedule computed from `train_iter` picks up where it left off. `cycle_ends` (epoch counts after
        which each cycle of the fit's plan ends; none by default, as in a range test) is kept as
        `learn.cycle_ends` for the callbacks that act at cycle ends (snapshots, weight averaging).
        """
        n_iter = self._check_data()
        check_positive_int(n_epoch, "n_epoch")
        _check_start_epoch(start_epoch, n_epoch)
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
                self._cleanup()
                self.xb = self.yb = self.pred = self.loss = None  # free the last batch's graph

    def _cleanup(self) -> None:
        """Every `cleanup_fit` hook runs, even when one before it raises: each may have state to put back.
        The first error is raised once all have run."""
        errors = []
        for hook in self._hooks["cleanup_fit"]:
            try:
                hook(self)
            except Exception as error:
                errors.append(error)
        if errors:
            raise errors[0]

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
        self.in_step = True
        self.opt.step()
        self.stepped = True
        self.train_iter += 1
        self.in_step = False

    def _run_validation(self, dl) -> None:
        self.training = False
        self.model.eval()  # the stage's mode, as the validation hooks see it and as it is left afterwards
        self._valid_dl = dl
        self._with_events(self._do_validate, "validate", CancelValidException)
        self.validated_this_epoch = True

    def _do_validate(self) -> None:
        with eval_batches(self.model, self._valid_dl, self.device) as batches:
            for i, (xb, yb) in enumerate(batches):
                self.iter, self.xb, self.yb = i, xb, yb
                self._with_events(self._valid_batch, "batch", CancelBatchException)

    def _valid_batch(self) -> None:
        self.loss = None
        self.pred = self.model(self.xb)
        self._fire("after_pred")
        self.loss = self.loss_func(self.pred, self.yb)
        self._fire("after_loss")

    def fit(
        self,
        lr=None,
        n_cycle: int = 1,
        cycle_len=None,
        cycle_mult=1,
        use_clr=None,
        use_clr_beta=None,
        wd=None,
        cbs=None,
        cycle_save_name=None,
        best_save_name=None,
        start_epoch: int = 0,
    ) -> None:
        """Train with fastai 0.7 semantics: `n_cycle` epochs at constant `lr`, or, with `cycle_len`, `n_cycle`
        cycles of SGDR cosine restarts (`use_clr=(div, cut_div)` or `use_clr_beta=(div, pct)` for the
        triangular shapes); cycle c lasts `cycle_len * cycle_mult**c` epochs."""
        lrs = spread(self.lr if lr is None else lr, self.n_groups, "lr")
        plan = schedulers.fit_plan(lrs, n_cycle, cycle_len, cycle_mult, use_clr, use_clr_beta)
        self._run_plan(plan, lrs, wd, cbs, cycle_save_name, best_save_name, start_epoch)

    def fit_one_cycle(
        self,
        n_epoch: int,
        lr_max=None,
        div: float = 25.0,
        div_final: float = 1e5,
        pct_start: float = 0.25,
        moms=None,
        wd=None,
        cbs=None,
        cycle_save_name=None,
        best_save_name=None,
        start_epoch: int = 0,
    ) -> None:
        """One cycle (fastai v2): lr warms from lr_max/div to lr_max by cosine over `pct_start` of the
        iterations, then anneals to lr_max/div_final; momentum moves inversely, through `moms`."""
        lrs = spread(self.lr if lr_max is None else lr_max, self.n_groups, "lr_max")
        moms = check_moms(self.moms if moms is None else moms, 3)
        plan = schedulers.one_cycle_plan(n_epoch, lrs, div, div_final, pct_start, moms)
        self._run_plan(plan, lrs, wd, cbs, cycle_save_name, best_save_name, start_epoch)

    def fit_cyclic(
        self,
        n_epoch: int,
        lr_max,
        base_lr=None,
        step_size=None,
        n_cycles=None,
        mode: str = "triangular",
        gamma: float = 1.0,
        moms=None,
        wd=None,
        cbs=None,
        cycle_save_name=None,
        best_save_name=None,
        start_epoch: int = 0,
    ) -> None:
        """Smith's cyclical learning rates: triangular waves between `base_lr` (default lr_max/4) and
        `lr_max`, `step_size` iterations per half cycle or `n_cycles` cycles over the fit."""
        lrs = spread(lr_max, self.n_groups, "lr_max")
        plan = schedulers.cyclic_plan(
            n_epoch, self.steps_per_epoch(cbs), lrs, base_lr, step_size, n_cycles, mode, gamma, moms, self.n_groups
        )
        self._run_plan(plan, lrs, wd, cbs, cycle_save_name, best_save_name, start_epoch)

    def _run_plan(self, plan, lrs, wd, cbs, cycle_save_name, best_save_name, start_epoch) -> None:
        """What every fit method ends with: saving callbacks, every check, the optimizer, then the loop."""
        _check_start_epoch(start_epoch, plan.n_epoch)
        if best_save_name is not None and self.dls.valid is None:
            raise ValueError("best_save_name: keeping the best model needs validation data (DataLoaders.valid)")
        cbs = plan.cbs + tracking.save_callbacks(cycle_save_name, best_save_name, plan.cycle_ends) + list(cbs or [])
        self._prepare(lrs, wd, cbs)
        self.fit_epochs(plan.n_epoch, cbs, start_epoch, cycle_ends=plan.cycle_ends)

    def lr_find(
        self,
        start_lr=1e-7,
        end_lr=10,
        num_it: int = 100,
        stop_div: bool = True,
        linear: bool = False,
        suggest_funcs=None,
        show_plot: bool = False,
    ):
        """The learning-rate range test; the model, optimizer and RNGs are put back exactly afterwards.

        Returns a named tuple of suggested learning rates, one field per suggestion function."""
        return lr_finder.lr_find(self, start_lr, end_lr, num_it, stop_div, linear, suggest_funcs, show_plot)

    def preview(self, method, *args, plot: bool = False, **kwargs):
        """The lr and momentum per iteration that `method` ("fit", "fit_one_cycle" or "fit_cyclic") called
        with these arguments would set, as a DataFrame like `recorder.iter_df()`; nothing is trained or
        changed. `plot=True` draws it too."""
        return preview_schedule(self, method, *args, plot=plot, **kwargs)

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
        preds, targets, inputs = [], [], []
        with eval_batches(self.model, dl, self.device) as batches:
            for xb, yb in batches:
                preds.append(self.model(xb).cpu())
                targets.append(yb.cpu() if isinstance(yb, torch.Tensor) else torch.as_tensor(yb))
                if with_input:
                    inputs.append(xb.cpu())
        out = (torch.cat(preds), torch.cat(targets))
        return (torch.cat(inputs), *out) if with_input else out

    # ---- saving ------------------------------------------------------------------------------------------
    def model_path(self, name: str) -> Path:
        return self.path / self.model_dir / f"{name}.pth"

    def save(self, name: str, with_opt: bool = True) -> Path:
        """Write model (and optimizer) state to `path/model_dir/<name>.pth`; only rank 0 writes."""
        file = self.model_path(name)
        if is_main_process():
            file.parent.mkdir(parents=True, exist_ok=True)
            state = {"model": unwrap(self.model).state_dict()}
            if with_opt and self.opt is not None:
                state["opt"] = self.opt.state_dict()
            torch.save(state, file)
        return file

    def load(self, name: str, with_opt: bool = True, strict: bool = True) -> Learner:
        """Read what `save` wrote (`weights_only=True`: no code in the file is run)."""
        state = torch.load(self.model_path(name), map_location=self.device, weights_only=True)
        unwrap(self.model).load_state_dict(state["model"], strict=strict)
        if with_opt and "opt" in state:
            if self.opt is None:
                self.create_opt()
            self.opt.load_state_dict(state["opt"])
        return self


def _check_start_epoch(start_epoch, n_epoch: int) -> None:
    if isinstance(start_epoch, bool) or not isinstance(start_epoch, int) or not 0 <= start_epoch < n_epoch:
        raise ValueError(f"start_epoch: must be an integer in [0, {n_epoch}), got {start_epoch!r}")
