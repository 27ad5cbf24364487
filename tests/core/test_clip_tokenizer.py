"""Tests for the numpy CLIP BPE tokenizer against the reference (open_clip) golden ids."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import regex

from core.tokenizers.clip_bpe import ClipBpeTokenizer, bundled_vocab_path
from tests.support.golden import golden_file

# From docs/mobileclip-spec.md §6: sha256 of the .gz that open_clip ships.
EXPECTED_VOCAB_SHA256 = "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"


@pytest.fixture(scope="module")
def tok() -> ClipBpeTokenizer:
    return ClipBpeTokenizer(bundled_vocab_path())


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads(golden_file("tokenizer-golden.json").read_text(encoding="utf-8"))


def test_vocab_file_sha256() -> None:
    digest = hashlib.sha256(bundled_vocab_path().read_bytes()).hexdigest()
    assert digest == EXPECTED_VOCAB_SHA256


def test_vocab_file_matches_golden_metadata(golden: dict) -> None:
    path = bundled_vocab_path()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == golden["vocab_file_sha256_gz"]
    raw = gzip.decompress(path.read_bytes())
    assert hashlib.sha256(raw).hexdigest() == golden["vocab_file_sha256_uncompressed"]


def test_special_ids_and_size(tok: ClipBpeTokenizer, golden: dict) -> None:
    assert tok.vocab_size == golden["vocab_size"]
    assert tok.sot_id == golden["sot_id"]
    assert tok.eot_id == golden["eot_id"]
    assert tok.context_length == golden["context_length"]
    # The pad id 0 is also a real token, the byte "!" inside a word; "!" as a whole word is the
    # first end-of-word symbol, 256.
    assert tok.decode([golden["pad_id"]]) == "!"
    assert tok.encode("!") == [256]


def test_golden_ids_clean_text_and_eot_index(tok: ClipBpeTokenizer, golden: dict) -> None:
    entries = golden["entries"]
    assert len(entries) == 33
    batch = tok([e["text"] for e in entries])
    for row, e in enumerate(entries):
        label = repr(e["text"][:40])
        assert tok.clean(e["text"]) == e["clean_text"], label
        assert batch["input_ids"][row].tolist() == e["ids"], label
        assert int(batch["eot_index"][row]) == e["eot_index_argmax"], label
        n_full = len(tok.encode(e["text"])) + 2
        assert n_full == e["num_tokens_before_truncation"], label
        assert (n_full > tok.context_length) == e["truncated"], label


def test_golden_single_calls_equal_batch_rows(tok: ClipBpeTokenizer, golden: dict) -> None:
    texts = [e["text"] for e in golden["entries"]]
    batch = tok(texts)["input_ids"]
    for row, text in enumerate(texts):
        np.testing.assert_array_equal(tok([text])["input_ids"][0], batch[row])


def _is_ordinary(clean: str) -> bool:
    """True when the regex pieces are exactly the space-separated words (so spacing survives a round trip)."""
    pieces = regex.findall(
        r"<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+",
        clean,
        flags=regex.IGNORECASE,
    )
    return pieces == (clean.split(" ") if clean else [])


def test_decode_round_trip_golden(tok: ClipBpeTokenizer, golden: dict) -> None:
    ordinary = [e for e in golden["entries"] if _is_ordinary(e["clean_text"])]
    # Plain words, CJK, Cyrillic, Arabic, accents, emoji, specials, empty string...
    assert len(ordinary) >= 15
    for e in ordinary:
        assert tok.decode(tok.encode(e["text"])) == e["clean_text"], repr(e["text"])


@pytest.mark.parametrize(
    "text",
    [
        "a photo of a golden retriever",
        "Sunset over the Mountains",
        "  children   playing\tin the snow ",
        "crème brûlée on a plate",
        "Москва зимой",
        "東京タワー",
    ],
)
def test_decode_round_trip_prompts(tok: ClipBpeTokenizer, text: str) -> None:
    assert tok.decode(tok.encode(text)) == tok.clean(text)


def test_decode_splits_punctuation_into_words(tok: ClipBpeTokenizer) -> None:
    # Pieces are separate words in BPE, so decoding puts a space between them.
    assert tok.decode(tok.encode("dog, cat")) == "dog , cat"
    assert tok.decode(tok.encode("2024")) == "2 0 2 4"


def test_decode_rejects_bad_ids(tok: ClipBpeTokenizer) -> None:
    with pytest.raises(ValueError):
        tok.decode([tok.vocab_size])
    with pytest.raises(ValueError):
        tok.decode([-1])


def test_batch_shape_and_dtype(tok: ClipBpeTokenizer) -> None:
    out = tok(["a dog", "a cat on a mat", ""])
    assert set(out) == {"input_ids", "eot_index"}
    assert out["input_ids"].shape == (3, 77)
    assert out["input_ids"].dtype == np.int64
    assert out["eot_index"].shape == (3,)
    assert out["eot_index"].dtype == np.int64
    ids = out["input_ids"]
    assert (ids[:, 0] == tok.sot_id).all()
    for row in range(3):
        k = int(out["eot_index"][row])
        assert ids[row, k] == tok.eot_id
        assert (ids[row, k + 1 :] == 0).all()
    assert out["eot_index"].tolist() == [3, 6, 1]

    empty = tok([])
    assert empty["input_ids"].shape == (0, 77)
    assert empty["eot_index"].shape == (0,)


def test_bare_string_is_batch_of_one(tok: ClipBpeTokenizer) -> None:
    np.testing.assert_array_equal(tok("a dog")["input_ids"], tok(["a dog"])["input_ids"])


def test_non_string_rejected(tok: ClipBpeTokenizer) -> None:
    with pytest.raises(TypeError):
        tok(["fine", 3])  # type: ignore[list-item]


def test_truncation_keeps_eot_last(tok: ClipBpeTokenizer) -> None:
    text = " ".join(f"word{i}" for i in range(60))  # every "wordN" is several tokens
    ids = tok.encode(text)
    assert len(ids) + 2 > 77
    out = tok([text])
    row = out["input_ids"][0]
    assert row.shape == (77,)
    assert row[-1] == tok.eot_id
    assert row[:-1].tolist() == [tok.sot_id, *ids[:75]]
    assert int(out["eot_index"][0]) == 76


def test_custom_context_length() -> None:
    small = ClipBpeTokenizer(bundled_vocab_path(), context_length=8)
    ids = small.encode("one two three four five six seven eight nine")
    out = small(["one two three four five six seven eight nine", "hi"])
    assert out["input_ids"].shape == (2, 8)
    assert out["input_ids"][0].tolist() == [small.sot_id, *ids[:6], small.eot_id]
    short = [small.sot_id, *small.encode("hi"), small.eot_id]
    assert out["input_ids"][1].tolist() == short + [0] * (8 - len(short))
    assert out["eot_index"].tolist() == [7, len(short) - 1]


def test_exactly_full_row_is_not_cut(tok: ClipBpeTokenizer) -> None:
    text = " ".join(["a"] * 75)  # 75 single-token words + SOT + EOT = 77
    row = tok([text])["input_ids"][0]
    assert row[1:76].tolist() == tok.encode("a") * 75
    assert row[-1] == tok.eot_id


def test_invalid_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        ClipBpeTokenizer(bundled_vocab_path(), context_length=1)
    with pytest.raises(FileNotFoundError):
        ClipBpeTokenizer(tmp_path / "missing.txt.gz")
    short = tmp_path / "short.txt"
    short.write_text("#version: 0.2\ni n\nt h\n", encoding="utf-8")
    with pytest.raises(ValueError):
        ClipBpeTokenizer(short)


def test_repeated_words_are_consistent(tok: ClipBpeTokenizer) -> None:
    # The per-word cache must not change results: same word in different contexts, same ids.
    first = tok.encode("beach")
    assert tok.encode("a beach at dawn")[1 : 1 + len(first)] == first
    assert tok.encode("beach beach") == first * 2
