"""The data source registry with every built-in source registered.

Built-in data sets: ``xor``, ``linear``, ``digits``, ``mnist``, ``fashion-mnist``, ``clinc150`` (text), ``fsdd`` (audio).
File formats (option ``path``): ``csv``, ``parquet``, ``jsonl`` (numeric or ``text`` columns), ``npz``, ``images``, ``audio`` (WAV/FLAC);
``dataset`` (option ``name``) reads a table stored by ``modelyard anonymize``; ``npy`` (options
``x``/``y``) memory-maps its features, so ``data.stream: true`` can train on data larger than memory.
Each source is ``(opts, *, seed) -> RawData``; importing this module registers them all.
"""

from __future__ import annotations

from modelyard.components import ComponentSpec

# Importing the modules registers their sources in SOURCES.
from modelyard.data import audio, clinc150, fsdd, images, mnist, npy, npz, stored, synthetic, tables  # noqa: F401
from modelyard.data.raw import SOURCES, RawData

__all__ = ["SOURCES", "RawData", "load_source"]


def load_source(spec: ComponentSpec, seed: int = 0) -> RawData:
    """Load the data of one resolved source spec (``DataSpec.source``)."""
    return SOURCES.build(spec, seed=seed)
