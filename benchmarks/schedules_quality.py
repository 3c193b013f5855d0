"""Which schedule should I use? Twelve schedules side by side at equal budgets on three small tasks.

Tasks (nothing downloaded): `digits` (the digits BN-CNN, 1,437 training images), `mnist1d` (MNIST-1D
generated locally by the `mnist1d` package: 4,000 training signals, a small 1-D CNN without BatchNorm) and
`small` (300 digits training images, BN-CNN of width 8). Schedules: constant, SGDR with 0.7's warm-up,
`use_clr=(32,5)` and `(10,10)` (one cycle over the budget, 0.7's usage), triangular with 2 cycles, one-cycle,
flat_cos, WSD with linear and 1-sqrt decay, linear decay to zero (all SGD with momentum 0.9) and the
schedule-free AdamW and SGD optimizers at a constant lr (their own 5% warm-up).

For each task, schedule, budget (`BUDGETS`: short and long, in epochs) and lr of a log grid, every seed is one fit; a
schedule's lr is the grid lr with the best mean final validation accuracy over the seeds, and the table
reports mean ± standard deviation over the seeds at that lr, the epochs the long run took to first reach
the task's target accuracy, and the long-budget accuracy at `lr_find`'s default suggestion (a range test
with that schedule's optimizer and seed) against the grid-best. Every fit's per-epoch accuracies are cached
in `benchmarks/.cache/` (gitignored), so a rerun only prints; `--fresh` ignores the cache.

    python benchmarks/schedules_quality.py            # full: 3 tasks, 3 seeds, 3 lrs a schedule (~30 min, one core)
    python benchmarks/schedules_quality.py --quick    # small task only, 2 seeds, 2 lrs (~1 min)
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import torch
from torch import nn

from lrcycle import DataLoaders, Learner, accuracy, digits, digits_cnn, suggest

CACHE = Path(__file__).resolve().parent / ".cache" / "schedules_quality.json"
GRIDS = {"sgd": [0.05, 0.2, 0.8], "sf_adamw": [0.002, 0.008, 0.032], "sf_sgd": [0.2, 0.8, 3.2]}  # factors of 4
BUDGETS = {"digits": (3, 7), "mnist1d": (7, 15), "small": (3, 7)}  # (short, long) epochs
TARGETS = {"digits": 0.97, "mnist1d": 0.80, "small": 0.90}


# ---- tasks -----------------------------------------------------------------------------------------------
def mnist1d_loaders(bs: int = 128) -> DataLoaders:
    """MNIST-1D (Greydanus 2020) built from its templates by `mnist1d.data.make_dataset` (never downloaded):
    4,000 training and 1,000 validation signals of length 40, 10 classes."""
    from mnist1d.data import get_dataset_args, make_dataset

    data = make_dataset(get_dataset_args())
    as_x = lambda a: torch.tensor(a, dtype=torch.float32).unsqueeze(1)
    as_y = lambda a: torch.tensor(a, dtype=torch.int64)
    x, y, x_valid, y_valid = as_x(data["x"]), as_y(data["y"]), as_x(data["x_test"]), as_y(data["y_test"])
    return DataLoaders.from_tensors(x, y, x_valid, y_valid, bs=bs, loss_func=nn.CrossEntropyLoss())


def mnist1d_cnn(channels: int = 16) -> nn.Sequential:
    """A 1-D CNN for MNIST-1D signals of length 40: three strided convolutions, then a linear head."""
    c = channels
    return nn.Sequential(
        nn.Conv1d(1, c, 5, padding=2), nn.ReLU(),
        nn.Conv1d(c, c, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv1d(c, c, 3, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(c * 10, 10),
    )  # fmt: skip


TASKS = {
    "digits": lambda: (digits(bs=64), lambda: digits_cnn(bn=True)),
    "mnist1d": lambda: (mnist1d_loaders(), mnist1d_cnn),
    "small": lambda: (digits(bs=32, n_train=300), lambda: digits_cnn(bn=True, width=8)),
}


def make_tasks(names=tuple(TASKS)) -> dict:
    """name -> (loaders, model maker), each task's data built once."""
    return {name: TASKS[name]() for name in names}


# ---- schedules: name -> (optimizer kind, fit(learn, lr, budget)) -----------------------------------------
def sgdr_cycles(budget: int) -> int:
    """Cycles of 1, 2, 4, ... epochs filling `budget` = 2**n - 1 epochs (7 and 15 here)."""
    n = round(math.log2(budget + 1))
    if 2**n - 1 != budget:
        raise ValueError(f"budget: SGDR with cycle_mult=2 needs 2**n - 1 epochs, got {budget}")
    return n


SCHEDULES = {
    "constant": ("sgd", lambda learn, lr, b: learn.fit(lr, b)),
    "SGDR (1,2,4..; 0.7 warm-up)": (
        "sgd",
        lambda learn, lr, b: learn.fit(lr, sgdr_cycles(b), cycle_len=1, cycle_mult=2),
    ),
    "use_clr=(32,5)": ("sgd", lambda learn, lr, b: learn.fit(lr, 1, cycle_len=b, use_clr=(32, 5))),
    "use_clr=(10,10)": ("sgd", lambda learn, lr, b: learn.fit(lr, 1, cycle_len=b, use_clr=(10, 10))),
    "triangular, 2 cycles": ("sgd", lambda learn, lr, b: learn.fit_cyclic(b, lr, n_cycle=2)),
    "one-cycle": ("sgd", lambda learn, lr, b: learn.fit_one_cycle(b, lr)),
    "flat_cos": ("sgd", lambda learn, lr, b: learn.fit_flat_cos(b, lr)),
    "WSD linear": ("sgd", lambda learn, lr, b: learn.fit_wsd(b, lr, decay_shape="linear")),
    "WSD 1-sqrt": ("sgd", lambda learn, lr, b: learn.fit_wsd(b, lr)),
    "linear to zero": (
        "sgd",
        lambda learn, lr, b: learn.fit_wsd(b, lr, warmup=0.05, decay=0.95, decay_shape="linear", div_final=math.inf),
    ),
    "schedule-free AdamW": ("sf_adamw", lambda learn, lr, b: learn.fit(lr, b)),
    "schedule-free SGD": ("sf_sgd", lambda learn, lr, b: learn.fit(lr, b)),
}


def opt_func(kind: str, total_steps: int):
    """SGD with momentum 0.9, or a schedule-free optimizer warming up over 5% of the fit."""
    if kind == "sgd":
        return partial(torch.optim.SGD, momentum=0.9)
    import schedulefree

    warmup = max(1, total_steps // 20)
    if kind == "sf_adamw":
        return partial(schedulefree.AdamWScheduleFree, warmup_steps=warmup)
    return partial(schedulefree.SGDScheduleFree, momentum=0.9, warmup_steps=warmup)


def make_learner(task, kind: str, budget: int, seed: int) -> Learner:
    dls, model = task
    torch.manual_seed(seed)  # model init and the shuffling of the training data
    opt = opt_func(kind, budget * len(dls.train))
    return Learner(dls, model(), opt_func=opt, metrics=[accuracy], progress=False)


def run_fit(task, schedule: str, lr: float, budget: int, seed: int) -> list[float]:
    """Validation accuracy after every epoch of one fit."""
    kind, fit = SCHEDULES[schedule]
    learn = make_learner(task, kind, budget, seed)
    fit(learn, lr, budget)
    return [row["accuracy"] for row in learn.recorder.epochs]


def default_rule_id() -> str:
    """The default suggestion's name, with its fitted settings when it is `cliff` (they have changed before)."""
    rule = suggest.DEFAULT_FUNCS[0].__name__
    if rule != "cliff":
        return rule
    return f"cliff({suggest.CLIFF_FACTOR:g},{suggest.CLIFF_DIVISOR:g},{suggest.CLIFF_NEAR:g},{suggest.CLIFF_RISE:g})"


def suggested_lr(task, kind: str, budget: int, seed: int) -> float:
    """`lr_find`'s default (first) suggestion for a fresh model of this seed and this optimizer."""
    return float(make_learner(task, kind, budget, seed).lr_find()[0])


# ---- the cache ---------------------------------------------------------------------------------------------
class Cache:
    """Results by key, written back after every new one, so an interrupted run loses at most one fit."""

    def __init__(self, path: Path | None):
        self.path = path
        self.data = json.loads(path.read_text()) if path is not None and path.exists() else {}

    def get(self, key: str, compute, *args):
        """The cached `compute(*args)` under `key`, computed (and written) if missing."""
        if key not in self.data:
            self.data[key] = compute(*args)
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.path.write_text(json.dumps(self.data))
        return self.data[key]


# ---- the study ---------------------------------------------------------------------------------------------
def study(tasks: dict, schedules, seeds, grids, cache: Cache, epochs=None, log=print) -> list[dict]:
    """One row per (task, schedule): grid-best lr and accuracy per budget (`BUDGETS` unless `epochs` gives
    (short, long) epochs for every task), epochs to target, lr_find's lr and the accuracy there."""
    rows = []
    for task_name, task in tasks.items():
        budgets = BUDGETS[task_name] if epochs is None else epochs
        long = budgets[1]
        for name in schedules:
            kind = SCHEDULES[name][0]
            runs = {}  # (budget, lr) -> per-seed accuracy curves
            for budget in budgets:
                for lr in grids[kind]:
                    key = f"{task_name}|{name}|{budget}|{lr:g}"
                    runs[budget, lr] = [cache.get(f"{key}|{s}", run_fit, task, name, lr, budget, s) for s in seeds]
            row = {"task": task_name, "schedule": name, "budgets": budgets}
            for part, budget in zip(("short", "long"), budgets):
                best = max(grids[kind], key=lambda lr: statistics.mean(c[-1] for c in runs[budget, lr]))
                finals = [c[-1] for c in runs[budget, best]]
                row[part] = {"lr": best, "accs": finals, "edge": best in (grids[kind][0], grids[kind][-1])}
            best_curves = runs[long, row["long"]["lr"]]
            target = TARGETS[task_name]
            row["to_target"] = [next((e + 1 for e, a in enumerate(c) if a >= target), None) for c in best_curves]
            rule = default_rule_id()  # cached per rule and settings: a new default is measured afresh
            find_key = f"{task_name}|lr_find:{rule}|{kind}|{long}"
            sugg = [cache.get(f"{find_key}|{s}", suggested_lr, task, kind, long, s) for s in seeds]
            at_sugg = [
                cache.get(f"{task_name}|{name}|{long}|sugg:{lr:.6g}|{s}", run_fit, task, name, lr, long, s)[-1]
                for s, lr in zip(seeds, sugg, strict=True)
            ]
            row["suggested"] = {"lrs": sugg, "accs": at_sugg}
            rows.append(row)
            log(f"  done {task_name:8} {name}", file=sys.stderr, flush=True)
    return rows


def mean_sd(values) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):5.1f}±{100 * sd:3.1f}"


def epochs_text(epochs, long: int) -> str:
    """Mean epochs to the target over seeds; a seed that never reached it shows as a miss count."""
    hit = [e for e in epochs if e is not None]
    misses = len(epochs) - len(hit)
    text = f"{statistics.mean(hit):4.1f}" if hit else "   -"
    return text + (f" ({misses} miss)" if misses else "")


def table(rows: list[dict]) -> str:
    head = f"{'task':8} {'schedule':28} {'lr':>6} {'short acc%':>11} {'lr':>6} {'long acc%':>11}"
    head += f" {'ep->target':>13} {'lr_find lr':>10} {'acc there':>10} {'vs best':>7}"
    lines = [head, "-" * len(head)]
    for r in rows:
        s, lg, sg, long = r["short"], r["long"], r["suggested"], r["budgets"][1]
        edge = lambda b: "*" if b["edge"] else " "
        gap = 100 * (statistics.mean(sg["accs"]) - statistics.mean(lg["accs"]))
        geo = math.exp(statistics.mean(math.log(x) for x in sg["lrs"]))
        lines.append(
            f"{r['task']:8} {r['schedule']:28} {s['lr']:>5g}{edge(s)} {mean_sd(s['accs']):>11} {lg['lr']:>5g}{edge(lg)}"
            f" {mean_sd(lg['accs']):>11} {epochs_text(r['to_target'], long):>13} {geo:>10.2g}"
            f" {mean_sd(sg['accs']):>10} {gap:>+7.1f}"
        )
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small task, 2 seeds, 2 lrs a schedule")
    parser.add_argument("--fresh", action="store_true", help="ignore (and do not write) the cache")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    tasks = make_tasks(["small"] if args.quick else TASKS)
    if args.quick:
        seeds, grids = [0, 1], {kind: lrs[:2] for kind, lrs in GRIDS.items()}
    else:
        seeds, grids = [0, 1, 2], GRIDS
    cache = Cache(None if args.fresh else CACHE)
    start = time.perf_counter()
    rows = study(tasks, list(SCHEDULES), seeds, grids, cache)
    print(f"seeds {seeds}; (short, long) epochs {BUDGETS}; targets {TARGETS}; lr grids {grids}")
    print("* = the best lr is at an end of its grid")
    print("acc%: final validation accuracy, mean±sd over seeds at the schedule's grid-best lr (chosen by the mean)")
    print(table(rows))
    print(f"took {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
