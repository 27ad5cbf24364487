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
    parser.add_argument("--search", metavar="TEXT", default="", help='start with this search (e.g. "a cat")')
    parser.add_argument("--exit-when-shown", action="store_true", help=argparse.SUPPRESS)  # bench/startup.py
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the app; returns the process exit code."""
    started = time.time()
    args = _parser().parse_args(argv)
    if args.self_test:
        from desktop.self_test import run_self_test

        return run_self_test(args.library)

    from desktop.app import create_main_window, default_settings, ensure_display, make_application

    problem = ensure_display()
    if problem:
        print(f"photoseek: {problem}", file=sys.stderr)
        return 2
    from core.paths import library_dir

    app = make_application()
    window = create_main_window(library_dir(args.library), default_settings())
    window.show()
    if args.search:
        window.search_edit.setText(args.search)
    if args.exit_when_shown:
        from desktop.app import report_when_shown

        report_when_shown(window, started)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
