"""`photoseek --self-test`: prove a build works, headless, through the real window and workers.

It loads the installed model, indexes a few real photos into a throw-away library by the same path a drop
takes, searches "a cat" like a user typing, and checks the cat photo comes first and the results stop before every
photo; then that "Show weaker matches" lists the others, every photo gets its thumbnail, the photo view shows the cat with its auto-tags, and a tag added there is saved and removed
(self_test_checks). Last, it looks at the user's real library read-only: are its indexed photos found and readable
by this build? Exit code 0 means all of that worked; anything else prints the reason.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from desktop.model_jobs import https_available
from desktop.self_test_checks import (
    SelfTestError,
    check_photo_view_and_tags,
    check_real_library,
    check_thumbnails,
    check_weaker_matches,
)

SELFTEST_DIR = "selftest"
SELFTEST_PHOTOS = ("chelsea_cat", "coffee", "astronaut")  # tests.photo_corpus names
QUERY, EXPECTED = "a cat", "chelsea"
TIMEOUT_MS = 180_000


def bundled_photos() -> Path | None:
    """The folder of real photos the packaged app carries (build.spec writes it), if present."""
    from core.paths import assets_dir

    folder = assets_dir() / SELFTEST_DIR
    return folder if folder.is_dir() and any(folder.iterdir()) else None


def write_selftest_photos(dest: Path, max_side: int = 512) -> Path:
    """Write the self-test photos (real photos from scikit-image's package data) into `dest`.

    Works from a source checkout with the dev extra installed; build.spec calls it to bundle them.
    """
    try:
        from tests.photo_corpus import materialize
    except ImportError as exc:
        raise SelfTestError("no bundled self-test photos and tests.photo_corpus is not importable") from exc
    try:
        written = materialize(dest, SELFTEST_PHOTOS, max_side=max_side)
    except (FileNotFoundError, KeyError) as exc:
        raise SelfTestError(f"cannot write the self-test photos: {exc}") from exc
    for name, path in written.items():  # short file names, as a user's would be
        path.rename(path.with_name(name.split("_")[0] + path.suffix))
    return dest


def link_models(source_library: Path, dest_library: Path) -> None:
    """Make the models installed in `source_library` visible in `dest_library` (and the same one active),
    without writing anything into the source library. User-wide and bundled packages are visible anyway."""
    from core.errors import NoModelError
    from core.model_store import ModelStore

    source = ModelStore(source_library)
    (dest_library / "models").mkdir(parents=True, exist_ok=True)
    for model in source.list():
        if model.location != "library":
            continue
        target = dest_library / "models" / model.dir.name
        try:
            target.symlink_to(model.dir.resolve(), target_is_directory=True)
        except OSError:  # no symlinks here (e.g. Windows without developer mode): copy instead
            shutil.copytree(model.dir, target)
    try:
        ModelStore(dest_library).set_active(source.active_id())
    except NoModelError:
        pass  # nothing installed: the self-test reports it


def _wait(signal: object, timeout_ms: int, what: str) -> tuple:
    """Run the event loop until `signal` fires; returns its arguments."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop, got = QEventLoop(), []
    signal.connect(lambda *args: (got.append(args), loop.quit()))
    QTimer.singleShot(timeout_ms, loop.quit)
    loop.exec()
    if not got:
        raise SelfTestError(f"timed out after {timeout_ms / 1000:.0f} s waiting for {what}")
    return got[0]


def _run(library: Path | None, work: Path) -> str:
    from PySide6.QtCore import QSettings

    from core.paths import library_dir
    from desktop.app import create_main_window, make_application

    started = time.perf_counter()
    app = make_application()
    photos = bundled_photos() or write_selftest_photos(work / "photos")
    count = sum(1 for p in photos.iterdir() if p.is_file())
    settings = QSettings(str(work / "settings.ini"), QSettings.IniFormat)
    link_models(library_dir(library), work / "library")
    window = create_main_window(work / "library", settings)
    errors: list[str] = []
    window.controller.error.connect(errors.append)
    window.show()
    try:
        (snapshot,) = _wait(window.controller.ready, TIMEOUT_MS, "the library to open")
        if snapshot.active_model is None:
            raise SelfTestError(f"no model package is installed; build one with: {snapshot.no_model_hint}")
        window.add_paths([photos])
        (outcome,) = _wait(window.controller.index_finished, TIMEOUT_MS, "indexing")
        if outcome.error or outcome.report is None or outcome.report.indexed != count:
            raise SelfTestError(f"indexing {count} photos went wrong: {outcome.error or outcome.report}")
        window.search_edit.setText(QUERY)
        window.run_search()
        while True:  # the browse list may land first; wait for the answer to the query
            (result,) = _wait(window.controller.photos, TIMEOUT_MS, f"results for {QUERY!r}")
            if result.query == QUERY:
                break
        top = window.grid_model.path(0) if window.grid_model.rowCount() else ""
        if not Path(top).name.startswith(EXPECTED):
            raise SelfTestError(f"searching {QUERY!r} put {top or 'nothing'} first, expected the {EXPECTED} photo")
        leaked = [name for name in ("torch", "trainer") if name in sys.modules]
        if leaked:
            raise SelfTestError(f"the app imported {', '.join(leaked)}; the runtime must not")
        score = result.scores[0]
        matches = check_weaker_matches(window, count, TIMEOUT_MS)
        thumbnails = check_thumbnails(window, TIMEOUT_MS)
        tags = check_photo_view_and_tags(window, TIMEOUT_MS)
        if errors:
            raise SelfTestError(f"the window showed errors: {errors}")
    finally:
        window.close()
        app.processEvents()
    real = check_real_library(library_dir(library))
    return (
        f"model={snapshot.active_model} photos={count} query={QUERY!r} top={Path(top).name} score={score:.3f} "
        f"matches={matches} thumbnails={thumbnails} auto_tags={','.join(tags[:3])} tag_edit=ok {real} "
        f"https={'yes' if https_available() else 'no'} platform={app.platformName()} "
        f"seconds={time.perf_counter() - started:.1f}"
    )


def run_self_test(library: Path | None = None) -> int:
    """Run the self-test with the models of `library` (default: the user's library); returns the exit code."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # headless CI and packaging checks
    work = Path(tempfile.mkdtemp(prefix="photoseek-selftest-"))
    try:
        summary = _run(library, work)
    except SelfTestError as exc:
        print(f"SELF-TEST FAILED: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # anything unexpected is a failed self-test, with its type for the bug report
        print(f"SELF-TEST FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"SELF-TEST OK {summary}")
    return 0
