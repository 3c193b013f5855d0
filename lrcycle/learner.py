"""The Learner: owns model, optimizer, data and counters, runs the loop and fires the events.

Its entry points are short and parallel: each fit form checks its arguments and builds a schedule
(`plans.py`), then runs the loop with the one callback that applies it; `lr_find` hands over to
`range_test.py`. Argument checks live in `checks.py`, saving in `checkpoint.py`.
"""

from __future__ import annotations

from contextlib import nullcontext
from functools import partial
from pathlib import Path

import torch
from torch import nn

from . import checkpoint, distributed, plans, tuning
from . import resume as resume_fit
from .batches import compute_loss, forward, module_to, split, to_device
from .callback import (
    CallbackList,
    CancelBatchException,
    CancelEpochException,
    CancelFitException,
    CancelStepException,
    CancelTrainException,
    CancelValidException,
)
from .callbacks import tracking
from .callbacks.first_step_guard import FirstStepGuard
from .callbacks.loss_check import NonFiniteLossCheck
from .callbacks.mixed_precision import use_mixed_precision
from .callbacks.param_scheduler import ParamScheduler
from .callbacks.progress import ProgressCallback
from .callbacks.schedule_free import eval_weights, schedule_free_switches
from .checks import (
    check_cbs,
    check_fit_start,
    check_hypers,
    check_learner_args,
    check_metrics,
    check_n_inp,
    check_positive_int,
    check_start_epoch,
    check_train_loader,
    check_valid_loader,
    check_wd,
    learner_layer_groups,
    wd_or_wds,
)
from .evaluation import end_validation, eval_batches, predictions
from .hyper import build_optimizer, set_hypers
from .interrupt import guarded, holds_sigint
from .layers import bn_param_ids, freeze_groups, single_group
from .prediction import item_ndim, predict
from .preview import preview_call
from .range_test import run_range_test
from .recorder import Recorder
from .training_state import plain_names
from .tuning import TUNE_BUDGET, TUNE_FACTORS, TUNE_MARGIN


def default_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


# Each stage's event names, built once rather than formatted on every batch.
_STAGE_EVENTS = {
    stage: (f"before_{stage}", f"after_cancel_{stage}", f"after_{stage}")
    for stage in ("fit", "epoch", "train", "validate", "batch", "step")
}


class Learner:
    """Trains `model` on `dls` with `loss_func`, firing the events of `callback.EVENTS` to its callbacks."""

    def __init__(self, dls, model: nn.Module, loss_func=None, opt_func=partial(torch.optim.SGD, momentum=0.9),
                 lr=1e-3, splitter=None, cbs=None, metrics=(), wd=None, train_bn: bool = True, moms=(0.95, 0.85, 0.95),
                 device=None, progress=True, path=".", model_dir="models", opt=None, n_inp=None):  # fmt: skip
        loss_func = check_learner_args(dls, model, loss_func, splitter, opt_func)
        self.dls, self.loss_func, self.opt_func = dls, loss_func, opt_func
        self.splitter = splitter if splitter is not None else single_group
        self.layer_groups = learner_layer_groups(model, splitter, opt)  # with `opt`: its param groups
        self.lr, self.wd, self.train_bn, self.moms = lr, wd, train_bn, check_hypers(lr, wd, moms, self.n_groups)
        cbs, self.metrics, self.n_inp = check_cbs(cbs), check_metrics(metrics), check_n_inp(n_inp)
        self.device = torch.device(device) if device is not None else default_device()
        self.model = module_to(model, self.device)  # once every argument checked out (the same Parameters)
        self.path, self.model_dir = Path(path), model_dir
        self.opt, self.scaler, self.autocast = opt, None, nullcontext()  # opt None: built at the first fit
        self.recorder = self.sched = Recorder()  # `sched`: the name fastai 0.7 notebooks use
        self.progress = ProgressCallback() if progress else None
        guards = [NonFiniteLossCheck(), FirstStepGuard()]  # errors and warnings, not silence
        self.callbacks = CallbackList([self.recorder, *guards] + ([self.progress] if progress else []) + cbs)
        self.cbs = self.callbacks.items  # the same list: `learn.cbs` always reads the callbacks taking part
        self.xb = self.yb = self.pred = self.loss = None
        self.epoch, self.n_epoch, self.iter, self.n_iter, self.train_iter, self.total_iter = 0, 0, 0, 0, 0, 0
        self.cycle_ends, self.fit_call = [], None  # fit_call: the names a checkpoint keeps
        self.training, self.stepped, self.validated_this_epoch = False, False, False

    def add_cbs(self, cbs) -> None:
        self.callbacks.add(cbs)

    def remove_cbs(self, cbs) -> None:
        self.callbacks.remove(cbs)

    def added_cbs(self, cbs):  # `with` block: callbacks that take part only inside it
        return self.callbacks.added(cbs)

    def removed_cbs(self, cbs):  # `with` block: callbacks that sit out, then come back in their old places
        return self.callbacks.removed(cbs)

    def no_bar(self):  # `with` block without the progress bar
        return self.removed_cbs([cb for cb in self.cbs if isinstance(cb, ProgressCallback)])

    def _fire(self, event: str) -> None:
        for hook in self.callbacks.hooks[event]:
            hook(self)

    def _with_events(self, body, stage: str, cancel: type[Exception]) -> None:
        """`before_<stage>`, body, `after_<stage>`; the stage's cancel exception skips to the end."""
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

    @property
    def n_groups(self) -> int:
        return len(self.layer_groups)

    def create_opt(self) -> torch.optim.Optimizer:
        """A fresh optimizer, one param group per layer group, at the learner's lr (and wd if set)."""
        self.opt = build_optimizer(self.opt_func, self.layer_groups, self.lr, self.wd)
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
        """Optimizer steps an epoch takes (fewer under gradient accumulation, which says so)."""
        return plans.steps_per_epoch(self.dls.train, [*self.cbs, *(cbs or [])])

    def fit_epochs(self, n_epoch: int, cbs=(), start_epoch: int = 0, with_valid: bool = True, cycle_ends=None) -> None:
        """The loop of every fit form: `n_epoch` epochs, `train_iter` from `start_epoch`, `learn.cycle_ends` set."""
        n_iter = check_train_loader(self.dls.train)
        check_start_epoch(start_epoch, check_positive_int(n_epoch, "n_epoch"))
        cbs = check_fit_start(self, cbs)  # every callback's check(learn), before anything changes
        self.opt = self.opt or self.create_opt()
        cbs += schedule_free_switches(self.opt)
        self.n_epoch, self.n_iter, self.start_epoch = n_epoch, n_iter, start_epoch
        self.total_iter, self.train_iter = n_epoch * n_iter, start_epoch * n_iter
        self.cycle_ends = [] if cycle_ends is None else list(cycle_ends)
        self.with_valid = with_valid and self.dls.valid is not None
        with self.callbacks.fitting(self, cbs):  # cleanup_fit on every exit, Ctrl-C held (interrupt.py)
            self._with_events(self._do_fit, "fit", CancelFitException)

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
        for i, batch in enumerate(self.dls.train):
            self.iter, (self.xb, self.yb) = i, split(to_device(batch, self.device), self.n_inp)
            self._with_events(self._train_batch, "batch", CancelBatchException)

    def _train_batch(self) -> None:
        self.stepped = False
        self._forward_loss()
        self.loss_grad = self.loss  # what `backward` runs on; callbacks may scale it (accumulation, GradScaler)
        self._fire("before_backward")
        self.loss_grad.backward()
        self._with_events(self._step, "step", CancelStepException)
        if self.stepped:
            self.opt.zero_grad()

    def _forward_loss(self) -> None:
        self.loss = None
        with self.autocast:  # a `with`: autocast ends on every exit, exceptions included
            self.pred = forward(self.model, self.xb)
            self._fire("after_pred")
            self.loss = compute_loss(self.loss_func, self.pred, self.yb)
        self._fire("after_loss")

    @holds_sigint  # Ctrl-C waits for the whole step and its count
    def _step(self) -> None:
        self.opt.step() if self.scaler is None else self.scaler.step(self.opt)  # the scaler skips inf/NaN grads
        self.stepped = True
        self.train_iter += 1

    def _run_validation(self, dl) -> None:
        self.training = False
        self.model.eval()  # the stage's mode, as the validation hooks see it and as it is left afterwards
        self._with_events(partial(self._do_validate, dl), "validate", CancelValidException)
        self.validated_this_epoch = True

    def _do_validate(self, dl) -> None:
        with eval_batches(self.model, dl, self.device) as batches:
            for i, batch in enumerate(batches):
                self.iter, (self.xb, self.yb) = i, split(batch, self.n_inp)
                self._with_events(self._forward_loss, "batch", CancelBatchException)

    # ---- entry points: arguments, then schedule, then the loop ---------------------------------------
    def fit(self, lr=None, n_cycle=1, cycle_len=None, cycle_mult=1, use_clr=None, use_clr_beta=None, **kwargs):
        """fastai 0.7 `fit`: `n_cycle` epochs at constant `lr`, or `n_cycle` cycles of `cycle_len * cycle_mult**c`
        epochs of SGDR (after 0.7's lr/100 warm-up), `use_clr=(div, cut_div)` or `use_clr_beta=(div, pct)`.
        `kwargs`, for every fit form: `wd, cbs, cycle_save_name, best_save_name, start_epoch, resume`."""
        self._fit(plans.fit, (lr, n_cycle, cycle_len, cycle_mult, use_clr, use_clr_beta), **kwargs)

    def fit_one_cycle(self, n_epoch, lr_max=None, div=25.0, div_final=1e5, pct_start=0.25, moms=None, **kwargs):
        """One cycle (fastai v2): cosine lr_max/div -> lr_max over `pct_start`, -> lr_max/div_final; `moms` inverse."""
        self._fit(plans.fit_one_cycle, (n_epoch, lr_max, div, div_final, pct_start, moms), **kwargs)

    def fit_cyclic(self, n_epoch, lr_max, base_lr=None, step_size=None, n_cycles=None, mode="triangular", gamma=1.0,
                   moms=None, **kwargs):  # fmt: skip
        """Smith's cyclical lrs between `base_lr` (lr_max/4) and `lr_max`, `step_size` steps a half or `n_cycles`."""
        self._fit(plans.fit_cyclic, (n_epoch, lr_max, base_lr, step_size, n_cycles, mode, gamma, moms), **kwargs)

    def fit_flat_cos(self, n_epoch, lr=None, div_final=1e5, pct_start=0.75, **kwargs):
        """fastai v2 `fit_flat_cos`: flat at `lr` for `pct_start` of the fit, then cosine down to lr/div_final."""
        self._fit(plans.fit_flat_cos, (n_epoch, lr, div_final, pct_start), **kwargs)

    def fit_wsd(self, n_epoch, lr_max=None, warmup=0.05, decay=0.2, decay_shape="1-sqrt", div=25.0, div_final=1e5,
                moms=None, warmup_epochs=None, decay_epochs=None, **kwargs):  # fmt: skip
        """Warmup-stable-decay: linear warmup, flat at lr_max, then a 'linear'/'cos'/'1-sqrt' decay (plans.fit_wsd)."""
        args = (n_epoch, lr_max, warmup, decay, decay_shape, div, div_final, moms, warmup_epochs, decay_epochs)
        self._fit(plans.fit_wsd, args, **kwargs)

    def plan_defaults(self, cbs=None) -> plans.PlanDefaults:
        """What a plan reads from the learner: group count, default lr and momenta, steps an epoch."""
        return plans.PlanDefaults(self.n_groups, self.lr, self.moms, self.steps_per_epoch(check_cbs(cbs)))

    def _fit(self, plan, args, wd=None, cbs=None, cycle_save_name=None, best_save_name=None, start_epoch=0,
             wds=None, resume=None) -> None:  # fmt: skip
        """What every fit form does: its plan's schedule, every check, the optimizer, then the loop."""
        schedule, wd = plan(self.plan_defaults(cbs), *args), wd_or_wds(wd, wds)  # `wds`: fastai 0.7's `wd`
        check_start_epoch(start_epoch, schedule.n_epoch)
        saving = tracking.save_callbacks(cycle_save_name, best_save_name, schedule.cycle_ends, self.dls.valid)
        cbs, wds = [ParamScheduler(schedule), *saving, *check_cbs(cbs)], check_wd(wd, self.n_groups)
        check_fit_start(self, cbs)  # before the optimizer is built or any lr set
        cbs, start_epoch = resume_fit.prepare(self, resume, cbs, start_epoch)  # the whole checkpoint checked first
        self.fit_call = plain_names(cycle_save_name, best_save_name)
        self.opt = self.opt or self.create_opt()
        set_hypers(self.opt, schedule.lrs, wds)
        self.fit_epochs(schedule.n_epoch, cbs, start_epoch, cycle_ends=schedule.cycle_ends)

    def resume(self, name, cbs=None) -> None:
        """Go on with the fit a `save(name, with_state=True)` came from, exactly; pass that fit's `cbs` again."""
        schedule, names = resume_fit.saved_fit(self, name)
        self._fit(lambda defaults: schedule, (), cbs=cbs, resume=name, **names)

    def lr_find(self, start_lr=1e-7, end_lr=10, num_it=100, stop_div=True, linear=False, suggest_funcs=None,
                show_plot=False, n_repeats=1):  # fmt: skip
        """The range test, all put back exactly: suggestions (`n_repeats` tests averaged; "auto": 3 if 1 is unclear),
        their curve and band."""
        return run_range_test(self, start_lr, end_lr, num_it, stop_div, linear, suggest_funcs, show_plot, n_repeats)

    def lr_tune(self, method, *args, lr=None, factors=TUNE_FACTORS, budget=TUNE_BUDGET, margin=TUNE_MARGIN,
                monitor="valid_loss", **kwargs):  # fmt: skip
        """Trial fits of `learn.<method>(*args, **kwargs)` at multiples of `lr` (default lr_find's), restored."""
        return tuning.lr_tune(self, method, args, kwargs, lr, factors, budget, margin, monitor)

    def preview(self, method, *args, plot: bool = False, **kwargs):
        """What `learn.<method>(*args, **kwargs)` would set per step, as `recorder.iter_df()` rows; nothing changes."""
        return preview_call(self, method, args, kwargs, plot)

    def distrib_ctx(self):
        """Under torchrun, train data-parallel inside this `with` block; outside torchrun it does nothing."""
        return distributed.distrib_ctx(self)

    def validate(self, dl=None) -> list[float]:
        """[valid_loss, *metrics] over `dl` (default the validation loader), with the validation events."""
        dl = check_valid_loader(self.dls.valid if dl is None else dl)
        with guarded(lambda: self.model.training, partial(end_validation, self)):  # the mode comes back, even on Ctrl-C
            self._run_validation(dl)
        return list(self.recorder.last_valid)

    def get_preds(self, dl=None, with_input: bool = False):
        """(predictions, targets) over `dl` (default the validation loader), model in eval mode, no events."""
        dl = check_valid_loader(self.dls.valid if dl is None else dl)
        with eval_weights(self):  # a schedule-free optimizer's evaluation weights
            return predictions(self.model, dl, self.device, with_input, self.n_inp)

    def to_bf16(self) -> Learner:  # bfloat16 autocast from now on: adds MixedPrecision(torch.bfloat16)
        return use_mixed_precision(self, torch.bfloat16)

    def to_fp16(self) -> Learner:  # float16 autocast with a GradScaler: adds MixedPrecision(torch.float16)
        return use_mixed_precision(self, torch.float16)

    def predict(self, x) -> torch.Tensor:
        """The model's output for one item (shaped like a training item) or a batch: eval mode, no grad, no events."""
        return predict(self.model, x, self.device, item_ndim(self.dls.train))

    def save(self, name, with_opt: bool = True, with_state: bool = False) -> Path:  # path/model_dir/<name>.pth
        return checkpoint.save(self, name, with_opt, with_state)  # with_state: all a resume needs; rank 0 writes

    def load(self, name, with_opt=True, strict=True, model_only=False) -> Learner:  # checked, weights_only=True
        checkpoint.load(self, name, with_opt, strict, model_only)
        return self
