"""The console's files: served from the package with a strict CSP, every reference resolves,
nothing outside the asset list is reachable, and the deployment routes answer bad input
with one-line errors. The console itself is driven in a browser in tests/e2e.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from modelyard.server.console.routes import CONSOLE_DIR
from modelyard.status import FINAL, Status
from tests.support.console import client, mini_app

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[4]
JS_FILES = sorted((CONSOLE_DIR / "js").glob("*.js"))


async def test_page_and_every_referenced_asset_are_served(home: Path) -> None:
    async with client(mini_app(home)) as http:
        page = await http.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "media-src 'self' data: blob:;" in csp  # the playground's recording and a pipeline's spoken reply
        assert page.headers["x-content-type-options"] == "nosniff"
        referenced = re.findall(r'(?:src|href)="(/console/[^"]+)"', page.text)
        assert "/console/js/app.js" in referenced and "/console/vendor/uplot/uPlot.iife.min.js" in referenced
        for js in JS_FILES:  # ES module imports between the console's scripts
            for target in re.findall(r'from "\./([\w.-]+\.js)"', js.read_text()):
                referenced.append(f"/console/js/{target}")
            referenced += re.findall(r'addModule\("(/console/[^"]+)"\)', js.read_text())  # audio worklets
        assert "/console/js/capture-worklet.js" in referenced
        types = {".js": "text/javascript", ".css": "text/css", ".html": "text/html"}
        for url in referenced:
            r = await http.get(url)
            assert r.status_code == 200, url
            assert r.headers["content-type"].startswith(types[Path(url).suffix]), url
        assert (await http.get("/console/")).text == page.text


async def test_only_listed_assets_are_reachable(home: Path) -> None:
    async with client(mini_app(home)) as http:
        for path in (
            "/console/nope.js",
            "/console/..%2Froutes_console.py",
            "/console/%2e%2e/catalog.py",
            "/console/js/../../routes_console.py",
            "/console/.hidden",
            "/console/routes.py",  # the console's Python modules sit beside its assets
            "/console/__init__.py",
            "/console/catalog.py",
            "/console/%2e%2e/app.py",
        ):
            r = await http.get(path)
            assert r.status_code == 404, path
            assert "routes_console" not in r.text or r.json()["error"] == "NotFoundError"


async def test_the_console_takes_the_status_vocabulary_from_the_server(home: Path) -> None:
    async with client(mini_app(home)) as http:
        r = await http.get("/console/js/status.js")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    states = json.loads(re.search(r"STATUS = Object\.freeze\((\{.*\})\);", r.text).group(1))
    final = json.loads(re.search(r"FINAL = new Set\((\[.*\])\);", r.text).group(1))
    assert states == {s.name: s.value for s in Status} and set(final) == {s.value for s in FINAL}
    assert not (CONSOLE_DIR / "js" / "status.js").exists()  # no copy on disk to drift from it
    for js in JS_FILES:  # and no script spells a run/job state itself ("running" is also a replica's state)
        words = {s.value for s in Status} - {"running"} | {"completed"}
        assert not re.findall(r"[\"'`](" + "|".join(words) + r")[\"'`]", js.read_text()), js.name
    css = (CONSOLE_DIR / "css" / "console.css").read_text()
    assert all(f".status-{s.value}" in css for s in Status) and ".status-completed" not in css


def test_vendored_chart_library_keeps_its_license():
    folder = CONSOLE_DIR / "vendor" / "uplot"
    assert "MIT License" in (folder / "LICENSE.txt").read_text()
    assert (folder / "uPlot.iife.min.js").read_text().startswith("/*! https://github.com/leeoniya/uPlot (v1.6.32) */")


def test_package_data_covers_every_console_file():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["modelyard"]
    package = ROOT / "src" / "modelyard"
    shipped = {p for pattern in patterns for p in package.glob(pattern) if p.is_file()}
    assert {p for p in CONSOLE_DIR.rglob("*") if p.is_file()} <= shipped


@pytest.mark.skipif(
    shutil.which("node") is None, reason="node is not installed (only used to syntax-check the console's JS)"
)
@pytest.mark.parametrize("script", JS_FILES, ids=lambda p: p.name)
def test_console_scripts_parse_as_modules(script: Path):
    proc = subprocess.run(
        ["node", "--experimental-default-type=module", "--check", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr


async def test_deployment_routes_answer_bad_input_with_one_line_errors(home: Path) -> None:
    async with client(mini_app(home)) as http:
        cases = [
            (
                await http.post("/v1/deployments", content=b"{not json", headers={"content-type": "application/json"}),
                400,
                "Malformed request body at line 1, column 2",
            ),
            (await http.post("/v1/deployments", json={"name": "web"}), 422, "Missing required field `model`"),
            (
                await http.post("/v1/deployments", json={"name": "web", "model": "ghost:1"}),
                404,
                "Unknown model 'ghost'",
            ),
            (
                await http.post("/v1/deployments", json={"name": "web", "model": "bad ref"}),
                400,
                "Invalid model reference",
            ),
            (await http.get("/v1/deployments/web"), 404, "no deployments yet"),
            (await http.delete("/v1/deployments/web"), 404, "Unknown deployment 'web'"),
            (await http.post("/v1/deployments/web/predict", json={"instances": [[0]]}), 404, "Unknown deployment"),
            (await http.post("/v1/deployments/web/predict", content=b"x" * (8 * 1024 * 1024 + 1)), 413, "too large"),
            (await http.post("/v1/deployments/web/explain", json={"instances": ["hi"]}), 404, "Unknown deployment"),
            (await http.post("/v1/deployments/web/explain", content=b"x" * (8 * 1024 * 1024 + 1)), 413, "too large"),
        ]
        for response, status, text in cases:
            assert response.status_code == status, response.text
            body = response.json()
            assert text in body["message"] and "\n" not in body["message"]
        assert (await http.get("/v1/deployments")).json() == {"deployments": []}


def test_docs_examples_are_current(home: Path):
    """docs/console.md: the request body validates, the CLI lines parse, the answer has the real keys."""
    import json
    import shlex

    from modelyard.cli.main import cli
    from modelyard.server.deployments.metrics import summarize
    from modelyard.server.deployments.replicas import Replica, ReplicaConfig
    from modelyard.server.deployments.request import DeploymentRequest
    from modelyard.server.deployments.supervisor import Supervisor

    doc = (ROOT / "docs" / "console.md").read_text()
    blocks = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", doc, flags=re.S)]
    body, answer = blocks
    assert DeploymentRequest.parse(body).replicas == 2
    lines = [
        ln for b in re.findall(r"```bash\n(.*?)```", doc, flags=re.S) for ln in b.replace("\\\n", " ").splitlines()
    ]
    commands = [shlex.split(ln)[1:] for ln in lines if ln.startswith("modelyard deployments")]
    assert [c[1] for c in commands] == ["create", "list", "show", "delete"]
    group = cli.commands["deployments"]
    for args in commands:
        group.commands[args[1]].make_context(args[1], args[2:])  # raises on an unknown option
    curl = next(ln for ln in lines if ln.startswith("curl"))
    instances = json.loads(shlex.split(curl)[-1])["instances"]
    assert len(instances[0]) == 64

    store_row = Supervisor(home).store.create(DeploymentRequest.parse(body), "digits-mlp:1")
    real = Supervisor(home)._describe(store_row)
    assert set(answer) == set(real)
    assert set(answer["metrics"]) == set(summarize([]))
    replica = Replica(index=0, config=ReplicaConfig(ref="m:1", home=home, api_key="k"))
    assert set(answer["replicas"][0]) == set(replica.describe(0.0))
