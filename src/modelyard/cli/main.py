"""Entry point: the command group and the one place where errors become one line."""

from __future__ import annotations

import logging
import os
import sys

import click

from modelyard.errors import ModelyardError, UsageError

__all__ = ["main", "cli"]


def _usage_error(exc: click.UsageError) -> None:
    """click's usage error as one line, with its did-you-mean, instead of its usage block + "Try ...".

    Exits with ``UsageError``'s code (2, as click does); ``NoArgsIsHelpError`` (a group given no
    command) keeps showing the group's help.
    """
    if isinstance(exc, click.exceptions.NoArgsIsHelpError):
        raise exc
    path = exc.ctx.command_path if exc.ctx is not None else "modelyard"
    message = " ".join(line.strip() for line in exc.format_message().splitlines() if line.strip())
    click.echo(f"error: {message} (see '{path} --help')", err=True)
    sys.exit(UsageError.exit_code)


class _Group(click.Group):
    """Turns every ModelyardError and click usage error into `error: <one line>` and its exit code."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:  # the group's own options: `modelyard --bogus`
            _usage_error(exc)
            raise  # pragma: no cover  (_usage_error exits)

    def invoke(self, ctx: click.Context):  # noqa: ANN201
        from modelyard.store.paths import using_home

        try:
            with using_home(ctx.params.get("home")):
                return super().invoke(ctx)
        except click.UsageError as exc:  # a command, its arguments or options, at any depth
            _usage_error(exc)
        except ModelyardError as exc:
            click.echo(f"error: {exc.message}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("error: interrupted", err=True)
            ctx.exit(130)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:  # an unexpected fault: one line, traceback only on request
            if os.environ.get("MODELYARD_DEBUG"):
                raise
            click.echo(
                f"error: internal error ({type(exc).__name__}: {exc}); rerun with MODELYARD_DEBUG=1 for a traceback",
                err=True,
            )
            ctx.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="modelyard")
@click.option(
    "--home",
    envvar="MODELYARD_HOME",
    type=click.Path(file_okay=False),
    default=None,
    help="Store folder (database + artifacts). Default: $MODELYARD_HOME or ~/.modelyard.",
)
@click.pass_context
def cli(ctx: click.Context, home: str | None) -> None:
    """modelyard: train, evaluate, register and use neural-network models from one spec."""
    logging.basicConfig(level=os.environ.get("MODELYARD_LOG", "WARNING"), format="%(levelname)s %(name)s: %(message)s")
    ctx.obj = {"home": home}


def _register_commands() -> None:
    from modelyard.cli import (
        anonymize,
        compress,
        datasets,
        deployments,
        explain,
        export,
        federated,
        jobs,
        model_aliases,
        model_card,
        model_delete,
        models,
        monitor,
        pipelines,
        predict,
        runs,
        serve,
        server,
        train,
        tune,
    )

    cli.add_command(train.train)
    cli.add_command(tune.tune)
    cli.add_command(runs.runs)
    cli.add_command(models.models)
    models.models.add_command(model_aliases.alias)
    models.models.add_command(model_delete.delete)
    models.models.add_command(model_delete.gc)
    models.models.add_command(model_card.card)
    cli.add_command(predict.eval_cmd)
    cli.add_command(predict.predict)
    cli.add_command(serve.serve)
    cli.add_command(monitor.monitor)
    cli.add_command(compress.compress)
    cli.add_command(export.export)
    cli.add_command(explain.explain)
    cli.add_command(server.server)
    cli.add_command(jobs.jobs)
    cli.add_command(deployments.deployments)
    cli.add_command(anonymize.anonymize)
    cli.add_command(datasets.datasets)
    cli.add_command(pipelines.pipelines)
    cli.add_command(federated.federated)


_register_commands()


def main() -> None:
    cli(prog_name="modelyard")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
