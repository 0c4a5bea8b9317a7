"""Decode request bodies into model inputs and encode outputs into JSON predictions.

Decoding runs in the request's own handler, before the batch queue, so an instance of the
wrong shape, dtype or with non-finite numbers fails alone with a 422 that names what the
model expects and what it received; a text model takes strings (at most ``max_text_chars``
each; its tokenizer truncates to the model's length). Only JSON and PNG/JPEG bytes are ever decoded: there
is no path from any content type to pickle or another code-executing format.

Encoding matches ``Predictor.records``: ``{"label", "probabilities"}`` for classifiers and
``{"value"}`` for regression. Non-finite model outputs (NaN/Infinity) are a defined
answer, not a 500: those numbers become ``null`` (and so does the label of that instance),
and the response carries a ``warnings`` list naming the affected instances.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelyard.errors import InputError, InvalidInstancesError, MalformedRequestError

__all__ = ["instances_array", "text_array", "image_array", "encode_predictions", "refuse_booleans"]

_KIND_NAMES = {"b": "true/false values", "U": "strings", "S": "strings", "O": "mixed or out-of-range values"}


def refuse_booleans(payload: Any) -> None:
    """A 422 for true/false among the instances: numpy would silently read them as 1 and 0."""
    if not isinstance(payload, dict) or not isinstance(payload.get("instances"), list):
        return
    stack: list[Any] = [payload["instances"]]
    while stack:
        value = stack.pop()
        if isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, bool):
            raise InvalidInstancesError(
                "Invalid value for `instances`: expected numbers, received true/false values", field="instances"
            )


def instances_array(payload: Any, input_shape: list[int], input_dtype: str = "float32") -> np.ndarray:
    """``{"instances": [...]}`` → float32 array of shape (N, *input_shape), or a 422."""
    expect = f"a list of instances of shape {input_shape} ({input_dtype})"
    instances = _instances(payload, expect)
    try:
        arr = np.asarray(instances)
    except (ValueError, TypeError):  # ragged nesting, or deeper than numpy allows
        raise InvalidInstancesError(
            f"Invalid value for `instances`: expected {expect}, received lists of uneven lengths", field="instances"
        ) from None
    if arr.dtype.kind not in "iuf":
        got = _KIND_NAMES.get(arr.dtype.kind, str(arr.dtype))
        raise InvalidInstancesError(
            f"Invalid value for `instances`: expected numbers ({input_dtype}) in {expect}, received {got}",
            field="instances",
        )
    if list(arr.shape[1:]) != list(input_shape):
        raise InvalidInstancesError(
            f"Invalid value for `instances`: expected {expect}, received {len(arr)} instance(s) of shape {list(arr.shape[1:])}",
            field="instances",
        )
    with np.errstate(over="ignore"):
        out = arr.astype(np.float32)
    finite = np.isfinite(out).reshape(len(out), -1).all(axis=1)
    if not finite.all():
        bad = int(np.argmin(finite))
        raise InvalidInstancesError(
            f"Invalid value for `instances[{bad}]`: expected finite float32 numbers, received a value out of range",
            field=f"instances[{bad}]",
        )
    if input_dtype == "int64" and not np.array_equal(out, np.round(out)):
        raise InvalidInstancesError(
            f"Invalid value for `instances`: expected integer token ids ({input_dtype}), received fractional numbers",
            field="instances",
        )
    return out


def text_array(payload: Any, *, max_chars: int) -> np.ndarray:
    """``{"instances": ["a sentence", ...]}`` → a 1-D object array of str, or a 422."""
    expect = "a list of strings (text instances)"
    instances = _instances(payload, expect)
    for i, text in enumerate(instances):
        if not isinstance(text, str):
            raise InvalidInstancesError(
                f"Invalid value for `instances[{i}]`: expected a string, received a JSON {_json_type(text)}",
                field=f"instances[{i}]",
            )
        if len(text) > max_chars:
            raise InvalidInstancesError(
                f"Invalid value for `instances[{i}]`: expected at most {max_chars} characters, received {len(text)}",
                field=f"instances[{i}]",
            )
    out = np.empty(len(instances), dtype=object)
    out[:] = instances
    return out


def image_array(data: bytes, input_shape: list[int], *, source: str, max_pixels: int) -> np.ndarray:
    """PNG/JPEG bytes → one raw sample; undecodable or oversized images are a 400."""
    from modelyard.inputs import image_to_array

    if not data:
        raise MalformedRequestError(f"Empty image upload {source}: expected PNG or JPEG bytes")
    try:  # image_decode picks the PNG or JPEG reader from the signature: no other format reaches Pillow
        return image_to_array(data, input_shape, source=source, max_pixels=max_pixels)
    except InputError as exc:
        raise MalformedRequestError(exc.message) from None


def audio_array(
    data: bytes, length: int, *, source: str, sample_rate: int, max_seconds: float, resample: bool, align: str
) -> np.ndarray:
    """WAV/FLAC bytes → one raw sample ``[length]`` at the model's ``sample_rate``, padded or trimmed
    as in training. Not a WAV/FLAC file or undecodable: 400; too long or at another rate: 422."""
    from modelyard.audio_decode import AudioLimits, decode_audio, fit_length

    limits = AudioLimits(max_seconds=max_seconds, sample_rate=sample_rate, resample=resample)
    samples, _ = decode_audio(
        data, source=source, limits=limits, error=MalformedRequestError, too_long=InvalidInstancesError
    )
    return fit_length(samples, length, align)


def encode_predictions(out: np.ndarray, task: str, labels_from: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """Model outputs (N, k) → (records, warnings); see the module docstring for NaN/Inf."""
    rows = out.reshape(len(out), -1)
    finite = np.isfinite(rows).all(axis=1)
    warnings: list[str] = []
    if not finite.all():
        bad = np.flatnonzero(~finite).tolist()
        warnings.append(
            f"The model produced non-finite outputs (NaN or Infinity) for instance(s) {bad}; they are returned as null"
        )
    if task == "classification":
        labels = labels_from(out if finite.all() else np.where(np.isfinite(out), out, 0.0))
        records = []
        for i, row in enumerate(rows):
            if finite[i]:
                records.append({"label": labels[i], "probabilities": row.tolist()})
            else:
                records.append({"label": None, "probabilities": [v if np.isfinite(v) else None for v in row.tolist()]})
        return records, warnings
    return [
        {"value": row.tolist() if finite[i] else [v if np.isfinite(v) else None for v in row.tolist()]}
        for i, row in enumerate(rows)
    ], warnings


def _instances(payload: Any, expect: str) -> list[Any]:
    """The non-empty ``instances`` list of a ``{"instances": [...]}`` body, or a 422 naming what is wrong."""
    if not isinstance(payload, dict):
        raise InvalidInstancesError(
            f'Invalid request body: expected a JSON object {{"instances": {expect}}}, received a JSON {_json_type(payload)}'
        )
    extra = sorted(set(payload) - {"instances"})
    if extra:
        raise InvalidInstancesError(
            f"Invalid request body: expected only the key 'instances', received unknown key(s) {extra}", field=extra[0]
        )
    if "instances" not in payload:
        raise InvalidInstancesError(f"Missing field `instances`: expected {expect}", field="instances")
    instances = payload["instances"]
    if not isinstance(instances, list) or not instances:
        got = "an empty list" if instances == [] else f"a JSON {_json_type(instances)}"
        raise InvalidInstancesError(
            f"Invalid value for `instances`: expected {expect}, received {got}", field="instances"
        )
    return instances


def _json_type(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}.get(
        type(value), "null"
    )
