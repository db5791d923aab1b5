"""The files Attention Atlas writes: the same from the window and from ``attention-atlas analyze``.

- ``attention.npz``: ``attentions`` float32 [layers, heads, T, T], ``tokens`` (str),
  ``input_ids`` (int64); encoder-decoder runs add ``cross_attentions``,
  ``decoder_attentions``, ``decoder_tokens``. Loadable with ``allow_pickle=False``.
- ``tokens.csv``: one row per row of the view: ``index,token,start,end`` then one column per
  metric (and ``community``, ``flow`` when computed).
- ``edges.csv``: ``source,target,weight``: the kept edges of the view's graph (or, with no
  graph, every nonzero entry of the view).
- ``summary.json``: model, layers, heads, tokens, view, sparsification rule, modularity and
  timings in seconds.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from analysis.attention.views import AttentionView
from analysis.run import AttentionRun


class ExportError(OSError):
    """A file could not be written; the message names the path and the reason."""


def ensure_writable_dir(folder: str | os.PathLike) -> Path:
    """Create ``folder`` if needed and check a file can be written in it."""
    path = Path(folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".atlas-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise ExportError(f"cannot write to '{path}': {error.strerror or error}") from error
    return path


def _open_for_writing(path: Path, mode: str = "w"):
    try:
        return open(path, mode, newline="" if "b" not in mode else None, encoding=None if "b" in mode else "utf-8")
    except OSError as error:
        raise ExportError(f"cannot write '{path}': {error.strerror or error}") from error


def write_attention_npz(path: str | os.PathLike, run: AttentionRun) -> None:
    """All attention arrays of ``run`` with its tokens; no pickled objects."""
    arrays = {
        "attentions": np.asarray(run.attentions, dtype=np.float32),
        "tokens": np.asarray(run.tokens, dtype=str),
        "input_ids": np.asarray(run.input_ids, dtype=np.int64),
    }
    if run.cross_attentions is not None:
        arrays["cross_attentions"] = np.asarray(run.cross_attentions, dtype=np.float32)
        arrays["decoder_attentions"] = np.asarray(run.decoder_attentions, dtype=np.float32)
        arrays["decoder_tokens"] = np.asarray(run.decoder_tokens, dtype=str)
        arrays["decoder_input_ids"] = np.asarray(run.decoder_input_ids, dtype=np.int64)
    with _open_for_writing(Path(path), "wb") as handle:
        np.savez_compressed(handle, **arrays)


def view_spans(run: AttentionRun, view: AttentionView) -> list[tuple[int, int]]:
    """Character span (start, end) of each view row in its segment's text; (0, 0) for specials."""
    if view.spec.stack in ("decoder", "cross"):
        return [(0, 0)] * len(view.row_tokens)
    spans = []
    for group in view.row_tokens:
        starts = [int(run.offsets[i, 0]) for i in group]
        ends = [int(run.offsets[i, 1]) for i in group]
        spans.append((min(starts), max(ends)))
    return spans


def write_tokens_csv(
    path: str | os.PathLike,
    labels: Sequence[str],
    spans: Sequence[tuple[int, int]],
    columns: Mapping[str, np.ndarray] | None = None,
) -> None:
    """``index,token,start,end`` then one column per entry of ``columns`` (in order)."""
    columns = dict(columns or {})
    with _open_for_writing(Path(path)) as handle:
        writer = csv.writer(handle)
        writer.writerow(["index", "token", "start", "end", *columns])
        for index, (label, (start, end)) in enumerate(zip(labels, spans, strict=True)):
            values = [_csv_number(columns[name][index]) for name in columns]
            writer.writerow([index, label, start, end, *values])


def _csv_number(value) -> str:
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return repr(float(value))


def write_edges_csv(path: str | os.PathLike, sources, targets, weights) -> None:
    """``source,target,weight`` rows, one per edge ``source -> target`` (source attends to target)."""
    with _open_for_writing(Path(path)) as handle:
        writer = csv.writer(handle)
        writer.writerow(["source", "target", "weight"])
        for s, t, w in zip(sources, targets, weights, strict=True):
            writer.writerow([int(s), int(t), repr(float(w))])


def nonzero_edges(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every positive entry of a matrix as an edge list (row-major order)."""
    sources, targets = np.nonzero(matrix > 0)
    return sources.astype(np.int64), targets.astype(np.int64), matrix[sources, targets].astype(np.float64)


def write_matrix_csv(path: str | os.PathLike, matrix: np.ndarray, row_labels, col_labels) -> None:
    """The view's matrix with token labels as header row and first column (queries down, keys across)."""
    with _open_for_writing(Path(path)) as handle:
        writer = csv.writer(handle)
        writer.writerow(["query \\ key", *col_labels])
        for label, row in zip(row_labels, np.asarray(matrix), strict=True):
            writer.writerow([label, *(repr(float(v)) for v in row)])


def write_json(path: str | os.PathLike, data: Mapping) -> None:
    with _open_for_writing(Path(path)) as handle:
        json.dump(data, handle, indent=2, ensure_ascii=False, default=_json_default)
        handle.write("\n")


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def build_summary(run: AttentionRun, view: AttentionView, graph=None, flow=None, timings=None) -> dict:
    """The ``summary.json`` content: what was analysed, how, and how long it took."""
    facts = run.model
    summary = {
        "model": {
            "name": facts.name,
            "source": facts.source,
            "type": facts.model_type,
            "architecture": facts.architecture,
            "max_positions": facts.max_positions,
        },
        "layers": run.num_layers,
        "heads": run.num_heads,
        "tokens": run.num_tokens,
        "truncated": run.truncated,
        "notice": run.notice,
        "text": run.text,
        "pair": run.pair,
        "view": {**view.spec.to_dict(), "title": view.title, "rows": len(view.row_labels)},
        "graph": None,
        "modularity": None,
        "timings": {k: round(float(v), 6) for k, v in {**run.timings, **(timings or {})}.items()},
    }
    if graph is not None:
        summary["graph"] = {
            "sparsification": {**graph.rule.to_dict(), "description": graph.rule.describe()},
            "edges": int(len(graph.weights)),
            "resolution": graph.resolution,
            "seed": graph.seed,
            "density": graph.density,
            "reciprocity": graph.reciprocity,
            "communities": int(len(set(graph.communities.tolist()))),
            "kernels": graph.kernels,
        }
        summary["modularity"] = graph.modularity
    if flow is not None:
        summary["flow"] = {"query": view.spec.query, "layer": view.spec.layer, "total": float(np.sum(flow))}
    return summary


def write_analysis_folder(out_dir, run: AttentionRun, view: AttentionView, graph=None, flow=None, timings=None) -> Path:
    """Write attention.npz, tokens.csv, edges.csv and summary.json into ``out_dir``."""
    folder = ensure_writable_dir(out_dir)
    write_attention_npz(folder / "attention.npz", run)
    columns: dict[str, np.ndarray] = {}
    if graph is not None:
        columns.update(graph.metrics)
        columns["community"] = graph.communities
        edges = (graph.sources, graph.targets, graph.weights)
    else:
        # Without a graph, each token's attention strengths (same meaning as the graph's).
        columns["in_strength"] = view.matrix.sum(axis=0) if view.is_square else None
        columns["out_strength"] = view.matrix.sum(axis=1)
        columns = {k: v for k, v in columns.items() if v is not None}
        edges = nonzero_edges(view.matrix)
    if flow is not None:
        columns["flow"] = np.asarray(flow)
    write_tokens_csv(folder / "tokens.csv", view.row_labels, view_spans(run, view), columns)
    write_edges_csv(folder / "edges.csv", *edges)
    write_json(folder / "summary.json", build_summary(run, view, graph, flow, timings))
    return folder
