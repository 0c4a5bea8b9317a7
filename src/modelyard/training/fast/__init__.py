"""Training fast paths, each behind ``modelyard.fast_paths`` (one switch, a torch version gate each).

- ``dense_step``: a dense stack's forward and backward without the autograd tape;
- ``cross_entropy``: plain cross-entropy's value and gradient without the tape (used by ``dense_step``);
- ``fused_forward``: a conv net's training forward with exact rewrites;
- ``fused_adam``: the fused Adam/AdamW kernel called directly;
- ``frozen_features``: a frozen encoder's pooled vectors computed once per split, only the head trained;
- ``allocator``: glibc's keep-freed-memory setting, chosen by the entry points, not by ``fit``.

With ``MODELYARD_FAST_PATHS=0`` (or ``fast_paths.set_enabled(False)``) a fit trains through the
network's own forward, autograd and ``optimizer.step()``; ``FitResult.runtime["fast_paths"]``
says which were on and why the others were off.
"""

from __future__ import annotations

__all__ = ["TRAINING"]

#: The names of the training fast paths' gates (``modelyard.fast_paths.report``).
TRAINING = ("dense_step", "cross_entropy_grad", "fused_forward", "fused_adam_kernel", "frozen_features")
