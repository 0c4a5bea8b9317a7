"""Position embeddings: learned table rows and the sinusoidal formula, added per position."""

from __future__ import annotations

import math

import pytest
import torch

from modelyard.errors import ShapeError, SpecError
from modelyard.spec import ModelSpec
from tests.support.sequences import build


def test_learned_positions_add_one_row_per_position() -> None:
    layer = build([{"position_embedding": "learned", "max_length": 9}], [6, 4]).layers[0]
    assert tuple(layer.weight.shape) == (9, 4)
    x = torch.randn(2, 6, 4)
    torch.testing.assert_close(layer(x), x + layer.weight[:6])
    # A batch padded to a shorter longest sequence takes the first rows.
    torch.testing.assert_close(layer(x[:, :3]), x[:, :3] + layer.weight[:3])


@pytest.mark.parametrize("dim", [6, 5])
def test_sinusoidal_positions_follow_vaswani_et_al(dim: int) -> None:
    layer = build([{"positions": "sinusoidal"}], [7, dim]).layers[0]
    assert not list(layer.parameters()) and not layer.state_dict()  # fixed, rebuilt from the spec
    want = torch.tensor(
        [
            [
                math.sin(p / 10000 ** (i / dim)) if i % 2 == 0 else math.cos(p / 10000 ** ((i - 1) / dim))
                for i in range(dim)
            ]
            for p in range(7)
        ]
    )
    x = torch.randn(2, 7, dim)
    torch.testing.assert_close(layer(x) - x, want.expand(2, 7, dim))


def test_position_shape_errors() -> None:
    with pytest.raises(ShapeError) as info:
        build([{"embedding": 10, "dim": 4}, {"position_embedding": "learned", "max_length": 3}], [5])
    assert info.value.field == "model.layers[1].max_length" and "at least the input's 5 tokens" in str(info.value)
    with pytest.raises(ShapeError, match=r"model\.layers\[0\].*\(position_embedding\).*received shape \[5\]"):
        build(["position_embedding"], [5])
    with pytest.raises(SpecError) as spec_info:
        ModelSpec.model_validate({"input": [3, 4], "layers": [{"positions": "sinusoidal", "init": "zeros"}]})
    assert spec_info.value.field == "model.layers[0]" and "no init for kind 'sinusoidal'" in str(spec_info.value)


def test_learned_position_init_option() -> None:
    layer = build([{"position_embedding": {"init": "zeros"}}], [3, 4]).layers[0]
    assert torch.count_nonzero(layer.weight) == 0
