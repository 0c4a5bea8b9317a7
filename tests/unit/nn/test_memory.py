"""A model too large for memory is refused from its spec, before any weight is allocated."""

from __future__ import annotations

import json
import resource

import pytest
import torch

from modelyard.errors import ResourceError
from modelyard.nn import build_model, parameter_count
from modelyard.nn.builder import spec_parameters
from modelyard.nn.memory import available_bytes, check_fits, check_training_memory
from tests.support.cli import run_cli

HUGE = {"input": [100_000], "layers": [{"dense": 64}, {"dense": 1_000_000}, {"dense": 1_000_000}]}


def test_parameter_counts_from_the_spec_equal_the_built_networks() -> None:
    spec = {"input": [1, 28, 28], "layers": [{"conv2d": 8, "kernel": 3}, "batchnorm", "flatten", {"dense": 10}]}
    counted = spec_parameters(spec)
    assert [field for field, _, _ in counted] == [f"model.layers[{i}]" for i in range(4)]
    network = build_model(spec)
    buffers = sum(b.numel() for b in network.buffers())
    assert sum(n for _, n, _ in counted) == parameter_count(network) + buffers
    assert all(size == 4 or size == 8 for _, _, size in counted)  # float32 weights (int64 batch-norm counter)


def test_a_layer_of_terabytes_is_refused_in_milliseconds_without_allocating() -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ResourceError) as info:
        build_model(HUGE)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    message = info.value.message
    assert info.value.field == "model.layers[2]"  # the largest layer (1e12 weights)
    assert "Invalid value for `model.layers[2]`" in message and "GB" in message and "available" in message
    assert "1,000,001,000,000 of them in this layer" in message  # 1e6 x 1e6 weights + 1e6 biases
    assert "\n" not in message
    assert grown_kib < 200_000  # nothing near the 4 TB the weights would take


def test_training_needs_room_for_gradients_and_optimizer_state() -> None:
    layers = [("model.layers[0]", 1_000_000, 4)]  # 4 MB of weights
    check_fits(layers, available=5_000_000)  # the weights fit
    with pytest.raises(ResourceError, match="16.0 MB|0.0 GB") as info:
        check_training_memory(layers, available=5_000_000)
    assert "training (weights, gradients, optimizer state)" in info.value.message
    assert available_bytes() is None or available_bytes() > 0


def test_train_refuses_it_with_one_line_and_exit_code_2(tmp_path) -> None:  # noqa: ANN001
    spec = tmp_path / "huge.yaml"
    spec.write_text(
        "name: huge\ndata: {source: digits}\nmodel: {input: [64], layers: [{dense: 4000000}, {dense: 4000000}]}\n"
        "train: {loss: cross_entropy, optimizer: adam, lr: 0.001, batch_size: 32, epochs: 1}\n"
    )
    result = run_cli("train", str(spec))
    assert result.code == 2, result.err
    assert result.err.startswith("error: Invalid value for `model.layers[1]`") and result.err.count("\n") == 1
    assert json.loads(run_cli("runs", "--json").out) == []  # refused before a run was created


def test_meta_builds_leave_the_default_device_alone() -> None:
    spec_parameters(HUGE)
    assert torch.empty(1).device.type == "cpu"


@pytest.mark.parametrize(
    "spec",
    [
        {"input": [4], "layers": [{"dense": 2**64}]},  # torch: "Overflow when unpacking long long" (a TypeError)
        {"input": [2**64], "layers": [{"dense": 2}]},
        {"input": [2**62], "layers": [{"dense": 2**62}]},  # "Storage size calculation overflowed" (RuntimeError)
    ],
)
def test_sizes_past_64_bits_are_a_resource_error_naming_the_layer(spec: dict) -> None:
    with pytest.raises(ResourceError) as info:
        build_model(spec)
    assert info.value.field == "model.layers[0]" and "make the layer or its input smaller" in info.value.message
