"""Read and write lr, momentum and weight decay on any torch optimizer's param groups; build the optimizer;
switch a schedule-free optimizer to its evaluation weights (`eval_weights`).

Momentum is `momentum` where the optimizer has it (SGD, RMSprop) and `betas[0]` where it has betas
(Adam, AdamW, NAdam, ...); an optimizer with neither has no momentum, and reading it gives None.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch
from torch import nn

from .batches import forward, split, to_device
from .interrupt import held_sigint
from .validate import spread, spread_wd


def momentum_key(group: dict) -> str | None:
    """The name under which this param group keeps its momentum, or None."""
    if "momentum" in group:
        return "momentum"
    if "betas" in group:
        return "betas"
    return None


def get_mom(group: dict) -> float | None:
    """The group's momentum (`momentum`, or `betas[0]` for Adam-style optimizers), or None. Read every step by
    the recorder, so it looks the keys up itself in `momentum_key`'s order rather than calling it."""
    if "momentum" in group:
        return group["momentum"]
    return group["betas"][0] if "betas" in group else None


def set_mom(group: dict, value: float) -> None:
    """Write momentum (`momentum_key`'s order, looked up here: it runs every step); a no-op without one."""
    if "momentum" in group:
        group["momentum"] = value
    elif "betas" in group:
        group["betas"] = (value, group["betas"][1])


def get_lrs(opt: torch.optim.Optimizer) -> list[float]:
    return [group["lr"] for group in opt.param_groups]


def get_moms(opt: torch.optim.Optimizer) -> list[float | None]:
    return [get_mom(group) for group in opt.param_groups]


def get_wds(opt: torch.optim.Optimizer) -> list[float]:
    return [group.get("weight_decay", 0.0) for group in opt.param_groups]


def _per_group(values, n_groups: int, name: str) -> Sequence:
    if isinstance(values, (int, float)):
        return [values] * n_groups
    if len(values) != n_groups:
        raise ValueError(f"{name}: need one value per param group ({n_groups}), got {len(values)}")
    return values


def set_lrs(opt: torch.optim.Optimizer, lrs) -> None:
    """Set the lr of every group: one float for all, or one value per group."""
    for group, lr in zip(opt.param_groups, _per_group(lrs, len(opt.param_groups), "lr")):
        group["lr"] = lr


def set_moms(opt: torch.optim.Optimizer, moms) -> None:
    for group, mom in zip(opt.param_groups, _per_group(moms, len(opt.param_groups), "mom")):
        set_mom(group, mom)


def set_wds(opt: torch.optim.Optimizer, wds) -> None:
    for group, wd in zip(opt.param_groups, _per_group(wds, len(opt.param_groups), "wd")):
        group["weight_decay"] = wd


def hypers_snapshot(opt: torch.optim.Optimizer) -> list[dict]:
    """Every hyperparameter of every group (all keys but the parameters), to put back later."""
    return [{k: v for k, v in group.items() if k != "params"} for group in opt.param_groups]


def restore_hypers(opt: torch.optim.Optimizer, snapshot: list[dict]) -> None:
    """Put back `hypers_snapshot`'s values, and drop keys added since (e.g. a torch scheduler's `initial_lr`)."""
    for group, saved in zip(opt.param_groups, snapshot):
        for key in [k for k in group if k != "params" and k not in saved]:
            del group[key]
        group.update(saved)


def apply_hypers(opt: torch.optim.Optimizer, lrs, mom: float | None) -> None:
    """One schedule step's values: each group's lr, and every group's momentum unless `mom` is None (a schedule
    that leaves momentum alone)."""
    for group, lr in zip(opt.param_groups, lrs, strict=True):
        group["lr"] = lr
        if mom is not None:
            set_mom(group, mom)


def set_hypers(opt: torch.optim.Optimizer, lrs, wds=None) -> None:
    """Set every group's lr, and its weight decay unless `wds` is None: all or (on Ctrl-C) none."""
    with held_sigint():
        set_lrs(opt, lrs)
        if wds is not None:
            set_wds(opt, wds)


def build_optimizer(opt_func, layer_groups, lr, wd) -> torch.optim.Optimizer:
    """`opt_func` over one param group per layer group, at the lr form `lr` (and weight decay `wd` if not None)."""
    lrs = spread(lr, len(layer_groups), "lr")
    opt = opt_func([{"params": group} for group in layer_groups], lr=lrs[-1])
    set_lrs(opt, lrs)  # not held (`set_hypers`): nobody holds this optimizer yet
    if wd is not None:
        set_wds(opt, spread_wd(wd, len(layer_groups)))
    return opt


# ---- schedule-free optimizers (Defazio et al. 2024, the `schedulefree` package) --------------------------
# They train on one sequence of weights and evaluate another, switching with `opt.train()` / `opt.eval()`;
# frameworks forget the switch, so lrcycle makes it (`callbacks/schedule_free.py` during fits, `eval_weights`
# for prediction and saving). BatchNorm statistics gathered on the training weights are recomputed for the
# evaluation weights, as the schedule_free README advises, with torch's RNG put back afterwards.
BN_BATCHES = 50
"""Training batches the BatchNorm statistics of the evaluation weights are recomputed over."""


def has_modes(opt) -> bool:
    """An optimizer with `train()` / `eval()` (a schedule-free one); torch's own have neither."""
    return opt is not None and callable(getattr(opt, "train", None)) and callable(getattr(opt, "eval", None))


def in_train_mode(opt) -> bool:
    """Whether the model holds the training weights: any param group's `train_mode` flag is set."""
    return has_modes(opt) and any(group.get("train_mode", False) for group in opt.param_groups)


def batchnorm_layers(model: nn.Module) -> list:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


@torch.no_grad()
def recompute_bn(model: nn.Module, train_dl, device, max_batches: int = BN_BATCHES, n_inp=None) -> None:
    """BatchNorm running statistics as the plain average (`momentum=None`) over up to `max_batches` training
    batches seen by the current weights; the model's modes, momenta and torch's RNG come back as they were."""
    layers = batchnorm_layers(model)
    if not layers:
        return
    modes, momenta = [(m, m.training) for m in model.modules()], [(m, m.momentum) for m in layers]
    with torch.random.fork_rng(devices=[]):
        for layer in layers:
            layer.reset_running_stats()
            layer.momentum = None
        model.train()
        try:
            for i, batch in enumerate(train_dl):
                if i >= max_batches:
                    break
                inputs, _ = split(to_device(batch, device), n_inp)  # any batch shape the Learner takes
                forward(model, inputs)
        finally:
            for layer, momentum in momenta:
                layer.momentum = momentum
            for module, mode in modes:
                module.training = mode


class EvalWeights:
    """The switch to the evaluation weights and exactly back: `enter()` keeps a copy of every parameter and
    buffer, calls `opt.eval()` and recomputes BatchNorm statistics; `leave()` copies the training weights and
    buffers back bit for bit and sets the optimizer's train mode again (no `opt.train()` round trip, whose
    interpolation would not give back the same bits). Does nothing when the optimizer is not in train mode."""

    def __init__(self, learn):
        self.learn, self.saved = learn, None

    def enter(self) -> None:
        learn = self.learn
        if not in_train_mode(learn.opt):
            return
        tensors = [*learn.model.parameters(), *learn.model.buffers()]
        self.saved = [(t, t.detach().clone()) for t in tensors]
        self.flags = [group["train_mode"] for group in learn.opt.param_groups]
        learn.opt.eval()
        recompute_bn(learn.model, learn.dls.train, learn.device, n_inp=learn.n_inp)

    @torch.no_grad()
    def leave(self) -> None:
        if self.saved is None:
            return
        for tensor, copy in self.saved:
            tensor.copy_(copy)
        for group, flag in zip(self.learn.opt.param_groups, self.flags, strict=True):
            group["train_mode"] = flag
        self.saved = None


@contextlib.contextmanager
def eval_weights(learn):
    """`with eval_weights(learn):` the model holds the optimizer's evaluation weights (a no-op for other
    optimizers, or one already in eval mode); afterwards the training weights come back exactly."""
    switch = EvalWeights(learn)
    switch.enter()
    try:
        yield
    finally:
        switch.leave()
