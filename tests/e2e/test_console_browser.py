"""The web console in headless Chromium against a real `python -m modelyard server` process:
submit a spec through the form → watch the learning curve → deploy the registered version
→ draw a digit (and upload an image) in the playground → read the prediction; type a
sentence for a text model → predict → explain, its tokens highlighted over the text.

The console's answers are checked against the API's for the same input, and the drawing's
downsampling against exact area averages. Screenshots go to $MODELYARD_SCREENSHOTS (default:
the test's tmp_path).
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from tests.support.browser import needs_chromium, running_server, shot, wait
from tests.support.serving import register  # noqa: E402

pytestmark = needs_chromium


def api_predict(url: str, deployment: str, body: bytes, content_type: str) -> dict[str, Any]:
    r = httpx.post(
        f"{url}/v1/deployments/{deployment}/predict", content=body, headers={"content-type": content_type}, timeout=30
    )
    assert r.status_code == 200, r.text
    return r.json()


def area_reference(canvas_png: bytes, rows: int, cols: int, fit: float) -> np.ndarray:
    """The drawing → model input by exact area averages, from a summed-area table.

    The integral of a piecewise-constant image is bilinear inside each pixel, so bilinear
    interpolation of the summed-area table gives the exact ink over any fractional
    rectangle; outside the canvas there is no ink (the table is clamped).
    """
    from PIL import Image

    ink = np.asarray(Image.open(io.BytesIO(canvas_png)).convert("RGB"), dtype=np.float64)[:, :, 0] / 255
    height, width = ink.shape
    table = np.zeros((height + 1, width + 1))
    table[1:, 1:] = ink.cumsum(0).cumsum(1)

    def integral(y: float, x: float) -> float:
        y, x = min(max(y, 0.0), height), min(max(x, 0.0), width)
        y0, x0 = min(int(y), height - 1), min(int(x), width - 1)
        fy, fx = y - y0, x - x0
        return (
            (1 - fy) * (1 - fx) * table[y0, x0]
            + (1 - fy) * fx * table[y0, x0 + 1]
            + fy * (1 - fx) * table[y0 + 1, x0]
            + fy * fx * table[y0 + 1, x0 + 1]
        )

    ys, xs = np.nonzero(ink > 0.02)
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    side = max(x1 - x0, y1 - y0)
    left, top = (x0 + x1) / 2 - side / 2, (y0 + y1) / 2 - side / 2
    target = max(1, round(fit * min(rows, cols)))
    step = side / target
    out = np.zeros((rows, cols))
    oy, ox = (rows - target) // 2, (cols - target) // 2
    for r in range(target):
        for c in range(target):
            a, b = top + r * step, left + c * step
            area = integral(a + step, b + step) - integral(a, b + step) - integral(a + step, b) + integral(a, b)
            out[oy + r, ox + c] = min(1.0, area / step**2)
    return out


def draw_digit(driver: Any, canvas: Any) -> None:
    """A '7': a top bar and a diagonal stroke, drawn with the mouse."""
    from selenium.webdriver.common.action_chains import ActionChains

    # Offsets are from the canvas centre (280x280 CSS pixels).
    strokes = [[(-70, -90), (-20, -92), (30, -92), (70, -90)], [(70, -90), (40, -30), (10, 30), (-15, 100)]]
    for stroke in strokes:
        chain = ActionChains(driver, duration=20).move_to_element_with_offset(canvas, *stroke[0]).click_and_hold()
        for point, previous in zip(stroke[1:], stroke):
            chain = chain.move_by_offset(point[0] - previous[0], point[1] - previous[1])
        chain.release().perform()


def test_submit_watch_deploy_predict(server: str, browser: Any, screenshots: Path, tmp_path: Path, home: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver = browser
    # A tabular model for the playground's feature form, deployed while the digits train.
    tabular = register("clf", home)
    assert (
        httpx.post(
            f"{server}/v1/deployments", json={"name": "iris", "model": tabular, "backend": "torch"}, timeout=30
        ).status_code
        == 201
    )
    driver.get(server + "/#/jobs")
    spec = wait(driver, "the job form", lambda d: d.find_element(By.ID, "job-spec"))
    assert "name: digits-mlp" in spec.get_attribute("value")
    driver.find_element(By.ID, "job-overrides").send_keys("train.epochs=12")
    example = spec.get_attribute("value")
    driver.find_element(By.ID, "job-submit").click()
    # A second run (through the API) for the comparison page; it queues behind the first.
    other = {"spec": example, "overrides": ["train.epochs=6", "train.lr=0.0005"]}
    second = httpx.post(f"{server}/v1/jobs", json=other, timeout=30).json()

    # The job page follows the run live: the curve grows to all 12 epochs.
    wait(driver, "the job page", lambda d: d.current_url.split("#")[-1].startswith("/jobs/j-"))
    job_id = driver.current_url.split("/")[-1]
    curve = wait(driver, "the learning curve", lambda d: d.find_element(By.CSS_SELECTOR, ".curves[data-points]"))
    wait(
        driver,
        "12 epochs on the curve and the job done",
        lambda d: (
            curve.get_attribute("data-points") == "12"
            and d.find_element(By.ID, "view").get_attribute("data-status") == "succeeded"
        ),
    )
    streamed = driver.execute_script("return window.modelyard.jobEvents")
    assert streamed["job"] == job_id and streamed["epochs"] >= 1  # epochs arrived over the event stream
    charts = driver.find_elements(By.CSS_SELECTOR, ".curves .chart canvas")
    assert len(charts) == 2  # loss and metrics
    job = httpx.get(f"{server}/v1/jobs/{job_id}").json()
    assert job["status"] == "succeeded" and len(job["history"]) == 12
    wait(
        driver,
        "the log",
        lambda d: "registered" in d.find_element(By.ID, "job-log").text or d.find_element(By.ID, "job-log").text,
    )
    shot(driver, screenshots, "1-job-learning-curve.png")

    # The registered version: metrics, confusion matrix (stored by this spec), deploy form.
    driver.find_element(By.ID, "job-model").click()
    matrix = wait(driver, "the confusion matrix", lambda d: d.find_element(By.ID, "confusion-matrix"))
    cells = [int(td.text) for td in matrix.find_elements(By.CSS_SELECTOR, "tbody td")]
    assert len(cells) == 100 and sum(cells) == 360
    name = driver.find_element(By.ID, "deploy-name")
    name.clear()
    name.send_keys("digits-web")
    Select(driver.find_element(By.ID, "deploy-backend")).select_by_value("torch")
    monitor = driver.find_element(By.ID, "deploy-monitor")
    monitor.clear()
    monitor.send_keys("0.5")  # half the predictions logged for the Monitor page
    driver.find_element(By.ID, "deploy-submit").click()
    wait(
        driver,
        "the deployment to run",
        lambda d: (
            d.current_url.endswith("#/deployments/digits-web")
            and d.find_element(By.ID, "view").get_attribute("data-status") == "running"
        ),
    )

    # Playground: draw, predict, and compare with the API on the same instance.
    driver.find_element(By.ID, "open-playground").click()
    canvas = wait(driver, "the drawing pad", lambda d: d.find_element(By.ID, "draw-canvas"))
    draw_digit(driver, canvas)
    driver.find_element(By.ID, "draw-predict").click()
    label = wait(driver, "the prediction", lambda d: d.find_element(By.ID, "prediction-label"))
    state = driver.execute_script("return window.modelyard.playground")
    sent = state["lastRequest"]["body"]
    assert np.asarray(sent["instances"]).shape == (1, 64)
    assert 0 <= min(sent["instances"][0]) and max(sent["instances"][0]) <= 16  # the digits' value range
    expected = api_predict(server, "digits-web", json.dumps(sent).encode(), "application/json")
    assert label.text == expected["predictions"][0]["label"] == state["lastAnswer"]["predictions"][0]["label"]
    np.testing.assert_allclose(
        state["lastAnswer"]["predictions"][0]["probabilities"], expected["predictions"][0]["probabilities"], atol=1e-6
    )
    bars = driver.find_elements(By.CSS_SELECTOR, "#prediction-probabilities .bar-row")
    assert len(bars) == 10
    shot(driver, screenshots, "2-playground-prediction.png")

    # What was sent is the drawing, area-averaged (checked with a summed-area table).
    png = base64.b64decode(
        driver.execute_script("return window.modelyard.draw.canvas.toDataURL('image/png')").split(",", 1)[1]
    )
    want = area_reference(png, 8, 8, 1.0) * 16
    np.testing.assert_allclose(np.asarray(sent["instances"][0]).reshape(8, 8), want, atol=2e-3)  # JSON keeps 3 decimals

    # Upload: the PNG's bytes go to the deployment unchanged.
    from PIL import Image

    digit = np.zeros((8, 8), dtype=np.uint8)
    digit[1:7, 4] = 255
    path = tmp_path / "one.png"
    Image.fromarray(digit).save(path)
    driver.find_element(By.ID, "upload-file").send_keys(str(path))
    wait(
        driver,
        "the upload's answer",
        lambda d: d.execute_script(
            "const s = window.modelyard.playground; return s.lastRequest && s.lastRequest.contentType === 'image/png' && s.lastAnswer"
        ),
    )
    answer = driver.execute_script("return window.modelyard.playground.lastAnswer")
    assert answer["predictions"] == api_predict(server, "digits-web", path.read_bytes(), "image/png")["predictions"]

    # A tabular model: one field per feature.
    driver.get(server + "/#/playground/iris")
    fields = wait(
        driver, "the feature form", lambda d: d.find_elements(By.CSS_SELECTOR, "#features-form input.feature")
    )
    assert [f.get_attribute("name") for f in fields] == ["x1", "x2", "x3", "x4"]
    for field, value in zip(fields, ("5.1", "3.5", "1.4", "0.2")):
        field.clear()
        field.send_keys(value)
    wait(driver, "the iris replica", lambda d: httpx.get(f"{server}/v1/deployments/iris").json()["status"] == "running")
    driver.find_element(By.ID, "features-predict").click()
    label = wait(
        driver,
        "the tabular prediction",
        lambda d: d.execute_script(
            "const s = window.modelyard.playground; return s.lastAnswer && s.lastAnswer.predictions && s.lastAnswer.predictions[0].label"
        ),
    )
    sent = driver.execute_script("return window.modelyard.playground.lastRequest.body")
    assert sent == {"instances": [[5.1, 3.5, 1.4, 0.2]]}
    assert (
        label == api_predict(server, "iris", json.dumps(sent).encode(), "application/json")["predictions"][0]["label"]
    )

    # The deployment page shows the traffic the playground (and this test) made.
    driver.get(server + "/#/deployments/digits-web")
    wait(
        driver,
        "the request count",
        lambda d: int(d.find_element(By.ID, "view").get_attribute("data-requests") or 0) >= 4,
        30,
    )
    assert "running" in driver.find_element(By.ID, "deployment-summary").text
    assert httpx.get(f"{server}/v1/deployments/digits-web").json()["options"]["monitor_sample"] == 0.5
    assert driver.find_element(By.ID, "open-monitor").get_attribute("href").endswith("#/monitor/digits-web")
    shot(driver, screenshots, "3-deployment.png")

    # Run comparison: both runs in the metrics table and on the overlaid curves.
    wait(
        driver,
        "the second job",
        lambda d: httpx.get(f"{server}/v1/jobs/{second['id']}").json()["status"] == "succeeded",
    )
    driver.get(server + "/#/runs")
    boxes = wait(
        driver,
        "the runs list",
        lambda d: (
            len(d.find_elements(By.CSS_SELECTOR, "input.pick")) == 2 and d.find_elements(By.CSS_SELECTOR, "input.pick")
        ),
    )
    for box in boxes:
        box.click()
    driver.find_element(By.ID, "compare-runs").click()
    table = wait(driver, "the comparison", lambda d: d.find_element(By.ID, "compare-table"))
    assert len(table.find_elements(By.CSS_SELECTOR, "tbody tr")) == 2
    assert "test accuracy" in table.text and "best val_accuracy" in table.text
    overlaid = driver.find_elements(By.CSS_SELECTOR, ".curves .chart")
    assert len(overlaid) >= 4 and all(c.get_attribute("data-points") in ("12", "6") for c in overlaid)
    shot(driver, screenshots, "4-compare-runs.png")

    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], errors


def test_the_playground_predicts_and_explains_typed_text(
    server: str, browser: Any, home: Path, screenshots: Path
) -> None:
    """A text model's playground: a textarea, the prediction as the API gives it, and Explain's
    highlighted tokens in the route's order, over the typed characters (a non-BMP emoji and a
    double space included, so offsets must count code points as Python does)."""
    from selenium.webdriver.common.by import By

    from tests.support.text_models import register as register_text

    ref = register_text("transformer", home)
    made = httpx.post(
        f"{server}/v1/deployments", json={"name": "intents-web", "model": ref, "backend": "torch"}, timeout=30
    )
    assert made.status_code == 201, made.text
    wait(
        browser,
        "the text replica",
        lambda d: httpx.get(f"{server}/v1/deployments/intents-web").json()["status"] == "running",
    )
    driver = browser
    driver.get(server + "/#/playground/intents-web")
    box = wait(driver, "the text box", lambda d: d.find_element(By.ID, "text-input"))
    assert not driver.find_elements(By.ID, "features-form") and not driver.find_elements(By.ID, "draw-canvas")
    sentence = "Book a FLIGHT 🛫 to  Paris!"
    driver.execute_script("arguments[0].value = arguments[1]", box, sentence)  # chromedriver types BMP characters only
    box.send_keys(" ok")
    sentence += " ok"
    driver.find_element(By.ID, "text-predict").click()
    label = wait(driver, "the text prediction", lambda d: d.find_element(By.ID, "prediction-label"))
    state = driver.execute_script("return window.modelyard.playground")
    assert state["lastRequest"]["body"] == {"instances": [sentence]}
    expected = api_predict(server, "intents-web", json.dumps({"instances": [sentence]}).encode(), "application/json")
    assert label.text == expected["predictions"][0]["label"]
    np.testing.assert_allclose(
        state["lastAnswer"]["predictions"][0]["probabilities"], expected["predictions"][0]["probabilities"], atol=1e-6
    )
    assert len(driver.find_elements(By.CSS_SELECTOR, "#prediction-probabilities .bar-row")) == 3

    driver.find_element(By.ID, "text-explain").click()
    shown = wait(driver, "the explanation", lambda d: d.find_element(By.ID, "explanation-text"))
    r = httpx.post(f"{server}/v1/deployments/intents-web/explain", json={"instances": [sentence]}, timeout=60)
    assert r.status_code == 200, r.text
    item = r.json()["explanations"][0]
    assert item["label"] == label.text  # the target defaults to the predicted class
    spans = shown.find_elements(By.CSS_SELECTOR, "span.token")
    got = [
        (s.get_attribute("data-token"), int(s.get_attribute("data-start")), int(s.get_attribute("data-end")),
         float(s.get_attribute("data-attribution")), s.text)
        for s in spans
    ]  # fmt: skip
    want = [
        (t["token"], t["start"], t["end"], t["attribution"], sentence[t["start"] : t["end"]])
        for t in item["tokens"]
        if not t["special"]
    ]
    assert [g[:3] + (g[4],) for g in got] == [w[:3] + (w[4],) for w in want]
    np.testing.assert_allclose([g[3] for g in got], [w[3] for w in want], rtol=1e-6)
    assert "🛫" in [g[4] for g in got]
    # the highlighted text is the typed text, character for character
    assert driver.execute_script("return arguments[0].textContent", shown) == sentence
    for span, (_, _, _, value, _) in zip(spans, want):  # green raised the probability, red lowered it
        color = driver.execute_script("return getComputedStyle(arguments[0]).backgroundColor", span)
        assert color.startswith("rgba(22, 163, 74" if value >= 0 else "rgba(220, 38, 38"), (color, value)
    assert "convergence delta" in driver.find_element(By.ID, "explanation").text
    shot(driver, screenshots, "playground-text-explanation.png")

    box.clear()
    driver.find_element(By.ID, "text-explain").click()  # empty text: the route's one line, shown as an error
    wait(
        driver,
        "the refusal",
        lambda d: "expected text with at least one token" in d.find_element(By.ID, "explanation-box").text,
    )
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE" and "explain" not in e["message"]]
    assert errors == [], errors


def test_sign_in_with_a_token_then_write_with_the_csrf_token(home: Path, tmp_path: Path, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    made = subprocess.run(
        [sys.executable, "-m", "modelyard", "server", "token", "create", "--role", "admin"],
        env={**os.environ, "MODELYARD_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    with running_server(home, tmp_path / "server.log") as url:
        assert httpx.get(f"{url}/v1/jobs").status_code == 401  # a token exists: the API is closed
        driver = browser
        driver.get(url + "/#/jobs")
        field = wait(driver, "the sign-in form", lambda d: d.find_element(By.ID, "token"))
        field.send_keys("not-a-token")
        driver.find_element(By.CSS_SELECTOR, "#login-form button").click()
        wait(driver, "the refusal", lambda d: "Invalid token" in d.find_element(By.ID, "login-form").text)
        field.clear()
        field.send_keys(token)
        driver.find_element(By.CSS_SELECTOR, "#login-form button").click()
        wait(driver, "the job form", lambda d: d.find_element(By.ID, "job-spec"))
        assert "signed in (admin)" in driver.find_element(By.ID, "who").text
        assert token not in driver.execute_script("return document.cookie")  # HttpOnly session cookie
        driver.find_element(By.ID, "job-overrides").send_keys("train.epochs=1")
        driver.find_element(By.ID, "job-submit").click()  # a cookie-carried write: needs X-CSRF-Token
        wait(driver, "the job page", lambda d: d.current_url.split("#")[-1].startswith("/jobs/j-"))
        jobs = httpx.get(f"{url}/v1/jobs", headers={"authorization": f"Bearer {token}"}).json()["jobs"]
        assert len(jobs) == 1 and jobs[0]["submitted_by"]


def test_the_model_catalog_shows_kind_parent_and_aliases(
    server: str, browser: Any, home: Path, screenshots: Path
) -> None:
    from selenium.webdriver.common.by import By

    from modelyard.store import ModelStore

    parent = register("clf", home, seed=1)
    int8 = register("clf", home, seed=2, lineage={"parent": parent, "operation": "quantize", "options": {}})
    register("clf", home, seed=3)
    assert httpx.put(f"{server}/v1/models/clf/aliases/production", json={"version": 2}, timeout=30).status_code == 200
    driver = browser
    driver.get(server + "/#/models")
    grid = wait(driver, "the versions table", lambda d: d.find_element(By.CSS_SELECTOR, "table.grid"))
    rows = {r.find_element(By.CSS_SELECTOR, "td").text: r.text for r in grid.find_elements(By.CSS_SELECTOR, "tbody tr")}
    assert set(rows) == {parent, int8, "clf:3"}
    assert "int8" in rows[int8] and parent in rows[int8] and "production" in rows[int8]
    assert "trained" in rows["clf:3"] and "production" not in rows["clf:3"]
    shot(driver, screenshots, "models-kinds-aliases.png")
    ModelStore(home).delete(parent)  # the int8 copy stays and names its deleted parent
    driver.get(server + f"/#/models/clf/{int8.split(':')[1]}")
    facts = wait(driver, "the version's facts", lambda d: d.find_element(By.CSS_SELECTOR, "dl.facts"))
    wait(driver, "the kind", lambda d: "int8" in facts.text)
    assert f"{parent} (deleted)" in facts.text and "production" in facts.text
    driver.get(server + "/#/models")
    wait(driver, "the deleted parent", lambda d: f"{parent} (deleted)" in d.find_element(By.ID, "view").text)


def test_the_tunes_page_shows_trials_history_and_importances(
    server: str, browser: Any, home: Path, screenshots: Path
) -> None:
    from selenium.webdriver.common.by import By

    import modelyard
    from tests.support.tuning import SEARCH, tiny_spec

    result = modelyard.tune(tiny_spec(epochs=3), SEARCH, trials=4, metric="val_accuracy", pruner="none", study="t")
    driver = browser
    driver.get(server + "/#/tunes")
    wait(driver, "the study list", lambda d: "t" in [a.text for a in d.find_elements(By.CSS_SELECTOR, "table.grid a")])
    driver.get(server + "/#/tunes/t")
    facts = wait(driver, "the study's facts", lambda d: d.find_element(By.CSS_SELECTOR, "dl.facts"))
    wait(driver, "the best trial", lambda d: result.model_ref in facts.text)
    chart = wait(driver, "the history chart", lambda d: d.find_element(By.CSS_SELECTOR, ".chart[data-points='4']"))
    assert chart.get_attribute("data-title") == "val_accuracy by trial"
    tables = driver.find_elements(By.CSS_SELECTOR, "table.grid")
    trial_rows = tables[-1].find_elements(By.CSS_SELECTOR, "tbody tr")
    assert [r.find_elements(By.CSS_SELECTOR, "td")[5].text for r in trial_rows] == [t["run_id"] for t in result.trials]
    shot(driver, screenshots, "tunes.png")
