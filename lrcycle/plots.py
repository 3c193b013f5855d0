"""Matplotlib drawing for the recorder's traces, range-test results and schedule previews.

Every function returns one matplotlib Axes, whatever the options: the plot's main (top) panel. A plot with
several panels (momentum beneath the lr, one panel per metric) has them all in `ax.figure.axes`, top first, and
`ax.figure.savefig(...)` saves the whole figure. (One Axes rather than a Figure: a notebook cell ending in a
returned Figure would draw it twice.) A plot with nothing to draw says why, in a `NothingToPlotWarning` and on
the axes, rather than showing empty axes. New figures are at least 100 dpi (notebooks default to 72).
"""

from __future__ import annotations

import math
import warnings

import numpy as np

MIN_DPI = 100
MERGE_DECADES = 0.02
"""Suggestion marks closer than this on the log lr axis (a factor of 10**0.02, under 5%) are drawn as one mark
carrying every name: two lines on the same spot would hide one of them."""


class NothingToPlotWarning(UserWarning):
    """A plot was asked for where there is nothing to draw (no iterations yet, a constant lr, ...)."""


def _axes(ax, nrows: int = 1, **kw):
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt  # here, not at import: pyplot alone costs `import lrcycle` about 0.35 s

    kw.setdefault("dpi", max(MIN_DPI, plt.rcParams["figure.dpi"]))
    _, ax = plt.subplots(nrows, 1, **kw)
    return ax


def _panels(ax, n: int) -> list:
    """`ax` as a list of `n` Axes: a multi-panel plot given `ax=` needs one Axes per panel."""
    panels = list(ax.flat) if hasattr(ax, "flat") else list(ax) if isinstance(ax, (list, tuple)) else [ax]
    if len(panels) != n:
        raise TypeError(f"ax: this plot draws {n} panels; pass {n} Axes (e.g. plt.subplots({n}, 1)[1]), got {ax!r}")
    return panels


def nothing_to_draw(ax, why: str):
    """Warn with `why`, and write it on the (first) axes, so both a script and a notebook show the reason;
    returns that first Axes."""
    warnings.warn(why, NothingToPlotWarning, stacklevel=3)
    first = ax.flat[0] if hasattr(ax, "flat") else ax[0] if isinstance(ax, (list, tuple)) else ax
    first.text(0.5, 0.5, why, ha="center", va="center", wrap=True, fontsize="small", transform=first.transAxes)
    return first


def plot_loss_vs_lr(lrs, losses, skip_start=10, skip_end=5, suggestions=None, ax=None, title=None, band=None):
    """Smoothed loss against lr on a log axis, with suggested lrs marked (the first one, the default, bold; the
    others faint) and the default's spread `band=(low, high)` shaded; the legend sits outside the axes, to the
    right, where it cannot hide the curve.

    When the curve is shorter than the skips (an early stop), fewer points are skipped so that
    something is always drawn: the skips shrink in proportion, keeping at least one point.
    """
    n, own_figure = len(lrs), ax is None
    ax = _axes(ax)
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("smoothed loss")
    if title:
        ax.set_title(title, fontsize="medium")
    if n == 0:
        return nothing_to_draw(ax, "nothing to draw: no iterations recorded yet; run learn.lr_find() first")
    if min(lrs) == max(lrs):
        return nothing_to_draw(
            ax,
            f"nothing to draw against the lr: it was {lrs[0]:.3g} for all {n} iterations. A loss-against-lr curve "
            "comes from a range test (learn.lr_find()); recorder.plot_losses() shows the loss per iteration",
        )
    start, end = skip_start, skip_end
    if start + end >= n:
        keep_fraction = 0.5 if n > 2 else 0.0
        start = int(n * keep_fraction * skip_start / max(skip_start + skip_end, 1))
        end = int(n * keep_fraction * skip_end / max(skip_start + skip_end, 1))
    lrs, losses = list(lrs)[start : n - end], list(losses)[start : n - end]
    ax.plot(lrs, losses, color="C0")
    ax.set_xscale("log")
    if band is not None and all(math.isfinite(b) and b > 0 for b in band):
        ax.axvspan(*band, color="C3", alpha=0.25, label=f"default's spread: {band[0]:.2e} to {band[1]:.2e}")
    if suggestions:
        _mark_suggestions(ax, suggestions, lrs, losses)
    if suggestions or band is not None:
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
        if own_figure:  # room for the legend beside the axes; a figure of the caller's keeps its layout
            ax.figure.set_layout_engine("constrained")
    return ax


def suggestion_marks(suggestions: dict) -> tuple[list[tuple[float, list[str], bool]], list[str]]:
    """`([(lr, names, is_default), ...], names_without_a_value)`: one mark per distinct lr, suggestions closer
    than `MERGE_DECADES` merged, a `(low, high)` pair as two marks named `<name> low` / `<name> high`. The
    first suggestion is the default."""
    marks, missing = [], []
    for i, (name, value) in enumerate(suggestions.items()):
        pair = isinstance(value, (tuple, list))
        for part, v in zip(("low", "high") if pair else ("",), value if pair else (value,)):
            label = f"{name} {part}".strip()
            if v is None or not math.isfinite(v) or v <= 0:
                missing.append(label)
                continue
            near = [m for m in marks if abs(math.log10(m[0]) - math.log10(v)) < MERGE_DECADES]
            if near:
                near[0][1].append(label)
                near[0][2] |= i == 0
            else:
                marks.append([float(v), [label], i == 0])
    return [tuple(m) for m in marks], missing


def _mark_suggestions(ax, suggestions: dict, lrs, losses) -> None:
    marks, missing = suggestion_marks(suggestions)
    others = 1
    for lr, names, is_default in marks:
        if is_default:
            names = [f"{names[0]} (default)", *names[1:]]
        label = f"{', '.join(names)}: {lr:.2e}"
        if is_default:  # solid, thick, red, with a dot where it meets the curve
            ax.axvline(lr, color="C3", linestyle="-", linewidth=2.5, label=label, zorder=3)
            order = np.argsort(lrs)
            at = np.interp(math.log10(lr), np.log10(np.asarray(lrs)[order]), np.asarray(losses)[order])
            ax.plot([lr], [at], "o", color="C3", markersize=7, zorder=4)
        else:
            others += 1 + (others == 2)  # C2, C4, C5, ...: C3 is the default's
            ax.axvline(lr, color=f"C{others}", linestyle="--", linewidth=0.9, alpha=0.45, label=label)
    for name in missing:  # named in the legend, so no suggestion disappears without a word
        ax.plot([], [], " ", label=f"{name}: none found")


def plot_lr_trace(iters, group_lrs, moms=None, ax=None):
    """Lr per iteration for every group; with `moms`, a second panel beneath with momentum (`ax=` then takes
    two Axes). Returns the lr panel."""
    if moms is not None and ax is None:
        ax = _axes(None, 2, sharex=True, figsize=(6, 5))
    axes = _panels(ax, 2) if moms is not None else None
    lr_ax = axes[0] if axes is not None else _axes(ax)
    lr_ax.set_ylabel("learning rate")
    (axes[1] if axes is not None else lr_ax).set_xlabel("iteration")
    if len(iters) == 0:
        why = "nothing to draw: no training iterations recorded yet; fit first (learn.preview(...) shows a schedule)"
        return nothing_to_draw(axes if axes is not None else lr_ax, why)
    for g, trace in enumerate(group_lrs):
        lr_ax.plot(iters, trace, label=f"group {g}" if len(group_lrs) > 1 else "lr")
    if len(group_lrs) > 1:
        lr_ax.legend(fontsize="small")
    if axes is None:
        return lr_ax
    axes[1].set_ylabel("momentum")
    if all(m is None for m in moms):
        why = "no momentum: this optimizer has neither `momentum` nor `betas`"
        warnings.warn(why, NothingToPlotWarning, stacklevel=2)
        axes[1].text(0.5, 0.5, why, ha="center", va="center", fontsize="small", transform=axes[1].transAxes)
    else:
        axes[1].plot(iters, [math.nan if m is None else m for m in moms], color="C3")
    return lr_ax


def plot_schedule(df, show_moms: bool = True, ax=None):
    """A schedule preview (or `recorder.iter_df()`): lr per iteration, every group, momentum beneath."""
    lr_cols = [c for c in df.columns if c.startswith("lr_")] or ["lr"]
    moms = list(df["mom"]) if show_moms and "mom" in df.columns else None
    return plot_lr_trace(list(df["iter"]), [list(df[c]) for c in lr_cols], moms, ax=ax)


def smoothing_window(n: int) -> int:
    """The centered moving average's window for a run of `n` iterations: about a tenth of the run, odd
    (`2*(n//20) + 1`), so the curve smooths batch noise yet follows the loss's fall on a short run."""
    return 2 * (n // 20) + 1


def centered_mean(values, window: int) -> np.ndarray:
    """`out[i]` = mean of `values[i-h : i+h+1]`, `h = min(window//2, i, n-1-i)`: a centered moving average whose
    window shrinks symmetrically at the ends, so it neither lags nor leans on the ends of the run."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    i = np.arange(n)
    h = np.minimum(window // 2, np.minimum(i, n - 1 - i))
    cumsum = np.concatenate([[0.0], np.cumsum(x)])
    return (cumsum[i + h + 1] - cumsum[i - h]) / (2 * h + 1)


def plot_loss_trace(recorder, skip_start=0, ax=None):
    """Raw training loss per iteration, its centered moving average (`smoothing_window`), and the validation
    loss at each epoch's last iteration. Anything left out is said on the plot."""
    ax = _axes(ax)
    ax.set_ylabel("loss")
    iters, losses = list(recorder.iters), [float(v) for v in recorder.losses]
    n = len(iters)
    skip = min(skip_start, max(n - 1, 0))
    ax.set_xlabel("iteration" + (f" (first {skip} not shown)" if skip else ""))
    if n == 0:
        return nothing_to_draw(ax, "nothing to draw: no training iterations recorded yet; fit first")
    finite = np.isfinite(losses)
    raw_label = "train, raw" + ("" if finite.all() else f" ({(~finite).sum()} non-finite not drawn)")
    ax.plot(iters[skip:], losses[skip:], color="C0", alpha=0.35, linewidth=1, label=raw_label)
    window = smoothing_window(n)
    if finite.all():
        smooth = centered_mean(losses, window)
        ax.plot(iters[skip:], smooth[skip:], color="C0", linewidth=2, label=f"train, centered mean of {window}")
    ends = _epoch_end_iters(recorder)
    rows = [row for row in recorder.epochs if row["epoch"] in ends]
    shown = [(ends[row["epoch"]], row["valid_loss"]) for row in rows if math.isfinite(row["valid_loss"])]
    if shown:
        not_validated = len(rows) - len(shown)
        label = "valid, end of each epoch" + (f" ({not_validated} epochs not validated)" if not_validated else "")
        ax.plot(*zip(*shown), marker="o", color="C1", label=label)
    ax.legend(fontsize="small")
    return ax


def _epoch_end_iters(recorder) -> dict[int, int]:
    """{epoch: its last recorded iteration}."""
    ends = {}
    for it, epoch in zip(recorder.iters, recorder.iter_epochs):
        ends[epoch] = it
    return ends


def plot_epoch_metrics(epoch_df, ax=None):
    """One panel per column: train/valid loss together, then each metric, against the epoch (`ax=` takes one
    Axes per panel). Returns the loss panel."""
    metric_cols = [c for c in epoch_df.columns if c not in ("epoch", "train_loss", "valid_loss", "time")]
    n = 1 + len(metric_cols)
    flat = _panels(_axes(ax, n, sharex=True, figsize=(6, 2.5 * n), squeeze=False) if ax is None else ax, n)
    flat[0].set_ylabel("loss")
    flat[-1].set_xlabel("epoch")
    for panel, col in zip(flat[1:], metric_cols):
        panel.set_ylabel(col)
    if len(epoch_df) == 0:
        return nothing_to_draw(flat[0], "nothing to draw: no epoch has finished yet; fit first")
    flat[0].plot(epoch_df["epoch"], epoch_df["train_loss"], marker="o", label="train_loss")
    flat[0].plot(epoch_df["epoch"], epoch_df["valid_loss"], marker="o", label="valid_loss")
    flat[0].legend(fontsize="small")
    for panel, col in zip(flat[1:], metric_cols):
        panel.plot(epoch_df["epoch"], epoch_df[col], marker="o")
    return flat[0]
