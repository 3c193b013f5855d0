"""What does the checkpoint checksum cost? A 100 MB model saved and loaded, with the CRC-32 timed on its own.

    python benchmarks/checksum_cost.py            # 5 repeats, medians
    python benchmarks/checksum_cost.py --mb 400   # a bigger model

For each repeat: `learn.save(name)` (torch.save to a .partial, fsync, rename, folder fsync, and the checksum),
`learn.load(name)` (torch.load, the checksum recomputed and compared, the checks, load_state_dict), and
`payload_checksum(content)` alone on the same content; the share is the checksum's time over the whole call's.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
from torch import nn

from lrcycle import DataLoaders, Learner
from lrcycle.state.checkpoint_checks import payload_checksum


def big_learner(mb: int, path) -> Learner:
    side = int((mb * 2**20 / 4) ** 0.5)  # one square float32 weight of about `mb` MB
    x = torch.randn(8, side)
    dls = DataLoaders.from_tensors(x, x, bs=4, loss_func=nn.MSELoss())
    return Learner(dls, nn.Linear(side, side), opt_func=torch.optim.SGD, path=path, progress=False, device="cpu")


def timed(f) -> float:
    start = time.perf_counter()
    f()
    return time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        learn = big_learner(args.mb, folder)
        content = {"format": "lrcycle", "version": 2, "model": learn.model.state_dict()}
        size = sum(t.numel() * t.element_size() for t in content["model"].values()) / 2**20
        rows = {"save": [], "load": [], "checksum": []}
        for _ in range(args.repeats + 1):  # the first round warms up
            rows["save"].append(timed(lambda: learn.save("big", with_opt=False)))
            rows["load"].append(timed(lambda: learn.load("big", with_opt=False)))
            rows["checksum"].append(timed(lambda: payload_checksum(content)))
        med = {k: statistics.median(v[1:]) for k, v in rows.items()}
        print(f"model {size:.0f} MB, median of {args.repeats}, wall time, 1 thread")
        print(f"  save (torch.save + fsyncs + checksum): {med['save'] * 1e3:7.1f} ms")
        print(f"  load (torch.load + checksum + checks): {med['load'] * 1e3:7.1f} ms")
        print(f"  checksum alone:                         {med['checksum'] * 1e3:7.1f} ms "
              f"({size / med['checksum'] / 1024:.2f} GB/s)")  # fmt: skip
        print(f"  checksum share: save {med['checksum'] / med['save']:.0%}, load {med['checksum'] / med['load']:.0%}")


if __name__ == "__main__":
    main()
