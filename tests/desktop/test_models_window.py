"""The Models window end to end (offscreen Qt, real core): the models table, measuring speed, switching and
removing, getting MobileCLIP from a local HTTP server (licence notice, pause/resume, cancel, torch-free import),
importing a checkpoint file and installing model packages."""

from __future__ import annotations

import shutil
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from core.model_store import ModelStore
from desktop import model_dialogs
from desktop.models_window import ModelsWindow
from tests.desktop.support import WAIT_MS, corpus_size
from tests.support.golden_checkpoints import golden_arrays, save_safetensors
from tests.support.http_files import FileServer
from tests.support.tiny_model import build_tiny_package

S0_URL_KEY = "mobileclip-s0"


def answer_box(qtbot, button_text: str, seen: list[tuple[str, str]]) -> None:
    """Click `button_text` in the next modal message box, recording its name and words in `seen`."""

    def click() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(20, click)
            return
        seen.append((box.objectName(), f"{box.text()}\n{box.informativeText()}"))
        next(b for b in box.buttons() if b.text().replace("&", "") == button_text).click()

    QTimer.singleShot(0, click)


@pytest.fixture(autouse=True)
def unanswered_boxes_fail(qtbot) -> Iterator[None]:
    """A message box that no test answers would block its test for ever: after 60 s it is closed and the test fails."""
    stuck: list[str] = []
    opened: dict[int, float] = {}

    def check() -> None:
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox) and time.monotonic() - opened.setdefault(id(box), time.monotonic()) > 60:
            stuck.append(box.objectName())
            box.reject()

    timer = QTimer(interval=1000, timeout=check)
    timer.start()
    yield
    timer.stop()
    assert not stuck, f"message boxes nobody answered: {stuck}"


def open_models(qtbot, window, *, from_toolbar: bool = False, empty: bool = False) -> ModelsWindow:
    """Open the Models window from the File menu (or the toolbar's button) and wait for its table (unless `empty`:
    no model is installed)."""
    if from_toolbar:
        qtbot.mouseClick(window.toolbar.models_button, Qt.LeftButton)
    else:
        window.menu_actions["models"].trigger()
    models = window.findChild(ModelsWindow)
    qtbot.waitUntil(lambda: models.isVisible() and (empty or models.table.rowCount() > 0), timeout=WAIT_MS)
    return models


def row_text(models: ModelsWindow, model_id: str) -> dict[str, str]:
    """The table's cells of one model, by column title."""
    for r in range(models.table.rowCount()):
        if models.table.item(r, 1).text() == model_id:
            return {models.table.horizontalHeaderItem(c).text(): models.table.item(r, c).text() for c in range(6)}
    raise AssertionError(f"no row for {model_id}")


def ids(models: ModelsWindow) -> list[str]:
    return [models.table.item(r, 1).text() for r in range(models.table.rowCount())]


@pytest.fixture()
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FileServer]:
    """A local server standing in for Apple's: MobileCLIP-S0's official URL points at a golden-filled checkpoint."""
    root = tmp_path / "served"
    root.mkdir()
    save_safetensors(golden_arrays("S0"), root / "mobileclip_s0.pt")
    server = FileServer(root)
    from core.model_download import OFFICIAL_URLS

    monkeypatch.setitem(OFFICIAL_URLS, S0_URL_KEY, server.url("mobileclip_s0.pt"))
    yield server
    server.close()


def test_table_speed_switch_and_remove(
    qtbot, make_window, indexed_library: Path, tiny_package_dir: Path, starter_package_dir: Path
) -> None:
    shutil.copytree(tiny_package_dir, indexed_library / "models" / "tiny")
    window = make_window(indexed_library, watch=False)
    models = open_models(qtbot, window)
    photos = corpus_size()
    starter = row_text(models, "starter")
    assert starter["Name"].endswith("(active)") and starter["Speed here"] == "not measured"
    assert starter["Library coverage"] == f"{photos:,} of {photos:,} photos (100%)"
    tiny = row_text(models, "tiny")
    assert tiny["Library coverage"] == f"0 of {photos:,} photos (0%)" and tiny["Licence"] == "MIT"
    size = sum(p.stat().st_size for p in tiny_package_dir.iterdir())
    assert tiny["Size"] == f"{size / 1e6:,.1f} MB"

    models.table.select("starter")  # the active model cannot be removed: the button says why, and core refuses too
    assert not models.remove_button.isEnabled() and "cannot be removed" in models.remove_button.toolTip()
    answer_box(qtbot, "Remove", seen := [])
    models.remove_selected()
    qtbot.waitUntil(lambda: "is the active model" in models.message.text(), timeout=WAIT_MS)
    assert (indexed_library / "models" / "starter").exists()

    models.table.select("tiny")
    qtbot.mouseClick(models.measure_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: row_text(models, "tiny")["Speed here"].endswith("photos/s"), timeout=WAIT_MS)
    speed = ModelStore(indexed_library).read_setting("measured_speed")["tiny"]
    assert speed > 0 and f"{speed:.1f} photos/s" == row_text(models, "tiny")["Speed here"]

    with qtbot.waitSignal(window.controller.index_finished, timeout=WAIT_MS) as finished:
        qtbot.mouseClick(models.activate_button, Qt.LeftButton)  # the existing switch path: re-embeds in the background
    assert finished.args[0].kind == "reembed" and finished.args[0].error is None
    qtbot.waitUntil(lambda: row_text(models, "tiny")["Name"].endswith("(active)"), timeout=WAIT_MS)
    assert row_text(models, "tiny")["Library coverage"] == f"{photos:,} of {photos:,} photos (100%)"

    models.table.select("starter")
    assert models.remove_button.isEnabled()
    answer_box(qtbot, "Remove", seen)
    qtbot.mouseClick(models.remove_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: ids(models) == ["tiny"], timeout=WAIT_MS)
    assert [name for name, _ in seen] == ["confirmRemoveModel", "confirmRemoveModel"]
    assert (
        not (indexed_library / "models" / "starter").exists() and starter_package_dir.is_dir()
    )  # a link: only it goes
    qtbot.waitUntil(lambda: window.model_combo.count() == 1, timeout=WAIT_MS)
    assert window.model_combo.currentData() == "tiny"


def test_install_package_folder_zip_and_refusals(
    qtbot, make_window, tiny_package_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    library = tmp_path / "bare-library"  # no model at all: installing one is how the user gets going
    window = make_window(library, watch=False)
    assert not window.search_edit.isEnabled()
    models = open_models(qtbot, window, from_toolbar=True, empty=True)
    answer_box(qtbot, "Later", seen := [])
    models.install_package(tiny_package_dir)
    # The list is read again in the background while the activation offer is open: either may come first.
    qtbot.waitUntil(lambda: "tiny" in ids(models) and bool(seen), timeout=WAIT_MS)
    assert seen == [("offerActivation", seen[0][1])] and "Installed the model tiny" in models.message.text()
    assert row_text(models, "tiny")["Library coverage"] == "no photos yet"
    qtbot.waitUntil(window.search_edit.isEnabled, timeout=WAIT_MS)  # the only model is the active one

    zipped = tmp_path / "zipped.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        for path in build_tiny_package(tmp_path / "zipped", "tiny-zipped").iterdir():
            archive.write(path, f"tiny-zipped/{path.name}")
    answer_box(qtbot, "Activate", seen)
    with qtbot.waitSignal(window.controller.index_finished, timeout=WAIT_MS):
        models.install_package(zipped)
    qtbot.waitUntil(lambda: row_text(models, "tiny-zipped")["Name"].endswith("(active)"), timeout=WAIT_MS)

    evil = tmp_path / "evil.zip"
    shutil.copyfile(zipped, evil)
    with zipfile.ZipFile(evil, "a") as archive:
        archive.writestr("../../escaped.txt", "owned")
    models.install_package(evil)
    qtbot.waitUntil(lambda: "was not installed" in models.message.text(), timeout=WAIT_MS)
    assert "points outside its folder" in models.message.text() and "Traceback" not in models.message.text()
    assert not (tmp_path / "escaped.txt").exists() and not (library / "escaped.txt").exists()
    assert sorted(p.name for p in (library / "models").iterdir()) == ["tiny", "tiny-zipped"]
    assert models.install_button.isEnabled()


def test_import_of_a_file_that_would_run_code_is_refused(
    qtbot, make_window, library: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pickle, pwned = tmp_path / "mobileclip_s0.pt", tmp_path / "pwned"
    pickle.write_bytes(b"\x80\x04cos\nsystem\n(S'touch " + str(pwned).encode() + b"'\ntR.")  # calls os.system
    monkeypatch.setattr(model_dialogs, "choose_checkpoint_file", lambda parent: pickle)
    window = make_window(library, watch=False)
    models = open_models(qtbot, window)
    qtbot.mouseClick(models.import_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: "was not installed" in models.message.text(), timeout=WAIT_MS)
    assert "could run code" in models.message.text()
    assert ids(models) == ["starter"] and not pwned.exists() and models.import_button.isEnabled()


def test_get_mobileclip_pause_resume_import_and_activate(qtbot, make_window, library: Path, served: FileServer) -> None:
    window = make_window(library, watch=False)
    models = open_models(qtbot, window)
    offer = next(a for a in models.get_menu.actions() if a.text() == "MobileCLIP-S0")
    served.delay_s = 0.02  # about 5 s for the whole file: time to pause it half-way
    answer_box(qtbot, "Accept and download", seen := [])
    offer.trigger()
    qtbot.waitUntil(lambda: " MB" in models.task.label.text() and models.task.progress.value() > 0, timeout=WAIT_MS)
    name, words = seen[0]
    assert name == "licenceNotice" and "Apple's licence" in words and "not under PhotoSeek's" in words
    assert served.url("mobileclip_s0.pt") in words and "LICENSE_MODELS" in words

    qtbot.mouseClick(models.task.pause_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: models.task.pause_button.text() == "Resume", timeout=WAIT_MS)
    part = library / "checkpoints" / "mobileclip_s0.pt.part"
    kept = part.stat().st_size
    assert 0 < kept < (served.root / "mobileclip_s0.pt").stat().st_size and "Paused" in models.task.label.text()

    served.delay_s = 0.0
    answer_box(qtbot, "Activate", seen)
    with qtbot.waitSignal(window.controller.index_finished, timeout=WAIT_MS) as finished:
        qtbot.mouseClick(models.task.pause_button, Qt.LeftButton)  # Resume: asks for the rest only
    assert served.requests[-1] == ("/mobileclip_s0.pt", f"bytes={kept}-")
    assert [name for name, _ in seen] == ["licenceNotice", "offerActivation"]
    assert finished.args[0].model_id == "mobileclip-s0" and finished.args[0].error is None
    qtbot.waitUntil(lambda: row_text(models, "mobileclip-s0")["Name"].endswith("(active)"), timeout=WAIT_MS)
    assert "Apple" in row_text(models, "mobileclip-s0")["Licence"] and not part.exists()
    card = ModelStore(library).find("mobileclip-s0").card
    assert card.provenance.checkpoint.source_url == served.url("mobileclip_s0.pt")
    assert not next(a for a in models.get_menu.actions() if a.text().startswith("MobileCLIP-S0")).isEnabled()


def test_get_mobileclip_cancel_and_a_failed_download(qtbot, make_window, library: Path, served: FileServer) -> None:
    window = make_window(library, watch=False)
    models = open_models(qtbot, window)
    served.delay_s = 0.05
    answer_box(qtbot, "Cancel", seen := [])  # declining the licence downloads nothing
    models.get_model(models.offers[0])
    assert seen[0][0] == "licenceNotice" and served.requests == [] and not models.task.progress.isVisible()

    answer_box(qtbot, "Accept and download", seen)
    models.get_model(models.offers[0])
    qtbot.waitUntil(lambda: models.task.progress.value() > 0, timeout=WAIT_MS)
    qtbot.mouseClick(models.task.cancel_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: "cancelled" in models.message.text(), timeout=WAIT_MS)
    assert not (library / "checkpoints" / "mobileclip_s0.pt.part").exists()
    assert not (library / "checkpoints" / "mobileclip_s0.pt").exists() and not models.task.progress.isVisible()

    served.delay_s = 0.0
    (served.root / "mobileclip_s0.pt").write_bytes(b"not a checkpoint at all")  # a wrong file at the URL
    answer_box(qtbot, "Accept and download", seen)
    models.get_model(models.offers[0])
    qtbot.waitUntil(lambda: "was not installed" in models.message.text(), timeout=WAIT_MS)
    assert "neither a PyTorch zip checkpoint nor a safetensors file" in models.message.text()
    assert "downloaded file was deleted" in models.message.text()  # the next try downloads again, not this file
    assert not (library / "checkpoints" / "mobileclip_s0.pt").exists()

    (served.root / "mobileclip_s0.pt").unlink()  # the server no longer has the file: HTTP 404, said plainly
    answer_box(qtbot, "Accept and download", seen)
    models.get_model(models.offers[0])
    qtbot.waitUntil(lambda: "The download failed" in models.message.text(), timeout=WAIT_MS)
    said = models.message.text()
    assert "HTTP 404" in said and "Traceback" not in said and "--url" not in said  # no command-line advice here
    assert ids(models) == ["starter"]


def test_closing_the_app_during_a_download_keeps_the_partial_file(
    qtbot, make_window, library: Path, served: FileServer
) -> None:
    window = make_window(library, watch=False)
    models = open_models(qtbot, window)
    served.delay_s = 0.05
    answer_box(qtbot, "Accept and download", [])
    models.get_model(models.offers[0])
    qtbot.waitUntil(lambda: models.task.progress.value() > 0, timeout=WAIT_MS)
    window.close()  # stops the download at the next chunk, and waits for it
    part = library / "checkpoints" / "mobileclip_s0.pt.part"
    kept = part.stat().st_size
    assert kept > 0 and models.runner.pool.activeThreadCount() == 0  # the download thread has ended
    qtbot.wait(300)
    assert part.stat().st_size == kept
    assert not (library / "checkpoints" / "mobileclip_s0.pt").exists()
