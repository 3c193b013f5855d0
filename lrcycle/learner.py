"""The Learner: owns model, optimizer, data and counters, runs the loop and fires the events.

Its entry points are short and parallel: each fit form checks its arguments and builds a schedule
(`schedules/forms.py`), then runs the loop with the one callback that applies it; `lr_find` hands over to
`finder/driver.py`. Argument checks live in `validate.py` and beside the part they guard, saving in
`state/checkpoint.py`.
"""

from __future__ import annotations

from contextlib import nullcontext
from functools import partial
from pathlib import Path

import torch
from torch import nn

from . import distributed
from .batches import (
    check_forward_args,
    compute_loss,
    first_forward,
    first_loss,
    forward,
    inputs_and_targets,
    logits,
    module_to,
    resolve_loss_func,
    split,
)
from .callback import STAGES, CallbackList, CancelBatchException, check_cbs, check_fit_start
from .callbacks.first_step_guard import FirstStepGuard
from .callbacks.loss_check import NonFiniteLossCheck
from .callbacks.mixed_precision import MixedPrecision
from .callbacks.param_scheduler import ParamScheduler
from .callbacks.progress import ProgressCallback
from .callbacks.schedule_free import ScheduleFreeSwitch
from .callbacks.schedulers import NAMED
from .callbacks.tracking import CycleSnapshotCallback, SaveModelCallback
from .evaluation import end_validation, eval_batches, output_shapes, predictions, shape_of
from .finder import tune as tuning
from .finder.driver import run_range_test
from .finder.tune import TUNE_BUDGET, TUNE_FACTORS, TUNE_MARGIN
from .interrupt import guarded, held_sigint, holds_sigint
from .layers import bn_param_ids, freeze_groups, learner_layer_groups, single_group
from .optim import build_optimizer, eval_weights, has_modes, set_hypers
from .prediction import activation, as_input, decode, item_ndim, predict
from .recorder import Recorder
from .schedules import forms
from .schedules.preview import preview_schedule
from .schedules.schedule import Schedule
from .state import checkpoint
from .state import resume as resume_fit
from .state.rng import rng_state, set_rng_state
from .state.training_state import plain_names
from .summary import Summary, blocks_table, summary_text, top_level_blocks
from .validate import (
    check_flag,
    check_hypers,
    check_learner_args,
    check_metrics,
    check_n_inp,
    check_name,
    check_positive_int,
    check_start_epoch,
    check_train_loader,
    check_valid_loader,
    check_wd,
    loss_without_graph,
    renamed,
    wd_or_wds,
)


def default_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


class Learner:
    """Trains `model` on `dls` with `loss_func`, firing the events of `callback.EVENTS` to its callbacks."""

    def __init__(self, dls, model: nn.Module, loss_func=None, opt_func=partial(torch.optim.SGD, momentum=0.9),
                 lr=1e-3, splitter=None, cbs=None, metrics=(), wd=None, train_bn: bool = True, moms=(0.95, 0.85, 0.95),
                 device=None, progress=True, path=".", model_dir="models", opt=None, n_inp=None):  # fmt: skip
        loss_func = check_learner_args(dls, model, loss_func, splitter, opt_func)
        self.dls, self.loss_func, self.opt_func = dls, loss_func, opt_func
        self.splitter = splitter if splitter is not None else single_group
        self.layer_groups = learner_layer_groups(model, splitter, opt)  # with `opt`: its param groups
        self.lr, self.wd, self.moms = lr, wd, check_hypers(lr, wd, moms, self.n_groups)
        self.train_bn, progress = check_flag(train_bn, "train_bn"), check_flag(progress, "progress")
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
        self.first_batch = True  # the next batch is a fit's (or validation's) first: checked once (_first_forward_loss)

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
        call = self.callbacks.dispatch[event]  # None where no callback has a hook for the event
        if call is not None:
            call(self)

    def _with_events(self, body, stage: str) -> None:
        """`before_<stage>`, body, `after_<stage>`; the stage's cancel exception skips to the end. Each event is
        one call, or none where no callback has a hook for it (`CallbackList.dispatch`, read at each event:
        a hook may change the callbacks)."""
        before, cancelled, after, cancel = STAGES[stage]
        try:
            call = self.callbacks.dispatch[before]
            if call is not None:
                call(self)
            body()
        except cancel:
            call = self.callbacks.dispatch[cancelled]
            if call is not None:
                call(self)
        call = self.callbacks.dispatch[after]
        if call is not None:
            call(self)

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
        return forms.steps_per_epoch(self.dls.train, [*self.cbs, *(cbs or [])])

    def fit_epochs(self, n_epoch: int, cbs=(), start_epoch: int = 0, with_valid: bool = True, cycle_ends=None) -> None:
        """The loop of every fit form: `n_epoch` epochs, `train_iter` from `start_epoch`, `learn.cycle_ends` set."""
        n_iter = check_train_loader(self.dls.train)
        if with_valid and self.dls.valid is not None:
            check_valid_loader(self.dls.valid, "dls.valid")
        check_start_epoch(start_epoch, check_positive_int(n_epoch, "n_epoch"))
        cbs = check_fit_start(self, cbs)  # every callback's check(learn), before anything changes
        self.opt = self.opt or self.create_opt()
        self._clear_grads()  # a gradient left by an interrupted or failed step is never applied
        cbs += [ScheduleFreeSwitch()] if has_modes(self.opt) else []  # train()/eval() switched for you
        self.n_epoch, self.n_iter, self.start_epoch = n_epoch, n_iter, start_epoch
        self.total_iter, self.train_iter = n_epoch * n_iter, start_epoch * n_iter
        self.cycle_ends = [] if cycle_ends is None else list(cycle_ends)
        self.with_valid = with_valid and self.dls.valid is not None
        self.first_batch = True
        with self.callbacks.fitting(self, cbs):  # cleanup_fit on every exit, Ctrl-C held (interrupt.py)
            self._with_events(self._do_fit, "fit")

    @holds_sigint  # all of them or, should a press stop it, cleared again by the next fit
    def _clear_grads(self) -> None:
        self.opt.zero_grad()

    def _do_fit(self) -> None:
        for epoch in range(self.start_epoch, self.n_epoch):
            self.epoch = epoch
            self._with_events(self._do_epoch, "epoch")

    def _do_epoch(self) -> None:
        self.validated_this_epoch = False
        self._with_events(self._do_train, "train")
        if self.with_valid:
            self._run_validation(self.dls.valid)

    def _do_train(self) -> None:
        self.training = True
        self.model.train()
        device, n_inp = self.device, self.n_inp
        for i, batch in enumerate(self.dls.train):
            self.iter, (self.xb, self.yb) = i, inputs_and_targets(batch, device, n_inp)
            self._train_batch()

    @holds_sigint  # Ctrl-C waits for the whole batch: its step, autocast's exit and the recorder's point
    def _train_batch(self) -> None:
        """One training batch with its events, as one critical section: a press lands between batches, where the
        model, optimizer, BatchNorm statistics, gradients (cleared after the step), autocast and the recorder are
        all what the last completed step left (forward, backward and step are one unit; holding costs ~0.2 us).

        The batch stage's events are fired here rather than through `_with_events`, and a batch with no hook
        between `before_batch` and `after_batch` (`CallbackList.inner_hooks`), no autocast and no first-batch
        checks runs its forward pass, backward pass and step without looking for hooks (`_plain_step`)."""
        callbacks = self.callbacks  # the same list throughout; its `dispatch` is read at each event
        try:
            call = callbacks.dispatch["before_batch"]
            if call is not None:
                call(self)
            self.stepped = False
            if callbacks.inner_hooks or self.first_batch or type(self.autocast) is not nullcontext:
                self._forward_loss()
                self._backward_and_step()
            else:
                self._plain_step()
        except CancelBatchException:
            self._fire("after_cancel_batch")
        call = callbacks.dispatch["after_batch"]
        if call is not None:
            call(self)

    def _plain_step(self) -> None:
        """`_forward_loss` then `_backward_and_step` where no callback hooks an event between them: the same
        attributes set in the same order, without looking for hooks."""
        self.loss = None
        self.pred = forward(self.model, self.xb)
        self.loss = self.loss_grad = compute_loss(self.loss_func, self.pred, self.yb)
        self._backward()
        self._step()
        self.opt.zero_grad()

    def _backward_and_step(self) -> None:
        self.loss_grad = self.loss  # what `backward` runs on; callbacks may scale it (accumulation, GradScaler)
        self._fire("before_backward")
        self._backward()
        dispatch = self.callbacks.dispatch
        if dispatch["before_step"] is None and dispatch["after_step"] is None:
            self._step()  # no step hooks, so nothing can cancel the step: the stage is the step alone
        else:
            self._with_events(self._step, "step")
        if self.stepped:
            self.opt.zero_grad()

    def _backward(self) -> None:
        try:
            self.loss_grad.backward()
        except RuntimeError as error:
            if self.loss_grad.requires_grad:
                raise
            raise loss_without_graph(self.loss_func, self.loss_grad, self.model) from error

    def _forward_loss(self) -> None:
        self.loss = None
        if self.first_batch:  # once a fit: the batch checked against the model, the loss chosen and checked
            return self._first_forward_loss()
        if type(self.autocast) is nullcontext:  # no autocast: nothing to enter or end (0.17 us a batch saved)
            self._pred_and_loss()
        else:
            with self.autocast:  # a `with`: autocast ends on every exit, exceptions included
                self._pred_and_loss()
        self._fire("after_loss")

    def _pred_and_loss(self) -> None:
        self.pred = forward(self.model, self.xb)
        self._fire("after_pred")
        self.loss = compute_loss(self.loss_func, self.pred, self.yb)

    def _first_forward_loss(self) -> None:
        """`_forward_loss` with the checks a fit makes once, at its first batch, before anything changes: the
        inputs fit the model's forward and weights, and the loss is the one given (its prediction and target
        not broadcasting), the output's own, or a default chosen here and kept in `learn.loss_func`."""
        check_forward_args(self.model, self.xb, self.n_inp)
        with self.autocast:
            self.pred = first_forward(self.model, self.xb)
            self._fire("after_pred")
            self.loss_func = resolve_loss_func(self.loss_func, self.pred, self.yb)
            self.loss = first_loss(self.loss_func, self.pred, self.yb)
        self.first_batch = False
        self._fire("after_loss")

    def _step(self) -> None:  # inside `_train_batch`: Ctrl-C waits for the whole step and its count
        self.opt.step() if self.scaler is None else self.scaler.step(self.opt)  # the scaler skips inf/NaN grads
        self.stepped = True
        self.train_iter += 1

    def _run_validation(self, dl) -> None:
        self.training = False
        self.model.eval()  # the stage's mode, as the validation hooks see it and as it is left afterwards
        self._with_events(partial(self._do_validate, dl), "validate")
        self.validated_this_epoch = True

    def _do_validate(self, dl) -> None:
        with eval_batches(self.model, dl, self.device) as batches:
            for i, batch in enumerate(batches):
                self.iter, (self.xb, self.yb) = i, split(batch, self.n_inp)
                self._valid_batch()

    @holds_sigint  # autocast entered and left whole, the recorder's sums updated or not
    def _valid_batch(self) -> None:
        self._with_events(self._forward_loss, "batch")

    # ---- entry points: arguments, then schedule, then the loop ---------------------------------------
    def fit(self, lr=None, n_cycle=1, cycle_len=None, cycle_mult=1, use_clr=None, use_clr_beta=None, **kwargs):
        """fastai 0.7 `fit`: `n_cycle` epochs at constant `lr`, or `n_cycle` cycles of `cycle_len * cycle_mult**c`
        epochs of SGDR (after 0.7's lr/100 warm-up), `use_clr=(div, cut_div)` or `use_clr_beta=(div, pct)`.
        `kwargs`, for every fit form: `wd, cbs, cycle_save_name, best_save_name, start_epoch, resume`."""
        self._fit(forms.fit, (lr, n_cycle, cycle_len, cycle_mult, use_clr, use_clr_beta), **kwargs)

    def fit_one_cycle(self, n_epoch, lr_max=None, div=25.0, div_final=1e5, pct_start=0.25, moms=None, **kwargs):
        """One cycle (fastai v2): cosine lr_max/div -> lr_max over `pct_start`, -> lr_max/div_final; `moms` inverse."""
        self._fit(forms.fit_one_cycle, (n_epoch, lr_max, div, div_final, pct_start, moms), **kwargs)

    def fit_cyclic(self, n_epoch, lr_max, base_lr=None, step_size=None, n_cycle=None, mode="triangular", gamma=1.0,
                   moms=None, n_cycles=None, **kwargs):  # fmt: skip
        """Smith's cyclical lrs between `base_lr` (lr_max/4) and `lr_max`, `step_size` steps a half or `n_cycle`
        cycles (`n_cycles`: its old spelling, which warns)."""
        n_cycle = renamed(n_cycle, n_cycles, "n_cycle", "n_cycles")
        self._fit(forms.fit_cyclic, (n_epoch, lr_max, base_lr, step_size, n_cycle, mode, gamma, moms), **kwargs)

    def fit_flat_cos(self, n_epoch, lr=None, div_final=1e5, pct_start=0.75, **kwargs):
        """fastai v2 `fit_flat_cos`: flat at `lr` for `pct_start` of the fit, then cosine down to lr/div_final."""
        self._fit(forms.fit_flat_cos, (n_epoch, lr, div_final, pct_start), **kwargs)

    def fit_wsd(self, n_epoch, lr_max=None, warmup=0.05, decay=0.2, decay_shape="1-sqrt", div=25.0, div_final=1e5,
                moms=None, warmup_epochs=None, decay_epochs=None, **kwargs):  # fmt: skip
        """Warmup-stable-decay: linear warmup, flat at lr_max, then a 'linear'/'cos'/'1-sqrt' decay (forms.fit_wsd)."""
        args = (n_epoch, lr_max, warmup, decay, decay_shape, div, div_final, moms, warmup_epochs, decay_epochs)
        self._fit(forms.fit_wsd, args, **kwargs)

    def fine_tune(self, epochs, base_lr=2e-3, freeze_epochs=1, lr_mult=100, pct_start=0.3, div=5.0, **kwargs):
        """fastai's `fine_tune`: frozen, `freeze_epochs` of one cycle on the head at `base_lr`; then unfrozen,
        `epochs` at `slice(base_lr/2/lr_mult, base_lr/2)` (`forms.fine_tune_phases`). `resume=name` goes on
        from a checkpoint of either fit; `kwargs` go to both `fit_one_cycle` calls."""
        resume = kwargs.pop("resume", None)
        phases = forms.fine_tune_phases(epochs, base_lr, freeze_epochs, lr_mult, pct_start, div, kwargs)
        if self.n_groups == 1:
            raise ValueError("fine_tune: this model has a single layer group, so there is no body to freeze; pass "
                             "a splitter to Learner(splitter=...), or use fit_one_cycle")  # fmt: skip
        planned = [self._planned("fit_one_cycle", args, kw)[0] for _, args, kw in phases]  # before any freeze
        first = 0 if resume is None else resume_fit.saved_phase(self, resume, planned)
        for k, (freeze_to, args, kw) in enumerate(phases[first:], start=first):
            with held_sigint():  # never half frozen
                self.freeze_to(freeze_to)
            self.fit_one_cycle(*args, **kw, resume=resume if k == first else None)

    def _planned(self, method: str, args, kwargs: dict):
        """`(the fit form's schedule, the schedule its scheduler callback applies, the call's other arguments)`
        for `learn.<method>(*args, **kwargs)`, every argument and callback checked; nothing changes."""
        schedule, fit_args = forms.plan_call(self.plan_defaults(kwargs.get("cbs")), method, args, kwargs)
        _, applied = fit_scheduler(schedule, [*self.cbs, *check_cbs(fit_args.get("cbs"))])  # one at most
        return schedule, applied, fit_args

    def plan_defaults(self, cbs=None) -> forms.PlanDefaults:
        """What a plan reads from the learner: group count, default lr and momenta, steps an epoch."""
        return forms.PlanDefaults(self.n_groups, self.lr, self.moms, self.steps_per_epoch(check_cbs(cbs)))

    def _fit(self, plan, args, wd=None, cbs=None, cycle_save_name=None, best_save_name=None, start_epoch=0,
             wds=None, resume=None) -> None:  # fmt: skip
        """What every fit form does: its plan's schedule, the callback applying it, every check, then the loop."""
        fit_schedule = plan(self.plan_defaults(cbs), *args)
        names = {"cycle_save_name": cycle_save_name, "best_save_name": best_save_name}
        self._run_fit(fit_schedule, None, wd, wds, cbs, names, start_epoch, resume)

    def _run_fit(self, fit_schedule, saved, wd, wds, cbs, names: dict, start_epoch: int, resume) -> None:
        """`fit_schedule` applied by its callback (the fit form's own, or one passed in `cbs`: `fit_scheduler`),
        every check, the optimizer, then the loop. `saved`: the content of checkpoint `resume` when `learn.resume`
        has read it already (`fit_schedule` is then the checkpoint's, kept as it is), else None."""
        wd, cbs = wd_or_wds(wd, wds), check_cbs(cbs)  # `wds`: fastai 0.7's `wd`
        scheduler, schedule = fit_scheduler(fit_schedule, [*self.cbs, *cbs], saved is not None)
        check_start_epoch(start_epoch, schedule.n_epoch)
        cycle_save_name, best_save_name = names["cycle_save_name"], names["best_save_name"]
        saving = save_callbacks(cycle_save_name, best_save_name, schedule.cycle_ends, self.dls.valid)
        cbs, wds = [scheduler, *saving, *(cb for cb in cbs if cb is not scheduler)], check_wd(wd, self.n_groups)
        previous = scheduler.bind(schedule)
        try:
            check_fit_start(self, cbs)  # before the optimizer is built or any lr set
            if self.dls.valid is not None:
                check_valid_loader(self.dls.valid, "dls.valid")
            cbs, start_epoch = resume_fit.prepare(self, resume, cbs, start_epoch, saved)  # the whole file checked first
        except BaseException:
            scheduler.bind(previous)  # a refused fit leaves a passed callback as it was
            raise
        self.fit_call = plain_names(cycle_save_name, best_save_name)
        self.opt = self.opt or self.create_opt()
        set_hypers(self.opt, schedule.lrs, wds)
        self.fit_epochs(schedule.n_epoch, cbs, start_epoch, cycle_ends=schedule.cycle_ends)

    def resume(self, name, cbs=None) -> None:
        """Go on with the fit a `save(name, with_state=True)` came from, exactly; pass that fit's `cbs` again."""
        schedule, names, content = resume_fit.saved_fit(self, name)
        self._run_fit(schedule, content, None, None, cbs, names, 0, name)  # the file read and checked once

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
        _, schedule, fit_args = self._planned(method, args, kwargs)
        return preview_schedule(self, schedule, fit_args, plot)

    def distrib_ctx(self):
        """Under torchrun, train data-parallel inside this `with` block; outside torchrun it does nothing."""
        return distributed.distrib_ctx(self)

    def validate(self, dl=None) -> list[float]:
        """[valid_loss, *metrics] over `dl` (default the validation loader), with the validation events."""
        dl = check_valid_loader(self.dls.valid if dl is None else dl)
        self.first_batch = True
        # the mode and `learn.autocast` (a callback's `before_validate` may set it) come back, even on Ctrl-C
        with guarded(lambda: (self.model.training, self.autocast), partial(end_validation, self)):
            self._run_validation(dl)
        return list(self.recorder.last_valid)

    def get_preds(self, dl=None, with_input: bool = False, with_decoded: bool = False):
        """(predictions, targets) over `dl` (default the validation loader), model in eval mode, no events;
        `inputs` first with `with_input`, the decoded classes (a regressor's: its predictions) last with
        `with_decoded`. Predictions are the model's outputs (logits for a classifier)."""
        dl = check_valid_loader(self.dls.valid if dl is None else dl)
        with eval_weights(self):  # a schedule-free optimizer's evaluation weights
            out = predictions(self.model, dl, self.device, with_input, self.n_inp)
        if not with_decoded:
            return out
        kind = activation(self.loss_func)
        return (*out, out[-2] if kind is None else decode(out[-2], kind)[0])

    def to_bf16(self) -> Learner:  # bfloat16 autocast from now on: adds MixedPrecision(torch.bfloat16)
        return self._use_mixed_precision(torch.bfloat16)

    def to_fp16(self) -> Learner:  # float16 autocast with a GradScaler: adds MixedPrecision(torch.float16)
        return self._use_mixed_precision(torch.float16)

    def _use_mixed_precision(self, dtype: torch.dtype) -> Learner:
        """Replace any MixedPrecision callback by one for `dtype`; returns the learner."""
        self.remove_cbs([cb for cb in self.cbs if isinstance(cb, MixedPrecision)])
        self.add_cbs([MixedPrecision(dtype)])
        return self

    def predict(self, x):
        """For one item (shaped like a training item; a tensor, numpy array or list) or a batch: a classifier's
        `(decoded class, probabilities)`, a regressor's output (`prediction.py` says which is which, from the
        loss function). Eval mode, no grad, no events."""
        output = predict(self.model, as_input(x), self.device, item_ndim(self.dls.train))
        kind = activation(self.loss_func)
        return output if kind is None else decode(logits(output), kind)

    def summary(self) -> Summary:
        """Per top-level block of the model: its output shape on one training batch, its parameters, whether
        they train, its layer groups; then the totals. Printable text (`.table`: the rows as a DataFrame).
        Nothing changes: the model's modes, grad mode and every RNG (drawing the batch shuffles) come back."""
        check_train_loader(self.dls.train)  # one batch is needed
        model = distributed.unwrap(self.model)
        blocks = top_level_blocks(model)
        with guarded(rng_state, set_rng_state):
            batch = next(iter(self.dls.train))
            shapes = output_shapes(self.model, [block for _, block in blocks], batch, self.device, self.n_inp)
        inputs = shape_of(split(batch, self.n_inp)[0])
        title = f"{type(model).__name__}, one batch of inputs {'-' if inputs is None else list(inputs)}"
        return summary_text(title, blocks_table(blocks, shapes, self.layer_groups), model, self.n_groups)

    def save(self, name, with_opt: bool = True, with_state: bool = False) -> Path:  # path/model_dir/<name>.pth
        return checkpoint.save(self, name, with_opt, with_state)  # with_state: all a resume needs; rank 0 writes

    def load(self, name, with_opt=True, strict=True, model_only=False) -> Learner:  # checked, weights_only=True
        checkpoint.load(self, name, with_opt, strict, model_only)
        return self


def save_callbacks(cycle_save_name, best_save_name, cycle_ends, valid_dl) -> list:
    """The callbacks that `cycle_save_name` / `best_save_name` of a fit call ask for (the best model needs
    validation data)."""
    if best_save_name is not None and valid_dl is None:
        raise ValueError("best_save_name: keeping the best model needs validation data (DataLoaders.valid)")
    cbs = []
    if cycle_save_name is not None:
        cbs.append(CycleSnapshotCallback(cycle_save_name, cycle_ends))
    if best_save_name is not None:
        cbs.append(SaveModelCallback(check_name(best_save_name, "best_save_name")))
    return cbs


def scheduler_for(schedule: Schedule) -> ParamScheduler:
    """The callback a fit form carries to apply `schedule`: the named one for its builder."""
    named = NAMED.get(schedule.spec["builder"])
    return ParamScheduler(schedule) if named is None else named.from_schedule(schedule)


def fit_scheduler(fit: Schedule, cbs, resumed: bool = False) -> tuple[ParamScheduler, Schedule]:
    """`(callback, schedule)` for a fit whose own schedule is `fit` and whose callbacks (the learner's and the
    call's) are `cbs`, planned but not yet bound (nothing changes here).

    No scheduler callback among `cbs`: the fit form's own (`scheduler_for`). One: it replaces a constant
    schedule (`fit(lr, n)`), its schedule planned from the fit's lr and length; with `resumed` (the saved
    schedule of `learn.resume`) it carries the saved schedule as it is. Two, or one beside a fit form's own
    schedule: a ValueError naming both.
    """
    passed = [cb for cb in cbs if isinstance(cb, ParamScheduler)]
    if not passed:
        return scheduler_for(fit), fit
    if len(passed) > 1:
        names = " and ".join(type(cb).__name__ for cb in passed)
        raise ValueError(f"cbs: one scheduler callback a fit, got {names}; keep one of them")
    (cb,) = passed
    if resumed:
        return cb, fit
    if fit.spec["builder"] != "constant":
        own = type(scheduler_for(fit)).__name__
        raise ValueError(
            f"cbs: this fit form's schedule is applied by its own {own}, and {type(cb).__name__} was passed too; "
            f"pass {type(cb).__name__} to learn.fit(lr, n_epoch, cbs=[...]) without cycle_len, or drop it"
        )
    planned = cb.plan(fit)
    if (planned.n_epoch, planned.steps_per_epoch) != (fit.n_epoch, fit.steps_per_epoch):
        raise ValueError(
            f"cbs: {type(cb).__name__}'s schedule runs {planned.n_epoch} epochs of {planned.steps_per_epoch} steps, "
            f"this fit {fit.n_epoch} of {fit.steps_per_epoch}; build the schedule for this fit's length"
        )
    return cb, planned
