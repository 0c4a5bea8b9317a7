"""The Free Spoken Digit Dataset (FSDD, github.com/Jakobovski/free-spoken-digit-dataset, CC BY-SA 4.0).

8 kHz mono WAV recordings of the digits 0-9 named ``{digit}_{speaker}_{index}.wav``: 50 of each
digit by each of the five speakers george, jackson, lucas, nicolas and theo (2,500 files; later
releases add a sixth speaker, not used here so that the checksum and the split stay fixed). The
``recordings`` folder is found like every built-in data set (``modelyard.data.lookup``) in an
``fsdd`` folder, or downloaded file by file (option ``url`` or ``MODELYARD_FSDD_URL``: the base
URL of the repository's ``recordings/`` folder) and kept only when the 2,500 files match the
sha256 below. The data set's own split: indexes 0-4 of every digit and speaker are the test set
(250 recordings), 5-49 training; ``test_speaker: theo`` instead holds out every recording of one
speaker (leave-one-speaker-out) and trains on the other four. ``synthetic_speech`` adds
digits spoken by flite/espeak-ng voices to the training split only (``synthetic_speech.py``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, PositiveInt

from modelyard.data.access import current_access
from modelyard.data.audio import ClipOptions, read_clips
from modelyard.data.lookup import cache_folder, download_verified, search_folders
from modelyard.data.raw import SOURCES, RawData
from modelyard.data.synthetic_speech import DIGIT_WORDS, SyntheticSpeechOptions, render_clips
from modelyard.errors import DataError

__all__ = ["FsddOptions", "SPEAKERS", "FILES", "SHA256", "manifest_sha256", "load"]

SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo")
DIGITS = 10
PER_SPEAKER = 50  # recordings of each digit by each speaker
TEST_INDEXES = range(5)  # the data set's own split
FILES = [f"{d}_{s}_{i}.wav" for d in range(DIGITS) for s in SPEAKERS for i in range(PER_SPEAKER)]
#: sha256 over the sorted lines "<file name> <sha256 of the file>\n" of the 2,500 recordings (manifest_sha256).
SHA256 = "b87f8cfe75b232c7e264f71f588ffee4e6b7b6a2c26d61236f5cd2ed6a9c048d"
URL_HINT = "https://raw.githubusercontent.com/Jakobovski/free-spoken-digit-dataset/master/recordings"


class FsddOptions(ClipOptions):
    path_fields: ClassVar[dict[str, bool]] = {"path": True}

    path: str | None = None
    url: str | None = Field(None, min_length=1)
    sample_rate: PositiveInt = 8000
    test_speaker: Literal["george", "jackson", "lucas", "nicolas", "theo"] | None = None
    synthetic_speech: SyntheticSpeechOptions | None = None  # extra training clips (synthetic_speech.py)


@SOURCES.component("fsdd", "free_spoken_digits", "spoken_digits", options=FsddOptions)
def fsdd(opts: FsddOptions, *, seed: int) -> RawData:
    """Free Spoken Digit Dataset: 2,500 8 kHz recordings of the digits 0-9 by five speakers (audio)."""
    return load(opts)


def load(opts: FsddOptions) -> RawData:
    folder = _find(opts)
    names = sorted(FILES)
    parts = [name[:-4].split("_") for name in names]
    digits = np.asarray([int(d) for d, _, _ in parts], dtype=np.int64)
    if opts.test_speaker is None:
        test = np.asarray([int(i) in TEST_INDEXES for _, _, i in parts])
    else:
        test = np.asarray([s == opts.test_speaker for _, s, _ in parts])
    x = read_clips([folder / name for name in names], opts, str(folder))
    x_extra = y_extra = None
    if opts.synthetic_speech is not None:
        x_extra, y_extra = render_clips(opts.synthetic_speech, DIGIT_WORDS, opts.sample_rate, opts.length, opts.align)
    return RawData(
        x_train=x[~test],
        y_train=digits[~test],
        x_test=x[test],
        y_test=digits[test],
        class_names=[str(d) for d in range(DIGITS)],
        kind="audio",
        x_extra=x_extra,
        y_extra=y_extra,
    )


def manifest_sha256(folder: Path) -> str:
    """The sha256 of the data set's manifest (see ``SHA256``)."""
    digest = hashlib.sha256()
    for name in sorted(FILES):
        digest.update(f"{name} {hashlib.sha256((folder / name).read_bytes()).hexdigest()}\n".encode())
    return digest.hexdigest()


def _find(opts: FsddOptions) -> Path:
    folders = search_folders("fsdd", opts.path)
    for folder in folders:
        recordings = folder / "recordings"
        if recordings.is_dir():
            missing = [name for name in FILES if not (recordings / name).is_file()]
            if missing:
                raise DataError(
                    f"Invalid FSDD folder {recordings}: {len(missing)} of the {len(FILES)} recordings are missing "
                    f"(such as {missing[0]})",
                    field="data.source",
                )
            access = current_access()
            return access.check(str(recordings), "data.path", folder=True) if access and opts.path else recordings
    access = current_access()
    if access is not None and opts.url:
        raise access.refuse_url("data.url")
    url = opts.url or os.environ.get("MODELYARD_FSDD_URL")
    if url:
        return _download(url.rstrip("/"), (folders[0] if opts.path is not None else cache_folder("fsdd")))
    searched = ", ".join(str(f) for f in folders)
    raise DataError(
        f"FSDD not found: looked for a recordings folder in {searched}; put the data set's recordings in "
        f"$MODELYARD_DATA/fsdd/recordings, or set MODELYARD_FSDD_URL (or the source option `url`) to {URL_HINT} "
        "to download them",
        field="data.source",
    )


def _download(base: str, target: Path) -> Path:
    """Every recording into a staging folder, checked as a whole, then renamed into place."""
    target.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target, prefix=".recordings."))
    try:
        for name in FILES:
            download_verified(f"{base}/{name}", staging / name, lambda _: None)  # checked together below
        got = manifest_sha256(staging)
        if got != SHA256:
            raise DataError(f"Checksum mismatch for the FSDD recordings at {base}: expected {SHA256}, received {got}")
        os.replace(staging, target / "recordings")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target / "recordings"
