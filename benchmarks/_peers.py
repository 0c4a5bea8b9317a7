"""The peers modelyard is measured against, each written the way its documentation teaches.

Every peer gets the same tensors, the same architecture (784-256-128-10 MLP or the
conv32-pool-conv64-pool-dense10 CNN), Adam lr 1e-3 and batch 128, and returns the same
record: ``{"framework", "samples_per_s", "epoch_s", "accuracy", "precision"}``.
Keras runs in a subprocess (``_keras_peer.py``): TensorFlow and torch each bring their own
OpenMP runtime and thread pools, which fight inside one process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

Record = dict[str, Any]


def torch_model(kind: str) -> nn.Module:
    """The seed network in plain torch (logits out; cross_entropy applies the softmax)."""
    if kind == "mlp":
        return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, 10),
    )


@torch.no_grad()
def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    correct = sum(int((model(x[i : i + 1024]).argmax(1) == y[i : i + 1024]).sum()) for i in range(0, len(x), 1024))
    model.train()
    return correct / len(x)


def dataloader_loop(
    kind: str,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    *,
    epochs: int,
    seed: int,
) -> Record:
    """The PyTorch tutorial loop: TensorDataset + DataLoader(shuffle=True), Adam, loss.item() per step."""
    torch.manual_seed(seed)
    model = torch_model(kind)
    loader = DataLoader(TensorDataset(*train), batch_size=128, shuffle=True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    times = []
    for _ in range(epochs):
        t0, running = time.perf_counter(), 0.0
        for xb, yb in loader:
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            running += loss.item()
        times.append(time.perf_counter() - t0)
    return _record("PyTorch DataLoader loop", len(train[0]), times, _accuracy(model, *test), "fp32")


def lightning_fit(
    kind: str,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    *,
    epochs: int,
    seed: int,
) -> Record:
    """A LightningModule trained by ``Trainer.fit`` on CPU, logging off (the documented minimal setup)."""
    import lightning as L  # an optional extra: imported only when benchmarked

    class Module(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch_model(kind)

        def training_step(self, batch: Any, _: int) -> torch.Tensor:
            xb, yb = batch
            return nn.functional.cross_entropy(self.net(xb), yb)

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    class Timer(L.Callback):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_train_epoch_start(self, *_: Any) -> None:
            self.t0 = time.perf_counter()

        def on_train_epoch_end(self, *_: Any) -> None:
            self.times.append(time.perf_counter() - self.t0)

    L.seed_everything(seed, verbose=False)
    module, timer = Module(), Timer()
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    trainer.fit(module, DataLoader(TensorDataset(*train), batch_size=128, shuffle=True))
    return _record("Lightning", len(train[0]), timer.times, _accuracy(module.net, *test), "fp32")


def keras_fit(
    kind: str,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    *,
    epochs: int,
    seed: int,
    threads: int,
    target: float | None = None,
) -> Record:
    """Keras 3 ``model.fit`` in a subprocess (TensorFlow backend where installed)."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data.npz"
        # Keras convolutions are channels-last: NCHW → NHWC.
        to_np = (lambda t: t.permute(0, 2, 3, 1).numpy()) if kind == "cnn" else (lambda t: t.numpy())
        np.savez(data, x=to_np(train[0]), y=train[1].numpy(), xt=to_np(test[0]), yt=test[1].numpy())
        cmd = [
            sys.executable,
            str(Path(__file__).with_name("_keras_peer.py")),
            kind,
            str(data),
            str(epochs),
            str(seed),
            str(threads),
            str(target or 0),
        ]
        env = {
            **os.environ,
            "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "tensorflow"),
            "TF_CPP_MIN_LOG_LEVEL": "3",
        }
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"Keras peer failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _record(name: str, n: int, times: list[float], accuracy: float, precision: str) -> Record:
    epoch_s = min(times)  # the best epoch: least disturbed by the other processes on the machine
    return {
        "framework": name,
        "samples_per_s": n / epoch_s,
        "epoch_s": epoch_s,
        "accuracy": accuracy,
        "precision": precision,
    }
