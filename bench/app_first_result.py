"""The desktop app from launch to its first search result, as a user who opens it and types a query waits.

    python bench/app_first_result.py --library DIR [--query "a dog on a beach"] [--platform offscreen]
    python bench/app_first_result.py --library DIR --browse

Builds the window as `python -m desktop --search QUERY` does, in a throw-away settings file, and prints seconds
since the process started to: the window shown, the library open, and the query's results in the grid. With
--browse, no query: the seconds to the whole library in the grid, then the milliseconds each scrollbar jump (to a
quarter, half, three quarters, the end, a tenth) takes to read and paint its rows. Used by bench/library_scale.py;
runs on its own too.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", type=Path, required=True)
    parser.add_argument("--query", default="a dog on a beach")
    parser.add_argument("--platform", default=os.environ.get("QT_QPA_PLATFORM") or "offscreen")
    parser.add_argument("--browse", action="store_true", help="time the whole library in the grid and scrolling it")
    args = parser.parse_args()
    os.environ["QT_QPA_PLATFORM"] = args.platform

    from PySide6.QtCore import QSettings, QTimer

    from desktop.app import create_main_window, make_application

    app = make_application()
    marks: dict[str, float] = {}
    jumps: list[float] = []
    with tempfile.TemporaryDirectory(prefix="photoseek-bench-") as tmp:
        settings = QSettings(str(Path(tmp) / "settings.ini"), QSettings.IniFormat)
        window = create_main_window(args.library, settings, watch=False, catch_up=False)

        def mark(name: str) -> None:
            marks.setdefault(name, time.perf_counter() - STARTED)

        def photos_shown(photos: object) -> None:
            if args.browse and getattr(photos, "library_ids", None) is not None:
                mark("whole library")
                QTimer.singleShot(0, lambda: (jumps.extend(_scroll_jumps(window, app)), window.close()))
            elif not args.browse and getattr(photos, "query", None) == args.query:
                mark("first result")
                QTimer.singleShot(0, window.close)

        window.controller.ready.connect(lambda _: mark("library open"))
        window.controller.photos.connect(photos_shown)
        window.controller.error.connect(lambda text: (print(f"error: {text}", file=sys.stderr), window.close()))
        window.show()
        QTimer.singleShot(0, lambda: mark("window shown"))
        if not args.browse:
            window.search_edit.setText(args.query)
        app.exec()
    print(" ".join(f"{name.replace(' ', '_')}={seconds:.3f}" for name, seconds in marks.items()))
    if jumps:
        print("scrollbar_jumps_ms=" + ",".join(f"{ms:.1f}" for ms in jumps))
    return 0 if ("whole library" if args.browse else "first result") in marks else 1


def _scroll_jumps(window: object, app: object) -> list[float]:
    """Milliseconds for each jump of the grid's scrollbar to read, lay out and paint the rows it lands on."""
    bar = window.grid.verticalScrollBar()  # type: ignore[attr-defined]
    times = []
    for share in (0.25, 0.5, 0.75, 1.0, 0.1):
        started = time.perf_counter()
        bar.setValue(int(bar.maximum() * share))
        window.grid.viewport().repaint()  # type: ignore[attr-defined]
        app.processEvents()  # type: ignore[attr-defined]
        times.append((time.perf_counter() - started) * 1000)
    return times


if __name__ == "__main__":
    sys.exit(main())
