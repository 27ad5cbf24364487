"""The main window: search bar, photo grid, empty state, status bar and menus. Work goes to the controller."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, Qt, QUrl
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QLabel,
    QMainWindow,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.controller import AppController, IndexOutcome, PhotoList
from desktop.dialogs import show_errors_dialog, show_shortcuts_dialog
from desktop.empty_state import EmptyState
from desktop.photo_grid import DEFAULT_THUMB, PhotoGridModel, PhotoGridView
from desktop.photo_view import PhotoView
from desktop.search_bar import SearchToolbar
from desktop.status_widgets import MessageBar, ProgressPanel


def local_paths(urls: list[QUrl]) -> list[Path]:
    """The local files and folders among dropped URLs."""
    return [Path(url.toLocalFile()) for url in urls if url.isLocalFile() and url.toLocalFile()]


class MainWindow(QMainWindow):
    """PhotoSeek's window over one library."""

    def __init__(self, controller: AppController, settings: QSettings, icon: QIcon) -> None:
        super().__init__()
        self.controller = controller
        self.settings = settings
        self.setWindowTitle("PhotoSeek")
        self.setWindowIcon(icon)
        self.setAcceptDrops(True)
        self.setObjectName("mainWindow")
        self._photos = PhotoList("", [], None)
        self.results_received = 0  # answers from the controller so far (tests wait on it)

        self.grid_model = PhotoGridModel(controller.loader, self)
        self.grid = PhotoGridView(self.grid_model)
        self.grid.activated.connect(lambda index: self.open_photo(index.row()))
        self.header = QLabel()
        self.header.setObjectName("resultsHeader")
        self.header.setContentsMargins(6, 4, 6, 2)
        results = QWidget()
        results_layout = QVBoxLayout(results)
        results_layout.setContentsMargins(0, 0, 0, 0)
        results_layout.setSpacing(0)
        results_layout.addWidget(self.header)
        results_layout.addWidget(self.grid, 1)

        self.empty = EmptyState(icon)
        self.empty.add_folder_requested.connect(self.choose_folder)
        self.empty.build_model_requested.connect(controller.build_starter)
        self.pages = QStackedWidget()
        self.pages.addWidget(self.empty)
        self.pages.addWidget(results)
        self.message_bar = MessageBar()
        self.message_bar.action_triggered.connect(self._message_action)
        central = QWidget()
        central_layout = QVBoxLayout(central)
        central_layout.setContentsMargins(0, 0, 0, 0)
        central_layout.setSpacing(0)
        central_layout.addWidget(self.message_bar)
        central_layout.addWidget(self.pages, 1)
        self.setCentralWidget(central)

        self._build_toolbar()
        self._build_status_bar()
        self._build_menus()
        self.photo_view = PhotoView(controller, self)
        self.photo_view.navigate.connect(self._step_photo)

        controller.ready.connect(self._library_ready)
        controller.photos.connect(self._show_photos)
        controller.photos_added.connect(self._photos_added)
        controller.index_started.connect(self._index_started)
        controller.index_progress.connect(self.progress.update_progress)
        controller.index_finished.connect(self._index_finished)
        controller.error.connect(lambda text: self.message_bar.show_message(text, error=True))
        self._restore_settings()
        self._update_page()

    # --- construction ----------------------------------------------------------------------------

    def _build_toolbar(self) -> None:
        self.toolbar = SearchToolbar(self)
        self.search_edit = self.toolbar.search_edit
        self.score_slider, self.score_label = self.toolbar.score_slider, self.toolbar.score_label
        self.model_combo = self.toolbar.model_combo
        self.toolbar.query_requested.connect(self._query_requested)
        self.toolbar.cutoff_changed.connect(lambda _: self._apply_cutoff())
        self.toolbar.model_chosen.connect(self.controller.switch_model)
        self.toolbar.down_pressed.connect(self._focus_grid)
        self.addToolBar(self.toolbar)

    def _build_status_bar(self) -> None:
        status = self.statusBar()
        self.progress = ProgressPanel()
        self.progress.cancel_requested.connect(self.controller.cancel_indexing)
        status.addWidget(self.progress)
        self.errors_button = QToolButton()
        self.errors_button.setAutoRaise(True)
        self.errors_button.clicked.connect(self.show_errors)
        self.errors_button.hide()
        self.count_label = QLabel("Opening the library…")
        self.model_label = QLabel()
        for widget in (self.errors_button, self.count_label, self.model_label):
            status.addPermanentWidget(widget)

    def _build_menus(self) -> None:
        def action(menu: object, text: str, slot: object, shortcut: QKeySequence | str | None = None) -> QAction:
            act = QAction(text, self)
            if shortcut is not None:
                act.setShortcut(QKeySequence(shortcut))
            act.triggered.connect(slot)
            menu.addAction(act)
            return act

        file_menu = self.menuBar().addMenu("&File")
        self.add_folder_action = action(file_menu, "Add &Folder…", self.choose_folder, QKeySequence.Open)
        action(file_menu, "Add &Photos…", self.choose_files, "Ctrl+Shift+O")
        self.rescan_action = action(file_menu, "&Rescan Library", self.controller.rescan, QKeySequence.Refresh)
        file_menu.addSeparator()
        action(file_menu, "&Quit", self.close, QKeySequence.Quit)
        edit_menu = self.menuBar().addMenu("&Edit")
        action(edit_menu, "&Find", self.focus_search, QKeySequence.Find)
        action(edit_menu, "&Clear Search", lambda: self.search_edit.clear(), "Ctrl+Backspace")
        view_menu = self.menuBar().addMenu("&View")
        action(view_menu, "Zoom &In", lambda: self.zoom(+24), QKeySequence.ZoomIn)
        action(view_menu, "Zoom &Out", lambda: self.zoom(-24), QKeySequence.ZoomOut)
        action(view_menu, "&Actual Size", lambda: self.zoom(0), "Ctrl+0")
        view_menu.addSeparator()
        action(view_menu, "&Unreadable Files…", self.show_errors)
        help_menu = self.menuBar().addMenu("&Help")
        action(help_menu, "&Keyboard Shortcuts", lambda: show_shortcuts_dialog(self), QKeySequence.HelpContents)

    # --- settings --------------------------------------------------------------------------------

    def _restore_settings(self) -> None:
        geometry = self.settings.value("window/geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        else:
            self.resize(1100, 720)
        state = self.settings.value("window/state")
        if isinstance(state, QByteArray):
            self.restoreState(state)
        self.score_slider.setValue(int(self.settings.value("search/min_score_steps", 0)))
        self.grid_model.set_thumb_size(int(self.settings.value("grid/thumb_size", DEFAULT_THUMB)))
        self._apply_cutoff()

    def save_settings(self) -> None:
        """Remember window geometry, the score cutoff and the thumbnail size."""
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.setValue("search/min_score_steps", self.score_slider.value())
        self.settings.setValue("grid/thumb_size", self.grid_model.thumb_size)
        self.settings.sync()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.save_settings()
        self.photo_view.close()
        self.controller.shutdown()
        super().closeEvent(event)

    # --- drag and drop ---------------------------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if local_paths(event.mimeData().urls()):
            event.acceptProposedAction()
            self.statusBar().showMessage("Drop to add these photos to the library", 3000)

    def dragMoveEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = local_paths(event.mimeData().urls())
        if paths:
            event.acceptProposedAction()
            self.add_paths(paths)

    # --- actions ---------------------------------------------------------------------------------

    def add_paths(self, paths: list[Path]) -> None:
        """Index dropped or chosen folders and files."""
        missing = [p for p in paths if not p.exists()]
        if missing:
            self.message_bar.show_message(f"Not found: {', '.join(map(str, missing))}", error=True)
        existing = [p for p in paths if p.exists()]
        if existing:
            self.controller.add_paths(existing)

    def choose_folder(self) -> None:
        start = str(self.settings.value("dialogs/last_folder", str(Path.home())))
        folder = QFileDialog.getExistingDirectory(self, "Add a folder of photos", start)
        if folder:
            self.settings.setValue("dialogs/last_folder", folder)
            self.add_paths([Path(folder)])

    def choose_files(self) -> None:
        start = str(self.settings.value("dialogs/last_folder", str(Path.home())))
        files, _ = QFileDialog.getOpenFileNames(
            self, "Add photos", start, "Photos (*.jpg *.jpeg *.png *.webp *.tif *.tiff *.gif *.bmp);;All files (*)"
        )
        if files:
            self.add_paths([Path(f) for f in files])

    def focus_search(self) -> None:
        self.search_edit.setFocus(Qt.ShortcutFocusReason)
        self.search_edit.selectAll()

    def _focus_grid(self) -> None:
        self.grid.setFocus(Qt.ShortcutFocusReason)
        if self.grid.current_row() is None and self.grid_model.rowCount():
            self.grid.select_row(0)

    def run_search(self) -> None:
        """Search now (what Enter does in the search box)."""
        self.toolbar.run_search()

    def _query_requested(self, text: str) -> None:
        if text.strip() != self.controller.query or not self.controller.query:
            self.controller.search(text)

    def zoom(self, step: int) -> None:
        self.grid_model.set_thumb_size(self.grid_model.thumb_size + step if step else DEFAULT_THUMB)

    @property
    def photo_list(self) -> PhotoList:
        """The rows last received from the controller (before the score cutoff)."""
        return self._photos

    @property
    def search_pending(self) -> bool:
        """Whether typed text is waiting for the debounce timer."""
        return self.toolbar.pending

    def min_score(self) -> float:
        return self.toolbar.min_score()

    def show_errors(self) -> None:
        if self.controller.is_open:
            self.controller.run("errors", lambda service: service.errors(), lambda rows: show_errors_dialog(self, rows))

    def open_photo(self, row: int) -> None:
        """Show row `row` of the grid in the photo view."""
        if not 0 <= row < self.grid_model.rowCount():
            return
        model = self.grid_model
        self.photo_view.show_photo(model.path(row), (row, model.rowCount()), model.score(row))

    def _step_photo(self, step: int) -> None:
        current = self.grid_model.row_of(self.photo_view.path or "")
        if current is None:
            return
        row = current + step
        if 0 <= row < self.grid_model.rowCount():
            self.grid.select_row(row)
            self.open_photo(row)

    def _message_action(self, action_id: str) -> None:
        if action_id == "errors":
            self.show_errors()

    # --- controller signals ----------------------------------------------------------------------

    def _library_ready(self, snapshot: object) -> None:
        self.toolbar.set_models(snapshot.models, snapshot.active_model)
        active = next((m for m in snapshot.models if m.id == snapshot.active_model), None)
        self.count_label.setText(f"{snapshot.photo_count:,} photo{'s' if snapshot.photo_count != 1 else ''}")
        self.model_label.setText(f"Model: {active.id if active else 'none installed'}")
        if active is not None and snapshot.serving_model not in (None, active.id):
            # A switch is not finished: core keeps answering from the previous model until it is.
            self.model_label.setText(f"Model: {active.id} (searching with {snapshot.serving_model} until embedded)")
        self.model_label.setToolTip(active.name if active else "")
        if active is not None:
            self.model_combo.setToolTip(f"{active.name}\nSwitching the model re-embeds the library in the background")
        self.errors_button.setText(f"⚠ {snapshot.error_count:,} unreadable")
        self.errors_button.setToolTip("Files that could not be indexed, with the reason")
        self.errors_button.setVisible(snapshot.error_count > 0)
        self.empty.set_model_state(
            has_model=active is not None, trainer_available=snapshot.trainer_available, hint=snapshot.no_model_hint
        )
        self.search_edit.setEnabled(active is not None)
        self._update_page()

    def _show_photos(self, photos: PhotoList) -> None:
        self._photos = photos
        self.results_received += 1
        self._apply_cutoff()

    def _photos_added(self, paths: list[str]) -> None:
        self.grid_model.append_photos(paths)
        if not self._photos.query:  # browsing everything: the grid is the library, count it live
            self.count_label.setText(f"{self.grid_model.rowCount():,} photos")
        self._update_header()
        self._update_page()

    def _apply_cutoff(self) -> None:
        photos, model = self._photos, self.grid_model
        if photos.scores is None:
            shown = model.rowCount()
            if not model.has_scores and shown and photos.paths[:shown] == model.paths():
                model.append_photos(photos.paths[shown:])  # same list grown: keep the user's scroll position
            else:
                model.set_photos(photos.paths)
        else:
            cutoff = self.min_score()
            kept = [(p, s) for p, s in zip(photos.paths, photos.scores, strict=True) if s >= cutoff]
            self.grid_model.set_photos([p for p, _ in kept], [s for _, s in kept])
        self._update_header()
        self._update_page()

    def _update_header(self) -> None:
        photos, shown = self._photos, self.grid_model.rowCount()
        if not photos.query:
            self.header.setText(f"All photos · {shown:,}")
        elif shown:
            hidden = len(photos.paths) - shown
            more = f" · {hidden:,} below the {self.min_score():.2f} cutoff" if hidden else ""
            self.header.setText(f"{shown:,} best matches for “{photos.query}”, best first{more}")
        elif photos.paths:
            self.header.setText(
                f"No photo scores {self.min_score():.2f} or more for “{photos.query}”: lower the cutoff"
            )
        else:
            self.header.setText(f"No photos match “{photos.query}”")

    def _update_page(self) -> None:
        snapshot = self.controller.snapshot
        if snapshot is None:  # still opening: a blank grid, not a misleading "drop photos here"
            self.header.setText("Opening the library…")
        empty_library = snapshot is not None and snapshot.photo_count == 0 and self.grid_model.rowCount() == 0
        show_empty = empty_library and not self._photos.query
        self.empty.set_indexing(self.controller.indexing)
        self.pages.setCurrentWidget(self.empty if show_empty else self.pages.widget(1))

    def _index_started(self, kind: str, description: str) -> None:
        self.progress.start(description, cancellable=kind != "starter")  # the trainer build cannot stop midway
        self.rescan_action.setEnabled(False)
        self._update_page()

    def _index_finished(self, outcome: IndexOutcome) -> None:
        self.progress.hide()
        self.rescan_action.setEnabled(True)
        self._update_page()
        report = outcome.report
        if outcome.error or report is None:
            return
        if report.cancelled:
            self.message_bar.show_message(
                f"Indexing cancelled: {report.indexed:,} photos were indexed and kept. "
                "Add the folder again to continue where it stopped.",
                timeout_ms=15_000,
            )
        elif report.failed:
            self.message_bar.show_message(
                f"{report.failed:,} file{'s' if report.failed != 1 else ''} could not be read and "
                f"{'were' if report.failed != 1 else 'was'} skipped.",
                error=True,
                action=("errors", "Show Details"),
            )
        done = {"reembed": "Model switched", "index": "Indexing done", "rescan": "Rescan done"}.get(outcome.kind, "")
        self.statusBar().showMessage(
            f"{done}: {report.indexed:,} new, {report.unchanged:,} unchanged, {report.removed:,} removed "
            f"in {report.seconds:.1f} s",
            10_000,
        )
