"""A folder of WAV/FLAC recordings with labels, as raw audio samples ``[N, samples]``.

Labels come from one sub-folder per class (``labels: folders``, the default; with ``train/``
and ``test/`` sub-folders laid out that way they are the official splits, as for images),
from a regular expression on the file name with a group named ``label`` (``labels: pattern``,
e.g. ``'^(?P<label>[a-z]+)_'``), or from a csv of ``file,label`` rows (``labels: csv``, the
file named by ``csv``, relative to the folder). Every recording is decoded by
``modelyard.audio_decode`` (mono float32 in [-1, 1]), resampled to ``sample_rate`` when it is
recorded at another rate, and zero-padded or trimmed to ``duration`` seconds. The samples stay
raw: log-mel features are a layer of the network (``logmel``), so a served model takes audio.

``synthetic_speech`` adds clips of each class's word spoken by flite/espeak-ng voices to the
training split only (``synthetic_speech.py``, as for ``fsdd``): a keyword folder ``yes/``,
``no/``, ``stop/`` gets "yes", "no" and "stop"; ``words`` names what to say where the folder name
is not the word (``{on_off: "on off"}``).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, PositiveInt, field_validator

from modelyard._validation import StrictModel
from modelyard.audio_decode import AudioLimits, decode_audio, fit_length
from modelyard.data.access import current_access
from modelyard.data.raw import SOURCES, RawData, resolve_path
from modelyard.data.synthetic_speech import SyntheticSpeechOptions, render_clips
from modelyard.errors import DataError

__all__ = ["AudioOptions", "AudioSpeechOptions", "AUDIO_SUFFIXES", "ClipOptions", "read_clips"]

AUDIO_SUFFIXES = (".wav", ".flac")
_SPOKEN = re.compile(r"^[^\W_][\w' -]{0,199}$")  # what synthetic_speech.words may say: text, never an option


class ClipOptions(StrictModel):
    """How recordings become equal-length samples (shared by ``audio`` and ``fsdd``)."""

    sample_rate: PositiveInt = 16000
    duration: float = Field(1.0, gt=0.0, le=600.0)  # seconds: shorter clips are padded, longer ones trimmed
    align: Literal["start", "center"] = "start"

    @property
    def length(self) -> int:
        return max(1, round(self.duration * self.sample_rate))


class AudioSpeechOptions(SyntheticSpeechOptions):
    # class name -> the text spoken for it; a class not named here is spoken as its name
    words: dict[str, str] = Field(default_factory=dict)

    @field_validator("words")
    @classmethod
    def _texts(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not _SPOKEN.match(text):
                raise ValueError(
                    f"expected a word or phrase to speak for class {name!r} (letters, digits, spaces, "
                    f"apostrophes and hyphens, starting with a letter or digit), received {text!r}"
                )
        return value


class AudioOptions(ClipOptions):
    path_fields: ClassVar[dict[str, bool]] = {"path": True}

    path: str = Field(min_length=1)
    labels: Literal["folders", "pattern", "csv"] = "folders"
    pattern: str | None = None
    csv: str | None = None
    synthetic_speech: AudioSpeechOptions | None = None  # extra training clips (module docstring)

    @field_validator("pattern")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                compiled = re.compile(value)
            except re.error as exc:
                raise ValueError(f"expected a regular expression, received {value!r} ({exc})") from None
            if "label" not in compiled.groupindex:
                raise ValueError(f"expected a regular expression with a group (?P<label>...), received {value!r}")
        return value


@SOURCES.component("audio", "audio_folder", options=AudioOptions, primary="path")
def audio(opts: AudioOptions, *, seed: int) -> RawData:
    """A folder of WAV/FLAC recordings; labels from sub-folders, a file-name pattern or a csv."""
    root = resolve_path(opts.path, "data.path", folder=True)
    if opts.labels == "pattern" and opts.pattern is None:
        raise DataError(
            "Missing field `data.pattern`: `labels: pattern` needs a regular expression", field="data.pattern"
        )
    if opts.labels == "csv" and opts.csv is None:
        raise DataError("Missing field `data.csv`: `labels: csv` needs the csv file's name", field="data.csv")
    if opts.labels != "folders":
        files, labels = _labelled(root, opts)
        classes = sorted(set(labels))
        index = {name: i for i, name in enumerate(classes)}
        x = read_clips(files, opts, str(root))
        x_extra, y_extra = _synthetic(opts, classes)
        return RawData(
            x_train=x,
            y_train=np.asarray([index[v] for v in labels]),
            class_names=classes,
            kind="audio",
            x_extra=x_extra,
            y_extra=y_extra,
        )
    split = {p.name for p in _subfolders(root)} == {"train", "test"}
    train_root = root / "train" if split else root
    classes = [p.name for p in _subfolders(train_root)]
    if not classes:
        raise DataError(
            f"Invalid audio folder {train_root} (`data.path`): expected one sub-folder of WAV/FLAC files per class, "
            "found none; or set `labels: pattern` or `labels: csv`",
            field="data.path",
        )
    x_train, y_train = _folders(train_root, classes, opts)
    x_test = y_test = None
    if split:
        unknown = sorted({p.name for p in _subfolders(root / "test")} - set(classes))
        if unknown:
            raise DataError(
                f"Invalid audio folder {root / 'test'}: {len(unknown)} test classes have no training recordings",
                field="data.path",
            )
        x_test, y_test = _folders(root / "test", classes, opts)
    x_extra, y_extra = _synthetic(opts, classes)
    return RawData(
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        class_names=classes,
        kind="audio",
        x_extra=x_extra,
        y_extra=y_extra,
    )


def _synthetic(opts: AudioOptions, classes: list[str]) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Each class's word spoken by the configured voices (training-only clips), or (None, None)."""
    speech = opts.synthetic_speech
    if speech is None:
        return None, None
    unknown = sorted(set(speech.words) - set(classes))
    if unknown:
        raise DataError(
            f"Invalid value for `data.synthetic_speech.words`: expected class names of {classes}, received {unknown}",
            field="data.synthetic_speech.words",
        )
    words = [speech.words.get(name, name.replace("_", " ").replace("-", " ")) for name in classes]
    return render_clips(speech, words, opts.sample_rate, opts.length, opts.align)


def _subfolders(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


def _folders(root: Path, classes: list[str], opts: AudioOptions) -> tuple[np.ndarray, np.ndarray]:
    files: list[Path] = []
    labels: list[int] = []
    for i, name in enumerate(classes):
        found = _audio_files(root / name) if (root / name).is_dir() else []
        files += found
        labels += [i] * len(found)
    if not files:
        raise DataError(f"Invalid audio folder {root} (`data.path`): no WAV or FLAC files found", field="data.path")
    return read_clips(files, opts, str(root)), np.asarray(labels, dtype=np.int64)


def _labelled(root: Path, opts: AudioOptions) -> tuple[list[Path], list[str]]:
    if opts.labels == "pattern":
        regex = re.compile(opts.pattern or "")
        files, labels = [], []
        for file in _audio_files(root):
            match = regex.search(file.name)
            if match is None or not match.group("label"):
                raise DataError(
                    f"Invalid audio file name {file.name} in {root}: `data.pattern` {opts.pattern!r} finds no label in it",
                    field="data.pattern",
                )
            files.append(file)
            labels.append(match.group("label"))
    else:
        table = resolve_path(str(root / (opts.csv or "")), "data.csv")
        files, labels = _csv_rows(root, table)
    if not files:
        raise DataError(f"Invalid audio folder {root} (`data.path`): no WAV or FLAC files found", field="data.path")
    return files, labels


def _csv_rows(root: Path, table: Path) -> tuple[list[Path], list[str]]:
    try:
        rows = list(csv.reader(table.read_text(encoding="utf-8").splitlines()))
    except (UnicodeDecodeError, csv.Error):
        raise DataError(
            f"Cannot read {table} (`data.csv`): expected UTF-8 csv rows file,label", field="data.csv"
        ) from None
    if rows and [c.strip().lower() for c in rows[0]] == ["file", "label"]:
        rows = rows[1:]
    files, labels = [], []
    for line, row in enumerate(rows, start=2):
        if len(row) != 2 or not row[0].strip() or not row[1].strip():
            raise DataError(
                f"Invalid row {line} of {table} (`data.csv`): expected two columns file,label, received {len(row)}",
                field="data.csv",
            )
        file = (root / row[0].strip()).resolve()
        if not file.is_relative_to(root.resolve()) or not file.is_file():
            raise DataError(
                f"Invalid row {line} of {table} (`data.csv`): expected a file inside {root}, the named file is not one",
                field="data.csv",
            )
        files.append(file)
        labels.append(row[1].strip())
    return files, labels


def read_clips(files: Sequence[Path], opts: ClipOptions, shown: str) -> np.ndarray:
    """Decode, resample and pad/trim every file: float32 ``[len(files), opts.length]``."""
    limits = AudioLimits(sample_rate=opts.sample_rate, resample=True)
    out = np.empty((len(files), opts.length), dtype=np.float32)
    access = current_access()
    total = 0  # bytes read so far, against the server's cap
    for i, file in enumerate(files):
        if access is not None:  # a symlink in an allowed folder may lead anywhere
            real = access.check_file_in(file, "data.path")
            total += real.stat().st_size
            access.check_size(total, "data.path", shown)
        samples, _ = decode_audio(
            file.read_bytes(), source=str(file), limits=limits, error=DataError, field="data.path"
        )
        out[i] = fit_length(samples, opts.length, opts.align)
    return out
