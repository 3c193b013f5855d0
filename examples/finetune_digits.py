"""Fine-tuning without a download: pretrain the small CNN on digits 0-4, transfer it to digits 5-9.

With a few dozen training images of the new classes: train the new head with the body frozen (`freeze()`
+ `fit_one_cycle`), then everything with discriminative learning rates (`unfreeze()` +
`fit_one_cycle(n, slice(lo, hi))`: the first layer group lo, the head hi). Training the same CNN from
scratch for the same number of epochs on the same images is the baseline. (On 8x8 digits a small CNN learns
fast from scratch, so the two end close, transfer ahead on some seeds and behind on others; the recipe is
the point: what a pretrained body buys grows with the gap between its data and yours.)

    python examples/finetune_digits.py
"""

from __future__ import annotations

import time

import torch

from lrcycle import Learner, accuracy, digits, digits_cnn
from lrcycle.layers import sequential_splitter
from lrcycle.transfer import transfer_learner

OLD_CLASSES, NEW_CLASSES = [0, 1, 2, 3, 4], [5, 6, 7, 8, 9]


def pretrain(epochs: int, lr: float, seed: int) -> torch.nn.Module:
    """The CNN trained on the full training set of digits 0-4."""
    torch.manual_seed(seed)
    learn = Learner(digits(classes=OLD_CLASSES, seed=seed), digits_cnn(n_out=5), progress=False)
    learn.fit_one_cycle(epochs, lr)
    return learn.model


def finetune_digits(
    n_train: int = 50,
    pretrain_epochs: int = 6,
    head_epochs: int = 2,
    body_epochs: int = 6,
    lr: float = 0.1,
    lr_lo: float = 0.01,
    bs: int = 10,
    seed: int = 0,
) -> dict:
    """Validation accuracy on digits 5-9: the pretrained CNN after training its new head alone, after
    fine-tuning all of it, and the CNN trained from scratch for `head_epochs + body_epochs` epochs."""
    start = time.perf_counter()
    body = pretrain(pretrain_epochs, lr, seed)
    dls = digits(bs=bs, classes=NEW_CLASSES, n_train=n_train, seed=seed)

    torch.manual_seed(seed)
    learn = transfer_learner(dls, body, n_out=5, splitter=sequential_splitter(4), metrics=[accuracy], progress=False)
    learn.fit_one_cycle(head_epochs, lr)  # the new head alone: transfer_learner starts frozen
    head_acc = learn.validate()[1]
    learn.unfreeze()
    learn.fit_one_cycle(body_epochs, slice(lr_lo, lr))  # early layers change least
    transfer_acc = learn.validate()[1]

    torch.manual_seed(seed)
    scratch = Learner(dls, digits_cnn(n_out=5), metrics=[accuracy], progress=False)
    scratch.fit_one_cycle(head_epochs + body_epochs, lr)
    return {
        "n_train": n_train,
        "epochs": head_epochs + body_epochs,
        "head_only_accuracy": float(head_acc),
        "transfer_accuracy": float(transfer_acc),
        "scratch_accuracy": float(scratch.validate()[1]),
        "seconds": time.perf_counter() - start,
    }


def format_table(r: dict) -> str:
    rows = [
        ("pretrained on 0-4, new head only (frozen)", r["head_only_accuracy"]),
        ("pretrained on 0-4, unfrozen, slice(lo, hi)", r["transfer_accuracy"]),
        ("from scratch, same images and epochs", r["scratch_accuracy"]),
    ]
    lines = [
        f"digits 5-9, {r['n_train']} training images, {r['epochs']} epochs each ({r['seconds']:.1f} s)",
        f"| {'training on digits 5-9':<44} | valid accuracy |",
        f"|{'-' * 46}|----------------|",
    ]
    return "\n".join(lines + [f"| {name:<44} | {acc:14.3f} |" for name, acc in rows])


def main() -> dict:
    torch.set_num_threads(1)  # convolutions this small only lose time to thread handoffs
    results = finetune_digits()
    print(format_table(results))
    return results


if __name__ == "__main__":
    main()
