"""A version's model card as Markdown: YAML front matter, then one section per kind of fact.

In the spirit of Hugging Face model cards (https://huggingface.co/docs/hub/model-cards): the
front matter holds what tools read (name, version, kind, task, metrics, library versions),
the sections what people read, after Mitchell et al., "Model Cards for Model Reporting"
(2019), where the store has the facts. Every number comes from ``CardFacts``; floats are
rounded to 4 significant digits, and nothing is written as a Python repr.
"""

from __future__ import annotations

from typing import Any

import yaml

from modelyard.cards.facts import PRIVACY_KEY, CardFacts
from modelyard.cards.text import cell, flatten, number, rounded, table
from modelyard.store import ModelVersion
from modelyard.store.kinds import TRAINED
from modelyard.store.timestamps import iso

__all__ = ["render"]

_NOT_RECORDED = "none recorded"
_HIDDEN_METRICS = ("split", "confusion_matrix")
_LIBRARIES = ("modelyard", "python")  # then the run's recorded packages (torch first)


def _yaml(value: Any) -> str:
    return yaml.safe_dump(value, sort_keys=False, allow_unicode=True, default_flow_style=False, width=1000)


def _scalars(metrics: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v
        for k, v in metrics.items()
        if k not in _HIDDEN_METRICS and isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def _libraries(facts: CardFacts) -> dict[str, str]:
    env = facts.run.env if facts.run is not None else {}
    found = {k: env.get(k) for k in _LIBRARIES}
    packages = env.get("packages") if isinstance(env.get("packages"), dict) else {}
    found.update(packages)
    return {str(k): str(v) for k, v in found.items() if v is not None}


def _test_metrics(facts: CardFacts) -> dict[str, Any]:
    test = facts.version.metrics.get("test")
    return dict(test) if isinstance(test, dict) else {}


def front_matter(facts: CardFacts) -> dict[str, Any]:
    """What the card's YAML block holds (Hugging Face keys where they exist: library_name, tags, datasets)."""
    v = facts.version
    test = _test_metrics(facts)
    source = ((facts.spec.get("data") or {}).get("source") or {}).get("type")
    out: dict[str, Any] = {"model_name": v.name, "version": v.version, "ref": v.ref, "kind": v.kind}
    if v.parent is not None:
        out["parent"] = v.parent
    out.update(
        task=v.task,
        library_name="modelyard",
        tags=[t for t in ("modelyard", v.task, v.kind) if t],
        datasets=[source] if source else [],
        created_at=iso(v.created_at),
        parameters=facts.parameters,
        metrics=rounded(_scalars(test)),
        metrics_split=test.get("split"),
        library_versions=_libraries(facts),
    )
    return {k: val for k, val in out.items() if val is not None}


def _run_cell(facts: CardFacts) -> str | None:
    if facts.version.run_id is not None:
        return facts.version.run_id + ("" if facts.run is not None else " (deleted)")
    return f"{facts.run.id} (of {facts.run_of})" if facts.run is not None else None


def _summary(facts: CardFacts) -> list[str]:
    v = facts.version
    classes = facts.preprocess.get("class_names") or []
    rows = [
        ("kind", v.kind),
        ("parent", v.parent),
        ("task", v.task),
        ("registered", iso(v.created_at)),
        ("training run", _run_cell(facts)),
        ("aliases", [f"{v.name}@{a}" for a in v.aliases] or "none"),
        ("bare name", facts.bare_rule),
        ("parameters", facts.parameters if facts.parameters is not None else "not recorded"),
        ("size", f"{number(v.size_bytes)} bytes"),
        ("classes", f"{len(classes)}: {cell(classes)}" if classes else None),
    ]
    head = [f"# Model card: {v.ref}", ""]
    if v.description:
        head += [v.description, ""]
    return head + table(("", ""), rows)


def _shape(dims: Any) -> str:
    return " × ".join(str(d) for d in dims) if isinstance(dims, list) and dims else "not recorded"


def _data(facts: CardFacts) -> list[str]:
    data = facts.spec.get("data") or {}
    source = data.get("source") or {}
    options = cell(source.get("options")) if source.get("options") else "no options"
    out = [
        "## Data",
        "",
        f"Source: `{source.get('type', 'not recorded')}` ({options}); seed {cell(facts.spec.get('seed'))}.",
    ]
    rest = flatten({k: val for k, val in data.items() if k not in ("source", "preprocess")})
    if rest:
        out += ["", *table(("setting", "value"), rest)]
    steps = ((facts.preprocess.get("pipeline") or {}).get("steps")) or []
    named = [f"{s.get('type')} ({cell(s.get('options'))})" if s.get("options") else str(s.get("type")) for s in steps]
    out += [
        "",
        f"Preprocessing, fitted on the training split and stored with the weights: {', '.join(named) or 'none'}.",
    ]
    schema = facts.summary.get("schema") if isinstance(facts.summary.get("schema"), dict) else {}
    shape = schema.get("input_shape") or (facts.preprocess.get("pipeline") or {}).get("input_shape") or []
    line = f"Input: shape {_shape(shape)}" + (f" ({schema['input_dtype']})" if schema.get("input_dtype") else "")
    features = facts.preprocess.get("feature_names") or []
    if features:
        more = ", ..." if len(features) > 8 else ""
        line += f", {number(len(features))} named features ({cell(features[:8])}{more})"
    if schema.get("output_shape"):
        line += f"; output: shape {_shape(schema['output_shape'])}"
    return out + ["", line + "."]


def _spec(facts: CardFacts) -> list[str]:
    out = ["## Spec", ""]
    layers = facts.summary.get("layers")
    if isinstance(layers, list) and layers:
        rows = [(r.get("index"), r.get("type"), _shape(r.get("output_shape")), r.get("params")) for r in layers]
        out += [*table(("index", "type", "output shape", "parameters"), rows), ""]
    return out + ["The resolved spec it was built from:", "", "```yaml", _yaml(facts.spec).rstrip("\n"), "```"]


def _metrics(facts: CardFacts) -> list[str]:
    test = _test_metrics(facts)
    scalars = _scalars(test)
    out = ["## Metrics", ""]
    if not scalars:
        return out + [f"Test metrics: {_NOT_RECORDED}."]
    out += [f"On the {test.get('split', 'evaluation')} split, measured at registration.", ""]
    out += table(("metric", "value"), scalars.items())
    matrix = test.get("confusion_matrix")
    if isinstance(matrix, list) and matrix:
        labels = [str(c) for c in facts.preprocess.get("class_names") or range(len(matrix))]
        out += ["", "Confusion matrix (rows: true class, columns: predicted):", ""]
        out += table(("", *labels), ([labels[i] if i < len(labels) else i, *row] for i, row in enumerate(matrix)))
    return out


def _history(facts: CardFacts) -> list[str]:
    rows = facts.history
    out = ["## Training history", ""]
    if not rows:
        what = "its weights were not trained epoch by epoch" if facts.version.kind != TRAINED else "none recorded"
        return out + [f"No per-epoch history ({what})."]
    keys: list[str] = []  # scalars only: a per-epoch confusion matrix does not fit a table cell
    for row in rows:
        keys += [k for k, val in row.items() if k not in keys and k != "epoch" and not isinstance(val, (list, dict))]
    summary = facts.run.summary if facts.run is not None and facts.version.kind == TRAINED else {}
    notes = [f"{number(len(rows))} epochs"]
    if facts.version.kind != TRAINED:
        notes[0] += f" of the {facts.version.lineage.get('operation')} step that made it from {facts.version.parent}"
    if summary.get("best_epoch") is not None:
        notes.append(f"best epoch {number(summary['best_epoch'])}")
    if "stopped_early" in summary:
        notes.append(f"stopped early: {cell(summary['stopped_early'])}")
    if isinstance(summary.get("train_time_s"), (int, float)):
        notes.append(f"training time {number(summary['train_time_s'])} s")
    runtime = facts.version.metrics.get("runtime")
    if isinstance(runtime, dict) and runtime.get("device"):
        notes.append(f"on {runtime['device']} in {runtime.get('precision', 'fp32')}")
    out += [", ".join(notes) + ".", ""]
    return out + table(("epoch", *keys), ([row.get("epoch"), *(row.get(k) for k in keys)] for row in rows))


def _made_by(version: ModelVersion) -> str:
    if version.parent is not None:
        return f"{version.lineage.get('operation')} of {version.parent}"
    return f"run {version.run_id}" if version.run_id else "a run that is not recorded"


def _lineage(facts: CardFacts) -> list[str]:
    v = facts.version
    out = ["## Lineage", ""]
    if v.kind == TRAINED and not facts.ancestors:
        out.append(f"Trained from its spec by {_made_by(v)}; derived from no other version.")
    else:
        rows = [(v.ref, v.kind, _made_by(v), iso(v.created_at))]
        for step in facts.ancestors:
            found = step.version
            made = (found.ref, found.kind, _made_by(found), iso(found.created_at)) if found else None
            rows.append(made or (step.ref, "deleted", "-", "-"))
        out += ["From this version up to the trained one it comes from:", ""]
        out += table(("version", "kind", "made by", "registered"), rows)
    for base in v.lineage.get("bases") or []:  # a pretrained layer's base, pinned at training
        if isinstance(base, dict):
            out += [
                "",
                f"`{base.get('field')}` starts from the pretrained base {base.get('name')} (model.safetensors "
                f"sha256 {base.get('sha256')}).",
            ]
    if facts.derived:
        out += ["", "Derived from it: " + ", ".join(f"{d.ref} ({d.kind})" for d in facts.derived) + "."]
    return out


def _before_after(facts: CardFacts) -> list[str]:
    before, after = facts.version.lineage.get("metrics_before"), facts.version.lineage.get("metrics_after")
    if not isinstance(before, dict) or not isinstance(after, dict) or not (before or after):
        return []
    keep = ("label", "ref", "served_reason")  # names and a sentence, not measurements
    left = dict(flatten({k: val for k, val in before.items() if k not in keep}))
    right = dict(flatten({k: val for k, val in after.items() if k not in keep}))
    keys = list(dict.fromkeys([*left, *right]))
    return ["", "Measured when it was made (parent, then this version):", ""] + table(
        ("", str(facts.version.parent or "parent"), facts.version.ref), ([k, left.get(k), right.get(k)] for k in keys)
    )


def _compression(facts: CardFacts) -> list[str]:
    out = ["## Compression and export", ""]
    lineage, info = facts.version.lineage, facts.compression
    weights = facts.weights
    stored = ", ".join(f"{dtype} {number(n)}" for dtype, n in weights.dtypes.items()) if weights else "not readable"
    operation = lineage.get("operation")
    if not operation and not info:
        return out + [f"Not compressed: the weights are stored as trained ({stored} values)."]
    rows: list[tuple[str, Any]] = [("operation", operation)]
    rows += flatten(lineage.get("options") if isinstance(lineage.get("options"), dict) else {}, "options.")
    if info and info.get("operation") != operation:  # an export keeps its parent's compression.json
        rows.append(("weights", f"{info.get('operation')} of {info.get('parent')} (its compression facts follow)"))
        rows += flatten(info.get("options") or {}, f"{info.get('operation')}.")
    quantization = info.get("quantization") if isinstance(info.get("quantization"), dict) else {}
    rows += [(f"quantization.{k}", val) for k, val in quantization.items() if k not in ("state", "op")]
    onnx = info.get("onnx") if isinstance(info.get("onnx"), dict) else {}
    rows += flatten({k: val for k, val in onnx.items() if k != "sha256"}, "onnx.")
    export = facts.version.metrics.get("export")
    rows += flatten(export, "export.") if isinstance(export, dict) else []
    rows.append(("stored values", stored))
    return out + table(("", ""), rows) + _before_after(facts)


def _privacy(facts: CardFacts) -> list[str]:
    out = ["## Privacy", ""]
    out += (
        table(("", ""), flatten(facts.privacy))
        if facts.privacy
        else [
            f"Privacy facts (differential privacy budget and the like, recorded under `{PRIVACY_KEY}`): {_NOT_RECORDED}."
        ]
    )
    out += _trained_on(facts)
    steps = [str(s.get("type")) for s in (facts.preprocess.get("pipeline") or {}).get("steps") or []]
    kept = (
        f"the fitted state of its preprocessing ({', '.join(steps)}), computed from the training split"
        if steps
        else "no fitted preprocessing state"
    )
    return out + ["", f"The version stores its weights, its spec and {kept}; no training rows."]


def _trained_on(facts: CardFacts) -> list[str]:
    """The stored dataset (uploaded or anonymised) this version or its trained ancestor was trained on."""
    versions = [facts.version, *(a.version for a in facts.ancestors if a.version is not None)]
    found = next((v.lineage["dataset"] for v in versions if isinstance(v.lineage.get("dataset"), dict)), None)
    if found is None:
        return []
    kanon = found.get("k_anonymity") or {}
    steps = found.get("steps") or []
    made = f"made by {found.get('operation')}" + (f" ({', '.join(map(str, steps))})" if steps else "")
    line = f"Trained on the stored dataset {found.get('ref')} (sha256 {found.get('sha256')}), {made}"
    if kanon.get("k_achieved") is not None:
        line += f", k-anonymous with k = {kanon['k_achieved']} (asked {kanon.get('k')})"
    if kanon.get("l_achieved") is not None:
        line += f" and l-diverse with l = {kanon['l_achieved']} (asked {kanon.get('l')})"
    source = f"; its source file's sha256 is {found['source_sha256']}" if found.get("source_sha256") else ""
    return ["", line + source + "."]  # a folder upload has one sha256 per file (the dataset's lineage.json)


def _environment(facts: CardFacts) -> list[str]:
    out = ["## Framework versions", ""]
    run = facts.run
    if run is None:
        why = f"the run that trained {facts.run_of} is no longer in the store" if facts.run_of else None
        return out + [f"Framework versions: {_NOT_RECORDED} ({why or 'registered without a training run'})."]
    whose = "this version" if facts.run_of == facts.version.ref else f"{facts.run_of}, this version's trained ancestor"
    out += [f"Recorded by run {run.id}, which trained {whose}."]
    if facts.run_of != facts.version.ref:
        out[-1] += f" The {facts.version.lineage.get('operation')} step that made this version recorded no environment."
    out.append("")
    env = run.env
    rows = list(_libraries(facts).items())
    rows += [(k, env.get(k)) for k in ("platform", "machine", "cores", "cuda", "gpu") if k in env]
    rows += [("device (spec)", env["device"])] if "device" in env else []
    return out + table(("", "version"), rows)


def _files(facts: CardFacts) -> list[str]:
    if not facts.digests:
        return []
    sizes = {p.name: p.stat().st_size for p in facts.version.path.iterdir() if p.is_file()}
    rows = [(name, sizes.get(name), digest) for name, digest in sorted(facts.digests.items())]
    return ["## Files", "", *table(("file", "bytes", "sha256"), rows)]


def render(facts: CardFacts) -> str:
    """The Markdown card."""
    sections = [_summary, _data, _spec, _metrics, _history, _lineage, _compression, _privacy, _environment, _files]
    parts = ["---", _yaml(front_matter(facts)).rstrip("\n"), "---", ""]
    for section in sections:
        lines = section(facts)
        if lines:
            parts += [*lines, ""]
    return "\n".join(parts)
