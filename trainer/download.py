"""Download an official MobileCLIP checkpoint and import it (``python -m trainer download NAME``).

The download itself is core's (``core.model_download``: streamed, resumed, size- and hash-checked); the file is then
imported like ``python -m trainer import``.

This module also registers the ``import`` and ``download`` commands of the trainer CLI; it stays free of torch so
the CLI starts fast (the work is imported when a command runs).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from core.kept_checkpoints import CHECKPOINT_DIR
from core.model_download import OFFICIAL_URLS, DownloadError, download_file, with_url_hint

__all__ = ["OFFICIAL_URLS", "DownloadError", "download_file", "download_model", "register"]


def download_model(
    name: str,
    library: Path,
    *,
    url: str | None = None,
    model_id: str | None = None,
    show_progress: bool = False,
    log: Callable[[str], None] = lambda _msg: None,
) -> Path:
    """Download the official checkpoint of ``name`` into ``library/checkpoints`` and import it; returns the package.

    An already complete download of the same file is reused. ``url`` overrides the official location. The file
    stays in ``library/checkpoints`` and the card records it: album fine-tuning rebuilds the model from it.
    """
    from core.model_store import ModelStore
    from trainer.mobileclip_export import import_checkpoint
    from trainer.models.clip import model_info

    try:
        info = model_info(name)
    except KeyError as exc:
        raise DownloadError(str(exc.args[0])) from None
    source = url or OFFICIAL_URLS[info.name]
    dest = Path(library) / CHECKPOINT_DIR / info.checkpoint_file
    if dest.is_file():
        log(f"using the checkpoint downloaded before: {dest}")
    else:
        log(f"downloading {info.display} from {source}")
        try:
            download_file(source, dest, show_progress=show_progress)
        except DownloadError as exc:
            raise with_url_hint(exc) from None
        log(f"saved {dest} ({dest.stat().st_size / 1e6:.1f} MB); fine-tuning the model needs it, keep it")
    store = ModelStore(Path(library))
    return import_checkpoint(
        dest, store.install_dir, name=info.name, model_id=model_id, source_url=source, library=store.library, log=log
    )


# --- CLI commands ---------------------------------------------------------------------------------------------------


def _install_args(parser: argparse.ArgumentParser) -> None:
    from trainer.cli import add_library_option

    parser.add_argument("--id", dest="model_id", metavar="ID", help="package id (default: the model name)")
    add_library_option(parser)
    parser.add_argument("--activate", action="store_true", help="make the imported model the library's active one")


def _finish(args: argparse.Namespace, path: Path) -> int:
    from core.model_card import read_card
    from core.model_store import ModelStore
    from core.paths import library_dir

    card = read_card(path)
    print(f"Installed {card.name} as model '{card.id}' in {path}")
    if args.activate:
        ModelStore(library_dir(args.library)).set_active(card.id)
        print(f"'{card.id}' is now the active model")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from core.model_store import ModelStore
    from core.paths import library_dir
    from trainer.cli import log
    from trainer.mobileclip_export import import_checkpoint

    store = ModelStore(library_dir(args.library))
    path = import_checkpoint(
        Path(args.file), store.install_dir, name=args.name, model_id=args.model_id, library=store.library, log=log
    )
    return _finish(args, path)


def _cmd_download(args: argparse.Namespace) -> int:
    from core.paths import library_dir
    from trainer.cli import log

    path = download_model(
        args.name, library_dir(args.library), url=args.url, model_id=args.model_id, show_progress=True, log=log
    )
    return _finish(args, path)


def register(commands: argparse._SubParsersAction) -> None:
    """Add the ``import`` and ``download`` commands to the trainer CLI."""
    names = ", ".join(OFFICIAL_URLS)
    imp = commands.add_parser(
        "import",
        help="import an official MobileCLIP checkpoint (.pt) as a model package",
        description="Import a MobileCLIP checkpoint as a model package. A copy of the file is kept in the library's "
        "checkpoints/ folder (unless it is there already): album fine-tuning rebuilds the model from it.",
    )
    imp.add_argument("file", help="checkpoint file (mobileclip_s0.pt, mobileclip2_s2.pt, open_clip .bin/.safetensors)")
    imp.add_argument("--name", help=f"check that the file holds this model instead of detecting it ({names})")
    _install_args(imp)
    imp.set_defaults(handler=_cmd_import)
    down = commands.add_parser("download", help="download an official MobileCLIP checkpoint and import it")
    down.add_argument("name", help=f"model to download: {names}")
    down.add_argument("--url", help="download from this URL instead of the official location")
    _install_args(down)
    down.set_defaults(handler=_cmd_download)
