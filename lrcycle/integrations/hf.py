"""Hugging Face transformers: the range test on a model whose forward returns its loss (`model(**batch).loss`).

Build a `DataLoader` with the Trainer's collator, run `hf_range_test(model, loader, optimizer)`, then give the
Trainer `optimizers=(optimizer, lrcycle.scheduler(optimizer, "fit_one_cycle", n_epochs, result.valley,
steps_per_epoch=len(loader)))`: the model and optimizer it trains are exactly as before the test.
"""

from __future__ import annotations

from .plain import step_range_test


def hf_range_test(model, train_dataloader, optimizer, **kwargs):
    """`lrcycle.range_test` with each iteration's loss `model(**batch).loss` over `train_dataloader`'s dict
    batches (a collator's output, labels included). `kwargs` are `range_test`'s; model, optimizer and RNGs are
    bit for bit as before afterwards."""
    return step_range_test(model, lambda batch, _idx: model(**batch).loss, train_dataloader, optimizer, **kwargs)
