"""Matplotlib drawing for the recorder's traces and for schedule previews. Every function returns its Axes."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt


def _axes(ax, nrows: int = 1, **kw):
    if ax is not None:
        return ax
    _, ax = plt.subplots(nrows, 1, **kw)
    return ax


def plot_loss_vs_lr(lrs, losses, skip_start=10, skip_end=5, suggestions=None, ax=None):
    """Smoothed loss against lr on a log axis, with suggested lrs marked.

    When the curve is shorter than the skips (an early stop), fewer points are skipped so that
    something is always drawn: the skips shrink in proportion, keeping at least one point.
    """
    n = len(lrs)
    start, end = skip_start, skip_end
    if start + end >= n:
        keep_fraction = 0.5 if n > 2 else 0.0
        start = int(n * keep_fraction * skip_start / max(skip_start + skip_end, 1))
        end = int(n * keep_fraction * skip_end / max(skip_start + skip_end, 1))
    lrs, losses = list(lrs)[start : n - end], list(losses)[start : n - end]
    ax = _axes(ax)
    ax.plot(lrs, losses)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("smoothed loss")
    for i, (name, lr) in enumerate((suggestions or {}).items()):
        values = lr if isinstance(lr, (tuple, list)) else (lr,)
        label = f"{name}: " + " to ".join(f"{v:.2e}" for v in values)
        for value in values:
            if value is None or not math.isfinite(value) or value <= 0:
                continue
            ax.axvline(value, color=f"C{i + 1}", linestyle="--", linewidth=1, label=label)
            label = None  # one legend entry per suggestion, even for a (low, high) pair
    if suggestions:
        ax.legend(fontsize="small")
    return ax


def plot_lr_trace(iters, group_lrs, moms=None, ax=None):
    """Lr per iteration for every group; with `moms`, a second panel beneath with momentum."""
    if moms is not None and ax is None:
        ax = _axes(None, 2, sharex=True, figsize=(6, 5))
    axes = ax if moms is not None else None
    lr_ax = axes[0] if axes is not None else _axes(ax)
    for g, trace in enumerate(group_lrs):
        lr_ax.plot(iters, trace, label=f"group {g}" if len(group_lrs) > 1 else "lr")
    lr_ax.set_ylabel("learning rate")
    if len(group_lrs) > 1:
        lr_ax.legend(fontsize="small")
    if axes is None:
        lr_ax.set_xlabel("iteration")
        return lr_ax
    axes[1].plot(iters, [math.nan if m is None else m for m in moms], color="C3")
    axes[1].set_ylabel("momentum")
    axes[1].set_xlabel("iteration")
    return axes


def plot_schedule(df, show_moms: bool = True, ax=None):
    """A schedule preview (or `recorder.iter_df()`): lr per iteration, every group, momentum beneath."""
    lr_cols = [c for c in df.columns if c.startswith("lr_")] or ["lr"]
    moms = list(df["mom"]) if show_moms and "mom" in df.columns else None
    return plot_lr_trace(list(df["iter"]), [list(df[c]) for c in lr_cols], moms, ax=ax)


def plot_loss_trace(recorder, skip_start=5, ax=None):
    """Raw and smoothed training loss per iteration, validation loss at each epoch's last iteration."""
    ax = _axes(ax)
    iters, skip = recorder.iters, min(skip_start, max(len(recorder.iters) - 1, 0))
    ax.plot(iters[skip:], recorder.losses[skip:], alpha=0.3, label="train (raw)")
    ax.plot(iters[skip:], recorder.smooth_losses[skip:], label="train (smoothed)")
    ends = _epoch_end_iters(recorder)
    valid = [row["valid_loss"] for row in recorder.epochs]
    if ends and any(math.isfinite(v) for v in valid):
        ax.plot(ends, valid[: len(ends)], marker="o", label="valid")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.legend(fontsize="small")
    return ax


def _epoch_end_iters(recorder) -> list[int]:
    ends = {}
    for it, epoch in zip(recorder.iters, recorder.iter_epochs):
        ends[epoch] = it
    return [ends[row["epoch"]] for row in recorder.epochs if row["epoch"] in ends]


def plot_epoch_metrics(epoch_df, ax=None):
    """One panel per column: train/valid loss together, then each metric, against the epoch."""
    metric_cols = [c for c in epoch_df.columns if c not in ("epoch", "train_loss", "valid_loss", "time")]
    n = 1 + len(metric_cols)
    axes = _axes(ax, n, sharex=True, figsize=(6, 2.5 * n), squeeze=False) if ax is None else ax
    flat = axes.ravel() if hasattr(axes, "ravel") else [axes]
    flat[0].plot(epoch_df["epoch"], epoch_df["train_loss"], marker="o", label="train_loss")
    flat[0].plot(epoch_df["epoch"], epoch_df["valid_loss"], marker="o", label="valid_loss")
    flat[0].set_ylabel("loss")
    flat[0].legend(fontsize="small")
    for panel, col in zip(flat[1:], metric_cols):
        panel.plot(epoch_df["epoch"], epoch_df[col], marker="o")
        panel.set_ylabel(col)
    flat[-1].set_xlabel("epoch")
    return axes
