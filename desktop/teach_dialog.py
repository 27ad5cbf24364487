"""The Teach dialog: name a concept for the chosen photos (or a folder's), see the album it joins, and whether
the album has enough examples to train on yet (and if not, how many more photos it needs)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.pathtext import display
from desktop.teach_album import ConceptNameError, TeachAlbum, concept_label, photos_in


class TeachDialog(QDialog):
    """Collects a concept name and photos. ``train_requested`` tells whether the user chose "Add and Train"
    (else "Add to Album"); the caller adds the photos once the dialog is accepted."""

    def __init__(self, album: TeachAlbum, photos: list[Path], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("teachDialog")
        self.setWindowTitle("Teach a Concept")
        self.album = album
        self.photos = list(photos)
        self.train_requested = False
        self.resize(520, 460)

        self.intro = QLabel()
        self.intro.setWordWrap(True)
        self.concept_edit = QComboBox()
        self.concept_edit.setObjectName("conceptName")
        self.concept_edit.setEditable(True)
        self.concept_edit.addItems([concept_label(folder) for folder in album.concepts()])
        self.concept_edit.setCurrentText("")
        self.concept_edit.lineEdit().setPlaceholderText("a word for what these photos show, e.g. Miso")
        self.concept_edit.editTextChanged.connect(self._update)
        self.folder_button = QPushButton("Add Photos from a Folder…")
        self.folder_button.clicked.connect(self._choose_folder)
        self.album_list = QTreeWidget()
        self.album_list.setObjectName("albumConcepts")
        self.album_list.setHeaderLabels(["Concept", "Photos"])
        self.album_list.setRootIsDecorated(False)
        self.status = QLabel()
        self.status.setObjectName("teachStatus")
        self.status.setWordWrap(True)

        buttons = QDialogButtonBox()
        self.add_button = buttons.addButton("Add to Album", QDialogButtonBox.AcceptRole)
        self.train_button = buttons.addButton("Add and Train", QDialogButtonBox.AcceptRole)
        buttons.addButton(QDialogButtonBox.Cancel)
        self.add_button.clicked.connect(lambda: self._finish(train=False))
        self.train_button.clicked.connect(lambda: self._finish(train=True))
        buttons.rejected.connect(self.reject)

        form = QFormLayout()
        form.addRow("Concept:", self.concept_edit)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.folder_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.intro)
        layout.addLayout(form)
        layout.addLayout(row)
        layout.addWidget(QLabel(f"Album “{album.name}” (every training run learns all its concepts):"))
        layout.addWidget(self.album_list, 1)
        layout.addWidget(self.status)
        layout.addWidget(buttons)
        self._update()

    def concept(self) -> str:
        return self.concept_edit.currentText().strip()

    def add_folder(self, folder: Path) -> None:
        """Add the photos under ``folder`` to the ones being taught."""
        known = set(self.photos)
        self.photos += [p for p in photos_in(Path(folder)) if p not in known]
        self._update()

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Teach the Photos of a Folder")
        if folder:
            self.add_folder(Path(folder))

    def _finish(self, *, train: bool) -> None:
        self.train_requested = train
        self.accept()

    def _update(self) -> None:
        count = len(self.photos)
        self.intro.setText(
            f"Teach PhotoSeek a word for {'this photo' if count == 1 else f'these {count} photos'}: name what they "
            "show, and search will find it."
            if count
            else "Choose photos in the grid first, or add the photos of a folder. You can also train on the album "
            "as it is."
        )
        concept, error = self.concept(), ""
        try:
            counts = self.album.counts_with(concept, self.photos) if self.photos else self.album.concepts()
        except ConceptNameError as exc:
            counts, error = self.album.concepts(), str(exc)
        if self.photos and not concept:
            error = "Name the concept these photos show."
        self._show_counts(counts)
        shortfall = self.album.shortfall(counts)
        self.add_button.setEnabled(not error and bool(self.photos))
        self.train_button.setEnabled(not error and shortfall.ready)
        self.train_button.setText("Add and Train" if self.photos else "Train")
        if error:
            self.status.setText(error)
        elif not shortfall.ready:
            self.status.setText(f"Not enough examples to train yet. {shortfall.message()}")
        else:
            total = sum(counts.values())
            self.status.setText(
                f"Ready to train on {len(counts)} concepts, {total} photos. Training runs in the background and "
                "takes a few minutes; your photos are not changed."
            )

    def _show_counts(self, counts: dict[str, int]) -> None:
        self.album_list.clear()
        for folder, n in counts.items():
            QTreeWidgetItem(self.album_list, [display(concept_label(folder)), str(n)])
