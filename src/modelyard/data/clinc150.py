"""CLINC150 (Larson et al., EMNLP 2019): 150 intents of short user queries, plus out-of-scope ones.

``data_full.json`` of the data set's public repository (github.com/clinc/oos-eval, CC BY 3.0)
is found like every built-in data set (``modelyard.data.lookup``) in a ``clinc150`` folder, or
downloaded (option ``url`` or ``MODELYARD_CLINC150_URL``) and checked against its sha256.
Its splits: train 15,000 / val 3,000 / test 4,500 in-scope queries (100/20/30 per intent) and
oos_train 100 / oos_val 100 / oos_test 1,000 out-of-scope ones. The source returns train (+ val
with ``use_val: true``) for training and the official test split for testing; ``out_of_scope:
class`` adds the out-of-scope queries of the same splits under the label ``oos``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from modelyard._validation import StrictModel
from modelyard.data.access import current_access
from modelyard.data.lookup import cache_folder, download_verified, search_folders
from modelyard.data.raw import SOURCES, RawData
from modelyard.errors import DataError

__all__ = ["Clinc150Options", "FILE", "SHA256", "OUT_OF_SCOPE", "load", "splits"]

FILE = "data_full.json"
#: sha256 of data_full.json as published (github.com/clinc/oos-eval, data/data_full.json).
SHA256 = "36923c3705a59e08fe9c3883d8bc2dd966ef93e22cb78ac41171782a698d56e0"
#: The label of out-of-scope queries, with ``out_of_scope: class``.
OUT_OF_SCOPE = "oos"
_SPLITS = ("train", "val", "test", "oos_train", "oos_val", "oos_test")


class Clinc150Options(StrictModel):
    path_fields: ClassVar[dict[str, bool]] = {"path": True}

    path: str | None = None
    url: str | None = Field(None, min_length=1)
    out_of_scope: Literal["exclude", "class"] = "exclude"
    use_val: bool = False


@SOURCES.component("clinc150", "clinc", options=Clinc150Options)
def clinc150(opts: Clinc150Options, *, seed: int) -> RawData:
    """CLINC150 intent classification: 15k/4.5k short queries over 150 intents (text)."""
    return load(opts)


def splits(opts: Clinc150Options) -> dict[str, list[list[str]]]:
    """All six splits of the file as ``[text, intent]`` pairs (out-of-scope evaluation reads val and oos_test)."""
    return _read(_find(opts))


def load(opts: Clinc150Options) -> RawData:
    data = splits(opts)
    train = data["train"] + (data["val"] if opts.use_val else [])
    test = list(data["test"])
    if opts.out_of_scope == "class":
        train += [[text, OUT_OF_SCOPE] for text, _ in data["oos_train"] + (data["oos_val"] if opts.use_val else [])]
        test += [[text, OUT_OF_SCOPE] for text, _ in data["oos_test"]]
    class_names = sorted({intent for _, intent in train})
    index = {name: i for i, name in enumerate(class_names)}
    unseen = sorted({intent for _, intent in test} - index.keys())
    if unseen:
        raise DataError(f"Invalid CLINC150 file: test intents missing from training: {', '.join(unseen[:3])}")

    def arrays(rows: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
        x = np.empty(len(rows), dtype=object)
        x[:] = [text for text, _ in rows]
        return x, np.asarray([index[intent] for _, intent in rows], dtype=np.int64)

    x_train, y_train = arrays(train)
    x_test, y_test = arrays(test)
    return RawData(
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        class_names=class_names,
        feature_names=["text"],
        kind="text",
    )


def _find(opts: Clinc150Options) -> Path:
    folders = search_folders("clinc150", opts.path)
    for folder in folders:
        if (folder / FILE).is_file():
            found = folder / FILE
            access = current_access()
            return access.check_file_in(found, "data.path") if access is not None and opts.path else found
    access = current_access()
    if access is not None and opts.url:
        raise access.refuse_url("data.url")
    url = opts.url or os.environ.get("MODELYARD_CLINC150_URL")
    if url:
        target = (folders[0] if opts.path is not None else cache_folder("clinc150")) / FILE
        download_verified(url, target, _check)
        return target
    searched = ", ".join(str(f) for f in folders)
    raise DataError(
        f"CLINC150 not found: looked for {FILE} in {searched}; put the data set's {FILE} in "
        "$MODELYARD_DATA/clinc150, or set MODELYARD_CLINC150_URL (or the source option `url`) to "
        "https://raw.githubusercontent.com/clinc/oos-eval/master/data/data_full.json to download it",
        field="data.source",
    )


def _check(path: Path) -> str | None:
    got = hashlib.sha256(path.read_bytes()).hexdigest()
    return None if got == SHA256 else f"expected sha256 {SHA256}, received {got}"


def _read(path: Path) -> dict[str, list[list[str]]]:
    try:
        data = json.loads(path.read_bytes())
    except (UnicodeDecodeError, ValueError):
        raise DataError(f"Invalid CLINC150 file {path}: expected JSON (data_full.json)", field="data.source") from None
    if not isinstance(data, dict) or any(not isinstance(data.get(split), list) for split in _SPLITS):
        raise DataError(
            f"Invalid CLINC150 file {path}: expected the splits {', '.join(_SPLITS)} as lists", field="data.source"
        )
    for split in _SPLITS:
        for i, row in enumerate(data[split]):
            if not (isinstance(row, list) and len(row) == 2 and all(isinstance(v, str) for v in row)):
                raise DataError(
                    f"Invalid CLINC150 file {path}: expected [text, intent] pairs, entry {i} of {split} is not one",
                    field="data.source",
                )
    return data
