"""Recurrent layers (``nn.LSTM``, ``nn.GRU``) over sequences: ``[T, F]`` → ``[units·dirs]``
(``output: last``) or ``[T, units·dirs]`` (``output: sequence``).

``F`` is an embedding's vectors or audio frames' features. ``bidirectional`` runs a second
pass from the end and concatenates both (dirs = 2); ``last`` is then the forward pass's final
state beside the backward pass's (which ends at the first token), like Keras's
``Bidirectional(LSTM(...))``. With a padding mask the batch is packed
(``pack_padded_sequence``) to each sequence's length, so the forward pass's last state is the
one at its last real token and the backward pass starts there; padded steps of a returned
sequence are zeros. The length is the count of real tokens: pads go at the end.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, model_validator
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from modelyard._validation import StrictModel
from modelyard.nn.layers._common import LAYERS, PositiveInt, Shape, require_rank
from modelyard.nn.masking import MaskedLayer

__all__ = ["RecurrentOptions", "Recurrent"]


class RecurrentOptions(StrictModel):
    units: PositiveInt
    layers: PositiveInt = 1
    bidirectional: bool = False
    output: Literal["last", "sequence"] = "last"
    dropout: float = Field(0.0, ge=0.0, lt=1.0)  # between stacked layers, as torch's
    bias: bool = True

    @model_validator(mode="after")
    def _dropout_needs_layers(self) -> RecurrentOptions:
        # torch applies it after every layer but the last: with one layer it would do nothing.
        if self.dropout and self.layers == 1:
            raise ValueError(
                f"expected layers >= 2 for dropout (applied between stacked layers), received layers 1 "
                f"with dropout {self.dropout}; add a dropout layer after this one instead"
            )
        return self


class Recurrent(MaskedLayer):
    """An ``nn.LSTM`` or ``nn.GRU`` (``batch_first``) returning its last state or its sequence."""

    # Packed sequences have no ONNX form (both torch exporters fail on them); the export
    # refuses such a network up front and serving keeps the torch backend.
    onnx_with_mask = False

    def __init__(self, cell: type[nn.LSTM] | type[nn.GRU], features: int, opts: RecurrentOptions) -> None:
        super().__init__()
        self.rnn = cell(
            features,
            opts.units,
            num_layers=opts.layers,
            bias=opts.bias,
            batch_first=True,
            dropout=opts.dropout,
            bidirectional=opts.bidirectional,
        )
        self.output = opts.output
        self.keeps_tokens = opts.output == "sequence"

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        n, t = x.shape[:2]
        if mask is None:
            out, state = self.rnn(x)
        else:
            # Lengths live on the CPU (pack_padded_sequence's rule); a sequence of pads alone
            # runs one step so that it has a state.
            lengths = mask.sum(dim=1).clamp_min(1).cpu()
            packed, state = self.rnn(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
            out = pad_packed_sequence(packed, batch_first=True, total_length=t)[0] if self.keeps_tokens else None
        if self.keeps_tokens:
            return out
        hidden = state[0] if isinstance(state, tuple) else state  # LSTM: (h, c); [layers·dirs, N, units]
        dirs = 2 if self.rnn.bidirectional else 1
        return hidden[-dirs:].transpose(0, 1).reshape(n, dirs * self.rnn.hidden_size)

    def extra_repr(self) -> str:
        return f"output={self.output}"


def _recurrent(
    cell: type[nn.LSTM] | type[nn.GRU], opts: RecurrentOptions, in_shape: Shape, field: str, name: str
) -> tuple[nn.Module, Shape]:
    require_rank(
        in_shape,
        (2,),
        field,
        name,
        "a sequence [T, features] input",
        "feed it audio frames [T, features], an embedding, or a recurrent layer with output: sequence",
    )
    width = opts.units * (2 if opts.bidirectional else 1)
    out_shape = (in_shape[0], width) if opts.output == "sequence" else (width,)
    return Recurrent(cell, in_shape[1], opts), out_shape


@LAYERS.component("lstm", options=RecurrentOptions, primary="units")
def lstm(opts: RecurrentOptions, in_shape: Shape, field: str) -> tuple[nn.Module, Shape]:
    """Long short-term memory over a sequence: ``[T, F]`` → last state ``[units·dirs]`` or ``[T, units·dirs]``."""
    return _recurrent(nn.LSTM, opts, in_shape, field, "lstm")


@LAYERS.component("gru", options=RecurrentOptions, primary="units")
def gru(opts: RecurrentOptions, in_shape: Shape, field: str) -> tuple[nn.Module, Shape]:
    """Gated recurrent unit over a sequence: ``[T, F]`` → last state ``[units·dirs]`` or ``[T, units·dirs]``."""
    return _recurrent(nn.GRU, opts, in_shape, field, "gru")
