"""ModelStore: versions, refs, exact weight round trips, rollback, concurrency, no pickle."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from modelyard import spec as spec_module
from modelyard.errors import InputError, NotFoundError, SpecError, StoreError
from modelyard.store import ModelStore, ModelVersion
from modelyard.store import db as store_db
from modelyard.store import models as models_module
from modelyard.store.refs import NAME_PATTERN

SPEC = {"name": "fashion-mlp", "description": "an MLP", "train": {"loss": {"type": "cross_entropy", "options": {}}}}
PREPROCESS = {"steps": [{"type": "scale", "state": {"min": 0.0, "max": 255.0}}]}


@pytest.fixture(autouse=True)
def _close_engines() -> Iterator[None]:
    yield
    store_db.close_all()


@pytest.fixture
def store() -> ModelStore:
    return ModelStore()


def weights(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"fc.weight": torch.randn(4, 3, generator=g), "fc.bias": torch.randn(4, generator=g)}


def register(store: ModelStore, name: str = "fashion-mlp", seed: int = 0, **kw: object) -> ModelVersion:
    args: dict = {
        "state_dict": weights(seed),
        "spec": SPEC,
        "preprocess": PREPROCESS,
        "metrics": {"accuracy": 0.5 + seed / 100},
    }
    args.update(kw)
    return store.register(name, **args)


def test_register_versions_and_get(store: ModelStore, home: Path) -> None:
    v1 = register(store, seed=1, run_id="r-20261122-abc123", lineage={"parent": None})
    v2 = register(store, seed=2)
    assert (v1.version, v1.ref, v2.ref) == (1, "fashion-mlp:1", "fashion-mlp:2")
    assert v1.path == home / "artifacts" / "models" / "fashion-mlp" / "1" and v1.path.is_dir()
    assert store.get("fashion-mlp") == v2 == store.get("fashion-mlp:latest") == store.get(" fashion-mlp:2 ")
    got = store.get("fashion-mlp:1")
    assert got == v1
    assert got.run_id == "r-20261122-abc123" and got.metrics == {"accuracy": 0.51}
    assert got.lineage == {"parent": None} and got.task == "classification" and got.description == "an MLP"
    assert got.size_bytes == sum(p.stat().st_size for p in got.path.iterdir()) > 0
    assert [v.ref for v in store.versions("fashion-mlp")] == ["fashion-mlp:1", "fashion-mlp:2"]
    register(store, name="another")
    assert [v.ref for v in store.list()] == ["another:1", "fashion-mlp:1", "fashion-mlp:2"]
    assert [v.ref for v in store.list("another")] == ["another:1"]
    assert store.names() == ["another", "fashion-mlp"]


def test_files_round_trip_exactly(store: ModelStore) -> None:
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    state = {
        "a.weight": torch.randn(5, 3, dtype=torch.float64),
        "a.steps": torch.tensor([3, -1], dtype=torch.int64),
        "a.mask": torch.tensor([True, False]),
        "b.half": torch.randn(2, 2).to(torch.bfloat16),
        "b.transposed": base.t(),  # not contiguous
        "tied.1": base,
        "tied.2": base,  # shared storage (tied weights)
        "empty": torch.zeros(0, 3),
        "scalar": torch.tensor(2.5, requires_grad=True),
    }
    mv = store.register(
        "tensors",
        state_dict=state,
        spec=SPEC,
        preprocess=PREPROCESS,
        metrics={"mse": 0.25},
        extra_files={"notes.md": b"# notes\n"},
        task="regression",
    )
    loaded = ModelStore().get("tensors:1").load_state_dict()
    assert set(loaded) == set(state)
    for key, tensor in state.items():
        assert loaded[key].dtype == tensor.dtype and torch.equal(loaded[key], tensor.detach()), key
    assert mv.load_spec() == SPEC
    assert mv.load_preprocess() == PREPROCESS
    assert json.loads((mv.path / "metrics.json").read_text()) == {"mse": 0.25}
    assert mv.read_file("notes.md") == b"# notes\n" and mv.task == "regression"
    with pytest.raises(NotFoundError, match="has no file 'missing.md'"):
        mv.read_file("missing.md")
    with pytest.raises(StoreError, match="expected a plain name"):
        mv.read_file("../../modelyard.db")


@pytest.mark.parametrize(
    "ref", ["a:b:c", "fashion-mlp:0", "fashion-mlp:-1", "Fashion-MLP", "", "x:1.5", "../etc:1", ":3"]
)
def test_malformed_refs(store: ModelStore, ref: str) -> None:
    with pytest.raises(InputError, match=r"expected NAME, NAME:VERSION or NAME@ALIAS such as fashion-mlp:3") as err:
        store.get(ref)
    assert f"Invalid model reference {ref!r}" in str(err.value) and err.value.field == "ref"


def test_unknown_names_and_versions(store: ModelStore) -> None:
    with pytest.raises(NotFoundError, match="no models are registered yet"):
        store.get("fashion-mlp")
    register(store)
    register(store)
    with pytest.raises(
        NotFoundError, match=r"Unknown model 'fashon-mlp'; did you mean 'fashion-mlp'\? \(registered: fashion-mlp\)"
    ):
        store.get("fashon-mlp:1")
    with pytest.raises(NotFoundError, match="Model 'fashion-mlp' has no version 7; its versions are 1, 2"):
        store.get("fashion-mlp:7")
    with pytest.raises(NotFoundError, match="did you mean"):
        store.versions("fashion-mlpp")


@pytest.mark.parametrize("name", ["Upper", "-dash", "has space", "a/b", "../up", "x" * 65, ""])
def test_invalid_names_are_spec_errors(store: ModelStore, name: str, home: Path) -> None:
    with pytest.raises(SpecError, match=r"Invalid value for `name`: expected a string matching") as err:
        register(store, name=name)
    assert err.value.field == "name"
    assert not (home / "artifacts").exists()


def test_name_pattern_matches_spec() -> None:
    assert NAME_PATTERN == spec_module._NAME_PATTERN


def test_failed_weights_write_rolls_back(store: ModelStore, monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    import safetensors.torch

    register(store)

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        register(store)
    folder = home / "artifacts" / "models" / "fashion-mlp"
    assert sorted(p.name for p in folder.iterdir()) == ["1"]  # no temp folder, no version 2
    assert [v.ref for v in store.list()] == ["fashion-mlp:1"]
    monkeypatch.undo()
    assert register(store).version == 2


def test_failure_between_rename_and_commit_rolls_back(
    store: ModelStore, monkeypatch: pytest.MonkeyPatch, home: Path
) -> None:
    def broken() -> object:
        raise RuntimeError("crash after rename")

    monkeypatch.setattr(models_module, "utcnow", broken)  # called after the folder is renamed into place
    with pytest.raises(RuntimeError, match="crash after rename"):
        register(store)
    assert list((home / "artifacts" / "models" / "fashion-mlp").iterdir()) == []
    assert store.list() == []
    monkeypatch.undo()
    assert register(store).version == 1


def test_concurrent_registrations_get_distinct_versions(home: Path) -> None:
    results: list[tuple[int, int]] = []
    errors: list[BaseException] = []

    def worker(seed: int) -> None:
        try:
            mine = ModelStore()  # its own store object, sharing only the database file
            for k in range(2):
                mv = register(mine, seed=10 * seed + k)
                results.append((mv.version, 10 * seed + k))
        except BaseException as exc:  # noqa: BLE001 - re-raised below in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(v for v, _ in results) == list(range(1, 9))
    store = ModelStore()
    for version, seed in results:  # each folder holds the weights its row was registered with
        loaded = store.get(f"fashion-mlp:{version}").load_state_dict()
        assert all(torch.equal(loaded[k], v) for k, v in weights(seed).items())


def test_delete_removes_row_and_folder_and_never_reuses_numbers(store: ModelStore) -> None:
    v1, v2 = register(store), register(store)
    with pytest.raises(InputError, match="expected an explicit NAME:VERSION"):
        store.delete("fashion-mlp")
    deleted = store.delete("fashion-mlp:latest")
    assert deleted.ref == v2.ref and not v2.path.exists() and v1.path.is_dir()
    with pytest.raises(NotFoundError, match="has no version 2; its versions are 1"):
        store.get("fashion-mlp:2")
    assert register(store).version == 3
    store.delete("fashion-mlp:1")
    store.delete("fashion-mlp:3")
    assert store.list() == [] and register(store).version == 4


def test_a_folder_without_a_row_is_never_overwritten(store: ModelStore, home: Path) -> None:
    # Left by a crash between rename and commit, or the only copy of a version whose row an
    # older database backup lacks: registration refuses instead of replacing its files.
    register(store)
    folder = home / "artifacts" / "models" / "fashion-mlp" / "2"
    folder.mkdir(parents=True)
    (folder / "weights.safetensors").write_bytes(b"the only copy")
    with pytest.raises(StoreError, match=r"Refused to register fashion-mlp:2: its folder .* already exists"):
        register(store)
    assert (folder / "weights.safetensors").read_bytes() == b"the only copy"
    assert [v.ref for v in store.list()] == ["fashion-mlp:1"]
    assert sorted(p.name for p in folder.parent.iterdir()) == ["1", "2"]  # no temp folder left


def test_missing_folder_is_a_store_error(store: ModelStore) -> None:
    mv = register(store)
    for f in mv.path.iterdir():
        f.unlink()
    mv.path.rmdir()
    with pytest.raises(StoreError, match="registered but its folder is missing"):
        store.get(mv.ref)


def test_bad_inputs_write_nothing(store: ModelStore, home: Path) -> None:
    with pytest.raises(StoreError, match=r"`metrics.bad`: expected JSON-compatible"):
        register(store, metrics={"bad": object()})
    with pytest.raises(
        StoreError, match=r"`state_dict\['w'\]`: expected str keys and torch.Tensor values, received list"
    ):
        register(store, state_dict={"w": [1.0, 2.0]})
    with pytest.raises(StoreError, match="pickle data is not stored"):
        register(store, extra_files={"model.bin": b"\x80\x04\x95" + b"\x00" * 10})
    with pytest.raises(StoreError, match="pickle data is not stored"):
        register(store, extra_files={"model.pt": b"anything"})
    with pytest.raises(StoreError, match="expected a plain name"):
        register(store, extra_files={"../evil.txt": b"x"})
    with pytest.raises(StoreError, match="expected a plain name"):
        register(store, extra_files={"spec.json": b"{}"})
    assert store.list() == [] and not (home / "artifacts").exists()


def test_nothing_in_the_store_is_a_pickle(store: ModelStore, home: Path) -> None:
    register(store, extra_files={"labels.txt": b"cat\ndog\n"})
    files = [p for p in home.rglob("*") if p.is_file()]
    assert files
    for path in files:
        head = path.read_bytes()[:4]
        assert not (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")), path
        assert head[:2] != b"PK", path  # torch.save's zip format
    mv = store.get("fashion-mlp")
    with safe_open(str(mv.path / "weights.safetensors"), framework="pt") as f:
        assert sorted(f.keys()) == ["fc.bias", "fc.weight"]
        assert f.metadata() == {"format": "pt"}
    for name in ("spec.json", "preprocess.json", "metrics.json", "lineage.json"):
        json.loads((mv.path / name).read_text())


def test_registration_is_idempotent_per_run(store: ModelStore, home: Path) -> None:
    """A retried job resumes its run; registering again returns the first version, writes nothing."""
    first = register(store, seed=1, run_id="r-20261122-retry1")
    again = register(store, seed=2, run_id="r-20261122-retry1")
    assert again == first and again.ref == "fashion-mlp:1"
    assert torch.equal(again.load_state_dict()["fc.weight"], weights(1)["fc.weight"])
    assert [v.ref for v in store.list()] == ["fashion-mlp:1"]
    assert sorted(p.name for p in (home / "artifacts" / "models" / "fashion-mlp").iterdir()) == ["1"]
    assert store.for_run("r-20261122-retry1") == first and store.for_run("r-other") is None
    assert register(store, seed=3, run_id="r-20261122-retry2").ref == "fashion-mlp:2"
