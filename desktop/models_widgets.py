"""Widgets of the Models window: the table of installed models and the row that shows a running task
(a download with Pause/Resume and Cancel, or an import)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from desktop.model_jobs import ModelRow

COLUMNS = ("Name", "Id", "Size", "Licence", "Speed here", "Library coverage")
MB = 1_000_000
STEPS = 1000  # the progress bar counts in thousandths: byte counts overflow its int range


def coverage_text(row: ModelRow) -> str:
    if row.photos == 0:
        return "no photos yet"
    return f"{row.embedded:,} of {row.photos:,} photos ({100 * row.embedded / row.photos:.0f}%)"


def row_cells(row: ModelRow) -> tuple[str, ...]:
    """The table's texts for one model, in COLUMNS order."""
    name = f"{row.name} (active)" if row.active else row.name
    if row.serving and not row.active:
        name += " (search uses it until the active one is done)"
    speed = f"{row.speed:.1f} photos/s" if row.speed is not None else "not measured"
    return (name, row.id, f"{row.size_bytes / MB:,.1f} MB", row.licence, speed, coverage_text(row))


class ModelsTable(QTableWidget):
    """One row per installed model, the active one in bold; selection by model id."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, len(COLUMNS), parent)
        self.setObjectName("modelsTable")
        self.setHorizontalHeaderLabels(COLUMNS)
        self.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.setSelectionMode(QAbstractItemView.SingleSelection)
        self.verticalHeader().hide()
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.rows: list[ModelRow] = []

    def show_rows(self, rows: list[ModelRow]) -> None:
        """Show these models, keeping the selected one selected."""
        selected = self.selected_id()
        self.rows = rows
        self.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, text in enumerate(row_cells(row)):
                item = QTableWidgetItem(text)
                item.setData(Qt.UserRole, row.id)
                if row.active:
                    font = QFont(item.font())
                    font.setBold(True)
                    item.setFont(font)
                self.setItem(r, c, item)
            if row.id == selected:
                self.selectRow(r)

    def selected_id(self) -> str | None:
        items = self.selectedItems()
        return items[0].data(Qt.UserRole) if items else None

    def selected_row(self) -> ModelRow | None:
        return next((row for row in self.rows if row.id == self.selected_id()), None)

    def select(self, model_id: str) -> None:
        """Select a model's row (as a click would)."""
        for r, row in enumerate(self.rows):
            if row.id == model_id:
                self.selectRow(r)


class TaskRow(QWidget):
    """What runs now: a label, a progress bar, and Pause/Resume and Cancel for a download. Hidden when idle."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.label = QLabel()
        self.progress = QProgressBar()
        self.progress.setObjectName("modelProgress")
        self.pause_button = QPushButton("Pause")
        self.cancel_button = QPushButton("Cancel")
        layout.addWidget(self.label, 1)
        layout.addWidget(self.progress, 1)
        layout.addWidget(self.pause_button)
        layout.addWidget(self.cancel_button)
        self.show_task(None)

    def show_task(self, text: str | None, *, pausable: bool = False, busy: bool = False) -> None:
        """Show a task (None: hide the row); `busy`: a bar without a fraction, for work whose steps are named."""
        self.setVisible(text is not None)
        self.pause_button.setVisible(pausable)
        self.cancel_button.setVisible(pausable)
        self.pause_button.setText("Pause")
        self.progress.setRange(0, 0 if busy else STEPS)
        self.progress.setValue(0)
        self.label.setText(text or "")

    def show_bytes(self, what: str, have: int, total: int | None) -> None:
        """A download's progress: bytes so far of the total (when the server said it)."""
        if total:
            self.progress.setRange(0, STEPS)
            self.progress.setValue(int(STEPS * have / total))
        self.label.setText(f"Downloading {what}: {have / MB:,.1f}" + (f" of {total / MB:,.1f} MB" if total else " MB"))

    def show_paused(self, what: str, kept_bytes: int) -> None:
        self.pause_button.setText("Resume")
        self.label.setText(f"Paused: {kept_bytes / MB:,.1f} MB of {what} downloaded")
