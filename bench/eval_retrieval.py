"""Text -> image retrieval on the real-photo corpus: each photo's caption is the query, its own photo is correct.

    python bench/eval_retrieval.py [--model starter] [--library DIR] [--template "{}"]

Set PHOTOSEEK_CORPUS_ROOTS to folders where the corpus's Debian packages are unpacked to evaluate on more than
the PyPI photos (see tests/photo_corpus.py). Prints R@1, R@5, R@10 and the number of photos, and the same with
a random ranking for comparison.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.model_store import ModelStore  # noqa: E402
from core.paths import library_dir  # noqa: E402
from tests.photo_corpus import available_photos, load_photo  # noqa: E402


def recall_at(ranks: np.ndarray, k: int) -> float:
    return float(np.mean(ranks < k))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None)
    parser.add_argument("--library", default=None)
    parser.add_argument("--template", default=None, help="override the card's query template, e.g. 'a photo of {}.'")
    args = parser.parse_args()
    model = ModelStore(library_dir(args.library)).load(args.model)
    if args.template:
        model.card = dataclasses.replace(model.card, query_template=args.template)
    photos = available_photos()
    images = model.embed_images([load_photo(p.name, max_side=1024) for p in photos])
    texts = model.embed_texts([p.caption for p in photos], as_query=True)
    similarity = texts @ images.T
    ranks = np.array([int(np.sum(row > row[i])) for i, row in enumerate(similarity)])
    random_ranks = np.array(
        [np.random.default_rng(i).permutation(len(photos)).tolist().index(i) for i in range(len(photos))]
    )
    print(f"model {model.id}, template {model.card.query_template!r}, {len(photos)} photos")
    for label, r in (("model", ranks), ("random", random_ranks)):
        print(f"  {label:<6} R@1 {recall_at(r, 1):.2f}  R@5 {recall_at(r, 5):.2f}  R@10 {recall_at(r, 10):.2f}")


if __name__ == "__main__":
    main()
