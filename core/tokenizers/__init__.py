"""Tokenizers that turn text into a text encoder's inputs, chosen by the model card."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from core.errors import ModelPackageError
from core.model_card import TokenizerSpec


class Tokenizer(Protocol):
    """Callable that maps a batch of strings to named int64 arrays (e.g. input_ids, attention_mask)."""

    def __call__(self, texts: Sequence[str]) -> dict[str, np.ndarray]: ...


def load_tokenizer(spec: TokenizerSpec, package_dir: Path) -> Tokenizer:
    """Build the tokenizer a model card names, reading its files from the package folder."""
    if spec.kind == "clip-bpe":
        from core.tokenizers.clip_bpe import ClipBpeTokenizer

        return ClipBpeTokenizer(package_dir / spec.files["vocab"], context_length=spec.context_length)
    if spec.kind == "wordpiece":
        from core.tokenizers.wordpiece import WordPieceTokenizer

        return WordPieceTokenizer(
            package_dir / spec.files["vocab"], lowercase=spec.lowercase, max_length=spec.context_length
        )
    raise ModelPackageError(f"unknown tokenizer kind '{spec.kind}'")
