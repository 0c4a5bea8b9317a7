"""The training reference of a model version: what its served inputs and outputs are compared with.

Written at registration as ``reference.safetensors`` in the version folder (tensors only, no
pickle): a sample of the training split's features (reduced to at most ``MAX_FEATURES`` columns by
``reduce_features``, so an image is a coarse average-pooled view), their quantiles, min, max and
missing rate, and the model's outputs (softmax for classification) on a held-out sample of the
evaluation split. The served side reduces request features with the same function.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

__all__ = [
    "REFERENCE_FILE",
    "MAX_FEATURES",
    "OUTPUT_ROWS",
    "SAMPLE_ROWS",
    "Reference",
    "build_reference",
    "load_reference",
    "reduce_features",
    "model_outputs",
    "reference_files",
    "sample_rows",
    "output_rows",
]

REFERENCE_FILE = "reference.safetensors"
MAX_FEATURES = 64  # columns kept per instance: per-feature tests stay cheap and few (multiple testing)
SAMPLE_ROWS = 1000  # training rows kept: the feature KS tests' reference sample
# Held-out rows whose model outputs are kept: the output KS tests' reference. With 1,000 the
# reference's own sampling noise cost the Fashion-MNIST MLP's output test a tenth of its power at
# 100 requests (translation detected 86% -> 90%, 5,000 rows; benchmarks/results/monitor_bench.md).
OUTPUT_ROWS = 5000
QUANTILES = 101  # 0%, 1%, ..., 100%: the PSI bins and the sketch shown by `modelyard monitor`


def reduce_features(x: torch.Tensor) -> torch.Tensor:
    """``[N, ...]`` features → ``[N, <= MAX_FEATURES]`` float32 (average pooling of the flattened instance)."""
    flat = x.detach().to("cpu", torch.float32).reshape(x.shape[0], -1)
    if flat.shape[1] <= MAX_FEATURES:
        return flat.contiguous()
    return F.adaptive_avg_pool1d(flat.unsqueeze(1), MAX_FEATURES).squeeze(1).contiguous()


@torch.no_grad()
def model_outputs(network: Any, x: torch.Tensor, *, batch: int = 1024) -> torch.Tensor:
    """What the served model answers for ``x``: ``network.probabilities`` of its outputs, as ``Predictor``."""
    was_training = network.training
    network.eval()
    try:
        outs = [network.probabilities(network(x[i : i + batch])).float() for i in range(0, x.shape[0], batch)]
    finally:
        network.train(was_training)
    return torch.cat(outs).reshape(x.shape[0], -1).cpu().contiguous()


@dataclass(frozen=True, eq=False)  # compared (and hashed, for drift's caches) by identity: it holds tensors
class Reference:
    """A version's reference; ``outputs`` are model outputs on ``outputs_rows`` held-out instances."""

    sample: torch.Tensor  # [n, d] reduced training features
    quantiles: torch.Tensor  # [QUANTILES, d]
    minimum: torch.Tensor  # [d]
    maximum: torch.Tensor  # [d]
    missing_rate: torch.Tensor  # [d] fraction of NaN in the training split
    outputs: torch.Tensor  # [m, k]
    meta: dict[str, Any]

    @property
    def features(self) -> int:
        return int(self.sample.shape[1])

    def to_bytes(self) -> bytes:
        from safetensors.torch import save

        tensors = {
            "sample": self.sample,
            "quantiles": self.quantiles,
            "min": self.minimum,
            "max": self.maximum,
            "missing_rate": self.missing_rate,
            "outputs": self.outputs,
        }
        return save({k: v.contiguous() for k, v in tensors.items()}, metadata={"meta": json.dumps(self.meta)})

    @classmethod
    def from_bytes(cls, data: bytes) -> Reference:
        from safetensors.torch import load  # tensors and a JSON header: nothing in it runs code

        tensors = load(data)
        meta = json.loads(_metadata(data).get("meta", "{}"))
        return cls(
            sample=tensors["sample"],
            quantiles=tensors["quantiles"],
            minimum=tensors["min"],
            maximum=tensors["max"],
            missing_rate=tensors["missing_rate"],
            outputs=tensors["outputs"],
            meta=meta,
        )


def _metadata(data: bytes) -> dict[str, str]:
    """The safetensors header's ``__metadata__`` (8-byte little-endian length, then JSON)."""
    size = int.from_bytes(data[:8], "little")
    return dict(json.loads(data[8 : 8 + size]).get("__metadata__") or {})


def sample_rows(n: int, rows: int, seed: int) -> torch.Tensor:
    """The sorted indices of the ``rows`` of ``n`` that a reference keeps (all of them when ``n <= rows``)."""
    if n <= rows:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:rows].sort().values


def _sample(x: torch.Tensor, rows: int, seed: int) -> torch.Tensor:
    return x if x.shape[0] <= rows else x[sample_rows(x.shape[0], rows, seed)]


def output_rows(heldout_rows: int, seed: int) -> torch.Tensor:
    """Which rows of the held-out split a reference built with ``seed`` took its model outputs on."""
    return sample_rows(heldout_rows, OUTPUT_ROWS, seed + 1)


def build_reference(
    network: torch.nn.Module, train_x: torch.Tensor, heldout_x: torch.Tensor, *, task: str, seed: int = 0
) -> Reference:
    """The reference of ``network`` trained on ``train_x``; outputs on a sample of ``heldout_x`` (never trained on)."""
    full = reduce_features(train_x)  # statistics over the whole split, the KS sample a subset
    nan = torch.isnan(full)
    qs = torch.linspace(0, 1, QUANTILES, dtype=torch.float64)
    quantiles = torch.nanquantile(full[:200_000].double(), qs, dim=0).float()  # nanquantile has a size limit
    finite = torch.where(nan, torch.zeros_like(full), full)
    big = torch.finfo(torch.float32).max
    minimum = torch.where(nan, torch.full_like(full, big), finite).min(dim=0).values
    maximum = torch.where(nan, torch.full_like(full, -big), finite).max(dim=0).values
    held = heldout_x[output_rows(heldout_x.shape[0], seed)]
    device = next((p.device for p in network.parameters()), torch.device("cpu"))
    outputs = model_outputs(network, held.to(device))
    return Reference(
        sample=_sample(full, SAMPLE_ROWS, seed).contiguous(),
        quantiles=quantiles.contiguous(),
        minimum=minimum.contiguous(),
        maximum=maximum.contiguous(),
        missing_rate=nan.float().mean(dim=0).contiguous(),
        outputs=outputs,
        meta={
            "task": task,
            "input_shape": list(train_x.shape[1:]),
            "reduced": int(train_x[0].numel()) > MAX_FEATURES,
            "train_rows": int(train_x.shape[0]),
            "output_rows": int(held.shape[0]),
        },
    )


def reference_files(network: torch.nn.Module, train: Any, heldout: Any, *, task: str, seed: int) -> dict[str, bytes]:
    """``{REFERENCE_FILE: bytes}`` for registration; empty for streamed splits (not held in memory)."""
    if not isinstance(getattr(train, "x", None), torch.Tensor) or not isinstance(
        getattr(heldout, "x", None), torch.Tensor
    ):
        return {}
    return {REFERENCE_FILE: build_reference(network, train.x, heldout.x, task=task, seed=seed).to_bytes()}


def load_reference(version: Any) -> Reference | None:
    """The reference of a registered version (its checksum checked); None for one registered before it existed."""
    if not (version.path / REFERENCE_FILE).is_file():
        return None
    return Reference.from_bytes(version.file(REFERENCE_FILE).read_bytes())
