"""A job submission: request body → validated, resolved spec, checked before it is queued.

The body is either ``{"spec": {...} | "yaml text", "overrides": [...], "max_attempts": N}``
or a spec itself (JSON or YAML). Everything ``modelyard train`` checks before writing to
the store and that is cheap is checked here, so a bad spec is a 422 naming the field
instead of a job that fails later: the spec itself, the network's shapes, the device,
and that a data file exists. (Whether the data's shape fits the network needs the data
loaded; the worker checks that before it creates the run, and the job fails with the
same message ``modelyard train`` gives.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError

from modelyard._documents import TOO_MANY_DIGITS, load_json
from modelyard._validation import StrictModel, describe, spec_error_from
from modelyard.data.access import DataAccess, confined
from modelyard.errors import SpecError, UnsupportedMediaTypeError
from modelyard.server.body import too_large

__all__ = [
    "JobRequest",
    "parse_body",
    "check_spec",
    "resolve_data_paths",
    "absolute_data_path",
    "MAX_BODY_BYTES",
]

MAX_BODY_BYTES = 4 * 1024 * 1024
_JSON_TYPES = ("application/json",)
_YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain")


class JobRequest(StrictModel):
    """The wrapper form of ``POST /v1/jobs``."""

    spec: dict[str, Any] | str
    overrides: list[str] = []
    max_attempts: int | None = Field(None, ge=1, le=100)


def _load_yaml(text: str, field: str) -> Any:
    """``yaml.safe_load`` without anchors/aliases (a few aliases can expand to gigabytes)."""
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                raise SpecError(
                    f"Invalid `{field}`: YAML aliases (*name) are not accepted in a job spec; write the values out",
                    field=field,
                )
        return yaml.safe_load(text)
    except ValueError:  # Python's int-to-str guard (an integer of more than 4,300 digits)
        raise SpecError(f"Invalid number in `{field}`: {TOO_MANY_DIGITS}", field=field) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise SpecError(
            f"Malformed YAML in `{field}`{where}: {getattr(exc, 'problem', None) or exc}", field=field
        ) from None


def parse_body(body: bytes, content_type: str | None) -> JobRequest:
    """Decode a request body (JSON or YAML, wrapper or bare spec) into a JobRequest."""
    if len(body) > MAX_BODY_BYTES:
        raise too_large("Job body", MAX_BODY_BYTES, len(body))
    media = (content_type or "").split(";")[0].strip().lower()
    if media and media not in _JSON_TYPES + _YAML_TYPES and not media.endswith("+json"):
        raise UnsupportedMediaTypeError(
            f"Unsupported Content-Type {media!r}: send the spec as application/json or application/yaml",
            field="content-type",
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise SpecError("Invalid job body: expected UTF-8 text (JSON or YAML)", field="body") from None
    if not text.strip():
        raise SpecError('Empty job body: expected a spec, or {"spec": ..., "overrides": [...]}', field="body")
    if media in _JSON_TYPES or media.endswith("+json"):
        data = load_json(text, SpecError, "JSON body")
    else:
        data = _load_yaml(text, "body")
    if not isinstance(data, dict):
        raise SpecError(
            f'Invalid job body: expected a mapping (a spec, or {{"spec": ...}}), received {describe(data)}',
            field="body",
        )
    try:
        return JobRequest.model_validate(data if "spec" in data else {"spec": data})
    except ValidationError as exc:
        raise spec_error_from(exc) from None


def check_spec(request: JobRequest, access: DataAccess | None = None, *, home: Path | None = None) -> dict[str, Any]:
    """The resolved spec dict of a request, after the cheap pre-flight checks of ``modelyard train``.

    With ``access`` (the server's data rule) every path the data source names must be a file
    the server may read: a 403 naming the field otherwise. With ``home`` (the server's store) a
    stored dataset the spec names must exist there (404 naming ``data.name``), and ``NAME`` or
    ``NAME:latest`` is pinned to the version it is now, which the job then trains on.
    """
    from modelyard.environment import resolve_device
    from modelyard.nn import build_model
    from modelyard.spec import load_spec

    raw = request.spec
    if isinstance(raw, str):
        raw = _load_yaml(raw, "spec")
        if not isinstance(raw, dict):
            raise SpecError(
                f"Invalid value for `spec`: expected a mapping with name, data, model and train, "
                f"received {describe(raw)}",
                field="spec",
            )
    spec = load_spec(raw, list(request.overrides))  # overrides (--set) are checked with the rest
    build_model(spec.model, loss=spec.train.loss.type)  # layer shapes fit together
    resolve_device(spec.train.device)  # a cuda request on a CPU-only machine fails now
    resolved = spec.to_dict()
    options = resolved["data"]["source"].get("options", {})
    resolve_data_paths(spec.data.source.type, options, access)
    if home is not None and spec.data.source.type == "dataset":
        from modelyard.store.datasets import DatasetStore

        options["name"] = DatasetStore(home).get(str(options.get("name")), field="data.name").ref
    return resolved


def resolve_data_paths(source: str, options: dict[str, Any], access: DataAccess | None) -> None:
    """Make every path option of the source absolute (so the job finds its data whatever the
    working directory of a later server), checked against ``access``."""
    from modelyard.data.raw import resolve_path
    from modelyard.data.sources import SOURCES

    with confined(access):
        if access is not None and options.get("url"):
            raise access.refuse_url("data.url")
        for name, folder in getattr(SOURCES.get(source).options, "path_fields", {}).items():
            if isinstance(options.get(name), str):
                options[name] = str(resolve_path(options[name], f"data.{name}", folder=folder))


def absolute_data_path(spec: dict[str, Any], base: Path) -> dict[str, Any]:
    """A raw spec whose relative data paths (every path option of its source: ``data.path``,
    npy's ``x``/``y``/``x_test``/``y_test``) are made absolute against ``base`` (the CLI's cwd)."""
    from modelyard.data.sources import SOURCES
    from modelyard.errors import ModelyardError

    data = spec.get("data")
    if not isinstance(data, dict):
        return spec
    source = data.get("source")
    name = source if isinstance(source, str) else source.get("type") if isinstance(source, dict) else None
    try:
        fields = getattr(SOURCES.get(str(name)).options, "path_fields", {}) if name else {"path": False}
    except ModelyardError:  # an unknown source: the server names it
        return spec
    holder = source if isinstance(source, dict) else data
    holder = holder.get("options", holder) if isinstance(holder.get("options"), dict) else holder
    for field in fields:
        path = holder.get(field)
        if isinstance(path, str) and path and not Path(path).expanduser().is_absolute():
            holder[field] = str((base / Path(path).expanduser()).resolve())
    return spec
