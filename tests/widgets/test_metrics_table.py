"""MetricsTable: numeric sorting, filtering, selection linked by token index."""

import numpy as np
import pytest
from PySide6 import QtCore
from PySide6.QtCore import Qt

from widgets.metrics_table import SORT_ROLE, MetricsTable

LABELS = [f"tok{i}" for i in range(12)] + ["Cat", "cat", "dog"]
N = len(LABELS)


@pytest.fixture
def table(qtbot):
    t = MetricsTable()
    qtbot.addWidget(t)
    t.resize(500, 400)
    t.show()
    qtbot.waitExposed(t)
    metrics = {
        "in_strength": np.arange(N, dtype=float),  # 0 .. 14: "10" after "9" numerically
        "pagerank": np.linspace(0.5, 0.01, N),
    }
    communities = np.array([i % 3 for i in range(N)])
    t.set_metrics(LABELS, metrics, communities)
    return t


def test_columns_and_rows(table):
    assert table.columns() == ["index", "token", "community", "in_strength", "pagerank"]
    rows = table.to_rows()
    assert len(rows) == N
    assert rows[3][:4] == (3, "tok3", 0, 3.0)


def test_numeric_sort(table):
    table.sort_by("in_strength")
    values = [r[3] for r in table.to_rows()]
    assert values == sorted(values)
    assert values.index(10.0) == values.index(9.0) + 1  # numerically, not "10" < "9"
    table.sort_by("in_strength", descending=True)
    assert [r[3] for r in table.to_rows()][:2] == [14.0, 13.0]
    table.sort_by("pagerank")
    assert [r[0] for r in table.to_rows()][0] == N - 1  # smallest pagerank = last token


def test_sort_by_header_click(qtbot, table):
    header = table.table_view().horizontalHeader()
    col = table.columns().index("pagerank")
    table.table_view().sortByColumn(0, Qt.SortOrder.DescendingOrder)
    x = header.sectionViewportPosition(col) + header.sectionSize(col) // 2
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=QtCore.QPoint(x, 5))
    pr = [r[4] for r in table.to_rows()]
    assert pr == sorted(pr) or pr == sorted(pr, reverse=True)


def test_filter_tokens_case_insensitive(qtbot, table):
    qtbot.keyClicks(table.filter_edit(), "CAT")
    rows = table.to_rows()
    assert sorted(r[1] for r in rows) == ["Cat", "cat"]
    table.set_filter("")
    assert len(table.to_rows()) == N


def test_row_selection_emits_token_index_not_row(qtbot, table):
    table.sort_by("in_strength", descending=True)  # row 0 shows token 14
    view = table.table_view()
    rect = view.visualRect(view.model().index(1, 1))
    with qtbot.waitSignal(table.token_selected, timeout=1000) as blk:
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert blk.args == [13]
    assert table.selected_token() == 13


def test_select_token_programmatic_no_emit(qtbot, table):
    table.sort_by("pagerank")
    with qtbot.assertNotEmitted(table.token_selected):
        table.select_token(4)
    assert table.selected_token() == 4
    view = table.table_view()
    sel = view.selectionModel().selectedRows()
    assert len(sel) == 1 and view.model().mapToSource(sel[0]).row() == 4
    with qtbot.assertNotEmitted(table.token_selected):
        table.select_token(None)
    assert table.selected_token() is None
    with pytest.raises(ValueError):
        table.select_token(99)


def test_precision_display_and_tooltip(table):
    model = table.table_view().model()
    src = model.sourceModel()
    idx = src.index(1, 4)  # pagerank of token 1
    value = float(np.linspace(0.5, 0.01, N)[1])
    assert src.data(idx) == f"{value:.4f}"
    assert repr(value) in src.data(idx, Qt.ItemDataRole.ToolTipRole)
    assert src.data(idx, SORT_ROLE) == value
    assert src.data(src.index(2, 3)) == "2"  # whole numbers without decimals


def test_no_communities_and_nan(qtbot):
    t = MetricsTable()
    qtbot.addWidget(t)
    t.set_metrics(["a", "b", "c"], {"m": np.array([1.0, np.nan, 0.5])}, None)
    t.sort_by("m")
    assert [r[0] for r in t.to_rows()] == [1, 2, 0]  # nan first, then numeric order
    assert t.to_rows()[0][2] is None
    with pytest.raises(ValueError):
        t.set_metrics(["a"], {"m": np.array([1.0, 2.0])}, None)


def test_large_table(qtbot):
    t = MetricsTable()
    qtbot.addWidget(t)
    n = 512
    t.set_metrics([f"t{i}" for i in range(n)], {"pagerank": np.random.default_rng(0).random(n)}, np.zeros(n))
    t.sort_by("pagerank", descending=True)
    pr = [r[3] for r in t.to_rows()]
    assert len(pr) == n and pr == sorted(pr, reverse=True)


def test_sort_by_token_text_and_filter_keep_the_selected_token(qtbot, table):
    table.sort_by("token")
    tokens = [r[1] for r in table.to_rows()]
    assert tokens[:2] == ["Cat", "cat"]  # case-insensitive; ties keep token order
    assert tokens == sorted(tokens, key=str.casefold)
    table.select_token(13)  # "cat"
    table.set_filter("ca")
    assert [r[1] for r in table.to_rows()] == ["Cat", "cat"]
    assert table.selected_token() == 13
    table.sort_by("index", descending=True)
    assert [r[0] for r in table.to_rows()] == [13, 12]
    assert table.selected_token() == 13  # the selection follows its token through a sort
    table.set_filter("")
    assert table.selected_token() == 13 and len(table.to_rows()) == N
