"""Train-time augmentation of image batches: random flips, translations and gaussian noise.

The ``augment`` step does nothing to stored data: the training loop asks the pipeline
for ``augmenter()`` and calls it on each training batch (torch ``[N, C, H, W]`` on the
training device) with its own ``torch.Generator``, so runs are reproducible. Evaluation
and prediction never augment. It acts on the fully preprocessed batch wherever it is
listed, so ``noise`` is in preprocessed units (after ``scale``, a fraction of 255).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator

from modelyard._validation import StrictModel
from modelyard.data.step import PREPROCESSORS, Augment, FitContext, Step
from modelyard.errors import DataError

__all__ = ["AugmentOptions", "AugmentStep", "augment_batch"]


class AugmentOptions(StrictModel):
    flip: Literal["none", "horizontal", "vertical", "both"] = "none"
    shift: int = Field(0, ge=0, le=64)
    noise: float = Field(0.0, ge=0.0)

    @model_validator(mode="after")
    def _something(self) -> AugmentOptions:
        if self.flip == "none" and self.shift == 0 and self.noise == 0.0:
            raise ValueError("expected at least one of `flip`, `shift` or `noise`; this augment step would do nothing")
        return self


def _uniform(n: int, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    # Draw on the generator's device (a CPU generator cannot fill a CUDA tensor), then move.
    return torch.rand(n, generator=gen, device=gen.device).to(device)


def _flip(x: torch.Tensor, dim: int, gen: torch.Generator) -> torch.Tensor:
    """Flip each sample along ``dim`` with probability 1/2."""
    mask = (_uniform(len(x), gen, x.device) < 0.5).view(-1, *([1] * (x.dim() - 1)))
    return torch.where(mask, x.flip(dim), x)


def _shift(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Translate each sample by (dy, dx) drawn uniformly from [-max_shift, max_shift], zero-filled."""
    n, _, h, w = x.shape
    s = max_shift
    dy = torch.randint(-s, s + 1, (n,), generator=gen, device=gen.device).to(x.device)
    dx = torch.randint(-s, s + 1, (n,), generator=gen, device=gen.device).to(x.device)
    padded = F.pad(x, (s, s, s, s)).permute(0, 2, 3, 1)  # [N, H+2s, W+2s, C]
    # Output pixel (i, j) reads input pixel (i - dy, j - dx), i.e. padded (i + s - dy, j + s - dx).
    rows = torch.arange(h, device=x.device)[None, :] + s - dy[:, None]  # [N, H]
    cols = torch.arange(w, device=x.device)[None, :] + s - dx[:, None]  # [N, W]
    batch = torch.arange(n, device=x.device)[:, None, None]
    out = padded[batch, rows[:, :, None], cols[:, None, :]]  # [N, H, W, C]
    return out.permute(0, 3, 1, 2).contiguous()


def augment_batch(
    x: torch.Tensor, gen: torch.Generator, *, flip: str = "none", shift: int = 0, noise: float = 0.0
) -> torch.Tensor:
    """One augmented copy of the batch ``x`` [N, C, H, W] (the input is not modified)."""
    if flip in ("horizontal", "both"):
        x = _flip(x, 3, gen)
    if flip in ("vertical", "both"):
        x = _flip(x, 2, gen)
    if shift:
        x = _shift(x, shift, gen)
    if noise:
        dtype = x.dtype if x.is_floating_point() else torch.float32
        x = x + noise * torch.randn(x.shape, generator=gen, device=gen.device, dtype=dtype).to(x.device)
    return x


@PREPROCESSORS.component("augment", "augmentation", options=AugmentOptions)
class AugmentStep(Step):
    """Random flips, shifts and noise on training batches only (never at evaluation or prediction)."""

    keeps_ids = True

    def check_input_shape(self, shape: tuple[int, ...], ctx: FitContext) -> None:
        if (self.opts.flip != "none" or self.opts.shift) and len(shape) != 3:
            raise DataError(
                f"Invalid step `{ctx.field}`: flip and shift need image samples shaped [C, H, W], but the "
                f"preprocessed samples have shape {list(shape)}; add a reshape step such as {{reshape: [1, 28, 28]}}",
                field=ctx.field,
            )

    def augmenter(self) -> Augment:
        opts = self.opts

        def augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
            return augment_batch(batch, generator, flip=opts.flip, shift=opts.shift, noise=opts.noise)

        return augment
