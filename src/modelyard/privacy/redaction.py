"""The ``redact`` step: identifiers in free-text columns become placeholders (``[EMAIL]``, ``[CARD]``, ...)."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from modelyard.errors import SpecError
from modelyard.privacy.redact import KINDS, check_regions, redact
from modelyard.privacy.steps import ANONYMIZERS, Columns, TableStep, require_columns

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["RedactOptions"]

Kind = Literal["email", "iban", "card", "ip", "phone"]


class RedactOptions(Columns):
    kinds: list[Kind] = Field(default_factory=lambda: list(KINDS), min_length=1)
    # ISO 3166 regions whose national phone formats are recognised ("+"-international numbers always are).
    phone_regions: list[str] = []
    placeholder: str = Field("[{kind}]", min_length=1)

    @field_validator("placeholder")
    @classmethod
    def _placeholder(cls, value: str) -> str:
        try:
            value.format(kind="EMAIL")
        except (KeyError, IndexError, ValueError):
            raise ValueError(
                f"expected text with at most the field {{kind}}, such as '[{{kind}}]', received {value!r}"
            ) from None
        return value


class _Redact(TableStep):
    def check(self, columns: list[str], field: str, where: str) -> list[str]:
        require_columns(self.opts.columns, columns, f"{field}.columns", where)
        unknown = check_regions(self.opts.phone_regions)
        if unknown:
            raise SpecError(
                f"Invalid value for `{field}.phone_regions`: unknown region {unknown[0]!r}, expected ISO 3166 "
                f"codes such as US, GB, DE",
                field=f"{field}.phone_regions",
            )
        return columns

    def apply(self, frame: pd.DataFrame, report: dict[str, Any]) -> pd.DataFrame:
        opts = self.opts
        out = frame.copy()
        counts = report.setdefault("redactions", {})
        for name in opts.columns:
            found: Counter[str] = Counter()

            def clean(value: Any, found: Counter[str] = found) -> Any:
                if value is None or value != value:  # missing (None, NaN) stays missing
                    return value
                text, findings = redact(
                    str(value), opts.kinds, phone_regions=opts.phone_regions, placeholder=opts.placeholder
                )
                found.update(f.kind for f in findings)
                return text

            out[name] = frame[name].map(clean).astype(object)
            counts[name] = {kind: found.get(kind, 0) for kind in KINDS if kind in opts.kinds}
        return out


@ANONYMIZERS.component("redact", options=RedactOptions, primary="columns")
def redact_step(opts: RedactOptions) -> TableStep:
    """Replace e-mail addresses, card numbers (Luhn), IBANs (mod-97), IP addresses and phone numbers in text."""
    return _Redact(opts)
