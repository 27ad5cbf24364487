"""Teach from the app: photos chosen in the grid (or a folder) -> a named concept in the library's album -> a
fine-tune of the active model in a child process -> the report, with Activate (the app's model switch) or Keep
current. Several concepts can be taught one after another: each run learns every concept of the album and starts
from the model active at that moment (the trainer keeps the lineage in the new model's card)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from core.model_store import ModelStore
from core.pathtext import display
from desktop.teach_album import TeachAlbum, concept_label
from desktop.teach_dialog import TeachDialog
from desktop.teach_job import EXTRA_ARGS_ENV, TeachJob, TeachOutcome, next_model_id
from desktop.teach_report import TeachProgressDialog, TeachReportDialog

if TYPE_CHECKING:
    from desktop.main_window import MainWindow

TRAINER_MISSING = (
    "Teaching needs PhotoSeek's model trainer (PyTorch), which this copy of PhotoSeek does not include. Install "
    'PhotoSeek from its source with the trainer (pip install -e ".[train]", see the README) and start it from '
    "there; your library and the concepts taught so far stay as they are."
)


class TeachFlow(QObject):
    """Owns the Teach dialogs and the running job for one main window (one job at a time)."""

    finished = Signal(object)  # TeachOutcome, after the report (or the error) is shown

    def __init__(self, window: MainWindow, extra_args: list[str] | None = None) -> None:
        super().__init__(window)
        self.window = window
        self.controller = window.controller
        self.album = TeachAlbum(self.controller.library)
        self.extra_args = extra_args  # `finetune` options (None: the environment's, else the app's; see teach_job)
        self.dialog: TeachDialog | None = None
        self.progress_dialog: TeachProgressDialog | None = None
        self.report_dialog: TeachReportDialog | None = None
        self.job: TeachJob | None = None
        self._taught = ""

    @property
    def running(self) -> bool:
        return self.job is not None

    def start(self, photos: list[str] | None = None) -> None:
        """Open the Teach dialog for ``photos`` (the grid's selection; none: a folder, or the album as it is)."""
        snapshot = self.controller.snapshot
        if snapshot is not None and not snapshot.trainer_available:
            self._say(TRAINER_MISSING, error=True)
            return
        if self.running:
            self._say("PhotoSeek is already learning; wait for it to finish or cancel it first.")
            return
        if snapshot is None or snapshot.active_model is None:
            self._say("Teaching starts from the active model: wait for the library to open, or install a model "
                      "first.", error=True)  # fmt: skip
            return
        self.dialog = TeachDialog(self.album, [Path(p) for p in photos or []], self.window)
        self.dialog.accepted.connect(self._dialog_accepted)
        self.dialog.open()

    def _dialog_accepted(self) -> None:
        dialog = self.dialog
        if dialog is None:
            return
        self._taught = concept_label(self.album.folder_for(dialog.concept())) if dialog.concept() else ""
        failed = ""
        if dialog.photos:
            result = self.album.add(dialog.concept(), dialog.photos)
            if result.failed:
                path, reason = result.failed[0]
                failed = f" {len(result.failed)} photo(s) could not be added (first: {display(str(path))}: {reason})."
        if not dialog.train_requested:
            self._say(f"Added to “{self._taught}”.{failed} Teach more concepts, then choose Train.", error=bool(failed))
            return
        if failed:
            self._say(failed.strip(), error=True)
        shortfall = self.album.shortfall()
        if not shortfall.ready:  # a photo could not be added after all
            self._say(f"Not enough examples to train yet. {shortfall.message()}", error=True)
            return
        self.train()

    def train(self) -> None:
        """Fine-tune the active model on the whole album in a child process."""
        library = self.controller.library
        base = ModelStore(library).active_id()  # now, not the last snapshot: a switch may have just finished
        try:
            self.job = TeachJob(library, self.album.root, base, next_model_id(library, self.album.name),
                                self.extra_args, parent=self)  # fmt: skip
        except ValueError as exc:  # PHOTOSEEK_TEACH_ARGS that are not shell words
            self._say(f"{EXTRA_ARGS_ENV} cannot be read: {exc}", error=True)
            return
        counts = self.album.concepts()
        self.progress_dialog = TeachProgressDialog(len(counts), sum(counts.values()), self.window)
        self.progress_dialog.cancel_requested.connect(self.job.cancel)
        self.job.progress.connect(self.progress_dialog.show_progress)
        self.job.finished.connect(self._job_finished)
        self.progress_dialog.show()
        self.job.start()

    def shutdown(self) -> None:
        """The window closes: stop a running job now (nothing it made stays installed)."""
        if self.job is not None:
            self.job.stop_now()

    def _job_finished(self, outcome: TeachOutcome) -> None:
        self.job = None
        if self.progress_dialog is not None:
            self.progress_dialog.hide()
            self.progress_dialog.deleteLater()
            self.progress_dialog = None
        if outcome.cancelled:
            self._say("Teaching cancelled; nothing was installed.")
        elif outcome.error:
            self._say(f"Teaching stopped: {outcome.error}", error=True)
        else:
            self.controller.refresh()  # the model list gains the new model
            self.report_dialog = TeachReportDialog(outcome.report, self._taught, self.window)
            self.report_dialog.activate_requested.connect(self.controller.switch_model)
            self.report_dialog.open()
        self.finished.emit(outcome)

    def _say(self, text: str, error: bool = False) -> None:
        self.window.message_bar.show_message(text, error=error)
