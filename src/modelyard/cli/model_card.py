"""`modelyard models card NAME[:N|@ALIAS] [-o FILE]`: a version's model card in Markdown (``modelyard.cards``).

The card is built from the store's metadata alone (no torch), so the command is as light as
`models show`; the control plane answers the same text at
``GET /v1/models/{name}/versions/{version}/card``.
"""

from __future__ import annotations

from pathlib import Path

import click

from modelyard.errors import InputError, StoreError

__all__ = ["card"]


@click.command("card")
@click.argument("ref", metavar="NAME[:N|@ALIAS]")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Write the card to FILE instead of printing it.",
)
@click.pass_obj
def card(obj: dict, ref: str, output: str | None) -> None:
    """Print a version's model card: data, spec, metrics, per-epoch history, lineage, compression, privacy, versions."""
    from modelyard.cards import model_card

    if output is not None and not Path(output).parent.is_dir():  # checked before the store is read
        raise InputError(
            f"Invalid value for `--output`: expected a file path in an existing folder, received {output!r}",
            field="--output",
        )
    text = model_card(obj["home"], ref)
    if output is None:
        click.echo(text, nl=False)
        return
    try:  # a plain write: the file gets the user's umask, as any file a command writes for them
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise StoreError(f"Cannot write the model card to {output}: {exc.strerror or exc}", field="--output") from None
    click.echo(f"wrote {output}", err=True)
