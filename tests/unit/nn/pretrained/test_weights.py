"""A base's safetensors checked tensor by tensor: missing, mis-shaped, foreign and changed weights are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from modelyard.errors import SpecError
from modelyard.nn.pretrained.folder import sha256_of, weights_file
from modelyard.nn.pretrained.weights import load_weights
from tests.support.pretrained import tiny_bert
from tests.support.sequences import build

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")


@pytest.fixture
def base(tmp_path: Path) -> Path:
    tiny_bert(tmp_path)
    return tmp_path


def encoder(folder: Path) -> torch.nn.Module:
    return build([{"pretrained": str(folder)}], [8]).layers[0]


def rewrite(folder: Path, change: dict[str, torch.Tensor | None]) -> Path:
    tensors = load_file(str(folder / "model.safetensors"))
    for name, value in change.items():
        if value is None:
            del tensors[name]
        else:
            tensors[name] = value
    save_file(tensors, str(folder / "model.safetensors"))
    return folder / "model.safetensors"


def test_every_tensor_is_copied_and_token_type_row_0_is_folded_into_the_positions(base: Path) -> None:
    tensors = load_file(str(base / "model.safetensors"))
    enc = encoder(base)
    load_weights(enc, weights_file(base, "f"), "f")
    assert torch.equal(enc.embedding.weight, tensors["embeddings.word_embeddings.weight"])
    want = tensors["embeddings.position_embeddings.weight"] + tensors["embeddings.token_type_embeddings.weight"][0]
    assert torch.equal(enc.positions.weight, want)
    assert torch.equal(enc.encoder.blocks[1].mlp_out.weight, tensors["encoder.layer.1.output.dense.weight"])
    assert torch.equal(enc.encoder.blocks[0].attention.value.bias, tensors["encoder.layer.0.attention.self.value.bias"])


def test_a_missing_tensor_is_named(base: Path) -> None:
    path = rewrite(base, {"encoder.layer.1.attention.self.key.weight": None})
    with pytest.raises(
        SpecError, match=r"`f`: .*model\.safetensors has no tensor encoder\.layer\.1\.attention\.self\.key\.weight"
    ):
        load_weights(encoder(base), path, "f")


def test_a_tensor_of_the_wrong_shape_is_named(base: Path) -> None:
    path = rewrite(base, {"encoder.layer.0.intermediate.dense.weight": torch.zeros(31, 16)})
    with pytest.raises(
        SpecError,
        match=r"tensor encoder\.layer\.0\.intermediate\.dense\.weight has shape \[31, 16\], expected \[32, 16\]",
    ):
        load_weights(encoder(base), path, "f")


def test_a_tensor_nothing_reads_is_refused(base: Path) -> None:
    path = rewrite(base, {"encoder.layer.0.crossattention.self.query.weight": torch.zeros(16, 16)})
    with pytest.raises(SpecError, match=r"tensor encoder\.layer\.0\.crossattention\.self\.query\.weight that no part"):
        load_weights(encoder(base), path, "f")


def test_integer_weights_are_refused(base: Path) -> None:
    path = rewrite(base, {"embeddings.LayerNorm.bias": torch.zeros(16, dtype=torch.int32)})
    with pytest.raises(SpecError, match=r"tensor embeddings\.LayerNorm\.bias has dtype I32, expected a float type"):
        load_weights(encoder(base), path, "f")


def test_weights_that_changed_since_pinning_are_refused(base: Path) -> None:
    pinned = sha256_of(base / "model.safetensors")
    path = rewrite(base, {"embeddings.LayerNorm.bias": torch.ones(16)})
    with pytest.raises(SpecError, match=r"is not the base this spec was pinned to"):
        load_weights(encoder(base), path, "f", sha256=pinned)


def test_a_file_that_is_not_safetensors_is_one_line(base: Path) -> None:
    (base / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(SpecError, match=r"is not a readable safetensors file"):
        load_weights(encoder(base), base / "model.safetensors", "f")
