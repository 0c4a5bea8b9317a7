"""The ``dataset`` source: a table stored in the store (``modelyard anonymize`` writes them).

``data: {source: dataset, name: people-anon:1, target: label}``. The table is read by name from
the store, never by a path, so a server job may use it wherever its data folders are; it is
checked against its recorded sha256 first. The source returns the dataset's lineage with the
data, and the model version trained on it records it (``lineage.json``: ``dataset``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pydantic import Field

from modelyard._validation import StrictModel
from modelyard.data.raw import SOURCES, RawData
from modelyard.data.tables import TableOptions, frame_to_raw
from modelyard.errors import DataError

if TYPE_CHECKING:
    from modelyard.spec import Spec

__all__ = ["DatasetOptions", "pin_dataset"]


_PINNED = re.compile(r"^[^:]+:[1-9][0-9]*$")


class DatasetOptions(StrictModel):
    name: str = Field(min_length=1)  # NAME:VERSION (NAME alone: its newest version, recorded as NAME:N)
    target: str = Field(min_length=1)
    features: list[str] | None = Field(None, min_length=1)
    groups: str | None = Field(None, min_length=1)  # as the table sources' (data/tables.py)


def pin_dataset(spec: Spec) -> Spec:
    """``spec`` with a ``dataset`` source's bare ``NAME`` (or ``NAME:latest``) made ``NAME:N``.

    The run records the pinned spec, so resuming it or re-creating its splits reads the version it
    trained on even after a newer one is stored.
    """
    from modelyard.spec import load_spec
    from modelyard.store.datasets import DatasetStore

    source = spec.data.source
    if source.type != "dataset" or _PINNED.match(str(source.options.get("name", ""))):
        return spec
    found = DatasetStore().get(str(source.options.get("name")), field="data.name")
    raw = spec.to_dict()
    raw["data"]["source"]["options"]["name"] = found.ref
    return load_spec(raw)


@SOURCES.component("dataset", options=DatasetOptions, primary="name")
def dataset(opts: DatasetOptions, *, seed: int) -> RawData:
    """A stored dataset (for example an anonymised table): numeric feature columns plus a `target` column."""
    import pandas as pd

    from modelyard.store.checksums import sha256_file
    from modelyard.store.datasets import DatasetStore

    found = DatasetStore().get(opts.name, field="data.name")
    path = found.data_path()
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise DataError(
            f"Dataset {found.ref} is unreadable ({type(exc).__name__}): {path}", field="data.name"
        ) from None
    table = TableOptions(path=str(path), target=opts.target, features=opts.features, groups=opts.groups)
    raw = frame_to_raw(frame, path, table, row_label=lambda i: f"row {i} of dataset {found.ref}")
    lineage = found.lineage
    report = found.report
    raw.lineage = {
        "ref": found.ref,
        "sha256": sha256_file(path),
        "operation": lineage.get("operation"),
        "source_sha256": (lineage.get("source") or {}).get("sha256"),
        "steps": [step.get("type") for step in lineage.get("steps", []) if isinstance(step, dict)],
        "k_anonymity": {
            k: v for k, v in (report.get("k_anonymity") or {}).items() if k in ("k", "k_achieved", "l", "l_achieved")
        },
    }
    return raw
