"""The ONNX export/check module and the serving backend built on it import each other in no circle."""

from __future__ import annotations

import ast
from pathlib import Path

import modelyard

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
