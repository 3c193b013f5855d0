"""`learn.distrib_ctx()`: a no-op outside torchrun, and under `torchrun --nproc_per_node=2` (CPU, gloo) every
rank records the same trace, ends with the same weights and stops a range test on the same iteration.

The torchrun tests share one launch of tests/ddp_worker.py (about 20 s on two cores), so they are slow."""

import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_dls, make_mlp
from torch.nn.parallel import DistributedDataParallel

from lrcycle import DataLoaders, Learner, digits
from lrcycle.distributed import TORCHRUN_VARS, ShardSampler

WORKER = Path(__file__).with_name("ddp_worker.py")
TRAINING = ["fit", "one_cycle", "clr", "frozen", "unfrozen"]  # unfrozen: 4 layer groups, a slice of lrs
FITS = [*TRAINING, "lr_find"]


# ---- without torchrun ------------------------------------------------------------------------------------
@pytest.fixture
def no_torchrun(monkeypatch):
    for var in TORCHRUN_VARS:
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def fake_torchrun(monkeypatch):
    """torchrun's variables for rank 0 of 2, with no process group started."""
    env = {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}
    for var, value in env.items():
        monkeypatch.setenv(var, value)


def test_outside_torchrun_the_context_changes_nothing(no_torchrun):
    learn = Learner(make_dls(), make_mlp(), device="cpu", progress=False)
    model, dls, cbs = learn.model, learn.dls, list(learn.cbs)
    with learn.distrib_ctx() as inside:
        assert inside is learn
        assert learn.model is model and learn.dls is dls and learn.cbs == cbs
        learn.fit(0.1, 1)
    assert learn.model is model and learn.dls is dls and learn.cbs == cbs
    assert not torch.distributed.is_initialized()


def test_a_world_of_one_process_changes_nothing(monkeypatch):
    for var, value in {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "x"}.items():
        monkeypatch.setenv(var, value)
    monkeypatch.setenv("MASTER_PORT", "1")
    learn = Learner(make_dls(), make_mlp(), device="cpu", progress=False)
    with learn.distrib_ctx():
        assert not isinstance(learn.model, DistributedDataParallel)
    assert not torch.distributed.is_initialized()


@pytest.mark.parametrize("which", ["train", "valid"])
def test_loaders_that_cannot_be_resharded_are_a_value_error(fake_torchrun, which):
    dls = make_dls()
    batches = list(getattr(dls, which))
    setattr(dls, which, batches)
    learn = Learner(dls, make_mlp(), device="cpu", progress=False)
    with pytest.raises(ValueError, match=f"dls.{which}.*DataLoader"):
        with learn.distrib_ctx():
            pass
    assert not torch.distributed.is_initialized()  # raised before any process group was started


def test_a_custom_sampler_is_a_value_error(fake_torchrun):
    dls = make_dls()
    sampler = torch.utils.data.WeightedRandomSampler(torch.ones(len(dls.train.dataset)), 10)
    train = torch.utils.data.DataLoader(dls.train.dataset, batch_size=4, sampler=sampler)
    dls = DataLoaders(train, dls.valid)
    learn = Learner(dls, make_mlp(), loss_func=torch.nn.CrossEntropyLoss(), device="cpu", progress=False)
    with pytest.raises(ValueError, match="dls.train.*sampler"):
        with learn.distrib_ctx():
            pass


@pytest.mark.parametrize("n, world", [(0, 2), (1, 2), (7, 2), (10, 3), (359, 2), (5, 8)])
def test_validation_shards_cover_every_index_once_without_padding(n, world):
    shards = [list(ShardSampler(n, r, world)) for r in range(world)]
    assert sorted(i for shard in shards for i in shard) == list(range(n))
    assert [len(ShardSampler(n, r, world)) for r in range(world)] == [len(s) for s in shards]
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


# ---- under torchrun: two CPU processes -----------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """Launch the worker on two processes once; return (what each rank wrote, the output folder)."""
    out = tmp_path_factory.mktemp("ddp")
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_VARS}
    env["OMP_NUM_THREADS"] = "1"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2"]
    cmd = [*torchrun, f"--master_port={free_port()}", str(WORKER), str(out)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)], out


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def same_rows(a: list, b: list) -> bool:
    return np.array_equal(np.array(a, dtype=float), np.array(b, dtype=float), equal_nan=True)


@pytest.mark.slow
def test_every_rank_runs_wrapped_on_its_shard_of_the_training_data(ranks):
    results, _ = ranks
    n_train = len(digits(bs=64).train.dataset)
    per_rank = math.ceil(n_train / 2)  # DistributedSampler pads to equal shares
    for r, result in enumerate(results):
        assert result["rank"] == r and result["world_size"] == 2 and result["wrapped"]
        assert result["n_iter"] == math.ceil(per_rank / 64)


@pytest.mark.slow
@pytest.mark.parametrize("fit", FITS)
def test_every_fit_completes_with_the_same_trace_on_both_ranks(ranks, fit):
    a, b = (result[fit] for result in ranks[0])
    assert len(a["losses"]) > 0
    assert a["losses"] == b["losses"] and a["smooth_losses"] == b["smooth_losses"]
    assert a["lrs"] == b["lrs"] and a["moms"] == b["moms"]
    assert same_rows(a["epochs"], b["epochs"])


@pytest.mark.slow
@pytest.mark.parametrize("fit", TRAINING)
def test_every_fit_ends_with_the_same_weights_and_buffers_on_both_ranks(ranks, fit):
    a, b = (result[fit] for result in ranks[0])
    assert same_weights(a["weights"], b["weights"])


@pytest.mark.slow
@pytest.mark.parametrize("fit", FITS)
def test_the_recorded_loss_is_the_mean_of_the_ranks_own_losses(ranks, fit):
    a, b = (result[fit] for result in ranks[0])
    local = (np.array(a["local_losses"]) + np.array(b["local_losses"])) / 2
    assert not np.allclose(a["local_losses"], b["local_losses"])  # the ranks did see different data
    np.testing.assert_allclose(a["losses"], local, rtol=1e-6)


@pytest.mark.slow
def test_validation_reduced_across_ranks_equals_one_process_over_the_whole_set(ranks):
    results, _ = ranks
    inside = [r["valid_inside"] for r in results]
    assert inside[0] == inside[1]
    np.testing.assert_allclose(inside[0], results[0]["valid_outside"], rtol=1e-5)


@pytest.mark.slow
def test_a_diverging_range_test_stops_on_the_same_iteration_on_both_ranks(ranks):
    a, b = (result["lr_find"] for result in ranks[0])
    assert len(a["losses"]) == len(b["losses"]) < 100
    smooth = a["smooth_losses"]
    # the stopping rule, checked independently: the last iteration is the first above 4x the lowest so far
    best = np.minimum.accumulate(smooth)
    above = [i for i in range(len(smooth)) if smooth[i] > 4 * best[i] or not math.isfinite(a["losses"][i])]
    assert above == [len(smooth) - 1]


@pytest.mark.slow
def test_the_range_test_restores_the_model_on_every_rank(ranks):
    for result in ranks[0]:
        assert same_weights(result["lr_find_before"], result["lr_find_after"])


@pytest.mark.slow
def test_leaving_the_context_undoes_everything(ranks):
    for result in ranks[0]:
        assert result["unwrapped"] and result["dls_restored"] and result["cbs_restored"]
        assert result["group_kept"]


@pytest.mark.slow
def test_only_rank_0_shows_progress(ranks):
    results, _ = ranks
    assert [result["progress_shown"] for result in results] == [True, False]


@pytest.mark.slow
def test_only_rank_0_writes_files(ranks):
    _, out = ranks
    assert (out / "rank0" / "lr_find.png").is_file()
    assert (out / "rank0" / "models" / "final.pth").is_file()
    assert not (out / "rank1").exists()


@pytest.mark.slow
def test_only_rank_0_writes_the_demos_plots_and_table(ranks):
    _, out = ranks
    written = sorted(path.name for path in (out / "demo_rank0").iterdir())
    assert written == ["epochs.csv", "losses.png", "lr_find.png", "lr_mom.png"]
    assert all((out / "demo_rank0" / name).stat().st_size > 0 for name in written)
    assert not (out / "demo_rank1").exists()


@pytest.mark.slow
def test_dict_batches_train_the_same_on_both_ranks_with_the_mean_loss_and_sharded_validation(ranks):
    a, b = (result["dict_batches"] for result in ranks[0])
    for key in ("losses", "smooth_losses", "lrs", "epochs"):
        assert same_rows(a["fit"][key], b["fit"][key]), key
    assert same_weights(a["fit"]["weights"], b["fit"]["weights"])
    mean = [(x + y) / 2 for x, y in zip(a["fit"]["local_losses"], b["fit"]["local_losses"], strict=True)]
    assert a["fit"]["losses"] == pytest.approx(mean, rel=1e-6)
    assert a["valid_inside"] == pytest.approx(a["valid_outside"], rel=1e-5)
    assert a["lr_find"]["losses"] == b["lr_find"]["losses"]
    for result in (a, b):
        assert same_weights(result["lr_find_before"], result["lr_find_after"])
