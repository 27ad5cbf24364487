"""The first thing a new user sees: where to drop photos, and what to do when no model is installed."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont, QIcon
from PySide6.QtWidgets import QLabel, QPushButton, QVBoxLayout, QWidget

DROP_TITLE = "Drop a folder of photos here"
DROP_SUBTITLE = (
    "PhotoSeek indexes them on this computer, then finds photos from what you type,\n"
    "like “a cat on a sofa” or “sunset over the sea”. Nothing leaves your machine."
)


class EmptyState(QWidget):
    """Centred invitation to drop a folder, with an Add Folder button and a no-model notice."""

    add_folder_requested = Signal()
    build_model_requested = Signal()

    def __init__(self, icon: QIcon, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("emptyState")
        layout = QVBoxLayout(self)
        layout.addStretch(2)
        self.picture = QLabel(alignment=Qt.AlignCenter)
        self.picture.setPixmap(icon.pixmap(112, 112))
        self.title = QLabel(DROP_TITLE, alignment=Qt.AlignCenter)
        font = QFont(self.title.font())
        font.setPointSizeF(font.pointSizeF() * 1.6)
        font.setBold(True)
        self.title.setFont(font)
        self.subtitle = QLabel(DROP_SUBTITLE, alignment=Qt.AlignCenter)
        self.add_button = QPushButton("Add Folder…")
        self.add_button.setToolTip("Choose a folder of photos to index (Ctrl+O)")
        self.add_button.clicked.connect(self.add_folder_requested)
        self.model_notice = QLabel(alignment=Qt.AlignCenter)
        self.model_notice.setWordWrap(True)
        self.model_notice.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.build_button = QPushButton("Build the starter model")
        self.build_button.clicked.connect(self.build_model_requested)
        for widget in (self.picture, self.title, self.subtitle):
            layout.addWidget(widget)
        layout.addSpacing(12)
        layout.addWidget(self.add_button, alignment=Qt.AlignCenter)
        layout.addSpacing(18)
        layout.addWidget(self.model_notice)
        layout.addWidget(self.build_button, alignment=Qt.AlignCenter)
        layout.addStretch(3)
        self.set_model_state(has_model=True)

    def set_indexing(self, indexing: bool) -> None:
        """While the first photos are indexed, say so instead of inviting a drop."""
        if indexing:
            self.title.setText("Indexing your photos…")
            self.subtitle.setText("They appear here as soon as the first ones are done.")
        else:
            self.title.setText(DROP_TITLE)
            self.subtitle.setText(DROP_SUBTITLE)
        self.add_button.setVisible(not indexing)

    def set_model_state(self, *, has_model: bool, trainer_available: bool = False, hint: str = "") -> None:
        """Show nothing, a Build button, or `hint` (why no model can be built and what to do), depending on what is
        installed."""
        if has_model:
            self.model_notice.hide()
            self.build_button.hide()
            return
        if trainer_available:
            self.model_notice.setText(
                "No search model is installed yet. PhotoSeek can build its starter model now "
                "from packages already on this computer (a few minutes)."
            )
            self.build_button.show()
        else:
            self.model_notice.setText(hint)
            self.build_button.hide()
        self.model_notice.show()
