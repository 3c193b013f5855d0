"""One rank of the distributed acceptance test: `torchrun --nproc_per_node=2 tests/ddp_worker.py OUT`.

Trains on the embedded digits inside `learn.distrib_ctx()` and writes what it saw to `OUT/rank<r>.pt`:
per fit the recorded trace, this rank's own (unaveraged) losses and the final weights; the range test's
trace and the weights before and after it; checks of what the context undid on exit. It writes plots
only on rank 0, into `OUT/rank<r>/`, as user code should, and calls `learn.save` on every rank.
"""

import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from lrcycle import DataLoaders, Learner, accuracy, digits, digits_cnn, sequential_splitter
from lrcycle.demo.command import demo
from lrcycle.distributed import is_main_process, unwrap


class LocalLosses:
    """This rank's loss of every training iteration, read before the distributed callback averages it."""

    order = 30

    def __init__(self):
        self.losses = []

    def after_batch(self, learn):
        if learn.training and learn.loss is not None:
            self.losses.append(learn.loss.item())


def weights(learn) -> dict:
    return {k: v.detach().clone() for k, v in unwrap(learn.model).state_dict().items()}


def trace(learn, local: LocalLosses) -> dict:
    rec = learn.recorder
    return {
        "losses": list(rec.losses),
        "smooth_losses": list(rec.smooth_losses),
        "lrs": list(rec.lrs),
        "moms": list(rec.moms),
        "epochs": [[v for k, v in row.items() if k != "time"] for row in rec.epochs],
        "local_losses": list(local.losses),
        "weights": weights(learn),
    }


def run(learn, local: LocalLosses, call) -> dict:
    local.losses = []
    call()
    return trace(learn, local)


class DigitsDict(torch.utils.data.Dataset):
    """The digits as dict samples `{"pixels", "labels"}`, for the dict-batch run."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        x, y = self.dataset[i]
        return {"pixels": x, "labels": y}


class DictDigits(torch.nn.Module):
    """`model(pixels=..., labels=...)` returning `{"loss", "logits"}`, as a Hugging Face model does."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = digits_cnn()

    def forward(self, pixels, labels):
        logits = self.body(pixels)
        return {"loss": torch.nn.functional.cross_entropy(logits, labels), "logits": logits}


def dict_batch_run(out: Path, rank: int) -> dict:
    """Dict batches inside the context: the trace, the local losses, the validation inside and outside."""
    plain = digits(bs=64)
    dls = DataLoaders(
        DataLoader(DigitsDict(plain.train.dataset), batch_size=64, shuffle=True),
        DataLoader(DigitsDict(plain.valid.dataset), batch_size=179),
    )
    local = LocalLosses()
    learn = Learner(dls, DictDigits(), metrics=[accuracy], device="cpu", cbs=[local], progress=False,
                    path=out / f"rank{rank}")  # fmt: skip
    result = {}
    with learn.distrib_ctx():
        result["fit"] = run(learn, local, lambda: learn.fit_one_cycle(1, 0.05))
        result["valid_inside"] = learn.validate()
        before = weights(learn)
        result["lr_find"] = run(learn, local, lambda: learn.lr_find(start_lr=1e-5, end_lr=1e6, num_it=60))
        result["lr_find_before"], result["lr_find_after"] = before, weights(learn)
    result["valid_outside"] = learn.validate()
    return result


def main(out: Path) -> None:
    torch.set_num_threads(1)
    rank = int(os.environ["RANK"])
    torch.manual_seed(rank)  # different on purpose: DDP must start every rank from rank 0's weights
    dls = digits(bs=64)
    # validation batches of 179: shards of 179 and 180 images give 1 and 2 batches, uneven on purpose
    dls.valid = DataLoader(dls.valid.dataset, batch_size=179)
    local = LocalLosses()
    learn = Learner(
        dls,
        digits_cnn(),
        metrics=[accuracy],
        lr=0.05,
        splitter=sequential_splitter(4),
        device="cpu",
        cbs=[local],
        path=out / f"rank{rank}",
    )
    original_model, original_dls, original_cbs = learn.model, learn.dls, list(learn.cbs)
    result = {"rank": rank}
    with learn.distrib_ctx():
        result["wrapped"] = isinstance(learn.model, DistributedDataParallel)
        result["world_size"] = dist.get_world_size()
        result["n_iter"] = len(learn.dls.train)
        result["fit"] = run(learn, local, lambda: learn.fit(0.05, 2))
        result["progress_shown"] = learn.progress.show  # whether this rank's progress callback printed
        result["one_cycle"] = run(learn, local, lambda: learn.fit_one_cycle(1, 0.05))
        result["clr"] = run(learn, local, lambda: learn.fit(0.05, 1, cycle_len=1, use_clr=(32, 5)))
        learn.freeze_to(2)  # changes which parameters DDP must sync: the context wraps the model again
        result["frozen"] = run(learn, local, lambda: learn.fit(0.05, 1))
        learn.unfreeze()
        result["unfrozen"] = run(learn, local, lambda: learn.fit(slice(0.005, 0.05), 1))
        result["valid_inside"] = learn.validate()
        before = weights(learn)
        found = run(learn, local, lambda: learn.lr_find(start_lr=1e-5, end_lr=1e6, num_it=100))
        result["lr_find"] = found
        result["lr_find_before"], result["lr_find_after"] = before, weights(learn)
        learn.save("final")
        if is_main_process():
            learn.recorder.plot().figure.savefig(out / f"rank{rank}" / "lr_find.png")
            plt.close("all")
    result["unwrapped"] = learn.model is original_model
    result["dls_restored"] = learn.dls is original_dls
    result["cbs_restored"] = learn.cbs == original_cbs
    result["group_kept"] = dist.is_initialized()  # for the next block: see the demo below
    result["valid_outside"] = learn.validate()  # one process over the whole validation set, same weights
    # the library's own writer under torchrun: each rank names its own folder, only rank 0's may appear
    demo(out / f"demo_rank{rank}", cycle_len=1, progress=False)
    result["dict_batches"] = dict_batch_run(out, rank)
    torch.save(result, out / f"rank{rank}.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
