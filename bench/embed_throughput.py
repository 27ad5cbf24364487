"""Images per second of a model package on a folder of photos: decode only, embed only, and both (the indexer).

    python bench/embed_throughput.py [FOLDER] [--model starter] [--library DIR]

Without FOLDER, the real test photos are written as JPEGs to a temporary folder. Numbers are measured in one
run, so the ratios are comparable even on a noisy shared machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.index_db import PhotoIndex  # noqa: E402
from core.indexer import index_paths  # noqa: E402
from core.model_store import ModelStore  # noqa: E402
from core.paths import library_dir  # noqa: E402
from core.preprocess import decode_side, load_image  # noqa: E402
from core.scanning import scan  # noqa: E402


def _rate(count: int, seconds: float) -> str:
    return f"{count / seconds:7.1f} images/s ({seconds:.2f} s for {count})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", type=Path)
    parser.add_argument("--model", default=None, help="model id (default: the library's active model)")
    parser.add_argument("--library", default=None)
    parser.add_argument("--repeat", type=int, default=3, help="copies of each photo (more work per run)")
    args = parser.parse_args()

    model = ModelStore(library_dir(args.library)).load(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder
        if folder is None:
            from tests.photo_corpus import materialize

            folder = Path(tmp) / "photos"
            for copy in range(args.repeat):
                materialize(folder / f"copy{copy}")
        files = [Path(p.path) for p in scan([folder])]
        side = decode_side(model.card.preprocess)
        print(f"model {model.id}: {len(files)} photos from {folder}")

        start = time.perf_counter()
        pixels = np.stack([model.preprocess(load_image(f, min_side=side)) for f in files])
        decode_s = time.perf_counter() - start
        print(f"decode + preprocess, 1 thread : {_rate(len(files), decode_s)}")

        start = time.perf_counter()
        for i in range(0, len(pixels), 32):
            model.embed_pixels(pixels[i : i + 32])
        embed_s = time.perf_counter() - start
        print(f"embed only, batches of 32    : {_rate(len(files), embed_s)}")

        with PhotoIndex(Path(tmp) / "library") as index:
            report = index_paths([folder], index, model)
        print(f"indexer (decode + embed)     : {_rate(report.indexed, report.seconds)}")
        print(
            f"ratios: indexer / embed-only = {embed_s / report.seconds:.2f}, "
            f"indexer / sequential decode-then-embed = {(decode_s + embed_s) / report.seconds:.2f}"
        )


if __name__ == "__main__":
    main()
