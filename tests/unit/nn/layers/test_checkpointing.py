"""``gradient_checkpointing``: the same gradients as a plain backward, with fewer tensors kept for it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from modelyard.nn.network import Network
from tests.support.sequences import build, padded_ids

LENGTH = 12


def saved_bytes(net: Network, ids: torch.Tensor) -> tuple[int, torch.Tensor]:
    """Bytes of the tensors autograd keeps for the backward pass of one forward (the activation memory)."""
    kept = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal kept
        kept += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = net(ids)
    return kept, out


def gradients(net: Network, ids: torch.Tensor) -> tuple[int, dict[str, torch.Tensor]]:
    torch.manual_seed(1)  # the same dropout draws in both runs
    kept, out = saved_bytes(net.train(), ids)
    (out.square().mean()).backward()
    return kept, {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}


def check(plain: Network, checkpointed: Network, vocab: int) -> None:
    ids = padded_ids([12, 7, 3, 10], LENGTH, vocab, seed=3)
    plain_kept, want = gradients(plain, ids)
    kept, got = gradients(checkpointed, ids)
    assert want.keys() == got.keys() and len(want) > 10
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=0, atol=1e-6, msg=name)
    # Only each block's input (and the mask) is kept per block: under half the plain backward's tensors.
    assert kept < plain_kept / 2, (kept, plain_kept)
    with torch.no_grad():  # evaluation is untouched: the same outputs
        torch.testing.assert_close(checkpointed.eval()(ids), plain.eval()(ids), rtol=0, atol=0)


def test_spec_transformer_blocks_checkpointed_give_the_same_gradients_with_less_kept() -> None:
    layers = [
        {"transformer": 3, "heads": 4, "dropout": 0.1, "mlp": 64},
        {"token_pool": "mean"},
        {"dense": 5},
    ]
    layers.insert(0, {"embedding": 50, "dim": 32, "pad": 0})
    plain = build(layers, [LENGTH])
    layers[1] = {**layers[1], "gradient_checkpointing": True}
    checkpointed = build(layers, [LENGTH])
    checkpointed.load_state_dict(plain.state_dict())
    assert checkpointed.layers[1].gradient_checkpointing and not plain.layers[1].gradient_checkpointing
    check(plain, checkpointed, 50)


def test_pretrained_encoder_checkpointed_gives_the_same_gradients_with_less_kept(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from tests.support.pretrained import VOCAB, tiny_bert

    tiny_bert(tmp_path, blocks=3, dim=32)
    layers = [{"pretrained": str(tmp_path), "freeze": "embeddings"}, {"token_pool": "mean"}, {"dense": 5}]
    plain = build(layers, [LENGTH])
    layers[0] = {**layers[0], "gradient_checkpointing": True}
    checkpointed = build(layers, [LENGTH])
    checkpointed.load_state_dict(plain.state_dict())
    assert checkpointed.layers[0].encoder.gradient_checkpointing
    check(plain, checkpointed, VOCAB)
