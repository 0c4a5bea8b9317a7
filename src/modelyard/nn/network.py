"""``Network``: the torch module a spec's ``model:`` section builds.

It carries what a trainer and a predictor need beside the weights: the input shape and
dtype, the output shape, and which activation turns outputs into probabilities when
the final softmax/sigmoid was folded into the loss for numerical stability.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch
from torch import nn

from modelyard.nn.activations import SOFTMAX_DIM
from modelyard.nn.masking import padding_mask

if TYPE_CHECKING:
    from modelyard.spec import ModelSpec

__all__ = ["Network", "LayerRecord", "OutputActivation"]

OutputActivation = Literal["softmax", "sigmoid"]


@dataclass(frozen=True)
class LayerRecord:
    """One spec layer as built: where it came from and the shape it produces (no batch axis)."""

    index: int
    name: str
    type: str
    field: str
    output_shape: tuple[int, ...]


class Network(nn.Module):
    """The spec's layers in order (``self.layers``, one module per spec layer).

    ``forward`` returns logits when ``output_activation`` is set (the loss applies it);
    ``probabilities`` / ``predict`` apply it. With a ``pad_id`` (token ids padded with it),
    ``forward`` computes the padding mask once and passes it to the layers ``takes_mask``
    names (``modelyard.nn.masking``); otherwise it is ``self.layers(x)``.
    """

    def __init__(
        self,
        layers: list[nn.Module],
        records: list[LayerRecord],
        *,
        input_shape: tuple[int, ...],
        input_dtype: torch.dtype,
        output_activation: OutputActivation | None,
        spec: ModelSpec | None = None,
        pad_id: int | None = None,
        takes_mask: tuple[bool, ...] = (),
        any_length: bool = False,
    ) -> None:
        super().__init__()
        if len(layers) != len(records) or not layers:
            raise ValueError("a Network needs one record per layer and at least one layer")
        self.layers = nn.Sequential(*layers)
        self.records: tuple[LayerRecord, ...] = tuple(records)
        self.input_shape = tuple(input_shape)
        self.output_shape = tuple(records[-1].output_shape)
        self.input_dtype = input_dtype
        self.output_activation = output_activation
        self.spec = spec
        self.pad_id = pad_id
        self.takes_mask = tuple(takes_mask) if pad_id is not None and any(takes_mask) else ()
        if self.takes_mask and len(self.takes_mask) != len(layers):
            raise ValueError("takes_mask needs one flag per layer")
        #: True when inputs may be shorter than ``input_shape`` (cut to the longest real sequence
        #: of a batch): the padding mask is used up by pooling (``modelyard.nn.masking.any_length``).
        self.any_length = bool(any_length) and pad_id is not None

    @property
    def plain_chain(self) -> bool:
        """True when ``forward`` is exactly ``self.layers(x)``: the training fast paths that call
        the layers themselves need it (a masked network passes the mask between them)."""
        return not self.takes_mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, *input_shape]`` → ``[N, *output_shape]`` (logits if an activation was folded)."""
        if not self.takes_mask:
            return self.layers(x)
        return self._run(x, len(self.layers))

    def _run(self, x: torch.Tensor, count: int) -> torch.Tensor:
        """The first ``count`` layers, the padding mask passed as ``takes_mask`` says."""
        mask = padding_mask(x, self.pad_id) if self.takes_mask else None  # type: ignore[arg-type]
        for layer, masked in zip(list(self.layers)[:count], self.takes_mask or (False,) * count):
            x = layer(x, mask) if masked else layer(x)
        return x

    @property
    def pooling_index(self) -> int | None:
        """The layer that pools the tokens into one vector per sample (the last one that uses the
        padding mask up), whose output is the sequence's embedding; None without one."""
        if not self.takes_mask:  # also keeps torch.jit's hasattr scan off a static int8 GraphModule
            return None
        found = [i for i, (layer, masked) in enumerate(zip(self.layers, self.takes_mask)) if masked]
        found = [i for i in found if not getattr(self.layers[i], "keeps_tokens", True)]
        return found[-1] if found else None

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, T]`` token ids → ``[N, D]``: the pooled output (``pooling_index``), before the head."""
        index = self.pooling_index
        if index is None:
            raise ValueError("this network has no pooling layer over padded tokens")
        return self._run(x, index + 1)

    def probabilities(self, outputs: torch.Tensor) -> torch.Tensor:
        """Apply the folded output activation to ``forward``'s outputs (identity if none)."""
        if self.output_activation == "softmax":
            return torch.softmax(outputs, dim=SOFTMAX_DIM)
        if self.output_activation == "sigmoid":
            return torch.sigmoid(outputs)
        return outputs

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """``probabilities(forward(x))`` without gradients and in eval mode (dropout off,
        batchnorm running statistics); the previous train/eval mode is restored."""
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                return self.probabilities(self(x))
        finally:
            self.train(was_training)
