"""Weight averaging at the learning-rate lows against the last and the best single cycle, on the digits CNN.

For each seed: `fit(lr, n_cycle, cycle_len, use_clr=(32, 5))` with `CycleAverage()`, then the validation
accuracy and loss of (a) the last weights, (b) the best cycle's weights (the cycle end with the lowest
validation loss, as `best_save_name` picks it: chosen on the same validation set, so an optimistic figure),
(c) the average of all cycle-end weights, BatchNorm statistics recomputed, and (d) that same average with
the BatchNorm statistics of the last model (what one gets without the recomputation).

    python benchmarks/averaging.py            # 3 seeds, 6 cycles of 2 epochs
    python benchmarks/averaging.py --quick    # 3 seeds, 3 cycles of 1 epoch (seconds)
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from lrcycle import Callback, Learner, accuracy, digits, digits_cnn
from lrcycle.callbacks.averaging import CycleAverage


class StatesAtEpochEnds(Callback):
    """The model's state after every epoch, keyed by epochs done."""

    order = 100

    def __init__(self):
        self.states = {}

    def after_epoch(self, learn):
        self.states[learn.epoch + 1] = {k: v.clone() for k, v in learn.model.state_dict().items()}


def evaluate(learn, state) -> tuple[float, float]:
    """(accuracy, loss) on the validation set of `learn.model` with `state` loaded (then put back)."""
    kept = {k: v.clone() for k, v in learn.model.state_dict().items()}
    learn.model.load_state_dict(state)
    preds, targets = learn.get_preds()
    learn.model.load_state_dict(kept)
    return accuracy(preds, targets).item(), learn.loss_func(preds, targets).item()


def run(seed: int, lr: float, n_cycle: int, cycle_len: int, n_train: int | None) -> dict:
    torch.manual_seed(seed)
    learn = Learner(digits(bs=64, n_train=n_train), digits_cnn(), metrics=[accuracy], progress=False)
    probe, averager = StatesAtEpochEnds(), CycleAverage()
    learn.fit(lr, n_cycle, cycle_len=cycle_len, use_clr=(32, 5), cbs=[averager, probe])
    cycles = [evaluate(learn, probe.states[e]) for e in learn.cycle_ends]
    best = min(range(len(cycles)), key=lambda c: cycles[c][1])  # as best_save_name: lowest valid loss
    stale_bn = dict(learn.model.state_dict())
    last = probe.states[learn.cycle_ends[-1]]
    stale_bn.update({k: v for k, v in last.items() if "running" in k or "num_batches" in k})
    return {
        "seed": seed,
        "last": cycles[-1],
        "best": cycles[best],
        "best_cycle": best,
        "average": evaluate(learn, learn.model.state_dict()),
        "average_stale_bn": evaluate(learn, stale_bn),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 cycles of 1 epoch")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--lr", type=float, default=0.3)
    parser.add_argument("--n-train", type=int, default=None, help="keep only this many training images")
    args = parser.parse_args()
    torch.set_num_threads(1)
    n_cycle, cycle_len = (3, 1) if args.quick else (6, 2)
    start = time.perf_counter()
    rows = [run(seed, args.lr, n_cycle, cycle_len, args.n_train) for seed in range(args.seeds)]
    print(
        f"digits CNN, fit({args.lr}, {n_cycle}, cycle_len={cycle_len}, use_clr=(32, 5)), SGD momentum 0.9, "
        f"{'all' if args.n_train is None else args.n_train} training images, 360 validation images"
    )
    keys = ("last", "best", "average", "average_stale_bn")
    print("validation accuracy / loss")
    print("| seed | last | best cycle (which) | average | average, BN not recomputed |")
    print("|---|---|---|---|---|")
    cell = lambda r, key: f"{r[key][0]:.2%} / {r[key][1]:.4f}"
    for r in rows:
        cells = [cell(r, key) + (f" ({r['best_cycle']})" if key == "best" else "") for key in keys]
        print(f"| {r['seed']} | " + " | ".join(cells) + " |")
    means = [(statistics.mean(r[k][0] for r in rows), statistics.mean(r[k][1] for r in rows)) for k in keys]
    print("| mean | " + " | ".join(f"{a:.2%} / {loss:.4f}" for a, loss in means) + " |")
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
