"""Indexing throughput on real photos re-encoded as 12-megapixel JPEGs, in one run:

(a) decode only, with JPEG draft (DCT-scaled) decoding: the limit of any pipeline that decodes;
(b) a naive pipeline: full decode, resize, embed one photo at a time;
(c) ours: core.indexer.index_paths (draft decode in parallel threads, batched embedding, batched commits).

  python bench/index_throughput.py [--photos 48] [--model starter] [--library DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.index_db import PhotoIndex  # noqa: E402
from core.indexer import index_paths  # noqa: E402
from core.model_store import ModelStore  # noqa: E402
from core.paths import library_dir  # noqa: E402
from core.preprocess import decode_side, load_image  # noqa: E402
from tests.photo_corpus import available_photos, load_photo  # noqa: E402


def make_12mp_jpegs(folder: Path, count: int) -> list[Path]:
    """Real photos upscaled to 4000 x 3000 (12 MP) and saved as camera-like JPEGs (quality 90)."""
    folder.mkdir(parents=True)
    photos = available_photos()
    paths = []
    for i in range(count):
        image = load_photo(photos[i % len(photos)].name).resize((4000, 3000), Image.Resampling.BILINEAR)
        path = folder / f"IMG_{i:04d}.jpg"
        image.save(path, quality=90)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=48)
    parser.add_argument("--model", default=None)
    parser.add_argument("--library", default=None)
    args = parser.parse_args()
    model = ModelStore(library_dir(args.library)).load(args.model)
    side = decode_side(model.card.preprocess)
    with tempfile.TemporaryDirectory() as tmp:
        files = make_12mp_jpegs(Path(tmp) / "photos", args.photos)
        n = len(files)
        print(f"{n} JPEGs of 4000x3000, model {model.id}, {os.cpu_count()} CPUs")

        start = time.perf_counter()
        for path in files:
            load_image(path, min_side=side)
        decode_rate = n / (time.perf_counter() - start)
        print(f"(a) decode only, draft, 1 thread : {decode_rate:6.1f} photos/s")

        start = time.perf_counter()
        for path in files:
            with Image.open(path) as image:
                full = image.convert("RGB")
            model.embed_images([full])
        naive_rate = n / (time.perf_counter() - start)
        print(f"(b) naive: full decode, one by one : {naive_rate:6.1f} photos/s")

        with PhotoIndex(Path(tmp) / "library") as index:
            report = index_paths([Path(tmp) / "photos"], index, model)
        ours_rate = report.indexed / report.seconds
        print(f"(c) ours: index_paths              : {ours_rate:6.1f} photos/s")
        print(
            f"ratios: (c)/(a) = {ours_rate / decode_rate:.2f} (goal >= 0.8), (c)/(b) = {ours_rate / naive_rate:.2f} (goal >= 3)"
        )


if __name__ == "__main__":
    main()
