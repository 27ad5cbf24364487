"""Does storing embeddings as float16 change what search returns? Top-20 of the float16 store vs exact float32.

    python bench/float16_agreement.py [--model starter] [--library DIR] [--views 16] [--top 20]

The library is the real-photo corpus (PHOTOSEEK_CORPUS_ROOTS adds the Debian photos, see tests/photo_corpus.py),
each photo embedded as `--views` crops, flips and scales too, so near-duplicates, where rounding could swap
neighbours, are common. The queries are every corpus caption and every vocabulary tag. The scores go through
core's own scoring (`core.scoring.score_rows`, float16 rows) and numpy float32. Prints on how many queries the
top-K sets are equal, the largest score difference, and how far apart the K-th and K+1-th scores are.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.model_store import ModelStore  # noqa: E402
from core.paths import library_dir  # noqa: E402
from core.scoring import score_rows  # noqa: E402
from core.tagging import default_vocabulary  # noqa: E402
from tests.photo_corpus import available_photos, load_photo  # noqa: E402


def views(image: Image.Image, count: int, rng: np.random.Generator) -> list[Image.Image]:
    """The photo itself plus random crops (60-100 % of each side), mirror images and scales."""
    out = [image]
    while len(out) < count:
        width, height = image.size
        scale = rng.uniform(0.6, 1.0)
        w, h = int(width * scale), int(height * scale)
        x, y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
        view = image.crop((x, y, x + w, y + h))
        out.append(ImageOps.mirror(view) if rng.random() < 0.5 else view)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None)
    parser.add_argument("--library", default=None)
    parser.add_argument("--views", type=int, default=16)
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    model = ModelStore(library_dir(args.library)).load(args.model)
    rng = np.random.default_rng(0)
    photos = available_photos()
    images = [v for p in photos for v in views(load_photo(p.name, max_side=1024), args.views, rng)]
    exact = np.concatenate([model.embed_images(images[i : i + 32]) for i in range(0, len(images), 32)])
    queries = [p.caption for p in photos] + default_vocabulary()
    texts = model.embed_texts(queries, as_query=True)
    reference = texts @ exact.T
    stored = score_rows(exact.astype(np.float16), texts).T
    k = args.top
    same = [
        set(np.argsort(-ref, kind="stable")[:k]) == set(np.argsort(-got, kind="stable")[:k])
        for ref, got in zip(reference, stored, strict=True)
    ]
    gaps = np.sort(reference, axis=1)[:, ::-1]
    gap = gaps[:, k - 1] - gaps[:, k]
    print(
        f"model {model.id}: {len(exact)} embeddings ({len(photos)} photos x {args.views} views), {len(queries)} queries"
    )
    print(f"  top-{k} equal as sets on {np.mean(same):.2%} of queries ({len(same) - sum(same)} differ)")
    print(f"  largest score difference {np.abs(reference - stored).max():.2e}")
    print(f"  gap between exact scores number {k} and {k + 1}: median {np.median(gap):.2e}, min {gap.min():.2e}")


if __name__ == "__main__":
    main()
