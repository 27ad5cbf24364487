"""Teach from the app, end to end: photos selected in the real grid become named concepts in the library's album,
the trainer fine-tunes the active model in a child process (small settings through PHOTOSEEK_TEACH_ARGS, as a
user could set them), the report offers Activate (the app's model switch), and a second concept trains from the
model the first made, each named by its concepts in the Models window. Cancel leaves nothing installed; too few
examples and a missing trainer say what to do."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from PySide6.QtCore import QItemSelectionModel, Qt

from core.model_store import ModelStore
from desktop.main_window import MainWindow
from desktop.teach_album import TeachAlbum
from desktop.teach_job import EXTRA_ARGS_ENV
from tests.desktop.support import STALL_LIMIT_S, WAIT_MS, Heartbeat, wait_for_query
from tests.desktop.test_models_window import open_models, row_text
from tests.photo_corpus import materialize

pytest.importorskip("torch")  # the trainer runs as a child process of the app

TRAIN_MS = 600_000  # a fine-tune on a loaded 2-core machine; a hang still fails
SMALL = "--text-only --steps 2 --batch-size 4 --augmentations 2 --val-fraction 0.5"  # the app's option, small


def select_photos(window: MainWindow, names: list[str]) -> None:
    """Select the grid's photos with these file stems, as a Ctrl+click on each would."""
    grid, model = window.grid, window.grid_model
    grid.clearSelection()
    rows = [row for row in range(model.rowCount()) if Path(model.path(row)).stem in names]
    assert len(rows) == len(names), f"not all of {names} are in the grid"
    for row in rows:
        grid.selectionModel().select(model.index(row, 0), QItemSelectionModel.Select)


def teach(qtbot, window: MainWindow, names: list[str], concept: str, *, train: bool, from_grid: bool = False) -> None:
    """Name a concept for these photos through the Photo menu or (``from_grid``) the grid's context menu."""
    select_photos(window, names)
    if from_grid:  # right-click one of the selected photos: the selection stays whole
        grid = window.grid
        row = grid.selectionModel().selectedIndexes()[-1]
        grid.customContextMenuRequested.emit(grid.visualRect(row).center())
        action = next(a for a in grid.context_menu.actions() if a.text() == "Teach a Concept…")
        grid.context_menu.close()
        action.trigger()
    else:
        window.menu_actions["teach"].trigger()
    dialog = window.teach.dialog
    assert dialog is not None and dialog.isVisible() and len(dialog.photos) == len(names)
    dialog.concept_edit.setCurrentText(concept)
    button = dialog.train_button if train else dialog.add_button
    assert button.isEnabled(), dialog.status.text()
    qtbot.mouseClick(button, Qt.LeftButton)


def digest(path: Path) -> tuple[str, float]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime


def test_teaching_two_concepts_then_a_third_activates_and_keeps_the_lineage(
    qtbot, make_window, indexed_library: Path, indexed: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(EXTRA_ARGS_ENV, SMALL)
    window = make_window(indexed_library)
    wait_for_query(qtbot, window, "")
    originals = {p: digest(p) for p in indexed[0].iterdir()}

    teach(qtbot, window, ["handwritten_math", "book_page"], "nonna", train=False, from_grid=True)
    album = TeachAlbum(indexed_library)
    assert album.concepts() == {"nonna": 2} and "Added to “nonna”" in window.message_bar.text.text()
    select_photos(window, ["hubble_deep_field"])
    window.menu_actions["teach"].trigger()
    dialog = window.teach.dialog
    dialog.concept_edit.setCurrentText("kepler")
    assert not dialog.train_button.isEnabled()  # one photo of the new concept is not enough yet
    assert "1 more photo of “kepler”" in dialog.status.text()
    dialog.reject()

    with Heartbeat() as beat, qtbot.waitSignal(window.teach.finished, timeout=TRAIN_MS) as done:
        teach(qtbot, window, ["hubble_deep_field", "moon_surface"], "kepler", train=True)
        assert window.teach.progress_dialog.isVisible()
    print(f"\nGUI: longest gap between 10 ms timer ticks while teaching: {1000 * beat.longest:.0f} ms "
          f"({beat.ticks} ticks)")  # fmt: skip
    assert beat.ticks > 100 and beat.longest < STALL_LIMIT_S  # the trainer is a child process: the GUI never waits
    outcome = done.args[0]
    assert outcome.error is None and not outcome.cancelled, outcome.log
    report = outcome.report
    assert report["model_id"] == "taught-1" and report["base_id"] == "starter"
    assert report["labels"] == ["kepler", "nonna"] and report["steps"] == 2
    assert {p: digest(p) for p in indexed[0].iterdir()} == originals  # the user's photos are untouched

    store = ModelStore(indexed_library)
    card = store.load("taught-1").card  # installed, every file's hash checked
    assert card.provenance.base.id == "starter" and card.provenance.album.labels == ("kepler", "nonna")
    shown = window.teach.report_dialog
    assert shown.isVisible() and shown.concepts.topLevelItemCount() == 2
    assert shown.concepts.topLevelItem(0).font(0).bold()  # the concept just taught stands out
    assert "top-5 concepts" in shown.forgetting.text() and "re-reads none of your photos" in shown.note.text()
    assert store.active_id() == "starter"

    with qtbot.waitSignal(window.controller.index_finished, timeout=WAIT_MS) as switched:
        qtbot.mouseClick(shown.activate_button, Qt.LeftButton)
    assert switched.args[0].kind == "reembed" and switched.args[0].error is None
    assert ModelStore(indexed_library).active_id() == "taught-1"

    with qtbot.waitSignal(window.teach.finished, timeout=TRAIN_MS) as done:
        teach(qtbot, window, ["brick_wall", "chinese_pagoda"], "oldtown", train=True)
    report = done.args[0].report
    assert report is not None, done.args[0].log
    assert report["model_id"] == "taught-2" and report["base_id"] == "taught-1"
    card = ModelStore(indexed_library).load("taught-2").card
    assert [step.id for step in card.provenance.lineage] == ["starter", "taught-1"]
    assert card.provenance.album.labels == ("kepler", "nonna", "oldtown")

    # The Models window tells the two apart by what each was taught, the newest concept last.
    models = open_models(qtbot, window)
    assert row_text(models, "taught-1")["Name"] == "PhotoSeek Starter + 'kepler', 'nonna' (active)"
    assert row_text(models, "taught-2")["Name"] == "PhotoSeek Starter + 'kepler', 'nonna', 'oldtown'"


def test_cancel_stops_the_trainer_and_installs_nothing(
    qtbot, make_window, library: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(EXTRA_ARGS_ENV, "--steps 400 --batch-size 4 --augmentations 2")
    album = TeachAlbum(library)
    photos = materialize(tmp_path / "photos", ["coffee", "book_page", "moon_surface", "retina_fundus"], max_side=256)
    album.add("cups", [photos["coffee"], photos["book_page"]])
    album.add("space", [photos["moon_surface"], photos["retina_fundus"]])
    window = make_window(library)
    window.menu_actions["teach"].trigger()  # nothing selected: train on the album as it is
    dialog = window.teach.dialog
    assert dialog.train_button.text() == "Train" and dialog.train_button.isEnabled()
    qtbot.mouseClick(dialog.train_button, Qt.LeftButton)
    job = window.teach.job
    beats: list = []
    job.progress.connect(beats.append)
    qtbot.waitUntil(lambda: any(b.phase == "train" and b.step >= 1 for b in beats), timeout=TRAIN_MS)
    assert "Training: step" in window.teach.progress_dialog.phase.text()

    with qtbot.waitSignal(window.teach.finished, timeout=WAIT_MS) as done:
        qtbot.mouseClick(window.teach.progress_dialog.cancel_button, Qt.LeftButton)
    assert done.args[0].cancelled and done.args[0].report is None
    assert not job.running
    assert [m.id for m in ModelStore(library).list()] == ["starter"]
    assert sorted(p.name for p in (library / "models").iterdir()) == ["starter"]  # no staged package either
    assert "nothing was installed" in window.message_bar.text.text()
    assert album.concepts() == {"cups": 2, "space": 2}  # the album stays for the next try


def test_too_few_examples_say_how_many_more_are_needed(
    qtbot, make_window, indexed_library: Path, tmp_path: Path
) -> None:
    window = make_window(indexed_library)
    wait_for_query(qtbot, window, "")
    select_photos(window, ["chelsea_cat"])
    window.menu_actions["teach"].trigger()
    dialog = window.teach.dialog
    assert not dialog.add_button.isEnabled()  # no name yet
    dialog.concept_edit.setCurrentText("Miso")
    status = dialog.status.text()
    assert "1 more photo of “Miso”" in status and "1 more concept" in status
    assert dialog.add_button.isEnabled() and not dialog.train_button.isEnabled()
    folder = tmp_path / "more"
    materialize(folder / "sub", ["coffee"], max_side=128)  # a folder's photos, sub-folders included
    dialog.add_folder(folder)
    assert len(dialog.photos) == 2 and "more photo" not in dialog.status.text()
    assert "1 more concept" in dialog.status.text() and not dialog.train_button.isEnabled()
    assert dialog.album_list.topLevelItem(0).text(1) == "2"
    dialog.concept_edit.setCurrentText("a/b")
    assert "cannot contain" in dialog.status.text() and not dialog.add_button.isEnabled()


def test_without_the_trainer_the_action_says_what_to_install(
    make_window, indexed_library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("desktop.library_service.trainer_available", lambda: False)  # as in the packaged app
    window = make_window(indexed_library)
    window.menu_actions["teach"].trigger()
    assert window.teach.dialog is None
    message = window.message_bar.text.text()
    assert window.message_bar.isVisibleTo(window) and "needs PhotoSeek's model trainer" in message
    assert 'pip install -e ".[train]"' in message


def test_a_trainer_error_is_shown_in_its_words(
    qtbot, make_window, library: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(EXTRA_ARGS_ENV, "--val-fraction 1.5")  # a setting the trainer refuses
    album = TeachAlbum(library)
    photos = materialize(tmp_path / "photos", ["coffee", "book_page", "moon_surface", "retina_fundus"], max_side=128)
    album.add("cups", [photos["coffee"], photos["book_page"]])
    album.add("space", [photos["moon_surface"], photos["retina_fundus"]])
    window = make_window(library)
    window.menu_actions["teach"].trigger()
    with qtbot.waitSignal(window.teach.finished, timeout=TRAIN_MS) as done:
        qtbot.mouseClick(window.teach.dialog.train_button, Qt.LeftButton)
    assert "validation fraction" in done.args[0].error and done.args[0].report is None
    message = window.message_bar.text.text()
    assert message.startswith("Teaching stopped:") and "validation fraction" in message
    assert window.teach.report_dialog is None and not window.teach.running
    assert [m.id for m in ModelStore(library).list()] == ["starter"]
