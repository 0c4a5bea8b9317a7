"""``tokenize``: text → int64 token ids, through Hugging Face's ``tokenizers``.

The step either loads a pretrained tokenizer (``tokenizer: path/to/tokenizer.json``, or a
folder in the Hugging Face layout holding one) or trains a WordPiece tokenizer on the
training split only (``vocab_size``, ``lowercase``), as BERT's is built. Sequences are
truncated to ``max_length`` tokens and padded with the tokenizer's pad id up to it; the
network finds the padding by that id (``model.pad_id``). The fitted tokenizer is kept as its
own JSON (``Tokenizer.to_str``) in the model's preprocess.json, so a registered version
tokenizes offline exactly as it did in training.

Training a WordPiece tokenizer is not deterministic (the same texts can give another vocabulary
order, huggingface/tokenizers#1794, and the trainer takes no seed), so a trained step also keeps
``training_sha256``, a digest of its training settings and texts, as its fingerprint: a re-fit on
the same data (``modelyard eval``, compress, explain) is recognised and the stored tokenizer is
used in its place (``prepare(stored=...)``), so the model is measured on its own token ids.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from modelyard._validation import StrictModel
from modelyard.data.raw import resolve_path
from modelyard.data.step import PREPROCESSORS, FitContext, Step
from modelyard.errors import DataError, SpecError, optional_dependency

__all__ = ["Tokenize", "TokenizeOptions", "SPECIAL_TOKENS"]

#: The special tokens of a trained tokenizer; [PAD] is id 0.
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")
_PAD_NAMES = ("[PAD]", "<pad>", "<PAD>")


class TokenizeOptions(StrictModel):
    path_fields: ClassVar[dict[str, bool]] = {"tokenizer": False}

    tokenizer: str | None = Field(
        None, min_length=1, description="tokenizer.json, a folder holding one, or an installed package that ships one"
    )
    max_length: int = Field(64, ge=2, le=8192)
    vocab_size: int = Field(8000, ge=len(SPECIAL_TOKENS) + 1, le=1_000_000)
    lowercase: bool = True
    min_frequency: int = Field(2, ge=1)


def _tokenizers() -> Any:
    with optional_dependency("text", "Tokenizing text"):
        import tokenizers
    return tokenizers


@PREPROCESSORS.component("tokenize", "tokenizer", options=TokenizeOptions, primary="tokenizer")
class Tokenize(Step):
    """Strings → ``[max_length]`` int64 token ids, padded with ``pad_id``."""

    makes_ids = True

    def __init__(self, opts: TokenizeOptions) -> None:
        super().__init__(opts)
        self.tokenizer: Any = None
        self.pad_id = 0
        #: sha256 of the training settings and texts; None for a loaded tokenizer (or an old state).
        self.training_sha256: str | None = None

    # -- fitting -----------------------------------------------------------------------------
    def fit(self, x: np.ndarray, y: np.ndarray | None, ctx: FitContext) -> None:
        if ctx.kind != "text":
            raise SpecError(
                f"Invalid step `{ctx.field}`: tokenize takes text, received {ctx.kind} data "
                "(a text source: a `text` column of csv/jsonl/parquet, or clinc150)",
                field=ctx.field,
            )
        texts = _texts(x, "the training data")
        if self.opts.tokenizer is not None:
            tok = self._load(ctx.field)
        else:
            tok = self._train(texts)
            self.training_sha256 = self._training_digest(texts)
        self._configure(tok, ctx.field)

    def _training_digest(self, texts: list[str]) -> str:
        """sha256 of everything ``_train`` reads: its settings, then each text (length-prefixed)."""
        digest = hashlib.sha256()
        settings = {
            "model": "wordpiece",
            "vocab_size": self.opts.vocab_size,
            "min_frequency": self.opts.min_frequency,
            "lowercase": self.opts.lowercase,
            "special_tokens": list(SPECIAL_TOKENS),
        }
        digest.update(json.dumps(settings, sort_keys=True).encode())
        for text in texts:
            data = text.encode("utf-8", "surrogatepass")
            digest.update(len(data).to_bytes(8, "little"))
            digest.update(data)
        return digest.hexdigest()

    def _load(self, field: str) -> Any:
        path = _tokenizer_file(self.opts.tokenizer, f"{field}.tokenizer")  # type: ignore[arg-type]
        if not path.is_file():
            raise DataError(
                f"Invalid value for `{field}.tokenizer`: expected a tokenizer.json file or a folder holding one, "
                f"received {path.parent}",
                field=f"{field}.tokenizer",
            )
        try:
            return _tokenizers().Tokenizer.from_file(str(path))
        except Exception as exc:  # the Rust side raises plain Exceptions with its own text
            raise DataError(
                f"Invalid value for `{field}.tokenizer`: {path} is not a Hugging Face tokenizer.json "
                f"({type(exc).__name__})",
                field=f"{field}.tokenizer",
            ) from None

    def _train(self, texts: list[str]) -> Any:
        tk = _tokenizers()
        tok = tk.Tokenizer(tk.models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = tk.normalizers.BertNormalizer(lowercase=self.opts.lowercase)
        tok.pre_tokenizer = tk.pre_tokenizers.BertPreTokenizer()
        tok.decoder = tk.decoders.WordPiece()
        trainer = tk.trainers.WordPieceTrainer(
            vocab_size=self.opts.vocab_size,
            min_frequency=self.opts.min_frequency,
            special_tokens=list(SPECIAL_TOKENS),
            show_progress=False,
        )
        tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
        cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
        tok.post_processor = tk.processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
        )
        return tok

    def _configure(self, tok: Any, field: str) -> None:
        pad = next((name for name in _PAD_NAMES if tok.token_to_id(name) is not None), None)
        if pad is None:
            raise DataError(
                f"Invalid value for `{field}.tokenizer`: expected a tokenizer with a padding token "
                f"(one of {', '.join(_PAD_NAMES)}), received one without",
                field=f"{field}.tokenizer",
            )
        self.pad_id = int(tok.token_to_id(pad))
        tok.enable_truncation(max_length=self.opts.max_length)
        tok.enable_padding(pad_id=self.pad_id, pad_token=pad, length=self.opts.max_length)
        self.tokenizer = tok

    # -- transforms --------------------------------------------------------------------------
    def out_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (self.opts.max_length,)

    def transform_x(self, x: np.ndarray) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(_texts(x, "the input"))
        return np.asarray([e.ids for e in encodings], dtype=np.int64).reshape(len(encodings), self.opts.max_length)

    @property
    def vocab_size(self) -> int:
        return int(self.tokenizer.get_vocab_size())

    # -- saving ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = {"tokenizer": self.tokenizer.to_str(), "pad_id": self.pad_id, "vocab_size": self.vocab_size}
        if self.training_sha256 is not None:
            state["training_sha256"] = self.training_sha256
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        tok = _tokenizers().Tokenizer.from_str(state["tokenizer"])
        self._configure(tok, "data.preprocess")
        if self.pad_id != int(state["pad_id"]):
            raise DataError(f"Invalid preprocessing state: pad id {self.pad_id}, expected {state['pad_id']}")
        self.training_sha256 = state.get("training_sha256")  # absent from states saved before it existed

    def fingerprint(self) -> Any:
        """The training digest of a trained tokenizer (its vocabulary is not reproducible);
        the whole state of a loaded one (loading is)."""
        if self.training_sha256 is not None:
            return {"training_sha256": self.training_sha256}
        return self.state_dict()

    def same_fit(self, stored: Step) -> bool:
        if isinstance(stored, Tokenize) and stored.training_sha256 is None:
            # A state saved before the digest existed: only an identical tokenizer counts as the same fit.
            mine = {k: v for k, v in self.state_dict().items() if k != "training_sha256"}
            return mine == stored.state_dict()
        return super().same_fit(stored)


def _tokenizer_file(source: str, where: str) -> Path:
    """A Hugging Face model folder's tokenizer.json, the file itself, or an installed package's
    (the same bases a ``pretrained`` layer reads, ``modelyard.nn.pretrained.folder``)."""
    try:
        return resolve_path(source, where, folder=True) / "tokenizer.json"
    except DataError:
        pass
    try:
        return resolve_path(source, where)
    except DataError:
        from modelyard.nn.pretrained.folder import package_folder

        package = package_folder(source)
        if package is None:
            raise
        return package / "tokenizer.json"


def _texts(x: np.ndarray, where: str) -> list[str]:
    """The samples as a list of str (one dimension of strings), or a one-line error."""
    arr = np.asarray(x, dtype=object)
    if arr.ndim != 1:
        raise DataError(f"Invalid text in {where}: expected one string per sample, received shape {list(arr.shape)}")
    for i, value in enumerate(arr):
        if not isinstance(value, str):
            raise DataError(f"Invalid text in {where}: expected strings, received {type(value).__name__} in sample {i}")
    return [str(v) for v in arr]
