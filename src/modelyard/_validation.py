"""Pydantic at the boundary: a strict base model and one-line error messages.

Every spec section, component option set and REST body derives from ``StrictModel``:
unknown keys are refused with the closest valid name, and a pydantic
``ValidationError`` becomes a ``SpecError`` whose message names the field path, what
was expected and what was received.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from modelyard.errors import SpecError
from modelyard.registry import closest

__all__ = ["StrictModel", "ReshapeOptions", "spec_error_from", "parse_object", "join_path", "describe"]


class StrictModel(BaseModel):
    """Frozen, unknown keys rejected with a did-you-mean hint."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            known = set()
            for name, field in cls.model_fields.items():
                known.add(name)
                if field.alias:
                    known.add(field.alias)
            for key in data:
                if key not in known:
                    hint = closest(str(key), sorted(known))
                    msg = f"unknown field {key!r}"
                    msg += f"; did you mean {hint!r}?" if hint else ""
                    msg += f" (expected one of: {', '.join(sorted(known))})"
                    raise ValueError(msg)
        return data


class ReshapeOptions(StrictModel):
    """A target shape per sample, shared by the `reshape` layer and preprocessing step."""

    shape: list[int] = Field(min_length=1)

    @field_validator("shape")
    @classmethod
    def _sizes(cls, value: list[int]) -> list[int]:
        if any(v == 0 or v < -1 for v in value) or value.count(-1) > 1:
            raise ValueError(
                f"expected positive sizes with at most one -1 (inferred), such as [1, 28, 28] or [-1, 4], received {value}"
            )
        return value


def join_path(prefix: str, loc: tuple[Any, ...] | list[Any]) -> str:
    """``("layers", 2, "units")`` under ``model`` → ``model.layers[2].units``."""
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).startswith(("function-", "union[", "tagged-union[")):
            continue  # pydantic's internal validator names carry no meaning for a person
        else:
            out = f"{out}.{part}" if out else str(part)
    return out


def describe(value: Any, limit: int = 60) -> str:
    """A short printable form of a received value."""
    text = repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{text} ({type(value).__name__})"


_EXPECTED = {
    "float_parsing": "a number",
    "float_type": "a number",
    "int_parsing": "an integer",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _expected(err: dict[str, Any]) -> str:
    kind = err.get("type", "")
    ctx = err.get("ctx") or {}
    if kind in _EXPECTED:
        return _EXPECTED[kind]
    if kind == "greater_than":
        return f"a number > {_num(ctx.get('gt'))}"
    if kind == "greater_than_equal":
        return f"a number >= {_num(ctx.get('ge'))}"
    if kind == "less_than":
        return f"a number < {_num(ctx.get('lt'))}"
    if kind == "less_than_equal":
        return f"a number <= {_num(ctx.get('le'))}"
    if kind == "literal_error":
        return f"one of {ctx.get('expected')}"
    if kind == "too_short":
        return f"at least {ctx.get('min_length')} item(s)"
    if kind == "too_long":
        return f"at most {ctx.get('max_length')} item(s)"
    if kind == "string_pattern_mismatch":
        return f"a string matching {ctx.get('pattern')}"
    if kind == "finite_number":
        return "a finite number"
    msg = str(err.get("msg", "a valid value"))
    # Pydantic's "Value error, <our text>" carries our own sentence: use it as it is.
    return msg.removeprefix("Value error, ")


_Model = TypeVar("_Model", bound=BaseModel)


def parse_object(model: type[_Model], body: Any, expected: str, *, root: str = "spec") -> _Model:
    """A decoded JSON request body as ``model``; not an object, or a bad field, is a one-line SpecError.

    ``expected`` says what the body should be ("a JSON object with name and model"); ``root``
    names the whole body in an error about it (an unknown key).
    """
    if not isinstance(body, dict):
        raise SpecError(
            f"Invalid request body: expected {expected}, received {type(body).__name__}",
            field="body",
        )
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise spec_error_from(exc, root=root) from None


def spec_error_from(exc: ValidationError, prefix: str = "", root: str = "spec") -> SpecError:
    """The first problem of a ValidationError as a one-line SpecError (``root`` names the whole document)."""
    errors = exc.errors(include_url=False)
    err = errors[0]
    path = join_path(prefix, err.get("loc", ())) or root
    kind = err.get("type", "")
    if kind == "missing":
        msg = f"Missing required field `{path}`"
    elif kind == "value_error":
        msg = f"Invalid value for `{path}`: {_expected(err)}"
    elif kind == "extra_forbidden":
        msg = f"Unknown field `{path}`"
    else:
        msg = f"Invalid value for `{path}`: expected {_expected(err)}, received {describe(err.get('input'))}"
    if len(errors) > 1:
        msg += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return SpecError(msg, field=path)
