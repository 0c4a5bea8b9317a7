"""The fused training step for dense stacks: forward and backward without the autograd tape.

For a network that is a stack of dense layers and pointwise activations (optionally with
a leading flatten and dropout between layers), one step is a dozen large kernels: an
``addmm`` per layer forward, then per layer two GEMMs for the weight and input
gradients, a bias sum and the activation's derivative. Autograd runs the same kernels
but records and replays a graph around each one, allocates every gradient afresh and
needs ``zero_grad`` (what that costs: docs/performance.md). ``DenseStep`` calls the kernels directly,
writes the weight gradients into persistent ``.grad`` buffers with ``out=`` and leaves
the optimizer, clipping, schedules and penalties exactly as they are.

Only the loss goes through autograd, on a leaf made from the logits: any loss (label
smoothing, one-hot targets, distillation's packed targets) then has its exact gradient.
Given a ``ValueAndGrad`` (``fast.cross_entropy``: plain cross-entropy on class indices) it
skips even that: the kernels autograd would run, without a graph.
The backward formulas are torch's own ``*_backward`` kernels, so the gradients equal
autograd's up to GEMM summation order (tests/unit/training/fast/test_dense_step.py compares them).

A fast path behind ``modelyard.fast_paths``: it calls aten's ``*_backward`` and
``native_dropout`` kernels, which torch does not promise to keep, so ``GATE`` names the torch
versions it was tested with; outside them, or with ``MODELYARD_FAST_PATHS=0``, the network
trains through autograd.

``precision`` bf16 follows autocast's rules: GEMM inputs are cast to bf16 each step and
produce bf16, the loss runs in fp32, weight gradients are accumulated into fp32 buffers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from modelyard.fast_paths import Gate
from modelyard.training.fast._modules import is_plain, leaves
from modelyard.training.fast.cross_entropy import ValueAndGrad

__all__ = ["GATE", "DenseStep", "dense_stack"]

GATE = Gate("dense_step", "torch", "2.4", "2.14")

aten = torch.ops.aten
Tensor = torch.Tensor

# SELU's constants (Klambauer et al. 2017), as torch.nn.functional.selu uses them.
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


@dataclass(frozen=True)
class _Activation:
    """``forward(z) -> y`` and ``backward(grad_y, z, y) -> grad_z`` with torch's kernels."""

    forward: Callable[[Tensor], Tensor]
    backward: Callable[[Tensor, Tensor, Tensor], Tensor]
    needs_input: bool  # backward reads z (else only y, so z need not be kept)


def _activation(module: nn.Module) -> _Activation | None:
    """The fused form of a pointwise activation module, or None if it has none."""
    if isinstance(module, nn.ReLU):
        return _Activation(torch.relu, lambda g, z, y: aten.threshold_backward(g, y, 0), False)
    if isinstance(module, nn.LeakyReLU) and module.negative_slope >= 0:
        s = float(module.negative_slope)
        return _Activation(lambda z: F.leaky_relu(z, s), lambda g, z, y: aten.leaky_relu_backward(g, y, s, True), False)
    if isinstance(module, nn.Tanh):
        return _Activation(torch.tanh, lambda g, z, y: aten.tanh_backward(g, y), False)
    if isinstance(module, nn.Sigmoid):
        return _Activation(torch.sigmoid, lambda g, z, y: aten.sigmoid_backward(g, y), False)
    if isinstance(module, nn.GELU):
        a = module.approximate
        return _Activation(
            lambda z: F.gelu(z, approximate=a), lambda g, z, y: aten.gelu_backward(g, z, approximate=a), True
        )
    if isinstance(module, nn.SiLU):
        return _Activation(F.silu, lambda g, z, y: aten.silu_backward(g, z), True)
    if isinstance(module, nn.ELU) and module.alpha >= 0:
        alpha = float(module.alpha)
        return _Activation(lambda z: F.elu(z, alpha), lambda g, z, y: aten.elu_backward(g, alpha, 1, 1, True, y), False)
    if isinstance(module, nn.SELU):
        return _Activation(F.selu, lambda g, z, y: aten.elu_backward(g, _SELU_ALPHA, _SELU_SCALE, 1, True, y), False)
    if isinstance(module, nn.Softplus):
        beta, threshold = float(module.beta), float(module.threshold)
        return _Activation(
            lambda z: F.softplus(z, beta, threshold),
            lambda g, z, y: aten.softplus_backward(g, z, beta, threshold),
            True,
        )
    return None


@dataclass(frozen=True)
class _Dense:
    linear: nn.Linear


@dataclass(frozen=True)
class _Dropout:
    p: float


_Op = _Dense | _Activation | _Dropout


@dataclass(frozen=True)
class _Flatten:
    """A leading ``Flatten``: samples become rows (without it, dense layers act on the last axis)."""


def dense_stack(network: nn.Module) -> list[_Op | _Flatten] | None:
    """The network as fused ops, or None when any part of it needs autograd.

    Accepted: ``Linear`` layers, the activations ``_activation`` knows, ``Dropout``,
    ``Identity`` (a final softmax folded into the loss leaves one) and a ``Flatten`` before
    the first dense layer (returned as the first op). Everything else (convolutions, normalisation, embeddings, a
    softmax that stayed in the network, a module with hooks such as pruning masks) trains
    through autograd.
    """
    if not GATE.open():
        return None
    body = getattr(network, "layers", network)
    if (type(network).forward is not nn.Sequential.forward and body is network) or not (
        is_plain(network) and is_plain(body)
    ):
        return None
    ops: list[_Op | _Flatten] = []
    for leaf in leaves(body):
        if not is_plain(leaf):
            return None
        if isinstance(leaf, nn.Identity):
            continue
        if isinstance(leaf, nn.Flatten) and not ops and leaf.start_dim == 1 and leaf.end_dim == -1:
            ops.append(_Flatten())
            continue
        if isinstance(leaf, nn.Linear):
            ops.append(_Dense(leaf))
        elif isinstance(leaf, nn.Dropout) and _has_dense(ops):
            ops.append(_Dropout(float(leaf.p)))
        elif (act := _activation(leaf)) is not None and _has_dense(ops):
            ops.append(act)
        else:
            return None
    return ops if _has_dense(ops) else None


def _has_dense(ops: list[_Op | _Flatten]) -> bool:
    """True once a dense layer is in ``ops`` (activations and dropout must follow one)."""
    return any(isinstance(op, _Dense) for op in ops)


class DenseStep:
    """Forward + backward of a dense stack; ``__call__`` fills every parameter's ``.grad``.

    The ``.grad`` buffers are allocated once and overwritten each step (never set to
    None), so the loop must not call ``zero_grad`` between steps; penalties added with
    ``backward()`` afterwards accumulate onto them as usual.
    """

    kind = "dense-fused"

    def __init__(
        self,
        network: nn.Module,
        ops: list[_Op | _Flatten],
        *,
        dtype: torch.dtype | None,
        value_and_grad: ValueAndGrad | None = None,
    ) -> None:
        self.network = network
        self.value_and_grad = value_and_grad  # the loss's tape-free gradient, when it has one
        self.flatten = bool(ops) and isinstance(ops[0], _Flatten)
        self.ops: list[_Op] = [op for op in ops if not isinstance(op, _Flatten)]
        self.dtype = dtype  # compute dtype of the GEMMs (bf16 under autocast rules), None = as stored
        for p in network.parameters():
            if p.requires_grad and p.grad is None:
                p.grad = torch.zeros_like(p)

    def _cast(self, t: Tensor | None) -> Tensor | None:
        return t if t is None or self.dtype is None else t.to(self.dtype)

    @torch.no_grad()
    def __call__(self, x: Tensor, y: Tensor, loss_fn: Callable[[Tensor, Tensor], Tensor]) -> tuple[Tensor, Tensor]:
        """One forward and backward pass; returns (batch mean loss, outputs), both detached.

        Rows are samples after a leading flatten; otherwise every position of the leading axes
        is a row (dense layers act on the last axis, as ``nn.Linear`` does), and the outputs
        get the leading axes back.
        """
        lead = (x.shape[0],) if self.flatten else tuple(x.shape[:-1])
        h = self._cast(x.reshape(x.shape[0], -1) if self.flatten else x.reshape(-1, x.shape[-1]))
        saved: list[tuple[Tensor, ...]] = []
        for op in self.ops:  # forward, keeping what each backward formula reads
            if isinstance(op, _Dense):
                weight, bias = self._cast(op.linear.weight), self._cast(op.linear.bias)
                saved.append((h, weight))
                h = torch.mm(h, weight.t()) if bias is None else torch.addmm(bias, h, weight.t())
            elif isinstance(op, _Dropout):
                h, mask = aten.native_dropout(h, op.p, True)
                saved.append((mask,))
            else:
                z, h = h, op.forward(h)
                saved.append((z if op.needs_input else h, h))
        out = h.view(*lead, h.shape[-1])
        logits = out.float() if self.dtype is not None else out
        both = self.value_and_grad(logits, y) if self.value_and_grad is not None else None
        if both is not None:  # the loss's own tape-free gradient (plain cross-entropy): same kernels
            loss, grad = both
        else:
            with torch.enable_grad():  # the loss alone goes through autograd, on a leaf
                leaf = logits.detach().requires_grad_(True)
                loss = loss_fn(leaf, y)
                (grad,) = torch.autograd.grad(loss, leaf)
        grad = self._cast(grad.reshape(-1, grad.shape[-1]))
        for i in range(len(self.ops) - 1, -1, -1):  # self.ops[0] is a dense layer (dense_stack checks)
            op, keep = self.ops[i], saved[i]
            if isinstance(op, _Dense):
                inputs, weight = keep
                self._store(op.linear.weight.grad, grad.t(), inputs)
                if op.linear.bias is not None:
                    self._store(op.linear.bias.grad, grad)
                if i > 0:  # the input needs no gradient
                    grad = torch.mm(grad, weight)
            elif isinstance(op, _Dropout):
                grad = aten.native_dropout_backward(grad, keep[0], 1.0 / (1.0 - op.p) if op.p < 1 else 0.0)
            else:
                grad = op.backward(grad, *keep)
        return loss.detach(), out

    def _store(self, target: Tensor, a: Tensor, b: Tensor | None = None) -> None:
        """``target = a @ b`` (a weight gradient) or ``a.sum(0)`` (a bias gradient), in place."""
        if self.dtype is not None:  # a bf16 result cast into the fp32 buffer, as autocast's backward does
            target.copy_(torch.mm(a, b) if b is not None else a.sum(0))
        elif b is not None:  # straight into the buffer
            torch.mm(a, b, out=target)
        else:
            torch.sum(a, 0, out=target)
