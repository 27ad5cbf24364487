"""Small widgets that report state: the indexing progress panel and the inline message bar."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QProgressBar, QPushButton, QSizePolicy, QStyle, QWidget

from desktop.controller import IndexProgress


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
    parts = [f"{progress.done:,} / {progress.total:,} photos"]
    if progress.rate > 0:
        parts.append(f"{progress.rate:.1f} photos/s")
    if progress.eta_seconds is not None and progress.done < progress.total:
        parts.append(f"about {format_duration(progress.eta_seconds)} left")
    return " · ".join(parts)


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
        if progress.total > 0:
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
