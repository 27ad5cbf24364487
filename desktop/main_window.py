"""The main window: search bar, sidebar (folders, tags), photo grid, empty state, status bar and menus.
Work goes to the controller."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QUrl
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent, QIcon
from PySide6.QtWidgets import QMainWindow, QSplitter, QStackedWidget, QVBoxLayout, QWidget

from desktop.controller import AppController, IndexOutcome, PhotoList
from desktop.dialogs import ask_for_folder, ask_for_photos, confirm_remove_folder, show_errors_dialog
from desktop.empty_state import EmptyState
from desktop.file_actions import local_path, open_or_explain, reveal_or_explain
from desktop.grid_rows import LibraryRows
from desktop.models_window import ModelsWindow, show_models_window
from desktop.no_model import cannot_build_text
from desktop.photo_grid import DEFAULT_THUMB, PhotoGridModel, PhotoGridView
from desktop.photo_view import PhotoView
from desktop.results_header import ResultsHeader
from desktop.search_bar import SearchToolbar
from desktop.sidebar import Sidebar
from desktop.status_widgets import MessageBar, StatusArea
from desktop.teach_flow import TeachFlow
from desktop.window_menus import build_menus
from desktop.window_settings import restore_window_settings, save_window_settings


def local_paths(urls: list[QUrl]) -> list[Path]:
    """The local files and folders among dropped URLs."""
    return [Path(local_path(url)) for url in urls if url.isLocalFile() and url.toLocalFile()]


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
        self._shown_state: object = None  # the request the grid's rows answer
        self._sidebar_wanted = True
        self.results_received = 0  # answers from the controller so far (tests wait on it)

        self.setCentralWidget(self._build_central(icon))
        self._build_toolbar()
        self._build_status_bar()
        self.menu_actions = build_menus(self)
        self.rescan_action = self.menu_actions["rescan"]
        self.photo_view = PhotoView(controller, self)
        self.photo_view.navigate.connect(self._step_photo)
        self.photo_view.similar_requested.connect(self.find_similar)
        self._connect_controller()
        self._restore_settings()
        self._update_page()

    # --- construction ----------------------------------------------------------------------------

    def _build_results(self) -> QWidget:
        """The results page: the header ("N matches for ...") above the photo grid."""
        controller = self.controller
        self.grid_model = PhotoGridModel(controller.loader, self)
        self.grid = PhotoGridView(self.grid_model)
        self.grid.activated.connect(lambda index: self.open_photo(index.row()))
        self.grid.view_requested.connect(self.open_photo)
        self.grid.similar_requested.connect(self.find_similar)
        self.teach = TeachFlow(self)
        self.grid.teach_requested.connect(self.teach.start)
        self.header = ResultsHeader()
        self.header.weaker_requested.connect(controller.show_weaker)
        self.header.matches_only_requested.connect(controller.show_matches_only)
        results = QWidget()
        results_layout = QVBoxLayout(results)
        results_layout.setContentsMargins(0, 0, 0, 0)
        results_layout.setSpacing(0)
        results_layout.addWidget(self.header)
        results_layout.addWidget(self.grid, 1)
        return results

    def _build_central(self, icon: QIcon) -> QWidget:
        """Message bar over a splitter: the sidebar beside the pages (the empty state or the results)."""
        results = self._build_results()
        self.empty = EmptyState(icon)
        self.empty.add_folder_requested.connect(self.choose_folder)
        self.empty.build_model_requested.connect(self.controller.build_starter)
        self.pages = QStackedWidget()
        self.pages.addWidget(self.empty)
        self.pages.addWidget(results)
        self.sidebar = Sidebar()
        self._connect_sidebar()
        self.splitter = QSplitter(Qt.Horizontal)
        self.splitter.setObjectName("mainSplitter")
        self.splitter.addWidget(self.sidebar)
        self.splitter.addWidget(self.pages)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setCollapsible(1, False)
        self.message_bar = MessageBar()
        self.message_bar.action_triggered.connect(self._message_action)
        central = QWidget()
        central_layout = QVBoxLayout(central)
        central_layout.setContentsMargins(0, 0, 0, 0)
        central_layout.setSpacing(0)
        central_layout.addWidget(self.message_bar)
        central_layout.addWidget(self.splitter, 1)
        return central

    def _connect_controller(self) -> None:
        controller = self.controller
        controller.ready.connect(self._library_ready)
        controller.photos.connect(self._show_photos)
        controller.photos_added.connect(self._photos_added)
        controller.index_started.connect(self._index_started)
        controller.index_progress.connect(self.progress.update_progress)
        controller.index_finished.connect(self._index_finished)
        controller.library_changed.connect(self.status_area.disk_changed)
        controller.watching.connect(self._watching)
        controller.error.connect(lambda text: self.message_bar.show_message(text, error=True))

    def _build_toolbar(self) -> None:
        self.toolbar = SearchToolbar(self)
        self.search_edit = self.toolbar.search_edit
        self.model_combo, self.sort_combo = self.toolbar.model_combo, self.toolbar.sort_combo
        self.toolbar.query_requested.connect(self._query_requested)
        self.toolbar.sort_chosen.connect(self.set_sort)
        self.toolbar.model_chosen.connect(self.controller.switch_model)
        self.toolbar.models_requested.connect(lambda: show_models_window(self))
        self.toolbar.down_pressed.connect(self._focus_grid)
        self.addToolBar(self.toolbar)

    def _build_status_bar(self) -> None:
        self.status_area = StatusArea(self.statusBar(), self.message_bar, self)
        self.status_area.errors_requested.connect(self.show_errors)
        self.status_area.progress.cancel_requested.connect(self.controller.cancel_indexing)
        area = self.status_area
        self.progress, self.errors_button = area.progress, area.errors_button
        self.count_label, self.model_label = area.count_label, area.model_label

    def _connect_sidebar(self) -> None:
        sidebar = self.sidebar
        sidebar.folder_chosen.connect(self.controller.set_folder)
        sidebar.tag_chosen.connect(self.controller.set_tag)
        sidebar.add_folder_requested.connect(self.choose_folder)
        sidebar.rescan_requested.connect(self.controller.rescan)
        sidebar.remove_requested.connect(self.remove_folder)
        sidebar.open_folder_requested.connect(lambda folder: open_or_explain(self, folder))

    # --- settings --------------------------------------------------------------------------------

    def _restore_settings(self) -> None:
        restore_window_settings(self)
        self._show_rows()

    def save_settings(self) -> None:
        """Remember window geometry, the sidebar, the sort and the thumbnail size."""
        save_window_settings(self)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.save_settings()
        self.photo_view.close()
        for models in self.findChildren(ModelsWindow):  # a download stops and keeps its partial file
            models.shutdown()
        self.teach.shutdown()
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

    # --- library actions -------------------------------------------------------------------------

    def add_paths(self, paths: list[Path]) -> None:
        """Index dropped or chosen folders and files."""
        missing = [p for p in paths if not p.exists()]
        if missing:
            self.message_bar.show_message(f"Not found: {', '.join(map(str, missing))}", error=True)
        existing = [p for p in paths if p.exists()]
        if existing:
            self.controller.add_paths(existing)

    def choose_folder(self) -> None:
        self.add_paths(ask_for_folder(self, self.settings))

    def choose_files(self) -> None:
        self.add_paths(ask_for_photos(self, self.settings))

    def remove_folder(self, folder: str) -> None:
        """Forget a library folder and its photos, after the user confirms."""
        snapshot = self.controller.snapshot
        count = next((f.photo_count for f in snapshot.folders if f.path == folder), 0) if snapshot else 0
        if confirm_remove_folder(self, folder, count):
            self.controller.remove_folder(folder)

    def remove_selected_folder(self) -> None:
        if self.sidebar.folder:
            self.remove_folder(self.sidebar.folder)

    def rescan_selected_folder(self) -> None:
        if self.sidebar.folder:
            self.controller.rescan(self.sidebar.folder)

    def show_errors(self) -> None:
        """List the files that could not be indexed, with the reason."""
        if self.controller.is_open:
            self.controller.run("errors", lambda service: service.errors(), lambda rows: show_errors_dialog(self, rows))

    # --- search and filters ----------------------------------------------------------------------

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
        state = self.controller.state
        if text.strip() != state.text or not state.text or state.similar_to is not None:
            self.controller.search(text)

    def set_sort(self, sort: str) -> None:
        """Order search results by "relevance" or "date"."""
        self.toolbar.set_sort(sort)
        self.menu_actions["sort_relevance"].setChecked(sort == "relevance")
        self.menu_actions["sort_date"].setChecked(sort == "date")
        self.controller.set_sort(sort)

    def show_all_photos(self) -> None:
        """Clear the search box and the folder and tag filters."""
        self.toolbar.set_text_silently("")
        self.sidebar.show_filters(None, None)
        self.controller.show_all()

    def find_similar(self, path: str) -> None:
        """Show the photos that look most like `path`."""
        self.toolbar.set_text_silently("")
        self.sidebar.show_filters(None, None)
        self.photo_view.hide()
        self.controller.find_similar(path)

    def zoom(self, step: int) -> None:
        self.grid_model.set_thumb_size(self.grid_model.thumb_size + step if step else DEFAULT_THUMB)

    def set_sidebar_visible(self, visible: bool) -> None:
        self._sidebar_wanted = visible
        self._update_page()

    @property
    def photo_list(self) -> PhotoList:
        """The rows last received from the controller."""
        return self._photos

    @property
    def search_pending(self) -> bool:
        """Whether typed text is waiting for the debounce timer."""
        return self.toolbar.pending

    # --- photos ----------------------------------------------------------------------------------

    def current_path(self) -> str | None:
        """The photo selected in the grid."""
        row = self.grid.current_row()
        return self.grid_model.path(row) if row is not None and row < self.grid_model.rowCount() else None

    def open_photo(self, row: int) -> None:
        """Show row `row` of the grid in the photo view."""
        if not 0 <= row < self.grid_model.rowCount():
            return
        model = self.grid_model
        self.photo_view.show_photo(model.path(row), (row, model.rowCount()), model.score(row))

    def open_current_photo(self) -> None:
        row = self.grid.current_row()
        if row is not None:
            self.open_photo(row)

    def teach_selected(self) -> None:
        """Teach a concept for the photos selected in the grid (none: the dialog offers a folder)."""
        self.teach.start(self.grid.selected_paths())

    def find_similar_to_current(self) -> None:
        if self.current_path():
            self.find_similar(self.current_path())

    def open_current_file(self) -> None:
        if self.current_path():
            open_or_explain(self, self.current_path())

    def show_current_in_folder(self) -> None:
        if self.current_path():
            reveal_or_explain(self, self.current_path())

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
        self.status_area.show_library(snapshot)
        active = next((m for m in snapshot.models if m.id == snapshot.active_model), None)
        if active is not None:
            self.model_combo.setToolTip(f"{active.name}\nSwitching the model re-embeds the library in the background")
        self.empty.set_model_state(
            has_model=active is not None,
            trainer_available=snapshot.trainer_available,
            hint=cannot_build_text(snapshot.library),
        )
        self.search_edit.setEnabled(active is not None)
        self.sidebar.set_folders(snapshot.folders, snapshot.photo_count, self.controller.incomplete)
        self.sidebar.set_tags(snapshot.tags)
        self._update_page()

    def _watching(self, roots: list) -> None:
        self.sidebar.set_watched(roots)
        self.status_area.show_watching(roots, self.controller.snapshot)

    def _show_photos(self, photos: PhotoList) -> None:
        self._photos = photos
        self.results_received += 1
        state = photos.state
        self.sidebar.show_filters(state.folder, state.tag)
        self.sort_combo.setEnabled(bool(state.text))
        self._show_rows()

    def _photos_added(self, paths: list[str]) -> None:
        self.grid_model.append_photos(paths)
        if self._photos.browsing_all:  # the grid is the library: count it live
            self.status_area.show_live_count(self.grid_model.rowCount())
        self._update_header()
        self._update_page()

    def _show_rows(self) -> None:
        photos, model = self._photos, self.grid_model
        shown = model.rowCount()
        paths_only = photos.library_ids is None and not model.shows_library and not model.has_scores
        if paths_only and photos.scores is None and shown and photos.paths[:shown] == model.paths():
            model.append_photos(photos.paths[shown:])  # same list grown: keep the user's scroll position
        else:
            bar = self.grid.verticalScrollBar()
            position = bar.value() if photos.state.same_question(self._shown_state) else 0
            if photos.library_ids is None:
                model.set_photos(photos.paths, photos.scores)
            else:  # the whole library: its paths are read a page at a time as rows come into view
                model.set_rows(LibraryRows(photos.library_ids, self.controller.service.paths_by_id))
            bar.setValue(position)  # updated from disk, re-sorted or weaker photos added: stay where the user was
        self._shown_state = photos.state
        self._update_header()
        self._update_page()

    def _update_header(self) -> None:
        self.header.show_results(self._photos, self.grid_model.rowCount())

    def _update_page(self) -> None:
        snapshot = self.controller.snapshot
        if snapshot is None:  # still opening: a blank grid, not a misleading "drop photos here"
            self.header.show_message("Opening the library…")
        empty_library = snapshot is not None and snapshot.photo_count == 0 and self.grid_model.rowCount() == 0
        show_empty = empty_library and not self._photos.query
        self.empty.set_indexing(self.controller.indexing)
        self.pages.setCurrentWidget(self.empty if show_empty else self.pages.widget(1))
        has_folders = snapshot is not None and bool(snapshot.folders or snapshot.photo_count)
        self.sidebar.setVisible(self._sidebar_wanted and has_folders)  # no sidebar beside the empty state

    def _index_started(self, kind: str, description: str) -> None:
        self.status_area.job_started(kind, description)
        self.rescan_action.setEnabled(False)
        self._update_page()

    def _index_finished(self, outcome: IndexOutcome) -> None:
        self.status_area.job_finished(outcome)
        self.rescan_action.setEnabled(True)
        self._update_page()
