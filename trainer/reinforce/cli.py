"""``python -m trainer reinforce SOURCE --out DIR ...``: build a reinforced (DataCompDR-layout) dataset.

Runs as one process or under torchrun (``torchrun --nproc_per_node N -m trainer reinforce ...``), which splits
the shards across processes and hosts. torch is imported only when the command runs.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def register(commands: Any) -> None:
    """Add the ``reinforce`` command to the trainer's sub-parsers."""
    from trainer.cli import add_library_option

    parser = commands.add_parser(
        "reinforce",
        help="store teacher embeddings, augmentations and captions for a dataset (DataCompDR layout)",
        description=(
            "Reinforce SOURCE (an image folder with NAME.txt captions, an album with one sub-folder per label, "
            "or webdataset .tar shards with jpg+txt) into shards under --out, with a dataset card. Run it under "
            "torchrun to split the work across processes and hosts; run it again to resume."
        ),
    )
    parser.add_argument("source", metavar="SOURCE", help="image folder, album folder, .tar shard or folder of shards")
    parser.add_argument("--out", required=True, metavar="DIR", help="output dataset folder")
    parser.add_argument(
        "--teachers", nargs="+", metavar="ID", help="teacher model ids or checkpoint files, in ensemble order "
        "(default: every installed model package)",
    )  # fmt: skip
    parser.add_argument(
        "--augmentations", type=_positive, default=2, metavar="K", help="stored augmentations per image"
    )
    parser.add_argument(
        "--captions", type=int, default=None, metavar="S", help="synthetic captions per image (needs a captioner)"
    )
    parser.add_argument("--captioner", metavar="NAME", help="captioner plug-in to use (default: the installed one)")
    parser.add_argument(
        "--source-kind", choices=("auto", "folder", "album", "webdataset"), default="auto", help="how to read SOURCE"
    )
    parser.add_argument("--shard-size", type=_positive, default=256, help="photos per output shard (folder sources)")
    parser.add_argument("--batch-size", type=_positive, default=32, help="images embedded at a time")
    parser.add_argument(
        "--max-side", type=int, default=1024, help="store images at most this many pixels on the long side (0: as is)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", help="torch device for checkpoint teachers (default: cuda:LOCAL_RANK or cpu)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_library_option(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Handler of ``reinforce``: load teachers and captioner, generate this rank's shards; returns the exit code."""
    from core.paths import library_dir
    from trainer.cli import log
    from trainer.reinforce.captioners import load_captioner
    from trainer.reinforce.generate import ReinforceConfig, dist_env, reinforce
    from trainer.reinforce.sources import open_source
    from trainer.reinforce.teachers import load_teachers

    rank, world, local_rank = dist_env()
    threads = 0
    device = args.device
    if world > 1:
        import torch

        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        threads = max(1, (os.cpu_count() or 1) // local_world)  # processes on one host share its cores
        torch.set_num_threads(threads)
        if device is None and torch.cuda.is_available():
            device = f"cuda:{local_rank % torch.cuda.device_count()}"
    max_side = args.max_side or None
    source = open_source(
        Path(args.source), kind=args.source_kind, shard_size=args.shard_size, max_side=max_side, seed=args.seed
    )
    teachers = load_teachers(args.teachers, library_dir(args.library), device=device, threads=threads)
    captioner = load_captioner(args.captioner)
    config = ReinforceConfig(
        augmentations=args.augmentations, captions=args.captions, seed=args.seed, batch_size=args.batch_size,
        max_side=max_side,
    )  # fmt: skip
    if rank == 0:
        names = ", ".join(f"{t.id} ({t.dim}-d, {t.resolution} px)" for t in teachers)
        log(f"reinforcing {source.kind} source {args.source}: {source.num_units} shard(s), teachers {names}")
    result = reinforce(
        source, Path(args.out), teachers, config, captioner=captioner, progress=not args.no_progress, log=log
    )
    if result.card_path is not None:
        print(f"Wrote {result.card_path}")
    return 0
