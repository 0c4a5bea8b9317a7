"""A real S3-compatible server for tests: moto's server mode on 127.0.0.1, one per test module."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@contextmanager
def moto_server() -> Iterator[str]:
    """The endpoint URL of a moto server on a free port, stopped at the end."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def use_bucket(monkeypatch: pytest.MonkeyPatch, endpoint: str, prefix: str = "team") -> tuple[Any, str]:
    """A fresh bucket on ``endpoint`` made the store's artifact store (boto3's env vars); (client, bucket)."""
    import boto3

    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    bucket = f"modelyard-{secrets.token_hex(4)}"
    client = boto3.session.Session().client("s3")
    client.create_bucket(Bucket=bucket)
    monkeypatch.setenv("MODELYARD_ARTIFACTS_URL", f"s3://{bucket}/{prefix}")
    return client, bucket


def keys(client: Any, bucket: str) -> list[str]:
    """Every object key in ``bucket``, sorted."""
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))
