"""The anonymisation config: the stored dataset's name and the steps, in order.

::

    name: people-anon
    steps:
      - drop: [name, national_id]
      - pseudonymize: {columns: [person_id], key_env: MODELYARD_PSEUDONYM_KEY}
      - redact: {columns: [notes], phone_regions: [US, GB]}
      - generalize: {column: income, width: 10000}
      - k_anonymity: {k: 5, l: 2, sensitive: diagnosis, quasi_identifiers: {age: [{width: 10}], sex: []}}

Steps are components (``modelyard.components``): the short forms, did-you-mean and one-line
errors of every other registry. The key itself is never part of a config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, model_validator

from modelyard._validation import StrictModel, describe, spec_error_from
from modelyard.components import ComponentSpec
from modelyard.errors import SpecError
from modelyard.privacy import generalize, kanon, pseudonymize, redaction  # noqa: F401 (registers the steps)
from modelyard.privacy.steps import ANONYMIZERS
from modelyard.store.refs import NAME_PATTERN

__all__ = ["AnonymizeSpec", "load_config"]


class AnonymizeSpec(StrictModel):
    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    steps: list[ComponentSpec] = Field(min_length=1)
    sep: str = Field(",", min_length=1)  # of a CSV input

    @model_validator(mode="before")
    @classmethod
    def _steps(cls, data: Any) -> Any:
        if isinstance(data, dict) and "steps" in data:
            steps = data["steps"]
            if not isinstance(steps, list):
                raise SpecError(
                    f"Invalid value for `steps`: expected a list of anonymisation steps, received {describe(steps)}",
                    field="steps",
                )
            data = {**data, "steps": [ANONYMIZERS.parse(s, field=f"steps[{i}]") for i, s in enumerate(steps)]}
        return data

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def load_config(config: str | Path | dict[str, Any] | AnonymizeSpec) -> AnonymizeSpec:
    """A validated config from a YAML/JSON file, a dict or a config; bad input is one SpecError line."""
    from modelyard.spec import read_spec_file

    if isinstance(config, AnonymizeSpec):
        return config
    data = config if isinstance(config, dict) else read_spec_file(Path(config))
    try:
        return AnonymizeSpec.model_validate(data)
    except ValidationError as exc:
        raise spec_error_from(exc, "", root="config") from None
