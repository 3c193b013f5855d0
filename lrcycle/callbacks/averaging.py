"""Weight averaging at the learning-rate lows: the mean of the weights found at every cycle's end (SWA)."""

from __future__ import annotations

from torch.optim.swa_utils import AveragedModel, update_bn

from ..callback import ORDER, Callback
from ..distributed import broadcast_buffers, unwrap
from ..evaluation import valid_loss
from ..validate import check_positive_int


class CycleAverage(Callback):
    """Averages the weights at the end of every cycle (where a cyclical schedule's lr is lowest), then leaves
    the learner with the average after the fit.

    Cycles end after the epoch counts in `cycle_ends`; `None` takes the fit's own (`learn.cycle_ends`:
    `fit(lr, 3, cycle_len=1, cycle_mult=2)` ends cycles after epochs 1, 3 and 7; a constant-lr fit after
    every epoch; a range test none). Cycles before `start_cycle` are left out (early cycles are often far
    from good). Typical use: `learn.fit(0.3, 6, cycle_len=2, use_clr=(32, 5), cbs=[CycleAverage()])`.
    The average of k snapshots is `sum(w_c) / k`, parameter by parameter (`torch.optim.swa_utils`); the
    averaged model's BatchNorm statistics are then recomputed over one pass of the training data, since
    averaged weights make activations whose statistics none of the snapshots had.

    `keep='average'` leaves the averaged weights in the model; `keep='best'` leaves whichever of the averaged
    and the last weights has the lower validation loss. `valid_losses` holds both when measured, and
    `kept` says which was kept. The optimizer state is left as it is. The BatchNorm pass draws from the
    training loader (so its shuffling advances torch's RNG). Under torch.distributed, rank 0's statistics
    are sent to every rank and validation losses are summed over ranks, so all ranks keep the same model.
    """

    order = ORDER["averaging"]  # after the recorder; before the snapshots' saving and early stopping

    def __init__(self, cycle_ends=None, start_cycle: int = 0, keep: str = "average"):
        if keep not in ("average", "best"):
            raise ValueError(f"keep: expected 'average' or 'best', got {keep!r}")
        self.cycle_ends = None if cycle_ends is None else list(cycle_ends)
        self.start_cycle = check_positive_int(start_cycle, "start_cycle", minimum=0)
        self.keep = keep

    def check(self, learn) -> None:
        """Before anything changes: `keep='best'` compares validation losses, so it needs validation data."""
        if self.keep == "best" and learn.dls.valid is None:
            raise ValueError("keep='best' needs validation data; give DataLoaders a valid loader")

    def before_fit(self, learn) -> None:
        self._ends = learn.cycle_ends if self.cycle_ends is None else self.cycle_ends
        self.averaged = AveragedModel(unwrap(learn.model))
        self.n_averaged, self.valid_losses, self.kept = 0, {}, None

    def after_epoch(self, learn) -> None:
        done = learn.epoch + 1
        if done in self._ends and self._ends.index(done) >= self.start_cycle:
            self.averaged.update_parameters(unwrap(learn.model))
            self.n_averaged += 1

    def state_dict(self) -> dict:
        """The running average (the averaged model's tensors) and how many snapshots are in it."""
        return {"averaged": self.averaged.state_dict(), "n_averaged": self.n_averaged}

    def load_state_dict(self, state: dict) -> None:
        """Continue a fit's average from a `state_dict()`; call it after `before_fit`, which starts it afresh."""
        n_averaged = check_positive_int(state["n_averaged"], "n_averaged", minimum=0)
        self.averaged.load_state_dict(state["averaged"])
        self.n_averaged = n_averaged

    def after_fit(self, learn) -> None:
        if self.n_averaged == 0:
            return  # no cycle ended (or all came before start_cycle): the model stays as trained
        update_bn(learn.dls.train, self.averaged.module, device=learn.device)
        broadcast_buffers(self.averaged.module)  # each rank's BatchNorm pass saw only its shard
        if self.keep == "best":
            self.valid_losses = {
                "last": valid_loss(learn),
                "average": valid_loss(learn, self.averaged.module),
            }
            if self.valid_losses["last"] <= self.valid_losses["average"]:
                self.kept = "last"
                return
        unwrap(learn.model).load_state_dict(self.averaged.module.state_dict())
        self.kept = "average"
