"""What does the range test cost beyond the training it does? And does memory grow when it is repeated?

Times `learn.lr_find(num_it=100, stop_div=False)` and `lrcycle.range_test(model, optimizer, loss_func,
train_loader, num_it=100, stop_div=False)` (on a copy of the model and optimizer: a light Learner built
around them at every call, snapshot, restore and suggestions included) against
100 raw PyTorch training steps (forward, loss, backward, step, zero_grad) of a copy of the same model
with the same optimizer over the same data loader, interleaved, several times: the median ratio is
printed. When torch-lr-finder is installed (`pip install -e '.[bench]'`), its
`LRFinder(model, optimizer, criterion).range_test(..., num_iter=100, diverge_th=inf)` followed by `reset()`
is timed in the same interleaved repeats, from a copy of the same model and optimizer state, and a table
says whether model parameters and buffers, optimizer state and the torch RNG state are bitwise what they
were before each range test. Then 20 range tests in a row, with the process's resident memory and the
Python heap (tracemalloc) after each, to show that nothing accumulates.

Times are this process's CPU time (`--clock wall` for wall time): with one torch thread, CPU time is what the
work costs, and other jobs on a shared machine disturb it much less than the wall clock.

    python benchmarks/lr_find_cost.py            # 15 interleaved repeats per model
    python benchmarks/lr_find_cost.py --quick    # 3 repeats, 5 repeated tests
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import io
import math
import statistics
import time
import tracemalloc
from functools import partial

import psutil
import torch

from lrcycle import Learner, digits, digits_cnn, digits_mlp, range_test

NUM_IT = 100
START_LR, END_LR = 1e-7, 10
SGD = partial(torch.optim.SGD, momentum=0.9)


def load_lr_finder():
    """torch-lr-finder's LRFinder class, or None (the comparison is then skipped) when it is not installed."""
    try:
        from torch_lr_finder import LRFinder
    except ImportError:
        return None
    return LRFinder


def their_range_test(lr_finder_cls, model, opt, loss_func, train_dl, reset: bool = True) -> None:
    """torch-lr-finder's range test over the same range and number of steps as ours, never stopping early
    (a threshold of inf: like our stop_div=False), then its reset() (model and optimizer from its
    in-memory copy). Its progress bar and closing message are swallowed: it has no switch for them."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        finder = lr_finder_cls(model, opt, loss_func)
        finder.range_test(
            train_dl, start_lr=START_LR, end_lr=END_LR, num_iter=NUM_IT, step_mode="exp", diverge_th=math.inf
        )
        if reset:
            finder.reset()
    assert len(finder.history["lr"]) == NUM_IT, "torch-lr-finder stopped early"


def state_of(model, opt) -> dict:
    """Copies of what a range test could leave changed: model parameters and buffers, optimizer state, torch RNG."""
    return {
        "model": copy.deepcopy(model.state_dict()),
        "optimizer": copy.deepcopy(opt.state_dict()),
        "torch RNG": torch.get_rng_state(),
    }


def bitwise_equal(a, b) -> bool:
    """Equal down to the bits (NaN included) for nested dicts/lists of tensors and plain values."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        same_kind = isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)
        return same_kind and a.dtype == b.dtype and a.shape == b.shape and a.numpy().tobytes() == b.numpy().tobytes()
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(bitwise_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(bitwise_equal(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def learner_in_use(make_model):
    """A learner after one epoch: an optimizer with momentum buffers to snapshot."""
    torch.manual_seed(0)
    learn = Learner(digits(), make_model(), opt_func=SGD, progress=False)
    learn.fit(1e-2)
    return learn


def copy_model_and_opt(learn):
    """A model and optimizer equal to the learner's (groups, lrs, momentum buffers), sharing nothing with it."""
    return copy.deepcopy((learn.model, learn.opt))  # one deepcopy: the copied optimizer holds the copied parameters


def raw_steps(model, loss_func, train_dl, n_steps: int, lr: float = 1e-3) -> None:
    """The plain PyTorch loop the range test is measured against."""
    opt = SGD(model.parameters(), lr=lr)
    model.train()
    done = 0
    while done < n_steps:
        for xb, yb in train_dl:
            loss = loss_func(model(xb), yb)
            loss.backward()
            opt.step()
            opt.zero_grad()
            done += 1
            if done == n_steps:
                break


CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}
clock = CLOCKS["cpu"]


def time_it(fn) -> float:
    """Seconds `fn` takes on `clock`: this process's CPU time by default (one torch thread, so other jobs on a
    shared machine count far less than in wall time), or wall time with `--clock wall`."""
    start = clock()
    fn()
    return clock() - start


def cost_ratio(name: str, make_model, repeats: int, lr_finder_cls=None) -> None:
    learn = learner_in_use(make_model)
    dls = learn.dls
    raw_model = copy.deepcopy(learn.model)
    own_model, own_opt = copy_model_and_opt(learn)
    runs = {
        "raw": lambda: raw_steps(raw_model, learn.loss_func, dls.train, NUM_IT),
        "lr_find": lambda: learn.lr_find(start_lr=START_LR, end_lr=END_LR, num_it=NUM_IT, stop_div=False),
        "range_test": lambda: range_test(
            own_model, own_opt, learn.loss_func, dls.train, START_LR, END_LR, num_it=NUM_IT, stop_div=False
        ),
    }
    if lr_finder_cls is not None:
        their_model, their_opt = copy_model_and_opt(learn)
        runs["torch-lr-finder"] = lambda: their_range_test(
            lr_finder_cls, their_model, their_opt, learn.loss_func, dls.train
        )
    for run in runs.values():
        run()  # warm up each
    names = list(runs)
    times = {n: [] for n in names}
    for rep in range(repeats):
        # rotate which goes first, so a drift in machine load does not favour any
        for n in names[rep % len(names) :] + names[: rep % len(names)]:
            times[n].append(time_it(runs[n]))
    cells = [f"raw 100 steps {statistics.median(times['raw']) * 1e3:7.1f} ms"]
    for n in names[1:]:
        ratios = [t / r for t, r in zip(times[n], times["raw"])]
        cells.append(
            f"{n} {statistics.median(times[n]) * 1e3:7.1f} ms {statistics.median(ratios):.3f}x"
            f" ({min(ratios):.3f}-{max(ratios):.3f})"
        )
    print(f"{name:<12} " + "   ".join(cells) + f"   [median ratio (min-max), {repeats} repeats]")


def restored_state(make_model, lr_finder_cls) -> None:
    """Measured: is everything bitwise as before, after each range test?"""
    learn = learner_in_use(make_model)
    cases = {}
    before = state_of(learn.model, learn.opt)
    learn.lr_find(start_lr=START_LR, end_lr=END_LR, num_it=NUM_IT, stop_div=False)
    cases["lrcycle lr_find"] = (before, state_of(learn.model, learn.opt))
    model, opt = copy_model_and_opt(learn)
    before = state_of(model, opt)
    range_test(model, opt, learn.loss_func, learn.dls.train, START_LR, END_LR, num_it=NUM_IT, stop_div=False)
    cases["lrcycle range_test"] = (before, state_of(model, opt))
    for reset in (False, True):
        model, opt = copy_model_and_opt(learn)
        before = state_of(model, opt)
        their_range_test(lr_finder_cls, model, opt, learn.loss_func, learn.dls.train, reset=reset)
        cases[f"torch-lr-finder, {'with' if reset else 'no'} reset()"] = (before, state_of(model, opt))
    keys = list(before)
    print("\nbitwise equal to before the range test (digits CNN, measured):")
    print(f"  {'':<30}" + "".join(f"{k:>18}" for k in keys))
    for case, (b, a) in cases.items():
        print(f"  {case:<30}" + "".join(f"{'yes' if bitwise_equal(b[k], a[k]) else 'NO':>18}" for k in keys))


def memory_growth(n_calls: int) -> None:
    """RSS, then the Python heap (tracemalloc, a second pass: its own records would count in the RSS),
    over repeated range tests, next to the same number of raw 100-step loops."""
    learn = learner_in_use(digits_cnn)
    raw_model = copy.deepcopy(learn.model)
    runs = {
        "lr_find": lambda: learn.lr_find(num_it=NUM_IT),
        "raw loop": lambda: raw_steps(raw_model, learn.loss_func, learn.dls.train, NUM_IT),
    }
    process = psutil.Process()
    checkpoints = sorted({1, n_calls // 4, n_calls // 2, n_calls} - {0})
    print(f"\nmemory over {n_calls} repeated calls (CNN), relative to after one warm-up call:")
    for name, run in runs.items():
        run()  # the first call allocates what every later call reuses
        gc.collect()
        rss0, rss = process.memory_info().rss, []
        for i in range(1, n_calls + 1):
            run()
            if i in checkpoints:
                gc.collect()
                rss.append(process.memory_info().rss - rss0)
        tracemalloc.start()
        heap0, heap = tracemalloc.get_traced_memory()[0], []
        for i in range(1, n_calls + 1):
            run()
            if i in checkpoints:
                gc.collect()
                heap.append(tracemalloc.get_traced_memory()[0] - heap0)
        tracemalloc.stop()
        cells = [
            f"{i:>2}: {r / 2**20:+5.2f} MiB {h / 2**10:+5.1f} KiB"
            for i, r, h in zip(checkpoints, rss, heap, strict=True)
        ]
        print(f"  {name:<9} (RSS, Python heap) after " + "   ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--clock", choices=list(CLOCKS), default="cpu", help="CPU time of this process, or wall time")
    args = parser.parse_args()
    global clock
    clock = CLOCKS[args.clock]
    torch.set_num_threads(1)
    repeats = args.repeats or (3 if args.quick else 15)
    start = time.perf_counter()
    lr_finder_cls = load_lr_finder()
    print(f"lr_find / range_test (num_it={NUM_IT}, stop_div=False) against {NUM_IT} raw steps, digits (23 batches")
    print(f"of 64), {args.clock} time:")
    if lr_finder_cls is None:
        print("(torch-lr-finder column skipped: not installed; pip install -e '.[bench]')")
    cost_ratio("digits MLP", digits_mlp, repeats, lr_finder_cls)
    cost_ratio("digits CNN", digits_cnn, repeats, lr_finder_cls)
    if lr_finder_cls is not None:
        restored_state(digits_cnn, lr_finder_cls)
    memory_growth(5 if args.quick else 20)
    print(f"\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
