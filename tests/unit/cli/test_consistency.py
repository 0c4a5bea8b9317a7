"""The CLI's shape: the same verbs on every noun, units in option names, defaults in one place."""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from modelyard.cli._options import DeferredDefaultOption
from modelyard.cli.main import cli
from modelyard.server.config import ServerConfig
from modelyard.server.deployments.replicas import ReplicaConfig
from modelyard.server.deployments.request import DeploymentRequest
from modelyard.serving import ServeConfig, serve_config
from tests.support.serving import register

NOUNS = (("models",), ("models", "alias"), ("runs",), ("jobs",), ("deployments",), ("server", "token"))
# An option measuring time or size says its unit in its name.
UNIT_WORDS = re.compile(r"\b(seconds?|milliseconds?|minutes?|bytes|MB|MiB|KiB)\b", re.IGNORECASE)
UNIT_SUFFIXES = ("-s", "-ms", "-mb", "-bytes")
TIMEY_NAMES = re.compile(r"(timeout|interval|lease|heartbeat|delay|wait|ttl|period)", re.IGNORECASE)


def _commands(group: click.Group = cli, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name, command in group.commands.items():
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))


def _group(path: tuple[str, ...]) -> click.Group:
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    assert isinstance(command, click.Group)
    return command


@pytest.mark.parametrize("noun", NOUNS, ids=" ".join)
def test_every_noun_lists_and_lists_when_named_alone(noun: tuple[str, ...]) -> None:
    group = _group(noun)
    assert "list" in group.commands, f"{' '.join(noun)} has no list verb"
    runner = CliRunner()
    for args in ([*noun, "--help"], [*noun, "-h"]):
        shown = runner.invoke(cli, args)
        assert shown.exit_code == 0 and "Commands:" in shown.output and "list" in shown.output, shown.output


def test_the_nouns_have_show_and_delete_where_things_can_be_removed() -> None:
    for noun in (("models",), ("runs",), ("jobs",), ("deployments",)):
        assert "show" in _group(noun).commands, noun
    assert "delete" in _group(("deployments",)).commands
    assert "delete" in _group(("models",)).commands and "delete" in _group(("runs",)).commands
    assert "delete" in _group(("models", "alias")).commands
    assert "delete" in _group(("server", "token")).commands and "revoke" not in _group(("server", "token")).commands


def test_a_noun_alone_is_its_list_verb_with_the_same_options(tmp_path: Path) -> None:
    register("clf", tmp_path)
    runner = CliRunner()
    pairs = [
        (["models"], ["models", "list"]),
        (["models", "--json"], ["models", "list", "--json"]),
        (["models", "--name", "clf", "--json"], ["models", "list", "--name", "clf", "--json"]),
        (["runs", "--json"], ["runs", "list", "--json"]),
        (["runs", "--status", "failed", "--json"], ["runs", "list", "--status", "failed", "--json"]),
        (["server", "token", "--json"], ["server", "token", "list", "--json"]),
    ]
    for alone, listed in pairs:
        a = runner.invoke(cli, ["--home", str(tmp_path), *alone])
        b = runner.invoke(cli, ["--home", str(tmp_path), *listed])
        assert a.exit_code == b.exit_code == 0, (alone, a.output, b.output)
        assert a.output == b.output, alone
    assert '"ref": "clf:1"' in runner.invoke(cli, ["--home", str(tmp_path), "models", "--json"]).output
    bad = runner.invoke(cli, ["--home", str(tmp_path), "runs", "--status", "done"])
    assert bad.exit_code == 2 and "'done' is not one of" in bad.output


def test_token_delete_revokes(tmp_path: Path) -> None:
    runner = CliRunner()
    home = ["--home", str(tmp_path)]
    assert runner.invoke(cli, [*home, "server", "token", "create", "--role", "read", "--name", "ci"]).exit_code == 0
    deleted = runner.invoke(cli, [*home, "server", "token", "delete", "ci"])
    assert deleted.exit_code == 0 and "revoked read token" in deleted.output, deleted.output
    assert '"ci"' not in runner.invoke(cli, [*home, "server", "token", "list", "--json"]).output


def test_options_with_units_carry_them_in_their_names() -> None:
    missing = []
    for path, command in _commands():
        for param in command.params:
            if not isinstance(param, click.Option) or param.is_flag:
                continue
            name = max(param.opts, key=len)
            timed = UNIT_WORDS.search(param.help or "") or TIMEY_NAMES.search(name)
            if timed and not name.endswith(UNIT_SUFFIXES):
                missing.append(f"{' '.join(path)} {name}")
    assert not missing, f"options without a unit in their name: {missing}"


@pytest.mark.parametrize(
    ("path", "model"),
    [(("serve",), ServeConfig), (("server",), ServerConfig), (("deployments", "create"), DeploymentRequest)],
    ids=["serve", "server", "deployments create"],
)
def test_server_options_take_their_defaults_from_the_settings_model(path: tuple[str, ...], model: Any) -> None:
    command: click.Command = cli
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    fields = model.model_fields
    ctx = click.Context(command, info_name=path[-1])
    for param in command.params:
        if not isinstance(param, click.Option) or param.name not in fields or param.multiple or param.is_flag:
            continue
        assert isinstance(param, DeferredDefaultOption), f"--{param.name} keeps a default of its own"
        want = fields[param.name].get_default()
        if want is not None and want != []:
            assert param.get_help_extra(ctx).get("default") == str(want), param.name
    help_text = CliRunner().invoke(cli, [*path, "--help"], terminal_width=200).output
    assert f"[default: {fields['max_batch_size' if 'max_batch_size' in fields else 'port'].get_default()}]" in help_text


def test_the_python_api_repeats_no_defaults() -> None:
    params = inspect.signature(serve_config).parameters
    assert [p for p in params if params[p].kind is inspect.Parameter.KEYWORD_ONLY] == ["api_key", "api_key_file"]
    assert serve_config().model_dump() == ServeConfig().model_dump()
    assert serve_config(timeout_s=3).timeout_s == 3.0


def test_deployments_share_the_servers_fields_bounds_included() -> None:
    for name in ("max_batch_size", "max_wait_ms", "backend"):
        mine, serve = DeploymentRequest.model_fields[name], ServeConfig.model_fields[name]
        assert (mine.default, mine.metadata) == (serve.default, serve.metadata), name
    for name in ("header_timeout_s", "max_data_mb"):
        server, serve = ServerConfig.model_fields[name], ServeConfig.model_fields[name]
        assert (server.default, server.metadata) == (serve.default, serve.metadata), name


def test_a_replica_launched_without_options_runs_with_serves_own_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(
        "modelyard.serving.server.run", lambda refs, config, home=None, on_ready=None: seen.update(config=config)
    )
    command = ReplicaConfig(ref="m:1", home=tmp_path, api_key="k" * 32).command(9000)
    assert "--max-batch-size" not in command and "--max-data-mb" not in command
    args = command[command.index("--home") :]
    result = CliRunner().invoke(cli, args, env={"MODELYARD_API_KEY": "k" * 32})
    assert result.exit_code == 0, result.output
    got, want = seen["config"], ServeConfig(port=9000, data_dirs=[])
    for name in ("max_batch_size", "max_wait_ms", "backend", "max_data_mb", "timeout_s", "max_queue"):
        assert getattr(got, name) == getattr(want, name), name
