"""`python -m lrcycle demo [--out DIR]`: the whole workflow on the embedded digits data.

Also runs under torchrun (`torchrun --nproc_per_node=2 -m lrcycle demo`): only rank 0 prints and writes.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from ..distributed import is_main_process
from ..learner import Learner
from ..metrics import accuracy
from .data import digits
from .models import digits_cnn

FALLBACK_LR = 0.1  # used only if the range test cannot suggest anything (a curve too short to read)


def demo(out: Path, cycle_len: int = 3, seed: int = 0, progress: bool = True) -> dict:
    """Range test, then `fit(lr, 1, cycle_len=3, use_clr=(32, 5, 0.95, 0.85))` at the suggested lr, on the
    digits CNN; writes the finder plot, the lr/momentum plot, the loss plot (PNG) and the epoch table (CSV)."""
    torch.manual_seed(seed)
    learn = Learner(digits(bs=64, seed=seed), digits_cnn(), metrics=[accuracy], progress=progress)
    with learn.distrib_ctx():
        suggestions = learn.lr_find(num_it=100)
        lr = suggestions[0]
        if not (math.isfinite(lr) and lr > 0):
            lr = FALLBACK_LR
        main = is_main_process()
        if main:
            out.mkdir(parents=True, exist_ok=True)
            print("range test suggestions: " + ", ".join(f"{k}={_fmt(v)}" for k, v in suggestions._asdict().items()))
            written = {"lr_find": _save(learn.recorder.plot(), out / "lr_find.png")}
            print(f"training at lr={lr:.3g}: fit(lr, 1, cycle_len={cycle_len}, use_clr=(32, 5, 0.95, 0.85))")
        learn.fit(lr, 1, cycle_len=cycle_len, use_clr=(32, 5, 0.95, 0.85))
    if not main:
        return {}
    written["lr_mom"] = _save(learn.recorder.plot_lr(show_moms=True), out / "lr_mom.png")
    written["losses"] = _save(learn.recorder.plot_losses(), out / "losses.png")
    written["epochs"] = out / "epochs.csv"
    learn.recorder.epoch_df().to_csv(written["epochs"], index=False)
    final_accuracy = float(learn.recorder.epoch_df()["accuracy"].iloc[-1])
    for name, path in written.items():
        print(f"wrote {name}: {path}")
    print(f"final validation accuracy: {final_accuracy:.4f}")
    return {"files": written, "accuracy": final_accuracy, "lr": lr, "suggestions": suggestions}


def _fmt(value) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(f"{v:.3g}" for v in value) + ")"
    return f"{value:.3g}"


def _save(ax, path: Path) -> Path:
    import matplotlib.pyplot as plt

    figure = ax.figure  # every plot returns one Axes; its figure holds every panel
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lrcycle")
    sub = parser.add_subparsers(dest="command", required=True)
    demo_parser = sub.add_parser("demo", help="range test and a cyclical fit on the embedded digits data")
    demo_parser.add_argument("--out", type=Path, default=Path("demo_out"), help="folder for plots and tables")
    args = parser.parse_args(argv)
    if args.command == "demo":
        demo(args.out)
    return 0
