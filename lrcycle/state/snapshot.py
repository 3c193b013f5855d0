"""An in-memory snapshot of everything a range test changes, put back bit for bit afterwards.

Nothing is written to disk, so read-only or shared directories and parallel runs are safe. Restoring
copies the saved values into the very tensors, dicts and optimizer the user holds (`copy_` under
`no_grad`), so references taken before the test still point at the live objects afterwards.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..optim import hypers_snapshot, restore_hypers
from .rng import rng_state, set_rng_state


class TrainingSnapshot:
    """Model tensors and modes, optimizer state and hyperparameters, requires_grad flags and every RNG.

    >>> model = nn.Linear(2, 1)
    >>> snap = TrainingSnapshot(model, None)
    >>> _ = model.weight.data.add_(1.0)
    >>> snap.restore()
    >>> bool(torch.equal(model.weight, snap.saved_copy(model.weight)))
    True
    """

    def __init__(self, model: nn.Module, opt: torch.optim.Optimizer | None):
        self.model, self.opt = model, opt
        # (module, name, tensor) for every parameter and buffer slot, so a slot re-bound to a new tensor
        # during the test is pointed back at the original one
        self.slots = [
            (module, name, tensor)
            for module in model.modules()
            for name, tensor in [*module._parameters.items(), *module._buffers.items()]
            if tensor is not None
        ]
        unique = {id(t): t for _, _, t in self.slots}
        self.tensors = list(unique.values())
        self.copies = _clone_all(self.tensors)
        params = [t for t in self.tensors if isinstance(t, nn.Parameter)]
        self.requires_grad = [(p, p.requires_grad) for p in params]
        self.grads = [(p, p.grad, None if p.grad is None else p.grad.detach().clone()) for p in params]
        self.modes = [(m, m.training) for m in model.modules()]
        self.opt_state = None if opt is None else _save_opt_state(opt)
        self.hypers = None if opt is None else hypers_snapshot(opt)
        self.rng = rng_state()

    def saved_copy(self, tensor: torch.Tensor) -> torch.Tensor:
        """The value `tensor` had when the snapshot was taken."""
        return self.copies[[id(t) for t in self.tensors].index(id(tensor))]

    @torch.no_grad()
    def restore(self) -> None:
        """Put everything back; the objects are the same ones, their contents as they were."""
        _copy_all(self.tensors, self.copies)
        for module, name, tensor in self.slots:
            registry = module._parameters if name in module._parameters else module._buffers
            if registry.get(name) is not tensor:
                registry[name] = tensor
        for p, flag in self.requires_grad:
            p.requires_grad_(flag)
        for p, grad, saved in self.grads:
            if grad is not None:
                grad.copy_(saved)
            p.grad = grad
        for module, mode in self.modes:
            if module.training is not mode:  # only where it changed: a Module's setattr costs ~1.3 us
                module.training = mode
        if self.opt is not None:
            _restore_opt_state(self.opt, self.opt_state)
            restore_hypers(self.opt, self.hypers)
        set_rng_state(self.rng)


def _clone_all(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    return [t.detach().clone() for t in tensors]


def _copy_all(targets: list[torch.Tensor], sources: list[torch.Tensor]) -> None:
    if targets:
        # one fused call where torch has it: a per-tensor loop costs a dispatch per tensor
        foreach_copy = getattr(torch, "_foreach_copy_", None)
        if foreach_copy is not None:
            foreach_copy([t.detach() for t in targets], sources)
        else:
            for t, s in zip(targets, sources, strict=True):
                t.detach().copy_(s)


def _save_opt_state(opt: torch.optim.Optimizer) -> dict:
    """Per parameter: the state dict object itself and, per key, the original value and a copy of it."""
    saved = {}
    for p, state in opt.state.items():
        entries = {}
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                entries[key] = (value, value.detach().clone())
            else:
                entries[key] = (None, copy.deepcopy(value))
        saved[p] = (state, entries)
    return saved


def _restore_opt_state(opt: torch.optim.Optimizer, saved: dict) -> None:
    for p in [p for p in opt.state if p not in saved]:
        del opt.state[p]  # state the test created (e.g. the first momentum buffers)
    for p, (state, entries) in saved.items():
        state.clear()
        for key, (original, value) in entries.items():
            if original is None:
                state[key] = copy.deepcopy(value)
            else:
                original.copy_(value)
                state[key] = original
        opt.state[p] = state


# ---- a learner's snapshot: the training state and the callbacks' grad scalers ----------------------------
def take_snapshot(learn) -> tuple[TrainingSnapshot, ScalerSnapshot]:
    """Everything the test may change: model, optimizer, freeze state, RNGs, and the callbacks' grad scalers."""
    return TrainingSnapshot(learn.model, learn.opt), ScalerSnapshot(learn.cbs)


def restore_snapshot(learn, snapshot: tuple[TrainingSnapshot, ScalerSnapshot]) -> None:
    """Everything back as the snapshot found it (the grad scalers after the rest); a learner that had no
    optimizer ends without one."""
    training, scalers = snapshot
    training.restore()
    scalers.restore()
    learn.opt = training.opt


class ScalerSnapshot:
    """The state of every callback that steps through a GradScaler (`grad_scaler`: scale, growth tracker,
    factors), put back with its `load_state_dict` (a float32 scale survives the float round trip exactly).
    Callbacks have already finished any pending `update()` in `cleanup_fit`, before this restore runs."""

    def __init__(self, cbs):
        self.saved = [(cb, copy.deepcopy(cb.state_dict())) for cb in cbs if getattr(cb, "grad_scaler", None)]

    def restore(self) -> None:
        for cb, state in self.saved:
            cb.load_state_dict(state)
