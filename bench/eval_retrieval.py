"""Text -> image retrieval, tagging and embedding cost on the real-photo corpus, for one or more model packages.

    python bench/eval_retrieval.py [--model starter] [--library DIR] [--package DIR ...] [--template "{}"]
                                   [--tag-errors]

Each photo's caption is a query whose correct answer is its own photo: R@1, R@5 and R@10 overall and per query
group (people, night / dusk, black and white, indoor, animals, other; tests/photo_corpus_tags.py), with a random
ranking for comparison. Tags: the library's own tagger (core/tagging.py, default vocabulary, no user offsets) tags
every photo; precision and recall against the person-given tags, counted over the vocabulary, and the share of
photos left with no tag. Generic words ("a photo of an animal"): mean average precision, photos carrying the tag
being right. Search cutoff (core/cutoff.py, the card's calibration): how often a caption's photo is among the default
results, and how many results 20 queries for absent things get. Cost: milliseconds per photo to preprocess and
embed, every package timed in the same run (alternating rounds), and its ratio to the first package. `--tag-errors`
prints the tags most often given wrongly and most often missed, with their counts, and what any of the tagger's
settings (min_z, max_tags) could reach on this model's embeddings against the auto-tag goal (precision >= 0.7 with
recall >= 0.5).

Photos added after the starter's settings were chosen (tests/photo_corpus_tags.HELD_OUT) are also reported apart
("tuned on" / "held out" rows, tags and cutoff): they show whether the tuned figures hold on new photos.

Several `--package` folders compare models in one run (e.g. today's starter against a new build). Set
PHOTOSEEK_CORPUS_ROOTS to folders where the corpus's Debian packages (and unpacked wheels) lie to evaluate on more
than the installed PyPI photos (see tests/photo_corpus.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.cutoff import bank_stats, matches  # noqa: E402
from core.encoders import ModelPackage  # noqa: E402
from core.index_db import PhotoIndex  # noqa: E402
from core.model_card import TaggingSpec  # noqa: E402
from core.model_store import ModelStore  # noqa: E402
from core.paths import library_dir  # noqa: E402
from core.tagging import Tagger  # noqa: E402
from tests.photo_corpus import CorpusPhoto, available_photos, load_photo  # noqa: E402
from tests.photo_corpus_tags import ABSENT_QUERIES, GENERIC_QUERIES, HELD_OUT, QUERY_GROUPS, groups_of  # noqa: E402

KS = (1, 5, 10)
PRECISION_GOAL, RECALL_GOAL = 0.7, 0.5  # issue 16's auto-tag goal: precision >= 0.7 with recall >= 0.5


def recall_at(ranks: np.ndarray, k: int) -> float:
    return float(np.mean(ranks < k)) if len(ranks) else float("nan")


def caption_ranks(model: ModelPackage, photos: list[CorpusPhoto], images: np.ndarray) -> np.ndarray:
    """Rank of each photo among all photos for its own caption (0 = first)."""
    texts = model.embed_texts([p.caption for p in photos], as_query=True)
    similarity = texts @ images.T
    return np.array([int(np.sum(row > row[i])) for i, row in enumerate(similarity)])


def suggested_tags(
    images: np.ndarray, tags: list[str], matrix: np.ndarray, settings: list[TaggingSpec | None]
) -> list[list[set[str]]]:
    """For each tagger setting, the tags the library's tagger gives each photo (default vocabulary, no user offsets;
    None: the tagger's defaults)."""
    with tempfile.TemporaryDirectory() as tmp:
        index = PhotoIndex(Path(tmp))
        try:
            tagger = Tagger(index)
            runs = [tagger.suggest(images, tags, matrix, setting) for setting in settings]
        finally:
            index.close()
    return [[{tag for tag, _ in row} for row in pairs] for pairs in runs]


def tag_quality(photos: list[CorpusPhoto], suggested: list[set[str]], tags: list[str]) -> dict[str, float]:
    """Precision and recall of the tagger's tags against the person-given ones (vocabulary words only)."""
    vocabulary = set(tags)
    truth = [set(p.tags) & vocabulary for p in photos]
    hits = sum(len(s & t) for s, t in zip(suggested, truth, strict=True))
    given = sum(len(s) for s in suggested)
    wanted = sum(len(t) for t in truth)
    return {
        "precision": hits / max(given, 1),
        "recall": hits / max(wanted, 1),
        "tags_per_photo": given / len(photos),
        "untagged": sum(not s for s in suggested) / len(photos),
    }


def tag_ceiling(photos: list[CorpusPhoto], images: np.ndarray, tags: list[str], matrix: np.ndarray) -> str:
    """What the tagger's two settings can reach on this model's embeddings, whatever their values: every min_z from
    1.0 to 4.5 (step 0.25) with every max_tags from 1 to 8, scored as `tag_quality` scores the card's setting. Prints
    the best precision among settings reaching recall >= RECALL_GOAL, the best recall among those reaching precision
    >= PRECISION_GOAL, and the setting with the best F1: when no setting reaches both, the tag goal needs a better
    embedding, not another threshold."""
    settings = [TaggingSpec(float(z), k) for z in np.arange(1.0, 4.51, 0.25) for k in range(1, 9)]
    scored = [
        (s, tag_quality(photos, given, tags))
        for s, given in zip(settings, suggested_tags(images, tags, matrix, settings), strict=True)
    ]

    def best(key: str, floor_key: str, floor: float) -> str:
        reaching = [(s, q) for s, q in scored if q[floor_key] >= floor]
        if not reaching:
            s, q = max(scored, key=lambda pair: pair[1][floor_key])
            highest = f"highest {q[floor_key]:.2f}: z >= {s.min_z:g}, {s.max_tags} best"
            return f"no setting reaches {floor_key} {floor} ({highest})"
        s, q = max(reaching, key=lambda pair: pair[1][key])
        return f"best {key} {q[key]:.2f} at {floor_key} {q[floor_key]:.2f} (z >= {s.min_z:g}, {s.max_tags} best)"

    def f1(q: dict[str, float]) -> float:
        return 2 * q["precision"] * q["recall"] / max(q["precision"] + q["recall"], 1e-9)

    top, quality = max(scored, key=lambda pair: f1(pair[1]))
    return (
        f"  tag settings ({len(settings)} tried): {best('precision', 'recall', RECALL_GOAL)}; "
        f"{best('recall', 'precision', PRECISION_GOAL)}; best F1 {f1(quality):.2f}: precision "
        f"{quality['precision']:.2f}, recall {quality['recall']:.2f} (z >= {top.min_z:g}, {top.max_tags} best)"
    )


def tag_errors(photos: list[CorpusPhoto], suggested: list[set[str]], tags: list[str], top: int = 15) -> str:
    """The tags most often given wrongly (false positives) and most often missed (false negatives), with counts."""
    vocabulary = set(tags)
    wrong: Counter[str] = Counter()
    missed: Counter[str] = Counter()
    for photo, given in zip(photos, suggested, strict=True):
        truth = set(photo.tags) & vocabulary
        wrong.update(given - truth)
        missed.update(truth - given)
    return "\n".join(
        f"  tags {name}: " + ", ".join(f"{tag} {count}" for tag, count in counter.most_common(top))
        for name, counter in (("given wrongly", wrong), ("missed", missed))
    )


def average_precision(scores: np.ndarray, relevant: np.ndarray) -> float:
    hits = np.cumsum(relevant[np.argsort(-scores)])
    ranks = np.arange(1, len(scores) + 1)
    return float(np.sum((hits / ranks)[relevant[np.argsort(-scores)]]) / max(relevant.sum(), 1))


def generic_words(model: ModelPackage, photos: list[CorpusPhoto], images: np.ndarray) -> str:
    """Mean average precision of generic-word queries ("a photo of an animal"): photos tagged with the word are
    right."""
    queries = model.embed_texts(list(GENERIC_QUERIES.values()), as_query=True) @ images.T
    aps = {
        word: average_precision(row, np.array([word in p.tags for p in photos]))
        for word, row in zip(GENERIC_QUERIES, queries, strict=True)
    }
    detail = " ".join(f"{word} {ap:.2f}" for word, ap in aps.items())
    return f"  generic words: mAP {np.mean(list(aps.values())):.2f} ({detail})"


def vocabulary_matrix(model: ModelPackage) -> tuple[list[str], np.ndarray]:
    """The default vocabulary and its tag embeddings, as a fresh library's tagger makes them."""
    with tempfile.TemporaryDirectory() as tmp:
        index = PhotoIndex(Path(tmp))
        try:
            return Tagger(index).tag_matrix(model)
        finally:
            index.close()


def cutoff_quality(model: ModelPackage, photos: list[CorpusPhoto], images: np.ndarray, bank: np.ndarray) -> str:
    """The card's search cutoff (core/cutoff.py): how often a caption's photo is among the default results, and how
    many results the captions and the queries for absent things get."""
    stats = bank_stats(images, bank)
    captions = model.embed_texts([p.caption for p in photos], as_query=True) @ images.T
    absent = model.embed_texts(list(ABSENT_QUERIES), as_query=True) @ images.T
    kept = [matches(row, stats, model.card.cutoff) for row in captions]
    found = np.array([i in row for i, row in enumerate(kept)])
    held_out = held_out_mask(photos)
    absent_counts = [len(matches(row, stats, model.card.cutoff)) for row in absent]
    return (
        f"  cutoff{'' if model.card.cutoff else ' (default, not measured for this card)'}: caption's photo among the "
        f"results {found.mean():.2f}{f' (held out: {found[held_out].mean():.2f})' if held_out.any() else ''}, "
        "results per caption median "
        f"{np.median([len(k) for k in kept]):.0f}; {len(ABSENT_QUERIES)} absent things: median "
        f"{np.median(absent_counts):.1f}, max {max(absent_counts)} results (no cutoff: {len(photos)})"
    )


def held_out_mask(photos: list[CorpusPhoto]) -> np.ndarray:
    """Which photos were added after the starter's settings were chosen (tests/photo_corpus_tags.HELD_OUT)."""
    return np.array([p.name in HELD_OUT for p in photos], dtype=bool)


def embed_cost(models: list[ModelPackage], photos: list[CorpusPhoto], rounds: int = 3) -> list[float]:
    """Median ms per photo to preprocess and embed, rounds alternating between the models (same load for all)."""
    images = [load_photo(p.name, max_side=1024) for p in photos]
    for model in models:
        model.embed_images(images[:2])  # sessions and the image check load outside the timing
    times: list[list[float]] = [[] for _ in models]
    for _ in range(rounds):
        for i, model in enumerate(models):
            start = time.perf_counter()
            for chunk in range(0, len(images), 16):
                model.embed_images(images[chunk : chunk + 16])
            times[i].append((time.perf_counter() - start) * 1000 / len(images))
    return [float(np.median(t)) for t in times]


def report(model: ModelPackage, label: str, photos: list[CorpusPhoto], errors: bool = False) -> None:
    images = model.embed_images([load_photo(p.name, max_side=1024) for p in photos])
    ranks = caption_ranks(model, photos, images)
    print(f"{label}: model {model.id}, template {model.card.query_template!r}, {len(photos)} photos")
    rows = [("all", np.ones(len(photos), bool))]
    for group in [*QUERY_GROUPS, "other"]:
        rows.append((group, np.array([group in groups_of(p.tags) for p in photos])))
    held_out = held_out_mask(photos)
    if held_out.any():
        rows += [("tuned on", ~held_out), ("held out", held_out)]
    for name, mask in rows:
        recalls = "  ".join(f"R@{k} {recall_at(ranks[mask], k):.2f}" for k in KS)
        print(f"  {name:<16} {int(mask.sum()):>3} queries  {recalls}")
    tags, matrix = vocabulary_matrix(model)
    suggested = suggested_tags(images, tags, matrix, [model.card.tagging])[0]
    quality = tag_quality(photos, suggested, tags)
    parts = []
    for name, mask in (("tuned on", ~held_out), ("held out", held_out)) if held_out.any() else ():
        members = np.flatnonzero(mask)
        part = tag_quality([photos[i] for i in members], [suggested[i] for i in members], tags)
        parts.append(f"{name}: precision {part['precision']:.2f}  recall {part['recall']:.2f}")
    print(
        f"  tags: precision {quality['precision']:.2f}  recall {quality['recall']:.2f}  "
        f"{quality['tags_per_photo']:.1f} per photo  untagged {quality['untagged']:.0%}"
        + (f" ({'; '.join(parts)})" if parts else "")
    )
    if errors:
        print(tag_errors(photos, suggested, tags))
        print(tag_ceiling(photos, images, tags, matrix))
    print(generic_words(model, photos, images))
    print(cutoff_quality(model, photos, images, matrix))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None)
    parser.add_argument("--library", default=None)
    parser.add_argument("--package", action="append", default=[], help="a model package folder (repeatable)")
    parser.add_argument("--template", default=None, help="override the card's query template, e.g. 'a photo of {}.'")
    parser.add_argument("--no-timing", action="store_true", help="skip the embedding-cost rounds")
    parser.add_argument("--tag-errors", action="store_true", help="print the tags most often given wrongly or missed")
    args = parser.parse_args()
    if args.package:
        models = [ModelPackage(Path(p)) for p in args.package]
        labels = list(args.package)
    else:
        models = [ModelStore(library_dir(args.library)).load(args.model)]
        labels = ["library"]
    if args.template:
        for model in models:
            model.card = dataclasses.replace(model.card, query_template=args.template)
    photos = available_photos()
    for model, label in zip(models, labels, strict=True):
        report(model, label, photos, args.tag_errors)
    random_ranks = np.array(
        [np.random.default_rng(i).permutation(len(photos)).tolist().index(i) for i in range(len(photos))]
    )
    print("random ranking: " + "  ".join(f"R@{k} {recall_at(random_ranks, k):.2f}" for k in KS))
    if not args.no_timing:
        costs = embed_cost(models, photos)
        for label, cost in zip(labels, costs, strict=True):
            print(f"embedding cost {label}: {cost:.1f} ms per photo ({cost / costs[0]:.2f}x the first)")


if __name__ == "__main__":
    main()
