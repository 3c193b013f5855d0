"""How good are the range test's suggestions? Train at each suggested lr and compare with a grid's best.

For each task (data shipped inside scikit-learn, small models, CPU): a grid of 13 log-spaced `lr_max`
values (1/3 decade apart), each trained with `fit_one_cycle` for a fixed budget (3 epochs) over 5 seeds;
the grid's best mean validation accuracy is the oracle. Then, for the same 5 seeds: `lr_find` on the
freshly initialised model, and `fit_one_cycle` from that same initialisation at each suggestion (the
range test restores the model exactly, so the suggestion is trained from the very weights it was measured
on). A seed fixes the initial weights and the shuffling, so the grid and the suggestions are compared
seed for seed. `lr_range` is scored at its high end (Smith's max lr).

    python benchmarks/suggest_quality.py            # the full table (several minutes on one core)
    python benchmarks/suggest_quality.py --quick    # fewer grid points and seeds, a smoke run
    python benchmarks/suggest_quality.py --dump curves.json   # keep the curves and grid for analysis
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from torch import nn

from lrcycle import DataLoaders, Learner, accuracy, digits, digits_cnn, digits_mlp, suggest


@dataclass
class Task:
    name: str
    make_dls: object
    make_model: object
    opt_func: object


def breast_cancer_dls(bs: int = 16) -> DataLoaders:
    """scikit-learn's breast-cancer data (569 rows, 30 features), standardised, a fixed 70/30 split."""
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    order = np.random.RandomState(0).permutation(len(x))
    n_valid = int(0.3 * len(x))
    valid, train = order[:n_valid], order[n_valid:]
    mean, std = x[train].mean(0), x[train].std(0)
    x = torch.tensor((x - mean) / std, dtype=torch.float32)
    y = torch.tensor(y, dtype=torch.int64)
    return DataLoaders.from_tensors(x[train], y[train], x[valid], y[valid], bs=bs, loss_func=nn.CrossEntropyLoss())


def tabular_mlp(n_in: int = 30, n_out: int = 2, hidden: int = 32) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, n_out)
    )


SGD = partial(torch.optim.SGD, momentum=0.9)
TASKS = [
    Task("digits CNN, SGD", digits, digits_cnn, SGD),
    Task("digits CNN, Adam", digits, digits_cnn, torch.optim.Adam),
    Task("digits MLP, SGD", digits, digits_mlp, SGD),
    Task("breast cancer MLP, Adam", breast_cancer_dls, tabular_mlp, torch.optim.Adam),
]


def make_learner(task: Task, seed: int) -> Learner:
    torch.manual_seed(seed)  # the initial weights and the shuffling order
    return Learner(task.make_dls(), task.make_model(), opt_func=task.opt_func, metrics=[accuracy], progress=False)


def train_accuracy(task: Task, seed: int, lr: float, n_epoch: int) -> float:
    """Validation accuracy (percent) after `fit_one_cycle(n_epoch, lr)` from the seed's initialisation."""
    if not (math.isfinite(lr) and lr > 0):
        return math.nan
    learn = make_learner(task, seed)
    learn.fit_one_cycle(n_epoch, lr)
    return 100 * learn.validate()[1]


def suggestion_funcs() -> list:
    return list(suggest.DEFAULT_FUNCS)


def as_lr(value) -> float:
    return value[1] if isinstance(value, tuple) else value  # lr_range: its high end is the lr_max


def run_task(task: Task, grid, grid_seeds, seeds, n_epoch, funcs) -> dict:
    cache: dict[tuple[int, float], float] = {}

    def acc(seed, lr):
        key = (seed, float(lr))
        if key not in cache:
            cache[key] = train_accuracy(task, seed, lr, n_epoch)
        return cache[key]

    grid_acc = [[acc(s, lr) for s in grid_seeds] for lr in grid]
    curves, suggested = [], {f.__name__: [] for f in funcs}
    for seed in seeds:
        learn = make_learner(task, seed)
        found = learn.lr_find(suggest_funcs=funcs)
        curves.append([learn.recorder.lrs, learn.recorder.smooth_losses])
        for f, value in zip(funcs, found, strict=True):
            suggested[f.__name__].append(as_lr(value))
    scores = {name: [acc(s, lr) for s, lr in zip(seeds, lrs, strict=True)] for name, lrs in suggested.items()}
    return {
        "grid": list(grid),
        "grid_acc": grid_acc,
        "curves": curves,
        "suggested": suggested,
        "scores": scores,
    }


def geo_mean(values) -> float:
    values = [v for v in values if math.isfinite(v) and v > 0]
    return float(np.exp(np.mean(np.log(values)))) if values else math.nan


def oracle_of(result: dict) -> float:
    return float(np.nanmax([np.mean(a) for a in result["grid_acc"]]))


def print_table(task: Task, result: dict) -> None:
    means = [float(np.mean(a)) for a in result["grid_acc"]]
    best = int(np.nanargmax(means))
    oracle = means[best]
    n_seeds, best_lr = len(result["grid_acc"][0]), result["grid"][best]
    print(f"\n{task.name}: oracle {oracle:.2f}% at lr_max {best_lr:.3g} (grid best, mean of {n_seeds} seeds)")
    print(f"  {'suggestion':<12} {'lr (geo mean)':>14} {'accuracy':>9} {'vs oracle':>10} {'fraction':>9}")
    for name, accs in result["scores"].items():
        mean = float(np.mean(accs))
        lr = geo_mean(result["suggested"][name])
        print(f"  {name:<12} {lr:>14.3g} {mean:>8.2f}% {mean - oracle:>+10.2f} {mean / oracle:>9.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="6 grid points, 2 seeds, 2 tasks: a smoke run")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--dump", help="write the curves, suggestions and grid results to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.quick:
        tasks, grid, grid_seeds, seeds = TASKS[::3], np.logspace(-3, 0, 6), [0, 1], [0, 1]
    else:
        tasks, grid, grid_seeds, seeds = TASKS, np.logspace(-3.5, 0.5, 13), [0, 1, 2, 3, 4], [0, 1, 2, 3, 4]
    start = time.perf_counter()
    results = {}
    for task in tasks:
        results[task.name] = run_task(task, grid, grid_seeds, seeds, args.epochs, suggestion_funcs())
        print_table(task, results[task.name])
    default = suggestion_funcs()[0].__name__
    worst = min(float(np.mean(r["scores"][default])) - oracle_of(r) for r in results.values())
    verdict = ("meets" if worst >= -0.5 else "misses") + " the 0.5 target"
    if args.quick:
        verdict += "; a smoke run, 2 seeds are too few to judge"
    print(f"\ndefault ({default}): worst loss against the oracle {worst:+.2f} points ({verdict})")
    print(
        f"{len(tasks)} tasks, {len(grid)} grid lrs x {len(grid_seeds)} seeds, {len(seeds)} seeds per "
        f"suggestion, {args.epochs} epochs of fit_one_cycle; {time.perf_counter() - start:.0f} s"
    )
    if args.dump:
        with open(args.dump, "w") as f:
            json.dump(results, f)


if __name__ == "__main__":
    main()
