"""`python -m lrcycle demo [--out DIR]`: the whole workflow on the embedded digits data."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")


def demo(out: Path, epochs: int = 3, seed: int = 0) -> dict:
    """Train the small digits CNN and write the recorder's plots (PNG) and the epoch table (CSV) to `out`."""
    import matplotlib.pyplot as plt
    import torch

    from . import Learner, accuracy, digits, digits_cnn

    torch.manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    learn = Learner(digits(bs=64, seed=seed), digits_cnn(), metrics=[accuracy], lr=0.1, device="cpu")
    learn.fit(0.1, epochs)
    written = {}
    for name, draw in [("losses", learn.recorder.plot_losses), ("lr", learn.recorder.plot_lr)]:
        ax = draw()
        figure = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
        written[name] = out / f"{name}.png"
        figure.savefig(written[name], dpi=80)
        plt.close(figure)
    written["epochs"] = out / "epochs.csv"
    learn.recorder.epoch_df().to_csv(written["epochs"], index=False)
    final_accuracy = learn.recorder.epoch_df()["accuracy"].iloc[-1]
    for name, path in written.items():
        print(f"wrote {name}: {path}")
    print(f"final validation accuracy: {final_accuracy:.4f}")
    return {"files": written, "accuracy": final_accuracy}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lrcycle")
    sub = parser.add_subparsers(dest="command", required=True)
    demo_parser = sub.add_parser("demo", help="range test and cyclical fit on the embedded digits data")
    demo_parser.add_argument("--out", type=Path, default=Path("demo_out"), help="folder for plots and tables")
    args = parser.parse_args(argv)
    if args.command == "demo":
        demo(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
