"""GraphCanvas drawing budget: set_graph + repaint at 128 / 256 / 512 tokens.

Graphs look like coverage-sparsified attention: each row of a peaked random attention
matrix (a sink token, local neighbours, a few content links) keeps its strongest keys
up to 90 % of its mass, ~10-50 edges per token.  Prints the median of a few runs;
"layout" is the layout function alone, "set_graph" includes it, "repaint" is a
synchronous paint of the whole widget (QWidget.grab) on the offscreen platform.

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/bench_canvas.py
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
from PySide6 import QtWidgets  # noqa: E402

from analysis.graph.layout import arc_layout, force_layout  # noqa: E402
from widgets.graph_canvas import GraphCanvas  # noqa: E402

REPEATS = 3


def attention_graph(n: int, seed: int = 0, coverage: float = 0.9):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 3.0, (n, n))
    logits[:, 0] += 4.0  # attention sink
    idx = np.arange(n)
    logits += 3.0 * np.exp(-np.abs(idx[:, None] - idx[None, :]) / 2.0)  # locality
    a = np.exp(logits - logits.max(axis=1, keepdims=True))
    a /= a.sum(axis=1, keepdims=True)
    order = np.argsort(-a, axis=1)
    sorted_a = np.take_along_axis(a, order, axis=1)
    keep = np.cumsum(sorted_a, axis=1) - sorted_a < coverage
    rows, ranks = np.nonzero(keep)
    cols = order[rows, ranks]
    w = a[rows, cols]
    labels = [f"tok{i}" for i in range(n)]
    metrics = {
        "in_strength": np.bincount(cols, weights=w, minlength=n),
        "out_strength": np.bincount(rows, weights=w, minlength=n),
    }
    metrics["pagerank"] = metrics["in_strength"] / metrics["in_strength"].sum()
    communities = (idx // 24) % 8
    return labels, rows, cols, w, metrics, communities


def main() -> None:
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    header = f"{'tokens':>6} {'edges':>6} {'edges/tok':>9} {'layout':>8} {'layout_s':>9} {'set_graph_s':>11} {'repaint_s':>9} {'total_s':>8}"
    print(header)
    print("-" * len(header))
    for n in (128, 256, 512):
        labels, s, t, w, metrics, comm = attention_graph(n)
        for kind in ("arc", "force"):
            lay, setg, paint = [], [], []
            for _ in range(REPEATS):
                canvas = GraphCanvas()
                canvas.resize(1200, 800)
                canvas.set_layout(kind)
                canvas.set_size_metric("pagerank")
                canvas.show()
                app.processEvents()
                t0 = time.perf_counter()
                if kind == "force":
                    force_layout(n, s, t, w, seed=0)
                else:
                    arc_layout(n)
                lay.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                canvas.set_graph(labels, s, t, w, metrics=metrics, communities=comm)
                setg.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                canvas.grab()
                paint.append(time.perf_counter() - t0)
                canvas.close()
                canvas.deleteLater()
                app.processEvents()
            ml, ms, mp = (statistics.median(v) for v in (lay, setg, paint))
            print(
                f"{n:>6} {len(s):>6} {len(s) / n:>9.1f} {kind:>8} {ml:>9.3f} {ms:>11.3f} {mp:>9.3f} {ms + mp:>8.3f}"
            )


if __name__ == "__main__":
    main()
