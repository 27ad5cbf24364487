"""The virtualised photo grid: a lazy model over 100k rows, the thumbnail loader, and the Qt model contract."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from core.thumbnails import ThumbnailCache
from desktop.photo_grid import PathRole, PhotoGridModel, PhotoGridView, ScoreRole, ThumbStateRole
from desktop.thumbnail_loader import ThumbnailLoader
from tests.photo_corpus import materialize

ROWS = 100_000


class CountingSource:
    """A thumbnail source that records which photos were asked for (fake paths fail like missing files)."""

    def __init__(self, cache: ThumbnailCache | None = None) -> None:
        self.cache = cache
        self.asked: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, path: str) -> Path:
        with self.lock:
            self.asked.append(path)
        if self.cache is None:
            raise FileNotFoundError(path)
        return self.cache.get(path)


@pytest.fixture(scope="module")
def real_photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return materialize(tmp_path_factory.mktemp("grid"), ["chelsea_cat", "coffee", "astronaut"], max_side=600)


def test_model_follows_the_qt_model_contract(qtmodeltester, real_photos: dict[str, Path], tmp_path: Path) -> None:
    loader = ThumbnailLoader(CountingSource(ThumbnailCache(tmp_path)))
    model = PhotoGridModel(loader)
    paths = [str(p) for p in real_photos.values()]
    model.set_photos(paths, [0.9, 0.5, 0.1])
    qtmodeltester.check(model)  # Qt's C++ QAbstractItemModelTester
    assert model.index(1).data(PathRole) == paths[1] and model.index(1).data(ScoreRole) == 0.5
    assert model.index(0).data(Qt.DisplayRole) == Path(paths[0]).name
    assert "score 0.900" in model.index(0).data(Qt.ToolTipRole)
    with pytest.raises(ValueError):
        model.set_photos(paths, [1.0])
    model.set_photos(paths[:1])
    model.append_photos(paths)  # duplicates are skipped
    assert model.paths() == paths and model.row_of(paths[2]) == 2
    assert loader.wait_idle()


def test_loader_serves_real_thumbnails_off_the_gui_thread(qtbot, real_photos: dict[str, Path], tmp_path: Path) -> None:
    gui_thread = threading.get_ident()
    seen_threads: set[int] = set()
    cache = ThumbnailCache(tmp_path)

    def source(path: str) -> Path:
        seen_threads.add(threading.get_ident())
        return cache.get(path)

    loader = ThumbnailLoader(source, cache_items=2)
    cat = str(real_photos["chelsea_cat"])
    assert loader.pixmap(cat, 120) is None  # a miss queues a load and returns at once
    with qtbot.waitSignal(loader.ready, timeout=30_000) as ready:
        pass
    assert ready.args == [cat] and gui_thread not in seen_threads
    pixmap = loader.pixmap(cat, 120)
    assert pixmap is not None and max(pixmap.width(), pixmap.height()) == 120

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    with qtbot.waitSignal(loader.failed, timeout=30_000):
        assert loader.pixmap(str(broken), 120) is None
    assert loader.has_failed(str(broken))
    requests = loader.requests
    assert loader.pixmap(str(broken), 120) is None and loader.requests == requests  # no retry loop

    # The LRU keeps only `cache_items` pixmaps.
    for name in ("coffee", "astronaut"):
        with qtbot.waitSignal(loader.ready, timeout=30_000):
            loader.pixmap(str(real_photos[name]), 120)
    assert loader.pixmap(str(real_photos["astronaut"]), 120) is not None
    before = loader.requests
    assert loader.pixmap(cat, 120) is None and loader.requests == before + 1  # evicted, asked again
    assert loader.wait_idle()


def test_grid_scrolls_through_100k_rows_without_touching_them_up_front(qtbot) -> None:
    source = CountingSource()
    loader = ThumbnailLoader(source)
    model = PhotoGridModel(loader)
    view = PhotoGridView(model)
    qtbot.addWidget(view)
    view.resize(1000, 700)
    view.show()
    qtbot.waitExposed(view)

    started = time.perf_counter()
    model.set_photos([f"/photos/2024/IMG_{i:06d}.jpg" for i in range(ROWS)], None)
    QApplication.processEvents()
    set_seconds = time.perf_counter() - started
    assert model.rowCount() == ROWS
    assert set_seconds < 1.0, f"showing 100k rows took {set_seconds:.2f} s"

    bar = view.verticalScrollBar()
    assert bar.maximum() > 0
    steps: list[float] = []
    for step in range(61):  # top to bottom in 60 jumps, painting each screenful
        began = time.perf_counter()
        bar.setValue(bar.maximum() * step // 60)
        view.viewport().repaint()
        QApplication.processEvents()
        steps.append(time.perf_counter() - began)
    last = view.indexAt(view.viewport().rect().bottomRight() - view.viewport().rect().topLeft() / 2)
    bottom_row = max(view.indexAt(view.viewport().rect().center()).row(), last.row())
    assert bottom_row > ROWS - 200, "the view did not reach the end of the list"

    steps.sort()
    median, worst = steps[len(steps) // 2], steps[-1]
    assert median < 0.05 and worst < 0.25, f"scroll steps: median {median * 1000:.1f} ms, worst {worst * 1000:.1f} ms"
    # Only rows that were on screen were asked for: about 60 screenfuls of ~30 cells, not 100k.
    assert 0 < loader.requests < 5_000
    qtbot.waitUntil(lambda: len(source.asked) > 0, timeout=10_000)
    assert loader.wait_idle()
    on_screen = view.indexAt(view.viewport().rect().center())
    qtbot.waitUntil(lambda: on_screen.data(ThumbStateRole) == "failed", timeout=10_000)  # fake files: broken mark
    print(
        f"100k rows: set {set_seconds * 1000:.0f} ms, scroll median {median * 1000:.1f} ms, worst {worst * 1000:.1f} ms"
    )


def test_painting_keeps_python_singletons_alive(qtbot, tmp_path: Path) -> None:
    """Guards against Qt bindings that drop references to None/True/False (PySide6 6.12.0 on Python 3.11 does,
    and the app then dies after a few thousand paints)."""
    model = PhotoGridModel(ThumbnailLoader(CountingSource()))
    view = PhotoGridView(model)
    qtbot.addWidget(view)
    view.resize(800, 600)
    view.show()
    qtbot.waitExposed(view)
    model.set_photos([f"/nowhere/{i}.jpg" for i in range(500)], [i / 500 for i in range(500)])
    before = {name: sys.getrefcount(obj) for name, obj in (("None", None), ("True", True), ("False", False))}
    for _ in range(40):
        view.viewport().repaint()
        QApplication.processEvents()
    after = {name: sys.getrefcount(obj) for name, obj in (("None", None), ("True", True), ("False", False))}
    lost = {name: before[name] - after[name] for name in before if after[name] < before[name] - 50}
    assert not lost, f"references lost while painting: {lost}"
    assert model.loader.wait_idle()
