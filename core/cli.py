"""Headless command line: `python -m core COMMAND ...` (see `--help`). Every command takes `--library` and `--json`.

Exit codes: 0 success, 1 error, 2 bad usage, 3 no model installed, 130 interrupted.

Paths are printed, in text and in JSON alike, as `pathtext.display` writes them: unchanged for any name that is
valid UTF-8, and with each byte of a name that is not written as `\\xNN` (e.g. `caf\\xe9.jpg`), so the output is
always valid UTF-8 / JSON. Such a display path names the file for people; it does not open it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

from core import models_cli
from core.encoders import ModelPackage
from core.errors import NoModelError, PhotoSeekError
from core.indexer import IndexReport
from core.library import Library
from core.model_card import verify_files
from core.model_store import BUILD_STARTER_HINT, build_starter, trainer_available
from core.paths import LIBRARY_ENV
from core.pathtext import display
from core.search import MAX_MATCHES, SORTS, SearchHit, SearchRequest
from core.xmp import SIDECAR_STYLES

EXIT_ERROR, EXIT_USAGE, EXIT_NO_MODEL = 1, 2, 3


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--library", metavar="DIR", help=f"library folder (default: ${LIBRARY_ENV} or the user data dir)"
    )
    common.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser = argparse.ArgumentParser(prog="python -m core", description="PhotoSeek: index, tag and search photos.")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, parents=[common], help=help_text, description=help_text)

    index = command("index", "index photos in folders or files (they become library folders)")
    index.add_argument("paths", nargs="*", type=Path, metavar="PATH", help="default: every library folder")
    index.add_argument("--batch-size", type=int, default=32)

    search = command("search", "find photos: text, -negatives, +photo.jpg, tag:, in:, after:, before:, camera:")
    search.add_argument("query")
    _result_options(search, f"the K best, whatever their score (default: the matches, at most {MAX_MATCHES})")
    search.add_argument("--sort", choices=SORTS, default="relevance")

    similar = command("similar", "find photos that look like a photo")
    similar.add_argument("path", type=Path)
    _result_options(similar)

    tags = command("tags", "show a photo's tags; --add/--remove edit them (user decisions are never overwritten)")
    tags.add_argument("path", type=Path)
    tags.add_argument("--add", action="append", default=[], metavar="TAG")
    tags.add_argument("--remove", action="append", default=[], metavar="TAG")

    vocab = command("vocab", "the vocabulary the model tags with: list, add or remove tags")
    vocab.add_argument("action", choices=("list", "add", "remove"))
    vocab.add_argument("tags", nargs="*", metavar="TAG")

    export = command("export-xmp", "write tags into XMP sidecars (digiKam, darktable, Lightroom); photos untouched")
    export.add_argument("paths", nargs="*", type=Path, metavar="PATH", help="default: the whole library")
    export.add_argument("--style", choices=SIDECAR_STYLES, default="ext-appended", help="photo.jpg.xmp or photo.xmp")

    command("watch", "index the library folders, then keep them current until interrupted")
    command("errors", "files that could not be indexed, with the reason")
    command("stats", "library size, models, tags")

    models = commands.add_parser("models", help="list, choose, verify, import, download and remove model packages")
    model_commands = models.add_subparsers(dest="models_command", required=True)
    model_commands.add_parser("list", parents=[common], help="installed model packages")
    use = model_commands.add_parser("use", parents=[common], help="make a model the active one (re-index to embed)")
    use.add_argument("model_id", metavar="ID")
    verify = model_commands.add_parser("verify", parents=[common], help="check a package's files against its card")
    verify.add_argument("model_id", metavar="ID")
    models_cli.register(model_commands, common)
    return parser


def _result_options(parser: argparse.ArgumentParser, top_help: str = "number of results (default 10)") -> None:
    parser.add_argument("--top", type=int, default=None, metavar="K", help=top_help)
    parser.add_argument("--min-score", type=float, default=None, metavar="S", help="leave out results below S")


def _emit(args: argparse.Namespace, data: object, text: str) -> None:
    print(json.dumps(data, indent=2) if args.json else text)


def _report_data(report: IndexReport) -> dict[str, object]:
    data = asdict(report)
    data["failures"] = [[display(path), display(reason)] for path, reason in report.failures]
    return data


def _ensure_model(library: Library) -> None:
    """Build the starter first when nothing is installed and the trainer can (else NoModelError says what to run)."""
    try:
        library.active_id()
    except NoModelError:
        if not trainer_available():
            raise
        print("No model installed yet: building the starter model once (a few minutes)…", file=sys.stderr)
        build_starter(library.path)
        library.refresh_models()


def _cmd_index(args: argparse.Namespace, library: Library) -> int:
    _ensure_model(library)
    with tqdm(unit="photo", desc="Indexing", disable=None, file=sys.stderr) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        report = library.index(args.paths or None, progress=progress, batch_size=args.batch_size)
    rate = report.indexed / report.seconds if report.seconds else 0.0
    text = (
        f"{report.found} photos found: {report.indexed} indexed, {report.unchanged} unchanged, {report.moved} moved, "
        f"{report.failed} unreadable, {report.removed} removed ({report.seconds:.1f} s, {rate:.1f} photos/s)"
    )
    text += "".join(f"\n  skipped {display(path)}: {display(reason)}" for path, reason in report.failures)
    _emit(args, {**_report_data(report), "model": library.active_id()}, text)
    return 0


def _print_hits(args: argparse.Namespace, hits: list[SearchHit], empty_library: bool) -> int:
    if empty_library and not args.json:
        print("The library is empty: add photos with `python -m core index FOLDER`.", file=sys.stderr)
    rows = [{**asdict(h), "path": display(h.path), "raw": h.raw and display(h.raw)} for h in hits]
    lines = [
        f"{h.score:.3f}  {display(h.path)}" + (f"  (+ {os.path.basename(display(h.raw))})" if h.raw else "")
        for h in hits
    ]
    _emit(args, rows, "\n".join(lines))
    return 0


def _cmd_search(args: argparse.Namespace, library: Library) -> int:
    _ensure_model(library)
    # With neither --top nor --min-score, the results stop where the matches stop (none is a valid answer).
    cutoff = args.top is None and args.min_score is None
    top = MAX_MATCHES if cutoff or args.top is None else args.top
    request = SearchRequest(args.query, top=top, min_score=args.min_score, sort=args.sort, cutoff=cutoff)
    hits = library.search(request).hits
    return _print_hits(args, hits, not len(library.search_engine()))


def _cmd_similar(args: argparse.Namespace, library: Library) -> int:
    _ensure_model(library)
    hits = library.similar(args.path, top=10 if args.top is None else args.top, min_score=args.min_score)
    return _print_hits(args, hits, not len(library.search_engine()))


def _cmd_tags(args: argparse.Namespace, library: Library) -> int:
    tags = library.edit_tags(str(args.path.expanduser().resolve()), add=args.add, remove=args.remove)
    text = "\n".join(
        f"{t.tag:<24} {'' if t.score is None else f'{t.score:.3f}':>6}  {t.source} ({t.state})" for t in tags
    )
    _emit(args, [asdict(t) for t in tags], text or "(no tags)")
    return 0


def _cmd_vocab(args: argparse.Namespace, library: Library) -> int:
    if args.action == "add":
        added, _ = library.edit_vocabulary(add=args.tags)
        _emit(args, {"added": added}, f"added: {', '.join(added)}")
    elif args.action == "remove":
        _, removed = library.edit_vocabulary(remove=args.tags)
        unknown = [t for t in args.tags if t not in removed]
        if unknown:
            print(f"not in the vocabulary: {', '.join(unknown)}", file=sys.stderr)
        _emit(args, {"removed": removed}, "done")
    else:
        tags = library.vocabulary()
        _emit(args, tags, "\n".join(tags))
    return 0


def _cmd_export_xmp(args: argparse.Namespace, library: Library) -> int:
    failures = library.export_xmp(args.paths or None, style=args.style)
    failures = [(display(path), display(reason)) for path, reason in failures]
    for path, reason in failures:
        print(f"error: {path}: {reason}", file=sys.stderr)
    _emit(args, {"failed": [{"path": p, "reason": r} for p, r in failures]}, f"done, {len(failures)} failed")
    return EXIT_ERROR if failures else 0


def _cmd_watch(args: argparse.Namespace, library: Library) -> int:
    _ensure_model(library)
    report = library.index()

    def on_report(update: IndexReport) -> None:
        line = (
            _report_data(update)
            if args.json
            else f"indexed {update.indexed}, removed {update.removed}, failed {update.failed}"
        )
        print(json.dumps(line) if args.json else line, flush=True)

    with library.watcher(on_report):
        # Said once the watcher runs: a photo dropped in right after the message must not be missed.
        print(
            f"indexed {report.indexed}, {report.found} photos in the library folders; watching (Ctrl+C stops)",
            flush=True,
        )
        wait_until_interrupted()
    return 0


def wait_until_interrupted(poll_s: float = 1.0) -> None:
    """Block until Ctrl+C raises KeyboardInterrupt here. The wait runs in slices: the OS may hand SIGINT to any
    thread (the watcher's, onnxruntime's), and Python raises it in the main thread only once that thread runs again,
    so an untimed wait could block for ever (seen as a watch that outlived Ctrl+C on a busy machine)."""
    while True:
        time.sleep(poll_s)


def _cmd_errors(args: argparse.Namespace, library: Library) -> int:
    errors = [(display(path), display(reason)) for path, reason in library.errors()]
    _emit(args, [{"path": p, "reason": r} for p, r in errors], "\n".join(f"{p}: {r}" for p, r in errors))
    return 0


def _cmd_stats(args: argparse.Namespace, library: Library) -> int:
    stats = asdict(library.stats())
    stats["library"], stats["folders"] = display(stats["library"]), [display(f) for f in stats["folders"]]
    _emit(args, stats, "\n".join(f"{k}: {v}" for k, v in stats.items()))
    return 0


def _cmd_models(args: argparse.Namespace, library: Library) -> int:
    store = library.store
    handled = models_cli.run(args, library)
    if handled is not None:
        _emit(args, *handled)
    elif args.models_command == "list":
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
                "path": display(str(m.dir)),
            }
            | {"active": m.id == active}
            for m in store.list()
        ]
        lines = [
            f"{'*' if r['active'] else ' '} {r['id']:<24} {r['name']}  ({r['location']}: {r['path']})" for r in rows
        ]
        _emit(args, rows, "\n".join(lines) or f"No model packages installed. Build one with: {BUILD_STARTER_HINT}")
    elif args.models_command == "use":
        library.use(args.model_id)
        _emit(args, {"active": args.model_id}, f"Active model: {args.model_id} (run `index` to embed the library)")
    else:
        model = store.find(args.model_id)
        verify_files(model.dir, model.card)
        count = len(model.card.files)
        check = ModelPackage(model.dir, verify=False).check_image_encoder()
        data = {"id": model.id, "ok": True, "files": count, "image_check": check and asdict(check)}
        text = f"{model.id}: all {count} files match the card" + (f"\n{check.describe()}" if check else "")
        _emit(args, data, text)
    return 0


COMMANDS = {
    "index": _cmd_index,
    "search": _cmd_search,
    "similar": _cmd_similar,
    "tags": _cmd_tags,
    "vocab": _cmd_vocab,
    "errors": _cmd_errors,
    "export-xmp": _cmd_export_xmp,
    "watch": _cmd_watch,
    "stats": _cmd_stats,
    "models": _cmd_models,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args, Library(args.library))
    except NoModelError as exc:
        print(f"error: {display(str(exc))}", file=sys.stderr)
        return EXIT_NO_MODEL
    except PhotoSeekError as exc:  # a message may quote a path that is not UTF-8
        print(f"error: {display(str(exc))}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted: finished batches are saved; run the same command again to continue", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which closed early: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
