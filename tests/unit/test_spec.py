"""The Spec: forms, defaults, canonical names, overrides and one-line errors."""

from __future__ import annotations

import json

import pydantic
import pytest
import yaml

from modelyard.errors import SpecError
from modelyard.spec import Spec, load_spec

BASE = {
    "name": "fashion-mlp",
    "data": {"source": "fashion-mnist", "validation": 0.1, "preprocess": ["scale"]},
    "model": {"input": [784], "layers": [{"dense": 256, "activation": "relu"}, {"dense": 10, "activation": "softmax"}]},
    "train": {
        "loss": "cross_entropy",
        "optimizer": "adam",
        "lr": 0.001,
        "batch_size": 128,
        "epochs": 10,
        "metrics": ["accuracy", "f1"],
    },
}


def spec_with(**sections) -> dict:
    data = json.loads(json.dumps(BASE))
    for key, value in sections.items():
        section, _, field = key.partition("__")
        if field:
            data[section][field] = value
        else:
            data[section] = value
    return data


def error_of(data: dict, overrides=()) -> str:
    with pytest.raises(SpecError) as info:
        load_spec(data, overrides)
    msg = info.value.message
    assert "\n" not in msg
    return msg


def test_short_forms_resolve_to_canonical_components():
    spec = load_spec(BASE)
    dense = spec.model.layers[0]
    assert dense.type == "dense" and dense.options["units"] == 256 and dense.options["activation"] == "relu"
    assert spec.train.optimizer.type == "adam"
    assert [m.type for m in spec.train.metrics] == ["accuracy", "f1"]
    assert spec.task == "classification"
    assert spec.data.source.type == "fashion_mnist"


def test_resolved_spec_round_trips_and_is_frozen():
    spec = load_spec(BASE)
    again = load_spec(spec.to_dict())
    assert again == spec
    assert json.loads(spec.to_json()) == spec.to_dict()
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        spec.name = "other"  # type: ignore[misc]


def test_yaml_and_json_files_load_the_same(tmp_path):
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(BASE))
    (tmp_path / "s.json").write_text(json.dumps(BASE))
    assert load_spec(tmp_path / "s.yaml") == load_spec(tmp_path / "s.json") == load_spec(BASE)


def test_all_component_forms_are_equivalent():
    forms = ["sgd", {"sgd": {}}, {"type": "sgd"}, {"type": "sgd", "options": {}}]
    specs = [load_spec(spec_with(train__optimizer=f)) for f in forms]
    assert all(s.train.optimizer == specs[0].train.optimizer for s in specs)
    with_opts = [
        {"sgd": {"momentum": 0.9, "nesterov": True}},
        {"type": "sgd", "momentum": 0.9, "nesterov": True},
    ]
    a, b = (load_spec(spec_with(train__optimizer=f)).train.optimizer for f in with_opts)
    assert a == b and a.options["momentum"] == 0.9 and a.options["nesterov"] is True


def test_overrides_by_dotted_path():
    spec = load_spec(BASE, ["train.lr=0.01", "train.epochs=3", "model.layers.0.dense=64", "data.validation=0.2"])
    assert spec.train.lr == 0.01 and spec.train.epochs == 3
    assert spec.model.layers[0].options["units"] == 64
    assert spec.data.validation == 0.2
    spec = load_spec(BASE, ["train.optimizer=sgd", "train.optimizer.momentum=0.5"])
    assert spec.train.optimizer.type == "sgd" and spec.train.optimizer.options["momentum"] == 0.5


def test_gd_forces_full_batch():
    spec = load_spec(spec_with(train__optimizer="gd", train__batch_size="full"))
    assert spec.train.batch_size == "full"
    data = spec_with(train__optimizer="gd")
    del data["train"]["batch_size"]
    assert load_spec(data).train.batch_size == "full"
    assert "batch_size" in error_of(spec_with(train__optimizer="gd", train__batch_size=32))


@pytest.mark.parametrize(
    ("data", "overrides", "expected"),
    [
        (spec_with(train__lr=-1), (), "Invalid value for `train.lr`: expected a number > 0, received -1"),
        (spec_with(train__lr="fast"), (), "`train.lr`: expected a number, received 'fast'"),
        (spec_with(train__lrr=0.1), (), "unknown field 'lrr'; did you mean 'lr'?"),
        (spec_with(train__optimizer="adamm"), (), "Unknown optimizer 'adamm' for `train.optimizer`"),
        (spec_with(train__loss="cross_entropyy"), (), "did you mean 'cross_entropy'?"),
        (spec_with(model__layers=[{"densse": 10}]), (), "did you mean 'dense'?"),
        (spec_with(model__layers=[{"dense": 10, "activaton": "relu"}]), (), "model.layers[0]"),
        (spec_with(model__input=[0]), (), "`model.input`"),
        (spec_with(data__validation=1.5), (), "`data.validation`: expected a number < 1"),
        (spec_with(data__source="fashion-mnistt"), (), "did you mean"),
        (spec_with(name="Bad Name!"), (), "`name`: expected a string matching"),
        (spec_with(train__batch_size=0), (), "`train.batch_size`"),
        (spec_with(train__epochs=0), (), "`train.epochs`: expected a number >= 1"),
        (BASE, ["trainn.lr=1"], "did you mean 'train'?"),
        (BASE, ["train.lr"], "expected PATH=VALUE"),
        (BASE, ["model.layers.9.dense=3"], "expected a list index below 2"),
    ],
)
def test_errors_name_the_field_expected_and_received(data, overrides, expected):
    assert expected in error_of(data, overrides)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        # The misspelled name beside an option that is itself a component name (`activation`).
        (spec_with(model__layers=[{"densse": 32, "activation": "relu"}]), "Unknown layer 'densse'"),
        (spec_with(model__layers=[{"activation": "relu", "densse": 32}]), "Unknown layer 'densse'"),
        # The misspelled name after one of its options: the option is not taken for the name.
        (spec_with(train__optimizer={"nesterov": True, "sgdd": 0.9}), "Unknown optimizer 'sgdd'"),
        (spec_with(train__schedule={"gamma": 0.5, "setp": 3}), "Unknown schedule 'setp'"),
        (spec_with(train__loss={"delta": 1.0, "hubber": 1.0}), "Unknown loss 'hubber'"),
        (spec_with(train__metrics=["accuracy", {"average": "macro", "f11": "macro"}]), "Unknown metric 'f11'"),
        (spec_with(data__source={"target": "y", "cvs": "a.csv"}), "Unknown data source 'cvs'"),
        (spec_with(data__preprocess=[{"classes": 10, "one_hott": 10}]), "Unknown preprocessing step 'one_hott'"),
    ],
)
def test_a_misspelled_component_name_in_the_short_form_gets_did_you_mean(data, expected):
    message = error_of(data)
    assert message.startswith(expected) and "did you mean" in message


def test_an_unknown_option_of_a_named_component_stays_an_option_error():
    # `dense` is spelled right: `dropuot` is its unknown option, not a misspelled `dropout` layer.
    assert "unknown field 'dropuot'" in error_of(spec_with(model__layers=[{"dense": 10, "dropuot": 0.1}]))
    assert "unknown field 'activaton'; did you mean 'activation'?" in error_of(
        spec_with(model__layers=[{"dense": 10, "activaton": "relu"}])
    )


def test_missing_sections_and_bad_files(tmp_path):
    data = dict(BASE)
    del data["train"]
    assert error_of(data) == "Missing required field `train`"
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ndata: [unclosed\n")
    with pytest.raises(SpecError, match=r"Malformed spec file .*line"):
        load_spec(bad)
    with pytest.raises(SpecError, match="not found"):
        load_spec(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(SpecError, match="expected a mapping"):
        load_spec(tmp_path / "list.yaml")


def test_early_stopping_shorthand():
    spec = load_spec(spec_with(train__early_stopping=True))
    assert spec.train.early_stopping is not None and spec.train.early_stopping.monitor == "val_loss"


def test_spec_class_is_the_public_type():
    assert isinstance(load_spec(BASE), Spec)
