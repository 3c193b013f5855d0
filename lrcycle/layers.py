"""Layer groups: splitting a model into groups and freezing the early ones (lrs are spread in `checks.spread`)."""

from __future__ import annotations

import pandas as pd
from torch import nn

_BN_TYPES = (nn.modules.batchnorm._BatchNorm,)


def single_group(model: nn.Module) -> list[list[nn.Parameter]]:
    """The default splitter: the whole model is one layer group."""
    return [list(model.parameters())]


def sequential_splitter(n_groups: int):
    """A splitter for an `nn.Sequential`: its children cut into `n_groups` consecutive, near-equal runs."""
    if n_groups < 1:
        raise ValueError(f"n_groups: must be >= 1, got {n_groups}")

    def split(model: nn.Sequential) -> list[list[nn.Parameter]]:
        children = list(model.children())
        if len(children) < n_groups:
            raise ValueError(f"sequential_splitter: {n_groups} groups asked of {len(children)} children")
        bounds = [round(i * len(children) / n_groups) for i in range(n_groups + 1)]
        runs = zip(bounds, bounds[1:], strict=False)
        return [[p for child in children[a:b] for p in child.parameters()] for a, b in runs]

    return split


def sequential_head_splitter(n_groups: int = 3):
    """A splitter for an `nn.Sequential` whose last child is the head: the head alone in the last group, the
    other children cut into `n_groups - 1` near-equal runs, so `freeze()` trains exactly the head."""
    if isinstance(n_groups, bool) or not isinstance(n_groups, int) or n_groups < 2:
        raise ValueError(f"n_groups: must be an integer >= 2 (a body group and the head), got {n_groups!r}")
    body_splitter = sequential_splitter(n_groups - 1)

    def split(model: nn.Sequential) -> list[list[nn.Parameter]]:
        children = list(model.children())
        if len(children) < n_groups:
            raise ValueError(f"sequential_head_splitter: {n_groups} groups asked of {len(children)} children")
        return body_splitter(nn.Sequential(*children[:-1])) + [list(children[-1].parameters())]

    return split


_RESNET_PARTS = ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc")


def resnet_splitter(model: nn.Module) -> list[list[nn.Parameter]]:
    """Three groups for a torchvision ResNet: stem (conv1, bn1) + layer1 + layer2 / layer3 + layer4 / fc.

    Early layers learn generic edges and textures that transfer as they are; later ones are more specific
    to the pretraining task, and the head is new, so each group wants its own learning rate.
    """
    missing = [name for name in _RESNET_PARTS if not hasattr(model, name)]
    if missing:
        raise TypeError(f"resnet_splitter: expected a torchvision ResNet; {type(model).__name__} lacks {missing}")
    parts = lambda *names: [p for name in names for p in getattr(model, name).parameters()]
    return [parts("conv1", "bn1", "layer1", "layer2"), parts("layer3", "layer4"), parts("fc")]


def check_groups(groups, model: nn.Module) -> list[list[nn.Parameter]]:
    """Each parameter of the model in exactly one group, and no group empty."""
    groups = [list(g) for g in groups]
    if not groups or any(len(g) == 0 for g in groups):
        raise ValueError("splitter: returned an empty layer group; every group needs parameters")
    seen = [id(p) for g in groups for p in g]
    if len(seen) != len(set(seen)):
        raise ValueError("splitter: a parameter appears in more than one layer group")
    missing = {id(p) for p in model.parameters()} - set(seen)
    if missing:
        raise ValueError(f"splitter: {len(missing)} model parameters are in no layer group")
    return groups


def bn_param_ids(model: nn.Module) -> set[int]:
    return {id(p) for m in model.modules() if isinstance(m, _BN_TYPES) for p in m.parameters(recurse=False)}


def freeze_groups(groups, n: int, train_bn: bool, bn_ids: set[int]) -> None:
    """Groups before `n` stop requiring grad (BatchNorm parameters stay trainable when `train_bn`).

    Frozen parameters lose any leftover grad, so no optimizer steps, decays or updates their state. BatchNorm
    running statistics are buffers, not parameters: in train mode they keep updating in frozen groups too,
    as in fastai (put those layers in eval mode yourself to fix them).
    """
    n_groups = len(groups)
    if n_groups == 1 and n != 0:
        raise ValueError(
            "freeze_to: this model has a single layer group, so there is nothing to freeze apart from "
            "everything; pass a splitter to Learner(splitter=...) to split it into groups"
        )
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"freeze_to: n must be an integer layer-group index, got {n!r}")
    if not -n_groups <= n <= n_groups:
        raise ValueError(f"freeze_to: n must be in [{-n_groups}, {n_groups}] for {n_groups} layer groups, got {n}")
    n = n % n_groups if n < 0 else n
    for g, params in enumerate(groups):
        frozen = g < n
        for p in params:
            trainable = not frozen or (train_bn and id(p) in bn_ids)
            p.requires_grad_(trainable)
            if not trainable:
                p.grad = None  # optimizers skip params without a grad: no step, no weight decay, state kept


def top_level_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """`(name, module)` for each child of the model, or the model itself when it has none."""
    children = list(model.named_children())
    return children or [(type(model).__name__, model)]


def blocks_table(blocks, shapes, groups) -> pd.DataFrame:
    """One row per block: its output shape, parameters (those not counted in an earlier block), whether they
    train ('trainable', 'frozen', 'partly': some frozen, or '-' without any) and their layer groups."""
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
