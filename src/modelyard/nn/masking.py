"""How the padding mask travels through a network of sequence layers.

A network that starts with ``{embedding: ..., pad: ID}`` takes token ids ``[N, T]`` right-padded
with ``ID`` (what a tokenizer's padding writes). ``Network.forward`` computes the mask once,
``ids != ID`` (``[N, T]`` bool, True at real tokens), and hands it to every ``MaskedLayer``
that still sees those T tokens, so attention, pooling and recurrent layers ignore the pads.

The mask stays live through layers that keep the token axis and act on each position alone
(dense, dropout, layernorm, element-wise activations, position embeddings) and through sequence layers that return
a sequence; a pooling layer or a recurrent layer returning its last state consumes it; any other
layer (flatten, reshape, conv, softmax over the token axis) ends it, and later layers see every
position as a token. The builder works this out once (``mask_plan``), so forward does no checks.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import nn

__all__ = [
    "MaskedLayer",
    "POSITIONWISE",
    "positionwise",
    "pad_id_of",
    "mask_plan",
    "any_length",
    "cut_padding",
    "padding_mask",
]


class MaskedLayer(nn.Module):
    """A layer called as ``layer(x, mask)``: ``x`` is ``[N, T, ...]``, ``mask`` is ``[N, T]``
    bool (True at real tokens) or None when every position is a token.

    ``keeps_tokens`` says whether the output still has the T tokens the mask describes."""

    keeps_tokens: bool = True


# Modules that compute each position from that position alone (softmax is not one: on a
# [N, T, D] batch it normalises over T, the axis the mask describes).
POSITIONWISE: tuple[type[nn.Module], ...] = (
    nn.Linear,
    nn.Dropout,
    nn.LayerNorm,
    nn.Identity,
    nn.ReLU,
    nn.LeakyReLU,
    nn.GELU,
    nn.Tanh,
    nn.Sigmoid,
    nn.ELU,
    nn.SELU,
    nn.SiLU,
    nn.Softplus,
)


def positionwise(module: nn.Module) -> bool:
    """True when every leaf of ``module`` acts on each token position on its own: one of
    ``POSITIONWISE``, or a module that says so (``positionwise = True``, position embeddings)."""
    leaves = (m for m in module.modules() if not list(m.children()))
    return all(isinstance(m, POSITIONWISE) or getattr(m, "positionwise", False) for m in leaves)


def pad_id_of(module: nn.Module) -> int | None:
    """The pad id a first layer declares (``nn.Embedding``'s ``padding_idx``), or None."""
    if isinstance(module, nn.Embedding):
        return module.padding_idx
    return getattr(module, "pad_id", None)


def _walk(modules: Sequence[nn.Module], pad_id: int | None) -> Iterator[tuple[bool, bool]]:
    """For each module: (whether it receives the mask, whether the mask is live after it)."""
    live = pad_id is not None
    yield False, live  # the first layer reads the ids themselves
    for module in modules[1:]:
        if isinstance(module, MaskedLayer):
            got, live = live, live and module.keeps_tokens
            yield got, live
        else:
            live = live and positionwise(module)
            yield False, live


def mask_plan(modules: Sequence[nn.Module], pad_id: int | None) -> tuple[bool, ...]:
    """Which of ``modules`` receive the padding mask (see the module docstring)."""
    return tuple(got for got, _ in _walk(modules, pad_id))


def any_length(modules: Sequence[nn.Module], pad_id: int | None) -> bool:
    """True when a batch may be cut to its longest real sequence: a pooling or last-state layer
    uses the mask up while it is live, so no layer before it depends on the number of positions
    and the output has none (training cuts its batches so, ``training.batches``)."""
    return any(got and not module.keeps_tokens for module, (got, _) in zip(modules, _walk(modules, pad_id)))


def cut_padding(ids: torch.Tensor, pad_id: int) -> torch.Tensor:
    """``ids[:, :L]``, L one past the last position where any row has a real token (right padding:
    what a tokenizer writes); a network that takes any length gives the same outputs on it."""
    if ids.ndim != 2 or ids.shape[1] == 0:
        return ids
    real = (ids != pad_id).any(dim=0)
    longest = int(real.nonzero().max()) + 1 if bool(real.any()) else 1
    return ids[:, :longest] if longest < ids.shape[1] else ids


def padding_mask(ids: torch.Tensor, pad_id: int) -> torch.Tensor:
    """``[N, T]`` token ids → ``[N, T]`` bool, True at real tokens."""
    return ids != pad_id
