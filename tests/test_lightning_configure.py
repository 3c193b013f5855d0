"""`lightning_range_test` on a `configure_optimizers` that reads the Trainer (`estimated_stepping_batches`,
`max_epochs`), as Lightning's own examples do: a Trainer is attached for the call and detached afterwards."""

import warnings

import pytest
import torch
from conftest import make_mlp
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

pl = pytest.importorskip("lightning.pytorch", reason="needs lightning (pip install -e '.[lightning]')")

from lrcycle.integrations.lightning import lightning_range_test  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore::lrcycle.finder.suggest.SuggestionWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),  # Lightning's advice on workers and logging
]

BS, N = 16, 96  # 6 batches an epoch


def loader():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, 8, generator=g)
    return DataLoader(TensorDataset(x, (x @ torch.randn(8, 3, generator=g)).argmax(1)), batch_size=BS)


class ReadsTheTrainer(pl.LightningModule):
    """A OneCycleLR sized from the Trainer, as Lightning's docs write it; `reads` picks which Trainer field."""

    def __init__(self, reads="estimated_stepping_batches", log=True):
        super().__init__()
        self.net, self.reads, self.seen, self.logs = make_mlp(), reads, [], log

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        if self.logs:  # a no-op outside a fit (lrcycle hides Lightning's warning)
            self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=0.01, momentum=0.9)
        if self.reads == "estimated_stepping_batches":
            total = self.trainer.estimated_stepping_batches
        elif self.reads == "max_epochs":
            total = self.trainer.max_epochs * len(loader())
        else:
            total = self.trainer.datamodule.steps  # no datamodule outside a fit
        self.seen.append((self.trainer.estimated_stepping_batches, self.trainer.max_epochs))
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=total)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def attached(module) -> bool:
    try:
        assert module.trainer is not None
    except RuntimeError:
        return False
    return True


@pytest.mark.parametrize("reads", ["estimated_stepping_batches", "max_epochs"])
def test_a_configure_optimizers_reading_the_trainer_runs_with_one_attached_then_detached(reads):
    module = ReadsTheTrainer(reads)
    result = lightning_range_test(module, loader(), num_it=20, end_lr=1.0, progress=False)
    # what Lightning's own lr finder gives it: the test's length in steps, and the epochs those steps take
    assert module.seen == [(20, 4)]  # 20 steps of 6 batches an epoch: 4 epochs
    assert not attached(module)
    # the same test as with the optimizer passed in by hand
    torch.manual_seed(0)
    by_hand = ReadsTheTrainer(reads)
    by_hand.load_state_dict(module.state_dict())
    opt = torch.optim.SGD(by_hand.parameters(), lr=0.01, momentum=0.9)
    torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=0.1, total_steps=20 if reads != "max_epochs" else 24
    )  # its momentum
    expected = lightning_range_test(by_hand, loader(), optimizer=opt, num_it=20, end_lr=1.0, progress=False)
    assert result.losses == expected.losses and result.lrs == expected.lrs


def test_a_configuration_that_still_fails_names_optimizer():
    module = ReadsTheTrainer("datamodule")
    before = [p.clone() for p in module.parameters()]
    with pytest.raises(RuntimeError, match=r"configure_optimizers\(\) failed.*AttributeError.*optimizer=") as err:
        lightning_range_test(module, loader(), num_it=20, progress=False)
    assert isinstance(err.value.__cause__, AttributeError)
    assert not attached(module)
    assert all(torch.equal(a, b) for a, b in zip(before, module.parameters()))


def test_a_module_already_attached_keeps_its_trainer(tmp_path):
    module = ReadsTheTrainer("max_epochs", log=False)  # a Trainer outside its fit takes no self.log
    trainer = pl.Trainer(max_epochs=3, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)  # fmt: skip
    module.trainer = trainer
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lightning_range_test(module, loader(), num_it=12, progress=False)
    assert module.trainer is trainer
    assert module.seen[0][1] == 3  # its own max_epochs, not the test's
