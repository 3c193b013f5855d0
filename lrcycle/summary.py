"""`learn.summary()`'s table: per top-level block of the model, its output shape on one batch, its parameters,
whether they train, and their layer groups, then the totals."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

if TYPE_CHECKING:  # pandas is loaded where a table is made, not at `import lrcycle`
    import pandas as pd


def top_level_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """`(name, module)` for each child of the model, or the model itself when it has none."""
    children = list(model.named_children())
    return children or [(type(model).__name__, model)]


def blocks_table(blocks, shapes, groups) -> pd.DataFrame:
    """One row per block: its output shape, parameters (those not counted in an earlier block), whether they
    train ('trainable', 'frozen', 'partly': some frozen, or '-' without any) and their layer groups."""
    import pandas as pd  # where a table is made, not at `import lrcycle`

    group_of = {id(p): g for g, params in enumerate(groups) for p in params}
    seen, rows = set(), []
    for (name, block), shape in zip(blocks, shapes, strict=True):
        params = [p for p in block.parameters() if id(p) not in seen]
        seen.update(id(p) for p in params)
        trains = {p.requires_grad for p in params}
        state = "-" if not trains else "partly" if len(trains) == 2 else "trainable" if True in trains else "frozen"
        in_groups = sorted({group_of[id(p)] for p in params if id(p) in group_of})
        rows.append([name, type(block).__name__, "-" if shape is None else str(list(shape)),
                     sum(p.numel() for p in params), state, ",".join(map(str, in_groups)) or "-"])  # fmt: skip
    return pd.DataFrame(rows, columns=["block", "type", "output_shape", "params", "trains", "group"])


class Summary(str):
    """`learn.summary()`'s text, printed as it is in a notebook too; `.table` holds the rows as a DataFrame."""

    def __new__(cls, text: str, table: pd.DataFrame):
        summary = super().__new__(cls, text)
        summary.table = table
        return summary

    def __repr__(self) -> str:
        return str(self)


def summary_text(title: str, table: pd.DataFrame, model: nn.Module, n_groups: int) -> Summary:
    """`title`, the table, then the totals: parameters, trainable ones, frozen ones, layer groups."""
    params = list(model.parameters())
    total, trainable = sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)
    lines = [title, table.to_string(index=False), ""]
    lines.append(f"Total params: {total:,}   trainable: {trainable:,}   frozen: {total - trainable:,}")
    lines.append(f"Layer groups: {n_groups}")
    return Summary("\n".join(lines), table)
