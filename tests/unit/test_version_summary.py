"""`models show` answers from the summary stored at registration, the same as from the network itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelyard.compression import compress, export
from modelyard.predict import Predictor
from modelyard.store import ModelStore
from modelyard.store.records import SUMMARY_FILE
from modelyard.version_summary import show, summarize
from tests.support.cli import run_cli
from tests.support.compression import train_digits
from tests.support.serving import register


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A trained digits model, its int8 (dynamic), pruned and ONNX-exported versions: every registration path."""
    home = tmp_path_factory.mktemp("summaries")
    trained = train_digits(home, epochs=1)
    int8 = compress(trained, quantize="int8", home=home, rounds=1).model_ref
    pruned = compress(trained, prune=0.5, home=home, rounds=1).model_ref
    exported = export(trained, home=home).model_ref
    return home, [trained, int8, pruned, exported]


def _torch_summary(home: Path, ref: str) -> dict:
    p = Predictor.load(ref, home=home)
    return summarize(p.network, p.spec, p.meta, p.input_shape)


def test_each_registration_path_stores_what_the_loaded_network_says(versions: tuple[Path, list[str]]) -> None:
    home, refs = versions
    for ref in refs:
        stored = ModelStore(home).get(ref).load_summary()
        assert stored is not None, ref
        assert stored == json.loads(json.dumps(_torch_summary(home, ref))), ref


def test_show_prints_the_same_from_the_summary_as_from_the_network(
    versions: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    home, refs = versions
    for ref in (refs[0], refs[1]):  # the int8 one counts weights outside `parameters()`
        with monkeypatch.context() as m:
            m.setattr(Predictor, "from_version", _refuse)  # the stored summary alone
            text, as_json = (run_cli("--home", str(home), "models", "show", ref, *flag) for flag in ((), ("--json",)))
        assert text.code == 0 and as_json.code == 0, text.err + as_json.err
        summary = ModelStore(home).get(ref).path / SUMMARY_FILE
        data = summary.read_bytes()
        summary.unlink()  # now it reads as a version from before summaries: the network is loaded
        try:
            assert run_cli("--home", str(home), "models", "show", ref).out == text.out
            assert run_cli("--home", str(home), "models", "show", ref, "--json").out == as_json.out
        finally:
            summary.write_bytes(data)
    assert json.loads(as_json.out)["parameters"] == 64 * 64 + 64 + 64 * 32 + 32 + 32 * 10 + 10


def test_a_version_without_a_summary_is_described_from_its_network(home: Path) -> None:
    ref = register("img", home, summary=False)
    version = ModelStore(home).get(ref)
    assert version.load_summary() is None
    assert show(version) == _torch_summary(home, ref)
    shown = json.loads(run_cli("--home", str(home), "models", "show", ref, "--json").out)
    assert shown["parameters"] == 1 * 4 * 9 + 4 + 4 * 4 * 4 * 3 + 3 and shown["input_shape"] == [1, 8, 8]


def test_a_damaged_summary_is_refused_by_its_checksum(home: Path) -> None:
    ref = register("clf", home)
    path = ModelStore(home).get(ref).path / SUMMARY_FILE
    path.write_text(path.read_text().replace('"parameters": ', '"parameters": 1'))
    shown = run_cli("--home", str(home), "models", "show", ref)
    assert shown.code == 5 and "summary.json is not the file registered" in shown.err


def _refuse(*_args: object, **_kwargs: object) -> None:
    raise AssertionError("models show loaded the network although the version has a summary")
