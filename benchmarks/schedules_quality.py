"""Epochs to reach a target validation accuracy on the digits CNN (with BatchNorm), per lr schedule.

For each schedule: pick its best lr from a small grid on seed 0 (fewest epochs to the target), then run
seeds 0, 1, 2 at that lr. Schedules that do not depend on the length of the fit (constant, SGDR, the
use_clr cycles, triangular with a fixed step size) are read off one run, checked after every epoch and
stopped when the target is reached. One-cycle depends on its budget, so a budget of b epochs is its own
fit of b epochs, judged at its end; the answer is the smallest b that reaches the target.

    python benchmarks/schedules_quality.py            # full: 4 lrs, 3 seeds, up to 30 epochs
    python benchmarks/schedules_quality.py --quick    # 2 lrs, 1 seed, up to 12 epochs
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from lrcycle import Callback, CancelFitException, Learner, accuracy, digits, digits_cnn


class StopAtTarget(Callback):
    """Ends the fit at the first epoch whose validation accuracy reaches `target`, or after `max_epochs`."""

    order = 70  # after the Recorder has the epoch's validation results

    def __init__(self, target: float, max_epochs: int):
        self.target, self.max_epochs, self.reached = target, max_epochs, None

    def after_epoch(self, learn):
        if learn.recorder.epochs[-1]["accuracy"] >= self.target:
            self.reached = learn.epoch + 1
            raise CancelFitException
        if learn.epoch + 1 >= self.max_epochs:
            raise CancelFitException


def long_run_schedules(n_iter: int, max_epochs: int) -> dict:
    """Schedules read off one run: name -> fit(learn, lr, cbs)."""
    n_sgdr = next(c for c in range(1, 10) if 2**c - 1 >= max_epochs)  # cycles of 1, 2, 4, ... epochs
    return {
        "constant": lambda learn, lr, cbs: learn.fit(lr, max_epochs, cbs=cbs),
        "SGDR (cycle_len=1, cycle_mult=2)": lambda learn, lr, cbs: learn.fit(
            lr, n_sgdr, cycle_len=1, cycle_mult=2, cbs=cbs
        ),
        "use_clr=(10,10), cycle_len=1": lambda learn, lr, cbs: learn.fit(
            lr, max_epochs, cycle_len=1, use_clr=(10, 10), cbs=cbs
        ),
        "use_clr=(32,5), cycle_len=1": lambda learn, lr, cbs: learn.fit(
            lr, max_epochs, cycle_len=1, use_clr=(32, 5), cbs=cbs
        ),
        "triangular (step 2 epochs)": lambda learn, lr, cbs: learn.fit_cyclic(
            max_epochs, lr, step_size=2 * n_iter, cbs=cbs
        ),
    }


def make_learner(dls, seed: int) -> Learner:
    torch.manual_seed(seed)  # model init and the shuffling of the training data
    return Learner(dls, digits_cnn(bn=True), metrics=[accuracy], progress=False)


def epochs_long_run(dls, fit, lr, seed, target, max_epochs) -> int | None:
    stop = StopAtTarget(target, max_epochs)
    fit(make_learner(dls, seed), lr, [stop])
    return stop.reached


def epochs_one_cycle(dls, lr, seed, target, max_epochs) -> int | None:
    for budget in range(1, max_epochs + 1):
        learn = make_learner(dls, seed)
        learn.fit_one_cycle(budget, lr)
        if learn.recorder.epochs[-1]["accuracy"] >= target:
            return budget
    return None


def score(epochs: list[int | None], max_epochs: int) -> float:
    """Mean epochs, a miss counting as max_epochs + 1 (so a schedule that misses never looks best)."""
    return statistics.mean(max_epochs + 1 if e is None else e for e in epochs)


def show(epochs: list[int | None], max_epochs: int) -> str:
    return ", ".join(f">{max_epochs}" if e is None else str(e) for e in epochs)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 lrs, 1 seed, up to 12 epochs")
    parser.add_argument("--target", type=float, default=0.986, help="validation accuracy to reach")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    lrs = [0.1, 0.3] if args.quick else [0.03, 0.1, 0.3, 1.0]
    seeds = [0] if args.quick else [0, 1, 2]
    max_epochs = 12 if args.quick else 30
    dls = digits(bs=64)
    n_iter = len(dls.train)
    runners = {
        name: (lambda lr, seed, fit=fit: epochs_long_run(dls, fit, lr, seed, args.target, max_epochs))
        for name, fit in long_run_schedules(n_iter, max_epochs).items()
    }
    runners["one-cycle (per budget)"] = lambda lr, seed: epochs_one_cycle(dls, lr, seed, args.target, max_epochs)

    start = time.perf_counter()
    print(f"target validation accuracy {args.target:.1%}, lrs {lrs}, seeds {seeds}, up to {max_epochs} epochs")
    print(f"{'schedule':34} {'grid (seed 0)':28} {'best lr':>8}  {'epochs per seed':16} {'mean':>5}")
    for name, run in runners.items():
        grid = {lr: run(lr, seeds[0]) for lr in lrs}
        best = min(lrs, key=lambda lr: score([grid[lr]], max_epochs))
        epochs = [grid[best]] + [run(best, seed) for seed in seeds[1:]]
        grid_text = " ".join(f"{lr:g}:{show([e], max_epochs)}" for lr, e in grid.items())
        mean = score(epochs, max_epochs)
        print(f"{name:34} {grid_text:28} {best:>8g}  {show(epochs, max_epochs):16} {mean:5.1f}", flush=True)
    print(f"took {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
