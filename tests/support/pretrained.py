"""A tiny random BERT saved in the Hugging Face layout (config.json, model.safetensors,
tokenizer.json), for the pretrained-encoder tests; needs transformers and tokenizers.

Holds no tests itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

WORDS = ("the cat dog sat ran on a mat log big small red blue what is my how do i reset pin card bank "
         "weather today in paris hello hi").split()  # fmt: skip
SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
VOCAB = len(SPECIALS) + len(WORDS)


def tiny_bert(folder: Path, *, seed: int = 0, blocks: int = 2, dim: int = 16, max_positions: int = 24) -> Any:
    """Save a random ``BertModel`` (with its pooler) and a WordPiece tokenizer of ``WORDS`` into ``folder``."""
    import tokenizers as tk
    import transformers

    config = transformers.BertConfig(
        vocab_size=VOCAB,
        hidden_size=dim,
        num_hidden_layers=blocks,
        num_attention_heads=2,
        intermediate_size=2 * dim,
        max_position_embeddings=max_positions,
        layer_norm_eps=1e-12,
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
    )
    torch.manual_seed(seed)
    model = transformers.BertModel(config).eval()
    with torch.no_grad():  # words far apart (BERT's init, std 0.02, leaves a random model's tokens alike)
        model.embeddings.word_embeddings.weight.normal_()
    model.save_pretrained(folder, safe_serialization=True)
    vocab = {token: i for i, token in enumerate((*SPECIALS, *WORDS))}
    tok = tk.Tokenizer(tk.models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = tk.normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = tk.pre_tokenizers.BertPreTokenizer()
    tok.post_processor = tk.processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
    )
    tok.save(str(folder / "tokenizer.json"))
    return model


def encode(folder: Path, texts: list[str], length: int) -> torch.Tensor:
    """``[len(texts), length]`` ids from the folder's tokenizer, right-padded with 0 ([PAD])."""
    import tokenizers as tk

    tok = tk.Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.enable_truncation(max_length=length)
    tok.enable_padding(pad_id=0, pad_token="[PAD]", length=length)
    return torch.tensor([e.ids for e in tok.encode_batch(texts)], dtype=torch.int64)
