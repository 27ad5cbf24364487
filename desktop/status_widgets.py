"""Widgets that report state: the indexing progress panel, the inline message bar, and the status area that
shows the library's size, its model, unreadable files and how each job ended."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QStatusBar,
    QStyle,
    QToolButton,
    QWidget,
)

from desktop.index_jobs import IndexOutcome, IndexProgress, photos_left


def plural(count: int, word: str) -> str:
    """'1 photo', '2,048 photos'."""
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def format_duration(seconds: float) -> str:
    """12 s, 3:05, 1:02:03."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}:{secs:02d}"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def describe_progress(progress: IndexProgress) -> str:
    """The line shown next to the progress bar, e.g. '120 / 480 photos · 14.2 photos/s · about 25 s left'."""
    if progress.kind == "starter":
        return "Building the starter model…"
    if progress.total < 0:
        return "Looking for photos…"
    if progress.total == 0:
        return "Nothing new to index"
    if progress.loading_model and progress.done == 0:
        return f"Loading the model… · {plural(progress.total, 'photo')} to index"
    parts = [f"{progress.done:,} / {progress.total:,} photos"]
    if progress.rate > 0:
        parts.append(f"{progress.rate:.1f} photos/s")
    if progress.eta_seconds is not None and progress.done < progress.total:
        parts.append(f"about {format_duration(progress.eta_seconds)} left")
    return " · ".join(parts)


def describe_stop(report: Any) -> str:
    """The status line after Cancel, e.g. 'Stopped: 32 indexed, 128 left'."""
    line = f"Stopped: {report.indexed:,} indexed, {photos_left(report):,} left"
    return line + (f", {report.failed:,} unreadable" if report.failed else "")


def describe_stop_notice(kind: str, report: Any) -> str:
    """The notice after Cancel: what is kept and how to finish."""
    again = "Add the folder again" if kind == "index" else "Rescan (F5)"
    return (
        f"Indexing stopped: the {plural(report.indexed, 'photo')} indexed so far "
        f"{'is' if report.indexed == 1 else 'are'} kept. {again} to index the {photos_left(report):,} left."
    )


class ProgressPanel(QWidget):
    """Status-bar panel: what runs, a progress bar, rate and time left, and Cancel."""

    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.title = QLabel()
        self.title.setMinimumWidth(self.title.fontMetrics().horizontalAdvance("Indexing photos, holidays…"))
        self.bar = QProgressBar()
        self.bar.setFixedWidth(180)
        self.bar.setTextVisible(False)
        self.detail = QLabel()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop after the current batch; what is indexed so far is kept")
        self.cancel_button.clicked.connect(self._cancel)
        for widget in (self.title, self.bar, self.detail, self.cancel_button):
            layout.addWidget(widget)
        self.hide()

    def start(self, description: str, *, cancellable: bool = True) -> None:
        metrics = self.title.fontMetrics()
        self.title.setText(metrics.elidedText(description, Qt.ElideMiddle, 320))
        self.title.setToolTip(description)
        self.detail.setText("")
        self.bar.setRange(0, 0)  # busy until the first count arrives
        self.cancel_button.setEnabled(True)
        self.cancel_button.setText("Cancel")
        self.cancel_button.setVisible(cancellable)
        self.show()

    def update_progress(self, progress: IndexProgress) -> None:
        if progress.loading_model:
            self.bar.setRange(0, 0)  # busy: no count moves while the model loads
        elif progress.total > 0:
            self.bar.setRange(0, progress.total)
            self.bar.setValue(progress.done)
        elif progress.total == 0:
            self.bar.setRange(0, 1)
            self.bar.setValue(1)
        self.detail.setText(describe_progress(progress))

    def _cancel(self) -> None:
        self.cancel_button.setEnabled(False)
        self.cancel_button.setText("Cancelling…")
        self.cancel_requested.emit()


class MessageBar(QFrame):
    """A dismissable banner above the grid for errors and notices (the UI's answer to a log file)."""

    action_triggered = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.StyledPanel)
        self.setAutoFillBackground(True)
        self.setObjectName("messageBar")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        self.icon = QLabel()
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextSelectableByMouse)  # users copy commands and paths from it
        self.text.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Preferred)
        self.action = QPushButton()
        self.action.clicked.connect(lambda: self.action_triggered.emit(self._action_id))
        self.close_button = QPushButton("Dismiss")
        self.close_button.clicked.connect(self.hide)
        for widget in (self.icon, self.text, self.action, self.close_button):
            layout.addWidget(widget)
        self._action_id = ""
        self._timer = QTimer(self, singleShot=True)
        self._timer.timeout.connect(self.hide)
        self.hide()

    def show_message(
        self, text: str, *, error: bool = False, action: tuple[str, str] | None = None, timeout_ms: int = 0
    ) -> None:
        """Show `text`; `action` = (id, button label) adds a button; `timeout_ms` hides it later."""
        style = self.style()
        icon = QStyle.SP_MessageBoxWarning if error else QStyle.SP_MessageBoxInformation
        size = self.fontMetrics().height() + 4
        self.icon.setPixmap(style.standardIcon(icon).pixmap(size, size))
        self.text.setText(text)
        self.setProperty("error", error)
        self.setBackgroundRole(QPalette.AlternateBase)  # palette roles only: follows light and dark themes
        if action:
            self._action_id = action[0]
            self.action.setText(action[1])
            self.action.show()
        else:
            self.action.hide()
        self.show()
        if timeout_ms:
            self._timer.start(timeout_ms)
        else:
            self._timer.stop()


class StatusArea(QObject):
    """The status bar's content and the notices after each job: progress with Cancel, the number of photos,
    the active model, unreadable files (click for the list), and what indexing, a removal or watching did."""

    errors_requested = Signal()

    def __init__(self, status: QStatusBar, message_bar: MessageBar, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.status = status
        self.message_bar = message_bar
        self.progress = ProgressPanel()
        status.addWidget(self.progress)
        self.errors_button = QToolButton()
        self.errors_button.setAutoRaise(True)
        self.errors_button.setToolTip("Files that could not be indexed, with the reason (Ctrl+E)")
        self.errors_button.clicked.connect(self.errors_requested)
        self.errors_button.hide()
        self.count_label = QLabel("Opening the library…")
        self.model_label = QLabel()
        for widget in (self.errors_button, self.count_label, self.model_label):
            status.addPermanentWidget(widget)

    def show_library(self, snapshot: Any) -> None:
        """Photo count, active model (and the one still answering during a switch), unreadable files."""
        active = next((m for m in snapshot.models if m.id == snapshot.active_model), None)
        self.count_label.setText(plural(snapshot.photo_count, "photo"))
        self.model_label.setText(f"Model: {active.id if active else 'none installed'}")
        if active is not None and snapshot.serving_model not in (None, active.id):
            # A switch is not finished: core keeps answering from the previous model until it is.
            self.model_label.setText(f"Model: {active.id} (searching with {snapshot.serving_model} until embedded)")
        self.model_label.setToolTip(active.name if active else "")
        self.errors_button.setText(f"⚠ {snapshot.error_count:,} unreadable")
        self.errors_button.setVisible(snapshot.error_count > 0)

    def show_live_count(self, count: int) -> None:
        """The number of photos while indexing adds them."""
        self.count_label.setText(plural(count, "photo"))

    def job_started(self, kind: str, description: str) -> None:
        # A temporary message (e.g. "Drop to add…") is painted where the panel sits: one or the other.
        self.status.clearMessage()
        self.progress.start(description, cancellable=kind not in ("starter", "remove"))  # these cannot stop midway

    def job_finished(self, outcome: IndexOutcome) -> None:
        """Hide the progress and say how the job ended (errors themselves come through the controller)."""
        self.progress.hide()
        report = outcome.report
        if outcome.error or report is None:
            return
        if report.cancelled:
            self.message_bar.show_message(describe_stop_notice(outcome.kind, report), timeout_ms=15_000)
        elif report.failed:
            self.message_bar.show_message(
                f"{plural(report.failed, 'file')} could not be read and {'was' if report.failed == 1 else 'were'} "
                "skipped.",
                error=True,
                action=("errors", "Show Details"),
            )
        if outcome.kind == "remove":
            self.status.showMessage(f"Folder removed: {plural(report.removed, 'photo')} forgotten", 10_000)
            return
        if report.cancelled:
            self.status.showMessage(describe_stop(report), 10_000)
            return
        done = {"reembed": "Model switched", "index": "Indexing done", "rescan": "Rescan done", "catchup": "Up to date"}
        done = done.get(outcome.kind, "")
        self.status.showMessage(
            f"{done}: {report.indexed:,} new, {report.unchanged:,} unchanged, {report.removed:,} removed "
            f"in {report.seconds:.1f} s",
            10_000,
        )

    def show_watching(self, roots: list, snapshot: Any) -> None:
        """Warn when a missing library folder keeps the others from being watched (core watches all or none)."""
        missing = [f.path for f in snapshot.folders if not f.exists] if snapshot is not None else []
        if missing and not roots:
            self.message_bar.show_message(
                f"Changes on disk are not followed while {missing[0]} is missing. Reconnect it and rescan (F5), "
                "or remove it from the library.",
                timeout_ms=20_000,
            )

    def disk_changed(self, report: Any) -> None:
        """What the folder watcher picked up."""
        parts = [f"{report.indexed:,} new or changed"] if report.indexed else []
        if report.removed:
            parts.append(f"{report.removed:,} removed")
        if report.failed:
            parts.append(f"{report.failed:,} unreadable")
        if parts:
            self.status.showMessage("Updated from disk: " + ", ".join(parts), 10_000)
