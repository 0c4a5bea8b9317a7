"""``train.layer_lr_decay``: layer-wise learning rates for transformer encoders (ELECTRA, BEiT).

The head keeps ``train.lr``; each encoder block below it takes ``decay`` times the rate of the
block above, and the embeddings (everything before the first block) one factor more, as BEiT's
``layer_decay``: with L blocks, the parameters at level ``l`` (0 the embeddings, ``i + 1`` block
``i``, L + 1 the head) train at ``lr · decay^(L + 1 − l)``. The blocks are every ``EncoderBlock``
of the network (a ``transformer`` layer's, a ``pretrained`` encoder's), counted in forward order;
a parameter between two blocks takes the level of the block before it. Frozen parameters get no
group. The groups are ordered head first, so ``param_groups[0]`` (the lr the history logs) is
``train.lr``; a schedule multiplies every group's rate by the same factor.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from modelyard.errors import SpecError
from modelyard.nn.layers.transformer import EncoderBlock

__all__ = ["levels", "layer_groups"]

FIELD = "train.layer_lr_decay"


def levels(network: nn.Module) -> tuple[int, dict[int, int]]:
    """(the number of encoder blocks L, ``id(parameter)`` → level in 0..L+1) for every parameter."""
    blocks = [m for m in network.modules() if isinstance(m, EncoderBlock)]
    owner = {id(p): i for i, block in enumerate(blocks) for p in block.parameters()}
    count, last, out = len(blocks), None, {}
    for p in network.parameters():
        if id(p) in owner:
            last = owner[id(p)]
            out[id(p)] = last + 1
        elif last is None:
            out[id(p)] = 0  # embeddings: before the first block
        else:
            out[id(p)] = last + 1 if last < count - 1 else count + 1  # between blocks, or the head
    return count, out


def layer_groups(network: nn.Module, *, lr: float, decay: float) -> list[dict[str, Any]]:
    """The trainable parameters in one optimizer group per level, each with its own ``lr``."""
    count, level = levels(network)
    if count == 0:
        raise SpecError(
            f"Invalid value for `{FIELD}`: expected a network with transformer encoder blocks (a `transformer` or "
            f"`pretrained` layer) to decay the learning rate over, received {decay} for a network with none",
            field=FIELD,
        )
    by_level: dict[int, list[nn.Parameter]] = {}
    for p in network.parameters():
        if p.requires_grad:
            by_level.setdefault(level[id(p)], []).append(p)
    return [
        {"params": by_level[lv], "lr": lr * decay ** (count + 1 - lv), "level": lv}
        for lv in sorted(by_level, reverse=True)
    ]
