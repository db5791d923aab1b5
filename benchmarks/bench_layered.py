"""Layered graph across layers (rollout / flow graph for the canvas): build time, one table.

6 layers x 12 heads of synthetic attention (``bench_graph.synthetic_attentions``), the
default coverage rule, with and without the canvas cap (``CANVAS_EDGE_LIMIT`` edges).
Budget: well under a second at 512 tokens. Run: ``.venv/bin/python benchmarks/bench_layered.py``.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.graph.layered import CANVAS_EDGE_LIMIT, layered_graph  # noqa: E402
from analysis.graph.rules import SparsifyRule  # noqa: E402
from benchmarks.bench_graph import synthetic_attentions  # noqa: E402


def main() -> None:
    print(f"{'tokens':>6} {'cap':>7} {'nodes':>6} {'edges':>8} {'k/node':>6} {'median s':>9}")
    for n in (128, 512):
        attentions = synthetic_attentions(6, 12, n)
        for cap in (None, CANVAS_EDGE_LIMIT):
            times = []
            for _ in range(5):
                started = time.perf_counter()
                graph = layered_graph(attentions, 5, SparsifyRule(), max_edges=cap)
                times.append(time.perf_counter() - started)
            print(
                f"{n:>6} {cap or '-':>7} {graph.num_nodes:>6} {len(graph.weights):>8} "
                f"{graph.capped_per_node or '-':>6} {statistics.median(times):>9.3f}"
            )


if __name__ == "__main__":
    main()
