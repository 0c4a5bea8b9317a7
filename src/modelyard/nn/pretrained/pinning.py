"""A spec's ``pretrained`` layers pinned to their bases, and the bases' weights loaded.

``pin_bases`` writes each base's identity (name, sha256 of model.safetensors, config) into its
layer's ``base`` option before training, so the run's and the registered version's spec.json
build the same architecture with no base at hand (the version's weights.safetensors holds every
weight, frozen ones too). ``load_bases`` copies a base's weights into a freshly built network;
a base whose weights no longer match the pinned sha256 (a resumed run, a re-used spec) is refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from torch import nn

from modelyard.nn.pretrained.folder import BaseIdentity, find_folder, identify, weights_file
from modelyard.nn.pretrained.weights import load_weights

if TYPE_CHECKING:
    from modelyard.spec import Spec

__all__ = ["pin_bases", "load_bases", "bases"]

PRETRAINED = "pretrained"


def _pretrained(spec: Spec) -> Iterator[tuple[int, str, dict]]:
    for i, layer in enumerate(spec.model.layers):
        if layer.type == PRETRAINED:
            yield i, f"model.layers[{i}]", dict(layer.options)


def pin_bases(spec: Spec) -> Spec:
    """``spec`` with every ``pretrained`` layer's ``base`` filled in (unchanged when all are)."""
    from modelyard.spec import load_spec

    missing = [(i, field, opts) for i, field, opts in _pretrained(spec) if opts.get("base") is None]
    if not missing:
        return spec
    raw = spec.to_dict()
    for i, field, opts in missing:
        identity = identify(opts["source"], f"{field}.source")
        raw["model"]["layers"][i]["options"]["base"] = identity.model_dump(mode="json")
    return load_spec(raw)


def load_bases(network: nn.Module, spec: Spec, *, only: set[int] | None = None) -> None:
    """Load each ``pretrained`` layer's weights from its base into ``network`` (built from ``spec``);
    ``only``: just the layers at these indices."""
    for i, field, opts in _pretrained(spec):
        if only is not None and i not in only:
            continue
        folder = find_folder(opts["source"], f"{field}.source")
        pinned = opts.get("base")
        sha256 = BaseIdentity.model_validate(pinned).sha256 if pinned else None
        load_weights(network.layers[i], weights_file(folder, f"{field}.source"), f"{field}.source", sha256=sha256)


def bases(spec: Spec) -> list[dict]:
    """The pinned identities of the spec's bases (field, name, sha256), for lineage and model cards."""
    out = []
    for _, field, opts in _pretrained(spec):
        base = opts.get("base") or {}
        out.append({"field": field, "source": opts["source"], "name": base.get("name"), "sha256": base.get("sha256")})
    return out
