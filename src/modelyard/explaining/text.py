"""Token attributions for text models: integrated gradients on the token embedding layer.

Token ids are integers, so there is no gradient with respect to them; what is integrated
instead is the path between two sequences of token *vectors*: the output of the model's
token embedding layer (the first ``embedding`` layer of a scratch model, the word
embeddings of a ``pretrained`` encoder) for the baseline and for the input. Captum's
``LayerIntegratedGradients`` does exactly this; each token's attribution is the sum of its
embedding dimensions' attributions.

The baseline is the input with **every token replaced by the pad token** ([PAD], special
tokens included), run under the *input's* padding mask: the path changes what the tokens
are, never which positions count (the mask is computed from the real ids throughout, as
when Captum integrates). f(baseline) is therefore the model's output on pad-token vectors at
the input's positions, and completeness reads ``sum(attributions) = f(x) - f(baseline)``
up to the reported convergence delta. (Captum's own delta would re-run the model on the
pad ids, whose mask hides every position; this one uses the same mask as the integral.)

Tokens come back as the tokenizer's pieces with character offsets into the input text
(``start``, ``end``; null for special tokens such as [CLS]), so a caller can highlight the
original string.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from modelyard.errors import InvalidInstancesError, SpecError
from modelyard.explaining.problem import resolve_targets
from modelyard.nn.masking import cut_padding
from modelyard.predict import Predictor

__all__ = ["TextAttribution", "encode_texts", "token_embedding", "text_integrated_gradients"]

_ROWS_PER_PASS = 256  # interpolated sequences per forward pass (each one is T x D vectors)


@dataclass
class TextAttribution:
    texts: np.ndarray  # (N,) object: the input strings
    ids: torch.Tensor  # (N, T) token ids, cut to the longest sequence where the network allows
    values: np.ndarray  # (N, T) float64 per-token attributions (0 at padding)
    tokens: list[list[dict[str, Any]]]  # per instance, the non-pad tokens in order, each with its attribution
    outputs: np.ndarray  # (N, K) model outputs
    targets: np.ndarray  # (N,) explained output index
    baseline_outputs: np.ndarray  # (N,) f(baseline) of the target
    convergence_delta: np.ndarray  # (N,) sum(values) - (f(x) - f(baseline))


def token_embedding(predictor: Predictor) -> nn.Embedding:
    """The layer whose output is the token vectors: a scratch model's first layer, or a
    pretrained encoder's word embeddings."""
    first = predictor.network.layers[0]
    found = first if isinstance(first, nn.Embedding) else getattr(first, "embedding", None)
    if not isinstance(found, nn.Embedding):
        raise SpecError(
            f"Invalid value for `method`: integrated gradients on text integrates over the token embedding layer, "
            f"and model {predictor.ref} starts with {type(first).__name__}, not an embedding or pretrained layer",
            field="method",
        )
    return found


def _tokenize_step(predictor: Predictor) -> Any:
    step = predictor.pipeline.steps[0]
    if getattr(step, "tokenizer", None) is None:
        raise SpecError(f"Model {predictor.ref} has no tokenize step to explain text with", field="method")
    return step


def _texts(inputs: Any) -> np.ndarray:
    if isinstance(inputs, str):
        inputs = [inputs]
    if isinstance(inputs, np.ndarray) and inputs.ndim == 1 and inputs.dtype.kind in "OU":
        inputs = inputs.tolist()
    if not isinstance(inputs, (list, tuple)) or not inputs:
        raise InvalidInstancesError(
            "Invalid value for `instances`: expected a non-empty list of strings (text instances), "
            f"received {type(inputs).__name__ if inputs is not None else 'nothing'}",
            field="instances",
        )
    for i, text in enumerate(inputs):
        if not isinstance(text, str):
            raise InvalidInstancesError(
                f"Invalid value for `instances[{i}]`: expected a string, received {type(text).__name__}",
                field=f"instances[{i}]",
            )
    out = np.empty(len(inputs), dtype=object)
    out[:] = list(inputs)
    return out


def encode_texts(predictor: Predictor, inputs: Any) -> tuple[np.ndarray, torch.Tensor, list[list[dict[str, Any]]]]:
    """(texts, ids ``[N, max_length]``, tokens) of raw text instances, or a one-line error for
    an empty text or one with more tokens than the model reads (predict would truncate it,
    and the explanation would silently cover only its start)."""
    texts = _texts(inputs)
    step = _tokenize_step(predictor)
    limit = step.opts.max_length
    tokens: list[list[dict[str, Any]]] = []
    for i, (text, encoding) in enumerate(zip(texts, step.tokenizer.encode_batch(list(texts)))):
        where = f"instances[{i}]"
        if encoding.overflowing:
            raise InvalidInstancesError(
                f"Invalid value for `{where}`: expected at most {limit} tokens (the model's max_length, special "
                f"tokens included), received a text of {len(text)} characters that tokenizes to more; shorten it",
                field=where,
            )
        pieces = [
            {
                "token": token,
                "id": int(token_id),
                "start": None if special else int(start),
                "end": None if special else int(end),
                "special": bool(special),
            }
            for token, token_id, (start, end), special, real in zip(
                encoding.tokens,
                encoding.ids,
                encoding.offsets,
                encoding.special_tokens_mask,
                encoding.attention_mask,
            )
            if real
        ]
        if not any(not piece["special"] for piece in pieces):
            raise InvalidInstancesError(
                f"Invalid value for `{where}`: expected text with at least one token, received "
                f"{'an empty string' if not text else 'only whitespace or characters the tokenizer drops'}",
                field=where,
            )
        tokens.append(pieces)
    ids = predictor.preprocess(texts)
    return texts, ids, tokens


def text_integrated_gradients(
    predictor: Predictor,
    inputs: Any,
    target: int | str | None,
    *,
    steps: int,
    network: nn.Module | None = None,
    check_deadline: Any = None,
) -> TextAttribution:
    """Layer integrated gradients of raw text ``inputs`` for ``target`` (default: the predicted class).

    ``network`` (default the predictor's) is what is differentiated: an int8 version passes
    its dequantized float twin. ``check_deadline`` is called before every forward pass.
    """
    from captum.attr import LayerIntegratedGradients

    texts, ids, tokens = encode_texts(predictor, inputs)
    net = predictor.network if network is None else network
    pad = int(_tokenize_step(predictor).pad_id)
    if getattr(net, "any_length", False):  # columns of pads change nothing: integrate over the real length
        ids = cut_padding(ids, pad)
    layer = token_embedding(predictor) if network is None else _first_embedding(net)

    def forward(z: torch.Tensor) -> torch.Tensor:
        if check_deadline is not None:
            check_deadline()
        return net.probabilities(net(z)).reshape(len(z), -1)

    with torch.inference_mode():
        outputs = forward(ids).double().cpu().numpy()
    targets = resolve_targets(target, outputs, predictor)
    baseline = torch.full_like(ids, pad)
    target_t = torch.as_tensor(targets)
    method = LayerIntegratedGradients(forward, layer)
    with torch.enable_grad():
        attr = method.attribute(
            ids,
            baselines=baseline,
            target=target_t,
            n_steps=steps,
            method="gausslegendre",
            internal_batch_size=max(_ROWS_PER_PASS, 2 * len(ids)),
        )
    values = attr.detach().sum(dim=-1).double().cpu().numpy()  # (N, T): each token's dimensions summed
    baseline_out = _baseline_outputs(forward, layer, ids, baseline, targets)
    explained = outputs[np.arange(len(ids)), targets]
    delta = values.sum(axis=1) - (explained - baseline_out)
    for row, pieces in enumerate(tokens):
        for position, piece in enumerate(pieces):  # the real tokens are the sequence's first positions
            piece["attribution"] = float(values[row, position])
    return TextAttribution(
        texts=texts,
        ids=ids,
        values=values,
        tokens=tokens,
        outputs=outputs,
        targets=targets,
        baseline_outputs=baseline_out,
        convergence_delta=delta,
    )


def _first_embedding(network: nn.Module) -> nn.Embedding:
    first = network.layers[0]  # type: ignore[index]
    return first if isinstance(first, nn.Embedding) else first.embedding


def _baseline_outputs(
    forward: Any, layer: nn.Embedding, ids: torch.Tensor, baseline: torch.Tensor, targets: np.ndarray
) -> np.ndarray:
    """f(baseline) under the input's padding mask: the input ids run through the model with the
    embedding layer's output swapped for the pad vectors (the start of Captum's path)."""
    with torch.inference_mode():
        pad_vectors = layer(baseline)
        handle = layer.register_forward_hook(lambda module, args, output: pad_vectors)
        try:
            out = forward(ids).double().cpu().numpy()
        finally:
            handle.remove()
    return out[np.arange(len(ids)), targets]
