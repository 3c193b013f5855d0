"""CPU instructions an iteration, counted: lrcycle's one-cycle fit against the hand-written loop, with no timer.

On a shared machine a timed run of a few hundred microseconds an iteration scatters by tens of microseconds, more
than the few microseconds lrcycle adds. The number of instructions the CPU runs does not depend on the load, so
this counts them with valgrind's cachegrind (`valgrind` must be on the PATH; it runs each fit about 50 times
slower). Every variant is run twice, with a short and a long fit, in a process of its own; the difference over
the extra iterations is the count an iteration, free of the start-up (importing torch, building the model) that
both runs share. The count does depend on the process's memory layout (where `malloc` finds room, how dictionary
lookups collide): an environment 3 kB larger moved lrcycle's by 3,000 an iteration, so compare variants counted
in one run, and read differences of a few thousand as ties. Variants, all one-cycle (pct_start 0.25, div 25,
div_final 1e5, momentum 0.95-0.85-0.95), on the MLP 64-32-10 at batch 32 on scikit-learn's digits, SGD with
momentum, one thread, one validation pass:

  raw             the hand-written loop, lr and momentum worked out and written into the param group each step
  raw_onecyclelr  the hand-written loop with `torch.optim.lr_scheduler.OneCycleLR.step()` each step
  lrcycle         `learn.fit_one_cycle` with progress off (Recorder, schedule, events, Ctrl-C held per batch)
  lrcycle_bar     the same with the progress bar (output captured)

With `--cache-sim`, cachegrind also simulates the CPU's caches and the script reports the misses of the
first-level data (D1) and instruction (I1) caches an iteration; with `--branch-sim`, the branches its simple
predictor mispredicts (a real CPU predicts better, so read them as a comparison between variants): work a count
of instructions does not show.

    python benchmarks/instructions.py              # 4 variants x 2 fits, about 10 minutes on 2 cores
    python benchmarks/instructions.py --cache-sim  # with the cache misses, about twice as long
    python benchmarks/instructions.py --branch-sim # with the mispredicted branches, about twice as long
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import torch
from torch import nn

VARIANTS = ("raw", "raw_onecyclelr", "lrcycle", "lrcycle_bar")
LR_MAX, PCT, DIV, DIV_FINAL, MOMS = 0.1, 0.25, 25.0, 1e5, (0.95, 0.85, 0.95)
BATCH = 32


def digits():
    """scikit-learn's digits, standardised, as float32 inputs and class targets (train, valid)."""
    from sklearn.datasets import load_digits
    from sklearn.preprocessing import StandardScaler

    x, y = load_digits(return_X_y=True)
    x = StandardScaler().fit_transform(x)
    x, y = torch.tensor(x, dtype=torch.float32), torch.tensor(y)
    return (x[:1400], y[:1400]), (x[1400:], y[1400:])


def loader(x, y, n_batches: int | None, seed: int = 0):
    """Whole batches by indexing (`BatchSampler` as the sampler, no per-sample collate); `n_batches` drawn with
    replacement, so one epoch is exactly that many iterations."""
    from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler, TensorDataset

    data = TensorDataset(x, y)
    if n_batches is None:
        sampler = BatchSampler(SequentialSampler(data), 256, drop_last=False)
    else:
        g = torch.Generator().manual_seed(seed)
        draws = RandomSampler(data, replacement=True, num_samples=n_batches * BATCH, generator=g)
        sampler = BatchSampler(draws, BATCH, drop_last=True)
    return DataLoader(data, batch_size=None, sampler=sampler)


def cos_between(start: float, end: float, pos: float) -> float:
    return end + (start - end) / 2 * (1 + math.cos(math.pi * pos))


def one_cycle(i: int, n: int, start: float, peak: float, end: float) -> float:
    pos = i / n
    if pos < PCT:
        return cos_between(start, peak, pos / PCT)
    return cos_between(peak, end, (pos - PCT) / (1 - PCT))


def validate(model, valid):
    model.eval()
    with torch.no_grad():
        for xb, yb in valid:
            nn.functional.cross_entropy(model(xb), yb).item()
    model.train()


def run_raw(model, train, valid, n):
    opt = torch.optim.SGD(model.parameters(), lr=LR_MAX / DIV, momentum=MOMS[0])
    loss_func = nn.CrossEntropyLoss()
    for i, (xb, yb) in enumerate(train):
        lr, mom = one_cycle(i, n, LR_MAX / DIV, LR_MAX, LR_MAX / DIV_FINAL), one_cycle(i, n, *MOMS)
        for group in opt.param_groups:
            group["lr"], group["momentum"] = lr, mom
        loss = loss_func(model(xb), yb)
        loss.backward()
        opt.step()
        opt.zero_grad()
    validate(model, valid)


def run_raw_onecyclelr(model, train, valid, n):
    opt = torch.optim.SGD(model.parameters(), lr=LR_MAX / DIV, momentum=MOMS[0])
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=LR_MAX, total_steps=n, pct_start=PCT, div_factor=DIV, final_div_factor=DIV_FINAL / DIV,
        base_momentum=MOMS[1], max_momentum=MOMS[0],
    )  # fmt: skip
    loss_func = nn.CrossEntropyLoss()
    for xb, yb in train:
        loss = loss_func(model(xb), yb)
        loss.backward()
        opt.step()
        opt.zero_grad()
        sched.step()
    validate(model, valid)


def run_lrcycle(model, train, valid, n, progress=False):
    import lrcycle

    learn = lrcycle.Learner(
        lrcycle.DataLoaders(train, valid), model, loss_func=nn.CrossEntropyLoss(),
        opt_func=partial(torch.optim.SGD, momentum=MOMS[0]), moms=MOMS, progress=progress, device="cpu",
        path=tempfile.gettempdir(),
    )  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        learn.fit_one_cycle(1, LR_MAX, div=DIV, div_final=DIV_FINAL, pct_start=PCT)
    assert len(learn.recorder.losses) == n


RUNS = {
    "raw": run_raw,
    "raw_onecyclelr": run_raw_onecyclelr,
    "lrcycle": run_lrcycle,
    "lrcycle_bar": partial(run_lrcycle, progress=True),
}


def one_fit(variant: str, n: int) -> None:
    """The process valgrind counts: one fit of `n` iterations (after the same imports and set-up for all)."""
    torch.set_num_threads(1)
    (x, y), (xv, yv) = digits()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    RUNS[variant](model, loader(x, y, n), loader(xv, yv, None), n)


EVENTS = {"instructions": r"I\s+refs", "D1 misses": r"D1\s+misses", "I1 misses": r"I1\s+misses",
          "mispredicts": r"Mispredicts"}  # fmt: skip


def count(variant: str, n: int, cache_sim: bool, branch_sim: bool) -> dict[str, int]:
    """What valgrind counts for one process running `one_fit(variant, n)` (address layout fixed)."""
    command = ["valgrind", "--tool=cachegrind", f"--cache-sim={'yes' if cache_sim else 'no'}"]
    command += [f"--branch-sim={'yes' if branch_sim else 'no'}"]
    command += ["--cachegrind-out-file=/dev/null"]
    command += [sys.executable, __file__, "--one-fit", variant, str(n)]
    env = {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        ["setarch", platform.machine(), "-R", *command], env=env, capture_output=True, text=True, check=True
    )
    found = {name: re.search(pattern + r":\s+([\d,]+)", done.stderr) for name, pattern in EVENTS.items()}
    return {name: int(match.group(1).replace(",", "")) for name, match in found.items() if match}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", type=int, default=100, help="iterations of the short fit")
    parser.add_argument("--long", type=int, default=2100, help="iterations of the long fit")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="valgrind processes at once")
    parser.add_argument("--cache-sim", action="store_true", help="also count first-level cache misses")
    parser.add_argument("--branch-sim", action="store_true", help="also count mispredicted branches")
    parser.add_argument("--quick", action="store_true", help="a long fit of 600 iterations, not 2,100")
    parser.add_argument("--one-fit", nargs=2, metavar=("VARIANT", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_fit:
        return one_fit(args.one_fit[0], int(args.one_fit[1]))
    if args.quick:
        args.long = 600
    variants = args.variants.split(",")
    jobs = [(v, n) for v in variants for n in (args.short, args.long)]
    with ThreadPoolExecutor(args.jobs) as pool:
        counts = dict(zip(jobs, pool.map(lambda job: count(*job, args.cache_sim, args.branch_sim), jobs)))
    extra = args.long - args.short
    per_iter = {v: {k: (counts[v, args.long][k] - counts[v, args.short][k]) / extra for k in counts[v, args.long]}
                for v in variants}  # fmt: skip
    events = list(per_iter[variants[0]])
    print(f"# an iteration (cachegrind), from fits of {args.short} and {args.long} iterations; over raw in brackets")
    print(f"{'variant':<16}" + "".join(f"{event:>24}" for event in events))
    for v in variants:
        cells = []
        for event in events:
            over = per_iter[v][event] - per_iter["raw"][event] if "raw" in per_iter else math.nan
            cells.append(f"{per_iter[v][event]:>12,.0f} ({over:>+8,.0f})")
        print(f"{v:<16}" + "".join(f"{cell:>24}" for cell in cells))


if __name__ == "__main__":
    main()
