"""The window fits every screen: its first start, its restart, and what each view gets.

Sizes are asserted under the offscreen platform: in this process by laying the window out
for a screen's available area (``MainWindow.fit_to_screen``), and in fresh processes
whose offscreen screen is 1280x720 or 1920x1080 (the platform's ``configfile``), for the
first start and the restart.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QRect, QSettings

from app.main_window import METRICS_ROWS, MainWindow, dock_sizes
from tests.app.conftest import SENTENCE

ROOT = Path(__file__).resolve().parents[2]
DOCKS = ("input_dock", "heads_dock", "graph_dock", "metrics_dock", "tokens_dock")
LONG_TEXT = " ".join(["The heatmap thins its labels to a regular stride when the tokens do not fit."] * 8)


def laid_out(qtbot, tmp_path, width: int, height: int) -> MainWindow:
    """A first start on a screen whose available area is ``width`` x ``height``."""
    window = MainWindow(QSettings(str(tmp_path / f"{width}x{height}.ini"), QSettings.IniFormat))
    qtbot.addWidget(window)
    window.fit_to_screen(QRect(0, 0, width, height))
    window.show()
    qtbot.waitExposed(window)
    settled = []

    def still() -> bool:  # the docks are split again once shown: wait until they keep their widths
        settled.append(dock_widths(window))
        return len(settled) > 3 and settled[-1] == settled[-2] == settled[-3]

    qtbot.waitUntil(still, timeout=5000)
    return window


def dock_widths(window) -> dict[str, int]:
    return {name: getattr(window, name).width() for name in DOCKS}


@pytest.mark.parametrize(("width", "height"), [(1280, 720), (1600, 1000), (1920, 1080)])
def test_every_view_stays_legible_and_no_dock_jumps_on_the_first_analysis(qtbot, tmp_path, width, height):
    window = laid_out(qtbot, tmp_path, width, height)
    frame = window.frameGeometry()
    assert (frame.width(), frame.height()) == (width, height)
    inner = window.size()
    before = dock_widths(window)
    window.input_panel.set_texts(SENTENCE)
    with qtbot.waitSignals([window.analysis_ready, window.graph_ready], timeout=120_000):
        window.analyse()
    qtbot.wait(100)
    assert window.size() == inner, "the window did not grow"
    assert dock_widths(window) == before, "no dock width jumps on the first analysis"

    heatmap = window.heatmap
    assert min(heatmap.width(), heatmap.height()) >= 400
    assert window.metrics_table.visible_rows() >= METRICS_ROWS
    assert window.metrics_table.to_rows(), "the table holds the graph's tokens"
    for name in DOCKS:  # none squashed to nothing
        dock = getattr(window, name)
        assert dock.isVisible() and dock.width() >= 240 and dock.height() >= 70, (name, dock.size())
    canvas = window.graph_panel.canvas.graphics_view()
    assert canvas.width() >= 380 and canvas.height() >= 150, canvas.size()
    assert window.head_overview.grid_shape() == (6, 12)
    if width >= 1600:
        assert window.head_overview.tile_pitch_px() >= 28  # 6 x 12 heads
    # the metrics table and the graph share the right column, the heatmap keeps the middle
    assert window.metrics_dock.x() == window.graph_dock.x() and window.metrics_dock.y() > window.graph_dock.y()
    assert window.input_dock.x() < heatmap.mapTo(window, heatmap.rect().topLeft()).x() < window.graph_dock.x()


def test_the_default_layout_shares_out_each_screen_size():
    for width, height in ((1280, 720), (1600, 1000), (1920, 1080)):
        sizes = dock_sizes(width, height, 240)
        assert width - sizes["left"] - sizes["right"] >= 420
        assert sizes["metrics"] >= 240 and sizes["graph"] >= 260
        assert sizes["input"] + sizes["heads"] == sizes["graph"] + sizes["metrics"]
    assert dock_sizes(1600, 1000, 240)["left"] == 432  # 12 tiles of 28 px and more, and the layer numbers
    assert dock_sizes(1920, 1080, 240)["right"] == 614


def test_a_small_screen_thins_the_axis_labels_to_a_stated_stride_and_elides_the_title(qtbot, tmp_path):
    window = laid_out(qtbot, tmp_path, 1280, 720)
    window.input_panel.set_texts(LONG_TEXT)
    with qtbot.waitSignals([window.analysis_ready, window.graph_ready], timeout=120_000):
        window.analyse()
    heatmap = window.heatmap
    n = window.view.matrix.shape[0]
    assert n > 100
    heatmap.graphics_view().viewport().grab()  # a paint: the axes choose their stride
    qtbot.wait(50)  # the titles follow on the next turn
    left, bottom = heatmap.axes()
    for axis, orientation in ((left, "left"), (bottom, "bottom")):
        step = axis.tick_step()
        assert step > 1
        assert axis.visible_ticks() == list(range(0, n, step)), "a regular stride, none dropped in between"
        ordinal = {2: "2nd", 3: "3rd"}.get(step, f"{step}th")
        assert heatmap.axis_title(orientation).endswith(f"every {ordinal} label")

    # a title longer than the heatmap is wide ends in "…" and fits; the tooltip has all of it
    long_title = "all-MiniLM-L6-v2 (embedded) · " + " · ".join(["rollout to layer 5 (words, no specials)"] * 4)
    heatmap.set_matrix(window.view.matrix, window.view.row_labels, window.view.col_labels, title=long_title)
    shown, full = heatmap.title_text()
    assert full == long_title and shown.endswith("…") and long_title.startswith(shown[:-1])
    assert heatmap._title_item.boundingRect().width() <= heatmap.width()
    window.resize(1600, 720)  # wider: more of the title
    qtbot.wait(50)
    assert len(heatmap.title_text()[0]) > len(shown)


SCRIPT = textwrap.dedent("""
    import json, sys
    from PySide6.QtCore import QRect, QSettings
    from app.main_window import MainWindow, create_application
    app = create_application(sys.argv)
    window = MainWindow(QSettings(sys.argv[1], QSettings.IniFormat), warm_up=False)
    window.show()
    for _ in range(5):
        app.processEvents()
    screen = window.screen().availableGeometry()
    out = {"geometry": window.geometry().getRect(), "frame": window.frameGeometry().getRect(),
           "available": screen.getRect(),
           "docks": {name: getattr(window, name).width() for name in ("input_dock", "graph_dock")}}
    if len(sys.argv) > 2:
        window.setGeometry(QRect(*json.loads(sys.argv[2])))
        for _ in range(5):
            app.processEvents()
        out["moved"] = window.geometry().getRect()
    window.close()
    print("RESULT " + json.dumps(out))
""")


def start(tmp_path, width: int, height: int, settings: Path, move: tuple | None = None) -> dict:
    """Start the window in a fresh process whose offscreen screen is ``width`` x ``height``."""
    config = tmp_path / f"screen-{width}x{height}.json"
    config.write_text(json.dumps({"screens": [{"name": "screen", "x": 0, "y": 0, "width": width, "height": height,
                                               "logicalDpi": 96, "logicalBaseDpi": 96, "dpr": 1}],
                                  "windowFrameMargins": False}))
    env = {**os.environ, "QT_QPA_PLATFORM": f"offscreen:configfile={config}", "HF_HUB_OFFLINE": "1",
           "ATLAS_DATA_DIR": str(tmp_path / "data")}
    args = [sys.executable, "-c", SCRIPT, str(settings)] + ([json.dumps(move)] if move else [])
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


@pytest.mark.parametrize(("width", "height"), [(1280, 720), (1920, 1080)])
def test_a_first_start_fills_the_screen_and_a_restart_restores_the_saved_geometry(tmp_path, width, height):
    settings = tmp_path / "settings.ini"
    first = start(tmp_path, width, height, settings, move=(10, 40, width - 24, height - 80))
    assert first["available"] == [0, 0, width, height]
    assert first["frame"] == [0, 0, width, height], "a first start fills the available area"
    assert first["docks"]["input_dock"] >= 300 and first["docks"]["graph_dock"] >= 380
    assert first["moved"] == [10, 40, width - 24, height - 80]
    second = start(tmp_path, width, height, settings)
    assert second["geometry"] == first["moved"], "a restart restores where the window was left"


def test_a_layout_saved_by_an_older_version_gives_way_to_the_default(qtbot, tmp_path):
    path = str(tmp_path / "old.ini")
    old = QSettings(path, QSettings.IniFormat)
    window = MainWindow(old, warm_up=False)
    qtbot.addWidget(window)
    window.tabifyDockWidget(window.tokens_dock, window.metrics_dock)  # the old layout: metrics under the tokens
    old.setValue("window/state", window.saveState(1))
    window.host.shutdown()
    again = MainWindow(QSettings(path, QSettings.IniFormat), warm_up=False)
    qtbot.addWidget(again)
    assert again.tabifiedDockWidgets(again.metrics_dock) == []
    assert again.dockWidgetArea(again.metrics_dock) == again.dockWidgetArea(again.graph_dock)
    again.host.shutdown()


def test_dock_sizes_are_whole_pixels():
    sizes = dock_sizes(1366, 768, 250)
    assert all(isinstance(v, int) and v > 0 for v in sizes.values())
    assert np.isclose(sizes["input"] / (sizes["input"] + sizes["heads"]), 0.4, atol=0.01)
