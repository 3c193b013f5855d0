"""lrcycle in a plain PyTorch loop: no Learner. A range test on your own model, optimizer, loss and loader,
then one-cycle training with `lrcycle.scheduler` stepped after every optimizer step.

The range test puts the model, optimizer and random number generators back exactly as they were, so the
training below starts from the same weights it would have started from without it.

    python examples/own_loop.py
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lrcycle
from lrcycle.demo.data import digits_arrays


def main(epochs: int = 4, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    x_train, y_train, x_valid, y_valid = digits_arrays(seed=seed)  # the embedded 8x8 digits, no download
    train_loader = DataLoader(TensorDataset(x_train, y_train), batch_size=64, shuffle=True)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    criterion = nn.CrossEntropyLoss()

    # 1. the range test: 100 steps at growing lrs, then everything put back
    found = lrcycle.range_test(model, optimizer, criterion, train_loader, num_it=100)
    lr = found.valley
    print(f"range test: valley {lr:.2e}, steep {found.steep:.2e}, minimum {found.minimum:.2e}")

    # 2. one cycle at that lr, in your own loop: step the scheduler after every optimizer step
    scheduler = lrcycle.scheduler(optimizer, "fit_one_cycle", epochs, lr, steps_per_epoch=len(train_loader))
    for epoch in range(epochs):
        model.train()
        for xb, yb in train_loader:
            loss = criterion(model(xb), yb)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            scheduler.step()
        model.eval()
        with torch.no_grad():
            accuracy = (model(x_valid).argmax(1) == y_valid).float().mean().item()
        print(f"epoch {epoch}: last lr {scheduler.get_last_lr()[0]:.2e}, validation accuracy {accuracy:.3f}")
    return {"lr": lr, "accuracy": accuracy}


if __name__ == "__main__":
    main()
