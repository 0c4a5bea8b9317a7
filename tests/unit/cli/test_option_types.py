"""Every option of every command shows what to write: a click type (FLOAT, INTEGER, a choice, a path)
or, for text that is free by nature, a metavar naming it. No `--alpha TEXT` in any --help."""

from __future__ import annotations

from collections.abc import Iterator

import click

from modelyard.cli.main import cli

# Options whose value is free text by nature, by the metavar that says which text, and why no type fits.
FREE_TEXT = {
    "NAME": "a model, data set, study or run name the user chooses",
    "LABEL": "a token's label, any text",
    "RUN": "a run id, looked up in the store",
    "URL": "the control plane's address; the client checks it",
    "TOKEN": "a secret",
    "ADDRESS": "a host name or IP address to bind",
    "ORIGIN": "a browser origin (scheme://host:port)",
    "CLASS": "a class name or an output index of the model",
    "SOURCE": "a data-source name or a file path",
    "METRIC": "a per-epoch metric name of the run's history",
    "PATH=VALUE": "a dotted spec path and a YAML value, parsed (with its one-line error) by spec.apply_overrides",
    "PATH=DIST": "a dotted spec path and a distribution, parsed by tuning.space",
    "SENTENCE": "an input text for a text model, any text",
}
NUMERIC_WORDS = (
    "alpha",
    "temperature",
    "prune",
    "finetune",
    "port",
    "timeout",
    "steps",
    "top",
    "workers",
    "max-",
    "lr",
)


def _commands(command: click.Command, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _commands(sub, (*path, name))


def _valued_options() -> Iterator[tuple[str, click.Option, str]]:
    for path, command in _commands(cli, ("modelyard",)):
        ctx = click.Context(command, info_name=path[-1])
        for param in command.params:
            if isinstance(param, click.Option) and not param.is_flag and not param.count and not param.hidden:
                record = param.get_help_record(ctx)
                if record is not None:
                    yield " ".join(path), param, record[0]


def test_no_option_shows_text() -> None:
    bad = [f"{cmd} {shown}" for cmd, param, shown in _valued_options() if "TEXT" in shown.split()]
    assert not bad, bad


def test_text_options_name_what_to_write() -> None:
    bad = [
        f"{cmd} {shown}"
        for cmd, param, shown in _valued_options()
        if isinstance(param.type, click.types.StringParamType) and param.metavar not in FREE_TEXT
    ]
    assert not bad, bad


def test_numbers_have_number_types() -> None:
    bad = [
        f"{cmd} {shown} ({param.type.name})"
        for cmd, param, shown in _valued_options()
        if any(word in (param.name or "").replace("_", "-") for word in NUMERIC_WORDS)
        and not isinstance(param.type, (click.types.FloatParamType, click.types.IntParamType, click.Choice))
        and "host" not in (param.name or "")
    ]
    assert not bad, bad


def test_the_walk_sees_the_whole_tree() -> None:
    commands = {cmd for cmd, _, _ in _valued_options()}
    assert {
        "modelyard compress",
        "modelyard serve",
        "modelyard server token create",
        "modelyard jobs submit",
    } <= commands


def test_choices_written_in_the_cli_are_the_libraries_own() -> None:
    """`export --format` lists its choices without importing compression (torch): they must not drift."""
    from modelyard.cli.export import export
    from modelyard.compression.export import FORMATS

    (fmt,) = [p for p in export.params if p.name == "fmt_name"]
    assert isinstance(fmt.type, click.Choice) and tuple(fmt.type.choices) == FORMATS


def test_named_choices_are_the_libraries_own() -> None:
    """explain --method and tune --sampler/--pruner show canonical names and take every alias the library takes."""
    from modelyard.cli.explain import METHODS
    from modelyard.cli.tune import PRUNERS, SAMPLERS
    from modelyard.explaining.methods import METHODS as LIBRARY_METHODS
    from modelyard.explaining.methods import get_method
    from modelyard.tuning import strategies

    get_method("ig")  # the methods register when their modules are imported
    assert sorted(METHODS.choices) == LIBRARY_METHODS.names()
    assert sorted([*METHODS.choices, *METHODS.aliases]) == LIBRARY_METHODS.all_names()
    assert all(LIBRARY_METHODS.canonical(a) == name for a, name in METHODS.aliases.items())
    assert tuple(SAMPLERS.choices) == strategies.SAMPLERS and tuple(PRUNERS.choices) == strategies.PRUNERS
    assert all(strategies.check_name("pruner", a) == name for a, name in PRUNERS.aliases.items())
    assert METHODS.convert("IG", None, None) == "integrated_gradients" and PRUNERS.convert("SHA", None, None) == "asha"
    assert METHODS.convert("Kernel-SHAP", None, None) == "shap"


def test_a_bad_choice_is_one_usage_line() -> None:
    from click.testing import CliRunner

    result = CliRunner().invoke(cli, ["explain", "m:1", "x.json", "--method", "shapp"], prog_name="modelyard")
    assert result.exit_code == 2
    assert result.output.strip() == (
        "error: Invalid value for '--method' / '-m': 'shapp' is not one of 'integrated_gradients', 'saliency', "
        "'shap', 'lime'; did you mean 'shap'? (see 'modelyard explain --help')"
    )
