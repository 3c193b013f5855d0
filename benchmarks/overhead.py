"""What does the Learner cost? Iterations per second of `Learner.fit` against a hand-written loop.

Same model, same DataLoader, same optimizer (SGD with momentum), one CPU thread. Variants:
  raw        the hand-written loop: forward, loss, backward, step, zero_grad, and `loss.item()` kept in a
             list (the one value per iteration the recorder needs too)
  raw+1cyc   the raw loop plus `torch.optim.lr_scheduler.OneCycleLR.step()` each iteration, for reference
  off        `learn.fit(lr, n_epoch)` with `progress=False` (Recorder on: losses, smoothed loss, lrs, moms)
  bar        the same with the progress callback on (terminal mode: one line per epoch, captured)
  raw bf16   the raw loop with forward and loss under `torch.autocast("cpu", dtype=torch.bfloat16)`
  bf16       `learn.fit` with `MixedPrecision(torch.bfloat16)` (`learn.to_bf16()`), its ratio against raw bf16
Training only (no validation loader), so every timed iteration is a training step. Each run trains a
fresh copy of the same initial model; the variants run interleaved in a shuffled order, `--repeats` times
(many short runs follow a machine's changing load better than a few long ones), and the table shows the
median it/s and the median of the per-repeat time ratios (variant / raw; 1.02x = 2% slower than raw), with their
quartiles for the plain Learner and for raw+OneCycleLR (whose true cost is a few microseconds an iteration): the
spread a shared machine puts on single runs.

The last column and a second table isolate the fixed cost per iteration: the same loops with every torch operation made
nearly free (a one-parameter model returning its parameter, a loss whose backward does nothing, an optimizer
whose step does nothing), in microseconds, minimum over the repeats; the difference is what the Learner's
events, callbacks and recorder add to each iteration, whatever the model. That column is
1 + (that difference) x (raw it/s): the ratio the fixed cost alone implies, free of the run-to-run noise
that the measured ratios carry on a busy machine.

Time is this process's CPU time by default (single-threaded, so it is the work done, and it does not count
the time the scheduler gives other processes on a shared machine); `--wall` uses wall-clock time.

    python benchmarks/overhead.py           # 25 repeats of ~0.1 s runs (about 2 minutes on 1 core)
    python benchmarks/overhead.py --quick   # 5 repeats, a smoke run (its ratios are noisy)
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import io
import math
import os
import random
import statistics
import time
from functools import partial

import torch
from torch import nn

from lrcycle import DataLoaders, Learner, digits_cnn, digits_mlp
from lrcycle.data import digits_arrays

LR = 0.01
MODELS = {"cnn": digits_cnn, "mlp": digits_mlp}
VARIANTS = ["raw", "raw+1cyc", "off", "bar", "raw bf16", "bf16"]
BASELINE = {"raw bf16": "raw bf16", "bf16": "raw bf16"}  # what each variant's ratio is taken against


def raw_loop(model, dl, n_epoch, one_cycle=False, autocast=False):
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
    sched = None
    if one_cycle:
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=n_epoch * len(dl))
    loss_func = nn.CrossEntropyLoss()
    losses = []
    model.train()
    for _ in range(n_epoch):
        for xb, yb in dl:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                loss = loss_func(model(xb), yb)
            loss.backward()
            opt.step()
            opt.zero_grad()
            if sched is not None:
                sched.step()
            losses.append(loss.item())
    return losses


def learner_fit(model, dl, n_epoch, progress, bf16=False):
    learn = Learner(
        DataLoaders(dl, None, nn.CrossEntropyLoss()),
        model,
        opt_func=partial(torch.optim.SGD, momentum=0.9),
        progress=progress,
        device="cpu",
    )
    if bf16:
        learn.to_bf16()
    with contextlib.redirect_stdout(io.StringIO()):
        learn.fit(LR, n_epoch)
    return learn.recorder.losses


def run(variant, model, dl, n_epoch):
    if variant == "raw":
        return raw_loop(model, dl, n_epoch)
    if variant == "raw+1cyc":
        return raw_loop(model, dl, n_epoch, one_cycle=True)
    if variant == "raw bf16":
        return raw_loop(model, dl, n_epoch, autocast=True)
    return learner_fit(model, dl, n_epoch, progress=variant == "bar", bf16=variant == "bf16")


def timed(clock, variant, model, dl, n_epoch):
    """One run's time, the garbage collector off while it runs (as `timeit` does): a collection of the
    earlier runs' objects would otherwise land in whichever variant happens to run next."""
    model = copy.deepcopy(model)
    torch.manual_seed(0)
    gc.collect()
    gc.disable()
    try:
        start = clock()
        run(variant, model, dl, n_epoch)
        return clock() - start
    finally:
        gc.enable()


def bench(model_name, bs, repeats, seconds, clock):
    x_train, y_train, _, _ = digits_arrays()
    dl = DataLoaders.from_tensors(x_train, y_train, bs=bs).train
    torch.manual_seed(0)
    model = MODELS[model_name]()
    for variant in VARIANTS:  # warm-up: first calls pay for lazy imports and allocator growth
        timed(clock, variant, model, dl, 1)
    per_epoch = timed(clock, "raw", model, dl, 3) / 3
    n_epoch = max(1, math.ceil(seconds / per_epoch))
    n_iter = n_epoch * len(dl)
    times = {v: [] for v in VARIANTS}
    order = list(VARIANTS)
    for _ in range(repeats):
        random.shuffle(order)
        for variant in order:
            times[variant].append(timed(clock, variant, model, dl, n_epoch))
    per_repeat = {v: [t / r for t, r in zip(times[v], times[BASELINE.get(v, "raw")], strict=True)] for v in VARIANTS}
    ratios = {v: statistics.median(r) for v, r in per_repeat.items()}
    quartiles = {v: statistics.quantiles(r, n=4)[::2] for v, r in per_repeat.items()}  # [25th, 75th]
    its = {v: n_iter / statistics.median(times[v]) for v in VARIANTS}
    return {"model": model_name, "bs": bs, "iters": n_iter, "its": its, "ratios": ratios, "quartiles": quartiles}


class _NullModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return self.w


class _NullOpt(torch.optim.Optimizer):
    def __init__(self, params, lr=LR):
        super().__init__(params, {"lr": lr, "momentum": 0.9})

    def step(self, closure=None):
        pass

    def zero_grad(self, set_to_none=True):
        pass


class _NullLoss(torch.Tensor):
    """A 0-d tensor (the loss check wants one) whose backward does nothing."""

    value = torch.ones(())  # what the recorder keeps on the device and reads in chunks
    # A real loss answers `.ndim` (the loss check reads it) from C in 0.06 us; on a tensor subclass the read
    # goes through `__torch_function__` (about 3 us), a cost of this stand-in that no real loss pays.
    ndim = 0

    def backward(self):
        pass

    def item(self):
        return 1.0

    def detach(self):
        return self.value


def fixed_cost(repeats, clock, n_batches=2000):
    """Microseconds per iteration of the raw loop and the Learner when the torch work is (nearly) free."""
    batch = (torch.zeros(2), torch.zeros(2))
    batches, null_loss = [batch] * n_batches, torch.ones(()).as_subclass(_NullLoss)
    loss_func = lambda pred, y: null_loss

    def raw():
        model = _NullModel()
        opt, losses = _NullOpt(model.parameters()), []
        for xb, yb in batches:
            loss = loss_func(model(xb), yb)
            loss.backward()
            opt.step()
            opt.zero_grad()
            losses.append(loss.item())

    def fit(progress):
        learn = Learner(
            DataLoaders(batches, None, loss_func),
            _NullModel(),
            opt_func=_NullOpt,
            progress=progress,
            device="cpu",
        )
        with contextlib.redirect_stdout(io.StringIO()):
            learn.fit(LR, 1)

    runs = {"raw": raw, "off": partial(fit, False), "bar": partial(fit, True)}
    times = {name: [] for name in runs}
    for _ in range(repeats + 1):  # the first round is a warm-up
        for name, f in runs.items():
            start = clock()
            f()
            times[name].append(clock() - start)
    return {name: min(t[1:]) / n_batches * 1e6 for name, t in times.items()}


def with_quartiles(row: dict, variant: str) -> str:
    """`1.012x (0.97-1.05)`: the median ratio and the 25th and 75th percentiles of the per-repeat ratios."""
    low, high = row["quartiles"][variant]
    return f"{row['ratios'][variant]:.3f}x ({low:.2f}-{high:.2f})"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 repeats: a smoke run")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=None, help="target length of one run")
    parser.add_argument("--wall", action="store_true", help="wall-clock time instead of process CPU time")
    parser.add_argument("--models", default="cnn,mlp")
    parser.add_argument("--bs", default="32,256")
    args = parser.parse_args(argv)
    repeats = args.repeats or (5 if args.quick else 25)
    seconds = args.seconds or 0.1
    clock = time.perf_counter if args.wall else time.process_time
    torch.set_num_threads(1)
    random.seed(0)
    kind = "wall" if args.wall else "CPU"
    print(
        f"torch {torch.__version__}, 1 thread, {repeats} repeats, ~{seconds} s per run, {kind} time; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    header = [
        "model",
        "bs",
        "iters",
        "raw it/s",
        "lrcycle it/s",
        "ratio off (quartiles)",
        "ratio bar on",
        "raw+OneCycleLR (quartiles)",
        "off, from fixed cost",
        "raw bf16 it/s",
        "MixedPrecision(bf16) / raw autocast",
    ]
    us = fixed_cost(max(repeats, 5), clock)
    extra_s = (us["off"] - us["raw"]) / 1e6
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for model_name in args.models.split(","):
        for bs in (int(b) for b in args.bs.split(",")):
            r = bench(model_name, bs, repeats, seconds, clock)
            cells = [
                r["model"],
                str(r["bs"]),
                str(r["iters"]),
                f"{r['its']['raw']:.0f}",
                f"{r['its']['off']:.0f}",
                with_quartiles(r, "off"),
                f"{r['ratios']['bar']:.3f}x",
                with_quartiles(r, "raw+1cyc"),
                f"{1 + extra_s * r['its']['raw']:.3f}x",
                f"{r['its']['raw bf16']:.0f}",
                f"{r['ratios']['bf16']:.3f}x",
            ]
            print("| " + " | ".join(cells) + " |", flush=True)
    print()
    print("| fixed cost per iteration | raw loop | lrcycle, progress off | lrcycle, bar on |")
    print("|---|---|---|---|")
    print(
        f"| microseconds | {us['raw']:.1f} | {us['off']:.1f} (+{us['off'] - us['raw']:.1f}) "
        f"| {us['bar']:.1f} (+{us['bar'] - us['raw']:.1f}) |"
    )


if __name__ == "__main__":
    main()
