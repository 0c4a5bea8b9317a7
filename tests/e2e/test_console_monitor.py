"""The console's Monitor page in headless Chromium against a real `modelyard server`.

A digits version is deployed with every request logged, gets noise and real digits and the
true labels of some; the page's checks, most drifted features, alerts and live accuracy must
be the numbers of ``GET /v1/deployments/NAME/monitor`` (fetched here with httpx), printed by
the console's own rounding rule (``fmt`` in js/dom.js, reimplemented below from the
ECMAScript rules of toFixed and toExponential). A window larger than the log shows the
server's 422 line; a deployment without monitoring its 409 line.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from tests.support.browser import needs_chromium, shot, wait
from tests.support.console import train_digits
from tests.support.serving import register

pytestmark = needs_chromium


def js_fmt(value: Any, digits: int = 4) -> str:
    """``fmt(value)`` of js/dom.js: integers as they are, else toFixed(4), toExponential(2) when tiny or huge."""
    if value is None:
        return "–"
    if float(value).is_integer():
        return str(int(value))
    exact = Decimal(value)  # the double's exact value: both JS methods round it half up (the larger n)
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
        exponent = math.floor(math.log10(abs(value)))
        mantissa = (exact / Decimal(10) ** exponent).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        if abs(mantissa) >= 10:
            exponent += 1
            mantissa = (exact / Decimal(10) ** exponent).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        return f"{mantissa}e{exponent:+d}"
    return str(exact.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


def test_js_fmt_follows_the_ecmascript_rules() -> None:
    # Values from node: (0.03125).toFixed(4), (1.2345e-5).toExponential(2), (0.5).toFixed(4), ...
    assert [js_fmt(v) for v in (0.03125, 1.2345e-5, 0.5, 2.0, None, 123456.7, 0.99996, 9.996e-4)] == [
        "0.0313",
        "1.23e-5",
        "0.5000",
        "2",
        "–",
        "1.23e+5",
        "1.0000",
        "1.00e-3",
    ]


def cells(row: Any) -> list[str]:
    from selenium.webdriver.common.by import By

    return [td.text for td in row.find_elements(By.CSS_SELECTOR, "td")]


def assert_page_shows(driver: Any, report: dict[str, Any]) -> None:
    """Every number of the checks, drifted-features and alerts sections against ``report``."""
    from selenium.webdriver.common.by import By

    state = lambda alert: "alert" if alert else "pass"  # noqa: E731
    rows = {
        r.get_attribute("data-check"): cells(r)
        for r in driver.find_elements(By.CSS_SELECTOR, "#monitor-checks tbody tr")
    }
    q, f, o, acc = report["quality"], report["features"], report["outputs"], report["accuracy"]
    assert (o["test"], o["correction"]) == ("ks per class + welch t on entropy", "bonferroni, cauchy combination")
    assert rows == {
        "schema": [
            "schema",
            f"{report['schema']['features']} features, {report['schema']['outputs']} outputs",
            "the reference's",
            "pass",
        ],
        "missing": [
            "missing values (NaN)",
            js_fmt(q["missing_rate"]),
            "a feature's training NaN rate",
            state(q["missing_features"]),
        ],
        "out_of_range": [
            "out of the training range",
            js_fmt(q["out_of_range_rate"]),
            f"> {js_fmt(q['out_of_range_alert'])}",
            state(q["out_of_range_rate"] > q["out_of_range_alert"]),
        ],
        "feature_drift": [
            "feature drift (ks, holm)",
            f"{len(f['drifted_features'])} of {len(f['per_feature'])} features",
            f"p < α = {js_fmt(f['alpha'])}",
            state(f["drift"]),
        ],
        "max_psi": ["largest PSI", js_fmt(f["max_psi"]), "–", "–"],
        "output_shift": [
            f"output shift ({o['test']}, {o['correction']})",  # the server's names for its test
            f"p = {js_fmt(o['p_value'])}",
            f"p < α = {js_fmt(o['alpha'])}",
            state(o["drift"]),
        ],
        "accuracy": ["live accuracy", f"{js_fmt(acc['accuracy'])} ({acc['labelled']} labelled)", "–", "–"],
    }
    assert driver.find_element(By.ID, "monitor-accuracy").text == js_fmt(acc["accuracy"])
    assert driver.find_element(By.ID, "monitor-labelled").text == str(acc["labelled"])
    drifted = set(f["drifted_features"])
    want = [
        [
            str(r["feature"]),
            *(js_fmt(r[k]) for k in ("ks_p_holm", "ks_p", "chi2_p", "psi", "wasserstein")),
            state(r["feature"] in drifted),
        ]
        for r in sorted(f["per_feature"], key=lambda r: r["ks_p_holm"])[:10]
    ]
    assert [cells(r) for r in driver.find_elements(By.CSS_SELECTOR, "#monitor-features tbody tr")] == want
    assert [li.text for li in driver.find_elements(By.CSS_SELECTOR, "#monitor-alerts li")] == report["alerts"]
    assert driver.execute_script("return window.modelyard.monitor.report") == report


def test_the_monitor_page_shows_the_servers_report(server: str, browser: Any, home: Path, screenshots: Path) -> None:
    from selenium.webdriver.common.by import By
    from sklearn.datasets import load_digits

    ref = train_digits(home)  # a trained version: it has its monitoring reference
    body = {"name": "watch", "model": ref, "backend": "torch", "monitor_sample": 1, "monitor_window": 40}
    assert httpx.post(f"{server}/v1/deployments", json=body, timeout=30).status_code == 201
    plain = httpx.post(f"{server}/v1/deployments", json={"name": "plain", "model": register("clf", home)}, timeout=30)
    assert plain.status_code == 201
    driver = browser

    # Not monitored: the server's 409 line, before any replica even runs.
    driver.get(server + "/#/monitor/plain")
    refusal = httpx.get(f"{server}/v1/deployments/plain/monitor", timeout=30)
    assert refusal.status_code == 409
    box = wait(driver, "the refusal", lambda d: d.find_element(By.CSS_SELECTOR, "#monitor-report .error"))
    assert box.text == f"{refusal.json()['message']} (field: monitor_sample)"
    assert httpx.delete(f"{server}/v1/deployments/plain", timeout=60).status_code == 200

    wait(driver, "the replica", lambda d: httpx.get(f"{server}/v1/deployments/watch").json()["status"] == "running")
    digits = load_digits()
    noise = np.random.default_rng(0).uniform(0, 16, size=(40, 64)).round()
    sent = []
    for x in (noise[:20], noise[20:], digits.data[:20]):  # 60 instances: noise, then real digits
        answer = httpx.post(f"{server}/v1/deployments/watch/predict", json={"instances": x.tolist()}, timeout=30)
        assert answer.status_code == 200, answer.text
        sent.append(answer.json()["request_id"])
    labelled = httpx.post(
        f"{server}/v1/deployments/watch/feedback",
        json={"request_id": sent[2], "labels": digits.target[:20].tolist()},
        timeout=30,
    )
    assert labelled.status_code == 200, labelled.text

    # The page asks for the deployment's window (40: half noise, half digits, 20 labelled).
    driver.get(server + "/#/monitor")
    wait(
        driver, "the pick list", lambda d: "watch" in [a.text for a in d.find_elements(By.CSS_SELECTOR, "table.grid a")]
    )
    driver.get(server + "/#/monitor/watch")
    wait(driver, "the checks", lambda d: d.find_elements(By.CSS_SELECTOR, "#monitor-checks tbody tr"))
    report = httpx.get(f"{server}/v1/deployments/watch/monitor", params={"window": 40, "replica": 0}, timeout=30).json()
    assert report["window"] == 40 and report["accuracy"]["labelled"] == 20 and report["alerts"]
    assert_page_shows(driver, report)
    shot(driver, screenshots, "5-monitor.png")

    # Another window size: the whole log.
    field = driver.find_element(By.ID, "monitor-window")
    field.clear()
    field.send_keys("60")
    driver.find_element(By.ID, "monitor-check").click()
    wait(
        driver,
        "the 60-window",
        lambda d: d.execute_script("return (window.modelyard.monitor.report || {}).window") == 60,
    )
    report = httpx.get(f"{server}/v1/deployments/watch/monitor", params={"window": 60, "replica": 0}, timeout=30).json()
    assert report["logged"] == 60 and report["features"]["drifted_features"]
    assert_page_shows(driver, report)

    # More than the log holds: the replica's 422, as its one line.
    field.clear()
    field.send_keys("61")
    driver.find_element(By.ID, "monitor-check").click()
    box = wait(driver, "the 422", lambda d: d.find_element(By.CSS_SELECTOR, "#monitor-report .error"))
    too_big = httpx.get(f"{server}/v1/deployments/watch/monitor", params={"window": 61}, timeout=30)
    assert too_big.status_code == 422
    assert box.text == f"{too_big.json()['message']} (field: window)" and "\n" not in box.text

    # The deployment's page links to its monitor.
    driver.get(server + "/#/deployments/watch")
    wait(driver, "the monitor link", lambda d: d.find_element(By.ID, "open-monitor")).click()
    wait(driver, "the monitor page", lambda d: d.find_elements(By.CSS_SELECTOR, "#monitor-checks"))
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert all("/monitor" in e["message"] for e in errors), errors  # only the 409 and 422 answers above
