"""Text transformers in ONNX: a dynamic batch and token axis checked against torch, served by the
ONNX Runtime backend cut per batch, and the int8 version `modelyard compress` makes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import torch

from modelyard import workflow
from modelyard.compression import compress, export
from modelyard.compression.onnx_graph import WithActivation, cut_pad_id, export_onnx
from modelyard.nn.masking import cut_padding
from modelyard.predict import Predictor
from modelyard.serving import ServeConfig, create_app
from modelyard.serving.onnx_backend import OnnxBackend
from tests.support.pretrained import tiny_bert
from tests.support.serving import assert_same_predictions, client

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

# Queries of 1 to 9 words (3 to 11 tokens with [CLS] and [SEP]), so batches cut to different lengths.
TEXTS = [
    "cat",
    "the dog sat on a mat",
    "what is my card pin",
    "hello the big red cat ran on the log",
    "dog",
    "how do i reset my bank pin today in paris",
    "hi cat",
]
LENGTH = 16


def _data(folder: Path) -> Path:
    rows = []
    for i in range(120):
        animal = ("cat", "dog")[i % 2]
        words = TEXTS[i % len(TEXTS)].replace("cat", "").replace("dog", "").split()[: 1 + i % 7]
        rows.append({"text": " ".join([*words[: i % 3], animal, *words[i % 3 :]]), "label": animal})
    path = folder / "texts.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _spec(data: Path, layers: list[Any], tokenize: dict[str, Any], name: str) -> dict[str, Any]:
    return {
        "name": name,
        "seed": 0,
        "data": {
            "source": {"jsonl": str(data), "target": "label", "text": "text"},
            "preprocess": [{**tokenize, "max_length": LENGTH}],
        },
        "model": {"input": [LENGTH], "layers": layers},
        "train": {"loss": "cross_entropy", "lr": 0.01, "batch_size": 16, "epochs": 3, "metrics": ["accuracy"]},
    }


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A transformer trained from scratch and a pretrained (tiny BERT) encoder + head, in one store."""
    folder = tmp_path_factory.mktemp("text-onnx")
    home, base = folder / "home", folder / "tiny-bert"
    base.mkdir()
    tiny_bert(base, max_positions=LENGTH)
    data = _data(folder)
    scratch = [
        {"embedding": 100, "dim": 16, "pad": 0},
        "position_embedding",
        {"transformer": 2, "heads": 2, "mlp": 32, "dropout": 0.0},
        {"token_pool": "mean"},
        {"dense": 2},
    ]
    bert = [{"pretrained": str(base), "freeze": "embeddings"}, {"token_pool": "mean"}, {"dense": 2}]
    specs = {
        "scratch": _spec(data, scratch, {"tokenize": None, "vocab_size": 100, "min_frequency": 1}, "scratch-text"),
        "bert": _spec(data, bert, {"tokenize": str(base)}, "bert-text"),
    }
    return home, {k: workflow.train(s, home=home, progress=False).model_ref for k, s in specs.items()}


def _session(data: bytes) -> ort.InferenceSession:
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("kind", ["scratch", "bert"])
def test_the_graph_has_batch_and_token_axes_and_matches_torch_at_every_length(
    models: tuple[Path, dict[str, str]], kind: str
) -> None:
    home, refs = models
    model = Predictor.load(refs[kind], home=home)
    assert cut_pad_id(model.network) == 0
    session = _session(export_onnx(model.network))
    assert [type(d) for d in session.get_inputs()[0].shape] == [str, str]  # batch, tokens
    reference = WithActivation(model.network).eval()
    ids = model.preprocess(TEXTS)  # [7, 16], right-padded with 0
    worst = 0.0
    for batch in (1, 2, 7):
        rows = ids[:batch]
        longest = int((rows != 0).sum(1).max())
        # cut to the batch's longest query, to a shorter prefix, and the full padded length
        for length in sorted({1, longest, LENGTH}):
            x = rows[:, :length]
            with torch.no_grad():
                want = reference(x).numpy()
            got = session.run(None, {"input": x.numpy()})[0]
            worst = max(worst, float(np.abs(got - want).max()))
    assert worst < 1e-5
    # The padding is masked out: a batch cut to its longest query answers as the full-length one.
    np.testing.assert_allclose(
        session.run(None, {"input": cut_padding(ids, 0).numpy()})[0],
        session.run(None, {"input": ids.numpy()})[0],
        atol=1e-6,
    )


def test_the_backend_cuts_each_batch_and_answers_as_predict_tensor(models: tuple[Path, dict[str, str]]) -> None:
    home, refs = models
    model = Predictor.load(refs["scratch"], home=home)
    backend = OnnxBackend.from_predictor(model, threads=1)
    assert backend.pad_id == 0 and backend.call == "session.run"  # bound buffers need fixed axes
    ids = model.preprocess(TEXTS)
    np.testing.assert_allclose(backend.predict_array(ids), model.predict_tensor(ids).numpy(), atol=1e-5)
    # The cached model.onnx has the token axis; one exported before it (fixed length) is replaced.
    cached = model.version.path / "model.onnx"
    assert _session(cached.read_bytes()).get_inputs()[0].shape[1] == "tokens"
    fixed = torch.onnx.export  # an old-style graph: the same network with a fixed token axis
    import io
    import warnings

    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fixed(
            WithActivation(model.network).eval(),
            (ids[:2],),
            buffer,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    cached.write_bytes(buffer.getvalue())
    again = OnnxBackend.from_predictor(Predictor.load(refs["scratch"], home=home), threads=1)
    assert again.pad_id == 0 and _session(cached.read_bytes()).get_inputs()[0].shape[1] == "tokens"
    old = OnnxBackend(buffer.getvalue(), threads=1, pad_id=0)  # a fixed-length graph is never cut
    assert old.pad_id is None
    np.testing.assert_allclose(old.predict_array(ids), model.predict_tensor(ids).numpy(), atol=1e-5)


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["scratch", "bert"])
async def test_served_onnx_text_predictions_equal_torch(models: tuple[Path, dict[str, str]], kind: str) -> None:
    home, refs = models
    model = Predictor.load(refs[kind], home=home)
    name = model.version.name
    app = create_app([model], ServeConfig(backend="onnx", max_batch_size=4, max_wait_ms=5))
    async with client(app) as http:
        listing = (await http.get("/v1/models")).json()
        assert listing["models"][0]["backend"]["name"] == "onnx"
        r = await http.post(f"/v1/models/{name}/predict", json={"instances": TEXTS})
        assert r.status_code == 200, r.text
        assert_same_predictions(r.json()["predictions"], model.records(TEXTS), atol=1e-5)
        alone = [
            (await http.post(f"/v1/models/{name}/predict", json={"instances": [t]})).json()["predictions"][0]
            for t in TEXTS
        ]
        assert_same_predictions(alone, model.records(TEXTS), atol=1e-5)
        for body, message in [
            ({"instances": ["cat", 3]}, "`instances[1]`: expected a string, received a JSON number"),
            ({"instances": []}, "expected a list of strings (text instances), received an empty list"),
        ]:
            bad = await http.post(f"/v1/models/{name}/predict", json=body)
            assert bad.status_code == 422 and message in bad.json()["message"], bad.text


# scratch trains its tokenizer: compress re-creates the test split with the stored one (a WordPiece
# re-training does not reproduce it), tests/unit/test_trained_tokenizer_versions.py.
@pytest.mark.parametrize("kind", ["scratch", "bert"])
def test_int8_compress_of_a_text_model_is_a_loadable_version_served_from_its_int8_graph(
    models: tuple[Path, dict[str, str]], kind: str
) -> None:
    home, refs = models
    result = compress(refs[kind], quantize="int8", home=home, rounds=1)
    parent, model = Predictor.load(refs[kind], home=home), Predictor.load(result.model_ref, home=home)
    record = json.loads(model.version.read_file("compression.json"))
    assert record["quantization"]["mode"] == "dynamic"
    assert record["onnx"]["file"] == "model.int8.onnx", record["onnx"]
    assert record["onnx"]["check"]["class_agreement"] >= 0.97
    probabilities = model.predict(TEXTS)
    assert probabilities.shape == (len(TEXTS), 2)
    assert (probabilities.argmax(1) == parent.predict(TEXTS).argmax(1)).mean() >= 6 / 7
    backend = OnnxBackend.from_predictor(model, threads=1)
    assert backend.graph == "model.int8.onnx" and backend.pad_id == 0
    graph = _session((model.version.path / "model.int8.onnx").read_bytes())
    assert graph.get_inputs()[0].shape[1] == "tokens"
    ids = model.preprocess(TEXTS)
    # Each instance alone (dynamic int8 quantizes per batch): the cut run equals the full-length one.
    for row in ids:
        np.testing.assert_allclose(
            backend.predict_array(row[None]), graph.run(None, {"input": row[None].numpy()})[0], atol=0.05
        )
    assert (backend.predict_array(ids).argmax(1) == model.predict_tensor(ids).numpy().argmax(1)).mean() >= 6 / 7
    exported = export(result.model_ref, home=home)
    assert exported.check["class_agreement"] >= 0.97
