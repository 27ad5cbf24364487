"""`python -m desktop` / `photoseek`: open the PhotoSeek window (or run the headless self-test)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="photoseek", description="PhotoSeek: find your photos by describing them.")
    parser.add_argument(
        "--library", metavar="DIR", type=Path, help="library folder (default: $PHOTOSEEK_HOME or the user data folder)"
    )
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="load the model, index a few bundled photos in a temporary library, search them, exit 0 when all works",
    )
    parser.add_argument(
        "--install-desktop-entry",
        action="store_true",
        help="add PhotoSeek to the application menu (Linux: a .desktop file and icons under $XDG_DATA_HOME), exit",
    )
    parser.add_argument("--remove-desktop-entry", action="store_true", help="take it out of the menu again, exit")
    parser.add_argument(
        "--import-model",
        metavar="FILE",
        type=Path,
        help="install a model into the library without opening the window, exit: a MobileCLIP checkpoint "
        "(.pt / .safetensors, e.g. downloaded in a browser) or a model package (folder or .zip); "
        "activate it in File > Models…",
    )
    parser.add_argument("--search", metavar="TEXT", default="", help='start with this search (e.g. "a cat")')
    parser.add_argument(
        "folders", nargs="*", metavar="FOLDER", type=Path, help="folders or photos to add to the library"
    )
    parser.add_argument("--exit-when-shown", action="store_true", help=argparse.SUPPRESS)  # bench/startup.py
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the app; returns the process exit code."""
    started = time.time()
    args = _parser().parse_args(argv)
    if args.install_desktop_entry or args.remove_desktop_entry:
        return _desktop_entry(install=args.install_desktop_entry)
    if args.import_model is not None:
        return _import_model(args.import_model, args.library)
    if args.self_test:
        from desktop.self_test import run_self_test

        return run_self_test(args.library)

    from desktop.app import create_main_window, default_settings, ensure_display, make_application

    problem = ensure_display()
    if problem:
        print(f"photoseek: {problem}", file=sys.stderr)
        return 2
    from core.paths import library_dir
    from desktop.single_instance import claim_library, present

    app = make_application()
    library = library_dir(args.library)
    folders = [folder.resolve() for folder in args.folders]  # the running instance may have another cwd
    instance = claim_library(library, folders)
    if instance is None:  # PhotoSeek already runs on this library: it came to the front with our folders
        return 0
    window = create_main_window(library, default_settings())
    instance.setParent(window)
    instance.activated.connect(lambda sent: present(window, sent))
    window.show()
    if folders:
        window.add_paths(folders)
    if args.search:
        window.search_edit.setText(args.search)
    if args.exit_when_shown:
        from desktop.app import report_when_shown

        report_when_shown(window, started)
    return app.exec()


def _import_model(source: Path, library: Path | None) -> int:
    """What the Models window's "Import a checkpoint file…" and "Install a model package…" do, headless."""
    from core.errors import PhotoSeekError
    from core.library import Library
    from desktop.model_jobs import import_checkpoint, install_package

    try:
        lib = Library(library)
        if source.is_dir() or source.suffix.lower() == ".zip":
            model_id = install_package(lib, source)
        else:
            model_id = import_checkpoint(lib, source, log=lambda line: print(line, flush=True))
    except (PhotoSeekError, OSError) as exc:
        print(f"photoseek: {exc}", file=sys.stderr)
        return 1
    print(f"Installed the model {model_id!r} in {lib.path}. Activate it in File > Models….")
    return 0


def _desktop_entry(*, install: bool) -> int:
    from desktop.desktop_entry import install_desktop_entry, remove_desktop_entry

    if sys.platform in ("win32", "darwin"):
        print("photoseek: menu entries are for Linux desktops; the packaged app is PhotoSeek.app / PhotoSeek.exe")
        return 2
    try:
        if install:
            entry = install_desktop_entry()
            print(f"Added PhotoSeek to the application menu: {entry.desktop_file}")
        else:
            removed = remove_desktop_entry()
            print("Removed: " + ", ".join(map(str, removed)) if removed else "PhotoSeek was not in the menu.")
    except OSError as exc:
        print(f"photoseek: cannot write the menu entry: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
