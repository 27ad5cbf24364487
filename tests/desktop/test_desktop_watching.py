"""Library folders are watched while the app runs: photos copied in or deleted show up in the grid and counts
(real files, real starter model, offscreen Qt)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from core.index_db import PhotoIndex
from tests.desktop.support import WAIT_MS, drop_paths, names, wait_for_query
from tests.photo_corpus import materialize

APPEAR_LIMIT_S = 15.0  # debounce (1 s) + indexing one photo + a new query, on a loaded 2-core machine


def test_a_photo_copied_into_a_watched_folder_appears_in_the_grid(
    qtbot, make_window, library: Path, tmp_path: Path
) -> None:
    originals = materialize(tmp_path / "originals", ["chelsea_cat", "coffee", "astronaut"], max_side=256)
    folder = tmp_path / "watched"
    folder.mkdir()
    for name in ("coffee", "astronaut"):
        shutil.copyfile(originals[name], folder / f"{name}.jpg")
    window = make_window(library)
    with qtbot.waitSignal(window.controller.watching, timeout=WAIT_MS, check_params_cb=lambda roots: bool(roots)):
        drop_paths(window, [folder])  # indexing it, then watching it
    wait_for_query(qtbot, window, "")
    qtbot.waitUntil(lambda: sorted(names(window)) == ["astronaut", "coffee"], timeout=WAIT_MS)

    copied = folder / "new_cat.jpg"
    started = time.perf_counter()
    shutil.copyfile(originals["chelsea_cat"], copied)
    qtbot.waitUntil(lambda: str(copied) in window.grid_model.paths(), timeout=round(APPEAR_LIMIT_S * 1000))
    appeared = time.perf_counter() - started
    print(f"a copied photo appeared in the grid after {appeared:.1f} s")
    qtbot.waitUntil(lambda: window.count_label.text() == "3 photos", timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.sidebar.folder_row_text(str(folder)) == ("watched", "3"), timeout=WAIT_MS)
    assert "Updated from disk: 1 new or changed" in window.statusBar().currentMessage()
    # It was indexed for search and tagged, not only listed.
    window.search_edit.setText("a cat")
    window.run_search()
    wait_for_query(qtbot, window, "a cat")
    assert names(window)[0] == "new_cat"
    assert ("cat", 1) in window.sidebar.tag_rows()

    # Deleting a photo on disk takes it out of the library and the grid.
    (folder / "coffee.jpg").unlink()
    qtbot.waitUntil(lambda: "coffee" not in names(window), timeout=round(APPEAR_LIMIT_S * 1000))
    qtbot.waitUntil(lambda: window.count_label.text() == "2 photos", timeout=WAIT_MS)
    with PhotoIndex(library) as index:
        assert sorted(Path(p).name for _, p in index.photos_after(0)) == ["astronaut.jpg", "new_cat.jpg"]

    window.close()  # stops the watcher: later changes are not picked up by a closed window
    assert window.controller.service.watching == []
