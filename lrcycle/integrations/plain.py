"""The range test on your own objects, without a Learner: `lrcycle.range_test` on a model, optimizer, loss and
loader, and `step_range_test` on a framework's own training step (`training_step(batch, batch_idx)` in
Lightning, `model(**batch).loss` in Hugging Face).

For a training step, the step becomes the model of a light Learner loop and its loss the loss; the batch and
its index travel as the Learner's input, so any batch shape (dicts, nested tuples) reaches the step as the
framework would pass it, and the step's output is the loss (a tensor, or a dict / model output with `loss`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import torch
from torch import nn

from ..batches import to_device
from ..callbacks.accumulate import GradientAccumulation
from ..callbacks.mixed_precision import MixedPrecision
from ..data import DataLoaders
from ..finder.driver import run_range_test
from ..learner import Learner
from ..validate import check_flag, check_positive_int


def range_test(
    model,
    optimizer,
    loss_func,
    train_loader,
    start_lr=1e-7,
    end_lr=10,
    num_it=100,
    stop_div=True,
    linear=False,
    suggest_funcs=None,
    grad_scaler=None,
    accumulate=1,
    device=None,
    progress=True,
):
    """`learn.lr_find` on your own objects: the same driver (`run_range_test`), sweep, stop rule and suggestions,
    run by a light Learner around `model`, `optimizer` (its param groups are the groups: `start_lr`/`end_lr`
    take the same forms as in `lr_find`), `loss_func(pred, y)` and `train_loader` (sized, `(x, y)` batches).

    Afterwards the model, optimizer (state and hyperparameters), `grad_scaler` and RNGs are bit for bit what
    they were, on every exit (a full run, an early stop, NaN, an exception, Ctrl-C); nothing is written to disk.
    `grad_scaler`: a `torch.amp.GradScaler` to scale the loss and step through (autocast is up to your model's
    forward). `accumulate`: batches summed into one optimizer step. `device`: where batches go; the model must
    already be there (None: the device of its parameters); it is never moved. `progress`: the same bar as
    `lr_find` (a bar in a terminal or notebook, one summary line in a log); False shows nothing.
    """
    device = check_model_device(model, device)
    cbs = [GradientAccumulation(accumulate)] if check_positive_int(accumulate, "accumulate") > 1 else []
    cbs += [] if grad_scaler is None else [MixedPrecision(None, grad_scaler=grad_scaler)]
    dls = DataLoaders(train_loader)
    progress = check_flag(progress, "progress")
    learn = Learner(dls, model, loss_func, opt=optimizer, cbs=cbs, progress=progress, device=device)
    return run_range_test(learn, start_lr, end_lr, num_it, stop_div, linear, suggest_funcs)


def check_model_device(model, device) -> torch.device:
    """The device batches go to: `device`, or the model's own (its first parameter's; CPU without any). A
    `device` other than the model's is a ValueError: the range test never moves the user's model."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model: expected a torch nn.Module, got {type(model).__name__}")
    first = next(model.parameters(), None)
    own = torch.device("cpu") if first is None else first.device
    if device is None:
        return own
    device = torch.device(device)
    if device.type != own.type or (device.index is not None and own.index is not None and device != own):
        raise ValueError(f"device: the model is on {own}, not {device}; move it first (range_test never moves it)")
    return own


# ---- a framework's training step as the model ---------------------------------------------------------
class TrainingStepModel(nn.Module):
    """`forward((batch, batch_idx))` runs `step(batch, batch_idx)` with the batch on `device`. `module` is a
    child, so `train()`/`eval()` and the range test's snapshot reach all of its parameters and buffers."""

    def __init__(self, module: nn.Module, step: Callable, device: torch.device):
        super().__init__()
        self.module, self.step, self.device = module, step, device

    def forward(self, batch_and_index):
        batch, batch_idx = batch_and_index
        return self.step(to_device(batch, self.device), batch_idx)


class IndexedBatches:
    """`loader`'s batches as `((batch, batch_idx), 0)` pairs, the Learner's (input, target) shape; sized."""

    def __init__(self, loader: Iterable):
        self.loader = loader

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for i, batch in enumerate(self.loader):
            yield (batch, i), 0


def step_loss(output, _target) -> torch.Tensor:
    """The loss a training step returned: the tensor itself, `output["loss"]` or `output.loss`."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, Mapping) and "loss" in output:
        return output["loss"]
    loss = getattr(output, "loss", None)
    if loss is None:
        raise TypeError(f"the training step must return a loss tensor or something with a `loss`, got {type(output)}")
    return loss


def step_range_test(module: nn.Module, step: Callable, loader: Iterable, optimizer, **kwargs):
    """`lrcycle.range_test` where each iteration's loss is `step(batch, batch_idx)` on `loader`'s batches."""
    first = next(module.parameters(), None)
    device = torch.device("cpu") if first is None else first.device
    model = TrainingStepModel(module, step, device)
    return range_test(model, optimizer, step_loss, IndexedBatches(loader), **kwargs)
