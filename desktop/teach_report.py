"""While teaching: a progress dialog with Cancel and the time left. After: the before/after report (held-out
accuracy, what changed per concept, the forgetting check) with Activate and Keep current."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QProgressBar,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.pathtext import display
from desktop.teach_job import TeachProgress

# Share of the whole run each phase takes: on a 60-photo album with the starter, reinforcing took 5 s, training
# (300 steps) 288 s and checking and installing 4 s (bench/teach_from_app.py); more teachers reinforce longer.
PHASE_SPAN = {"album": (0.0, 0.01), "reinforce": (0.01, 0.08), "evaluate": (0.08, 0.1), "train": (0.1, 0.96),
              "export": (0.96, 1.0)}  # fmt: skip


def overall_fraction(beat: TeachProgress) -> float:
    """Where the whole run is (0..1) from one beat of a phase."""
    start, end = PHASE_SPAN.get(beat.phase, (0.0, 1.0))
    inside = beat.step / beat.total if beat.total > 0 else 0.0
    return start + (end - start) * min(1.0, inside)


class TeachProgressDialog(QDialog):
    """Not modal: the app stays usable while the model trains. Closing it is Cancel."""

    cancel_requested = Signal()

    def __init__(self, concepts: int, photos: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("teachProgress")
        self.setWindowTitle("Teaching PhotoSeek")
        self.setMinimumWidth(440)
        self.summary = QLabel(f"Learning {concepts} concepts from {photos} photos. You can keep using PhotoSeek.")
        self.summary.setWordWrap(True)
        self.phase = QLabel("Starting the trainer…")
        self.phase.setObjectName("teachPhase")
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setValue(0)
        self.bar.setTextVisible(False)
        buttons = QDialogButtonBox(QDialogButtonBox.Cancel)
        self.cancel_button = buttons.button(QDialogButtonBox.Cancel)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        for widget in (self.summary, self.phase, self.bar, buttons):
            layout.addWidget(widget)

    def show_progress(self, beat: TeachProgress) -> None:
        self.phase.setText(beat.text())
        self.bar.setValue(round(1000 * overall_fraction(beat)))

    def reject(self) -> None:
        """Cancel (the button, Esc, closing the window): ask the job to stop; the flow closes the dialog."""
        self.cancel_button.setEnabled(False)
        self.phase.setText("Cancelling…")
        self.cancel_requested.emit()


def _pct(value: object) -> str:
    return f"{100 * float(value):.0f}%" if isinstance(value, int | float) else "–"


def forgetting_text(report: dict) -> tuple[str, bool]:
    """The forgetting check in words, and whether the new model forgets more than the limit allows."""
    check = report.get("forgetting")
    if check:
        verdict = "more than the limit allows" if check["forgets"] else "within the limit"
        return (
            f"Other searches (photos outside the album, {check['photos']} checked): found in the top 5 "
            f"{_pct(check['before'])} → {_pct(check['after'])}, {verdict} ({_pct(check['limit'])}).",
            bool(check["forgets"]),
        )
    overlap = report.get("generic", {}).get("generic_overlap@5")
    return (
        f"Everyday concepts: the new model sees {_pct(overlap)} of the same top-5 concepts in the held-out photos "
        "as the current one (100% = nothing forgotten).",
        False,
    )


class TeachReportDialog(QDialog):
    """The before/after report; ``activate_requested(model_id)`` when the user picks Activate."""

    activate_requested = Signal(str)

    def __init__(self, report: dict, taught: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("teachReport")
        self.setWindowTitle("What PhotoSeek Learnt")
        self.resize(520, 440)
        self.model_id = str(report["model_id"])
        before, after = report["before"], report["after"]
        headline = QLabel(
            f"Recognised correctly on {report['val_count']} photos kept aside for checking: "
            f"{_pct(before['accuracy'])} before, {_pct(after['accuracy'])} after "
            f"({report['train_count']} photos taught, {report['steps']} training steps)."
        )
        headline.setObjectName("teachHeadline")
        headline.setWordWrap(True)
        self.concepts = QTreeWidget()
        self.concepts.setObjectName("teachConcepts")
        self.concepts.setHeaderLabels(["Concept", "Before", "After"])
        self.concepts.setRootIsDecorated(False)
        for label in report["labels"]:
            row = QTreeWidgetItem(
                [display(label), _pct(before["per_label"].get(label)), _pct(after["per_label"].get(label))]
            )
            if label.lower() == taught.lower():
                for column in range(3):
                    font = row.font(column)
                    font.setBold(True)
                    row.setFont(column, font)
            self.concepts.addTopLevelItem(row)
        text, self.forgets = forgetting_text(report)
        self.forgetting = QLabel(text)
        self.forgetting.setObjectName("teachForgetting")
        self.forgetting.setWordWrap(True)
        self.note = note = QLabel(
            f"The new model “{display(self.model_id)}” is installed beside the current one. "
            + (
                "Only its text side changed, so activating it re-reads none of your photos"
                if report.get("text_only")
                else "Activate re-reads your photos with it in the background"
            )
            + "; you can go back to the current model at any time."
            + ("\nIt forgets more than the limit allows: activating it is not advised." if self.forgets else "")
        )
        note.setWordWrap(True)
        buttons = QDialogButtonBox()
        self.activate_button = buttons.addButton(
            "Activate Anyway" if self.forgets else "Activate", QDialogButtonBox.AcceptRole
        )
        self.keep_button = buttons.addButton("Keep Current", QDialogButtonBox.RejectRole)
        (self.keep_button if self.forgets else self.activate_button).setDefault(True)
        self.activate_button.clicked.connect(self._activate)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(headline)
        layout.addWidget(self.concepts, 1)
        layout.addWidget(self.forgetting)
        layout.addWidget(note)
        layout.addWidget(buttons)

    def _activate(self) -> None:
        self.activate_requested.emit(self.model_id)
        self.accept()
