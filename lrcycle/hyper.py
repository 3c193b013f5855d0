"""Read and write lr, momentum and weight decay on any torch optimizer's param groups.

Momentum is `momentum` where the optimizer has it (SGD, RMSprop) and `betas[0]` where it has betas
(Adam, AdamW, NAdam, ...); an optimizer with neither has no momentum, and reading it gives None.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .checks import spread, spread_wd
from .interrupt import held_sigint


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
