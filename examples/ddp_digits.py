"""Data-parallel range test and one-cycle fit on the embedded digits, one process per device.

    torchrun --nproc_per_node=2 examples/ddp_digits.py --out ddp_out

Every process runs this same script on its own shard of the training data (CPU processes talk through
gloo, GPUs through NCCL, one GPU per process). The fit and range-test code is what one process would run;
only the file writing asks which process it is in. Without torchrun it runs as one ordinary process.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import torch

from lrcycle import Learner, accuracy, digits, digits_cnn, is_main_process


def save_figure(ax, path: Path) -> None:
    figure = ax.figure  # every plot returns one Axes; its figure holds every panel
    figure.savefig(path, dpi=80)
    plt.close(figure)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("ddp_out"), help="folder for plots, table, model")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--bs", type=int, default=64, help="batch size per process (global: bs x processes)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    learn = Learner(digits(bs=args.bs, seed=args.seed), digits_cnn(), metrics=[accuracy], path=args.out)
    with learn.distrib_ctx():
        # the loss is averaged across processes each iteration, so every process gets the same suggestion
        suggested = learn.lr_find()
        range_test = learn.recorder.plot()
        lr = suggested[0] if math.isfinite(suggested[0]) else 1e-2
        learn.fit_one_cycle(args.epochs, lr)
        if is_main_process():  # only rank 0 writes files; learn.save checks this by itself
            args.out.mkdir(parents=True, exist_ok=True)
            save_figure(range_test, args.out / "lr_find.png")
            save_figure(learn.recorder.plot_lr(show_moms=True), args.out / "lr.png")
            save_figure(learn.recorder.plot_losses(), args.out / "losses.png")
            learn.recorder.epoch_df().to_csv(args.out / "epochs.csv", index=False)
            world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
            print(f"{world} process(es); suggested lr {lr:.2e}; wrote plots and epochs.csv to {args.out}")
            print(f"final validation accuracy: {learn.recorder.epoch_df()['accuracy'].iloc[-1]:.4f}")
        learn.save("ddp_digits")  # rank 0 writes OUT/models/ddp_digits.pth


if __name__ == "__main__":
    main()
