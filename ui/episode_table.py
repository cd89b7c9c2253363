"""The dataset's episodes as a sortable, filterable table (model, proxy and view).

Rows are :class:`recordings.library.EpisodeSummary` objects; the text comes from
``ui.review_state``. Sorting uses :data:`SORT_ROLE`, which holds numbers for
the numeric columns, so 9.5 s sorts before 10.2 s and 900 KB before 1.2 MB.
"""

from __future__ import annotations

from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from recordings.library import EpisodeSummary
from ui.review_state import (
    SUCCESS_LABELS,
    SUCCESS_RANK,
    format_duration,
    format_size,
    problem_text,
)

COLUMNS = ("Name", "Task", "Success", "Duration", "Source", "Size", "Flags", "Problem")
SORT_ROLE = QtCore.Qt.ItemDataRole.UserRole + 1
PATH_ROLE = QtCore.Qt.ItemDataRole.UserRole + 2
FLEXIBLE = ("Task", "Source", "Flags", "Problem")  # long free text: elided first when the columns do not fit
MIN_WIDTH = 40  # px: a column never narrows below this when the columns are fitted to the view
DAMAGED_COLOR = QtGui.QColor("#c62828")
WARN_COLOR = QtGui.QColor("#b26a00")
SUCCESS_COLORS = {"true": QtGui.QColor("#2e7d32"), "false": QtGui.QColor("#c62828")}


class EpisodeTableModel(QtCore.QAbstractTableModel):
    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[EpisodeSummary] = []

    # -- content -------------------------------------------------------------------------------
    def set_summaries(self, summaries: list[EpisodeSummary]) -> None:
        self.beginResetModel()
        self._rows = list(summaries)
        self.endResetModel()

    def summaries(self) -> list[EpisodeSummary]:
        return list(self._rows)

    def row_of(self, path: Path) -> int | None:
        path = Path(path)
        return next((i for i, s in enumerate(self._rows) if s.path == path), None)

    def summary(self, row: int) -> EpisodeSummary:
        return self._rows[row]

    def put(self, summary: EpisodeSummary) -> int:
        """Replace the row of ``summary.path`` (or add one); returns its row.

        A summary without quality flags keeps the row's flags: they come with a
        listing, which judges every episode against the others.
        """
        row = self.row_of(summary.path)
        if row is not None and not summary.flags:
            summary.flags = self._rows[row].flags
        if row is None:
            row = len(self._rows)
            self.beginInsertRows(QtCore.QModelIndex(), row, row)
            self._rows.append(summary)
            self.endInsertRows()
        else:
            self._rows[row] = summary
            self.dataChanged.emit(self.index(row, 0), self.index(row, len(COLUMNS) - 1))
        return row

    def remove(self, path: Path) -> bool:
        row = self.row_of(path)
        if row is None:
            return False
        self.beginRemoveRows(QtCore.QModelIndex(), row, row)
        del self._rows[row]
        self.endRemoveRows()
        return True

    # -- Qt model interface --------------------------------------------------------------------
    def rowCount(self, parent: QtCore.QModelIndex = QtCore.QModelIndex()) -> int:  # noqa: N802 (Qt name)
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QtCore.QModelIndex = QtCore.QModelIndex()) -> int:  # noqa: N802 (Qt name)
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: QtCore.Qt.Orientation,  # noqa: N802 (Qt name)
                   role: int = QtCore.Qt.ItemDataRole.DisplayRole) -> object:
        if orientation == QtCore.Qt.Orientation.Horizontal and role == QtCore.Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def data(self, index: QtCore.QModelIndex, role: int = QtCore.Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid():
            return None
        s = self._rows[index.row()]
        column = COLUMNS[index.column()]
        problem = problem_text(s)
        R = QtCore.Qt.ItemDataRole
        if role == R.DisplayRole:
            return self._text(s, column, problem)
        if role == SORT_ROLE:
            return self._sort_key(s, column, problem)
        if role == PATH_ROLE:
            return str(s.path)
        if role == R.ToolTipRole:
            if problem:
                return f"{s.name}: {problem}"
            if column == "Task":
                return s.task
            if column == "Duration" and s.trimmed:
                return f"trimmed: {s.duration_s:.2f} s kept of {s.full_duration_s:.2f} s"
            if column == "Flags" and s.flags:
                return "\n".join(f"{flag}: {why}" for flag, why in s.flags.items())
            return self._text(s, column, problem) or None  # the whole text of a cell that may be elided
        if role == R.ForegroundRole:
            if s.damaged:
                return DAMAGED_COLOR
            if problem:
                return WARN_COLOR
            if column == "Success":
                return SUCCESS_COLORS.get(s.success)
            if column == "Flags" and s.flags:
                return WARN_COLOR
            return None
        if role == R.FontRole and s.damaged and column == "Name":
            font = QtGui.QFont()
            font.setBold(True)
            return font
        if role == R.TextAlignmentRole and column in ("Duration", "Size"):
            return int(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)
        return None

    @staticmethod
    def _text(s: EpisodeSummary, column: str, problem: str) -> str:
        if column == "Name":
            return f"⚠ {s.name}" if s.damaged else s.name
        if s.damaged and column not in ("Size", "Problem"):
            return ""
        if column == "Task":
            return s.task
        if column == "Success":
            return SUCCESS_LABELS.get(s.success, s.success)
        if column == "Duration":
            return format_duration(s.duration_s) + (" ✂" if s.trimmed else "")
        if column == "Source":
            return s.who_drove
        if column == "Size":
            return format_size(s.size_bytes)
        if column == "Flags":
            return ", ".join(s.flags)
        return problem

    @staticmethod
    def _sort_key(s: EpisodeSummary, column: str, problem: str) -> object:
        if column == "Name":
            return s.name
        if column == "Task":
            return s.task.lower()
        if column == "Success":
            return SUCCESS_RANK.get(s.success, 3) if not s.damaged else 4
        if column == "Duration":
            return float(s.duration_s) if not s.damaged else -1.0
        if column == "Source":
            return s.who_drove
        if column == "Size":
            return int(s.size_bytes)
        if column == "Flags":
            return len(s.flags)
        return problem


class EpisodeFilterProxy(QtCore.QSortFilterProxyModel):
    """Sorts by :data:`SORT_ROLE`; the filter text matches any column's text (name, task, source, flags…)."""

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.setSortRole(SORT_ROLE)
        self.setFilterCaseSensitivity(QtCore.Qt.CaseSensitivity.CaseInsensitive)
        self.setFilterKeyColumn(-1)  # any column


class EpisodeTable(QtWidgets.QTableView):
    """The view; :attr:`episode_selected` fires with the path of the newly current row."""

    episode_selected = QtCore.Signal(object)  # Path, or None when nothing is selected

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.source_model = EpisodeTableModel(self)
        self.proxy = EpisodeFilterProxy(self)
        self.proxy.setSourceModel(self.source_model)
        self.setModel(self.proxy)
        self.setSortingEnabled(True)
        self.sortByColumn(0, QtCore.Qt.SortOrder.AscendingOrder)
        self.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.ExtendedSelection)  # several to export
        self.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setAlternatingRowColors(True)
        self.setWordWrap(False)
        self.verticalHeader().hide()
        self.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        header = self.horizontalHeader()
        header.setStretchLastSection(False)
        header.setHighlightSections(False)
        self.setTextElideMode(QtCore.Qt.TextElideMode.ElideRight)
        header.setTextElideMode(QtCore.Qt.TextElideMode.ElideRight)
        self.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # columns fit instead
        self._quiet = False
        self.selectionModel().currentRowChanged.connect(self._current_changed)

    def _current_changed(self, current: QtCore.QModelIndex, _previous: QtCore.QModelIndex) -> None:
        if self._quiet:
            return
        self.episode_selected.emit(self.path_at(current.row()) if current.isValid() else None)

    def set_summaries(self, summaries: list[EpisodeSummary], keep: Path | None = None) -> bool:
        """Show a new listing without announcing a selection change; ``keep`` stays current if it is listed."""
        self._quiet = True
        try:
            self.source_model.set_summaries(summaries)
        finally:
            self._quiet = False
        self.fit_columns()
        return self.select_path(keep, notify=False) if keep is not None else False

    def path_at(self, proxy_row: int) -> Path | None:
        if not 0 <= proxy_row < self.proxy.rowCount():
            return None
        value = self.proxy.data(self.proxy.index(proxy_row, 0), PATH_ROLE)
        return Path(value) if value else None

    def selected_paths(self) -> list[Path]:
        """The paths of every selected row, in view order."""
        rows = sorted(index.row() for index in self.selectionModel().selectedRows())
        return [p for p in (self.path_at(r) for r in rows) if p is not None]

    def current_path(self) -> Path | None:
        index = self.currentIndex()
        return self.path_at(index.row()) if index.isValid() else None

    def select_path(self, path: Path | None, notify: bool = True) -> bool:
        """Make the row of ``path`` current (scrolled into view); ``notify=False`` keeps the signal quiet."""
        row = None if path is None else self.source_model.row_of(path)
        if row is None:
            return False
        index = self.proxy.mapFromSource(self.source_model.index(row, 0))
        if not index.isValid():  # filtered out
            return False
        self._quiet = not notify
        try:
            self.selectionModel().setCurrentIndex(
                index,
                QtCore.QItemSelectionModel.SelectionFlag.ClearAndSelect | QtCore.QItemSelectionModel.SelectionFlag.Rows)
        finally:
            self._quiet = False
        self.scrollTo(index)
        return True

    def fit_columns(self) -> None:
        """Fit every column into the visible width: each gets its content's width, and when they do not all
        fit the wide text columns give way (elided with "…"; the cell's tooltip has the full text)."""
        self.resizeColumnsToContents()
        widths = fit_widths([self.columnWidth(i) for i in range(len(COLUMNS))], self.viewport().width(),
                            tuple(COLUMNS.index(c) for c in FLEXIBLE), (COLUMNS.index("Name"),))
        for i, w in enumerate(widths):
            self.setColumnWidth(i, w)

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:  # noqa: N802 (Qt name)
        super().resizeEvent(event)
        self.fit_columns()


def fit_widths(wanted: list[int], available: int, flexible: tuple[int, ...] = (), last: tuple[int, ...] = ()) \
        -> list[int]:
    """Column widths that add up to at most ``available``.

    The ``flexible`` columns (long free text) give way first, the widest first,
    down to :data:`MIN_WIDTH`; then the others, and the ``last`` ones (the
    episode's name) only after them, so the short columns keep their whole
    text as long as they can. Spare room goes to the last column.
    """
    widths = list(wanted)
    excess = sum(widths) - available
    rest = [i for i in range(len(widths)) if i not in flexible and i not in last]
    for group in (list(flexible), rest, list(last)):
        while excess > 0 and group:
            widest = max(widths[i] for i in group)
            if widest <= MIN_WIDTH:
                break
            second = max([widths[i] for i in group if widths[i] < widest] + [MIN_WIDTH])
            tops = [i for i in group if widths[i] == widest]
            cut = min(widest - second, -(-excess // len(tops)))
            for i in tops:
                widths[i] -= cut
            excess -= cut * len(tops)
    if excess < 0:
        widths[-1] -= excess
    return widths
