"""No host-device sync per training iteration: the recorder reads losses in chunks, with the same values."""

import pytest
import torch
from conftest import make_dls, make_mlp, smoothed
from torch import nn

from lrcycle import Callback, DataLoaders, GradientAccumulation, Learner

READS = ("item", "tolist", "cpu", "__float__", "numpy")


class CountingTensor(torch.Tensor):
    """A loss tensor that counts every read of its value to the host (and so do tensors computed from it).

    The Recorder reads a plain CPU tensor at once (there is no device to wait for); any other loss, this
    subclass on the CPU as much as a tensor on a GPU, waits for the chunked read tested here."""

    reads = {name: 0 for name in READS}

    def item(self):
        CountingTensor.reads["item"] += 1
        return super().item()

    def tolist(self):
        CountingTensor.reads["tolist"] += 1
        return super().tolist()

    def cpu(self, *args, **kwargs):
        CountingTensor.reads["cpu"] += 1
        return super().cpu(*args, **kwargs)

    def __float__(self):
        CountingTensor.reads["__float__"] += 1
        return super().__float__()

    def numpy(self, *args, **kwargs):
        CountingTensor.reads["numpy"] += 1
        return super().numpy(*args, **kwargs)


def counting_loss(pred, y):
    return nn.functional.cross_entropy(pred, y).as_subclass(CountingTensor)


class KeepLosses(Callback):
    """Keeps each training batch's loss tensor, to read them all after the fit."""

    order = 0

    def __init__(self):
        self.losses = []

    def after_loss(self, learn):
        if learn.training:
            self.losses.append(learn.loss.detach().clone())


@pytest.fixture(autouse=True)
def _reset_counts():
    CountingTensor.reads = {name: 0 for name in READS}


@pytest.mark.parametrize("sync_every", [64, 4])
def test_a_fit_reads_losses_once_per_chunk_not_once_per_iteration(sync_every):
    dls = make_dls(n_train=160, bs=8)  # 20 batches an epoch
    keep = KeepLosses()
    learn = Learner(dls, make_mlp(), loss_func=counting_loss, progress=True, device="cpu")
    learn.recorder.sync_every = sync_every
    learn.fit_one_cycle(3, 0.05, cbs=[keep])
    n_epoch, n_iter = 3, len(dls.train)
    reads = CountingTensor.reads
    assert reads["item"] == reads["cpu"] == reads["__float__"] == reads["numpy"] == 0
    chunks_per_epoch = -(-n_iter // sync_every)  # full chunks and the epoch's end
    validation_reads = n_epoch  # one `.tolist()` of the validation sums per epoch
    assert reads["tolist"] == n_epoch * chunks_per_epoch + validation_reads
    assert reads["tolist"] < n_epoch * n_iter / 2

    # the recorded values are the ones reading every loss at once gives
    values = [t.item() for t in keep.losses]
    assert learn.recorder.losses == values
    assert learn.recorder.smooth_losses == smoothed(values)
    epoch_means = [sum(values[e * n_iter : (e + 1) * n_iter]) / n_iter for e in range(n_epoch)]
    assert [row["train_loss"] for row in learn.recorder.epochs] == epoch_means


def test_accumulated_steps_record_the_mean_of_their_batches_across_chunks():
    dls = make_dls(n_train=96, bs=8)  # 12 batches: 4 steps of 3
    keep = KeepLosses()
    learn = Learner(dls, make_mlp(), progress=False, device="cpu")
    learn.recorder.sync_every = 3
    learn.fit(0.05, 1, cbs=[keep, GradientAccumulation(3)])
    values = [t.item() for t in keep.losses]
    assert learn.recorder.losses == [sum(values[i : i + 3]) / 3 for i in range(0, 12, 3)]


def test_the_range_test_reads_every_loss_and_stops_on_the_same_iteration():
    # it must read each loss to decide when to stop: one read per iteration there
    learn = Learner(make_dls(), make_mlp(), loss_func=counting_loss, progress=False, device="cpu")
    result = learn.lr_find(start_lr=1e-2, end_lr=1e6, num_it=40)
    n = len(result.losses)
    assert n < 40 and CountingTensor.reads["tolist"] == n
    smooth = result.smooth_losses
    best = min(smooth[:-1])
    assert smooth[-1] > 4 * best and all(s <= 4 * min(smooth[: i + 1]) for i, s in enumerate(smooth[:-1]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: torch.cuda.set_sync_debug_mode")
def test_cuda_training_batches_do_not_synchronize():
    class SyncCheck(Callback):
        """Turns torch's sync debugging to errors from the start of each training batch to its end."""

        order = -5000

        def before_batch(self, learn):
            if learn.training:
                torch.cuda.set_sync_debug_mode("error")

        def after_batch(self, learn):
            torch.cuda.set_sync_debug_mode("default")

    class Off(Callback):  # the last after_batch hook: turns it off after the recorder has run
        order = 5000

        def after_batch(self, learn):
            torch.cuda.set_sync_debug_mode("default")

        def cleanup_fit(self, learn):
            torch.cuda.set_sync_debug_mode("default")

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(256, 8, generator=g).cuda(), torch.randint(0, 3, (256,), generator=g).cuda()
    batches = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 256, 16)]
    learn = Learner(DataLoaders(batches, None, nn.CrossEntropyLoss()), make_mlp(), progress=False, device="cuda")
    learn.fit_one_cycle(2, 0.05, cbs=[SyncCheck(), Off()])  # raises on any sync inside a training batch
    assert len(learn.recorder.losses) == 32


@pytest.mark.parametrize("sync_every", [1, 64])
def test_reading_each_step_at_once_or_in_chunks_records_the_same_values(sync_every):
    # sync_every=1 reads each step alone, as the range test does on a GPU: the same floats as reading every loss
    # with .item() (the counting loss, a tensor subclass, takes the chunked read a GPU loss takes)
    keep = KeepLosses()
    learn = Learner(make_dls(n_train=160, bs=8), make_mlp(), loss_func=counting_loss, progress=False, device="cpu")
    learn.recorder.sync_every = sync_every
    learn.fit(0.05, 2, cbs=[keep])
    values = [t.item() for t in keep.losses]
    assert learn.recorder.losses == values
    assert learn.recorder.smooth_losses == smoothed(values)
