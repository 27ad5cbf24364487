"""The Models window: the installed models (size, licence, speed here, coverage of the library), switching and
removing them, getting Apple's MobileCLIP (licence notice, download with pause/resume/cancel, torch-free import),
importing a checkpoint file and installing a model package made elsewhere. All work runs in the background
(desktop.model_jobs on a JobRunner); switching goes through the controller, which re-embeds with progress."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QHBoxLayout, QLabel, QMenu, QPushButton, QVBoxLayout, QWidget

from desktop import model_dialogs, model_jobs
from desktop.model_jobs import Fetched, Offer, Stopped
from desktop.models_widgets import ModelsTable, TaskRow
from desktop.workers import JobRunner

if TYPE_CHECKING:
    from desktop.controller import AppController
    from desktop.main_window import MainWindow


class ModelsWindow(QDialog):
    """Lists and manages the models of the controller's library (non-modal; one per main window)."""

    def __init__(self, controller: AppController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("modelsWindow")
        self.setWindowTitle("Models")
        self.resize(900, 420)
        self.controller = controller
        self.runner = JobRunner(max_threads=2, parent=self)
        self.offers: list[Offer] = []  # the MobileCLIP checkpoints "Get MobileCLIP…" offers
        self._download: Offer | None = None  # the download in progress or paused
        self._download_job: Any = None
        self._stop_reason: str | None = None  # "pause" or "cancel" while a download is being stopped
        self._busy = False  # an import or install runs (one at a time)

        layout = QVBoxLayout(self)
        intro = QLabel("The models that embed your photos and your searches. Switching re-embeds the library.")
        intro.setWordWrap(True)
        layout.addWidget(intro)
        self.table = ModelsTable()
        self.table.itemSelectionChanged.connect(self._update_buttons)
        layout.addWidget(self.table, 1)

        row_buttons = QHBoxLayout()
        self.activate_button = self._button(row_buttons, "Activate", self.activate_selected)
        self.remove_button = self._button(row_buttons, "Remove…", self.remove_selected)
        self.measure_button = self._button(row_buttons, "Measure speed", self.measure_selected)
        self.measure_button.setToolTip(f"Embed {model_jobs.SPEED_PHOTOS} of your photos with the selected model")
        row_buttons.addStretch(1)
        self.get_button = self._button(row_buttons, "Get MobileCLIP…", None)
        self.get_menu = QMenu(self.get_button)
        self.get_button.setMenu(self.get_menu)
        self.import_button = self._button(row_buttons, "Import a checkpoint file…", self.import_checkpoint)
        self.install_button = self._button(row_buttons, "Install a model package…", None)
        install_menu = QMenu(self.install_button)
        install_menu.addAction("From a folder…", lambda: self.install_package(zipped=False))
        install_menu.addAction("From a .zip file…", lambda: self.install_package(zipped=True))
        self.install_button.setMenu(install_menu)
        layout.addLayout(row_buttons)

        self.task = TaskRow()
        self.task.pause_button.clicked.connect(self.pause_or_resume)
        self.task.cancel_button.clicked.connect(self.cancel_download)
        layout.addWidget(self.task)
        self.message = QLabel()
        self.message.setObjectName("modelsMessage")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextSelectableByMouse)
        layout.addWidget(self.message)
        controller.ready.connect(lambda _snapshot: self.isVisible() and self.refresh())
        self._fill_offers()

    def _button(self, layout: QHBoxLayout, text: str, slot: Any) -> QPushButton:
        button = QPushButton(text)
        if slot is not None:
            button.clicked.connect(lambda _=False: slot())
        layout.addWidget(button)
        return button

    # --- the table ---------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Read the installed models again (in the background) and show them."""
        if self.controller.service is None:
            self.say("The library is still opening.")
            return
        lib = self.controller.service.lib
        self._start("list models", lambda _: model_jobs.model_rows(lib), self._show_rows)

    def _show_rows(self, rows: list[model_jobs.ModelRow]) -> None:
        self.table.show_rows(rows)
        self._fill_offers()
        self._update_buttons()

    def _update_buttons(self) -> None:
        row = self.table.selected_row()
        self.activate_button.setEnabled(row is not None and not row.active)
        in_use = row is not None and (row.active or row.serving)
        self.remove_button.setEnabled(row is not None and row.location == "library" and not in_use)
        self.remove_button.setToolTip(
            "The active model (and the one search uses) cannot be removed: activate another one first"
            if in_use
            else "Delete this model package and its embeddings"
            if row is None or row.location == "library"
            else f"A {row.location} package: PhotoSeek does not delete it"
        )
        self.measure_button.setEnabled(row is not None)
        self.import_button.setEnabled(not self._busy)
        self.install_button.setEnabled(not self._busy)

    def _fill_offers(self) -> None:
        self.get_menu.clear()
        installed = {row.id for row in self.table.rows}
        self.offers = model_jobs.offers()
        for offer in self.offers:
            label = f"{offer.display}" + (" (installed)" if offer.name in installed else "")
            action = self.get_menu.addAction(label, lambda offer=offer: self.get_model(offer))
            action.setEnabled(offer.name not in installed and self._download is None and not self._busy)

    # --- switching, removing, measuring ----------------------------------------------------------

    def activate_selected(self) -> None:
        row = self.table.selected_row()
        if row is None or row.active:
            return
        self.controller.switch_model(row.id)  # re-embeds in the background; the main window shows the progress
        self.say(f"Switching to {row.name}: your photos are embedded with it in the background.")

    def remove_selected(self) -> None:
        row = self.table.selected_row()
        if row is None or not model_dialogs.confirm_remove_model(self, row.name, row.id):
            return
        lib = self.controller.service.lib
        self._start("remove model", lambda _: model_jobs.remove_model(lib, row.id), self._removed)

    def _removed(self, model_id: str) -> None:
        self.say(f"Removed the model {model_id}.")
        self.controller.refresh()

    def measure_selected(self) -> None:
        row = self.table.selected_row()
        if row is None:
            return
        lib = self.controller.service.lib
        self.say(f"Measuring how fast {row.name} embeds your photos…")
        self._start(
            "measure speed", lambda _: model_jobs.measure_speed(lib, row.id), lambda speed: self._measured(row, speed)
        )

    def _measured(self, row: model_jobs.ModelRow, speed: float) -> None:
        self.say(f"{row.name} embeds {speed:.1f} photos per second on this machine.")
        self.refresh()

    # --- getting models ----------------------------------------------------------------------------

    def get_model(self, offer: Offer) -> None:
        """Show Apple's licence notice; on acceptance download the checkpoint, then import it."""
        if self._download is not None or not model_dialogs.accept_apple_licence(self, offer):
            return
        self._download = offer
        self._start_download()

    def _start_download(self) -> None:
        offer, lib = self._download, self.controller.service.lib
        self._stop_reason = None
        self.task.show_task(f"Downloading {offer.display}", pausable=True)
        self._download_job = self._start(
            "download",
            lambda ctx: model_jobs.download(lib, offer, lambda have, total: ctx.report((have, total)), ctx.cancel),
            self._downloaded,
            on_progress=self._download_progress,
            on_error=self._download_failed,
        )
        self._fill_offers()

    def _download_progress(self, value: tuple[int, int | None]) -> None:
        self.task.show_bytes(self._download.display, *value)

    def pause_or_resume(self) -> None:
        """Pause a running download (the partial file is kept) or resume a paused one (HTTP Range)."""
        if self._download_job is not None:
            self._stop_reason = "pause"
            self._download_job.cancel()
        elif self._download is not None:
            self._start_download()

    def cancel_download(self) -> None:
        """Stop the download and delete what was downloaded so far."""
        if self._download_job is not None:
            self._stop_reason = "cancel"
            self._download_job.cancel()
        elif self._download is not None:
            self._download_ended(Stopped(self._download, 0), "cancel")

    def _downloaded(self, result: Fetched | Stopped) -> None:
        self._download_job = None
        if isinstance(result, Stopped):
            self._download_ended(result, self._stop_reason or "pause")
            return
        self._download = None
        if result.reused:
            self.say(f"Using the {result.offer.display} file downloaded before ({result.path.name}).")
        self._run_import(result.path, result.offer.display, result.offer.url, downloaded=True)

    def _download_ended(self, result: Stopped, reason: str) -> None:
        if reason == "cancel":
            model_jobs.discard_partial(self.controller.service.lib, result.offer)
            self._download = None
            self.task.show_task(None)
            self.say(f"The download of {result.offer.display} was cancelled.")
        else:
            self.task.show_paused(result.offer.display, result.kept_bytes)
        self._fill_offers()

    def _download_failed(self, message: str) -> None:
        kept = model_jobs.partial_bytes(self.controller.service.lib, self._download)
        self._download_job, self._download = None, None
        self.task.show_task(None)
        resume = " What was downloaded is kept: getting the model again resumes it." if kept else ""
        self.say(f"The download failed: {message}.{resume}", True)
        self._fill_offers()

    def import_checkpoint(self, path: Path | None = None) -> None:
        """Import a local MobileCLIP checkpoint file (asks for it when `path` is None)."""
        path = path or model_dialogs.choose_checkpoint_file(self)
        if path is not None:
            self._run_import(path, path.name, None, downloaded=False)

    def _run_import(self, path: Path, what: str, source_url: str | None, *, downloaded: bool) -> None:
        lib = self.controller.service.lib
        self._set_busy(True)
        self.task.show_task(f"Importing {what}", busy=True)  # no fraction to show: the steps are named instead
        self._start(
            "import checkpoint",
            lambda ctx: model_jobs.import_checkpoint(lib, path, lambda line: ctx.report(line), source_url),
            self._installed,
            on_progress=lambda line: self.task.label.setText(f"Importing {what}: {line}"),
            on_error=lambda message: self._install_failed(what, message, path if downloaded else None),
        )

    def install_package(self, source: Path | None = None, *, zipped: bool = False) -> None:
        """Install a model package folder or .zip (asks for it when `source` is None)."""
        source = source or model_dialogs.choose_package(self, zipped)
        if source is None:
            return
        lib = self.controller.service.lib
        self._set_busy(True)
        self.task.show_task(f"Checking and installing {source.name}", busy=True)
        self._start(
            "install package",
            lambda _: model_jobs.install_package(lib, source),
            self._installed,
            on_error=lambda message: self._install_failed(source.name, message),
        )

    def _installed(self, model_id: str) -> None:
        self._set_busy(False)
        self.task.show_task(None)
        self.say(f"Installed the model {model_id}.")
        self.controller.refresh()
        self.refresh()
        if model_dialogs.offer_activation(self, model_id):
            self.controller.switch_model(model_id)

    def _install_failed(self, what: str, message: str, downloaded: Path | None = None) -> None:
        self._set_busy(False)
        self.task.show_task(None)
        if downloaded is not None:  # a file that cannot be imported is not kept to be imported again
            downloaded.unlink(missing_ok=True)
            message += ". The downloaded file was deleted: getting the model again downloads it anew"
        self.say(f"{what} was not installed: {message}", True)

    # --- plumbing ----------------------------------------------------------------------------------

    def _set_busy(self, busy: bool) -> None:
        self._busy = busy
        self._update_buttons()
        self._fill_offers()

    def say(self, text: str, error: bool = False) -> None:
        """Tell the user what happened, in plain words (errors in red)."""
        self.message.setStyleSheet("color: #b00020;" if error else "")
        self.message.setText(text)

    def _start(self, name: str, fn: Any, on_success: Any, **callbacks: Any) -> Any:
        callbacks.setdefault("on_error", lambda message: self.say(message, True))
        return self.runner.start(name, fn, on_success=on_success, **callbacks)

    def shutdown(self, timeout_ms: int = 15_000) -> bool:
        """Stop the background work (a download keeps its partial file for next time) and wait for it."""
        return self.runner.shutdown(timeout_ms)


def show_models_window(main: MainWindow) -> ModelsWindow:
    """Open (or bring up) the main window's Models window."""
    window = main.findChild(ModelsWindow)
    if window is None:
        window = ModelsWindow(main.controller, main)
    window.show()
    window.raise_()
    window.activateWindow()
    window.refresh()
    return window
