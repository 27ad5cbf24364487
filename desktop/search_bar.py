"""The search toolbar: a debounced search box, the sort order and the model picker. (Where a search's matches
stop is core's cutoff, per query; the results header offers the weaker photos below it.)"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QComboBox, QLabel, QLineEdit, QSizePolicy, QToolBar, QToolButton, QWidget

from desktop.shortcuts import widget_shortcut

SEARCH_DEBOUNCE_MS = 250
SORT_CHOICES = (("Best match", "relevance"), ("Newest first", "date"))


class SearchToolbar(QToolBar):
    """Emits `query_requested` 250 ms after typing stops or at once on Enter; `sort_chosen` and `model_chosen`
    on a user's pick; `models_requested` from the button that opens the Models window."""

    query_requested = Signal(str)
    sort_chosen = Signal(str)
    model_chosen = Signal(str)
    models_requested = Signal()
    down_pressed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Search", parent)
        self.setObjectName("searchToolbar")
        self.setMovable(False)
        self.search_edit = QLineEdit()
        self.search_edit.setObjectName("searchEdit")
        self.search_edit.setPlaceholderText("Search: “a cat”, “coffee on a table”…  (Ctrl+F)")
        self.search_edit.setClearButtonEnabled(True)
        self.search_edit.setMinimumWidth(260)
        self.search_edit.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        self.debounce = QTimer(self, singleShot=True, interval=SEARCH_DEBOUNCE_MS)
        self.debounce.timeout.connect(self.run_search)
        self._quiet = False  # set while the box's text changes without asking for a search
        self.search_edit.textChanged.connect(self._text_changed)
        self.search_edit.returnPressed.connect(self.run_search)
        edit = self.search_edit
        widget_shortcut(Qt.Key_Escape, edit, edit.clear)
        widget_shortcut(Qt.Key_Down, edit, self.down_pressed.emit)
        self.addWidget(self.search_edit)
        self.sort_combo = QComboBox()
        self.sort_combo.setObjectName("sortPicker")
        for label, sort in SORT_CHOICES:
            self.sort_combo.addItem(label, sort)
        self.sort_combo.setToolTip("Order search results by how well they match, or by date (Ctrl+1 / Ctrl+2)")
        self.sort_combo.activated.connect(lambda index: self.sort_chosen.emit(self.sort_combo.itemData(index)))
        self.addWidget(self.sort_combo)
        self.addSeparator()

        self.model_combo = QComboBox()
        self.model_combo.setObjectName("modelPicker")
        self.model_combo.setToolTip("The model that embeds photos and queries; switching re-embeds the library")
        self.model_combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.model_combo.setMinimumContentsLength(22)  # long package names are cut; the tooltip has them whole
        self.model_combo.activated.connect(self._model_activated)
        self.addWidget(QLabel(" Model "))
        self.addWidget(self.model_combo)
        self.models_button = QToolButton()
        self.models_button.setObjectName("modelsButton")
        self.models_button.setText("Models…")
        self.models_button.setToolTip("Get MobileCLIP, import or install models, compare and remove them")
        self.models_button.clicked.connect(self.models_requested.emit)
        self.addWidget(self.models_button)

    @property
    def pending(self) -> bool:
        """Whether typed text is waiting for the debounce timer."""
        return self.debounce.isActive()

    def run_search(self) -> None:
        """Ask for the box's query now."""
        self.debounce.stop()
        self.query_requested.emit(self.search_edit.text())

    def _text_changed(self, _: str) -> None:
        if not self._quiet:
            self.debounce.start()

    def set_text_silently(self, text: str) -> None:
        """Put `text` in the search box without starting a search."""
        # Not blockSignals: the box's own clear button listens to textChanged and would stay on an empty box.
        self.debounce.stop()
        self._quiet = True
        try:
            self.search_edit.setText(text)
        finally:
            self._quiet = False

    def set_sort(self, sort: str) -> None:
        """Show `sort` ("relevance" or "date") as chosen, without emitting `sort_chosen`."""
        self.sort_combo.setCurrentIndex(max(0, self.sort_combo.findData(sort)))

    def sort(self) -> str:
        return self.sort_combo.currentData()

    def set_models(self, models: Sequence[object], active: str | None) -> None:
        """Fill the picker with installed packages (objects with id, name, location) and select the active one."""
        combo = self.model_combo
        combo.blockSignals(True)  # filling it is not a user's choice
        combo.clear()
        for model in models:
            combo.addItem(model.name, model.id)
            combo.setItemData(combo.count() - 1, f"{model.name}\n{model.id} ({model.location})", Qt.ToolTipRole)
        if active is not None:
            combo.setCurrentIndex(combo.findData(active))
        combo.setEnabled(bool(models))
        combo.blockSignals(False)

    def _model_activated(self, index: int) -> None:
        model_id = self.model_combo.itemData(index)
        if model_id:
            self.model_chosen.emit(model_id)
