"""Sortable, filterable table of per-token graph metrics.

:class:`MetricsTable` shows one row per token: its index, its text, its community and
one column per metric (in_strength, pagerank, ...).  It is a QTableView over a
QAbstractTableModel (cheap at 512 rows, unlike QTableWidget) behind a proxy that sorts numerically (10 after 9) and filters on the token
text. The proxy computes its row order with numpy: a QSortFilterProxyModel compared rows
through Python calls, ~9,000 of them (35-60 ms on the GUI thread) each time 512 rows arrived.
Selecting a row emits the token's index, never the sorted row.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PySide6 import QtCore, QtWidgets
from PySide6.QtCore import QModelIndex, Qt, Signal

__all__ = ["MetricsTable", "MetricsModel", "SORT_ROLE", "first_sort_order"]

SORT_ROLE = Qt.ItemDataRole.UserRole + 1
FIXED_COLUMNS = ("index", "token", "community")


def _fmt(value: float) -> str:
    v = float(value)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == int(v) and abs(v) < 1e9:
        return str(int(v))
    if abs(v) >= 1e4 or abs(v) < 1e-3:
        return f"{v:.3g}"
    return f"{v:.4f}"


def first_sort_order(column: str) -> Qt.SortOrder:
    """The order of a column's first click in the header: metrics (centralities,
    strengths, flow) descending, so the most central token comes first; the index, the
    token text and the community ascending, as any list reads.

    Examples
    --------
    >>> first_sort_order("pagerank") == Qt.SortOrder.DescendingOrder
    True
    >>> first_sort_order("token") == Qt.SortOrder.AscendingOrder
    True
    """
    return Qt.SortOrder.AscendingOrder if column in FIXED_COLUMNS else Qt.SortOrder.DescendingOrder


class MetricsModel(QtCore.QAbstractTableModel):
    """Rows are tokens in their original order: row ``r`` is token ``r``."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._labels: list[str] = []
        self._names: list[str] = []
        self._values = np.zeros((0, 0))
        self._communities: np.ndarray | None = None

    def set_metrics(self, labels, metrics, communities) -> None:
        labels = [str(t) for t in labels]
        n = len(labels)
        names = [str(k) for k in metrics]
        cols = []
        for name, values in metrics.items():
            arr = np.asarray(values, dtype=np.float64).ravel()
            if arr.shape[0] != n:
                raise ValueError(f"metric {name!r} has {arr.shape[0]} values for {n} tokens")
            cols.append(arr)
        if communities is not None:
            communities = np.asarray(communities).ravel().astype(np.int64)
            if communities.shape[0] != n:
                raise ValueError(f"communities has {communities.shape[0]} values for {n} tokens")
        self.beginResetModel()
        self._labels = labels
        self._names = names
        self._values = np.column_stack(cols) if cols else np.zeros((n, 0))
        self._communities = communities
        self.endResetModel()

    def metric_names(self) -> list[str]:
        return list(self._names)

    def columns(self) -> list[str]:
        return list(FIXED_COLUMNS) + self._names

    # Qt model API
    def rowCount(self, parent=None):
        return 0 if parent is not None and parent.isValid() else len(self._labels)

    def columnCount(self, parent=None):
        if parent is not None and parent.isValid():
            return 0
        return len(FIXED_COLUMNS) + len(self._names)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation != Qt.Orientation.Horizontal:
            return None
        cols = self.columns()
        if not 0 <= section < len(cols):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return cols[section]
        if role == Qt.ItemDataRole.ToolTipRole:
            first = "largest first" if section >= len(FIXED_COLUMNS) else "in order"
            return f"{cols[section]}: click to sort ({first}), click again to reverse"
        if role == Qt.ItemDataRole.InitialSortOrderRole:
            return first_sort_order(cols[section])
        return None

    def row_order(self, col: int, descending: bool) -> np.ndarray:
        """Source rows (tokens) sorted by column ``col`` as SORT_ROLE orders them; ties keep
        token order in both directions."""
        n = len(self._labels)
        tokens = np.arange(n)
        if col == 0:
            keys = tokens.astype(np.float64)
        elif col == 1:
            _, keys = np.unique([label.casefold() for label in self._labels], return_inverse=True)
            keys = keys.astype(np.float64)
        elif col == 2:
            keys = (np.full(n, -1.0) if self._communities is None
                    else self._communities.astype(np.float64))
        elif 0 <= col - len(FIXED_COLUMNS) < self._values.shape[1]:
            keys = self._values[:, col - len(FIXED_COLUMNS)]
            keys = np.where(np.isnan(keys), -np.inf, keys)  # nan below every number
        else:
            return tokens
        return np.lexsort((tokens, -keys if descending else keys))

    def rows_matching(self, text: str) -> np.ndarray:
        """Bool per source row: the token's text contains ``text``, case-insensitively."""
        needle = text.casefold()
        return np.array([needle in label.casefold() for label in self._labels], dtype=bool)

    def raw(self, row: int, col: int):
        """The value behind a cell: int, str, float, or None (no community)."""
        if col == 0:
            return row
        if col == 1:
            return self._labels[row]
        if col == 2:
            return None if self._communities is None else int(self._communities[row])
        return float(self._values[row, col - len(FIXED_COLUMNS)])

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row, col = index.row(), index.column()
        value = self.raw(row, col)
        if role == Qt.ItemDataRole.DisplayRole:
            if value is None:
                return "—"
            if col == 1:
                return value if value.strip() else repr(value)
            if col >= len(FIXED_COLUMNS):
                return _fmt(value)
            return str(value)
        if role == SORT_ROLE:
            if col == 1:
                return value.casefold()
            if value is None:
                return -1
            if isinstance(value, float) and math.isnan(value):
                return -math.inf  # nan sorts below every number
            return value
        if role == Qt.ItemDataRole.ToolTipRole:
            if col >= len(FIXED_COLUMNS):
                return f"{self._names[col - len(FIXED_COLUMNS)]} of {self._labels[row]!r} (#{row}): {value!r}"
            if col == 1:
                return f"{value!r} (#{row})"
            return None
        if role == Qt.ItemDataRole.TextAlignmentRole:
            if col != 1:
                return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            return int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        return None


class _SortFilterRows(QtCore.QAbstractProxyModel):
    """The rows of a :class:`MetricsModel` (tokens, in order) filtered by token text and
    sorted by a column; the order comes from :meth:`MetricsModel.row_order` (numpy)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._rows = np.zeros(0, dtype=np.int64)  # proxy row -> source row
        self._where = np.zeros(0, dtype=np.int64)  # source row -> proxy row, -1 if hidden
        self._sort_column = 0
        self._sort_order = Qt.SortOrder.AscendingOrder
        self._filter = ""

    def setSourceModel(self, model: MetricsModel) -> None:
        super().setSourceModel(model)
        model.modelAboutToBeReset.connect(self.beginResetModel)
        model.modelReset.connect(self._after_source_reset)
        self._recompute()

    def _after_source_reset(self) -> None:
        self._recompute()
        self.endResetModel()

    def _recompute(self) -> None:
        model = self.sourceModel()
        order = model.row_order(self._sort_column, self._sort_order == Qt.SortOrder.DescendingOrder)
        if self._filter:
            order = order[model.rows_matching(self._filter)[order]]
        self._rows = order.astype(np.int64)
        self._where = np.full(model.rowCount(), -1, dtype=np.int64)
        self._where[self._rows] = np.arange(len(self._rows))

    # sorting and filtering
    def sort(self, column: int, order=Qt.SortOrder.AscendingOrder) -> None:
        self.layoutAboutToBeChanged.emit()
        before = self.persistentIndexList()
        sources = [self.mapToSource(index) for index in before]
        self._sort_column, self._sort_order = int(column), order
        self._recompute()
        self.changePersistentIndexList(before, [self.mapFromSource(index) for index in sources])
        self.layoutChanged.emit()

    def sortColumn(self) -> int:
        return self._sort_column

    def sortOrder(self):
        return self._sort_order

    def set_filter_text(self, text: str) -> None:
        self.beginResetModel()
        self._filter = text
        self._recompute()
        self.endResetModel()

    # the proxy model API
    def index(self, row: int, column: int, parent=None) -> QModelIndex:
        if (parent is not None and parent.isValid()) or not (0 <= row < len(self._rows)):
            return QModelIndex()
        if not 0 <= column < self.columnCount():
            return QModelIndex()
        return self.createIndex(row, column)

    def parent(self, *args):
        if not args:  # QObject.parent()
            return QtCore.QObject.parent(self)
        return QModelIndex()

    def rowCount(self, parent=None) -> int:
        return 0 if parent is not None and parent.isValid() else len(self._rows)

    def columnCount(self, parent=None) -> int:
        return 0 if parent is not None and parent.isValid() else self.sourceModel().columnCount()

    def mapToSource(self, proxy_index: QModelIndex) -> QModelIndex:
        if not proxy_index.isValid() or not 0 <= proxy_index.row() < len(self._rows):
            return QModelIndex()
        return self.sourceModel().index(int(self._rows[proxy_index.row()]), proxy_index.column())

    def mapFromSource(self, source_index: QModelIndex) -> QModelIndex:
        if not source_index.isValid() or not 0 <= source_index.row() < len(self._where):
            return QModelIndex()
        row = int(self._where[source_index.row()])
        return self.index(row, source_index.column()) if row >= 0 else QModelIndex()

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        return self.sourceModel().headerData(section, orientation, role)


class MetricsTable(QtWidgets.QWidget):
    """Per-token metrics with numeric sorting, token filter and linked selection.

    Signals
    -------
    token_selected(int): the person selected the row of this token index.
    """

    token_selected = Signal(int)

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self._updating = False
        self._model = MetricsModel(self)
        self._proxy = _SortFilterRows(self)
        self._proxy.setSourceModel(self._model)

        self._filter = QtWidgets.QLineEdit()
        self._filter.setPlaceholderText("Filter tokens…")
        self._filter.setClearButtonEnabled(True)
        self._count = QtWidgets.QLabel()
        self._count.setStyleSheet("color: #52606d;")

        self._view = QtWidgets.QTableView()
        self._view.setModel(self._proxy)
        self._view.setSortingEnabled(True)
        self._view.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self._view.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self._view.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self._view.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self._view.verticalHeader().setVisible(False)
        self._view.verticalHeader().setDefaultSectionSize(22)
        self._view.horizontalHeader().setStretchLastSection(True)
        self._view.setAlternatingRowColors(True)
        self._view.setWordWrap(False)

        top = QtWidgets.QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self._filter, 1)
        top.addWidget(self._count)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self._view, 1)

        self._filter.textChanged.connect(self._on_filter_changed)
        self._view.selectionModel().selectionChanged.connect(self._on_selection_changed)
        self._update_count()

    # ------------------------------------------------------------------ public API

    def set_metrics(
        self,
        labels: Sequence[str],
        metrics: dict[str, np.ndarray],
        communities: np.ndarray | None = None,
    ) -> None:
        """Show one row per token; keeps the sort column and the filter text."""
        self._updating = True
        try:
            self._model.set_metrics(labels, metrics, communities)
        finally:
            self._updating = False
        self._fit_columns()
        self._update_count()

    def _fit_columns(self) -> None:
        """Column widths from a few representative texts, not from every cell.

        ``resizeColumnsToContents`` asks the model for all cells (0.4 s at 512 tokens x 10
        columns, on the GUI thread); the widest text of a column is one of its longest labels
        or its extreme values, so measuring those gives the same widths.
        """
        model = self._model
        metrics = self._view.fontMetrics()
        header = self._view.horizontalHeader().fontMetrics()
        padding = 24
        for col, name in enumerate(model.columns()):
            texts = []
            if col == 0:
                texts = [str(max(model.rowCount() - 1, 0))]
            elif col == 1:
                texts = sorted(model._labels, key=len)[-12:]
            elif col == 2:
                texts = ["—"] if model._communities is None or not len(model._communities) else [str(int(model._communities.max()))]
            else:
                values = model._values[:, col - len(FIXED_COLUMNS)]
                finite = values[np.isfinite(values)]
                picks = [finite.min(), finite.max()] if finite.size else []
                texts = [_fmt(float(v)) for v in picks] + ["nan"] * (finite.size < values.size)
            widest = max([metrics.horizontalAdvance(t) for t in texts] + [header.horizontalAdvance(name) + 12])
            self._view.horizontalHeader().resizeSection(col, min(widest + padding, 320))

    def rows_height(self, rows: int) -> int:
        """Pixels this widget needs to show ``rows`` rows: the filter line, the header, the
        rows and a horizontal scroll bar (the dock's title bar not included)."""
        view = self._view
        header = view.horizontalHeader().sizeHint().height()
        scroll = view.horizontalScrollBar().sizeHint().height()
        spacing = self.layout().spacing()
        return (self._filter.sizeHint().height() + spacing + header + rows * view.verticalHeader().defaultSectionSize()
                + scroll + 2 * view.frameWidth() + 2)

    def visible_rows(self) -> int:
        """Whole rows the table's viewport has room for now (with or without data)."""
        return self._view.viewport().height() // self._view.verticalHeader().defaultSectionSize()

    def clear(self) -> None:
        self.set_metrics([], {}, None)

    def select_token(self, index: int | None) -> None:
        """Select (and scroll to) the row of token ``index`` without emitting;
        None clears the selection.  A token hidden by the filter is not selected."""
        self._updating = True
        try:
            sel = self._view.selectionModel()
            sel.clearSelection()
            if index is None:
                return
            i = int(index)
            if not 0 <= i < self._model.rowCount():
                raise ValueError(f"token index {i} out of range [0, {self._model.rowCount()})")
            proxy_index = self._proxy.mapFromSource(self._model.index(i, 0))
            if not proxy_index.isValid():
                return
            sel.select(
                proxy_index,
                QtCore.QItemSelectionModel.SelectionFlag.ClearAndSelect
                | QtCore.QItemSelectionModel.SelectionFlag.Rows,
            )
            sel.setCurrentIndex(proxy_index, QtCore.QItemSelectionModel.SelectionFlag.NoUpdate)
            self._view.scrollTo(proxy_index, QtWidgets.QAbstractItemView.ScrollHint.PositionAtCenter)
        finally:
            self._updating = False

    def selected_token(self) -> int | None:
        rows = self._view.selectionModel().selectedRows()
        if not rows:
            return None
        return self._proxy.mapToSource(rows[0]).row()

    def set_filter(self, text: str) -> None:
        self._filter.setText(text)

    def sort_by(self, column: str, descending: bool = False) -> None:
        col = self._model.columns().index(column)
        order = Qt.SortOrder.DescendingOrder if descending else Qt.SortOrder.AscendingOrder
        self._view.sortByColumn(col, order)

    def columns(self) -> list[str]:
        return self._model.columns()

    def to_rows(self) -> list[tuple]:
        """Rows as shown (sorted and filtered), with raw values:
        ``(index, token, community or None, metric values...)``."""
        out = []
        for r in range(self._proxy.rowCount()):
            src = self._proxy.mapToSource(self._proxy.index(r, 0)).row()
            out.append(tuple(self._model.raw(src, c) for c in range(self._model.columnCount())))
        return out

    def table_view(self) -> QtWidgets.QTableView:
        return self._view

    def filter_edit(self) -> QtWidgets.QLineEdit:
        return self._filter

    # ------------------------------------------------------------------ handlers

    def _on_filter_changed(self, text: str) -> None:
        selected = self.selected_token()
        self._proxy.set_filter_text(text)
        if selected is not None:
            self.select_token(selected)
        self._update_count()

    def _on_selection_changed(self, selected, deselected) -> None:
        if self._updating:
            return
        token = self.selected_token()
        if token is not None:
            self.token_selected.emit(token)

    def _update_count(self) -> None:
        total = self._model.rowCount()
        shown = self._proxy.rowCount()
        self._count.setText(f"{shown} of {total} tokens" if shown != total else f"{total} tokens")
