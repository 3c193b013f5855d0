"""What does the Learner cost? `Learner.fit` against a hand-written loop, on the same model, data and optimizer.

SGD with momentum, one CPU thread, training only (no validation loader). Variants:
  raw        the hand-written loop: forward, loss, backward, step, zero_grad, and `loss.item()` kept in a
             list (the one value per iteration the recorder needs too)
  off        `learn.fit(lr, n_epoch)` with `progress=False` (Recorder on: losses, smoothed loss, lrs, moms)
  bar        the same with the progress callback on (terminal mode: one line per epoch, captured)
  bf16       `learn.fit` with `MixedPrecision(torch.bfloat16)` (`learn.to_bf16()`), against the raw loop with
             its forward and loss under `torch.autocast("cpu", dtype=torch.bfloat16)`
  raw+1cyc   the raw loop plus `torch.optim.lr_scheduler.OneCycleLR.step()` each iteration, for reference

Three measures, printed as three tables:
1. Side by side in one fit (`PairedBatches`): the raw loop runs inside the Learner's fit, one raw step for
   each of the Learner's iterations, on the same batch, so the load of a shared machine lands on both
   alike. Per iteration: the median over every batch of (Learner + fetch) / (raw + fetch) and of the
   difference in microseconds; per fit: what the Learner spends outside its iterations (construction, set-up,
   epoch ends), and the whole fit's ratio, median and quartiles over the repeats. A row with short fits
   gets more repeats, so that every row rests on at least `--min-iters` (1000) paired iterations.
2. Separate runs, interleaved: each variant a fit of its own, in a shuffled order, `--repeats` times; the
   median and quartiles of the per-repeat time ratios. On a busy machine single runs scatter far more
   than the effect measured; it is kept as the plain check that needs no instrumented loader.
   The last table puts the two measures of `off` side by side. WHY_THEY_DIFFER says why they differ.
3. The fixed cost per iteration: the same loops with every torch operation made nearly free (a
   one-parameter model returning its parameter, a loss whose backward does nothing, an optimizer whose step
   does nothing), in microseconds, minimum over the repeats; the difference is what the Learner's events,
   callbacks and recorder add to each iteration, whatever the model. Table 2's "from the fixed cost" column
   is 1 + (that difference) x (raw it/s). The loggers' columns are what `CSVLogger` and `TensorBoardCallback`
   add to the Learner's own cost (progress off), their epoch-end writing included.

Time is this process's CPU time by default (single-threaded, so it is the work done, and it does not count
the time the scheduler gives other processes on a shared machine); `--wall` uses wall-clock time.

    python benchmarks/overhead.py           # 25 repeats of ~0.1 s fits (about 8 minutes on 1 core)
    python benchmarks/overhead.py --quick   # 5 repeats, a smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import io
import itertools
import math
import os
import random
import statistics
import tempfile
import time
from functools import partial

import torch
from torch import nn

from lrcycle import CSVLogger, DataLoaders, Learner, TensorBoardCallback, digits_cnn, digits_mlp
from lrcycle.demo.data import digits_arrays

LR = 0.01
MODELS = {"cnn": digits_cnn, "mlp": digits_mlp}
VARIANTS = ["raw", "raw+1cyc", "off", "bar", "raw bf16", "bf16"]
BASELINE = {"raw bf16": "raw bf16", "bf16": "raw bf16"}  # what each variant's ratio is taken against
PAIRED = ["off", "bar", "bf16"]  # run against the raw loop (with autocast for bf16) inside one fit
WHY_THEY_DIFFER = (
    "Paired, the raw step runs inside the Learner's fit, right after the Learner's own Python code has taken "
    "its share of the CPU caches, and the fit's set-up and epoch ends are counted apart; as separate runs, the "
    "raw loop keeps its caches to itself and every cost of the fit is spread over its iterations, so the "
    "separate-run figure is the larger one, and the one a user timing a script sees."
)


def raw_step(model, opt, loss_func, xb, yb, losses, autocast=False):
    """One iteration of the hand-written loop."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        loss = loss_func(model(xb), yb)
    loss.backward()
    opt.step()
    opt.zero_grad()
    losses.append(loss.item())


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
            raw_step(model, opt, loss_func, xb, yb, losses, autocast)
            if sched is not None:
                sched.step()
    return losses


def learner_fit(model, train, n_epoch, progress, bf16=False):
    learn = Learner(
        DataLoaders(train, None, nn.CrossEntropyLoss()),
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


def timed_call(clock, f, *args, **kwargs) -> float:
    """Seconds `f(*args, **kwargs)` takes, the garbage collector off while it runs (as `timeit` does): a
    collection of the earlier runs' objects would otherwise land in whichever variant happens to run next."""
    torch.manual_seed(0)
    gc.collect()
    gc.disable()
    try:
        start = clock()
        f(*args, **kwargs)
        return clock() - start
    finally:
        gc.enable()


def timed(clock, variant, model, dl, n_epoch):
    """One run's time, on a fresh copy of the model."""
    return timed_call(clock, run, variant, copy.deepcopy(model), dl, n_epoch)


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
    ratios = {v: quartiles(r) for v, r in per_repeat.items()}
    its = {v: n_iter / statistics.median(times[v]) for v in VARIANTS}
    base = {v: times[BASELINE.get(v, "raw")] for v in VARIANTS}
    extra_us = {v: statistics.median((t - b) / n_iter * 1e6 for t, b in zip(times[v], base[v])) for v in VARIANTS}
    return {"model": model_name, "bs": bs, "iters": n_iter, "its": its, "ratios": ratios, "extra_us": extra_us}


class PairedBatches:
    """A training loader that runs the raw loop inside the Learner's fit, batch by batch.

    Each batch also trains the raw loop's own copy of the model for one step (`raw_step`): before the
    Learner gets it on even batches, after the Learner is done with it on odd ones (whichever runs right
    after the fetch finds the caches colder; alternating evens that out). The two loops thus alternate
    every iteration, and whatever load the machine carries at any moment lands on both alike. It keeps, per
    batch, `(fetch, raw, learner)` times: fetching the batch from the DataLoader, the raw step, and the
    Learner's iteration (from handing the batch over to being asked for the next). Opening the DataLoader
    each epoch and its last, empty fetch cost both loops alike: they are kept apart in `epoch_fetch`.

    `inside` is all the time spent in this generator (from each resume to the next hand-over): the fetches,
    the raw steps, and this class's own bookkeeping (clock reads, the list of times), which belongs to
    neither loop. A Learner's fit takes `total - inside` plus its fetches.
    """

    def __init__(self, dl, model, clock, autocast=False):
        self.dl, self.clock, self.autocast = dl, clock, autocast
        start = clock()
        self.model, self.loss_func, self.losses = model, nn.CrossEntropyLoss(), []
        self.opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
        model.train()
        self.setup = clock() - start  # what the raw loop does once a fit, before its first batch
        self.times: list[tuple[float, float, float]] = []
        self.epoch_fetch = self.inside = 0.0

    def __len__(self):
        return len(self.dl)

    def __iter__(self):
        clock = self.clock
        resumed = clock()
        batches = iter(self.dl)
        self.epoch_fetch += clock() - resumed
        for i in itertools.count():
            start = clock()
            try:
                batch = next(batches)
            except StopIteration:
                end = clock()
                self.epoch_fetch += end - start
                self.inside += end - resumed
                return
            fetch = clock() - start
            raw_first = i % 2 == 0
            raw = self.raw_step(batch) if raw_first else 0.0
            handed = clock()
            self.inside += handed - resumed
            yield batch
            resumed = clock()
            learner = resumed - handed
            raw = raw if raw_first else self.raw_step(batch)
            self.times.append((fetch, raw, learner))

    def raw_step(self, batch) -> float:
        start = self.clock()
        raw_step(self.model, self.opt, self.loss_func, *batch, self.losses, self.autocast)
        return self.clock() - start


def paired_run(variant, model, dl, n_epoch, clock):
    """One fit of the Learner with the raw loop run inside it (`PairedBatches`); returns per-batch times,
    and the whole fit's time for each side: the Learner's (construction and its fetches included; the raw
    steps and the loader's bookkeeping taken out) and the raw loop's (its setup, fetches and steps)."""
    batches = PairedBatches(dl, copy.deepcopy(model), clock, autocast=variant == "bf16")
    model = copy.deepcopy(model)
    total = timed_call(clock, learner_fit, model, batches, n_epoch, progress=variant == "bar", bf16=variant == "bf16")
    fetch, raw, learner = (sum(column) for column in zip(*batches.times, strict=True))
    fetch += batches.epoch_fetch
    return {
        "times": batches.times,
        "learner": total - batches.inside + fetch,
        "raw": batches.setup + fetch + raw,
        "fixed": total - batches.inside - learner - batches.setup,  # outside the iterations, less the raw set-up
    }


def paired_bench(model_name, bs, repeats, seconds, clock, min_iters):
    """Per iteration: the median of (learner + fetch) / (raw + fetch) over every batch of every repeat,
    and the median of (learner - raw) in microseconds. Per fit: the median over repeats of the whole fits'
    ratio, and of what the Learner spends outside its iterations (construction, fit set-up, epoch ends)
    less the raw loop's set-up. A row whose fits are only a few iterations long (the CNN at batch 256: 6 to
    12) gets more repeats, so that every row rests on at least `min_iters` paired iterations."""
    x_train, y_train, _, _ = digits_arrays()
    dl = DataLoaders.from_tensors(x_train, y_train, bs=bs).train
    torch.manual_seed(0)
    model = MODELS[model_name]()
    timed(clock, "raw", model, dl, 1)  # warm-up: the first run pays for lazy set-up
    n_epoch = max(1, math.ceil(seconds / (timed(clock, "raw", model, dl, 3) / 3)))
    row = {"model": model_name, "bs": bs, "iters": n_epoch * len(dl)}
    repeats = row["repeats"] = max(repeats, math.ceil(min_iters / row["iters"]))
    for variant in PAIRED:
        paired_run(variant, model, dl, 1, clock)  # warm-up
        per_iter, extra_us, fits, fixed_us, raw_iter = [], [], [], [], []
        for _ in range(repeats):
            r = paired_run(variant, model, dl, n_epoch, clock)
            per_iter += [(learner + fetch) / (raw + fetch) for fetch, raw, learner in r["times"]]
            extra_us += [(learner - raw) * 1e6 for _, raw, learner in r["times"]]
            fits.append(r["learner"] / r["raw"])
            fixed_us.append(r["fixed"] * 1e6)
            raw_iter += [fetch + raw for fetch, raw, _ in r["times"]]
        row[variant] = {
            "iter": quartiles(per_iter),
            "extra_us": statistics.median(extra_us),
            "fit": quartiles(fits),
            "fixed_us": statistics.median(fixed_us),
            "raw_its": 1 / statistics.median(raw_iter),
        }
    return row


def quartiles(values) -> tuple[float, float, float]:
    """(median, 25th, 75th percentile)."""
    low, median, high = statistics.quantiles(values, n=4)
    return median, low, high


def fmt(q) -> str:
    """`1.012x (0.97-1.05)`: a median ratio and its quartiles."""
    return f"{q[0]:.3f}x ({q[1]:.2f}-{q[2]:.2f})"


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
    # Being a subclass, it takes the Recorder's chunked read (detach now, one stacked read every 64 steps), the
    # way a loss on a GPU does; a plain CPU loss is read at once, for less. So the fixed cost measured with it
    # is, if anything, on the high side.

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

    def fit(progress, logger=None):
        learn = Learner(
            DataLoaders(batches, None, loss_func),
            _NullModel(),
            opt_func=_NullOpt,
            progress=progress,
            device="cpu",
            path=log_dir,
        )
        with contextlib.redirect_stdout(io.StringIO()):
            learn.fit(LR, 1, cbs=None if logger is None else [logger()])

    log_dir = tempfile.mkdtemp()
    tensorboard = partial(TensorBoardCallback, log_dir)
    runs = {"raw": raw, "off": partial(fit, False), "bar": partial(fit, True),
            "csv": partial(fit, False, CSVLogger), "tb": partial(fit, False, tensorboard)}  # fmt: skip
    times = {name: [] for name in runs}
    for _ in range(repeats + 1):  # the first round is a warm-up
        for name, f in runs.items():
            start = clock()
            f()
            times[name].append(clock() - start)
    return {name: min(t[1:]) / n_batches * 1e6 for name, t in times.items()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 repeats: a smoke run")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=None, help="target length of one run")
    parser.add_argument("--wall", action="store_true", help="wall-clock time instead of process CPU time")
    parser.add_argument("--models", default="cnn,mlp")
    parser.add_argument("--bs", default="32,256")
    parser.add_argument(
        "--min-iters", type=int, default=None, help="paired iterations a row needs at least (1000; 200 with --quick)"
    )
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
    models = [(m, int(bs)) for m in args.models.split(",") for bs in args.bs.split(",")]
    min_iters = args.min_iters or (200 if args.quick else 1000)
    paired_rows = [paired_bench(m, bs, repeats, seconds, clock, min_iters) for m, bs in models]
    paired_table(paired_rows)
    us = fixed_cost(max(repeats, 5), clock)
    separate_rows = [bench(m, bs, repeats, seconds, clock) for m, bs in models]
    separate_table(separate_rows, (us["off"] - us["raw"]) / 1e6)
    both_table(paired_rows, separate_rows)
    print()
    columns = "raw loop | lrcycle, progress off | lrcycle, bar on | + CSVLogger | + TensorBoard"
    print(f"| fixed cost per iteration | {columns} |")
    print("|---|---|---|---|---|---|")
    print(
        f"| microseconds | {us['raw']:.1f} | {us['off']:.1f} (+{us['off'] - us['raw']:.1f}) "
        f"| {us['bar']:.1f} (+{us['bar'] - us['raw']:.1f}) | {us['csv']:.1f} (+{us['csv'] - us['off']:.1f}) "
        f"| {us['tb']:.1f} (+{us['tb'] - us['off']:.1f}) |"
    )


def print_table(header, rows) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for cells in rows:
        print("| " + " | ".join(cells) + " |", flush=True)


def paired_table(rows) -> None:
    print("\nSide by side in one fit (a raw step on each batch the Learner trains on):")
    header = [
        "model",
        "bs",
        "iters",
        "repeats",
        "raw it/s",
        "off, per iteration (quartiles)",
        "off, whole fit (quartiles)",
        "off, us per iteration",
        "off, us per fit",
        "bar on, whole fit",
        "bf16 / raw autocast, whole fit",
    ]
    print_table(
        header,
        [
            [
                r["model"],
                str(r["bs"]),
                str(r["iters"]),
                str(r["repeats"]),
                f"{r['off']['raw_its']:.0f}",
                fmt(r["off"]["iter"]),
                fmt(r["off"]["fit"]),
                f"+{r['off']['extra_us']:.1f}",
                f"+{r['off']['fixed_us']:.0f}",
                f"{r['bar']['fit'][0]:.3f}x",
                fmt(r["bf16"]["fit"]),
            ]
            for r in rows
        ],
    )


def separate_table(rows, extra_s: float) -> None:
    print("\nSeparate runs, interleaved (each variant a fit of its own):")
    header = [
        "model",
        "bs",
        "raw it/s",
        "lrcycle it/s",
        "off (quartiles)",
        "bar on",
        "raw+OneCycleLR (quartiles)",
        "off, from the fixed cost",
        "raw bf16 it/s",
        "bf16 / raw autocast",
    ]
    print_table(
        header,
        [
            [
                r["model"],
                str(r["bs"]),
                f"{r['its']['raw']:.0f}",
                f"{r['its']['off']:.0f}",
                fmt(r["ratios"]["off"]),
                f"{r['ratios']['bar'][0]:.3f}x",
                fmt(r["ratios"]["raw+1cyc"]),
                f"{1 + extra_s * r['its']['raw']:.3f}x",
                f"{r['its']['raw bf16']:.0f}",
                f"{r['ratios']['bf16'][0]:.3f}x",
            ]
            for r in rows
        ],
    )


def both_table(paired_rows, separate_rows) -> None:
    """`off` (progress off) against the raw loop, measured paired and as separate runs, one row per model and bs."""
    print("\nlrcycle (progress off) against the raw loop, both measures:")
    header = ["model", "bs", "paired, per iteration", "paired, us per it", "separate runs", "separate, us per it"]
    print_table(
        header,
        [
            [
                p["model"],
                str(p["bs"]),
                f"{p['off']['iter'][0]:.3f}x",
                f"+{p['off']['extra_us']:.1f}",
                f"{s['ratios']['off'][0]:.3f}x",
                f"{s['extra_us']['off']:+.1f}",
            ]
            for p, s in zip(paired_rows, separate_rows, strict=True)
        ],
    )
    print(f"\n{WHY_THEY_DIFFER}")


if __name__ == "__main__":
    main()
