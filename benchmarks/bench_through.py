"""Rollout, flow, the graph across layers and its route *through* contributions vs through
raw attention, side by side on the default model (MiniLM, 6 layers), one table.

For each length, the contributions are computed once from the extraction's own recorded
forward pass; then, per source, the median of 5 runs of: the capacities of layers 0..5
(``layer_capacities``), the rollout view (``make_view``), attention flow of one query at
the last layer, the layered graph with the canvas cap, and the most probable route. The
ratio column divides each source's total by attention's, measured in the same loop, so
other programs on the shared cores affect both alike. One torch thread.

Run: ``.venv/bin/python benchmarks/bench_through.py [--tokens 64,128,256,512]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TEXT = (
    "Attention Atlas shows where each token of a text looks, layer by layer and head by head. "
    "Raw attention weights say where a head looks, not how much of each token reaches the next "
    "layer: a head can attend strongly to a token whose value vector is tiny, and the residual "
    "stream and the layer norms mix in the rest. Contributions measure that instead. "
)


def median_seconds(work, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def time_source(run, through: str, query: int, layer: int, rule) -> dict[str, float]:
    """Median seconds of each step through one source."""
    from analysis.attention.capacities import layer_capacities
    from analysis.attention.flow import attention_flow
    from analysis.attention.views import ViewSpec, make_view
    from analysis.graph.layered import CANVAS_EDGE_LIMIT, layered_graph
    from analysis.graph.paths import layered_route

    capacities = layer_capacities(run, through, upto_layer=layer)
    target = run.num_tokens - 1
    return {
        "capac": median_seconds(lambda: layer_capacities(run, through, upto_layer=layer)),
        "view": median_seconds(lambda: make_view(run, ViewSpec("rollout", through=through))),
        "flow": median_seconds(lambda: attention_flow(layers=capacities, query=query, layer=layer)),
        "layered": median_seconds(
            lambda: layered_graph(layers=capacities, layer=layer, rule=rule, max_edges=CANVAS_EDGE_LIMIT)
        ),
        "route": median_seconds(
            lambda: layered_route(layers=capacities, query=query, target=target, layer=layer)
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", default="64,128,256,512")
    lengths = [int(n) for n in parser.parse_args().tokens.split(",")]

    import torch

    torch.set_num_threads(1)
    from analysis.attention.extract import extract
    from analysis.contributions import contributions_for_run, record_layers, run_contributions
    from analysis.graph.rules import SparsifyRule
    from analysis.models.loading import load_model

    loaded = load_model()
    rule = SparsifyRule()
    print(f"{'tokens':>6} {'through':>13} {'contrib s':>9} {'capac s':>8} {'view s':>7} "
          f"{'flow s':>7} {'layered s':>9} {'route s':>8} {'total s':>8} {'x attn':>6}")
    for n in lengths:
        with record_layers(loaded) as recorder:
            run = extract(loaded, TEXT * 40, max_tokens=n)
        capture = recorder.capture(attentions=run.attentions)
        kinds = ("value_norm", "alti") + (("value_zeroing",) if n <= 128 else ())
        computed = {}
        for kind in kinds:
            started = time.perf_counter()
            computed.update(contributions_for_run(loaded, run, kinds=(kind,), capture=capture))
            computed[f"seconds {kind}"] = time.perf_counter() - started
        run = replace(run, contributions=run_contributions(computed))
        layer, query, t = run.num_layers - 1, run.num_tokens // 2, run.num_tokens
        attention_total = None
        for through in ("attention", *kinds):
            seconds = time_source(run, through, query, layer, rule)
            total = sum(seconds.values())
            attention_total = attention_total or total
            contrib = computed.get(f"seconds {through}")
            print(f"{t:>6} {through:>13} {contrib if contrib is not None else 0.0:>9.3f} "
                  f"{seconds['capac']:>8.4f} {seconds['view']:>7.4f} {seconds['flow']:>7.3f} "
                  f"{seconds['layered']:>9.4f} {seconds['route']:>8.4f} {total:>8.3f} "
                  f"{total / attention_total:>6.2f}")


if __name__ == "__main__":
    main()
