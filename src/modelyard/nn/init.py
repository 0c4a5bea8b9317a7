"""Weight initialisers by name, for the ``init`` and ``bias_init`` layer options.

An initialiser is written like any component: ``init: xavier``, ``init: {normal: 0.02}``
(the primary option), ``init: {type: he_normal, mode: fan_out}``. It is stored in its
resolved form ``{type: ..., options: {...}}``.

Policy (Keras-like once you ask for an initialiser, torch's otherwise):

* no ``init`` and no ``bias_init``: the layer keeps torch's own initialisation;
* ``init`` given: weights get it, the bias gets ``bias_init`` or zeros;
* only ``bias_init`` given: weights keep torch's default, the bias gets ``bias_init``.

All initialisers draw from torch's global generator, so a caller's
``torch.manual_seed`` makes a build reproducible.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import torch
from pydantic import BeforeValidator, Field, ValidationError

from modelyard._validation import StrictModel, join_path
from modelyard.components import ComponentRegistry, ComponentSpec, NoOptions
from modelyard.errors import SpecError
from modelyard.nn.activations import DEFAULT_LEAKY_SLOPE
from modelyard.registry import closest, normalize_name

__all__ = ["INITIALIZERS", "InitOption", "BiasInitOption", "initialize", "apply_initializer"]

INITIALIZERS = ComponentRegistry("initializer")

# Initialisers that derive their scale from fan-in/fan-out need a weight of rank >= 2.
FAN_BASED = frozenset({"xavier", "xavier_normal", "he", "he_normal", "orthogonal"})


class ConstantOptions(StrictModel):
    value: float = 0.0


class NormalOptions(StrictModel):
    mean: float = 0.0
    std: float = Field(0.05, gt=0.0)  # Keras RandomNormal's default stddev


class UniformOptions(StrictModel):
    limit: float = Field(0.05, gt=0.0)  # Keras RandomUniform's default range [-0.05, 0.05]


class GainOptions(StrictModel):
    gain: float = Field(1.0, gt=0.0)


class KaimingOptions(StrictModel):
    # None: derived from the layer's own activation (see _kaiming_nonlinearity).
    nonlinearity: Literal["relu", "leaky_relu", "tanh", "sigmoid", "selu", "linear"] | None = None
    negative_slope: float = Field(DEFAULT_LEAKY_SLOPE, ge=0.0)
    mode: Literal["fan_in", "fan_out"] = "fan_in"


@INITIALIZERS.component("default", "torch")
def _default(opts: NoOptions, tensor: torch.Tensor, *, activation: str | None = None) -> None:
    """Keep torch's own initialisation."""


@INITIALIZERS.component("zeros", "zero")
def _zeros(opts: NoOptions, tensor: torch.Tensor, *, activation: str | None = None) -> None:
    """All zeros."""
    torch.nn.init.zeros_(tensor)


@INITIALIZERS.component("ones", "one")
def _ones(opts: NoOptions, tensor: torch.Tensor, *, activation: str | None = None) -> None:
    """All ones."""
    torch.nn.init.ones_(tensor)


@INITIALIZERS.component("constant", options=ConstantOptions, primary="value")
def _constant(opts: ConstantOptions, tensor: torch.Tensor, *, activation: str | None = None) -> None:
    """Every entry equal to ``value``."""
    torch.nn.init.constant_(tensor, opts.value)


@INITIALIZERS.component("normal", "random_normal", options=NormalOptions, primary="std")
def _normal(opts: NormalOptions, tensor: torch.Tensor, *, activation: str | None = None) -> None:
    """N(mean, std²), std 0.05 by default like Keras RandomNormal."""
    torch.nn.init.normal_(tensor, mean=opts.mean, std=opts.std)


@INITIALIZERS.component("uniform", "random_uniform", options=UniformOptions, primary="limit")
def _uniform(opts: UniformOptions, tensor: torch.Tensor, *, activation: str | None = None) -> None:
    """U(-limit, limit), limit 0.05 by default like Keras RandomUniform."""
    torch.nn.init.uniform_(tensor, -opts.limit, opts.limit)


@INITIALIZERS.component("xavier", "glorot", "xavier_uniform", "glorot_uniform", options=GainOptions, primary="gain")
def _xavier(opts: GainOptions, tensor: torch.Tensor, *, activation: str | None = None) -> None:
    """Glorot & Bengio (2010) uniform: U(±gain·sqrt(6 / (fan_in + fan_out)))."""
    torch.nn.init.xavier_uniform_(tensor, gain=opts.gain)


@INITIALIZERS.component("xavier_normal", "glorot_normal", options=GainOptions, primary="gain")
def _xavier_normal(opts: GainOptions, tensor: torch.Tensor, *, activation: str | None = None) -> None:
    """Glorot normal: N(0, gain²·2 / (fan_in + fan_out))."""
    torch.nn.init.xavier_normal_(tensor, gain=opts.gain)


def _kaiming_nonlinearity(opts: KaimingOptions, activation: str | None) -> tuple[str, float]:
    """He init assumes a ReLU-like unit. Units torch has a gain for use it; anything else
    (no activation: a separate relu layer usually follows; gelu, elu, silu ...) counts as relu."""
    if opts.nonlinearity is not None:
        return opts.nonlinearity, opts.negative_slope
    if activation in ("leaky_relu", "tanh", "sigmoid", "selu"):
        return activation, DEFAULT_LEAKY_SLOPE
    return "relu", 0.0


@INITIALIZERS.component(
    "he", "kaiming", "he_uniform", "kaiming_uniform", options=KaimingOptions, primary="nonlinearity"
)
def _he(opts: KaimingOptions, tensor: torch.Tensor, *, activation: str | None = None) -> None:
    """He et al. (2015) uniform: U(±gain·sqrt(3 / fan)), gain from the nonlinearity."""
    nonlinearity, slope = _kaiming_nonlinearity(opts, activation)
    torch.nn.init.kaiming_uniform_(tensor, a=slope, mode=opts.mode, nonlinearity=nonlinearity)


@INITIALIZERS.component("he_normal", "kaiming_normal", options=KaimingOptions, primary="nonlinearity")
def _he_normal(opts: KaimingOptions, tensor: torch.Tensor, *, activation: str | None = None) -> None:
    """He normal: N(0, gain² / fan), gain from the nonlinearity."""
    nonlinearity, slope = _kaiming_nonlinearity(opts, activation)
    torch.nn.init.kaiming_normal_(tensor, a=slope, mode=opts.mode, nonlinearity=nonlinearity)


@INITIALIZERS.component("orthogonal", options=GainOptions, primary="gain")
def _orthogonal(opts: GainOptions, tensor: torch.Tensor, *, activation: str | None = None) -> None:
    """Saxe et al. (2014): a (semi-)orthogonal matrix scaled by ``gain``."""
    torch.nn.init.orthogonal_(tensor, gain=opts.gain)


def _split(value: Any) -> tuple[str, dict[str, Any]]:
    """The initialiser name and raw options of any component form."""
    if isinstance(value, ComponentSpec):
        return value.type, dict(value.options)
    if isinstance(value, str):
        return value, {}
    if isinstance(value, dict) and "type" in value:
        rest = {k: v for k, v in value.items() if k != "type"}
        if set(rest) == {"options"} and isinstance(rest["options"], dict):
            rest = dict(rest["options"])
        return str(value["type"]), rest
    if isinstance(value, dict) and len(value) == 1:
        name, arg = next(iter(value.items()))
        if isinstance(arg, dict):
            return str(name), dict(arg)
        if arg is None:
            return str(name), {}
        primary = INITIALIZERS.get(name).primary if name in INITIALIZERS else None
        if primary is None:
            raise ValueError(f"initializer {name!r} takes no primary value, received {arg!r}")
        return str(name), {primary: arg}
    raise ValueError(
        f"expected an initializer name such as xavier or a mapping such as {{normal: 0.02}}, received {value!r}"
    )


def _parse(value: Any, *, bias: bool) -> ComponentSpec | None:
    if value is None:
        return None
    name, options = _split(value)
    allowed = [n for n in INITIALIZERS.names() if not (bias and n in FAN_BASED)]
    try:
        canonical = INITIALIZERS.canonical(name)
    except SpecError:
        hint = closest(normalize_name(name), INITIALIZERS.all_names())
        msg = f"expected one of {', '.join(allowed)}, received {name!r}"
        raise ValueError(msg + (f"; did you mean {INITIALIZERS.canonical(hint)!r}?" if hint else "")) from None
    if canonical not in allowed:
        raise ValueError(f"expected one of {', '.join(allowed)} (a bias has no fan-in/fan-out), received {name!r}")
    comp = INITIALIZERS.get(canonical)
    try:
        opts = comp.options.model_validate(options)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        key = join_path("", err.get("loc", ()))
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        where = f"option `{key}` of initializer {canonical!r}" if key else f"initializer {canonical!r}"
        received = "" if err.get("type") == "value_error" else f", received {err.get('input')!r}"
        raise ValueError(f"{where}: {msg}{received}") from None
    return ComponentSpec(type=canonical, options=opts.model_dump(mode="json"))


def _parse_weight(value: Any) -> ComponentSpec | None:
    return _parse(value, bias=False)


def _parse_bias(value: Any) -> ComponentSpec | None:
    return _parse(value, bias=True)


# Layer option types: validated at spec time, stored in the resolved form.
InitOption = Annotated[ComponentSpec | None, BeforeValidator(_parse_weight)]
BiasInitOption = Annotated[ComponentSpec | None, BeforeValidator(_parse_bias)]


def apply_initializer(spec: ComponentSpec, tensor: torch.Tensor, *, activation: str | None = None) -> None:
    """Initialise ``tensor`` in place with a resolved initialiser spec."""
    with torch.no_grad():
        INITIALIZERS.build(spec, tensor, activation=activation)


def initialize(
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    *,
    init: ComponentSpec | None,
    bias_init: ComponentSpec | None,
    activation: str | None = None,
) -> None:
    """Apply the module-level policy above to one layer's weight and bias."""
    if init is not None:
        apply_initializer(init, weight, activation=activation)
    if bias is not None:
        if bias_init is not None:
            apply_initializer(bias_init, bias, activation=activation)
        elif init is not None:
            with torch.no_grad():
                bias.zero_()
