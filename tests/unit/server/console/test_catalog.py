"""The console's read-only catalog: runs, model versions, input hints, confusion matrices.

Confusion matrices are checked against scikit-learn's ``confusion_matrix`` of the model's
own predictions on its evaluation split (the stored one and the computed one alike).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix

from modelyard.data import prepare
from modelyard.predict import Predictor
from modelyard.server.console.catalog import input_hints
from modelyard.workflow import eval_split
from tests.support.console import client, mini_app, train_digits
from tests.support.serving import register

pytestmark = pytest.mark.anyio


def sklearn_confusion(ref: str, home: Path) -> list[list[int]]:
    model = Predictor.load(ref, home=home)
    _, split = eval_split(prepare(model.spec.data, task=model.spec.task, seed=model.spec.seed))
    predicted = model.predict_tensor(split.x).argmax(dim=1).numpy()
    return confusion_matrix(split.y.numpy(), predicted, labels=list(range(10))).tolist()


async def test_runs_list_and_detail(home: Path) -> None:
    ref = train_digits(home)
    async with client(mini_app(home)) as http:
        runs = (await http.get("/v1/runs")).json()["runs"]
        assert len(runs) == 1
        run = runs[0]
        assert run["model_ref"] == ref and run["status"] == "succeeded" and run["epochs"] == 3
        assert "history" not in run and "spec" not in run and run["last_epoch"]["epoch"] == 3
        assert run["summary"]["test"]["accuracy"] > 0.5
        detail = (await http.get(f"/v1/runs/{run['id']}")).json()
        assert [row["epoch"] for row in detail["history"]] == [1, 2, 3]
        assert detail["spec"]["name"] == "digits-small"
        missing = await http.get("/v1/runs/r-20000101-abcdef")
        assert missing.status_code == 404 and missing.json()["error"] == "NotFoundError"
        bad = await http.get("/v1/runs?status=runing")
        assert bad.status_code == 400 and "did you mean 'running'" in bad.json()["message"]


async def test_version_detail_with_stored_confusion_matrix(home: Path) -> None:
    ref = train_digits(home, metrics=["accuracy", "confusion_matrix"])
    name, version = ref.split(":")
    async with client(mini_app(home)) as http:
        listed = (await http.get("/v1/models")).json()["models"]
        assert [m["ref"] for m in listed] == [ref]
        assert "history" not in listed[0]["metrics"] and "confusion_matrix" not in listed[0]["metrics"]["test"]
        detail = (await http.get(f"/v1/models/{name}/versions/{version}")).json()
    assert [row["epoch"] for row in detail["history"]] == [1, 2, 3]
    schema = detail["schema"]
    assert schema["input_shape"] == [64] and schema["class_names"] == [str(i) for i in range(10)]
    assert schema["input_hints"]["image"] == {"height": 8, "width": 8, "channels": 1, "max_value": 16.0, "fit": 1.0}
    cm = detail["confusion_matrix"]
    assert cm["source"] == "metrics.json" and cm["split"] == "test" and cm["labels"] == schema["class_names"]
    assert cm["matrix"] == sklearn_confusion(ref, home)


async def test_confusion_matrix_is_computed_when_not_stored(home: Path) -> None:
    ref = train_digits(home)
    name, version = ref.split(":")
    app = mini_app(home)
    async with client(app) as http:
        detail = (await http.get(f"/v1/models/{name}/versions/{version}")).json()
        assert detail["confusion_matrix"] is None
        cm = (await http.get(f"/v1/models/{name}/versions/{version}/confusion_matrix")).json()
        assert cm["source"] == "computed" and cm["split"] == "test"
        assert cm["matrix"] == sklearn_confusion(ref, home)
        assert np.sum(cm["matrix"]) == 360  # 20 % of scikit-learn's 1797 digits
        again = (await http.get(f"/v1/models/{name}/versions/{version}")).json()
        assert again["confusion_matrix"] == cm  # cached in memory after the first request


async def test_confusion_matrix_errors(home: Path) -> None:
    reg = register("reg", home)
    name, version = reg.split(":")
    async with client(mini_app(home)) as http:
        r = await http.get(f"/v1/models/{name}/versions/{version}/confusion_matrix")
        assert r.status_code == 400 and "regression model" in r.json()["message"]
        r = await http.get("/v1/models/nope/versions/1")
        assert r.status_code == 404 and r.json()["error"] == "NotFoundError"
        r = await http.get(f"/v1/models/{name}/versions/7")
        assert r.status_code == 404 and "its versions are 1" in r.json()["message"]


def test_input_hints_follow_the_training_images():
    def spec(source: str) -> dict:
        return {"data": {"source": {"type": source, "options": {}}}}

    fashion = input_hints({"input_shape": [784]}, spec("fashion-mnist"), "image")
    assert fashion["image"] == {"height": 28, "width": 28, "channels": 1, "max_value": 255.0, "fit": 20 / 28}
    assert fashion["features"] is None
    rgb = input_hints({"input_shape": [3, 32, 32]}, spec("images"), "image")["image"]
    assert (rgb["height"], rgb["width"], rgb["channels"], rgb["max_value"]) == (32, 32, 3, 255.0)
    table = input_hints({"input_shape": [3], "feature_names": ["age", "income", "score"]}, spec("csv"), "tabular")
    assert table == {"image": None, "features": ["age", "income", "score"], "text": None, "audio": None}
    unnamed = input_hints({"input_shape": [2], "feature_names": None}, spec("xor"), "tabular")
    assert unnamed["features"] == ["x1", "x2"]
    text = input_hints({"input_shape": [], "feature_names": ["text"]}, {"model": {"input": [32]}}, "text")
    assert text == {
        "image": None,
        "features": None,
        "text": {"max_tokens": 32},
        "audio": None,
    }  # a text box, not one field
    # A digits model reshaped to [1, 8, 8] is still drawn as an 8x8 digit in 0..16.
    assert input_hints({"input_shape": [1, 8, 8]}, spec("digits"), "tabular")["image"]["max_value"] == 16.0


async def test_a_raw_audio_model_gets_a_recorder_at_its_sample_rate_not_one_field_per_sample(home: Path) -> None:
    ref = register("wav", home)  # logmel at 8 kHz over [800] samples
    name, version = ref.split(":")
    async with client(mini_app(home)) as http:
        hints = (await http.get(f"/v1/models/{name}/versions/{version}")).json()["schema"]["input_hints"]
    assert hints == {"image": None, "features": None, "text": None, "audio": {"sample_rate": 8000, "seconds": 0.1}}
    # The same shape without a logmel/mfcc first layer is a row of 800 features.
    plain = input_hints({"input_shape": [800], "feature_names": None}, {}, "tabular")
    assert plain["audio"] is None and len(plain["features"]) == 800


async def test_a_computed_confusion_matrix_reads_only_the_servers_data_folders(home: Path, tmp_path: Path) -> None:
    # A model trained on the user's own machine (the CLI reads any file), then looked at in the
    # console: a read request must not make the server read a file outside its data folders.
    from modelyard.server.config import ServerConfig
    from modelyard.workflow import train

    data = tmp_path / "data"
    data.mkdir()
    rows = "a,b,y\n" + "".join(f"{i % 5},{i % 3},{'cat' if i % 2 else 'dog'}\n" for i in range(40))
    for folder in (tmp_path, data):
        (folder / "pets.csv").write_text(rows)
    spec = {
        "name": "pets",
        "data": {"source": "csv", "path": str(tmp_path / "pets.csv"), "target": "y", "test": 0.25},
        "model": {"input": [2], "layers": [{"dense": 2, "activation": "softmax"}]},
        "train": {"loss": "cross_entropy", "optimizer": "adam", "lr": 0.01, "epochs": 1, "checkpoint": False},
    }
    train(spec, home=home, progress=False)
    spec["name"], spec["data"]["path"] = "pets-inside", str(data / "pets.csv")
    train(spec, home=home, progress=False)
    async with client(mini_app(home, config=ServerConfig(home=home, data_dirs=[data]))) as http:
        r = await http.get("/v1/models/pets/versions/1/confusion_matrix")
        assert r.status_code == 403 and r.json()["field"] == "data.path", r.text
        assert "outside the server's data folders" in r.json()["message"]
        inside = await http.get("/v1/models/pets-inside/versions/1/confusion_matrix")
        assert inside.status_code == 200 and np.sum(inside.json()["matrix"]) == 10, inside.text


async def test_versions_carry_kind_lineage_and_aliases(home: Path) -> None:
    from modelyard.store import ModelStore

    parent = register("clf", home, seed=1)
    child = register("clf", home, seed=2, lineage={"parent": parent, "operation": "quantize", "options": {}})
    ModelStore(home).set_alias(child, "staging")
    async with client(mini_app(home)) as http:
        listed = {m["ref"]: m for m in (await http.get("/v1/models")).json()["models"]}
        assert (listed[child]["kind"], listed[child]["parent"], listed[child]["aliases"]) == (
            "int8",
            parent,
            ["staging"],
        )
        assert (listed[parent]["kind"], listed[parent]["parent"], listed[parent]["aliases"]) == ("trained", None, [])
        detail = (await http.get("/v1/models/clf/versions/1")).json()
        assert detail["derived"] == [{"model": child, "kind": "int8"}] and detail["parent_deleted"] is False
        ModelStore(home).delete(parent)
        detail = (await http.get("/v1/models/clf/versions/2")).json()
    assert (detail["parent"], detail["parent_deleted"], detail["aliases"]) == (parent, True, ["staging"])
