"""What switching the active model costs on a library of real photos: a text-only fine-tune shares its base's photo
embeddings (core.model_card.image_key) and embeds nothing; a full fine-tune embeds every photo again.

It writes N distinct JPEGs made from the real-photo corpus (random crops, flips, brightness and colour, long side 640), indexes
them with the base, then times `use(model)` + `index()`, as `models use` + `index` and the app's model switch run
them, for:
  text-only: the base's image files byte for byte and its own card, as `finetune --text-only` writes it, with a
             text graph in other bytes (a doc string), so its tag vectors are computed as a real fine-tune's are;
  full: image graphs that differ from the base's in bytes (a doc string) but not in cost, standing for a full
        fine-tune (the starter's full fine-tune adds one 384 x 384 MatMul to the image graph);
and the switch back to the base. Wall seconds and process CPU seconds (all threads) are printed for each.

  python bench/switch_models.py [--photos 1000] [--work DIR] [--package BASE_PACKAGE_DIR] [--keep]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import onnx
from PIL import Image, ImageEnhance, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import cpu_name  # noqa: E402
from core.library import Library  # noqa: E402
from core.model_card import SharedImageSpec, image_key, read_card  # noqa: E402
from core.model_store import ModelStore  # noqa: E402
from core.package_writer import finalize_package  # noqa: E402
from core.paths import library_dir  # noqa: E402
from tests.photo_corpus import available_photos, load_photo  # noqa: E402

LONG_SIDE = 640


def make_photos(folder: Path, count: int) -> int:
    """`count` distinct JPEGs from the corpus photos (kept when a run made them before); returns how many exist."""
    folder.mkdir(parents=True, exist_ok=True)
    if len(list(folder.glob("*.jpg"))) >= count:
        return count
    sources = [load_photo(p.name, 1024) for p in available_photos()]

    def one(i: int) -> None:
        rng = random.Random(i)
        image = sources[i % len(sources)]
        w, h = image.size
        scale = rng.uniform(0.7, 1.0)
        cw, ch = int(w * scale), int(h * scale)
        left, top = rng.randint(0, w - cw), rng.randint(0, h - ch)
        crop = image.crop((left, top, left + cw, top + ch))
        if rng.random() < 0.5:
            crop = ImageOps.mirror(crop)
        crop = ImageEnhance.Color(ImageEnhance.Brightness(crop).enhance(rng.uniform(0.85, 1.15))).enhance(
            rng.uniform(0.8, 1.2)
        )
        crop.thumbnail((LONG_SIDE, LONG_SIDE), Image.Resampling.BILINEAR)
        crop.save(folder / f"IMG_{i:05d}.jpg", quality=85)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        list(pool.map(one, range(count)))
    return count


def _copy_package(base: Path, dest: Path) -> None:
    dest.mkdir(parents=True)
    for item in base.iterdir():
        if item.name != "model_card.json":
            shutil.copyfile(item, dest / item.name)


def _rewrite(graph_file: Path) -> None:
    """The same graph in other bytes: a package with it is another package to core, at the same cost."""
    graph = onnx.load(str(graph_file))
    graph.doc_string = "bench/switch_models.py: same graph, other bytes"
    onnx.save(graph, str(graph_file))


def install_variants(base_dir: Path, models: Path) -> tuple[str, str]:
    """A text-only package (the base's image files, the card's claim) and a full one (image graphs in other bytes)."""
    card = read_card(base_dir)
    _copy_package(base_dir, models / "bench-text-only")
    _rewrite(models / "bench-text-only" / card.text_encoder.file)
    claim = SharedImageSpec(card.id, image_key(card))
    finalize_package(models / "bench-text-only", dataclasses.replace(card, id="bench-text-only", shares_image_of=claim))
    _copy_package(base_dir, models / "bench-full")
    graphs = [card.image_encoder.file] + ([card.image_check.fallback.file] if card.image_check else [])
    for name in graphs:
        _rewrite(models / "bench-full" / name)
    finalize_package(models / "bench-full", dataclasses.replace(card, id="bench-full"))
    return "bench-text-only", "bench-full"


def timed(label: str, step: Callable[[], int], photos: int) -> float:
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    embedded = step()
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = after.ru_utime - cpu.ru_utime + after.ru_stime - cpu.ru_stime
    rate = f", {embedded / wall:.1f} photos/s" if embedded else ""
    print(f"{label:<44} {wall:8.2f} s wall {cpu_s:8.2f} s CPU   embedded {embedded}/{photos}{rate}", flush=True)
    return wall


def run(work: Path, photos: int, base_dir: Path) -> None:
    folder = work / "photos"
    made = time.perf_counter()
    make_photos(folder, photos)
    print(f"{photos} photos ready in {folder} ({time.perf_counter() - made:.1f} s)")
    library = work / "library"
    shutil.rmtree(library, ignore_errors=True)
    (library / "models").mkdir(parents=True)
    (library / "models" / "base").symlink_to(base_dir.resolve(), target_is_directory=True)
    text_only, full = install_variants(base_dir, library / "models")
    base = read_card(base_dir).id
    lib = Library(library)
    lib.use(base)

    def switch(model_id: str, roots: list[Path] | None = None) -> Callable[[], int]:
        def step() -> int:
            lib.use(model_id)
            report = lib.index(roots)
            assert report.failed == 0 and lib.serving_model_id() == model_id, (report, lib.serving_model_id())
            return report.indexed

        return step

    timed(f"index with the base ('{base}')", switch(base, [folder]), photos)
    text_s = timed("switch to the text-only fine-tune", switch(text_only), photos)
    timed("switch back to the base", switch(base), photos)
    full_s = timed("switch to a full fine-tune (re-embeds)", switch(full), photos)
    engine = lib.search_engine()
    assert len(engine) == photos and engine.model.id == full
    print(f"full / text-only switch: {full_s / text_s:.0f}x; saved {full_s - text_s:.1f} s at {photos} photos")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=1000)
    parser.add_argument("--work", default=None, help="folder for the photos and the library (default: a temp folder)")
    parser.add_argument("--package", default=None, help="the base package (default: the default library's active)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (its photos serve the next run)")
    args = parser.parse_args()
    base_dir = Path(args.package) if args.package else ModelStore(library_dir(None)).find(Library().active_id()).dir
    print(f"CPU: {cpu_name()}")
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="switch-models-"))
    try:
        run(work, args.photos, base_dir)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
