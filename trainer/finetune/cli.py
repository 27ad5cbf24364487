"""``python -m trainer finetune ALBUM``; torch is imported only when it runs."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.errors import PhotoSeekError


def register(commands: Any) -> None:
    """Add the ``finetune`` command to the trainer's sub-parsers."""
    from trainer.cli import add_library_option

    finetune = commands.add_parser(
        "finetune",
        help="teach a model an album's labels (one sub-folder per label) and install the result",
        description="Fine-tune the base model on ALBUM (one sub-folder of photos per label), evaluate it before "
        "and after on held-out photos and on generic concepts, and install it next to the base.",
    )
    finetune.add_argument("album", metavar="ALBUM", help="folder with one sub-folder of photos per label")
    finetune.add_argument("--base", metavar="MODEL", help="model to start from (default: the active model)")
    finetune.add_argument("--name", metavar="ID", help="id of the new model (default: BASE-ALBUMNAME)")
    length = finetune.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, help="optimiser steps (default: 300 for the starter, 100 for MobileCLIP)")
    length.add_argument("--epochs", type=int, help="passes over the training photos instead of --steps")
    finetune.add_argument(
        "--activate", action="store_true", help="make the new model the app's active model, unless the forgetting "
        "check finds it forgets more than --max-forgetting",
    )  # fmt: skip
    finetune.add_argument(
        "--generic-bank", metavar="DIR", help="photos outside the album, each with a <name>.txt caption: the "
        "forgetting check (generic R@5 before/after)",
    )  # fmt: skip
    finetune.add_argument(
        "--max-forgetting", type=float, help="largest drop of generic R@5 that --activate accepts (0.01)"
    )
    finetune.add_argument("--force", action="store_true", help="activate even when the model forgets too much")
    _add_training_options(finetune)
    add_library_option(finetune)
    finetune.set_defaults(handler=_cmd_finetune)


def _add_training_options(parser: Any) -> None:
    """Teachers, loss weights, what trains and how, and how progress shows (each help gives the default)."""
    parser.add_argument(
        "--teachers", nargs="*", metavar="ID", help="teacher models besides the base (default: every installed model "
        "that is not itself an album fine-tune; give none for the base alone)",
    )  # fmt: skip
    parser.add_argument(
        "--lambda", dest="lam", type=float, help="distillation weight on the label captions (0; 0.5 with --text-only)"
    )
    parser.add_argument("--lambda-syn", type=float, help="distillation weight on the concept captions (1)")
    parser.add_argument(
        "--anchor", type=float, help="weight of the text anchor that keeps generic captions in place (30 for a "
        "text-only fine-tune of the starter, else 0)",
    )  # fmt: skip
    parser.add_argument("--augmentations", type=int, help="stored augmentations per photo (4)")
    parser.add_argument("--text-layers", type=int, help="top text layers that train (2)")
    parser.add_argument("--image-blocks", type=int, help="last image trunk blocks that train, MobileCLIP bases (2)")
    parser.add_argument(
        "--text-only", action="store_true", help="train the text side only: photos keep the base's embeddings"
    )
    parser.add_argument("--batch-size", type=int, help="photos per step (32)")
    parser.add_argument(
        "--lr", type=float, help="learning rate (1e-4 for the starter, 5e-5 text-only; 3e-5 for MobileCLIP)"
    )
    parser.add_argument("--val-fraction", type=float, help="share of each label held out for validation (0.2)")
    parser.add_argument("--seed", type=int, help="seed of the split, augmentations and training (0)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), help="where to train (auto: GPU if present)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--progress-json", action="store_true", help="for programs (the app): instead of the bar and the summary, "
        "one JSON object per line on stdout: {\"event\": \"progress\", \"phase\", \"step\", \"total\", "
        "\"elapsed_s\", \"eta_s\"} as it goes, then {\"event\": \"report\", ...} or {\"event\": \"error\", "
        "\"message\"}; the summary goes to stderr",
    )  # fmt: skip


def _emit(event: dict) -> None:
    print(json.dumps(event), flush=True)


class JsonProgress:
    """The pipeline's progress listener for ``--progress-json``: one line per beat, with the time spent in the
    phase and, for phases that count (photos reinforced, training steps), the estimated seconds left in it."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.phase: str | None = None
        self.started = 0.0

    def __call__(self, phase: str, step: int, total: int) -> None:
        now = self.clock()
        if phase != self.phase:
            self.phase, self.started = phase, now
        elapsed = now - self.started
        eta = elapsed / step * (total - step) if 0 < step <= total else None
        _emit({"event": "progress", "phase": phase, "step": step, "total": total, "elapsed_s": round(elapsed, 3),
               "eta_s": None if eta is None else round(eta, 3)})  # fmt: skip


def _cmd_finetune(args: argparse.Namespace) -> int:
    from core.paths import library_dir
    from trainer.cli import log
    from trainer.finetune.options import FinetuneOptions
    from trainer.finetune.pipeline import finetune

    chosen = {
        "base": args.base, "model_id": args.name, "steps": args.steps, "epochs": args.epochs, "lam": args.lam,
        "lam_syn": args.lambda_syn, "anchor": args.anchor, "augmentations": args.augmentations,
        "batch_size": args.batch_size,
        "lr": args.lr, "val_fraction": args.val_fraction, "seed": args.seed, "device": args.device,
        "train_layers": args.text_layers, "image_blocks": args.image_blocks, "max_forgetting": args.max_forgetting,
        "generic_bank": Path(args.generic_bank) if args.generic_bank else None,
    }  # fmt: skip
    options = FinetuneOptions(
        **{k: v for k, v in chosen.items() if v is not None},
        teachers=None if args.teachers is None else list(args.teachers),
        activate=args.activate,
        force=args.force,
        text_only=args.text_only,
        progress=not (args.no_progress or args.progress_json),
    )
    emitter = JsonProgress() if args.progress_json else None
    try:
        report = finetune(Path(args.album), library_dir(args.library), options, log=log, progress=emitter)
    except (ValueError, PhotoSeekError) as exc:
        if emitter is not None:
            _emit({"event": "error", "message": str(exc)})
        if not isinstance(exc, ValueError):
            raise  # trainer.cli.main reports it (exit 1)
        print(f"error: {exc}", file=sys.stderr)  # a setting out of range (the library raises; the CLI reports)
        return 2
    if emitter is not None:
        _emit({"event": "report", **report.to_dict()})
    print(report.summary(), file=sys.stderr if emitter else sys.stdout)
    if report.activation_refused:
        print(f"error: '{report.model_id}' was not activated: {report.forgetting.summary()}", file=sys.stderr)
        return 3
    return 0
