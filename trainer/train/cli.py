"""``python -m trainer train CONFIG``; torch is imported only when it runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(commands: Any) -> None:
    """Add the ``train`` command to the trainer's sub-parsers."""
    from trainer.cli import add_library_option

    train = commands.add_parser(
        "train",
        help="train a MobileCLIP model on a reinforced dataset (torchrun for several processes or hosts)",
        description="Multi-modal reinforced training as configured in CONFIG (.json or .toml, see "
        "trainer/train/config.py). Resumes from OUT/last.pt. Under torchrun the ranks split the shards and "
        "gather features for the loss (gloo on CPU, nccl on GPU).",
    )
    train.add_argument("config", metavar="CONFIG", help="config file (.json or .toml)")
    train.add_argument("--out", metavar="DIR", help="output folder (overrides out_dir)")
    train.add_argument("--steps", type=int, help="optimiser steps (overrides steps)")
    train.add_argument("--no-resume", action="store_true", help="start afresh even if OUT/last.pt exists")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument(
        "--export", nargs="?", const="", metavar="ID", help="when training ends, install the model as a package the "
        "app loads (default id: MODEL-OUTNAME; also the config's 'export')",
    )  # fmt: skip
    add_library_option(train)
    train.set_defaults(handler=_cmd_train)


def _cmd_train(args: argparse.Namespace) -> int:
    import os

    from core.paths import library_dir
    from trainer.cli import log
    from trainer.train.run import ExportSettings, export_trained, load_run_config, run_training

    try:
        cfg, export = load_run_config(Path(args.config))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out:
        cfg.out_dir = args.out
    if args.steps:
        cfg.steps = args.steps
    if args.no_resume:
        cfg.resume = False
    if args.no_progress:
        cfg.progress = False
    if args.export is not None or args.library:
        export = ExportSettings(
            args.export if args.export is not None else export.model_id, args.library or export.library
        )
    try:
        model_id = export.resolved_id(cfg)  # a bad id fails now, not after the run
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = run_training(cfg, log=log)
    if result.checkpoint is not None:
        print(f"step {result.step}: checkpoint {result.checkpoint}, metrics {result.metrics}, curves {result.plot}")
    if model_id and result.step >= cfg.steps and int(os.environ.get("RANK", "0")) == 0:
        package = export_trained(cfg, model_id, library_dir(export.library), result, log=log)
        print(f"Installed '{model_id}' in {package}; use it with: python -m core models use {model_id}")
    return 0
