"""Training throughput of 1 process against 2 under `learn.distrib_ctx()`, on the same global batch.

Global batch 256: one process with batches of 256, then two processes (torchrun, CPU, gloo) with 128 each,
so both runs take the same optimizer steps on the same amount of data; one thread per process. Each run
trains the digits CNN for a warm-up epoch, then times `--epochs` epochs (training only), `--repeats` times.

    python benchmarks/ddp_scaling.py                # digits CNN width 32, 10 epochs, best of 3
    python benchmarks/ddp_scaling.py --quick        # a few seconds per run

Two processes can only beat one when two cores are free: on a busy machine the figure says more about the
load than about the library (the load average is printed with the table).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def worker(args) -> None:
    """One rank: time the fits and, on rank 0, write the times to `args.result`."""
    import torch
    import torch.distributed as dist

    from lrcycle import Learner, digits, digits_cnn

    torch.set_num_threads(1)
    world = int(os.environ.get("WORLD_SIZE", 1))
    torch.manual_seed(0)
    dls = digits(bs=args.global_bs // world)
    dls.valid = None  # time training only
    n_samples = len(dls.train.dataset)
    learn = Learner(dls, digits_cnn(width=args.width), lr=0.05, device="cpu", progress=False)
    times = []
    with learn.distrib_ctx():
        learn.fit(0.05, 1)  # warm-up: allocations, DDP's bucket rebuild after the first iteration
        for _ in range(args.repeats):
            if dist.is_initialized():
                dist.barrier()
            start = time.perf_counter()
            learn.fit(0.05, args.epochs)
            if dist.is_initialized():
                dist.barrier()
            times.append(time.perf_counter() - start)
        steps = len(learn.dls.train) * args.epochs
        if not dist.is_initialized() or dist.get_rank() == 0:
            samples = n_samples * args.epochs
            Path(args.result).write_text(
                json.dumps({"world": world, "times": times, "samples": samples, "steps": steps})
            )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(nproc: int, args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}"]
        cmd += [f"--master_port={free_port()}", __file__, "--worker", "--result", str(result)]
        cmd += [
            "--global-bs",
            str(args.global_bs),
            "--epochs",
            str(args.epochs),
            "--repeats",
            str(args.repeats),
        ]
        cmd += ["--width", str(args.width)]
        env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
        env["OMP_NUM_THREADS"] = "1"
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        return json.loads(result.read_text())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--global-bs", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--width", type=int, default=32, help="digits_cnn width (compute per sample)")
    parser.add_argument("--quick", action="store_true", help="3 epochs, 2 repeats")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)
    if args.quick:
        args.epochs, args.repeats = 3, 2

    load = os.getloadavg()[0]
    print(
        f"digits CNN width {args.width}, global batch {args.global_bs}, {args.epochs} epochs per run, ",
        end="",
    )
    print(f"best and median of {args.repeats}; {os.cpu_count()} CPUs, load average {load:.1f} at start")
    header = ["processes", "batch/proc", "steps", "best s", "median s", "samples/s", "ratio"]
    widths = [9, 10, 5, 7, 8, 9, 5]
    print("  ".join(f"{h:>{w}}" for h, w in zip(header, widths, strict=True)))
    base = None
    for nproc in (1, 2):
        r = launch(nproc, args)
        best, median = min(r["times"]), statistics.median(r["times"])
        rate = r["samples"] / best
        base = base or rate
        row = f"{nproc:>9}  {args.global_bs // nproc:>10}  {r['steps']:>5}  {best:>7.2f}  {median:>8.2f}"
        print(f"{row}  {rate:>9.0f}  {rate / base:>5.2f}", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
