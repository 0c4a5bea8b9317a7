"""``modelyard.export``: a model version as an ONNX graph, registered as a new version that holds it.

The graph maps preprocessed features to what ``Predictor.predict_tensor`` returns and is
checked against torch (``modelyard.compression.onnx_graph``) before anything is written. The new
version has the same spec and weights plus ``model.onnx``, which the ONNX Runtime serving
backend picks up. An int8 version's graph is the int8 graph stored at compression time
(torch's export of a static int8 network, or, for dynamic int8 dense layers, which torch
cannot export, ONNX Runtime's int8 quantization of the parent's fp32 graph). It rounds
differently from torch's int8 kernels, so it was checked to predict the same classes as the
torch int8 model on the parent's test split; the check is re-run here and the new version
keeps the graph as ``model.int8.onnx`` too, which the serving backend uses for int8 versions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelyard._files import atomic_write_bytes
from modelyard.compression.loading import (
    COMPRESSION_FILE,
    INT8_ONNX_FILE,
    compression_info,
    stored_int8_graph,
)
from modelyard.compression.measure import Measured
from modelyard.compression.onnx_graph import ONNX_FILE, check_onnx, export_onnx
from modelyard.compression.onnx_int8 import INT8_AGREEMENT, check_int8_graph
from modelyard.compression.report import measure_export
from modelyard.errors import DataError, ExportError, InputError, StoreError
from modelyard.predict import Predictor
from modelyard.store import ModelStore
from modelyard.store.refs import check_name
from modelyard.version_summary import summarize

__all__ = ["FORMATS", "INT8_AGREEMENT", "ExportResult", "export"]

FORMATS = ("onnx",)

log = logging.getLogger(__name__)


@dataclass
class ExportResult:
    """The new version, where the graph was written, and how closely it matches torch."""

    model_ref: str
    parent_ref: str
    path: Path
    output: Path | None
    check: dict[str, Any]
    rows: list[Measured] = field(default_factory=list)  # torch (parent) and ONNX Runtime (the graph)


def _graph(model: Predictor, info: dict[str, Any] | None, test: Any) -> tuple[bytes, dict[str, Any]]:
    if not (info or {}).get("quantization"):
        data = export_onnx(model.network)
        return data, {"max_abs_diff": check_onnx(data, model.network)}
    try:
        data, check = stored_int8_graph(model.version)  # the file whose check compression.json records
    except ExportError as exc:
        raise ExportError(
            f"Cannot export model {model.ref} to ONNX: {exc.message}; quantize its float parent again "
            f"to make a checked int8 graph"
        ) from None
    if test is not None:  # the same check as at compression time, run again; else the recorded one stands
        check = check_int8_graph(data, model.network, test.x)
    return data, {"class_agreement": check.get("class_agreement"), "max_abs_diff": check.get("max_abs_diff")}


def _test_split(model: Predictor) -> Any:
    """The model's own test split for the table, or None when its data changed (logged)."""
    from modelyard.compression.api import parent_data
    from modelyard.workflow import eval_split

    try:
        return eval_split(parent_data(model))[1]
    except DataError as exc:
        log.warning("%s: no before/after table: %s", model.ref, exc)
        return None


def export(
    ref: str,
    *,
    format: str = "onnx",
    output: str | Path | None = None,
    name: str | None = None,
    home: str | Path | None = None,
) -> ExportResult:
    """Export model ``ref`` (``format="onnx"``) as a new version holding the graph; also to ``output``."""
    if format not in FORMATS:
        raise InputError(
            f"Invalid value for `--format`: expected one of {', '.join(FORMATS)}, received {format!r}", field="--format"
        )
    if name is not None:
        check_name(name, "--name")
    out_path = Path(output) if output is not None else None
    if out_path is not None and (out_path.is_dir() or not out_path.parent.is_dir()):
        raise InputError(
            f"Invalid value for `--output`: expected a file path in an existing folder, received {str(out_path)!r}",
            field="--output",
        )
    model = Predictor.load(ref, home=home)
    info = compression_info(model.version)
    test = _test_split(model)
    data, check = _graph(model, info, test)
    rows = measure_export(model, data, test) if test is not None else []
    extra = {ONNX_FILE: data}
    if info is not None:
        extra[COMPRESSION_FILE] = model.version.file(COMPRESSION_FILE).read_bytes()
        if info.get("quantization"):
            extra[INT8_ONNX_FILE] = data  # compression.json's record (sha256, check) still describes it
    state = model.version.load_state_dict()  # the stored tensors as they are (int8 ones stay encoded)
    metrics = {k: v for k, v in model.version.metrics.items() if k == "test"}
    version = ModelStore(home).register(
        name or model.version.name,
        state_dict=state,
        spec=model.version.load_spec(),
        preprocess=model.meta,
        metrics={**metrics, "export": {"format": format, "bytes": len(data), **check}},
        lineage={
            "parent": model.ref,
            "operation": "export",
            "options": {"format": format},
            "metrics_before": rows[0].to_dict() if rows else {},
            "metrics_after": rows[1].to_dict() if rows else {},
        },
        task=model.task,
        description=f"{format} export of {model.ref}",
        extra_files=extra,
        summary=summarize(model.network, model.spec, model.meta, model.input_shape),
    )
    if out_path is not None:
        try:
            atomic_write_bytes(out_path, data)
        except OSError as exc:
            raise StoreError(f"Cannot write the ONNX graph to {out_path}: {exc}", field="--output") from None
    if rows:
        rows[1].ref = version.ref
    return ExportResult(version.ref, model.ref, version.path / ONNX_FILE, out_path, check, rows)
