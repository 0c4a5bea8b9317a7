"""Named, configurable components (layers, losses, optimizers, schedules, metrics,
data sources, preprocessing steps) and the one spec form they all share.

In a spec a component is written in any of these forms::

    relu                                    # just the name
    {dense: 256, activation: relu}          # name: primary option, other options beside it
    {sgd: {momentum: 0.9}}                  # name: mapping of options
    {type: sgd, momentum: 0.9}              # explicit type key
    {type: sgd, options: {momentum: 0.9}}   # the stored (resolved) form

Each is validated against the component's own pydantic options model and resolved into
a frozen ``ComponentSpec(type=<canonical name>, options={...all options...})``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError, model_serializer

from modelyard._validation import StrictModel, describe, join_path, spec_error_from
from modelyard.errors import SpecError
from modelyard.registry import Registry, closest, normalize_name

__all__ = ["Component", "ComponentRegistry", "ComponentSpec", "NoOptions"]


class NoOptions(StrictModel):
    """Options model for components that take none."""


class ComponentSpec(BaseModel):
    """A resolved component: canonical ``type`` plus its complete, validated options."""

    model_config = {"frozen": True, "extra": "forbid"}

    type: str
    options: dict[str, Any] = {}

    @model_serializer(mode="plain")
    def _dump(self) -> dict[str, Any]:
        return {"type": self.type, "options": dict(self.options)}

    def __getitem__(self, key: str) -> Any:
        return self.options[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.options.get(key, default)


@dataclass(frozen=True)
class Component:
    name: str
    target: Callable[..., Any]
    options: type[BaseModel]
    primary: str | None
    doc: str


class ComponentRegistry(Registry[Component]):
    """A registry whose entries carry an options model; parses the spec forms above."""

    def component(
        self,
        name: str,
        *aliases: str,
        options: type[BaseModel] = NoOptions,
        primary: str | None = None,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator registering ``target`` under ``name``.

        ``options`` is a pydantic model (``StrictModel`` subclass) of the component's
        options; ``primary`` names the option that the short form ``{name: value}`` fills.
        """

        def decorate(target: Callable[..., Any]) -> Callable[..., Any]:
            doc = (target.__doc__ or "").strip().splitlines()
            self.add(name, Component(normalize_name(name), target, options, primary, doc[0] if doc else ""), *aliases)
            return target

        return decorate

    def parse(self, raw: Any, *, field: str) -> ComponentSpec:
        """Validate one component written in any spec form; raise a one-line SpecError."""
        if isinstance(raw, ComponentSpec):
            raw = {"type": raw.type, "options": dict(raw.options)}
        if isinstance(raw, str):
            type_name, options = raw, {}
        elif isinstance(raw, dict) and raw:
            type_name, options = self._split(raw, field)
        else:
            raise SpecError(
                f"Invalid value for `{field}`: expected a {self.kind} name or a mapping such as "
                f"{{type: ..., ...}}, received {describe(raw)}",
                field=field,
            )
        comp = self.get(type_name, field=f"{field}.type" if isinstance(raw, dict) and "type" in raw else field)
        try:
            opts = comp.options.model_validate(options)
        except ValidationError as exc:
            raise spec_error_from(exc, field) from None
        return ComponentSpec(type=comp.name, options=opts.model_dump(mode="json"))

    def _split(self, raw: dict[str, Any], field: str) -> tuple[str, dict[str, Any]]:
        if "type" in raw:
            rest = {k: v for k, v in raw.items() if k != "type"}
            if set(rest) == {"options"} and isinstance(rest["options"], dict):
                rest = dict(rest["options"])
            if not isinstance(raw["type"], str):
                raise SpecError(
                    f"Invalid value for `{field}.type`: expected a {self.kind} name, received {describe(raw['type'])}",
                    field=f"{field}.type",
                )
            return raw["type"], rest
        names = [k for k in raw if isinstance(k, str) and k in self]
        if len(names) > 1:
            # `{dense: 64, activation: relu}`: `activation` is a layer name too, but also an
            # option of `dense`; the component is the one name that is no other's option.
            owners = [n for n in names if not any(n in self._option_keys(m) for m in names if m != n)]
            names = owners if len(owners) == 1 else names
        if len(names) == 1 and names[0] in self._all_option_keys():
            # `{densse: 32, activation: relu}`: the one name found may be the option of a misspelled
            # component; name that one ("unknown layer 'densse'; did you mean 'dense'?"), not the option.
            typo = self._misspelled_name(raw, self._option_keys(names[0]))
            if typo is not None:
                self.get(typo, field=field)
        if len(names) != 1:
            keys = ", ".join(map(str, raw))
            if not names:
                # The registry's did-you-mean for the key meant as the name (`{target: y, cvs: a.csv}`:
                # `cvs`, not the option `target`), else for the first key.
                # Only exact option keys are ruled out here: with many components, a misspelled
                # name is often close to some component's option too (`cvs` to audio's `csv`).
                typo = self._misspelled_name(raw, self._all_option_keys(), near_options=False)
                self.get(str(next(iter(raw)) if typo is None else typo), field=join_path(field, []))
            raise SpecError(
                f"Invalid value for `{field}`: expected exactly one {self.kind} name among the keys, "
                f"received keys {keys}",
                field=field,
            )
        name = names[0]
        value = raw[name]
        comp = self.get(name, field=field)
        options = {k: v for k, v in raw.items() if k != name}
        if isinstance(value, dict):
            options = {**value, **options}
        elif value is None or value is True:
            pass  # `{flatten: true}` / `{flatten: }` mean "no options"
        elif comp.primary is None:
            raise SpecError(
                f"Invalid value for `{field}.{name}`: {self.kind} {comp.name!r} takes no primary value; "
                f"write its options as a mapping, received {describe(value)}",
                field=f"{field}.{name}",
            )
        else:
            options = {comp.primary: value, **options}
        return name, options

    def _option_keys(self, name: str) -> set[str]:
        keys: set[str] = set()
        for key, info in self.get(name).options.model_fields.items():
            keys.update(k for k in (key, info.alias) if k)
        return keys

    def _all_option_keys(self) -> set[str]:
        return set().union(*(self._option_keys(n) for n in self.names()))

    def _misspelled_name(self, raw: dict[Any, Any], options: set[str], *, near_options: bool = True) -> str | None:
        """The key of ``raw`` that reads as a misspelled component name: not one of ``options`` (nor,
        with ``near_options``, close to one), but close to a registered name; None when no key is."""
        choices = sorted(options)
        for key in raw:
            if not isinstance(key, str) or key in options or key in self:
                continue
            if near_options and closest(key, choices):
                continue
            if closest(normalize_name(key), self.all_names()):
                return key
        return None

    def options_of(self, spec: ComponentSpec) -> BaseModel:
        """The validated options object for a resolved spec."""
        return self.get(spec.type).options.model_validate(spec.options)

    def build(self, spec: ComponentSpec, *args: Any, **kwargs: Any) -> Any:
        """Call the component's target with its options object and any extra arguments."""
        comp = self.get(spec.type)
        return comp.target(comp.options.model_validate(spec.options), *args, **kwargs)
