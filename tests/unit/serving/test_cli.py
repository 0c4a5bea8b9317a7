"""`modelyard serve` and `modelyard.serve(...)`: options reach ServeConfig; refusals are one line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import modelyard
from modelyard.cli.main import cli
from modelyard.errors import SpecError
from modelyard.serving import ServeConfig
from tests.support.serving import API_KEY, register


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Replace the blocking uvicorn run with a recorder."""
    seen: dict[str, Any] = {}

    def fake_run(refs: list[Any], config: ServeConfig, home: Any = None, *, on_ready: Any = None) -> None:
        seen.update(refs=refs, config=config, home=home)

    monkeypatch.setattr("modelyard.serving.server.run", fake_run)
    return seen


def test_cli_options_become_the_server_config(captured: dict[str, Any], tmp_path: Path) -> None:
    keyfile = tmp_path / "key"
    keyfile.write_text(API_KEY)
    result = CliRunner().invoke(
        cli,
        [
            "serve",
            "fashion-mlp",
            "fashion-cnn:2",
            "--host",
            "0.0.0.0",
            "--port",
            "9000",
            "--max-batch-size",
            "8",
            "--max-wait-ms",
            "3.5",
            "--max-queue",
            "7",
            "--timeout-s",
            "2",
            "--workers",
            "2",
            "--backend",
            "onnx",
            "--api-key-file",
            str(keyfile),
        ],
    )
    assert result.exit_code == 0, result.output
    config: ServeConfig = captured["config"]
    assert captured["refs"] == ["fashion-mlp", "fashion-cnn:2"]
    assert (
        config.host,
        config.port,
        config.max_batch_size,
        config.max_wait_ms,
        config.max_queue,
        config.timeout_s,
        config.workers,
        config.backend,
        config.key(),
    ) == ("0.0.0.0", 9000, 8, 3.5, 7, 2.0, 2, "onnx", API_KEY)


def test_cli_refuses_a_public_host_without_a_key(captured: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELYARD_API_KEY", raising=False)
    result = CliRunner().invoke(cli, ["serve", "fashion-mlp", "--host", "0.0.0.0"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("error: ") and "refusing to listen on 0.0.0.0 without an API key" in lines[-1]
    assert not captured


def test_cli_takes_the_key_from_the_environment(captured: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELYARD_API_KEY", API_KEY)
    result = CliRunner().invoke(cli, ["serve", "m", "--host", "0.0.0.0"])
    assert result.exit_code == 0, result.output
    assert captured["config"].key() == API_KEY


def test_cli_reports_unknown_models_and_bad_settings_in_one_line(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELYARD_API_KEY", raising=False)
    register("clf", home)
    unknown = CliRunner().invoke(cli, ["serve", "clf", "nope"])
    assert unknown.exit_code == 4 and "nope" in unknown.output.strip().splitlines()[-1]
    bad = CliRunner().invoke(cli, ["serve", "clf", "--max-batch-size", "0"])
    assert bad.exit_code == 2 and "serve.max_batch_size" in bad.output


def test_python_api_is_the_same_function(captured: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELYARD_API_KEY", raising=False)
    from modelyard.serving import serve

    serve("clf:1", port=9001, max_wait_ms=1, backend="torch")
    assert captured["refs"] == ["clf:1"] and captured["config"].port == 9001
    with pytest.raises(SpecError, match="without an API key"):
        serve(["clf"], host="0.0.0.0")
    # `modelyard.serving` may be the package or the function depending on import order: both serve.
    modelyard.serve("clf:2", port=9002)
    assert captured["refs"] == ["clf:2"] and captured["config"].port == 9002
