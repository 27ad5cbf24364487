"""The photo grid: a list model over rows of photos (desktop.grid_rows), a delegate that paints cells, and the view.

PySide6 6.12 on Python 3.11 drops a reference to None each time Python code reads `QModelIndex.data()` for a role
that answers None, and enough of them crash the interpreter. So Python code here (the delegate, the window) asks
the model's own methods (`path`, `score`, `thumbnail`) and only Qt's C++ side goes through `data()`.

The model never touches pixels up front: `DecorationRole` asks the thumbnail loader, which answers from its
LRU or queues a load and returns None (the delegate paints a placeholder until `ready` arrives). With
uniform item sizes the view only asks about the rows on screen, so browsing a million photos reads the paths of
the pages on screen only.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, QPoint, QRect, QSize, Qt, Signal
from PySide6.QtGui import QPainter, QPalette, QPixmap, QResizeEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QListView,
    QMenu,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QWidget,
)

from core.pathtext import display
from desktop.file_actions import open_or_explain, reveal_or_explain
from desktop.grid_rows import LibraryRows, PathRows
from desktop.thumbnail_loader import ThumbnailLoader

PathRole = Qt.UserRole + 1
ScoreRole = Qt.UserRole + 2
ThumbStateRole = Qt.UserRole + 3  # "ready", "loading" or "failed"

MIN_THUMB, MAX_THUMB, DEFAULT_THUMB = 96, 320, 160
ModelIndex = QModelIndex | QPersistentModelIndex
GridRows = PathRows | LibraryRows


class PhotoGridModel(QAbstractListModel):
    """Rows of photos: a path and, for search results, a score."""

    thumb_size_changed = Signal(int)

    def __init__(self, loader: ThumbnailLoader, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.loader = loader
        self.thumb_size = DEFAULT_THUMB
        self.device_ratio = 1.0
        self._rows: GridRows = PathRows([])
        loader.ready.connect(self._thumbnail_changed)
        loader.failed.connect(self._thumbnail_changed)

    # --- content ---------------------------------------------------------------------------------

    def set_photos(self, paths: Sequence[str], scores: Sequence[float] | None = None) -> None:
        """Replace every row with these photos (a search result)."""
        self.set_rows(PathRows(paths, scores))

    def set_rows(self, rows: GridRows) -> None:
        """Replace every row (a search result, or the whole library read a page at a time)."""
        self.beginResetModel()
        self._rows = rows
        self.endResetModel()

    def append_photos(self, paths: Sequence[str]) -> None:
        """Add rows at the end (photos indexed while the user browses); paths already shown are skipped."""
        new = self._rows.new_paths(paths)
        if not new:
            return
        first = len(self._rows)
        self.beginInsertRows(QModelIndex(), first, first + len(new) - 1)
        self._rows.extend(new)
        self.endInsertRows()

    def paths(self) -> list[str]:
        """Every row's path, in row order (reads them all: for short lists)."""
        return [self._rows.path(row) for row in range(len(self._rows))]

    def path(self, row: int) -> str:
        return self._rows.path(row)

    def score(self, row: int) -> float | None:
        """The search score of a row; None when browsing."""
        return self._rows.score(row)

    def thumbnail(self, row: int) -> QPixmap | None:
        """The row's thumbnail if loaded; otherwise None, and the load is queued."""
        return self.loader.pixmap(self._rows.path(row), self.thumb_size, self.device_ratio)

    def row_of(self, path: str) -> int | None:
        return self._rows.row_of(path)

    @property
    def has_scores(self) -> bool:
        return self._rows.has_scores

    @property
    def shows_library(self) -> bool:
        """Whether the rows are the whole library, read a page at a time."""
        return isinstance(self._rows, LibraryRows)

    def set_thumb_size(self, size: int) -> None:
        """Paint thumbnails at another size (zoom); rows stay the same."""
        self.thumb_size = max(MIN_THUMB, min(MAX_THUMB, size))
        self.thumb_size_changed.emit(self.thumb_size)

    # --- Qt model API ----------------------------------------------------------------------------

    def rowCount(self, parent: ModelIndex = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: ModelIndex, role: int = Qt.DisplayRole) -> object:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        path = self._rows.path(index.row())
        if role == Qt.DisplayRole:
            return display(os.path.basename(path))  # Qt text cannot hold the raw bytes of a name
        if role == PathRole:
            return path
        if role == ScoreRole:
            return self._rows.score(index.row())
        if role == Qt.DecorationRole:
            return self.loader.pixmap(path, self.thumb_size, self.device_ratio)
        if role == ThumbStateRole:
            if self.loader.has_failed(path):
                return "failed"
            return "ready" if self.loader.pixmap(path, self.thumb_size, self.device_ratio) is not None else "loading"
        if role == Qt.ToolTipRole:
            score = self._rows.score(index.row())
            return display(path) if score is None else f"{display(path)}\nscore {score:.3f}"
        return None

    def _thumbnail_changed(self, path: str) -> None:
        row = self._rows.row_of(path)
        if row is not None:
            index = self.index(row)
            self.dataChanged.emit(index, index, [Qt.DecorationRole])


class PhotoDelegate(QStyledItemDelegate):
    """Paints a square thumbnail cell with the file name and, for search results, the score.
    Colours come from the palette, so light and dark themes both work."""

    PADDING = 6

    def __init__(self, model: PhotoGridModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model

    def cell_size(self, option_font_height: int) -> QSize:
        side = self.model.thumb_size + 2 * self.PADDING
        return QSize(side, side + option_font_height + self.PADDING)

    def sizeHint(self, option: QStyleOptionViewItem, index: ModelIndex) -> QSize:
        return self.cell_size(option.fontMetrics.height())

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: ModelIndex) -> None:
        painter.save()
        palette: QPalette = option.palette
        rect: QRect = option.rect
        selected = bool(option.state & QStyle.State_Selected)
        if selected:
            painter.fillRect(rect, palette.highlight())
        elif option.state & QStyle.State_MouseOver:
            painter.fillRect(rect, palette.alternateBase())

        size = self.model.thumb_size
        box = QRect(rect.x() + (rect.width() - size) // 2, rect.y() + self.PADDING, size, size)
        row = index.row()
        pixmap = self.model.thumbnail(row)
        if pixmap is not None and not pixmap.isNull():
            ratio = self.model.device_ratio  # thumbnails are loaded at size x ratio device pixels
            w, h = max(1.0, pixmap.width() / ratio), max(1.0, pixmap.height() / ratio)
            scale = min(size / w, size / h)
            w, h = round(w * scale), round(h * scale)
            target = QRect(box.x() + (size - w) // 2, box.y() + (size - h) // 2, w, h)
            painter.setRenderHint(QPainter.SmoothPixmapTransform)
            painter.drawPixmap(target, pixmap)
        else:
            # Placeholder: a soft square while loading, a crossed one for files that cannot be shown.
            painter.setPen(Qt.NoPen)
            painter.setBrush(palette.mid() if selected else palette.button())
            painter.drawRoundedRect(box.adjusted(8, 8, -8, -8), 6, 6)
            if self.model.loader.has_failed(self.model.path(row)):
                painter.setPen(palette.color(QPalette.Text))
                painter.drawText(box, Qt.AlignCenter, "⚠\ncannot show")

        text_color = palette.color(QPalette.HighlightedText if selected else QPalette.Text)
        painter.setPen(text_color)
        text_rect = QRect(box.x(), box.bottom() + 2, box.width(), 0)  # under the thumbnail, as wide as it
        text_rect.setBottom(rect.bottom() - 2)
        score = self.model.score(row)
        name = display(os.path.basename(self.model.path(row)))
        if score is not None:
            badge = f"{score:.2f}"
            metrics = option.fontMetrics
            badge_width = metrics.horizontalAdvance(badge) + 6
            painter.drawText(text_rect, Qt.AlignRight | Qt.AlignVCenter, badge)
            text_rect.setRight(text_rect.right() - badge_width)
        elided = option.fontMetrics.elidedText(name, Qt.ElideMiddle, text_rect.width())
        painter.drawText(text_rect, Qt.AlignLeft | Qt.AlignVCenter, elided)
        painter.restore()


class PhotoGridView(QListView):
    """A wrapping icon grid tuned for very long lists: static layout, uniform cells, batched layout.
    Its context menu asks for the photo view (`view_requested(row)`), similar photos (`similar_requested(path)`)
    and teaching a concept for the selected photos (`teach_requested(paths)`), and opens the file or its folder
    itself."""

    view_requested = Signal(int)
    similar_requested = Signal(object)  # a path (object: a str signal would mangle names that are not UTF-8)
    teach_requested = Signal(object)  # the selected photos' paths

    def __init__(self, model: PhotoGridModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setViewMode(QListView.IconMode)
        self.setMovement(QListView.Static)  # Static keeps the cheap list layout engine (no free placement)
        self.setResizeMode(QListView.Adjust)
        self.setUniformItemSizes(True)
        self.setLayoutMode(QListView.Batched)
        self.setBatchSize(2000)
        self.setWrapping(True)
        self.setSpacing(2)
        self.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.setVerticalScrollMode(QAbstractItemView.ScrollPerPixel)
        # Always shown: a scroll bar that comes and goes would change the width and the column count with it.
        self.setVerticalScrollBarPolicy(Qt.ScrollBarAlwaysOn)
        self.setMouseTracking(True)
        self.setModel(model)
        self.grid_delegate = PhotoDelegate(model, self)
        self.setItemDelegate(self.grid_delegate)
        self.setObjectName("photoGrid")
        self.setAccessibleName("Photos")
        model.thumb_size_changed.connect(self._update_cells)
        self._update_cells()
        self.context_menu: QMenu | None = None
        self.setContextMenuPolicy(Qt.CustomContextMenu)
        self.customContextMenuRequested.connect(self._show_menu)

    def _show_menu(self, pos: QPoint) -> None:
        index = self.indexAt(pos)
        if not index.isValid():
            return
        row = index.row()
        if not self.selectionModel().isSelected(index):  # a right-click inside the selection keeps all of it
            self.select_row(row)
        path = self.model().path(row)
        menu = QMenu(self)
        menu.setObjectName("gridMenu")
        menu.addAction("View Photo", lambda: self.view_requested.emit(row))
        menu.addAction("Find Similar Photos", lambda: self.similar_requested.emit(path))
        menu.addAction("Teach a Concept…", lambda: self.teach_requested.emit(self.selected_paths()))
        menu.addSeparator()
        menu.addAction("Open in Default App", lambda: open_or_explain(self, path))
        menu.addAction("Show in File Manager", lambda: reveal_or_explain(self, path))
        menu.popup(self.viewport().mapToGlobal(pos))
        self.context_menu = menu

    def _update_cells(self, *_: object) -> None:
        model: PhotoGridModel = self.model()
        model.device_ratio = self.devicePixelRatioF()
        cell = self.grid_delegate.cell_size(self.fontMetrics().height())
        # Share the row's leftover width among the columns, so the grid fills the window edge to edge.
        # Qt wraps a row when the cells fill the viewport exactly, so leave the margins and a pixel spare.
        width = self.viewport().width() - 2 * self.spacing() - 1
        columns = max(1, width // cell.width())
        cell.setWidth(max(cell.width(), width // columns))
        if cell != self.gridSize():
            self.setGridSize(cell)
        self.viewport().update()
        self.verticalScrollBar().setSingleStep(max(20, model.thumb_size // 4))

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._update_cells()

    def current_row(self) -> int | None:
        """The row with keyboard focus, if any."""
        index = self.currentIndex()
        return index.row() if index.isValid() else None

    def selected_paths(self) -> list[str]:
        """The selected photos' paths, in grid order."""
        rows = sorted({index.row() for index in self.selectionModel().selectedIndexes()})
        return [self.model().path(row) for row in rows]

    def select_row(self, row: int) -> None:
        """Make `row` current and selected, and scroll it into view."""
        index = self.model().index(row, 0)
        self.setCurrentIndex(index)
        self.scrollTo(index)
