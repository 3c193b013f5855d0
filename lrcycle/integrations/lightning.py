"""PyTorch Lightning: the range test on a `LightningModule`'s own `training_step` and optimizer.

    from lrcycle.integrations.lightning import lightning_range_test
    result = lightning_range_test(module, train_loader)  # the module's configure_optimizers() optimizer
    trainer.fit(module, train_loader)  # the module, its weights and the RNGs are exactly as before the test

For the schedule, return `lrcycle.scheduler(...)` from `configure_optimizers` with `"interval": "step"`.
"""

from __future__ import annotations

import warnings

import torch

from .plain import step_range_test


def lightning_range_test(module, train_dataloader, optimizer=None, **kwargs):
    """`lrcycle.range_test` on `module.training_step(batch, batch_idx)` over `train_dataloader`.

    `optimizer`: by default the one `module.configure_optimizers()` returns (a single optimizer: alone, in a
    list or tuple, or under "optimizer" in a dict; schedulers it returns are not used). Its param groups are
    the groups the sweep sets. `kwargs` are `range_test`'s (`start_lr`, `end_lr`, `num_it`, `grad_scaler`,
    ...). Afterwards the module's parameters, buffers and modes, the optimizer and the RNGs are bit for bit
    what they were. `self.log` calls in the step do nothing outside a Trainer (Lightning's warning is hidden).
    """
    import lightning.pytorch as pl  # only here: Lightning is an optional extra

    if not isinstance(module, pl.LightningModule):
        raise TypeError(f"module: expected a lightning.pytorch.LightningModule, got {type(module).__name__}")
    if optimizer is None:
        optimizer = configured_optimizer(module.configure_optimizers())
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*self.log.*")
        return step_range_test(module, module.training_step, train_dataloader, optimizer, **kwargs)


def configured_optimizer(config) -> torch.optim.Optimizer:
    """The single optimizer in what `configure_optimizers()` returned."""
    found = config
    if isinstance(config, dict):
        found = config.get("optimizer")
    elif isinstance(config, (list, tuple)) and config:
        found = config[0]
        if isinstance(found, (list, tuple)):
            found = found[0] if len(found) == 1 else None
        elif isinstance(found, dict):
            found = found.get("optimizer")
        if len(config) > 1 and all(isinstance(c, torch.optim.Optimizer) for c in config):
            found = None  # several optimizers
    if not isinstance(found, torch.optim.Optimizer):
        raise ValueError(
            "module.configure_optimizers(): expected a single optimizer (alone, first in a list or tuple, or "
            f"under 'optimizer'), got {type(config).__name__}; pass optimizer=... instead"
        )
    return found
