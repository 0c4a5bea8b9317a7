"""--search parsing: each distribution's form, and one-line errors naming the value, the form expected and what came."""

from __future__ import annotations

import optuna
import pytest

from modelyard.errors import SpecError
from modelyard.tuning.space import Dimension, grid, parse_search, suggest


def test_each_form_parses_to_its_distribution() -> None:
    dims = parse_search(
        [
            "train.lr=loguniform(1e-4,1e-1)",
            "train.weight_decay=uniform(0, 0.01)",
            "model.layers.0.units=int(16,64,log)",
            "train.batch_size=int(16,128)",
            "train.optimizer=choice(adam, sgd)",
        ]
    )
    assert dims == [
        Dimension("train.lr", "loguniform", low=1e-4, high=1e-1, log=True),
        Dimension("train.weight_decay", "uniform", low=0.0, high=0.01),
        Dimension("model.layers.0.units", "int", low=16, high=64, log=True),
        Dimension("train.batch_size", "int", low=16, high=128),
        Dimension("train.optimizer", "choice", choices=("adam", "sgd")),
    ]


def test_the_spec_section_takes_a_mapping_and_a_list_is_a_choice() -> None:
    dims = parse_search({"train.lr": "loguniform(1e-3,1e-2)", "model.layers.0.units": [32, 64]})
    assert dims[1] == Dimension("model.layers.0.units", "choice", choices=(32, 64))


def test_suggested_values_are_optunas_own_draws_within_the_ranges() -> None:
    dims = parse_search(["a.lr=loguniform(1e-4,1e-1)", "a.n=int(2,5)", "a.act=choice(relu,tanh)"])
    ours = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    theirs = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(20):
        got = suggest(ours.ask(), dims)
        ref = theirs.ask()
        want = {
            "a.lr": ref.suggest_float("a.lr", 1e-4, 1e-1, log=True),
            "a.n": ref.suggest_int("a.n", 2, 5),
            "a.act": ref.suggest_categorical("a.act", ["relu", "tanh"]),
        }
        assert got == want
        assert 1e-4 <= got["a.lr"] <= 1e-1 and 2 <= got["a.n"] <= 5


def test_grid_lists_discrete_values_and_refuses_a_continuous_range() -> None:
    assert grid(parse_search(["a.n=int(1,3)", "a.b=choice(x,y)"])) == {"a.n": [1, 2, 3], "a.b": ["x", "y"]}
    with pytest.raises(SpecError, match=r"`--search a.lr=uniform\(0.1,0.2\)`: grid search needs choice"):
        grid(parse_search(["a.lr=uniform(0.1,0.2)"]))


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (
            "train.lr=loguniform(1e-1,1e-4)",
            r"`--search train.lr=loguniform\(1e-1,1e-4\)`: expected loguniform\(LOW,HIGH\) "
            r"with 0 < LOW < HIGH, received an empty range: LOW 1e-1 is not below HIGH 1e-4",
        ),
        ("train.lr=uniform(0.1,0.1)", r"received an empty range: LOW 0.1 is not below HIGH 0.1"),
        ("train.lr=loguniform(0,1)", r"received LOW 0, which a log scale cannot start at"),
        ("train.lr=choice()", r"expected choice\(A,B,...\) with at least one value, received no values"),
        ("train.lr=logunifrom(1e-4,1e-1)", r"received 'logunifrom'; did you mean 'loguniform'\?"),
        ("train.lr=uniform(a,1)", r"expected uniform\(LOW,HIGH\) with LOW < HIGH, received 'a', not a number"),
        ("train.lr=uniform(1)", r"received 1 argument$"),
        ("model.layers.0.units=int(1.5,4)", r"received a bound that is not an integer"),
        ("train.lr=0.1", r"expected one of uniform\(LOW,HIGH\), .*, received '0.1'"),
        ("train.lr", r"`--search train.lr`: expected PATH=DISTRIBUTION .*received no '='"),
        ("a.b=choice(1,1)", r"received a value listed twice"),
        ("a.b=choice([1,2],[3])", r"received \[1, 2\], not a single number"),
    ],
)
def test_bad_search_values_are_one_line_errors(item: str, message: str) -> None:
    with pytest.raises(SpecError, match=message) as caught:
        parse_search([item])
    assert "\n" not in caught.value.message and caught.value.field == "--search"


def test_a_path_searched_twice_and_no_search_at_all_are_refused() -> None:
    with pytest.raises(SpecError, match="`--search train.lr`: the path is searched twice"):
        parse_search(["train.lr=uniform(0.1,0.2)", "train.lr=choice(0.1)"])
    with pytest.raises(SpecError, match="Missing search space"):
        parse_search([])
