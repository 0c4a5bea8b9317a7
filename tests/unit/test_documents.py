"""Strict JSON (and YAML numbers) from untrusted text: every refusal is a 4xx error naming what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard._documents import load_json
from modelyard.errors import InputError, SpecError
from modelyard.inputs import read_inputs
from modelyard.spec import apply_overrides, read_spec_file

HUGE = "9" * 5000  # past Python's 4,300-digit int-to-str limit


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b'{"lr": NaN}', "received NaN"),
        (b'{"lr": -Infinity}', "received -Infinity"),
        (b'{"n": ' + b"9" * 5000 + b"}", "at most 4,300 digits"),  # a bare ValueError from json.loads before
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"a": 1', "Malformed JSON body at line 1"),
        (b"\xff{}", "expected UTF-8 text, received byte 0xff"),
    ],
)
def test_load_json_is_strict_and_every_refusal_is_a_4xx_naming_body(raw: bytes, fragment: str) -> None:
    with pytest.raises(InputError) as info:
        load_json(raw, InputError)
    assert fragment in info.value.message and info.value.field == "body" and info.value.http_status < 500
    assert load_json(b'{"a": [1, 2.5, true, null]}', InputError) == {"a": [1, 2.5, True, None]}


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_a_spec_file_with_a_huge_integer_is_a_spec_error_not_an_internal_error(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"spec{suffix}"
    path.write_text(f'{{"name": "t", "seed": {HUGE}}}' if suffix == ".json" else f"name: t\nseed: {HUGE}\n")
    with pytest.raises(SpecError) as info:
        read_spec_file(path)
    assert "4,300 digits" in info.value.message and str(path) in info.value.message
    assert apply_overrides({"seed": 0}, [f"seed={HUGE}"])["seed"] == HUGE  # a string: validation words it


def test_an_input_file_with_a_huge_integer_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text(f'{{"instances": [[1, {HUGE}]]}}')
    with pytest.raises(InputError) as info:
        read_inputs(path, [2])
    assert "4,300 digits" in info.value.message and str(path) in info.value.message
