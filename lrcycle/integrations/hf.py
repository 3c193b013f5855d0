"""Hugging Face transformers: the range test on a model whose forward returns its loss (`model(**batch).loss`).

    loader = DataLoader(train_dataset, batch_size=8, shuffle=True, collate_fn=data_collator)
    result = hf_range_test(model, loader, optimizer)
    trainer = Trainer(model, args, train_dataset=..., data_collator=data_collator,
                      optimizers=(optimizer, lrcycle.scheduler(optimizer, "fit_one_cycle", 3, result.valley,
                                                              steps_per_epoch=len(loader))))
"""

from __future__ import annotations

from .steps import step_range_test


def hf_range_test(model, train_dataloader, optimizer, **kwargs):
    """`lrcycle.range_test` with each iteration's loss `model(**batch).loss` over `train_dataloader`'s dict
    batches (a collator's output, labels included). `kwargs` are `range_test`'s; model, optimizer and RNGs are
    bit for bit as before afterwards."""
    return step_range_test(model, lambda batch, _idx: model(**batch).loss, train_dataloader, optimizer, **kwargs)
