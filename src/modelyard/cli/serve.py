"""`modelyard serve NAME[:N] [NAME2[:N] ...]`: a thin layer over ``modelyard.serving``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from modelyard.cli._options import config_option, given

SERVE = "modelyard.serving.config:ServeConfig"


def header_timeout_option(model: str) -> Callable:
    """Shared with `modelyard server`: both servers close slow clients (serving/slow_clients.py)."""
    return config_option(
        "--header-timeout-s",
        model=model,
        type=float,
        help="Seconds a client may take to send a request's headers before the connection is closed (slow clients).",
    )


@click.command()
@click.argument("models", nargs=-1, required=True)
@config_option(
    "--host", model=SERVE, metavar="ADDRESS", help="Address to bind. Anything but loopback requires an API key."
)
@config_option("--port", model=SERVE, type=int)
@config_option("--max-batch-size", model=SERVE, type=int, help="Most instances coalesced into one forward pass.")
@config_option("--max-wait-ms", model=SERVE, type=float, help="Longest a request waits for others to join its batch.")
@config_option(
    "--max-queue", model=SERVE, type=int, help="Requests waiting per model before new ones get 503 + Retry-After."
)
@config_option(
    "--timeout-s", model=SERVE, type=float, help="Seconds a request may take (queue + forward) before a 504."
)
@config_option(
    "--workers",
    model=SERVE,
    type=int,
    help="Server processes; each loads the models and uses cpu_count/workers threads.",
)
@config_option(
    "--backend",
    model=SERVE,
    type=click.Choice(["auto", "torch", "onnx"]),
    help="auto: time torch and ONNX Runtime at startup and keep the faster.",
)
@click.option(
    "--api-key-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="File whose first line is the bearer API key (else $MODELYARD_API_KEY).",
)
@config_option("--max-body-bytes", model=SERVE, type=int, help="Larger request bodies get 413 without being read.")
@config_option(
    "--max-text-chars", model=SERVE, type=int, help="Characters per text instance (text models; more gets 422)."
)
@config_option(
    "--max-audio-seconds", model=SERVE, type=float, help="Longest WAV/FLAC upload (audio models; longer gets 422)."
)
@click.option("--resample-audio", is_flag=True, help="Resample audio at another rate to the model's (else 422).")
@header_timeout_option(SERVE)
@config_option(
    "--max-explain-cost",
    model=SERVE,
    type=int,
    help="Integrated gradients: most instances x steps per explain request (more gets 422).",
)
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    metavar="NAME",
    help="Another Host header value this server answers to (a DNS name in front of it); repeatable. "
    "Others get 400 (DNS-rebinding guard).",
)
@click.option(
    "--data-dir",
    "data_dirs",
    multiple=True,
    type=click.Path(file_okay=False),
    help="Explanations that read the model's training data (SHAP, LIME) may read only under these folders "
    "(repeatable; implies --confine-data).",
)
@config_option(
    "--max-data-mb",
    model=SERVE,
    type=int,
    help="Largest data source such an explanation may read, in MB (with --confine-data).",
)
@click.option(
    "--confine-data",
    is_flag=True,
    help="Read data files only under --data-dir folders (none given: no data files); never the store or /dev.",
)
@config_option(
    "--monitor-sample",
    model=SERVE,
    type=float,
    help="Share of predict requests logged for monitoring, 0 to 1 (0: off; docs/monitoring.md).",
)
@config_option("--monitor-capacity", model=SERVE, type=int, help="Instances the request log keeps (the oldest go).")
@config_option("--monitor-window", model=SERVE, type=int, help="Instances per monitoring check.")
@config_option("--monitor-webhook", model=SERVE, metavar="URL", help="Alerts are also POSTed here as JSON.")
@config_option("--log-level", model=SERVE, type=click.Choice(["critical", "error", "warning", "info", "debug"]))
@click.pass_obj
def serve(
    obj: dict,
    models: tuple[str, ...],
    api_key_file: str | None,
    allowed_hosts: tuple[str, ...],
    data_dirs: tuple[str, ...],
    confine_data: bool,
    **settings: Any,
) -> None:
    """Serve model versions (or registered voice pipelines, docs/voice.md) over HTTP with dynamic batching (REST docs at /docs)."""
    from modelyard.serving import serve_config
    from modelyard.serving.server import run

    config = serve_config(
        api_key_file=api_key_file,
        allowed_hosts=list(allowed_hosts),
        data_dirs=list(data_dirs) if data_dirs or confine_data else None,
        **given(**settings),
    )

    def announce() -> None:  # only once the port, every model and its weights are checked
        click.echo(
            f"modelyard: serving {', '.join(models)} on http://{config.host}:{config.port} (docs at /docs; "
            "Ctrl-C or SIGTERM drains and stops)",
            err=True,
        )

    run(list(models), config, obj["home"], on_ready=announce)
