"""Command groups for nouns (models, runs, jobs, deployments, tokens): the same verbs on each.

A noun named alone lists: ``modelyard models`` is ``modelyard models list``, and options
after the noun go to ``list`` (``modelyard runs --status failed``), as ``docker image`` and
``git remote`` do. ``--help`` after the noun still shows the noun's verbs.
"""

from __future__ import annotations

from typing import Any

import click

__all__ = ["NounGroup"]


class NounGroup(click.Group):
    """A group whose default verb is ``list``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("invoke_without_command", False)
        kwargs.setdefault("no_args_is_help", False)
        super().__init__(*args, **kwargs)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        help_names = set(ctx.help_option_names)
        if not args or (args[0].startswith("-") and args[0] not in help_names):
            args = ["list", *args]
        return super().parse_args(ctx, args)
