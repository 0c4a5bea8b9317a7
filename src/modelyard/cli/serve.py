"""`modelyard serve NAME[:N] [NAME2[:N] ...]`: a thin layer over ``modelyard.serving``."""

from __future__ import annotations

import click

# Shared with `modelyard server`: both servers close slow clients (serving/slow_clients.py).
header_timeout_option = click.option(
    "--header-timeout-s",
    default=10.0,
    show_default=True,
    type=float,
    help="Seconds a client may take to send a request's headers before the connection is closed (slow clients).",
)


@click.command()
@click.argument("models", nargs=-1, required=True)
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to bind. Anything but loopback requires an API key."
)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--max-batch-size", default=64, show_default=True, type=int, help="Most instances coalesced into one forward pass."
)
@click.option(
    "--max-wait-ms",
    default=2.0,
    show_default=True,
    type=float,
    help="Longest a request waits for others to join its batch.",
)
@click.option(
    "--max-queue",
    default=1024,
    show_default=True,
    type=int,
    help="Requests waiting per model before new ones get 503 + Retry-After.",
)
@click.option(
    "--timeout",
    default=10.0,
    show_default=True,
    type=float,
    help="Seconds a request may take (queue + forward) before a 504.",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=int,
    help="Server processes; each loads the models and uses cpu_count/workers threads.",
)
@click.option(
    "--backend",
    type=click.Choice(["auto", "torch", "onnx"]),
    default="auto",
    show_default=True,
    help="auto: time torch and ONNX Runtime at startup and keep the faster.",
)
@click.option(
    "--api-key-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="File whose first line is the bearer API key (else $MODELYARD_API_KEY).",
)
@click.option(
    "--max-body-bytes",
    default=8 * 1024 * 1024,
    show_default=True,
    type=int,
    help="Larger request bodies get 413 without being read.",
)
@header_timeout_option
@click.option(
    "--max-explain-cost",
    default=3200,
    show_default=True,
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
@click.option(
    "--max-data-mb",
    default=4096,
    show_default=True,
    type=int,
    help="Largest data source such an explanation may read, in MB (with --confine-data).",
)
@click.option(
    "--confine-data",
    is_flag=True,
    help="Read data files only under --data-dir folders (none given: no data files); never the store or /dev.",
)
@click.option(
    "--log-level",
    default="warning",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
)
@click.pass_obj
def serve(
    obj: dict,
    models: tuple[str, ...],
    host: str,
    port: int,
    max_batch_size: int,
    max_wait_ms: float,
    max_queue: int,
    timeout: float,
    workers: int,
    backend: str,
    api_key_file: str | None,
    max_body_bytes: int,
    header_timeout_s: float,
    max_explain_cost: int,
    allowed_hosts: tuple[str, ...],
    data_dirs: tuple[str, ...],
    max_data_mb: int,
    confine_data: bool,
    log_level: str,
) -> None:
    """Serve model versions over HTTP with dynamic batching (REST docs at /docs)."""
    from modelyard.serving import serve_config
    from modelyard.serving.server import run

    config = serve_config(
        host=host,
        port=port,
        max_batch_size=max_batch_size,
        max_wait_ms=max_wait_ms,
        max_queue=max_queue,
        timeout=timeout,
        workers=workers,
        backend=backend,
        api_key_file=api_key_file,
        max_body_bytes=max_body_bytes,
        header_timeout_s=header_timeout_s,
        max_explain_cost=max_explain_cost,
        allowed_hosts=list(allowed_hosts),
        data_dirs=list(data_dirs) if data_dirs or confine_data else None,
        max_data_mb=max_data_mb,
        log_level=log_level,
    )
    click.echo(
        f"modelyard: serving {', '.join(models)} on http://{host}:{port} (docs at /docs; "
        "Ctrl-C or SIGTERM drains and stops)",
        err=True,
    )
    run(list(models), config, obj["home"])
