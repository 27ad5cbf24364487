"""BERT WordPiece tokenizer, numpy and stdlib only.

Produces the same ids as Hugging Face ``tokenizers`` configured the way BERT-style ``tokenizer.json`` files
(all-MiniLM-L6-v2 among them) configure it: ``BertNormalizer`` (drop control characters, map whitespace to
spaces, pad CJK ideographs with spaces, and when ``lowercase`` strip accents and lowercase), then
``BertPreTokenizer`` (split on whitespace, isolate punctuation), then greedy longest-match-first WordPiece
with ``##`` continuations, then ``[CLS] ... [SEP]`` framing with truncation and padding to the longest row.

Literal special tokens in the raw text (``[CLS]``, ``[SEP]``, ``[PAD]``, ``[UNK]``, ``[MASK]``) map to their
ids, as both Hugging Face implementations do, because those tokens are registered as non-normalised added
tokens.

Known difference: character categories come from Python's ``unicodedata`` (Unicode 14 on Python 3.11), while
`tokenizers` uses older tables in which characters added later are unassigned. About 500 code points that
Unicode 9-14 added or re-filed as punctuation, non-spacing marks or format characters (historic and minority
scripts such as NKo, Adlam, Brahmi, and the newest brackets in U+2E43-U+2E5D) are therefore split or dropped
here but kept inside words there. Latin, Greek, Cyrillic, CJK, kana, Hangul, common Arabic and emoji agree.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

CLS_TOKEN = "[CLS]"
SEP_TOKEN = "[SEP]"
PAD_TOKEN = "[PAD]"
UNK_TOKEN = "[UNK]"
MASK_TOKEN = "[MASK]"
SPECIAL_TOKENS = (PAD_TOKEN, UNK_TOKEN, CLS_TOKEN, SEP_TOKEN, MASK_TOKEN)

CONTINUATION_PREFIX = "##"
# Longer words become a single [UNK] instead of being split (BERT's max_input_chars_per_word).
MAX_CHARS_PER_WORD = 100

# Bounded so a long-running app tokenising arbitrary user text does not grow without limit.
_WORD_CACHE_SIZE = 1 << 16

# CJK ideograph blocks as the `tokenizers` BertNormalizer lists them (note the gap 0x2B820-0x2B91F).
_CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B920, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)

# ASCII symbols BERT treats as punctuation although Unicode files some of them as S* (e.g. "$", "^", "`").
_ASCII_PUNCT = frozenset(chr(c) for c in (*range(33, 48), *range(58, 65), *range(91, 97), *range(123, 127)))


def _is_cjk(cp: int) -> bool:
    """True for code points in the CJK ideograph blocks that BERT splits into single-character words."""
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


def _is_punctuation(ch: str) -> bool:
    """True for ASCII symbols 33-47, 58-64, 91-96, 123-126 and every Unicode P* character."""
    return ch in _ASCII_PUNCT or unicodedata.category(ch).startswith("P")


def normalize_text(text: str, lowercase: bool = True) -> str:
    """Apply BERT's text normalisation and return the normalised string.

    Control, format, private-use and surrogate characters (Unicode Cc/Cf/Co/Cs), NUL and U+FFFD are dropped,
    while unassigned code points (Cn) are kept, as `tokenizers` does. Tab, newline, CR and Unicode Zs/Zl/Zp
    become a plain space and CJK ideographs are surrounded by spaces. With
    ``lowercase`` the text is also NFD-decomposed, stripped of non-spacing marks (accents) and lowercased
    character by character (so Greek capital sigma always becomes the medial form, as in `tokenizers`).
    """
    out: list[str] = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD:
            continue
        if ch in "\t\n\r":
            out.append(" ")
            continue
        cat = unicodedata.category(ch)
        if cat[0] == "C" and cat != "Cn":
            continue
        if cat in ("Zs", "Zl", "Zp"):
            out.append(" ")
        elif _is_cjk(cp):
            out.append(f" {ch} ")
        else:
            out.append(ch)
    cleaned = "".join(out)
    if not lowercase:
        return cleaned
    decomposed = unicodedata.normalize("NFD", cleaned)
    return "".join(ch.lower() for ch in decomposed if unicodedata.category(ch) != "Mn")


def pre_tokenize(normalized: str) -> list[str]:
    """Split normalised text on whitespace, then cut each piece so every punctuation character is its own word."""
    words: list[str] = []
    for chunk in normalized.split():
        start = 0
        for i, ch in enumerate(chunk):
            if _is_punctuation(ch):
                if i > start:
                    words.append(chunk[start:i])
                words.append(ch)
                start = i + 1
        if start < len(chunk):
            words.append(chunk[start:])
    return words


def read_vocab(vocab_path: Path) -> list[str]:
    """Read a BERT ``vocab.txt`` (one token per line, id = line number).

    Raises FileNotFoundError if the file is missing and ValueError if it is empty, has duplicate tokens or
    lacks one of the special tokens ``[PAD] [UNK] [CLS] [SEP] [MASK]``.
    """
    with open(vocab_path, encoding="utf-8") as f:
        tokens = [line.rstrip("\r\n") for line in f]
    # Blank lines at the very end carry no ids; blank lines elsewhere would be caught as duplicates.
    while tokens and tokens[-1] == "":
        tokens.pop()
    if not tokens:
        raise ValueError(f"{vocab_path}: vocabulary is empty")
    if len(set(tokens)) != len(tokens):
        raise ValueError(f"{vocab_path}: vocabulary has duplicate tokens")
    missing = [t for t in SPECIAL_TOKENS if t not in set(tokens)]
    if missing:
        raise ValueError(f"{vocab_path}: vocabulary lacks special tokens {missing}")
    return tokens


class WordPieceTokenizer:
    """BERT WordPiece tokenizer giving ``input_ids``/``attention_mask``/``token_type_ids`` batches."""

    def __init__(self, vocab_path: Path, lowercase: bool = True, max_length: int = 256) -> None:
        """Load ``vocab.txt``; ``lowercase`` selects the uncased pipeline (accent stripping + lowercasing).

        ``max_length`` counts ``[CLS]`` and ``[SEP]``, so a row holds at most ``max_length - 2`` word pieces.
        Raises FileNotFoundError for a missing vocabulary, ValueError for a malformed one or for
        ``max_length`` below 2.
        """
        if max_length < 2:
            raise ValueError(f"max_length must be at least 2 (room for [CLS] and [SEP]), got {max_length}")
        self.lowercase = lowercase
        self.max_length = max_length
        self._vocab = read_vocab(Path(vocab_path))
        self._ids = {tok: i for i, tok in enumerate(self._vocab)}
        self.cls_id = self._ids[CLS_TOKEN]
        self.sep_id = self._ids[SEP_TOKEN]
        self.pad_id = self._ids[PAD_TOKEN]
        self.unk_id = self._ids[UNK_TOKEN]
        # Longest first so that no special token is matched as the prefix of a longer one.
        alternation = "|".join(re.escape(t) for t in sorted(SPECIAL_TOKENS, key=len, reverse=True))
        self._special_re = re.compile(f"({alternation})")
        # Per-instance cache: pre-tokenised word -> its word pieces.
        self._word_pieces = lru_cache(maxsize=_WORD_CACHE_SIZE)(self._word_pieces_uncached)

    @property
    def vocab_size(self) -> int:
        """Number of token ids (30522 for the BERT uncased vocabulary)."""
        return len(self._vocab)

    def _word_pieces_uncached(self, word: str) -> tuple[str, ...]:
        """Greedy longest-match-first split of one word; the whole word becomes [UNK] if any part has no match."""
        if len(word) > MAX_CHARS_PER_WORD:
            return (UNK_TOKEN,)
        pieces: list[str] = []
        start = 0
        n = len(word)
        while start < n:
            end = n
            piece = None
            while end > start:
                candidate = word[start:end] if start == 0 else CONTINUATION_PREFIX + word[start:end]
                if candidate in self._ids:
                    piece = candidate
                    break
                end -= 1
            if piece is None:
                return (UNK_TOKEN,)
            pieces.append(piece)
            start = end
        return tuple(pieces)

    def tokenize(self, text: str) -> list[str]:
        """Return the word pieces of ``text`` (no ``[CLS]``/``[SEP]``, no truncation)."""
        tokens: list[str] = []
        # The capturing split alternates plain text (even indices) and literal special tokens (odd).
        for i, part in enumerate(self._special_re.split(text)):
            if i % 2:
                tokens.append(part)
                continue
            for word in pre_tokenize(normalize_text(part, self.lowercase)):
                tokens.extend(self._word_pieces(word))
        return tokens

    def encode(self, text: str) -> list[int]:
        """Return ``[CLS] + ids + [SEP]`` for ``text``, word pieces cut so the row fits ``max_length``."""
        ids = [self._ids[t] for t in self.tokenize(text)[: self.max_length - 2]]
        return [self.cls_id, *ids, self.sep_id]

    def convert_ids_to_tokens(self, ids: Sequence[int]) -> list[str]:
        """Map ids back to their vocabulary strings. Raises ValueError for ids outside the vocabulary."""
        out: list[str] = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self._vocab):
                raise ValueError(f"token id {i} is outside the vocabulary (size {len(self._vocab)})")
            out.append(self._vocab[i])
        return out

    def __call__(self, texts: Sequence[str] | str) -> dict[str, np.ndarray]:
        """Tokenise a batch, padding every row with ``[PAD]`` to the longest row.

        Returns int64 arrays of shape ``[N, L]``: ``input_ids``, ``attention_mask`` (1 on real tokens, 0 on
        padding) and ``token_type_ids`` (all zeros, single-segment input). ``L`` is the longest row, at most
        ``max_length``; an empty batch gives shape ``[0, 0]``. A bare string is treated as a batch of one.
        Raises TypeError if an element is not a string.
        """
        if isinstance(texts, str):
            texts = [texts]
        rows: list[list[int]] = []
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{index}] is {type(text).__name__}, expected str")
            rows.append(self.encode(text))
        width = max((len(r) for r in rows), default=0)
        input_ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        attention_mask = np.zeros((len(rows), width), dtype=np.int64)
        for index, row in enumerate(rows):
            input_ids[index, : len(row)] = row
            attention_mask[index, : len(row)] = 1
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_type_ids": np.zeros_like(input_ids),
        }
