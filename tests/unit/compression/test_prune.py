"""Pruning: exact fractions by magnitude; structured pruning really removes units, same outputs."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from modelyard.compression import prune as pr
from modelyard.errors import InputError
from modelyard.nn import build_model
from modelyard.spec import ModelSpec
from tests.support.compression import CONV, DENSE


def _net(spec: dict, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(spec, loss="cross_entropy").eval()


def _full_spec(model: dict) -> dict:
    """The resolved {"model": ...} form that stored specs have (types + complete options)."""
    return {"model": ModelSpec.model_validate(model).model_dump(mode="json")}


@pytest.mark.parametrize("fraction", [0.3, 0.5, 0.9])
def test_unstructured_pruning_zeroes_exactly_the_smallest_fraction(fraction: float) -> None:
    net = _net(CONV)
    before = {n: m.weight.detach().clone() for n, m in net.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))}
    pr.prune_unstructured(net, fraction)
    pr.finalize_unstructured(net)
    for name, module in net.named_modules():
        if name not in before:
            continue
        w, original = module.weight.detach(), before[name]
        n = w.numel()
        zeros = int((w == 0).sum())
        assert zeros == round(fraction * n)  # torch's rule: round(amount * n) weights per layer
        # Reference: the kept weights are exactly the n - k largest |w|, unchanged.
        keep = torch.topk(original.abs().flatten(), n - zeros).indices
        mask = torch.zeros(n, dtype=torch.bool)
        mask[keep] = True
        assert torch.equal(w.flatten()[mask], original.flatten()[mask])
        assert not any(k.endswith("_orig") or k.endswith("_mask") for k in net.state_dict())  # plain weights again


@pytest.mark.parametrize("bad", [0, 1, 1.0, -0.1, 1.5, True, "half", None])
def test_fraction_outside_zero_one_is_a_one_line_error(bad: object) -> None:
    with pytest.raises(InputError) as err:
        pr.check_fraction(bad)
    assert err.value.field == "--prune" and "between 0 and 1" in err.value.message and "\n" not in err.value.message


def _masked(net: nn.Module, plan: pr.StructuredPlan) -> nn.Module:
    """The big network with the removed units' weights and biases set to zero."""
    masked = copy.deepcopy(net)
    for i, keep in plan.keep.items():
        layer = masked.layers[i]
        core = layer.linear if hasattr(layer, "linear") else layer.conv
        drop = torch.ones(core.weight.shape[0], dtype=torch.bool)
        drop[keep] = False
        with torch.no_grad():
            core.weight[drop] = 0
            core.bias[drop] = 0
    return masked


@pytest.mark.parametrize("model,shape", [(DENSE, (20,)), (CONV, (1, 10, 10))])
def test_structured_pruning_removes_units_and_matches_the_masked_network(model: dict, shape: tuple) -> None:
    net = _net(model)
    spec = _full_spec(model)
    plan = pr.plan_structured(net, spec, 0.5)
    small, new_spec = pr.prune_structured(net, spec, plan, loss="cross_entropy")
    x = torch.randn(16, *shape)
    with torch.no_grad():
        assert torch.allclose(small(x), _masked(net, plan)(x), atol=1e-5)
    sizes = [layer["options"].get("units", layer["options"].get("filters")) for layer in new_spec["model"]["layers"]]
    old = [layer["options"].get("units", layer["options"].get("filters")) for layer in spec["model"]["layers"]]
    for i in plan.keep:
        assert sizes[i] == old[i] - round(0.5 * old[i])  # half the units are gone from the spec
    assert sizes[-1] == old[-1]  # the output layer keeps its classes
    assert sum(p.numel() for p in small.parameters()) < 0.6 * sum(p.numel() for p in net.parameters())
    # The kept units are the ones with the largest weight norms.
    first = net.layers[0].linear.weight if hasattr(net.layers[0], "linear") else net.layers[0].conv.weight
    norms = first.detach().reshape(first.shape[0], -1).norm(dim=1)
    assert set(plan.keep[0].tolist()) == set(torch.topk(norms, len(plan.keep[0])).indices.tolist())


def test_structured_pruning_slices_batch_norm_between_layers() -> None:
    model = {
        "input": [12],
        "layers": [{"dense": 10, "activation": "relu"}, "batchnorm", {"dense": 4, "activation": "softmax"}],
    }
    net = _net(model)
    net.layers[1].running_mean.normal_()  # non-trivial statistics to slice
    plan = pr.plan_structured(net, _full_spec(model), 0.4)
    small, _ = pr.prune_structured(net, _full_spec(model), plan, loss="cross_entropy")
    assert torch.equal(small.layers[1].running_mean, net.layers[1].running_mean[plan.keep[0]])
    assert small.layers[2].linear.weight.shape == (4, 6)


def test_structured_pruning_of_a_single_layer_model_is_refused() -> None:
    model = {"input": [5], "layers": [{"dense": 3, "activation": "softmax"}]}
    with pytest.raises(InputError, match="use unstructured pruning"):
        pr.plan_structured(_net(model), _full_spec(model), 0.5)
