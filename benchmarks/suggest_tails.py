"""Where do the suggestions land on one unlucky test? Many range tests per task, each pick placed against the
task's good band.

Uses the tasks, grids and cache of `suggest_quality.py`. For every task it runs (or reads from the cache) 30
range tests: 10 fresh initialisations (seeds) times 3 batch orders, each the default `lr_find()` (100
iterations). The **good band** is the lr interval, around the grid's best, where the seeds' mean accuracy,
interpolated linearly in log lr between grid points, is within `max(1 point, 1.5 validation samples)` of the
grid's best mean (a regression task scores 100 * R^2, and its tolerance is 1 point). Per task and rule it
reports the band, the 5th, 50th and 95th percentiles of the picks as multiples of the band's edges (low edge
for the 5th, high edge for the 95th, both for the median), the share of picks outside the band, and the
**catastrophic** picks: NaN, below a tenth of the band's low edge, or above 3x its high edge.

    python benchmarks/suggest_tails.py            # every task: grids (3 seeds, quarter decade) and 30 tests each
    python benchmarks/suggest_tails.py --quick    # grids of 2 seeds at half-decade steps (cheaper; same tests)
    python benchmarks/suggest_tails.py --tasks cancer-mlp-sgd-15 --train 5   # also train the default's picks

`--train N` trains the default's pick of the first N seeds (batch order 0) and reports its regret against the
grid's best and the noise floor (the best lr, 1% higher, trained again), like `suggest_quality.py`.
"""

from __future__ import annotations

import argparse
import math
import time
import warnings

import numpy as np
import suggest_quality as sq
import torch

from lrcycle import suggest
from lrcycle.finder.driver import clear_answer

TAIL_SEEDS = range(10)
TAIL_ORDERS = range(3)


def rules() -> list:
    """The default's one-test rule first, then the other rules under their names."""
    others = [suggest.halfway, suggest.minimum, suggest.steep, suggest.valley, sq.high_end]
    return [suggest.cliff, *others]


def auto_picks(rule, curves: list[dict], task: sq.Task) -> list[float]:
    """`lr_find(n_repeats="auto")` on the cached tests: a test on which `rule` finds no clear answer (it warns or
    gives NaN) is read as the average of its seed's TAIL_ORDERS tests (the same weights, other batch orders)."""
    n = len(TAIL_ORDERS)
    picks = []
    for k, curve in enumerate(curves):
        if not clear_answer(rule, curve["lrs"], curve["losses"]):
            group = curves[n * (k // n) : n * (k // n) + n]
            lrs, losses, smoothed = suggest.average_curves([(c["lrs"], c["losses"]) for c in group])
            curve = {"lrs": list(lrs), "losses": list(losses), "smooth_losses": list(smoothed)}
        picks.append(sq.pick(rule, curve, task))
    return picks


def good_band(task: sq.Task, logs: np.ndarray, accs: np.ndarray) -> tuple[float, float, float]:
    """(low lr, high lr, tolerance): the interval around the grid's best mean where the mean accuracy,
    interpolated in log lr, is within the tolerance of the best."""
    means = accs.mean(1)
    n_valid = len(sq.DATA[task.data]()[3])
    tolerance = 1.0 if task.regression else max(1.0, 1.5 * 100 / n_valid)
    fine = np.linspace(logs[0], logs[-1], int(round((logs[-1] - logs[0]) / 0.001)) + 1)
    inside = np.interp(fine, logs, means) >= means.max() - tolerance
    best = int(np.argmin(np.abs(fine - logs[int(np.argmax(means))])))
    low, high = best, best
    while low > 0 and inside[low - 1]:
        low -= 1
    while high < len(fine) - 1 and inside[high + 1]:
        high += 1
    return float(10 ** fine[low]), float(10 ** fine[high]), tolerance


def tail_row(picks: list[float], low: float, high: float) -> dict:
    """Percentiles of the picks against the band's edges, the share outside and the catastrophic count."""
    picks = np.array(picks, dtype=float)
    finite = picks[np.isfinite(picks) & (picks > 0)]
    n_nan = len(picks) - len(finite)
    outside = n_nan + int(np.sum((finite < low) | (finite > high)))
    catastrophic = n_nan + int(np.sum((finite < low / 10) | (finite > 3 * high)))
    p5, p50, p95 = np.percentile(finite, [5, 50, 95]) if len(finite) else (math.nan,) * 3
    return {
        "p5_low": p5 / low,
        "p50_low": p50 / low,
        "p50_high": p50 / high,
        "p95_high": p95 / high,
        "outside": outside / len(picks),
        "n_outside": outside,
        "catastrophic": catastrophic,
        "n": len(picks),
    }


def run_task(task: sq.Task, quick: bool, n_train: int) -> dict:
    store = sq.TaskCache(task)
    logs, accs = sq.grid_accuracies(task, store, quick)
    low, high, tolerance = good_band(task, logs, accs)
    curves = [sq.range_test(task, store, s, o) for s in TAIL_SEEDS for o in TAIL_ORDERS]
    result = {"task": task.name, "band": (low, high), "tolerance": tolerance, "best": float(accs.mean(1).max())}
    default = rules()[0]
    result["rules"] = {f"{default.__name__}_auto": tail_row(auto_picks(default, curves, task), low, high)}
    result["rules"] |= {
        rule.__name__: tail_row([sq.pick(rule, c, task) for c in curves], low, high) for rule in rules()
    }
    if n_train:
        result["trained"] = trained_regret(task, store, logs, accs, n_train)
    return result


def trained_regret(task: sq.Task, store: sq.TaskCache, logs: np.ndarray, accs: np.ndarray, n: int) -> dict:
    """The default's pick (batch order 0) of the first n seeds, trained; regret against the grid's best mean
    and the noise floor (the best lr x1.01 trained on the same seeds). NaN picks score the grid's worst."""
    best = int(np.argmax(accs.mean(1)))
    seeds = list(TAIL_SEEDS)[:n]
    picks = [sq.pick(rules()[0], sq.range_test(task, store, s, 0), task) for s in seeds]
    worst = float(accs.min())
    scores = [sq.accuracy_at(task, store, s, lr) if math.isfinite(lr) else worst for s, lr in zip(seeds, picks)]
    floor = [sq.accuracy_at(task, store, s, 10 ** logs[best] * sq.NUDGE) for s in seeds]
    oracle = float(accs.mean(1)[best])
    return {"regret": float(np.mean(scores)) - oracle, "floor": float(np.mean(floor)) - oracle}


def print_tables(results: list[dict]) -> None:
    names = list(results[0]["rules"])
    head = f"{'rule':<14} {'p5/low':>7} {'p50/low':>8} {'p50/high':>9} {'p95/high':>9} {'outside':>8} {'catastr.':>8}"
    for r in results:
        low, high = r["band"]
        trained = r.get("trained")
        extra = f"; trained default regret {trained['regret']:+.2f} (floor {trained['floor']:+.2f})" if trained else ""
        best = f"best {r['best']:.1f}, within {r['tolerance']:.2f}"
        print(f"\n{r['task']}: good band {low:.3g} to {high:.3g} ({best}){extra}")
        print(head)
        for n in names:
            row = r["rules"][n]
            print(
                f"{n:<14} {row['p5_low']:>7.2f} {row['p50_low']:>8.2f} {row['p50_high']:>9.2f} {row['p95_high']:>9.2f} "
                f"{100 * row['outside']:>7.0f}% {row['catastrophic']:>8d}"
            )
    print(f"\nover all {len(results)} tasks ({sum(r['rules'][names[0]]['n'] for r in results)} picks a rule):")
    for n in names:
        n_out = sum(r["rules"][n]["n_outside"] for r in results)
        total = sum(r["rules"][n]["n"] for r in results)
        cat = sum(r["rules"][n]["catastrophic"] for r in results)
        print(f"  {n:<14} outside the band {100 * n_out / total:5.1f}%   catastrophic {cat}")
    trained = [r["trained"] for r in results if "trained" in r]
    if trained:
        mean = np.mean([t["regret"] for t in trained])
        over = sum(t["regret"] < t["floor"] - 1.0 for t in trained)
        print(f"  trained default: mean regret {mean:+.2f}; tasks worse than floor - 1 point: {over}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="grids of 2 seeds at half-decade steps")
    parser.add_argument("--tasks", help="comma-separated task names (default: all)")
    parser.add_argument("--train", type=int, default=0, help="train the default's pick on this many seeds")
    args = parser.parse_args()
    torch.set_num_threads(1)
    by_name = {t.name: t for t in sq.TASKS}
    names = args.tasks.split(",") if args.tasks else list(by_name)
    unknown = [n for n in names if n not in by_name]
    if unknown:
        parser.error(f"--tasks: unknown {unknown}; known: {list(by_name)}")
    start, results = time.perf_counter(), []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", suggest.SuggestionWarning)
        for name in names:
            results.append(run_task(by_name[name], args.quick, args.train))
            print(f"{name}: done at {time.perf_counter() - start:.0f} s", flush=True)
    print_tables(results)


if __name__ == "__main__":
    main()
