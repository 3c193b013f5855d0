"""PyTorch Lightning: the range test on a `LightningModule`'s own `training_step` and optimizer.

    from lrcycle.integrations.lightning import lightning_range_test
    result = lightning_range_test(module, train_loader)  # the module's configure_optimizers() optimizer
    trainer.fit(module, train_loader)  # the module, its weights and the RNGs are exactly as before the test

For the schedule, return `lrcycle.scheduler(...)` from `configure_optimizers` with `"interval": "step"`.
"""

from __future__ import annotations

import logging
import math
import warnings
from functools import partial

import torch

from ..interrupt import guarded
from .plain import step_range_test


def lightning_range_test(module, train_dataloader, optimizer=None, **kwargs):
    """`lrcycle.range_test` on `module.training_step(batch, batch_idx)` over `train_dataloader`.

    `optimizer`: by default the one `module.configure_optimizers()` returns (a single optimizer: alone, in a
    list or tuple, or under "optimizer" in a dict; schedulers it returns are not used), called with a Trainer
    attached for the test when the module has none (`optimizers_under_a_trainer`). Its param groups are
    the groups the sweep sets. `kwargs` are `range_test`'s (`start_lr`, `end_lr`, `num_it`, `grad_scaler`,
    ...). Afterwards the module's parameters, buffers and modes, the optimizer and the RNGs are bit for bit
    what they were. `self.log` calls in the step do nothing outside a Trainer (Lightning's warning is hidden).
    """
    import lightning.pytorch as pl  # only here: Lightning is an optional extra

    if not isinstance(module, pl.LightningModule):
        raise TypeError(f"module: expected a lightning.pytorch.LightningModule, got {type(module).__name__}")
    if optimizer is None:
        config = optimizers_under_a_trainer(module, train_dataloader, kwargs.get("num_it", 100))
        optimizer = configured_optimizer(config)
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


def optimizers_under_a_trainer(module, train_dataloader, num_it: int):
    """`module.configure_optimizers()`, with a Trainer attached for the call when the module has none, as
    Lightning attaches one before calling it: `self.trainer.estimated_stepping_batches` reads the test's
    `num_it` steps (Lightning's own lr finder sets `max_steps` to its length), `self.trainer.max_epochs` the
    epochs those steps take. The module is detached again afterwards, on every exit. A configuration that
    still fails names `optimizer=`, the way around it."""
    if module.fabric is not None or _attached_trainer(module) is not None:
        return _configure(module)
    n_epoch = math.ceil(num_it / len(train_dataloader)) if hasattr(train_dataloader, "__len__") else 1
    trainer = range_test_trainer(module, num_it, max(n_epoch, 1))
    with guarded(partial(_attach, module, trainer), partial(_attach, module)):
        return _configure(module)


def range_test_trainer(module, num_it: int, n_epoch: int):
    """A quiet Trainer shaped like the test: `max_steps=num_it`, `max_epochs=n_epoch`, on the module's device
    type; no logger, checkpoints, bars or model summary (it never fits: only `configure_optimizers` reads it)."""
    import lightning.pytorch as pl

    first = next(module.parameters(), None)
    accelerator = "gpu" if first is not None and first.device.type == "cuda" else "cpu"
    quiet = logging.getLogger("lightning.pytorch")
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # its start-up lines (GPU available, tips) are about a fit it will not run
    try:
        return pl.Trainer(
            max_steps=num_it, max_epochs=n_epoch, accelerator=accelerator, devices=1, logger=False,
            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        )  # fmt: skip
    finally:
        quiet.setLevel(level)


def _attached_trainer(module):
    try:
        return module.trainer
    except RuntimeError:  # "... is not attached to a `Trainer`"
        return None


def _attach(module, trainer=None) -> None:
    module.trainer = trainer


def _configure(module):
    """`module.configure_optimizers()`; a failure says to pass the optimizer instead."""
    quiet = logging.getLogger("lightning.pytorch")
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # "Loading `train_dataloader` to estimate number of stepping batches."
    try:
        return module.configure_optimizers()
    except Exception as err:
        raise RuntimeError(
            f"module.configure_optimizers() failed outside a fit ({type(err).__name__}: {err}); the range test "
            "needs only the optimizer: pass it as lightning_range_test(module, loader, optimizer=...), e.g. "
            "optimizer=torch.optim.AdamW(module.parameters(), lr=1e-3)"
        ) from err
    finally:
        quiet.setLevel(level)
