"""Data-parallel training under torchrun: `with learn.distrib_ctx(): learn.fit(...)`.

Inside the block each process trains a replica of the model on its own shard of the training data and
DistributedDataParallel averages the gradients, so the replicas stay identical. Each iteration's loss is
averaged across processes before the recorder reads it: every process then records the same trace, and a
range test stops on the same iteration everywhere (a process that stopped alone would leave the others
waiting forever in their next gradient all-reduce).

Batch size is per process: the global batch is `world_size * bs`, with `1/world_size` as many iterations
per epoch. Outside torchrun (no torchrun environment, or a world of one process) the block does nothing.
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import os

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import (
    DataLoader,
    DistributedSampler,
    IterableDataset,
    RandomSampler,
    Sampler,
    SequentialSampler,
)

from .callback import ORDER, Callback

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DistributedDataParallel (or DataParallel) wrapper and/or `torch.compile`, or the
    model itself: the module whose `state_dict` keys are the plain model's (no `module.` or `_orig_mod.`)."""
    if isinstance(model, (DistributedDataParallel, torch.nn.DataParallel)):
        model = model.module
    compiled = getattr(torch, "_dynamo", None)
    if compiled is not None and isinstance(model, compiled.eval_frame.OptimizedModule):
        model = unwrap(model._orig_mod)  # reading torch.compile's wrapped module; nothing is written
    return model


def group_active() -> bool:
    """Whether a torch.distributed process group is running in this process."""
    return dist.is_available() and dist.is_initialized()


def is_main_process() -> bool:
    return not group_active() or dist.get_rank() == 0


def broadcast_buffers(module: torch.nn.Module) -> None:
    """Every rank takes rank 0's buffers (BatchNorm statistics); nothing to do without a process group."""
    if group_active():
        for buffer in module.buffers():
            dist.broadcast(buffer.data, src=0)


def launched_by_torchrun() -> bool:
    """True when torchrun's environment variables are set and ask for more than one process."""
    return all(v in os.environ for v in TORCHRUN_VARS) and int(os.environ["WORLD_SIZE"]) > 1


def is_distributed() -> bool:
    """True when this process is one of several: a process group of more than one, or torchrun asking."""
    if group_active():
        return dist.get_world_size() > 1
    return launched_by_torchrun()


class ShardSampler(Sampler[int]):
    """Rank `rank`'s contiguous share of `range(n)`, no padding: shares differ in length by at most one and
    together cover every index exactly once, so a metric summed over the shards is exact."""

    def __init__(self, n: int, rank: int, world_size: int):
        self.start, self.stop = n * rank // world_size, n * (rank + 1) // world_size

    def __iter__(self):
        return iter(range(self.start, self.stop))

    def __len__(self) -> int:
        return self.stop - self.start


class DistributedCallback(Callback):
    """Keeps the processes in step: one shuffle for all (seed drawn per fit, epoch set per epoch), every
    iteration's loss averaged across ranks, validation sums and counts added across ranks.

    Validation runs the inner model, not the DDP wrapper: the wrapper broadcasts buffers at every forward,
    and the validation shards may differ by one batch, which would leave one rank waiting for the other.
    Runs after the schedulers and before the Recorder, which reads `learn.loss` and the reduced validation sums.
    """

    order = ORDER["distributed"]

    def __init__(
        self,
        ddp: DistributedDataParallel,
        train_sampler: DistributedSampler,
        generator: torch.Generator | None,
    ):
        self.ddp, self.sampler, self.generator = ddp, train_sampler, generator
        self.trainable = _trainable(ddp.module)

    def before_fit(self, learn) -> None:
        # DDP syncs the gradients of the parameters that were trainable when it was built: after a freeze_to
        # inside the block, wrap again (rebuilding broadcasts rank 0's weights, which everyone already has)
        if _trainable(self.ddp.module) != self.trainable:
            self.ddp, self.trainable = _wrap(self.ddp.module), _trainable(self.ddp.module)
        learn.model = self.ddp
        # Like a shuffling DataLoader, draw each fit's seed from torch's RNG (so a range test, which puts the
        # RNG back, leaves the next fit's order unchanged); rank 0's draw is used everywhere.
        if self.sampler.shuffle:
            seed = torch.randint(2**62, (1,), generator=self.generator)
            self.sampler.seed = int(_broadcast(seed).item())

    def before_epoch(self, learn) -> None:
        self.sampler.set_epoch(learn.epoch)

    def before_train(self, learn) -> None:
        learn.model = self.ddp

    def after_train(self, learn) -> None:
        # DDP hands rank 0's buffers to everyone before each forward, but the last forward then updated each
        # rank's BatchNorm statistics from its own batch: hand them over once more, so that validation and
        # the weights left after the fit are the same everywhere.
        broadcast_buffers(self.ddp.module)

    def before_validate(self, learn) -> None:
        learn.model = self.ddp.module

    def after_batch(self, learn) -> None:
        # Backward is done by now: the averaged value is only for the recorder and callbacks after it.
        if learn.training and learn.loss is not None:
            learn.loss = _all_sum(learn.loss.detach().float()) / dist.get_world_size()

    def after_fit(self, learn) -> None:
        self.after_train(learn)  # a fit cancelled mid-epoch (early stopping) skips after_train

    def after_validate(self, learn) -> None:
        # The recorder keeps per-rank sums [loss*n, metric*n, ...] and a count n; their totals give the global
        # mean over the whole validation set (the shards do not overlap).
        learn.recorder.reduce_valid(lambda packed: _all_sum(packed).cpu(), 1 + len(learn.metrics))
        learn.model = self.ddp


@contextlib.contextmanager
def distrib_ctx(learn):
    """Under torchrun: DDP model, sharded data, loss averaged across ranks; everything undone on exit.

    Starts the process group when none is (`nccl` for a CUDA learner, whose model moves to the device named
    by LOCAL_RANK, else `gloo`); it stays up for later blocks and ends with the process. The model stays
    trained.
    """
    if not is_distributed() or isinstance(learn.model, DistributedDataParallel):
        yield learn  # not under torchrun, or already inside a distrib_ctx
        return
    shuffle = _check_loader(learn.dls.train, "dls.train")
    if learn.dls.valid is not None:
        _check_loader(learn.dls.valid, "dls.valid")
    _init_process_group(learn)
    model, dls, cb = learn.model, learn.dls, None
    try:
        if learn.device.type == "cuda":
            _move_to(learn, torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))))
        r, world = dist.get_rank(), dist.get_world_size()
        sampler = DistributedSampler(dls.train.dataset, num_replicas=world, rank=r, shuffle=shuffle)
        learn.dls = copy.copy(dls)
        learn.dls.train = _reshard(dls.train, sampler)
        if dls.valid is not None:
            learn.dls.valid = _reshard(dls.valid, ShardSampler(len(dls.valid.dataset), r, world))
        learn.model = _wrap(model)
        cb = DistributedCallback(learn.model, sampler, dls.train.generator)
        learn.add_cbs([cb])
        yield learn
    finally:
        if cb is not None and cb in learn.cbs:
            learn.remove_cbs([cb])
        learn.model, learn.dls = model, dls


def _check_loader(dl, name: str) -> bool:
    """Raise unless `dl` can be resharded; return whether it shuffles."""
    if not isinstance(dl, DataLoader):
        raise ValueError(
            f"{name}: distrib_ctx reshards the data across processes, which needs a torch DataLoader; "
            f"got {type(dl).__name__}"
        )
    if isinstance(dl.dataset, IterableDataset) or dl.batch_size is None:
        raise ValueError(
            f"{name}: distrib_ctx needs a DataLoader over a map-style dataset built with batch_size= "
            "(an IterableDataset or a custom batch_sampler cannot be resharded)"
        )
    if not isinstance(dl.sampler, (RandomSampler, SequentialSampler)):
        raise ValueError(
            f"{name}: distrib_ctx replaces the sampler with a DistributedSampler, so it needs shuffle=True "
            f"or shuffle=False, not a custom sampler ({type(dl.sampler).__name__})"
        )
    return isinstance(dl.sampler, RandomSampler)


def _reshard(dl: DataLoader, sampler: Sampler) -> DataLoader:
    """The same dataset, batch size, collate and workers, drawing its indices from `sampler`."""
    workers = {}
    if dl.num_workers > 0:
        workers = dict(
            prefetch_factor=dl.prefetch_factor,
            persistent_workers=dl.persistent_workers,
            multiprocessing_context=dl.multiprocessing_context,
        )
    return DataLoader(
        dl.dataset,
        batch_size=dl.batch_size,
        sampler=sampler,
        num_workers=dl.num_workers,
        collate_fn=dl.collate_fn,
        pin_memory=dl.pin_memory,
        drop_last=dl.drop_last,
        timeout=dl.timeout,
        worker_init_fn=dl.worker_init_fn,
        **workers,
    )


def _init_process_group(learn) -> None:
    """Start the process group from torchrun's environment unless one exists.

    It stays up after the block and ends when the process exits: under torchrun a group destroyed and
    started again in the same process hangs in gloo's rendezvous, and a script may well hold several
    `distrib_ctx` blocks (a range test in one, the fit in the next).
    """
    if dist.is_initialized():
        return
    dist.init_process_group(backend="nccl" if learn.device.type == "cuda" else "gloo")
    atexit.register(_destroy_process_group)


def _destroy_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def _move_to(learn, device: torch.device) -> None:
    """Put the model (and any optimizer state) on this process's own GPU."""
    torch.cuda.set_device(device)
    learn.device = device
    learn.model.to(device)  # parameters keep their identity: the optimizer and layer groups still hold them
    if learn.opt is not None and learn.opt.state:
        learn.opt.load_state_dict(learn.opt.state_dict())  # loading casts the state to each param's device


def _wrap(model) -> DistributedDataParallel:
    """DDP around `model`, on the device its parameters are on; building it broadcasts rank 0's weights."""
    device = next(model.parameters()).device
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def _trainable(model) -> list[bool]:
    return [p.requires_grad for p in model.parameters()]


def _collective_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _all_sum(t: torch.Tensor) -> torch.Tensor:
    t = t.to(_collective_device(), copy=True)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def _broadcast(t: torch.Tensor) -> torch.Tensor:
    t = t.to(_collective_device(), copy=True)
    dist.broadcast(t, src=0)
    return t
