"""Headless command line: `python -m core index|search|models ...`.

Exit codes: 0 success, 1 error, 2 bad usage, 3 no model installed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

from core.errors import NoModelError, PhotoSeekError
from core.index_db import PhotoIndex
from core.indexer import index_paths
from core.model_card import verify_files
from core.model_store import BUILD_STARTER_HINT, ModelStore, build_starter, trainer_available
from core.paths import LIBRARY_ENV, library_dir
from core.search import SearchEngine

EXIT_ERROR, EXIT_USAGE, EXIT_NO_MODEL = 1, 2, 3


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--library", metavar="DIR", help=f"library folder (default: ${LIBRARY_ENV} or the user data dir)"
    )
    common.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser = argparse.ArgumentParser(prog="python -m core", description="PhotoSeek: index photos and search them.")
    commands = parser.add_subparsers(dest="command", required=True)

    index = commands.add_parser("index", parents=[common], help="index photos in folders or files")
    index.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    index.add_argument("--batch-size", type=int, default=32)

    search = commands.add_parser("search", parents=[common], help="find photos matching a text")
    search.add_argument("query")
    search.add_argument("--top", type=int, default=10, metavar="K", help="number of results (default 10)")
    search.add_argument("--min-score", type=float, default=None, help="leave out results below this similarity")

    models = commands.add_parser("models", help="list, choose and verify model packages")
    model_commands = models.add_subparsers(dest="models_command", required=True)
    model_commands.add_parser("list", parents=[common], help="installed model packages")
    use = model_commands.add_parser("use", parents=[common], help="make a model the active one")
    use.add_argument("model_id", metavar="ID")
    verify = model_commands.add_parser("verify", parents=[common], help="check a package's files against its card")
    verify.add_argument("model_id", metavar="ID")
    return parser


def _emit(args: argparse.Namespace, data: object, text: str) -> None:
    print(json.dumps(data, indent=2) if args.json else text)


def _active_model_id(store: ModelStore) -> str:
    """The active model, building the starter first when nothing is installed and the trainer can."""
    try:
        return store.active_id()
    except NoModelError:
        if not trainer_available():
            raise
        print("No model installed yet: building the starter model once (takes a few minutes)…", file=sys.stderr)
        build_starter(store.library)
        return store.active_id()


def _cmd_index(args: argparse.Namespace, library: Path) -> int:
    store = ModelStore(library)
    model = store.load(_active_model_id(store))
    with PhotoIndex(library) as index, tqdm(unit="photo", desc="Indexing", disable=None, file=sys.stderr) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        report = index_paths(args.paths, index, model, batch_size=args.batch_size, progress=progress)
    rate = report.indexed / report.seconds if report.seconds else 0.0
    text = (
        f"{report.found} photos found: {report.indexed} indexed, {report.unchanged} unchanged, "
        f"{report.failed} unreadable, {report.removed} removed ({report.seconds:.1f} s, {rate:.1f} photos/s)"
    )
    for path, reason in report.failures:
        text += f"\n  skipped {path}: {reason}"
    _emit(args, {**asdict(report), "model": model.id}, text)
    return 0


def _cmd_search(args: argparse.Namespace, library: Path) -> int:
    store = ModelStore(library)
    model = store.load(_active_model_id(store))
    with PhotoIndex(library) as index:
        engine = SearchEngine(index, model)
    hits = engine.search(args.query, top=args.top, min_score=args.min_score)
    if not len(engine) and not args.json:
        print("The library is empty: add photos with `python -m core index FOLDER`.", file=sys.stderr)
    _emit(args, [asdict(h) for h in hits], "\n".join(f"{h.score:.3f}  {h.path}" for h in hits))
    return 0


def _cmd_models(args: argparse.Namespace, library: Path) -> int:
    store = ModelStore(library)
    if args.models_command == "list":
        models = store.list()
        try:
            active = store.active_id()
        except NoModelError:
            active = None
        rows = [
            {
                "id": m.id,
                "name": m.card.name,
                "dim": m.card.embedding_dim,
                "location": m.location,
                "path": str(m.dir),
                "active": m.id == active,
            }
            for m in models
        ]
        text = "\n".join(
            f"{'*' if r['active'] else ' '} {r['id']:<24} {r['name']}  ({r['location']}: {r['path']})" for r in rows
        )
        _emit(args, rows, text or f"No model packages installed. Build one with: {BUILD_STARTER_HINT}")
        return 0
    if args.models_command == "use":
        store.set_active(args.model_id)
        _emit(args, {"active": args.model_id}, f"Active model: {args.model_id}")
        return 0
    model = store.find(args.model_id)
    verify_files(model.dir, model.card)
    _emit(
        args,
        {"id": model.id, "ok": True, "files": len(model.card.files)},
        f"{model.id}: all {len(model.card.files)} files match the card",
    )
    return 0


COMMANDS = {"index": _cmd_index, "search": _cmd_search, "models": _cmd_models}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = _parser().parse_args(argv)
    library = library_dir(args.library)
    try:
        return COMMANDS[args.command](args, library)
    except NoModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_NO_MODEL
    except PhotoSeekError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted: finished batches are saved; run the same command again to continue", file=sys.stderr)
        return 130
