"""PyTorch Lightning: `lrcycle.scheduler` from `configure_optimizers` (interval "step") sets the lrs the Learner
records, and `lightning_range_test` runs the range test on a LightningModule's own training_step and
optimizer with an exact restore; Lightning's own `Tuner.lr_find` on the same task, side by side."""

import math
import warnings

import pytest
import torch
from conftest import make_mlp
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

pl = pytest.importorskip("lightning.pytorch", reason="needs lightning (pip install -e '.[lightning]')")

import lrcycle  # noqa: E402
from lrcycle import DataLoaders, Learner  # noqa: E402
from lrcycle.integrations.lightning import configured_optimizer, lightning_range_test  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore::lrcycle.finder.suggest.SuggestionWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),  # Lightning's advice on workers, logging, accelerators
]

BS, N = 16, 96  # 6 batches an epoch


def task(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, 8, generator=g)
    y = (x @ torch.randn(8, 3, generator=g)).argmax(1)
    return TensorDataset(x, y)


class Classifier(pl.LightningModule):
    """A plain LightningModule; `plan` (method, args, kwargs) makes configure_optimizers return lrcycle.scheduler."""

    def __init__(self, plan=None, lr=0.01):
        super().__init__()
        self.net, self.plan, self.lr, self.lrs = make_mlp(), plan, lr, []

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def on_train_batch_start(self, batch, batch_idx):
        self.lrs.append([g["lr"] for g in self.trainer.optimizers[0].param_groups])

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)
        if self.plan is None:
            return opt
        method, args, kwargs = self.plan
        sched = lrcycle.scheduler(opt, method, *args, steps_per_epoch=N // BS, **kwargs)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def trainer(**kwargs):
    return pl.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )


@pytest.mark.parametrize(
    "plan",
    [("fit_one_cycle", (2, 0.05), {}), ("fit", (0.05, 2), {"cycle_len": 1, "use_clr_beta": (10, 10, 0.95, 0.85)})],
)
def test_scheduler_from_configure_optimizers_gives_the_learners_trace(plan, tmp_path):
    method, args, kwargs = plan
    module = Classifier(plan)
    trainer(max_epochs=2, default_root_dir=tmp_path).fit(module, DataLoader(task(), batch_size=BS, shuffle=True))
    learn = Learner(
        DataLoaders(DataLoader(task(), batch_size=BS)), make_mlp(), nn.CrossEntropyLoss(), lr=0.01, progress=False
    )
    getattr(learn, method)(*args, **kwargs)
    assert module.lrs == [list(t) for t in zip(*learn.recorder.group_lrs)]
    assert len(module.lrs) == 12


def bits(t):
    return t.detach().contiguous().reshape(-1).view(torch.uint8).clone()


def test_lightning_range_test_uses_the_training_step_and_restores_exactly(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module = Classifier()
    opt = module.configure_optimizers()
    loader = DataLoader(task(), batch_size=BS, shuffle=True)
    for x, y in list(loader)[:2]:
        module.training_step((x, y), 0).backward()
        opt.step()
    before = {k: bits(v) for k, v in module.state_dict().items()}
    opt_before = {k: bits(v["momentum_buffer"]) for k, v in enumerate(opt.state.values())}
    torch.manual_seed(5)
    rng = torch.get_rng_state()
    result = lightning_range_test(module, loader, optimizer=opt, num_it=30, end_lr=1.0)
    assert all(torch.equal(bits(v), before[k]) for k, v in module.state_dict().items())
    assert all(torch.equal(bits(v["momentum_buffer"]), opt_before[k]) for k, v in enumerate(opt.state.values()))
    assert torch.equal(torch.get_rng_state(), rng) and list(tmp_path.iterdir()) == []
    assert module.training  # its mode as it was

    # the same test through lrcycle.range_test on the step written out: the same curve
    torch.set_rng_state(rng)
    plain = lrcycle.range_test(module.net, opt, nn.CrossEntropyLoss(), loader, num_it=30, end_lr=1.0)
    assert result.losses == plain.losses and result.lrs == plain.lrs and tuple(result) == tuple(plain)


def test_the_configured_optimizer_is_found_in_every_common_form():
    opt = torch.optim.SGD(nn.Linear(2, 1).parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, 1)
    for config in (opt, [opt], ([opt], [sched]), {"optimizer": opt, "lr_scheduler": sched}, [{"optimizer": opt}]):
        assert configured_optimizer(config) is opt
    with pytest.raises(ValueError, match="single optimizer"):
        configured_optimizer([opt, torch.optim.SGD(nn.Linear(2, 1).parameters(), lr=0.1)])
    with pytest.raises(TypeError, match="LightningModule"):
        lightning_range_test(nn.Linear(2, 1), [])


def test_side_by_side_with_lightnings_tuner_lr_find(tmp_path, capsys):
    """Both tests on the same module, loader and range. Lightning's Tuner writes and reads a checkpoint file
    to restore; lrcycle's keeps its snapshot in memory. What each returns: Lightning an `_LRFinder` with
    `results` and one `suggestion()` (steepest descent), lrcycle its named suggestions with the curve; printed
    side by side (`pytest -s`); both must lie inside the swept range."""
    from lightning.pytorch.tuner import Tuner

    loader = DataLoader(task(), batch_size=BS, shuffle=True)
    torch.manual_seed(0)
    ours = lightning_range_test(Classifier(), loader, start_lr=1e-6, end_lr=1.0, num_it=60)
    torch.manual_seed(0)
    module = Classifier()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = Tuner(trainer(max_epochs=20, default_root_dir=tmp_path)).lr_find(
            module, train_dataloaders=loader, min_lr=1e-6, max_lr=1.0, num_training=60, attr_name="lr"
        )
    theirs = found.suggestion()
    their_lrs = found.results["lr"]
    assert len(their_lrs) == 60 and their_lrs[0] == 1e-6 and all(b > a for a, b in zip(their_lrs, their_lrs[1:]))
    assert ours.lrs[0] == 1e-6 and ours.lrs[-1] == pytest.approx(1.0) and len(ours.lrs) <= 60
    assert 1e-6 <= ours.valley <= 1.0 and (theirs is None or 1e-6 <= theirs <= 1.0)
    with capsys.disabled():
        print(f"\nlrcycle valley={ours.valley:.3g} (all: {dict(ours.suggestions)}); Lightning Tuner: {theirs}")
    assert math.isfinite(ours.valley)
