"""The docs stay current: every registered component is documented, every example is tested."""

from __future__ import annotations

import re

import pytest

from modelyard.nn.activations import ACTIVATIONS
from modelyard.nn.init import INITIALIZERS
from modelyard.spec import load_spec, registry_for
from tests.conftest import EXAMPLES, ROOT

SPEC_DOC = (ROOT / "docs" / "spec.md").read_text()
README = (ROOT / "README.md").read_text()


@pytest.mark.parametrize("kind", ["layer", "loss", "optimizer", "schedule", "metric", "source", "preprocess"])
def test_every_component_is_documented(kind):
    missing = [n for n in registry_for(kind).names() if f"`{n}`" not in SPEC_DOC and n not in SPEC_DOC]
    assert not missing, f"{kind}s missing from docs/spec.md: {missing}"


def test_every_activation_and_initializer_is_documented():
    for name in ACTIVATIONS.names() + INITIALIZERS.names():
        assert name in SPEC_DOC, name


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_is_valid_and_in_the_readme(path):
    load_spec(path)
    assert f"examples/{path.name}" in README


def test_readme_opens_with_the_two_commands():
    code_blocks = re.findall(r"```(?:bash|sh)\n(.*?)```", README, flags=re.S)
    assert code_blocks and "scripts/quickstart" in code_blocks[0] and "scripts/test" in code_blocks[0]
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text()
