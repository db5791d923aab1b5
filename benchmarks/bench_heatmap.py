"""Time from ``AttentionHeatmap.set_matrix`` to a repainted widget (budget: 30 ms at 512).

Run: ``QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/bench_heatmap.py``

Columns: "switch" is the head-switch case the budget is about: same tokens, a new matrix (axes and
zoom are kept). "new text" also replaces the labels (axes re-measured, view reset).
Each sample calls set_matrix, then ``widget.repaint()`` and ``QApplication.processEvents()``
(synchronous paint of the whole widget, including the ImageItem render and the axes);
"causal" adds a causal mask, "log" the log scale, "grab" renders into a pixmap instead.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from widgets.heatmap import AttentionHeatmap  # noqa: E402

BUDGET_MS = 30.0
SIZES = (128, 512, 1024)
REPEATS = 15


def _matrices(t: int, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    out = []
    for _ in range(n):
        a = rng.random((t, t), dtype=np.float32) ** 4
        a /= a.sum(axis=1, keepdims=True)
        out.append(a)
    return out


def _time(widget: AttentionHeatmap, app: QApplication, matrix, labels, masked=None) -> float:
    t0 = time.perf_counter()
    widget.set_matrix(matrix, labels, labels, masked=masked, title="bench")
    widget.repaint()
    app.processEvents()
    return (time.perf_counter() - t0) * 1000.0


def _time_grab(widget: AttentionHeatmap, matrix, labels) -> float:
    """set_matrix, then render the whole widget into a pixmap (independent of the
    platform's backing store)."""
    t0 = time.perf_counter()
    widget.set_matrix(matrix, labels, labels, title="bench")
    widget.grab()
    return (time.perf_counter() - t0) * 1000.0


def main() -> int:
    app = QApplication.instance() or QApplication([])
    rng = np.random.default_rng(0)
    widget = AttentionHeatmap()
    widget.resize(900, 800)
    widget.show()
    app.processEvents()
    rows = []
    for t in SIZES:
        mats = _matrices(t, 4, rng)
        labels = [f"tok{i}" for i in range(t)]
        causal = ~np.tril(np.ones((t, t), bool))
        _time(widget, app, mats[0], labels)  # warm up, fixes the labels
        switch = [_time(widget, app, mats[k % 4], labels) for k in range(REPEATS)]
        masked = [_time(widget, app, np.tril(mats[k % 4]), labels, causal) for k in range(REPEATS)]
        fresh = []
        for k in range(5):
            lab = [f"w{k}_{i}" for i in range(t)]
            fresh.append(_time(widget, app, mats[k % 4], lab))
        grabs = [_time_grab(widget, mats[k % 4], labels) for k in range(REPEATS)]
        widget.set_log_scale(True)
        logs = [_time(widget, app, mats[k % 4], labels) for k in range(REPEATS)]
        widget.set_log_scale(False)
        rows.append(
            (
                t,
                statistics.median(switch),
                max(switch),
                statistics.median(masked),
                statistics.median(logs),
                statistics.median(fresh),
                statistics.median(grabs),
            )
        )
    print(
        f"set_matrix -> repainted, {widget.width()}x{widget.height()} widget, "
        f"median of {REPEATS} (ms); budget {BUDGET_MS:.0f} ms at 512"
    )
    print(
        f"{'tokens':>6} | {'switch':>7} | {'sw max':>7} | {'causal':>7} | {'log':>7} "
        f"| {'new text':>8} | {'grab':>6} | budget"
    )
    print("-" * 75)
    ok = True
    for t, sw, swmax, cm, lg, fr, gr in rows:
        verdict = ""
        if t == 512:
            verdict = "ok" if sw <= BUDGET_MS else "OVER"
            ok = ok and sw <= BUDGET_MS
        print(
            f"{t:>6} | {sw:7.1f} | {swmax:7.1f} | {cm:7.1f} | {lg:7.1f} | {fr:8.1f} "
            f"| {gr:6.1f} | {verdict}"
        )
    widget.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
