"""Differentially private training: DP-SGD through Opacus (``train.privacy``, docs/privacy.md).

``check_private`` refuses, before anything is stored, what DP-SGD cannot train: a delta that is
not below 1/N, data streamed from disk (Poisson sampling needs random access to every sample)
and layers whose per-sample gradients Opacus cannot compute (batch norm mixes the samples of a
batch: group norm is the replacement). ``make_private`` builds the pieces the loop uses in
place of its plain step: Opacus's per-sample gradient hooks on the network (ghost clipping by
default: per-sample gradient norms without per-sample gradients), its DP optimizer (clip,
sum, add Gaussian noise from a seeded generator, average) and an RDP accountant that every
optimizer step passes through. The noise multiplier is calibrated so that the planned number
of steps at the Poisson sampling rate spends the requested epsilon at the last one.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import torch
from torch import nn

from modelyard.errors import DataError, SpecError, optional_dependency
from modelyard.spec import PrivacySpec
from modelyard.training.batches import PoissonBatches, is_tensor_split, split_size
from modelyard.training.losses import LossFn

__all__ = ["PrivateTraining", "check_private", "make_private", "noise_multiplier", "ACCOUNTANT", "ALPHAS"]

ACCOUNTANT = "rdp"  # Opacus's Renyi-DP accountant (Mironov 2017; Mironov, Talwar, Zhang 2019)
_EPSILON_TOLERANCE = 0.005  # calibration stops within this much below the requested epsilon
# RDP orders searched for the best conversion to (epsilon, delta): spread like Opacus's defaults
# (1.1..63) but sparser, since each fractional order costs a series sum and calibration evaluates
# them ~20 times, and reaching 256, which small epsilons at small sampling rates need.
ALPHAS = [1.25, 1.5, 1.75, 2, 2.25, 2.5, 2.75, 3, 3.5, 4, 4.5, 5, 5.5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 20, 24, 28, 32]
ALPHAS += [40, 48, 64, 80, 96, 128, 160, 192, 256]


def _opacus() -> Any:
    with optional_dependency("privacy", "differentially private training (train.privacy)"):
        import opacus
    return opacus


def check_private(spec: PrivacySpec, network: nn.Module, train: Any) -> None:
    """Refuse what DP-SGD cannot do with this network and data; imports Opacus (its validator)."""
    if not is_tensor_split(train):
        raise SpecError(
            "Invalid value for `data.stream`: train.privacy needs the training split in memory "
            "(Poisson sampling draws from every sample at each step), received a streamed split; "
            "set data.stream false",
            field="data.stream",
        )
    n = split_size(train)
    if spec.delta >= 1.0 / n:
        raise SpecError(
            f"Invalid value for `train.privacy.delta`: expected a value below 1/N = 1/{n} ({1.0 / n:.3g}) "
            f"for {n} training samples (a larger delta allows leaking a whole sample), received {spec.delta:g}",
            field="train.privacy.delta",
        )
    _check_layers(network)


def _check_layers(network: nn.Module) -> None:
    _opacus()
    from opacus.grad_sample.utils import get_hooks_class
    from opacus.validators import ModuleValidator

    names = {id(m): name for name, m in network.named_modules()}
    for name, module in network.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            raise SpecError(
                f"Invalid value for `{_layer_name(name)}`: train.privacy cannot train {type(module).__name__} "
                f"(it mixes the samples of a batch, so per-sample gradients and their privacy are undefined); "
                f"replace batchnorm with groupnorm (e.g. {{groupnorm: 8}}) or layernorm",
                field=_layer_name(name),
            )
    errors = ModuleValidator.validate(network, strict=False)
    if errors:
        raise SpecError(f"Invalid network for train.privacy: {' '.join(str(errors[0]).split())}", field="model.layers")
    supported = get_hooks_class("hooks").GRAD_SAMPLERS
    for module in network.modules():
        own = [p for p in module.parameters(recurse=False) if p.requires_grad]
        if own and type(module) not in supported:
            where = _layer_name(names[id(module)])
            raise SpecError(
                f"Invalid value for `{where}`: train.privacy cannot train {type(module).__name__} (Opacus computes "
                f"no per-sample gradients for it); use dense, conv, embedding, layernorm or groupnorm layers",
                field=where,
            )


def _layer_name(module_path: str) -> str:
    """``layers.3.linear`` (the Network's module path) → ``model.layers[3]`` (the spec's field)."""
    parts = module_path.split(".")
    return f"model.layers[{parts[1]}]" if len(parts) > 1 and parts[0] == "layers" else module_path or "model"


class _PerSample:
    """The spec's loss with the ``reduction`` attribute Opacus's ghost clipping switches to
    ``"none"``: then one loss per sample (the mean over that sample's output elements)."""

    def __init__(self, loss_fn: LossFn) -> None:
        self.loss_fn = loss_fn
        self.reduction = "mean"

    def __call__(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.reduction == "mean":
            return self.loss_fn(output, target)
        elementwise = self.loss_fn(output, target, reduction="none")
        return elementwise.reshape(output.shape[0], -1).mean(dim=1)


@dataclass
class PrivateTraining:
    """The DP-SGD step and its accounting for one fit (``TrainingRun.private``)."""

    spec: PrivacySpec
    hooks: Any  # Opacus GradSampleHooks(FastGradientClipping) on the network itself
    optimizer: Any  # Opacus DPOptimizer(FastGradientClipping) around the spec's optimizer
    criterion: Any  # the per-sample loss wrapper (ghost) or the plain loss (hooks)
    accountant: Any  # opacus.accountants.RDPAccountant
    noise_gen: torch.Generator
    noise_multiplier: float
    sample_rate: float
    planned_steps: int

    def step(self, network: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One DP-SGD step; returns (batch mean loss, outputs). Every call reaches the accountant."""
        if xb.shape[0] == 0:
            return self._empty_step(network, xb)
        out = network(xb)
        loss = self.criterion(out, yb)
        with warnings.catch_warnings():
            # torch notes that Opacus's backward hooks fire although the input needs no gradient: intended.
            warnings.filterwarnings("ignore", message="Full backward hook is firing", category=UserWarning)
            loss.backward()  # ghost: two passes (norms, then clipped gradients); hooks: per-sample grads
        self.optimizer.step()  # clip (hooks), noise, average, the accountant's hook, the inner step
        self.optimizer.zero_grad(set_to_none=True)
        return loss.detach(), out

    def _empty_step(self, network: nn.Module, xb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # An empty Poisson batch still releases a (pure noise) update: the accounting counts it.
        for p in self.optimizer.params:
            if self.spec.clipping == "ghost":
                p.grad = torch.zeros_like(p)
            else:
                p.grad_sample = torch.zeros((1, *p.shape), dtype=p.dtype, device=p.device)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            out = network(xb)
        return torch.zeros((), device=xb.device), out

    @property
    def steps(self) -> int:
        """Optimizer steps the accountant has seen."""
        return sum(int(n) for _, _, n in self.accountant.history)

    def epsilon(self) -> float:
        return (
            float(self.accountant.get_epsilon(delta=self.spec.delta, alphas=ALPHAS)) if self.accountant.history else 0.0
        )

    def report(self) -> dict[str, Any]:
        """The privacy facts recorded with the run and the model version (``privacy`` key)."""
        return {
            "epsilon": self.epsilon(),
            "delta": self.spec.delta,
            "target_epsilon": self.spec.epsilon,
            "noise_multiplier": self.noise_multiplier,
            "sample_rate": self.sample_rate,
            "steps": self.steps,
            "planned_steps": self.planned_steps,
            "max_grad_norm": self.spec.max_grad_norm,
            "clipping": self.spec.clipping,
            "sampling": "poisson",
            "accountant": ACCOUNTANT,
            "mechanism": f"DP-SGD (Opacus {metadata.version('opacus')})",
        }

    def state_dict(self) -> dict[str, Any]:
        return {"history": [list(h) for h in self.accountant.history], "noise_multiplier": self.noise_multiplier}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not math.isclose(float(state["noise_multiplier"]), self.noise_multiplier, rel_tol=1e-9):
            raise DataError(
                f"Cannot resume: the checkpoint's noise multiplier {state['noise_multiplier']} differs from this "
                f"run's {self.noise_multiplier}; resume with the spec and data the run started with"
            )
        self.accountant.history = [(float(s), float(q), int(n)) for s, q, n in state["history"]]

    def close(self) -> None:
        """Take the hooks off the network (the registered model and prediction never see them)."""
        self.hooks.remove_hooks()
        for p in self.optimizer.params:
            for attr in ("grad_sample", "summed_grad", "_norm_sample"):
                if hasattr(p, attr):
                    setattr(p, attr, None)


def noise_multiplier(spec: PrivacySpec, *, sample_rate: float, steps: int) -> float:
    """The noise (in units of max_grad_norm) whose ``steps`` Poisson-sampled steps spend ``spec.epsilon``."""
    return calibrated_noise(
        spec.epsilon,
        spec.delta,
        sample_rate=sample_rate,
        steps=steps,
        field="train.privacy.epsilon",
        unit="steps",
        fewer="epochs",
    )


def calibrated_noise(
    epsilon: float, delta: float, *, sample_rate: float, steps: int, field: str, unit: str, fewer: str
) -> float:
    """Opacus's noise multiplier whose ``steps`` Poisson-sampled steps at ``sample_rate`` spend ``epsilon``.

    Shared by DP-SGD (``train.privacy``: steps) and client-level DP-FedAvg (``federated.dp``: rounds);
    a budget no noise reaches is a SpecError on ``field``.
    """
    _opacus()
    from opacus.accountants.utils import get_noise_multiplier

    try:
        with warnings.catch_warnings():
            # The search doubles sigma from 20 upwards: for extreme ones the best RDP order is an end one.
            warnings.filterwarnings("ignore", message="Optimal order is the", category=UserWarning)
            return float(
                get_noise_multiplier(
                    target_epsilon=epsilon,
                    target_delta=delta,
                    sample_rate=sample_rate,
                    steps=steps,
                    accountant=ACCOUNTANT,
                    epsilon_tolerance=_EPSILON_TOLERANCE,
                    alphas=ALPHAS,
                )
            )
    except ValueError:  # Opacus: "The privacy budget is too low." (sigma would exceed 2**20)
        raise SpecError(
            f"Invalid value for `{field}`: {epsilon:g} at delta {delta:g} over {steps} {unit} "
            f"needs more noise than any useful training has; expected a larger epsilon or fewer {fewer}",
            field=field,
        ) from None


def make_private(
    spec: PrivacySpec,
    network: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    batches: PoissonBatches,
    *,
    epochs: int,
    device: torch.device,
    seed: int,
) -> PrivateTraining:
    """Wrap ``optimizer`` and hook ``network`` for DP-SGD with noise calibrated to ``spec.epsilon``."""
    _opacus()
    from opacus.accountants import RDPAccountant
    from opacus.grad_sample.utils import prepare_module
    from opacus.optimizers import get_optimizer_class
    from opacus.utils.fast_gradient_clipping_utils import DPLossFastGradientClipping

    planned = epochs * len(batches)
    sigma = noise_multiplier(spec, sample_rate=batches.sample_rate, steps=planned)
    extra = {"max_grad_norm": spec.max_grad_norm} if spec.clipping == "ghost" else {}
    hooks = prepare_module(
        network, grad_sample_mode=spec.clipping, wrap_model=False, batch_first=True, loss_reduction="mean", **extra
    )
    hooks.forbid_grad_accumulation()  # Poisson batches are one step each; accumulation would skew the accounting
    noise_gen = torch.Generator(device=device).manual_seed(seed + 2)
    dp_optimizer = get_optimizer_class(clipping="flat", distributed=False, grad_sample_mode=spec.clipping)(
        optimizer=optimizer,
        noise_multiplier=sigma,
        max_grad_norm=spec.max_grad_norm,
        expected_batch_size=batches.n * batches.sample_rate,  # the "mean" divides the noisy sum by this
        loss_reduction="mean",
        generator=noise_gen,
        secure_mode=False,
    )
    accountant = RDPAccountant()
    dp_optimizer.attach_step_hook(accountant.get_optimizer_hook_fn(sample_rate=batches.sample_rate))
    criterion: Any = _PerSample(loss_fn)
    if spec.clipping == "ghost":
        criterion = DPLossFastGradientClipping(hooks, dp_optimizer, criterion, loss_reduction="mean")
    return PrivateTraining(
        spec=spec,
        hooks=hooks,
        optimizer=dp_optimizer,
        criterion=criterion,
        accountant=accountant,
        noise_gen=noise_gen,
        noise_multiplier=sigma,
        sample_rate=batches.sample_rate,
        planned_steps=planned,
    )
