"""The explain issue's "done when" on the Fashion-MNIST MLP (examples/fashion_mlp.yaml, 2 epochs).

Integrated gradients on 100 real test images: the attributions of each image sum to
p_target(x) - p_target(baseline) (baseline: the all-black image) within 1e-2 with 200
integration steps, where f(x) and f(baseline) come from ``Predictor.predict``, not from
Captum. A heatmap is written by the CLI, and the HTTP explain route answers JSON and PNG
uploads with the same attributions as the Python API.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import modelyard
from modelyard.data import load_source
from modelyard.explaining import Explainer
from modelyard.predict import Predictor
from modelyard.serving import ServeConfig, create_app
from modelyard.spec import DataSpec
from tests.conftest import EXAMPLES
from tests.support.cli import run_cli

pytestmark = pytest.mark.slow

TOLERANCE = 1e-2  # |sum of attributions - (f(x) - f(baseline))| with 200 steps; measured max 1.6e-3


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    home = tmp_path_factory.mktemp("fashion-explain")
    result = modelyard.train(EXAMPLES / "fashion_mlp.yaml", overrides=["train.epochs=2"], home=home, progress=False)
    assert result.test_metrics["accuracy"] > 0.8
    return home, result.model_ref


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    raw = load_source(DataSpec.model_validate({"source": "fashion-mnist"}).source, seed=0)
    return raw.x_test[:100]  # raw pixels 0..255, flat [784]


def test_integrated_gradients_sum_to_the_output_difference(trained: tuple[Path, str], images: np.ndarray) -> None:
    home, ref = trained
    model = Predictor.load(ref, home=home)
    e = Explainer(model).explain(images, steps=200)
    probs = model.predict(images)
    baseline = model.predict(np.zeros(784, dtype=np.float32))[0]
    assert list(e.targets) == list(probs.argmax(1))
    gap = np.abs(e.attribution_sums - (probs[np.arange(100), e.targets] - baseline[e.targets]))
    print(
        f"\ncompleteness over 100 test images, 200 steps: max {gap.max():.2e}, median {np.median(gap):.2e}; "
        f"mean f(x) - f(baseline) {np.mean(probs.max(1) - baseline[e.targets]):.3f}"
    )
    assert gap.max() < TOLERANCE
    assert np.abs(e.convergence_delta).max() < TOLERANCE
    coarse = Explainer(model).explain(images[:20], steps=20)
    assert np.abs(coarse.convergence_delta).mean() > np.abs(e.convergence_delta[:20]).mean()  # more steps, closer


def test_cli_writes_a_heatmap_of_a_png_image(trained: tuple[Path, str], images: np.ndarray, tmp_path: Path) -> None:
    home, ref = trained
    source = tmp_path / "boot.png"
    Image.fromarray(images[0].reshape(28, 28).astype(np.uint8)).save(source)
    out = tmp_path / "why.png"
    r = run_cli("--home", str(home), "explain", ref, str(source), "--heatmap", str(out), "--steps", "100")
    assert r.code == 0, r.err
    assert "Ankle boot" in r.out and "convergence delta" in r.out
    with Image.open(out) as heat:
        assert heat.size == (224, 224)  # 28 x 28, enlarged 8x by default
    r = run_cli("--home", str(home), "explain", ref, str(source), "--json", "--method", "saliency")
    body = json.loads(r.out)
    assert body["explanations"][0]["label"] == "Ankle boot" and len(body["explanations"][0]["attributions"]) == 784


@pytest.mark.anyio
async def test_http_explain_route(trained: tuple[Path, str], images: np.ndarray) -> None:
    import httpx

    home, ref = trained
    model = Predictor.load(ref, home=home)
    app = create_app([model], ServeConfig(backend="torch"))
    png = io.BytesIO()
    Image.fromarray(images[1].reshape(28, 28).astype(np.uint8)).save(png, format="PNG")
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http,
    ):
        by_json = await http.post(
            "/v1/models/fashion-mlp/explain", json={"instances": images[:2].tolist(), "steps": 100}
        )
        by_png = await http.post(
            "/v1/models/fashion-mlp/explain?steps=100", content=png.getvalue(), headers={"content-type": "image/png"}
        )
        shap = await http.post(
            "/v1/models/fashion-mlp/explain", json={"instances": images[:1].tolist(), "method": "shap"}
        )
    assert by_json.status_code == 200 and by_png.status_code == 200, (by_json.text, by_png.text)
    want = Explainer(model).explain(images[:2], steps=100)
    got = by_json.json()["explanations"]
    np.testing.assert_allclose([g["attributions"] for g in got], want.attributions, rtol=1e-6, atol=1e-9)
    png_item = by_png.json()["explanations"][0]
    np.testing.assert_allclose(png_item["attributions"], want.attributions[1], rtol=1e-6, atol=1e-9)
    with Image.open(io.BytesIO(base64.b64decode(png_item["heatmap_png"]))) as heat:
        assert heat.size == (28, 28)
    assert abs(png_item["convergence_delta"]) < TOLERANCE
    assert shap.status_code == 422 and "use integrated_gradients or saliency" in shap.json()["message"]
