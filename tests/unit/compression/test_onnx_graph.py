"""The ONNX export/check module and the serving backend built on it import each other in no circle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

import modelyard
from modelyard.compression.onnx_graph import example_input, export_onnx
from modelyard.errors import ExportError
from tests.support.sequences import build

SRC = Path(modelyard.__file__).parent.parent


def _imports() -> dict[str, set[str]]:
    """Every modelyard module → the modelyard modules it imports, function-level imports included."""
    files = {}
    for path in (SRC / "modelyard").rglob("*.py"):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
        files[name] = path
    graph = {}
    for name, path in files.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    deps.add(full if full in files else node.module)
            elif isinstance(node, ast.Import):
                deps.update(alias.name for alias in node.names)
        graph[name] = {d for d in deps if d in files and d != name}
    return graph


def _reaches(graph: dict[str, set[str]], start: str, goal: str) -> bool:
    seen, todo = set(), list(graph[start])
    while todo:
        name = todo.pop()
        if name == goal:
            return True
        if name not in seen:
            seen.add(name)
            todo.extend(graph[name])
    return False


def test_the_onnx_modules_are_in_no_import_cycle() -> None:
    graph = _imports()
    onnx = ["modelyard.compression.onnx_graph", "modelyard.serving.onnx_backend", "modelyard.serving.fast.onnx_bound"]
    assert all(name in graph for name in onnx)
    # The old single module imported compression.loading, which imported it back (loading now
    # takes ExportError from modelyard.errors); the backend imports both, so a cycle would show.
    assert {"modelyard.compression.onnx_graph", "modelyard.compression.loading"} <= graph[
        "modelyard.serving.onnx_backend"
    ]
    for name in [*onnx, "modelyard.compression.loading"]:
        assert not _reaches(graph, name, name), f"{name} imports itself through other modules"


def test_export_and_check_import_nothing_from_serving() -> None:
    graph = _imports()
    assert not any(dep.startswith("modelyard.serving") for dep in graph["modelyard.compression.onnx_graph"])


def test_sequence_networks_export_and_match_torch() -> None:
    torch.manual_seed(0)
    # A vocabulary of 4 makes the random example ids a quarter pads (id 0): the mask is exercised.
    transformer = build(
        [
            {"embedding": 4, "dim": 8, "pad": 0},
            "position_embedding",
            {"transformer": 2, "heads": 2},
            {"token_pool": "attention"},
            {"dense": 3, "activation": "softmax"},
        ],
        [6],
        loss="cross_entropy",
    ).eval()
    assert (example_input(transformer, 5, seed=5) == 0).any()
    assert export_onnx(transformer)  # checked against torch inside, at two batch sizes
    audio = build([{"gru": 4, "bidirectional": True, "output": "sequence"}, {"lstm": 3}], [5, 2]).eval()
    assert export_onnx(audio)
    packed = build([{"embedding": 4, "dim": 8, "pad": 0}, {"lstm": 3}], [6]).eval()
    with pytest.raises(ExportError) as info:
        export_onnx(packed)
    assert "`model.layers[1]` (lstm) runs on packed sequences" in str(info.value) and "\n" not in str(info.value)
