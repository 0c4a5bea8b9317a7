"""Plots: metric grouping, PNG output of the expected size, and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modelyard.errors import DataError
from modelyard.plots import confusion_matrix, learning_curves, metric_families

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HISTORY = [
    {"epoch": 1, "loss": 1.2, "val_loss": 1.4, "accuracy": 0.5, "val_accuracy": 0.45, "lr": 0.1, "cm": [[1]]},
    {"epoch": 2, "loss": 0.8, "val_loss": 1.0, "accuracy": 0.7, "val_accuracy": 0.6, "lr": 0.05},
    {"epoch": 3, "loss": 0.5, "val_loss": float("nan"), "accuracy": 0.8, "val_accuracy": 0.7, "lr": 0.01},
]


def read_png(path: Path) -> np.ndarray:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_metric_families_group_splits() -> None:
    assert metric_families(HISTORY) == {
        "loss": ["loss", "val_loss"],
        "accuracy": ["accuracy", "val_accuracy"],
        "lr": ["lr"],
    }
    assert metric_families([{"epoch": 1, "train_mse": 1.0, "test_mse": 2.0, "flag": True}]) == {
        "mse": ["train_mse", "test_mse"]
    }


def test_learning_curves_writes_one_panel_per_family(tmp_path: Path) -> None:
    out = learning_curves(HISTORY, tmp_path / "plots" / "curves.png", title="fashion-mlp")
    assert out == tmp_path / "plots" / "curves.png"
    pixels = read_png(out)
    assert pixels.shape == (320, 1260, 3)  # 3 families side by side: 3 x 4.2 in by 3.2 in at 100 dpi
    assert out.stat().st_size > 10_000
    assert (pixels < 250).any() and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20  # something drawn
    assert sorted(p.name for p in out.parent.iterdir()) == ["curves.png"]  # no temp file left


def test_learning_curves_wrap_into_rows_of_three(tmp_path: Path) -> None:
    four = learning_curves([{**row, "f1": 0.5} for row in HISTORY], tmp_path / "four.png")
    assert read_png(four).shape == (640, 1260, 3)  # 4 families: 2 rows of 3


def test_learning_curves_need_numbers(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="expected a history of per-epoch metric dicts with numbers, received 1 epoch"):
        learning_curves([{"epoch": 1, "cm": [[1]]}], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_confusion_matrix_ten_long_class_names(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    matrix = (rng.integers(0, 20, size=(10, 10)) + np.eye(10, dtype=int) * 200).tolist()
    names = [f"a very long class name number {i} with words" for i in range(9)] + ["Ünïcødé ✓ 猫"]
    out = confusion_matrix(matrix, names, tmp_path / "cm.png")
    pixels = read_png(out)
    side = 4.0 + 0.45 * 10
    assert pixels.shape == (round(side * 100), round((side + 1.5) * 100), 3)
    assert out.stat().st_size > 10_000
    normalized = read_png(confusion_matrix(matrix, names, tmp_path / "cm_norm.png", normalize=True))
    assert normalized.shape == pixels.shape and not np.array_equal(normalized, pixels)


def test_confusion_matrix_default_names_and_zero_rows(tmp_path: Path) -> None:
    out = confusion_matrix([[0, 0], [0, 0]], None, tmp_path / "zeros.png", normalize=True)
    assert read_png(out).shape[2] == 3


@pytest.mark.parametrize(
    ("matrix", "names", "message"),
    [
        ([[1, 2, 3], [4, 5, 6]], None, r"expected a square N x N list of counts, received shape \(2, 3\)"),
        ([[1, 2], [3]], None, "expected a square list of lists of counts"),
        ([], None, "expected a square N x N"),
        ([[1, 0], [0, 1]], ["cat"], "`class_names`: expected 2 names"),
    ],
)
def test_confusion_matrix_bad_input(tmp_path: Path, matrix: list, names: list | None, message: str) -> None:
    with pytest.raises(DataError, match=message):
        confusion_matrix(matrix, names, tmp_path / "bad.png")
