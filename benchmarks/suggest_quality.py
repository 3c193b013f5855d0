"""How good are the range test's suggestions? Train at each suggested lr and compare with a grid's best.

Fifteen tasks on data that needs no download (scikit-learn's digits, breast cancer and wine, MNIST-1D
generated locally by the `mnist1d` package, synthetic `make_classification` sets, and a `make_friedman1`
regression scored as 100 * R^2 in place of accuracy), five kinds of model
(MLP, CNN, BatchNorm CNN, residual MLP, GRU), SGD with momentum, Adam and AdamW with weight decay, budgets
of 3 to 15 epochs and batches of 16 to 128. Per task, the oracle is the best mean validation accuracy over
3 seeds of a log grid of `lr_max` (a quarter decade apart, at least 14 points, widened while the best sits
at an edge), each trained with `fit_one_cycle` for the task's budget; diverged runs count as they score.
Each rule reads a default range test (`lr_find()`, 100 iterations) of the freshly initialised model and
is trained from that same initialisation (the test restores it exactly), seed for seed with the grid.
`lr_range` is scored at its high end (Smith's max lr); a rule that returns no lr (NaN) scores as the worst lr of
that seed's grid.

Every training run and range test is cached in `benchmarks/.cache/` (keyed by task, seed and lr), so a new
or changed rule retrains only at its own lrs. `--fit` chooses the default rule's settings on all tasks and
seeds together, scoring candidates on the grid (log-lr interpolation of each seed's accuracy curve).

    python benchmarks/suggest_quality.py                  # every task (about 30 minutes on one core)
    python benchmarks/suggest_quality.py --quick          # 3 tasks, a smoke run
    python benchmarks/suggest_quality.py --tasks m1d-cnn-adam-15,digits-bncnn-sgd-3
    python benchmarks/suggest_quality.py --fit            # the divisor sweep (from the cache)
    python benchmarks/suggest_quality.py --dump out.json  # curves, grids and picks for analysis
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
import warnings
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lrcycle import DataLoaders, Learner, accuracy, suggest, tuning
from lrcycle.demo.data import digits_arrays

CACHE = Path(__file__).parent / ".cache" / "suggest_quality"
SEEDS = (0, 1, 2)
N_ORDERS = 3  # batch orders per seed for the batch-dependence figures (order 0 is the plain lr_find)


# ---------------------------------------------------------------- data


def standardised_split(x: np.ndarray, y: np.ndarray, n_valid: int, seed: int = 0):
    """A fixed random split, standardised per feature with the training part's mean and std."""
    order = np.random.RandomState(seed).permutation(len(x))
    valid, train = order[:n_valid], order[n_valid:]
    mean, std = x[train].mean(0), x[train].std(0) + 1e-8
    x = torch.tensor((x - mean) / std, dtype=torch.float32)
    y = torch.tensor(y, dtype=torch.int64)
    return x[train], y[train], x[valid], y[valid]


@cache
def mnist1d_arrays():
    """MNIST-1D (Greydanus 2020) generated locally with the paper's settings: 4000 train, 1000 test, length 40."""
    from mnist1d.data import get_dataset_args, make_dataset

    data = make_dataset(get_dataset_args())  # builds the set from templates; never downloads
    as_x = lambda a: torch.tensor(a, dtype=torch.float32).unsqueeze(1)
    as_y = lambda a: torch.tensor(a, dtype=torch.int64)
    return as_x(data["x"]), as_y(data["y"]), as_x(data["x_test"]), as_y(data["y_test"])


@cache
def sklearn_arrays(name: str):
    """breast cancer (569 x 30) and wine (178 x 13), 30% held out."""
    from sklearn.datasets import load_breast_cancer, load_wine

    x, y = {"breast_cancer": load_breast_cancer, "wine": load_wine}[name](return_X_y=True)
    return standardised_split(x, y, int(0.3 * len(x)))


@cache
def synthetic_arrays(difficulty: str):
    """make_classification: 'easy' (3 classes, well separated), 'hard' (8 classes, close, 5% flipped labels)."""
    from sklearn.datasets import make_classification

    settings = {
        "easy": dict(n_features=20, n_informative=6, n_classes=3, class_sep=1.5, flip_y=0.0),
        "hard": dict(n_features=40, n_informative=12, n_classes=8, class_sep=0.8, flip_y=0.05),
    }[difficulty]
    x, y = make_classification(n_samples=3000, n_redundant=4, random_state=0, **settings)
    return standardised_split(x, y, 1000)


@cache
def regression_arrays():
    """make_friedman1 (10 features, 5 informative, nonlinear; noise 1.0): 3000 rows, 1000 held out, x and y
    standardised with the training part's mean and std."""
    from sklearn.datasets import make_friedman1

    x, y = make_friedman1(n_samples=3000, n_features=10, noise=1.0, random_state=0)
    x_train, _, x_valid, _ = standardised_split(x, np.zeros(len(x), dtype=np.int64), 1000)
    order = np.random.RandomState(0).permutation(len(x))
    y_valid, y_train = y[order[:1000]], y[order[1000:]]
    y_valid, y_train = (y_valid - y_train.mean()) / y_train.std(), (y_train - y_train.mean()) / y_train.std()
    as_y = lambda a: torch.tensor(a, dtype=torch.float32).unsqueeze(1)
    return x_train, as_y(y_train), x_valid, as_y(y_valid)


def loaders(arrays, bs: int, regression: bool = False) -> DataLoaders:
    loss_func = nn.MSELoss() if regression else nn.CrossEntropyLoss()
    return DataLoaders.from_tensors(*arrays, bs=bs, loss_func=loss_func)


DATA = {
    "mnist1d": mnist1d_arrays,
    "digits": lambda: digits_arrays(),
    "breast_cancer": lambda: sklearn_arrays("breast_cancer"),
    "wine": lambda: sklearn_arrays("wine"),
    "synthetic_easy": lambda: synthetic_arrays("easy"),
    "synthetic_hard": lambda: synthetic_arrays("hard"),
    "friedman": regression_arrays,
}


# ---------------------------------------------------------------- models


def mlp(n_in: int, n_out: int, hidden: int = 100) -> nn.Sequential:
    """The MNIST-1D paper's MLP shape: two hidden ReLU layers."""
    return nn.Sequential(
        nn.Flatten(), nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, n_out)
    )


def mnist1d_cnn(bn: bool = False, channels: int = 25) -> nn.Sequential:
    """The MNIST-1D paper's CNN: three stride-2 convolutions (length 40 -> 19 -> 10 -> 5), a linear head."""
    norm = (lambda: nn.BatchNorm1d(channels)) if bn else nn.Identity
    return nn.Sequential(
        nn.Conv1d(1, channels, 5, stride=2, padding=1), norm(), nn.ReLU(),
        nn.Conv1d(channels, channels, 3, stride=2, padding=1), norm(), nn.ReLU(),
        nn.Conv1d(channels, channels, 3, stride=2, padding=1), norm(), nn.ReLU(),
        nn.Flatten(), nn.Linear(5 * channels, 10),
    )  # fmt: skip


def digits_bn_cnn(width: int = 16) -> nn.Sequential:
    """A BatchNorm CNN for 1x8x8 digits."""
    block = lambda c_in, c_out, stride: [nn.Conv2d(c_in, c_out, 3, stride, 1), nn.BatchNorm2d(c_out), nn.ReLU()]
    return nn.Sequential(
        *block(1, width, 1), *block(width, 2 * width, 2), *block(2 * width, 4 * width, 2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * width, 10),
    )  # fmt: skip


class Residual(nn.Module):
    """x + f(x): a pre-norm two-layer block."""

    def __init__(self, width: int):
        super().__init__()
        self.f = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))

    def forward(self, x):
        return x + self.f(x)


def residual_mlp(n_in: int, n_out: int, width: int = 64, depth: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(n_in, width),
        *[Residual(width) for _ in range(depth)],
        nn.ReLU(),
        nn.Linear(width, n_out),
    )


class SequenceGRU(nn.Module):
    """A one-layer GRU over the length-40 MNIST-1D signal, classifying from the last hidden state."""

    def __init__(self, hidden: int = 32):
        super().__init__()
        self.gru, self.head = nn.GRU(1, hidden, batch_first=True), nn.Linear(hidden, 10)

    def forward(self, x):
        _, h = self.gru(x.transpose(1, 2))  # (batch, 1, 40) -> (batch, 40, 1)
        return self.head(h[-1])


# ---------------------------------------------------------------- tasks

SGD = partial(torch.optim.SGD, momentum=0.9)
ADAM = torch.optim.Adam
ADAMW = partial(torch.optim.AdamW, weight_decay=0.05)
# First grids (log10 lr_max), a quarter decade apart; widened while the best sits at an edge.
GRIDS = {"sgd": (-2.75, 0.5), "adam": (-3.75, -0.5), "adamw": (-3.75, -0.5)}
OPTS = {"sgd": SGD, "adam": ADAM, "adamw": ADAMW}


@dataclass(frozen=True)
class Task:
    name: str
    data: str
    model: object
    opt: str
    n_epoch: int
    bs: int
    regression: bool = False  # MSE loss, scored as 100 * R^2 on the validation set ("points" of R^2)


TASKS = [
    Task("m1d-cnn-adam-15", "mnist1d", mnist1d_cnn, "adam", 15, 100),
    Task("m1d-cnn-adam-5", "mnist1d", mnist1d_cnn, "adam", 5, 100),
    Task("m1d-mlp-sgd-15", "mnist1d", lambda: mlp(40, 10), "sgd", 15, 100),
    Task("m1d-cnn-sgd-15", "mnist1d", mnist1d_cnn, "sgd", 15, 128),  # where schedules_quality saw cliff fail
    Task("m1d-bncnn-sgd-5", "mnist1d", lambda: mnist1d_cnn(bn=True), "sgd", 5, 50),
    Task("m1d-resmlp-adamw-3", "mnist1d", lambda: residual_mlp(40, 10), "adamw", 3, 32),
    Task("m1d-gru-adam-3", "mnist1d", SequenceGRU, "adam", 3, 64),
    Task("digits-bncnn-sgd-3", "digits", digits_bn_cnn, "sgd", 3, 64),
    Task("digits-mlp-adamw-15", "digits", lambda: mlp(64, 10, 64), "adamw", 15, 32),
    Task("cancer-mlp-adam-15", "breast_cancer", lambda: mlp(30, 2, 32), "adam", 15, 16),
    Task("wine-resmlp-sgd-15", "wine", lambda: residual_mlp(13, 3, 32, 2), "sgd", 15, 16),
    Task("synth-easy-mlp-sgd-3", "synthetic_easy", lambda: mlp(20, 3, 64), "sgd", 3, 64),
    Task("synth-hard-resmlp-adamw-15", "synthetic_hard", lambda: residual_mlp(40, 8), "adamw", 15, 128),
    # where the cliff default picked on the flat start: small-batch SGD on tabular MLPs, and a regression
    Task("cancer-mlp-sgd-15", "breast_cancer", lambda: mlp(30, 2, 64), "sgd", 15, 16),
    Task("friedman-mlp-sgd-10", "friedman", lambda: mlp(10, 1, 64), "sgd", 10, 16, regression=True),
]
QUICK = ["digits-bncnn-sgd-3", "cancer-mlp-adam-15", "synth-easy-mlp-sgd-3"]


def make_learner(task: Task, seed: int) -> Learner:
    torch.manual_seed(seed)  # the initial weights and the shuffling order
    dls = loaders(DATA[task.data](), task.bs, task.regression)
    metrics = [] if task.regression else [accuracy]
    return Learner(dls, task.model(), opt_func=OPTS[task.opt], metrics=metrics, progress=False)


def score(task: Task, learn: Learner) -> float:
    """Validation accuracy in percent, or for a regression 100 * R^2 = 100 * (1 - MSE / var(y_valid))."""
    if not task.regression:
        return 100 * learn.validate()[1]
    y_valid = DATA[task.data]()[3]
    return 100 * (1 - learn.validate()[0] / float(y_valid.var(unbiased=False)))


# ---------------------------------------------------------------- the cache


class TaskCache:
    """One JSON file per task: accuracies keyed 'seed|lr' and range-test curves keyed 'seed|order'."""

    def __init__(self, task: Task):
        self.path = CACHE / f"{task.name}.json"
        self.data = json.loads(self.path.read_text()) if self.path.exists() else {"acc": {}, "curves": {}}

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data))
        os.replace(tmp, self.path)


def lr_key(seed: int, lr: float) -> str:
    return f"{seed}|{lr:.5g}"


def accuracy_at(task: Task, store: TaskCache, seed: int, lr: float) -> float:
    """Validation accuracy (percent) after `fit_one_cycle(n_epoch, lr)` from the seed's initialisation."""
    if not (math.isfinite(lr) and lr > 0):
        return math.nan
    key = lr_key(seed, lr)
    if key not in store.data["acc"]:
        learn = make_learner(task, seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a diverged run scores what it scores
            learn.fit_one_cycle(task.n_epoch, lr)
            acc = score(task, learn)
        store.data["acc"][key] = max(acc, -100.0) if math.isfinite(acc) else (-100.0 if task.regression else 0.0)
        store.save()
    return store.data["acc"][key]


def range_test(task: Task, store: TaskCache, seed: int, order: int) -> dict:
    """The default lr_find on the seed's fresh model; order > 0 reshuffles the batches, same weights."""
    key = f"{seed}|{order}"
    if key not in store.data["curves"]:
        learn = make_learner(task, seed)
        if order:
            torch.manual_seed(1000 * order + seed)  # another batch order; the weights are already made
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", suggest.SuggestionWarning)
            learn.lr_find(suggest_funcs=[suggest.minimum])
        rec = learn.recorder
        store.data["curves"][key] = {"lrs": rec.lrs, "losses": rec.losses, "smooth_losses": rec.smooth_losses}
        store.save()
    return store.data["curves"][key]


# ---------------------------------------------------------------- the grid


def grid_accuracies(task: Task, store: TaskCache, quick: bool) -> tuple[np.ndarray, np.ndarray]:
    """(log10 lrs, accuracy[lr, seed]) over a quarter-decade grid, widened while the best is at an edge."""
    lo, hi = GRIDS[task.opt]
    step = 0.5 if quick else 0.25
    seeds = SEEDS[:2] if quick else SEEDS
    while True:
        logs = np.round(np.arange(lo, hi + 1e-9, step), 4)
        accs = np.array([[accuracy_at(task, store, s, 10**g) for s in seeds] for g in logs])
        best = int(np.argmax(accs.mean(1)))
        if best == 0 and lo > -6:
            lo -= 2 * step
        elif best == len(logs) - 1 and hi < 1.5:
            hi += 2 * step
        else:
            return logs, accs


def interpolated(logs: np.ndarray, accs: np.ndarray, log_lr: float, seed_index: int) -> float:
    """The seed's grid accuracy at log_lr, linear in log lr between grid points (the ends held beyond)."""
    if not math.isfinite(log_lr):
        return 0.0
    return float(np.interp(log_lr, logs, accs[:, seed_index]))


# ---------------------------------------------------------------- rules


def high_end(lrs, smooth_losses) -> float:
    """lr_range's high end: Smith's max lr."""
    return suggest.lr_range(lrs, smooth_losses)[1]


high_end.__name__ = "lr_range_high"


def rules() -> list:
    """Every rule scored: the default first, then the others under their names."""
    others = [suggest.halfway, suggest.minimum, suggest.steep, suggest.valley, high_end]
    return [suggest.cliff, *[f for f in others if f is not suggest.cliff]]


def pick(rule, curve: dict, task: Task) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", suggest.SuggestionWarning)
        return float(rule(curve["lrs"], curve["smooth_losses"]))


# ---------------------------------------------------------------- one task


def run_task(task: Task, quick: bool, train_picks: bool = True, tune: bool = True) -> dict:
    store = TaskCache(task)
    logs, accs = grid_accuracies(task, store, quick)
    seeds = SEEDS[: accs.shape[1]]
    means = accs.mean(1)
    best = int(np.argmax(means))
    curves = {s: [range_test(task, store, s, o) for o in range(N_ORDERS)] for s in seeds}
    result = {
        "task": task.name,
        "grid_log_lrs": logs.tolist(),
        "grid_acc": accs.tolist(),
        "oracle": float(means[best]),
        "oracle_lr": float(10 ** logs[best]),
        "curves": {str(s): curves[s] for s in seeds},
        "rules": {},
    }
    for rule in rules():
        lrs = [pick(rule, curves[s][0], task) for s in seeds]
        if train_picks:
            scores = [accuracy_at(task, store, s, lr) for s, lr in zip(seeds, lrs)]
        else:
            scores = [interpolated(logs, accs, math.log10(lr), i) if lr > 0 else math.nan for i, lr in enumerate(lrs)]
        # a rule that gives no lr (NaN) scores as the worst lr of that seed's grid
        scores = [a if math.isfinite(a) else float(accs[:, i].min()) for i, a in enumerate(scores)]
        result["rules"][rule.__name__] = {
            "lrs": lrs,
            "n_nan": sum(not math.isfinite(lr) for lr in lrs),
            "scores": scores,
            "ratio": geo_mean(lrs) / result["oracle_lr"],
            "regret": float(np.mean(scores)) - result["oracle"],
        }
    # the noise floor: the oracle's own lr, 1% higher, trained again; what re-measuring the oracle itself loses
    lrs = [result["oracle_lr"] * NUDGE for _ in seeds]
    scores = [accuracy_at(task, store, s, lr) for s, lr in zip(seeds, lrs)]
    regret = float(np.mean(scores)) - result["oracle"]
    result["rules"][f"oracle_x{NUDGE:g}"] = {"lrs": lrs, "n_nan": 0, "scores": scores, "ratio": NUDGE, "regret": regret}
    if tune:  # the more expensive lr_tune, with its defaults: trained at its pick like the rules
        trials = TrialCache(task)
        lrs = [tuned_lr(task, trials, s) for s in seeds]
        scores = [accuracy_at(task, store, s, lr) for s, lr in zip(seeds, lrs)]
        ratio, regret = geo_mean(lrs) / result["oracle_lr"], float(np.mean(scores)) - result["oracle"]
        result["rules"]["lr_tune"] = {"lrs": lrs, "n_nan": 0, "scores": scores, "ratio": ratio, "regret": regret}
    result["order_spread"] = order_spread(task, curves)
    return result


NUDGE = 1.01  # the noise floor's lr, as a multiple of the oracle's
BAND_SCALES = (1, 2, 4, 8, 16, 32, 64)


def order_spread(task: Task, curves: dict) -> dict:
    """How much the default pick moves with the batch order alone (max/min over orders, per seed); the band of
    order 0 (`cliff_band`, default scale) and the smallest scale in BAND_SCALES whose band holds each other
    order's pick (inf: none does)."""
    spreads, needed, widths = [], [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", suggest.SuggestionWarning)
        for runs in curves.values():
            picks = [pick(suggest.cliff, c, task) for c in runs]
            if not all(math.isfinite(p) for p in picks):
                continue
            spreads.append(max(picks) / min(picks))
            first = (runs[0]["lrs"], runs[0]["smooth_losses"], runs[0]["losses"])
            low, high = suggest.cliff_band(*first)
            widths.append(high / low)
            bands = [suggest.cliff_band(*first, scale=k) for k in BAND_SCALES]
            for p in picks[1:]:
                held = [k for k, (lo, hi) in zip(BAND_SCALES, bands) if lo <= p <= hi]
                needed.append(held[0] if held else math.inf)
    return {"max_over_min": spreads, "scale_needed": needed, "band_width": widths}


def geo_mean(values) -> float:
    values = [v for v in values if math.isfinite(v) and v > 0]
    return float(np.exp(np.mean(np.log(values)))) if values else math.nan


# ---------------------------------------------------------------- lr_tune

TRIAL_FACTORS = (1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0, 2.0, 4.0)  # multiples of the default pick the sweep tries
TRIAL_BUDGETS = (0.1, 0.2, 0.34, 0.5)  # shares of each epoch's steps a trial runs


class TrialCache(TaskCache):
    """lr_tune's trials and picks, in a file of their own: `{task}.trials.json`."""

    def __init__(self, task: Task):
        self.path = CACHE / f"{task.name}.trials.json"
        self.data = json.loads(self.path.read_text()) if self.path.exists() else {"trials": {}, "tuned": {}}


def trial_scores(task: Task, store: TrialCache, seed: int, lr: float, budget: float) -> dict:
    """`tuning.run_trial` (what `lr_tune` runs per candidate) from the seed's initialisation: valid_loss, accuracy."""
    key = f"{budget}|{lr_key(seed, lr)}"
    if key not in store.data["trials"]:
        learn = make_learner(task, seed)
        steps = max(1, math.ceil(budget * learn.steps_per_epoch()))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores = tuning.run_trial(learn, "fit_one_cycle", (task.n_epoch,), {}, lr, steps)
        store.data["trials"][key] = {k: (v if math.isfinite(v) else None) for k, v in scores.items()}
        store.save()
    return store.data["trials"][key]


def tuned_lr(task: Task, store: TrialCache, seed: int) -> float:
    """`learn.lr_tune('fit_one_cycle', n_epoch)` with its defaults, on the seed's fresh learner."""
    cliff_settings = (suggest.CLIFF_FACTOR, suggest.CLIFF_DIVISOR, suggest.CLIFF_NEAR)
    settings = (tuning.TUNE_FACTORS, tuning.TUNE_BUDGET, *cliff_settings)
    key = f"{seed}|{settings}"  # the defaults (and the estimate's rule) it ran with
    if key not in store.data["tuned"]:
        learn = make_learner(task, seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            store.data["tuned"][key] = learn.lr_tune("fit_one_cycle", task.n_epoch).lr
        store.save()
    return store.data["tuned"][key]


def tune_choice(trials: list[dict], factors, monitor: str) -> float:
    """The factor whose trial scored best (accuracy highest, or valid_loss lowest; a missing score worst)."""
    sign = 1 if monitor == "accuracy" else -1
    scored = [(sign * t[monitor] if t[monitor] is not None else -math.inf, f) for t, f in zip(trials, factors)]
    return max(scored)[1]


MARGINS = (1.0, 2**-0.5, 0.5)


def fit_tune_settings(tasks: list[Task]) -> None:
    """lr_tune's factors (a run of consecutive TRIAL_FACTORS), budget, monitor and margin by worst-task regret
    over all tasks and seeds (to 0.1 point; then the lower cost, then the better mean regret), each pick scored
    on the grid; prints the best settings and the per-task regrets of the first."""
    rows, per_task = [], {}
    for task in tasks:
        store = TaskCache(task)
        logs, accs = grid_accuracies(task, store, quick=False)
        estimates = [pick(suggest.cliff, range_test(task, store, s, 0), task) for s in SEEDS]
        trial_store = TrialCache(task)  # one read of the task's trial file
        trials = {
            (budget, i): [trial_scores(task, trial_store, s, lr * f, budget) for f in TRIAL_FACTORS]
            for budget in TRIAL_BUDGETS
            for i, (s, lr) in enumerate(zip(SEEDS, estimates))
        }
        per_task[task.name] = (logs, accs, estimates, trials)
    n = len(TRIAL_FACTORS)
    windows = [list(range(i, j)) for i in range(n) for j in range(i + 2, n + 1)]
    for budget in TRIAL_BUDGETS:
        for window in windows:
            factors = [TRIAL_FACTORS[k] for k in window]
            for monitor in ("accuracy", "valid_loss"):
                for margin in MARGINS:
                    regrets = []
                    for logs, accs, estimates, trials in per_task.values():
                        scores = []
                        for i, lr in enumerate(estimates):
                            runs = [trials[budget, i][k] for k in window]
                            chosen = lr * tune_choice(runs, factors, monitor) * margin
                            scores.append(interpolated(logs, accs, math.log10(chosen), i))
                        regrets.append(float(np.mean(scores)) - accs.mean(1).max())
                    cost = len(factors) * budget
                    rows.append(
                        (min(regrets), float(np.mean(regrets)), -cost, budget, factors, monitor, margin, regrets)
                    )
    rows.sort(key=lambda r: (-round(r[0], 1), -r[2], -r[1]))  # worst regret (to 0.1 point), cost, mean regret
    print(f"{'budget':>6} {'factors':<36} {'monitor':<10} {'margin':>6} {'cost':>5} {'worst':>7} {'mean':>7}")
    for worst, mean, neg_cost, budget, factors, monitor, margin, _ in rows[:15]:
        shown = ", ".join(f"{f:g}" for f in factors)
        print(f"{budget:>6} {shown:<36} {monitor:<10} {margin:>6.3g} {-neg_cost:>5.2f} {worst:>+7.2f} {mean:>+7.2f}")
    print("\nper task, the first settings:")
    for name, regret in zip(per_task, rows[0][-1]):
        print(f"  {name:<28} {regret:>+7.2f}")


# ---------------------------------------------------------------- tables


def print_table(results: list[dict]) -> None:
    names = list(results[0]["rules"])
    print(f"\n{'task':<27} {'oracle':>15} " + " ".join(f"{n:>15}" for n in names))
    for r in results:
        cells = " ".join(f"{r['rules'][n]['ratio']:>6.2f}x {r['rules'][n]['regret']:>+7.2f}" for n in names)
        print(f"{r['task']:<27} {r['oracle']:>6.1f}% @{r['oracle_lr']:<7.3g} {cells}")
    worst = " ".join(f"{min(r['rules'][n]['regret'] for r in results):>+15.2f}" for n in names)
    mean = " ".join(f"{np.mean([r['rules'][n]['regret'] for r in results]):>+15.2f}" for n in names)
    print(f"{'worst regret':<43} {worst}\n{'mean regret':<43} {mean}")
    spreads = [s for r in results for s in r["order_spread"]["max_over_min"]]
    needed = np.array([k for r in results for k in r["order_spread"]["scale_needed"]])
    widths = [w for r in results for w in r["order_spread"]["band_width"] if math.isfinite(w)]
    if spreads:
        quartiles = ", ".join(f"{q:.2f}x" for q in np.percentile(spreads, [25, 50, 75, 90]))
        print(
            f"default pick over {N_ORDERS} batch orders (same weights), max/min over {len(spreads)} seeds: "
            f"quartiles and 90th percentile {quartiles}, worst {max(spreads):.2f}x"
        )
    if widths:
        held = ", ".join(f"{k}: {100 * np.mean(needed <= k):.0f}%" for k in BAND_SCALES)
        print(
            f"cliff_band high/low median {np.median(widths):.2f}x; "
            f"share of other orders' picks it holds, by scale: {held}"
        )


# ---------------------------------------------------------------- choosing the default's settings

LOG_FACTORS = np.arange(0.0, 0.81, 0.05)
LOG_DIVISORS = np.arange(0.2, 1.21, 0.05)
SHAPES = [(rise, window, near) for rise in (1.0, 1.5, 2.0, 3.0) for window in (1, 3, 5) for near in (0.1, 0.2, 0.3)]


def cliff_parts(curve: dict, rise: float, window: int, near: float) -> tuple[float, float]:
    """(log10 fallen, log10 broken) of one curve; fallen NaN when the loss does not really fall."""
    lrs, median = suggest.median_curve(curve["lrs"], curve["smooth_losses"], curve["losses"], window)
    return math.log10(suggest.fallen_at(lrs, median, near)), math.log10(suggest.divergence_quiet(lrs, median, rise))


def fit_settings(tasks: list[Task]) -> None:
    """cliff's settings with the best worst-task regret (ties: the best mean) over all tasks, seeds and batch
    orders together, each candidate scored on the grid; prints the best and each task's regret with it."""
    grids = {}
    for task in tasks:
        store = TaskCache(task)
        logs, accs = grid_accuracies(task, store, quick=False)
        grids[task.name] = (logs, accs, [[range_test(task, store, s, o) for o in range(N_ORDERS)] for s in SEEDS])
    rows = []
    for rise, window, near in SHAPES:
        parts = {n: [[cliff_parts(c, rise, window, near) for c in orders] for orders in g[2]] for n, g in grids.items()}
        for log_factor in LOG_FACTORS:
            for log_divisor in LOG_DIVISORS:
                regrets = np.array([shape_regret(grids[n], parts[n], log_factor, log_divisor) for n in grids])
                rows.append((regrets.min(), regrets.mean(), rise, window, near, log_factor, log_divisor, regrets))
    rows.sort(key=lambda r: (-r[0], -r[1]))
    print(f"{'rise':>5} {'window':>6} {'near':>5} {'factor':>7} {'divisor':>8} {'worst':>7} {'mean':>7}")
    for worst, mean, rise, window, near, lf, ld, _ in rows[:10]:
        print(f"{rise:>5} {window:>6} {near:>5} {10**lf:>7.2f} {10**ld:>8.2f} {worst:>+7.2f} {mean:>+7.2f}")
    _, _, rise, window, near, _, _, best = rows[0]
    parts = {n: [[cliff_parts(c, rise, window, near) for c in orders] for orders in g[2]] for n, g in grids.items()}
    print("\nper task: regret with the common settings; own: the task's own best factor, divisor and regret")
    for task, regret in zip(tasks, best):
        scored = [
            (shape_regret(grids[task.name], parts[task.name], f, d), f, d) for f in LOG_FACTORS for d in LOG_DIVISORS
        ]
        own, log_factor, log_divisor = max(scored)
        print(f"  {task.name:<28} {regret:>+7.2f}   own: {10**log_factor:5.2f}, {10**log_divisor:5.2f}, {own:+.2f}")


def shape_regret(grid, parts, log_factor: float, log_divisor: float) -> float:
    """Mean regret over seeds and orders of min(fallen + log_factor, broken - log_divisor) on one task's grid."""
    logs, accs, _ = grid
    scores = []
    for i, orders in enumerate(parts):
        for fallen, broken in orders:
            pick = broken - log_divisor if math.isnan(fallen) else min(fallen + log_factor, broken - log_divisor)
            scores.append(interpolated(logs, accs, pick, i))
    return float(np.mean(scores)) - accs.mean(1).max()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 tasks, a half-decade grid, 2 seeds: a smoke run")
    parser.add_argument("--tasks", help="comma-separated task names (default: all)")
    parser.add_argument("--fit", action="store_true", help="choose the default rule's settings on the cached grids")
    parser.add_argument("--tune-fit", action="store_true", help="choose lr_tune's settings (trains its trials once)")
    parser.add_argument("--no-tune", action="store_true", help="leave out the lr_tune column")
    parser.add_argument("--no-train-picks", action="store_true", help="score rules on the grid, not by training")
    parser.add_argument("--dump", help="write grids, curves and picks to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    names = args.tasks.split(",") if args.tasks else QUICK if args.quick else [t.name for t in TASKS]
    by_name = {t.name: t for t in TASKS}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        parser.error(f"--tasks: unknown {unknown}; known: {list(by_name)}")
    tasks = [by_name[n] for n in names]
    if args.fit:
        fit_settings(tasks)
        return
    if args.tune_fit:
        fit_tune_settings(tasks)
        return
    start, results = time.perf_counter(), []
    for task in tasks:
        results.append(run_task(task, args.quick, train_picks=not args.no_train_picks, tune=not args.no_tune))
        print(f"{task.name}: done at {time.perf_counter() - start:.0f} s", flush=True)
    print_table(results)
    default = rules()[0].__name__
    worst = min(r["rules"][default]["regret"] for r in results)
    verdict = ("meets" if worst >= -0.5 else "misses") + " the 0.5 target"
    if args.quick or args.tasks:
        verdict += f"; on {len(tasks)} of {len(TASKS)} tasks" + (", 2 seeds: a smoke run" if args.quick else "")
    print(f"\ndefault ({default}): worst regret {worst:+.2f} points ({verdict}); {time.perf_counter() - start:.0f} s")
    if args.dump:
        Path(args.dump).write_text(json.dumps(results))


if __name__ == "__main__":
    main()
