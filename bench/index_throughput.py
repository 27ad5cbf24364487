"""Indexing throughput on real photos re-encoded as 12-megapixel JPEGs, in one run:

(a) decode only, with JPEG draft (DCT-scaled) decoding: the limit of any pipeline that decodes;
(b) a naive pipeline: full decode, resize, embed one photo at a time;
(c) ours: core.indexer.index_paths (draft decode in parallel threads, batched embedding, batched commits).

It also prints what each stage costs in CPU time per photo (decode, model preprocessing, embedding), and the most
any pipeline doing all three could reach on the cores of the machine it runs on: (c) can approach that bound, not (a).

  python bench/index_throughput.py [--photos 96] [--rounds 3] [--model starter] [--library DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.encoders import ModelPackage  # noqa: E402
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
    parser.add_argument("--photos", type=int, default=96)
    parser.add_argument("--model", default=None)
    parser.add_argument("--library", default=None)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    model = ModelStore(library_dir(args.library)).load(args.model)
    side = decode_side(model.card.preprocess)
    with tempfile.TemporaryDirectory() as tmp:
        files = make_12mp_jpegs(Path(tmp) / "photos", args.photos)
        n = len(files)
        print(f"{n} JPEGs of 4000x3000, model {model.id}, {os.cpu_count()} CPUs")

        # (a) and (c) alternate over --rounds so that a noisy neighbour hits both alike; medians are reported.
        decode_rates, ours_rates = [], []
        for round_ in range(args.rounds):
            start = time.perf_counter()
            for path in files:
                load_image(path, min_side=side)
            decode_rates.append(n / (time.perf_counter() - start))
            with PhotoIndex(Path(tmp) / f"library-{round_}") as index:
                report = index_paths([Path(tmp) / "photos"], index, model)
            ours_rates.append(report.indexed / report.seconds)
        decode_rate, ours_rate = statistics.median(decode_rates), statistics.median(ours_rates)

        start = time.perf_counter()
        for path in files[: max(8, n // 4)]:  # the slow one: a quarter of the photos is plenty
            with Image.open(path) as image:
                full = image.convert("RGB")
            model.embed_images([full])
        naive_rate = max(8, n // 4) / (time.perf_counter() - start)

        rounds = ", ".join(f"{a:.1f}/{c:.1f}" for a, c in zip(decode_rates, ours_rates, strict=True))
        print(f"(a) decode only, draft, 1 thread : {decode_rate:6.1f} photos/s")
        print(f"(b) naive: full decode, one by one : {naive_rate:6.1f} photos/s")
        print(f"(c) ours: index_paths              : {ours_rate:6.1f} photos/s   (rounds (a)/(c): {rounds})")
        print(
            f"ratios: (c)/(a) = {ours_rate / decode_rate:.2f} (goal >= 0.8), (c)/(b) = {ours_rate / naive_rate:.2f} (goal >= 3)"
        )
        stage_costs(files[:32], model, side, decode_rate)


def stage_costs(files: list[Path], model: ModelPackage, side: int, decode_rate: float) -> None:
    """CPU milliseconds per photo of each stage, one thread each, and the bound they set on any pipeline."""
    single = ModelPackage(model.dir, threads=1)
    decode = prep = embed = 0.0
    pixels = []
    for path in files:
        start = time.thread_time()
        image = load_image(path, min_side=side)
        decode += time.thread_time() - start
        start = time.thread_time()
        pixels.append(single.preprocess(image))
        prep += time.thread_time() - start
    single.embed_pixels(pixels[0][None])  # session start-up is not per photo
    start = time.thread_time()
    single.embed_pixels(np.stack(pixels))
    embed = time.thread_time() - start
    n = len(files)
    decode, prep, embed = (1000 * t / n for t in (decode, prep, embed))
    cores = os.cpu_count() or 1
    bound = cores * 1000 / (decode + prep + embed)
    print(f"CPU per photo: decode {decode:.1f} ms, preprocess {prep:.1f} ms, embed {embed:.1f} ms (1 thread each)")
    print(
        f"bound for decode + preprocess + embed on {cores} cores: {bound:.1f} photos/s = {bound / decode_rate:.2f} x (a)"
    )


if __name__ == "__main__":
    main()
