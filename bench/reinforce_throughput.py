"""Images per second of dataset reinforcement on real photos: per teacher, and for the whole ensemble end to end.

    python bench/reinforce_throughput.py [FOLDER] [--teachers ID|CHECKPOINT ...] [--library DIR]
        [--random-mobileclip NAME|none] [--augmentations K] [--repeat N] [--device DEV]

Without FOLDER the real test photos (tests/photo_corpus.py) are written with their captions as ``NAME.txt``.
Teachers default to the library's installed packages (or the test cache's starter package) plus a MobileCLIP
with random weights (``--random-mobileclip``, default mobileclip-s0): the speed does not depend on the weights.
Per teacher: augmenting K views per photo (replay with Pillow) and embedding them, captions separately.
Ensemble: a full ``reinforce`` run (decode, augment, every teacher, write shards).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from core.errors import PhotoSeekError  # noqa: E402
from core.paths import library_dir  # noqa: E402
from trainer.reinforce.augment import AugmentConfig, apply_params, sample_params, sample_rng  # noqa: E402
from trainer.reinforce.generate import ReinforceConfig, reinforce  # noqa: E402
from trainer.reinforce.reader import ReinforcedDataset, replay_transform  # noqa: E402
from trainer.reinforce.shards import decode_image  # noqa: E402
from trainer.reinforce.sources import open_source  # noqa: E402
from trainer.reinforce.teachers import PackageTeacher, Teacher, TorchClipTeacher, load_teachers  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def _teachers(args: argparse.Namespace) -> list[Teacher]:
    teachers: list[Teacher] = []
    try:
        teachers = load_teachers(args.teachers, library_dir(args.library), device=args.device)
    except PhotoSeekError as exc:
        cached = REPO / ".cache" / "test-models" / "starter"
        if args.teachers or not cached.is_dir():
            raise
        print(f"({exc}; using the test cache's starter package)")
        teachers = [PackageTeacher(cached)]
    if args.random_mobileclip != "none":
        from trainer.models.clip import create_model

        torch.manual_seed(0)
        model = create_model(args.random_mobileclip)
        teachers.append(TorchClipTeacher.from_mobileclip(model, device=args.device, id=f"{model.info.name}-random"))
    return teachers


def _photos(folder: Path | None, tmp: Path, repeat: int) -> Path:
    if folder is not None:
        return folder
    from tests.photo_corpus import available_photos, materialize

    out = tmp / "photos"
    photos = available_photos()
    for copy in range(repeat):
        for name, path in materialize(out, [p.name for p in photos]).items():
            target = path.with_name(f"{copy}_{path.name}")
            path.rename(target)
            caption = next(p.caption for p in photos if p.name == name)
            target.with_suffix(".txt").write_text(caption)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", type=Path, help="image folder with NAME.txt captions, or an album")
    parser.add_argument("--teachers", nargs="+", default=None)
    parser.add_argument("--library", default=None)
    parser.add_argument("--random-mobileclip", default="mobileclip-s0", help="registry name, or 'none'")
    parser.add_argument("--augmentations", "-K", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1, help="copies of each test photo")
    parser.add_argument("--device", default=None)
    args = parser.parse_args()

    teachers = _teachers(args)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        folder = _photos(args.folder, tmp, args.repeat)
        source = open_source(folder, shard_size=10_000)
        samples = [s for s in source.samples(0)]
        images = [decode_image(s.load()[0]) for s in samples]
        captions = [s.caption or "" for s in samples]
        k = args.augmentations
        params = [
            [sample_params(im.width, im.height, rng, AugmentConfig()) for _ in range(k)]
            for s, im in zip(samples, images, strict=True)
            for rng in [sample_rng(0, s.key, "augment")]
        ]
        print(f"{len(images)} photos from {folder}, K = {k} augmentations each")
        for teacher in teachers:
            teacher.embed_views([apply_params(images[0], params[0][0], teacher.resolution, teacher.interpolation)])
            start = time.perf_counter()
            views = [
                apply_params(im, p, teacher.resolution, teacher.interpolation)
                for im, ps in zip(images, params, strict=True)
                for p in ps
            ]
            augment_s = time.perf_counter() - start
            start = time.perf_counter()
            teacher.embed_views(views)
            embed_s = time.perf_counter() - start
            start = time.perf_counter()
            teacher.embed_texts(captions)
            text_s = time.perf_counter() - start
            n = len(images)
            print(
                f"teacher {teacher.id:<22} ({teacher.kind}, {teacher.resolution} px): "
                f"{n / (augment_s + embed_s):6.1f} photos/s with K={k} views "
                f"(augment {len(views) / augment_s:6.0f} views/s, embed {len(views) / embed_s:6.1f} views/s), "
                f"captions {n / text_s:6.1f}/s"
            )
        start = time.perf_counter()
        result = reinforce(source, tmp / "out", teachers, ReinforceConfig(augmentations=k, max_side=None))
        total_s = time.perf_counter() - start
        ids = " + ".join(t.id for t in teachers)
        print(
            f"ensemble {ids}: {result.samples / total_s:6.1f} photos/s end to end ({result.samples} in {total_s:.1f} s)"
        )
        data = ReinforcedDataset(
            tmp / "out", image_transform=replay_transform(256, (0, 0, 0), (1, 1, 1), "bilinear"),
            tokenize=lambda text: torch.zeros(77, dtype=torch.long),
        )  # fmt: skip
        start = time.perf_counter()
        count = sum(1 for _ in data)
        read_s = time.perf_counter() - start
        print(f"reader (decode + replay at 256 px, one process): {count / read_s:6.1f} samples/s")


if __name__ == "__main__":
    main()
