"""OpenAI CLIP byte-level BPE tokenizer, numpy only.

Produces the same ids as open_clip's ``SimpleTokenizer`` (which MobileCLIP and MobileCLIP2 use) for the
vocabulary file ``bpe_simple_vocab_16e6.txt.gz``: text is cleaned (ftfy, double HTML unescape, whitespace
collapse, lowercase), split by a Unicode-aware regex, each piece is mapped byte-by-byte onto printable
symbols and merged by rank, and rows are framed as ``[SOT] + ids + [EOT]`` and zero-padded.
"""

from __future__ import annotations

import gzip
import html
import re
from collections.abc import Sequence
from functools import lru_cache
from itertools import pairwise
from pathlib import Path

import ftfy
import numpy as np
import regex

VOCAB_FILENAME = "bpe_simple_vocab_16e6.txt.gz"
VOCAB_SHA256_GZ = "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"

SOT_TOKEN = "<start_of_text>"
EOT_TOKEN = "<end_of_text>"
END_OF_WORD = "</w>"

# 49408 tokens = 256 byte symbols + 256 end-of-word byte symbols + merges + 2 specials.
_NUM_MERGES = 49408 - 256 - 256 - 2

# Special tokens first so they win over the punctuation branch; one digit per token.
_PRETOKENIZE = regex.compile(
    r"<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+",
    regex.IGNORECASE,
)
_WHITESPACE = re.compile(r"\s+")

# Bounded so a long-running app tokenising arbitrary user text does not grow without limit.
_WORD_CACHE_SIZE = 1 << 16


def bundled_vocab_path() -> Path:
    """Return the path of the vocabulary file shipped in this repository's ``assets/`` folder."""
    return Path(__file__).resolve().parents[2] / "assets" / "tokenizers" / "clip" / VOCAB_FILENAME


def byte_symbol_table() -> list[tuple[int, str]]:
    """Return ``(byte, symbol)`` pairs in CLIP vocabulary order.

    Printable Latin-1 bytes stand for themselves; the remaining 68 bytes (controls, space, NBSP, soft
    hyphen) are given the code points 256, 257, ... so every symbol is visible and none is whitespace.
    The list order (printable bytes first, then the remapped ones) is the order of the first 256 ids.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    printable_set = set(printable)
    table = [(b, chr(b)) for b in printable]
    extra = 0
    for b in range(256):
        if b not in printable_set:
            table.append((b, chr(256 + extra)))
            extra += 1
    return table


def clean_text(text: str) -> str:
    """Normalise text the way the reference tokenizer does before splitting it.

    ftfy repairs mojibake and compatibility characters, HTML entities are unescaped twice (captions are
    often double escaped), runs of whitespace collapse to one space, and the result is lowercased.
    """
    text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text)).strip()
    return _WHITESPACE.sub(" ", text).strip().lower()


def _read_merges(vocab_path: Path) -> list[tuple[str, str]]:
    """Read the ranked merge pairs, skipping the version header line."""
    opener = gzip.open if vocab_path.suffix == ".gz" else open
    with opener(vocab_path, "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    body = lines[1 : 1 + _NUM_MERGES]
    merges: list[tuple[str, str]] = []
    for line_no, line in enumerate(body, start=2):
        parts = line.split()
        if len(parts) != 2:
            raise ValueError(f"{vocab_path}: line {line_no} is not a merge pair: {line!r}")
        merges.append((parts[0], parts[1]))
    if len(merges) != _NUM_MERGES:
        raise ValueError(f"{vocab_path}: expected {_NUM_MERGES} merges, found {len(merges)}")
    return merges


class ClipBpeTokenizer:
    """CLIP byte-level BPE tokenizer giving fixed-length id rows for the MobileCLIP text encoders."""

    def __init__(self, vocab_path: Path, context_length: int = 77) -> None:
        """Load the merges from ``vocab_path`` (gzip or plain text) and build the vocabulary.

        Raises FileNotFoundError if the file is missing and ValueError if it is malformed or
        ``context_length`` is below 2 (a row must hold at least SOT and EOT).
        """
        if context_length < 2:
            raise ValueError(f"context_length must be at least 2, got {context_length}")
        self.context_length = context_length
        merges = _read_merges(Path(vocab_path))

        table = byte_symbol_table()
        self._byte_to_symbol = [""] * 256
        for b, sym in table:
            self._byte_to_symbol[b] = sym
        self._symbol_to_byte = {sym: b for b, sym in table}

        symbols = [sym for _, sym in table]
        vocab = symbols + [s + END_OF_WORD for s in symbols] + [a + b for a, b in merges] + [SOT_TOKEN, EOT_TOKEN]
        self._encoder = {tok: i for i, tok in enumerate(vocab)}
        if len(self._encoder) != len(vocab):
            raise ValueError(f"{vocab_path}: merges produce duplicate vocabulary entries")
        self._decoder = vocab
        self._ranks = {pair: rank for rank, pair in enumerate(merges)}
        self._special = {SOT_TOKEN: self._encoder[SOT_TOKEN], EOT_TOKEN: self._encoder[EOT_TOKEN]}
        # Per-instance cache: word (a regex piece of cleaned text) -> its ids.
        self._word_ids = lru_cache(maxsize=_WORD_CACHE_SIZE)(self._word_ids_uncached)

    @property
    def sot_id(self) -> int:
        """Id of ``<start_of_text>`` (49406 for the standard vocabulary)."""
        return self._special[SOT_TOKEN]

    @property
    def eot_id(self) -> int:
        """Id of ``<end_of_text>`` (49407); the text encoders pool at its first occurrence."""
        return self._special[EOT_TOKEN]

    @property
    def vocab_size(self) -> int:
        """Number of token ids (49408 for the standard vocabulary)."""
        return len(self._decoder)

    def _merge(self, symbols: list[str]) -> list[str]:
        """Repeatedly merge the lowest-ranked adjacent pair until no listed pair remains."""
        ranks = self._ranks
        while len(symbols) > 1:
            best_rank = None
            best_pair = None
            for pair in pairwise(symbols):
                rank = ranks.get(pair)
                if rank is not None and (best_rank is None or rank < best_rank):
                    best_rank, best_pair = rank, pair
            if best_pair is None:
                break
            first, second = best_pair
            merged: list[str] = []
            i = 0
            n = len(symbols)
            # Left to right, non-overlapping: "a a a" with pair (a, a) gives "aa a".
            while i < n:
                if i + 1 < n and symbols[i] == first and symbols[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        return symbols

    def _word_ids_uncached(self, word: str) -> tuple[int, ...]:
        """Ids of one pre-tokenised piece: byte symbols, end-of-word marker on the last, then merges."""
        special = self._special.get(word)
        if special is not None:
            return (special,)
        symbols = [self._byte_to_symbol[b] for b in word.encode("utf-8")]
        symbols[-1] += END_OF_WORD
        return tuple(self._encoder[s] for s in self._merge(symbols))

    def clean(self, text: str) -> str:
        """Return the cleaned text that ``encode`` tokenises (see ``clean_text``)."""
        return clean_text(text)

    def encode(self, text: str) -> list[int]:
        """Return the BPE ids of the cleaned ``text``, without SOT/EOT and without truncation."""
        ids: list[int] = []
        for word in _PRETOKENIZE.findall(clean_text(text)):
            ids.extend(self._word_ids(word))
        return ids

    def __call__(self, texts: Sequence[str] | str) -> dict[str, np.ndarray]:
        """Tokenise a batch into fixed-length rows.

        Returns ``input_ids`` int64 ``[N, context_length]`` (SOT + ids + EOT, zero padded; longer rows
        are cut to ``context_length`` and their last id set to EOT) and ``eot_index`` int64 ``[N]``, the
        first position of each row's maximum id, which is where the text encoders pool. A bare string
        is treated as a batch of one.
        """
        if isinstance(texts, str):
            texts = [texts]
        n = len(texts)
        out = np.zeros((n, self.context_length), dtype=np.int64)
        for row, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{row}] is {type(text).__name__}, expected str")
            tokens = [self.sot_id, *self.encode(text), self.eot_id]
            if len(tokens) > self.context_length:
                tokens = tokens[: self.context_length]
                tokens[-1] = self.eot_id
            out[row, : len(tokens)] = tokens
        eot_index = out.argmax(axis=1).astype(np.int64) if n else np.zeros((0,), dtype=np.int64)
        return {"input_ids": out, "eot_index": eot_index}

    def decode(self, ids: Sequence[int]) -> str:
        """Turn ids back into text; word boundaries become single spaces and the trailing one is dropped.

        Special ids decode to their literal strings. Invalid UTF-8 (e.g. a cut multi-byte character)
        becomes U+FFFD. Raises ValueError for ids outside the vocabulary.
        """
        pieces: list[bytes] = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self._decoder):
                raise ValueError(f"token id {i} is outside the vocabulary (size {len(self._decoder)})")
            token = self._decoder[i]
            if i in (self.sot_id, self.eot_id):
                pieces.append(token.encode("utf-8") + b" ")
                continue
            word_end = token.endswith(END_OF_WORD)
            if word_end:
                token = token[: -len(END_OF_WORD)]
            pieces.append(bytes(self._symbol_to_byte[c] for c in token) + (b" " if word_end else b""))
        text = b"".join(pieces).decode("utf-8", errors="replace")
        return text.removesuffix(" ")
