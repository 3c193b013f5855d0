"""The Recorder keeps each iteration in typed storage: at most 64 bytes an iteration, measured with tracemalloc over
100,000 iterations driven through its hooks, and the traces still read like the lists they replaced."""

import math
import tracemalloc
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from lrcycle import Recorder
from lrcycle.interrupt import held_sigint

N_ITERS = 100_000
MAX_BYTES_PER_ITER = 64


def fake_learner(opt):
    """What the Recorder's training hooks read from a learner, for a one-group SGD optimizer."""
    return SimpleNamespace(
        opt=opt, metrics=[], training=True, stepped=True, loss=None, train_iter=0, epoch=0, validated_this_epoch=False
    )


def run_iterations(rec, learn, n: int, losses) -> None:
    """`n` training iterations, inside one held section as a fit's are (the recorder's update is held)."""
    group = learn.opt.param_groups[0]
    with held_sigint():
        for i in range(n):
            group["lr"], group["momentum"] = 1e-3 + i * 1e-9, 0.9 - i * 1e-9
            learn.loss, learn.train_iter = losses[i % len(losses)], i + 1
            rec.after_batch(learn)
        rec.flush()


@pytest.mark.slow  # about 3 s: tracemalloc slows every allocation of the 100,000 iterations
def test_recorder_keeps_at_most_64_bytes_an_iteration():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-3, momentum=0.9)
    learn, rec = fake_learner(opt), Recorder()
    losses = [torch.tensor(float(v)) for v in range(1, 8)]
    rec.before_fit(learn)
    run_iterations(rec, learn, 100, losses)  # first-call allocations (caches, the flush path) outside the count
    rec.before_fit(learn)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        run_iterations(rec, learn, N_ITERS, losses)
        assert len(rec.smooth_losses) == N_ITERS  # worked out when read: read here, so it is in the count
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(rec.losses) == N_ITERS  # every iteration was recorded, and is held in the count above
    print(f"{held / N_ITERS:.1f} bytes an iteration")
    assert held / N_ITERS <= MAX_BYTES_PER_ITER, f"{held / N_ITERS:.1f} bytes an iteration"


def test_typed_traces_read_like_lists():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-3, momentum=0.9)
    learn, rec = fake_learner(opt), Recorder(beta=0.5)
    rec.before_fit(learn)
    losses = [torch.tensor(v) for v in (3.0, 2.0, 1.0)]
    run_iterations(rec, learn, 3, losses)
    lrs = [1e-3 + i * 1e-9 for i in range(3)]
    moms = [0.9 - i * 1e-9 for i in range(3)]
    # the debiased average written out: avg = b*avg + (1-b)*loss, smooth = avg / (1 - b**n)
    avg, smooth = 0.0, []
    for n, loss in enumerate([3.0, 2.0, 1.0], start=1):
        avg = 0.5 * avg + 0.5 * loss
        smooth.append(avg / (1 - 0.5**n))
    assert rec.losses == [3.0, 2.0, 1.0] and [3.0, 2.0, 1.0] == rec.losses and rec.losses != [3.0, 2.0]
    assert rec.smooth_losses == smooth and rec.lrs == lrs and rec.moms == moms and rec.iters == [0, 1, 2]
    assert rec.losses[1:] == [2.0, 1.0] and isinstance(rec.losses[1:], list) and rec.losses[-1] == 1.0
    assert len(rec.iters) == 3 and list(rec.iter_epochs) == [0, 0, 0] and rec.group_lrs == [lrs]
    df = rec.iter_df()
    expected = pd.DataFrame(
        {"iter": [0, 1, 2], "epoch": [0, 0, 0], "loss": [3.0, 2.0, 1.0], "smooth_loss": smooth, "lr": lrs, "mom": moms}
    )
    pd.testing.assert_frame_equal(df, expected)
    state = rec.state_dict()
    assert state["losses"] == [3.0, 2.0, 1.0] and type(state["losses"]) is list and state["group_lrs"] == [lrs]


def test_a_momentum_the_optimizer_lacks_reads_none():
    opt = torch.optim.Adagrad([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)  # neither momentum nor betas
    learn, rec = fake_learner(opt), Recorder()
    rec.before_fit(learn)
    learn.loss, learn.train_iter = torch.tensor(1.0), 1
    rec.after_batch(learn)
    rec.flush()
    assert rec.moms == [None] and rec.moms[0] is None and list(rec.moms) == [None]
    assert rec.iter_df()["mom"].tolist() == [None]
    assert not any(isinstance(v, float) and math.isnan(v) for v in rec.state_dict()["moms"])
