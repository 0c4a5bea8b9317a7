"""Pretrained encoders in the Hugging Face layout (config.json, tokenizer.json, model.safetensors).

``folder``: where a base lives (a folder or an installed package), its architecture and its
identity (name, sha256 of the weights, config); ``weights``: its safetensors tensors mapped one
to one onto a ``pretrained`` layer (``modelyard.nn.layers.pretrained``); ``pinning``: the base's
identity written into a spec before training, so the registered version rebuilds offline.
"""

from __future__ import annotations

__all__: list[str] = []
