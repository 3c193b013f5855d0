"""What does the range test cost beyond the training it does? And does memory grow when it is repeated?

Times `learn.lr_find(num_it=100, stop_div=False)` (snapshot, restore and suggestions included) against
100 raw PyTorch training steps (forward, loss, backward, step, zero_grad) of a copy of the same model
with the same optimizer over the same data loader, interleaved, several times: the median ratio is
printed. Then 20 range tests in a row, with the process's resident memory and the Python heap
(tracemalloc) after each, to show that nothing accumulates.

    python benchmarks/lr_find_cost.py            # 15 interleaved repeats per model
    python benchmarks/lr_find_cost.py --quick    # 3 repeats, 5 repeated tests
"""

from __future__ import annotations

import argparse
import copy
import gc
import statistics
import time
import tracemalloc
from functools import partial

import psutil
import torch

from lrcycle import Learner, digits, digits_cnn, digits_mlp

NUM_IT = 100
SGD = partial(torch.optim.SGD, momentum=0.9)


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


def time_it(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def cost_ratio(name: str, make_model, repeats: int) -> float:
    torch.manual_seed(0)
    dls = digits()
    learn = Learner(dls, make_model(), opt_func=SGD, progress=False)
    learn.fit(1e-2)  # a learner in use: an optimizer with momentum buffers to snapshot
    raw_model = copy.deepcopy(learn.model)
    run_raw = lambda: raw_steps(raw_model, learn.loss_func, dls.train, NUM_IT)
    run_find = lambda: learn.lr_find(num_it=NUM_IT, stop_div=False)
    run_raw(), run_find()  # warm up both
    ratios, raws, finds = [], [], []
    for rep in range(repeats):
        # alternate which goes first, so a drift in machine load does not favour either
        if rep % 2:
            t_find, t_raw = time_it(run_find), time_it(run_raw)
        else:
            t_raw, t_find = time_it(run_raw), time_it(run_find)
        ratios.append(t_find / t_raw)
        raws.append(t_raw)
        finds.append(t_find)
    ratio = statistics.median(ratios)
    raw_ms, find_ms = statistics.median(raws) * 1e3, statistics.median(finds) * 1e3
    print(
        f"{name:<12} raw 100 steps {raw_ms:7.1f} ms   lr_find {find_ms:7.1f} ms   median ratio {ratio:.3f}x"
        f"  (min {min(ratios):.3f}, max {max(ratios):.3f}, {repeats} repeats)"
    )
    return ratio


def memory_growth(n_calls: int) -> None:
    """RSS, then the Python heap (tracemalloc, a second pass: its own records would count in the RSS),
    over repeated range tests, next to the same number of raw 100-step loops."""
    torch.manual_seed(0)
    learn = Learner(digits(), digits_cnn(), opt_func=SGD, progress=False)
    learn.fit(1e-2)
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
    args = parser.parse_args()
    torch.set_num_threads(1)
    repeats = args.repeats or (3 if args.quick else 15)
    start = time.perf_counter()
    print(f"lr_find(num_it={NUM_IT}, stop_div=False) against {NUM_IT} raw steps, digits (23 batches of 64):")
    cost_ratio("digits MLP", digits_mlp, repeats)
    cost_ratio("digits CNN", digits_cnn, repeats)
    memory_growth(5 if args.quick else 20)
    print(f"\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
