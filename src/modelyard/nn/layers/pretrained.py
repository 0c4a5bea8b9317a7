"""``pretrained``: a BERT-style encoder whose architecture and weights come from a base in the
Hugging Face layout (``modelyard.nn.pretrained``): token ids ``[T]`` → token vectors ``[T, D]``.

It is built from the same parts a spec would write by hand (``embedding`` with its pad id,
a learned ``position_embedding``, ``layernorm``, ``transformer`` with ``norm: post``), so a
base's tensors map one to one onto it; the token-type vector of single-sentence input (row 0) is
folded into the position table. ``freeze`` stops gradients per layer group (``embeddings``,
``blocks[i]``, ``blocks[a:b]``, ``all``, ``none``); a frozen group runs without dropout, as a fixed
feature extractor, so an encoder frozen whole gives the same vectors in training as in prediction.
``lora`` freezes the whole base and adds peft's LoRA adapters to chosen projections
(``modelyard.nn.pretrained.lora``); the base keeps its dropout, since training runs through it.

The architecture is read from the base's config.json, or from ``base`` (its identity, which
training pins into the spec: ``modelyard.nn.pretrained.pinning``), so a registered version
rebuilds with no base at hand; the weights are loaded by the training path, not by the build.
"""

from __future__ import annotations

import re
from typing import Any

import torch
from pydantic import Field, field_validator
from torch import nn

from modelyard._validation import StrictModel
from modelyard.errors import ShapeError, SpecError
from modelyard.nn.layers._common import LAYERS, Shape, fmt_shape, require_rank
from modelyard.nn.layers.positions import PositionEmbedding
from modelyard.nn.layers.transformer import TransformerEncoder, TransformerOptions
from modelyard.nn.pretrained.folder import BaseIdentity, EncoderConfig, find_folder, read_config
from modelyard.nn.pretrained.lora import LoraOptions, add_lora

__all__ = ["PretrainedOptions", "PretrainedEncoder", "frozen_groups"]

_GROUP = re.compile(r"^(all|none|embeddings|blocks(?:\[(\d+)\]|\[(\d*):(\d*)\])?)$")


class PretrainedOptions(StrictModel):
    source: str = Field(min_length=1, description="a Hugging Face folder, or an installed package that ships one")
    freeze: list[str] = ["none"]
    dropout: float | None = Field(None, ge=0.0, lt=1.0)  # None: the base's own (config.json)
    base: BaseIdentity | None = None  # pinned at training: name, sha256 of the weights, config
    gradient_checkpointing: bool = False  # recompute each block in the backward pass (layers/transformer.py)
    lora: LoraOptions | None = None  # LoRA adapters (peft): the base frozen whole, only the adapters train

    @field_validator("freeze", mode="before")
    @classmethod
    def _groups(cls, value: Any) -> Any:
        groups = [value] if isinstance(value, str) else value
        if isinstance(value, bool):
            groups = ["all" if value else "none"]
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise ValueError(f"expected a layer group or a list of them, received {value!r}")
        for group in groups:
            if not _GROUP.match(group.strip()):
                raise ValueError(
                    f"expected all, none, embeddings, blocks, blocks[i] or blocks[a:b], received {group!r}"
                )
        return [g.strip() for g in groups]


def frozen_groups(groups: list[str], blocks: int, field: str) -> tuple[bool, set[int]]:
    """(whether the embeddings are frozen, the indices of the frozen blocks) for ``freeze``."""
    embeddings, frozen = False, set()
    for group in groups:
        match = _GROUP.match(group)
        assert match is not None  # checked by PretrainedOptions
        if group == "all":
            embeddings, frozen = True, set(range(blocks))
        elif group == "embeddings":
            embeddings = True
        elif group == "blocks":
            frozen |= set(range(blocks))
        elif match.group(2) is not None:
            index = int(match.group(2))
            if index >= blocks:
                raise SpecError(
                    f"Invalid value for `{field}.freeze`: expected block indices below {blocks} (the base has "
                    f"{blocks} blocks), received {group!r}",
                    field=f"{field}.freeze",
                )
            frozen.add(index)
        elif group.startswith("blocks["):
            start, stop = match.group(3), match.group(4)
            frozen |= set(range(blocks)[slice(int(start) if start else None, int(stop) if stop else None)])
    return embeddings, frozen


class PretrainedEncoder(nn.Module):
    """``[N, T]`` token ids → ``[N, T, D]``; computes its own padding mask (``ids != pad_id``)."""

    def __init__(
        self,
        config: EncoderConfig,
        *,
        dropout: float | None,
        frozen_embeddings: bool,
        frozen_blocks: set[int],
        gradient_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        dim = config.hidden_size
        hidden_p = config.hidden_dropout_prob if dropout is None else dropout
        attention_p = config.attention_probs_dropout_prob if dropout is None else dropout
        self.pad_id = config.pad_token_id
        self.embedding = nn.Embedding(config.vocab_size, dim, padding_idx=config.pad_token_id)
        self.positions = PositionEmbedding("learned", config.max_position_embeddings, dim)
        self.norm = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(0.0 if frozen_embeddings else hidden_p)
        opts = TransformerOptions(
            blocks=config.num_hidden_layers,
            heads=config.num_attention_heads,
            mlp=config.intermediate_size,
            dropout=hidden_p,
            attention_dropout=attention_p,
            norm="post",
            activation=config.hidden_act,
            eps=config.layer_norm_eps,
            gradient_checkpointing=gradient_checkpointing,
        )
        # BERT's blocks drop out after the MLP's output only, not its GELU activations (Hugging Face's
        # BertIntermediate has no dropout): the pretrained recipe, and 6 fewer [N, T, 1536] masks per step.
        self.encoder = TransformerEncoder(dim, opts, activation_dropout=False)
        if frozen_embeddings:
            for part in (self.embedding, self.positions, self.norm):
                part.requires_grad_(False)
        for index in frozen_blocks:
            block = self.encoder.blocks[index]
            block.requires_grad_(False)
            block.dropout.p, block.attention.dropout = 0.0, 0.0

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = ids != self.pad_id
        x = self.dropout(self.norm(self.positions(self.embedding(ids))))
        return self.encoder(x, mask)


@LAYERS.component(
    "pretrained", "pretrained_encoder", "pretrained_transformer", options=PretrainedOptions, primary="source"
)
def pretrained(opts: PretrainedOptions, in_shape: Shape, field: str) -> tuple[nn.Module, Shape]:
    """A pretrained BERT-style encoder from a Hugging Face folder or package: ``[T]`` ids → ``[T, D]``."""
    require_rank(in_shape, (1,), field, "pretrained", "token ids [T]", "make it the first layer")
    config = (
        opts.base.config
        if opts.base is not None
        else read_config(find_folder(opts.source, f"{field}.source"), f"{field}.source")
    )
    if in_shape[0] > config.max_position_embeddings:
        raise ShapeError(
            f"Invalid input for `{field}` (pretrained): expected at most {config.max_position_embeddings} tokens "
            f"(the base's max_position_embeddings), received shape {fmt_shape(in_shape)}; lower the tokenize "
            f"step's max_length and model.input",
            field=field,
        )
    if opts.lora is not None and opts.freeze not in (["none"], ["all"]):
        raise SpecError(
            f"Invalid value for `{field}.freeze`: with `lora` the whole base is frozen and only the adapters "
            f"train; leave freeze out, received {opts.freeze!r}",
            field=f"{field}.freeze",
        )
    embeddings, blocks = (
        (False, set()) if opts.lora is not None else frozen_groups(opts.freeze, config.num_hidden_layers, field)
    )
    module = PretrainedEncoder(
        config,
        dropout=opts.dropout,
        frozen_embeddings=embeddings,
        frozen_blocks=blocks,
        gradient_checkpointing=opts.gradient_checkpointing,
    )
    if opts.lora is not None:  # the base keeps its dropout: it is trained through, not a fixed extractor
        add_lora(module, opts.lora, field)
    return module, (in_shape[0], config.hidden_size)
