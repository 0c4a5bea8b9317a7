"""Options whose defaults live elsewhere (a settings model, the client), so each is written once.

``modelyard serve --max-batch-size`` and ``ServeConfig.max_batch_size`` used to carry their
own ``64`` each (and ``serve_config``, ``deployments create`` and the replica launcher three
more). An option made here has no default of its own: left out, it is passed on as absent and
the settings model (or the client) fills it in; ``--help`` shows that default, looked up when
the help is printed (its module is imported then, not when the CLI starts).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import click

from modelyard.registry import closest, normalize_name

__all__ = ["Names", "config_option", "deferred_option", "given"]


class Names(click.Choice):
    """A choice shown as its canonical names (``[tpe|random|grid]``) that also takes their aliases,
    spelled as the library's registries spell them (any case, '-' or ' ' for '_'). The names are
    written in the CLI module, not imported, so --help does not load torch or optuna; a test
    compares them with the library's."""

    def __init__(self, names: tuple[str, ...] | list[str], aliases: dict[str, str] | None = None) -> None:
        super().__init__(list(names))
        self.aliases = dict(aliases or {})

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        key = normalize_name(value)
        try:
            return super().convert(self.aliases.get(key, key), param, ctx)
        except click.BadParameter as exc:
            hint = closest(key, [*self.choices, *self.aliases])
            if hint is None:
                raise
            name = self.aliases.get(hint, hint)
            raise click.BadParameter(
                f"{exc.message.rstrip('.')}; did you mean {name!r}?", ctx=ctx, param=param
            ) from None


def _lookup(target: str) -> Any:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


class DeferredDefaultOption(click.Option):
    """A click option whose shown default comes from ``default_from()`` (see the module docstring)."""

    def __init__(self, *args: Any, default_from: Callable[[], Any], **kwargs: Any) -> None:
        if "default" in kwargs:
            raise TypeError("this option's default lives in its settings model, not in click")
        super().__init__(*args, default=None, show_default=False, **kwargs)
        self.default_from = default_from

    def get_help_extra(self, ctx: click.Context) -> Any:
        extra = super().get_help_extra(ctx)
        default = self.default_from()
        if default is not None and not (self.is_flag and default is False):
            extra["default"] = ", ".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)
        return extra


def config_option(*param_decls: str, model: str, field: str | None = None, **kwargs: Any) -> Callable:
    """``click.option`` for a setting of ``model`` (``"modelyard.serving.config:ServeConfig"``);
    ``field`` defaults to the option's own name (``--max-batch-size``: ``max_batch_size``)."""

    def decorate(func: Callable) -> Callable:
        option = click.option(*param_decls, cls=DeferredDefaultOption, default_from=lambda: None, **kwargs)(func)
        param = func.__click_params__[-1]  # type: ignore[attr-defined]
        name = field or param.name
        param.default_from = lambda: _lookup(model).model_fields[name].get_default(call_default_factory=True)
        return option

    return decorate


def deferred_option(*param_decls: str, default_from: str, **kwargs: Any) -> Callable:
    """``click.option`` whose default is the value at ``default_from`` (``"module:NAME"``)."""
    return click.option(*param_decls, cls=DeferredDefaultOption, default_from=lambda: _lookup(default_from), **kwargs)


def given(**values: Any) -> dict[str, Any]:
    """The options the user gave (deferred options left out arrive as None; the model fills them)."""
    return {k: v for k, v in values.items() if v is not None}
