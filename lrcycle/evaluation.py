"""The one evaluation loop: a model run over a loader in eval mode without gradients, used by validation,
prediction and weight averaging alike."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from functools import partial

import torch
from torch import nn

from . import batches as B
from .batches import to_device
from .distributed import group_active
from .interrupt import guarded


class EvalBatches:
    """`dl`'s batches (any shape `batches.py` knows), every tensor in them moved to `device`, with what
    evaluation changed: every module's train/eval mode (a model may mix them) and torch's grad mode before it."""

    def __init__(self, model: nn.Module, dl: Iterable, device: torch.device):
        self.model, self.dl, self.device = model, dl, device
        self.modes, self.grad_was_enabled = [(m, m.training) for m in model.modules()], torch.is_grad_enabled()

    def __iter__(self) -> Iterator:
        return (to_device(batch, self.device) for batch in self.dl)


def eval_batches(model: nn.Module, dl: Iterable, device: torch.device):
    """`with eval_batches(model, dl, device) as batches: for batch in batches: ...`

    Inside the block the model is in eval mode and gradients are off; `batches` yields `dl`'s batches, every
    tensor in them moved to `device`. Each module's previous train/eval mode and the grad mode come back on
    every exit (the end, a `break`, an exception, Ctrl-C): switching both ways is a critical section
    (`interrupt.guarded`), so Ctrl-C can never leave gradients off for the rest of the process.
    """
    return guarded(partial(_start_eval, model, dl, device), _end_eval)


def _start_eval(model: nn.Module, dl: Iterable, device: torch.device) -> EvalBatches:
    batches = EvalBatches(model, dl, device)
    model.eval()
    torch.set_grad_enabled(False)
    return batches


def _end_eval(batches: EvalBatches) -> None:
    torch.set_grad_enabled(batches.grad_was_enabled)
    for module, training in batches.modes:
        module.training = training


def loss_sums(model: nn.Module, dl: Iterable, device: torch.device, loss_func, n_inp=None) -> torch.Tensor:
    """`[sum of loss * samples, samples]` over `dl` (a device tensor: no sync), without firing events."""
    sums = torch.zeros(2, device=device)
    with eval_batches(model, dl, device) as batches:
        for batch in batches:
            xb, yb = B.split(batch, n_inp)
            n = B.n_samples(yb)
            loss = B.compute_loss(loss_func, B.forward(model, xb), yb)
            sums += torch.stack([loss.float() * n, sums.new_tensor(n)])
    return sums


def predictions(model: nn.Module, dl: Iterable, device: torch.device, with_input: bool = False, n_inp=None):
    """`(predictions, targets)` (with `inputs` first when asked) over `dl`, gathered on the CPU.

    Predictions are the logits (`batches.logits`); targets the single target or a mapping's labels; inputs
    the single input, a tuple of inputs, or a dict of the mapping's tensors, each concatenated over batches.
    """
    preds, targets, inputs = [], [], []
    with eval_batches(model, dl, device) as batches:
        for batch in batches:
            xb, yb = B.split(batch, n_inp)
            preds.append(B.logits(B.forward(model, xb)).cpu())
            targets.append(to_device(B.target(yb), torch.device("cpu")))
            if with_input:
                inputs.append(to_device(xb if isinstance(xb, Mapping) or len(xb) > 1 else xb[0], torch.device("cpu")))
    out = (torch.cat(preds), _cat(targets))
    return (_cat(inputs), *out) if with_input else out


def _cat(items: list):
    """Concatenate per-batch tensors, tuples of tensors or mappings of tensors along the batch dimension."""
    first = items[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(items)
    if isinstance(first, Mapping):
        return {k: _cat([item[k] for item in items]) for k in first if isinstance(first[k], torch.Tensor)}
    if isinstance(first, (tuple, list)):
        return tuple(_cat([item[i] for item in items]) for i in range(len(first)))
    return torch.as_tensor(items)


def end_validation(learn, before: tuple) -> None:
    """What `learn.validate()` puts back on every exit: the model's train/eval mode and `learn.autocast` (which
    `MixedPrecision.before_validate` sets); the last batch let go."""
    was_training, learn.autocast = before
    learn.model.train(was_training)
    learn.xb = learn.yb = learn.pred = learn.loss = None


def output_shapes(model: nn.Module, blocks: list[nn.Module], batch, device: torch.device, n_inp=None) -> list:
    """The shape of each block's output when `model` runs on `batch` (eval mode, no grad, nothing else changes:
    forward hooks are removed on every exit); None for a block the forward pass did not call."""
    shapes = [None] * len(blocks)

    def recorder(k):
        def hook(module, inputs, output):
            shapes[k] = shape_of(output)

        return hook

    def add_hooks():
        return [block.register_forward_hook(recorder(k)) for k, block in enumerate(blocks)]

    def remove_hooks(handles):
        for handle in handles:
            handle.remove()

    with guarded(add_hooks, remove_hooks), eval_batches(model, [batch], device) as batches:
        for moved in batches:
            B.forward(model, B.split(moved, n_inp)[0])
    return shapes


def shape_of(output):
    """A block's output shape: a tensor's, a tuple's first item's, or the logits' of an output that has them."""
    if isinstance(output, torch.Tensor):
        return tuple(output.shape)
    if isinstance(output, (tuple, list)):
        return shape_of(output[0]) if output else None
    field = B.output_field(output, "logits")
    return tuple(field.shape) if isinstance(field, torch.Tensor) else None


def valid_loss(learn, model=None) -> float:
    """Mean loss of `model` (default the learner's) over the validation data, without firing events."""
    model = learn.model if model is None else model
    sums = loss_sums(model, learn.dls.valid, learn.device, learn.loss_func, learn.n_inp)  # (loss sum, samples)
    if group_active():
        torch.distributed.all_reduce(sums)
    return (sums[0] / sums[1]).item()
