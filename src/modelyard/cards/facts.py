"""Everything a model card says, gathered from the store's own records (nothing is measured again).

A version's folder holds its spec, fitted preprocessing, metrics (test metrics, per-epoch
history, compression measurements), lineage and, for a compressed one, ``compression.json``;
its database row links it to the run that trained it, whose record holds the environment
(framework versions) and the run's own per-epoch history. A derived version (int8, pruned,
distilled, exported) has no run of its own: its lineage is followed up to the trained
version whose run made the weights it came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelyard._files import read_json
from modelyard.cards.weights import WeightsSummary, read_weights
from modelyard.errors import NotFoundError
from modelyard.store import ModelStore, ModelVersion, RunRecord, RunStore
from modelyard.store.checksums import CHECKSUMS_FILE
from modelyard.store.kinds import TRAINED
from modelyard.store.records import PREPROCESS_FILE, SPEC_FILE, WEIGHTS_FILE
from modelyard.version_summary import FORMAT as SUMMARY_FORMAT  # no torch at import

__all__ = ["Ancestor", "CardFacts", "COMPRESSION_FILE", "PRIVACY_KEY", "gather"]

COMPRESSION_FILE = "compression.json"  # modelyard.compression.loading's name; importing it would load torch
# Where privacy facts (a differentially private run's epsilon, delta, ...) are recorded: the
# version's metrics, else its training run's summary (workflow records a train.privacy run's there).
PRIVACY_KEY = "privacy"
_MAX_ANCESTORS = 64  # a lineage is a short chain; this only stops a hand-edited cycle


@dataclass(frozen=True)
class Ancestor:
    """One step up the lineage: ``ref`` and, if it is still registered, its version."""

    ref: str
    version: ModelVersion | None


@dataclass(frozen=True)
class CardFacts:
    version: ModelVersion
    bare_rule: str  # how the bare name resolves today, in words
    spec: dict[str, Any]
    preprocess: dict[str, Any]
    compression: dict[str, Any]
    ancestors: list[Ancestor]  # parent first, up to the trained version (or the first one gone)
    derived: list[ModelVersion]  # the versions made from this one, oldest first
    run: RunRecord | None  # the run that trained this version, or its trained ancestor's
    run_of: str | None  # the ref that run registered
    weights: WeightsSummary | None
    summary: dict[str, Any]  # summary.json (schema, parameters, layers) when registered with one
    digests: dict[str, str] = field(default_factory=dict)

    @property
    def history(self) -> list[dict[str, Any]]:
        """Per-epoch rows: the version's own (a trained or distilled one has them), else its run's."""
        own = self.version.metrics.get("history")
        if own:
            return list(own)
        if self.version.kind == TRAINED and self.run is not None:
            return list(self.run.history)
        return []

    @property
    def parameters(self) -> int | None:
        """As recorded at registration (summary.json; a derived version's lineage), int8 weights included;
        for a float version registered before summaries, counted in its weights file's header."""
        after = self.version.lineage.get("metrics_after")
        for recorded in (self.summary.get("parameters"), after.get("parameters") if isinstance(after, dict) else None):
            if isinstance(recorded, int) and not isinstance(recorded, bool):
                return recorded
        if self.weights is not None and not self.compression.get("quantization"):
            return self.weights.float_parameters
        return None

    @property
    def privacy(self) -> dict[str, Any]:
        found = self.version.metrics.get(PRIVACY_KEY)
        if not found and self.run is not None:
            found = self.run.summary.get(PRIVACY_KEY)
        return dict(found) if isinstance(found, dict) else {}


def _optional_json(version: ModelVersion, filename: str) -> dict[str, Any]:
    """A JSON file of the version (checked against its recorded sha256); {} when it has none."""
    path = version.file(filename)
    return dict(read_json(path)) if path.is_file() else {}


def _summary(version: ModelVersion) -> dict[str, Any]:
    """summary.json in the format this release writes; {} for a version from before summaries."""
    found = version.load_summary()
    return found if found is not None and found.get("format") == SUMMARY_FORMAT else {}


def _ancestors(store: ModelStore, version: ModelVersion) -> list[Ancestor]:
    chain: list[Ancestor] = []
    parent, seen = version.parent, {version.ref}
    while parent is not None and parent not in seen and len(chain) < _MAX_ANCESTORS:
        seen.add(parent)
        try:
            found: ModelVersion | None = store.get(parent)
        except NotFoundError:  # deleted since: the card names it and stops there
            found = None
        chain.append(Ancestor(parent, found))
        parent = found.parent if found is not None else None
    return chain


def _training_run(home: Path, version: ModelVersion, ancestors: list[Ancestor]) -> tuple[RunRecord | None, str | None]:
    candidates = [version] + [a.version for a in ancestors if a.version is not None]
    trained = next((v for v in candidates if v.run_id is not None), None)
    if trained is None:
        return None, None
    try:
        return RunStore(home).get(str(trained.run_id)), trained.ref
    except NotFoundError:  # the run was deleted (`runs delete`); the card says what is not recorded
        return None, trained.ref


def gather(home: str | Path | None, ref: str) -> CardFacts:
    """The facts of the version ``ref`` names (``NAME:N``, ``NAME@ALIAS``, ``NAME``)."""
    store = ModelStore(home)
    version = store.get(ref)
    default, rule = store.resolve(version.name)
    ancestors = _ancestors(store, version)
    run, run_of = _training_run(store.home, version, ancestors)
    digests = _optional_json(version, CHECKSUMS_FILE).get("sha256")
    return CardFacts(
        version=version,
        bare_rule=f"`{version.name}` resolves to {default.ref} ({rule})",
        spec=dict(read_json(version.file(SPEC_FILE))),
        preprocess=dict(read_json(version.file(PREPROCESS_FILE))),
        compression=_optional_json(version, COMPRESSION_FILE),
        ancestors=ancestors,
        derived=store.derived(version.ref),
        run=run,
        run_of=run_of,
        weights=read_weights(version.path / WEIGHTS_FILE),
        summary=_summary(version),
        digests=dict(digests) if isinstance(digests, dict) else {},
    )
