"""The files Attention Atlas writes: the same from the window and from ``attention-atlas analyze``.

- ``attention.npz``: ``attentions`` float32 [layers, heads, T, T], ``tokens`` (str),
  ``input_ids`` (int64); encoder-decoder runs add ``cross_attentions``,
  ``decoder_attentions``, ``decoder_tokens``. Loadable with ``allow_pickle=False``.
- ``tokens.csv``: one row per row of the view:
  ``index,token,start,end,segment[,generated],<metric>...`` where

  - ``token`` is the row's display label (word pieces start with ``##``, see
    :mod:`analysis.tokens`; a merged word is the word as typed);
  - ``start``/``end`` are **absolute** character offsets into what was analysed:
    ``text`` alone, or ``text + "\n" + pair`` for a pair (:func:`input_text`), so a pair's
    token at ``(s, e)`` in the pair is written ``(s + len(text) + 1, e + len(text) + 1)``
    and ``input_text(run)[start:end]`` is always the row's text. A merged word spans its
    first piece's start to its last piece's end; a special token has the empty span at the
    end of the token before it (``0,0`` when it comes first). Decoder rows
    (``--stack decoder/cross``) have empty ``start``, ``end`` and ``segment``;
  - ``segment`` is 0 for the text, 1 for the pair, -1 for a special token;
  - ``generated`` (only for a generation, ``run.prompt_length`` set) is 1 for a row
    with a generated token in it, else 0;
  - then the metrics of the graph (``in_strength,out_strength,betweenness,closeness,
    pagerank,hub,authority``) and ``community`` (without a graph: ``in_strength`` and
    ``out_strength`` of the view), and ``flow`` when computed.
- ``edges.csv``: ``source,target,weight``: the kept edges of the view's graph (or, with no
  graph, every nonzero entry of the view); ``source`` and ``target`` are ``tokens.csv``
  indices, ``source -> target`` reads "source attends to target".
- ``summary.json``: model, layers, heads, tokens, text, pair, ``pair_start`` (where the pair
  begins in the offsets' text), view (its spec and ``description``), sparsification rule,
  modularity and timings in seconds.

Every number in these files (and in the matrix CSV, :func:`write_matrix_csv`) is written by
:mod:`analysis.io.numbers`: at most 7 significant digits (float32's precision), 0 for
anything within 1e-12 of 0, never ``-0.0``; ``summary.json`` writes NaN as null.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from analysis.attention.views import AttentionView
from analysis.io.numbers import clean_json, format_number
from analysis.run import AttentionRun

PAIR_SEPARATOR = "\n"  # between text and pair in the text that tokens.csv offsets index
OFFSETS_RULE = (
    "tokens.csv start/end are character offsets into text + '\\n' + pair (into text when there is "
    "no pair); a special token has the empty span at the end of the token before it"
)


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
        return open(
            path,
            mode,
            newline="" if "b" not in mode else None,
            encoding=None if "b" in mode else "utf-8",
        )
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


def input_text(run: AttentionRun) -> str:
    """The text that ``tokens.csv`` offsets index: ``text``, or ``text + "\n" + pair``."""
    return run.text if run.pair is None else run.text + PAIR_SEPARATOR + run.pair


def pair_start(run: AttentionRun) -> int | None:
    """Where the pair begins in :func:`input_text` (``len(text) + 1``); None without a pair."""
    return None if run.pair is None else len(run.text) + len(PAIR_SEPARATOR)


def token_spans(run: AttentionRun) -> np.ndarray:
    """int64 ``[T, 2]``: each token's span in :func:`input_text`.

    A token of the pair (segment 1) is shifted by :func:`pair_start`; a special token gets
    the empty span at the end of the token before it (``(0, 0)`` when it comes first).
    """
    shift = pair_start(run) or 0
    spans = np.zeros((run.num_tokens, 2), dtype=np.int64)
    previous_end = 0
    for i in range(run.num_tokens):
        if run.special_mask[i]:
            spans[i] = (previous_end, previous_end)
            continue
        offset = shift if int(run.segment_ids[i]) == 1 and run.pair is not None else 0
        start, end = int(run.offsets[i, 0]) + offset, int(run.offsets[i, 1]) + offset
        spans[i] = (start, end)
        previous_end = end
    return spans


def _decoder_rows(view: AttentionView) -> bool:
    return view.spec.stack in ("decoder", "cross")


def view_spans(run: AttentionRun, view: AttentionView) -> list[tuple[int, int] | None]:
    """Span ``(start, end)`` of each view row in :func:`input_text` (a merged word: from its
    first piece's start to its last piece's end); None for decoder rows, whose text the run
    does not keep."""
    if _decoder_rows(view):
        return [None] * len(view.row_tokens)
    spans = token_spans(run)
    return [(int(spans[list(g), 0].min()), int(spans[list(g), 1].max())) for g in view.row_tokens]


def view_segments(run: AttentionRun, view: AttentionView) -> list[int | None]:
    """Segment of each view row: 0 text, 1 pair, -1 special token; None for decoder rows."""
    if _decoder_rows(view):
        return [None] * len(view.row_tokens)
    return [int(run.segment_ids[g[0]]) for g in view.row_tokens]


def view_generated(run: AttentionRun, view: AttentionView) -> list[int] | None:
    """1 for a view row with a generated token in it, else 0; None when the run is not a
    generation (``run.prompt_length`` is None) or the rows are decoder tokens."""
    if run.prompt_length is None or _decoder_rows(view):
        return None
    mask = run.generated_mask
    return [int(bool(mask[list(g)].any())) for g in view.row_tokens]


def write_tokens_csv(
    path: str | os.PathLike,
    labels: Sequence[str],
    spans: Sequence[tuple[int, int] | None],
    columns: Mapping[str, np.ndarray] | None = None,
    *,
    segments: Sequence[int | None] | None = None,
    generated: Sequence[int] | None = None,
) -> None:
    """``index,token,start,end`` (then ``segment``, ``generated`` when given) then one column
    per entry of ``columns`` (in order). A span of None, a segment of None: empty cells.
    Numbers as :func:`analysis.io.numbers.format_number` writes them."""
    columns = dict(columns or {})
    extra = {"segment": segments, "generated": generated}
    extra = {name: values for name, values in extra.items() if values is not None}
    for name, values in {**extra, **columns}.items():
        if len(values) != len(labels):
            raise ValueError(f"{len(values)} values of '{name}' for {len(labels)} rows")
    with _open_for_writing(Path(path)) as handle:
        writer = csv.writer(handle)
        writer.writerow(["index", "token", "start", "end", *extra, *columns])
        for index, (label, span) in enumerate(zip(labels, spans, strict=True)):
            start, end = ("", "") if span is None else (int(span[0]), int(span[1]))
            marks = [
                "" if extra[name][index] is None else int(extra[name][index]) for name in extra
            ]
            values = [format_number(columns[name][index]) for name in columns]
            writer.writerow([index, label, start, end, *marks, *values])


def write_edges_csv(path: str | os.PathLike, sources, targets, weights) -> None:
    """``source,target,weight`` rows, one per edge ``source -> target`` (source attends to target)."""
    with _open_for_writing(Path(path)) as handle:
        writer = csv.writer(handle)
        writer.writerow(["source", "target", "weight"])
        for s, t, w in zip(sources, targets, weights, strict=True):
            writer.writerow([int(s), int(t), format_number(w)])


def nonzero_edges(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every positive entry of a matrix as an edge list (row-major order)."""
    sources, targets = np.nonzero(matrix > 0)
    return (
        sources.astype(np.int64),
        targets.astype(np.int64),
        matrix[sources, targets].astype(np.float64),
    )


# --- the matrix CSV ---------------------------------------------------------------------

MATRIX_TITLE = "Attention Atlas matrix"
_META_LINE = re.compile(r"^#\s*([A-Za-z_][A-Za-z0-9_-]*):\s?(.*)$")


def cell_meaning(view: AttentionView) -> str:
    """One sentence on what a cell of ``view.matrix`` is."""
    spec = view.spec
    if view.signed:
        text = "a signed score of the key token for the query token (it may be negative)"
    elif spec.kind == "head":
        text = "the attention weight of this head: the share of the query's attention that goes to the key"
    elif spec.kind == "mean":
        text = "the mean over the layer's heads of the attention weight of the query on the key"
    elif spec.kind == "max":
        text = "the largest attention weight of the query on the key over the layer's heads"
    else:  # rollout, and the flow view's matrix
        text = (
            "attention rollout up to this layer: the share of the query's representation that "
            "traces back to the key token of the input"
        )
    notes = []
    if view.row_stochastic and not view.signed:
        notes.append("each row sums to 1")
    elif not view.signed:
        notes.append("rows do not sum to 1")
    if spec.drop_special:
        notes.append("special tokens dropped and each row renormalised over the rest")
    if spec.merge_words:
        notes.append(
            "a word's row is the mean of its pieces' rows, its column the sum of its pieces' columns"
        )
    if view.masked is not None:
        notes.append("a key after its query is masked (causal) and written 0")
    return text + (f" ({'; '.join(notes)})" if notes else "")


def matrix_meta(view: AttentionView, model: str | None = None) -> dict:
    """The header facts of a view's matrix CSV (see :func:`write_matrix_csv`)."""
    spec = view.spec
    rows, cols = view.matrix.shape
    meta = {
        "model": model,
        "view": spec.describe(),
        "kind": spec.kind,
        "layer": spec.layer,
        "head": spec.head if spec.kind == "head" else None,
        "stack": spec.stack,
        "query": spec.query if spec.kind == "flow" else None,
        "words": "merged" if spec.merge_words else "tokens",
        "specials": "dropped" if spec.drop_special else "kept",
        "shape": f"{rows} x {cols}",
        "rows": "queries: the tokens that attend, in reading order (columns index,token)",
        "columns": "keys: the tokens attended to, in reading order (header index:token)",
        "cell": cell_meaning(view),
    }
    return {key: value for key, value in meta.items() if value is not None}


def _meta_text(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return format_number(value)
    return " ".join(str(value).split())  # one line


def write_matrix_csv(
    path: str | os.PathLike,
    matrix: np.ndarray,
    row_labels,
    col_labels,
    *,
    view: AttentionView | None = None,
    model: str | None = None,
    meta: Mapping | None = None,
) -> None:
    """A matrix (queries down, keys across) as an indexed, labelled CSV.

    The file starts with comment lines: ``# Attention Atlas matrix (...)``, then one
    ``# key: value`` line per fact: from ``view`` (:func:`matrix_meta`: model, view,
    kind, layer, head, stack, query, words, specials, shape, rows, columns, cell), then
    ``meta`` (added or replacing). Then the table: a header row
    ``index,token,0:<label>,1:<label>,...`` (column ``j``'s index and label, unique even
    when labels repeat) and one row per query: its index, its label, its cells.
    Numbers as :func:`analysis.io.numbers.format_number` writes them.

    Read it back with :func:`read_matrix_csv`, or with pandas:
    ``pandas.read_csv(path, skiprows=N, index_col=[0, 1])`` where ``N`` is the number of
    comment lines, which the first line states (not ``comment="#"``: labels such as
    ``##ing`` contain ``#``).
    """
    matrix = np.asarray(matrix)
    row_labels, col_labels = list(row_labels), list(col_labels)
    if matrix.ndim != 2 or matrix.shape != (len(row_labels), len(col_labels)):
        raise ValueError(
            f"a {matrix.shape} matrix for {len(row_labels)} row and {len(col_labels)} column labels"
        )
    facts = matrix_meta(view, model) if view is not None else ({"model": model} if model else {})
    facts.update({k: v for k, v in (meta or {}).items() if v is not None})
    lines = [f"{key}: {_meta_text(value)}" for key, value in facts.items()]
    count = len(lines) + 1
    title = (
        f"{MATRIX_TITLE} ({count} comment lines; pandas: "
        f"read_csv(path, skiprows={count}, index_col=[0, 1]))"
    )
    with _open_for_writing(Path(path)) as handle:
        for line in (title, *lines):
            handle.write(f"# {line}\n")
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["index", "token", *(f"{j}:{label}" for j, label in enumerate(col_labels))])
        for index, (label, row) in enumerate(zip(row_labels, matrix, strict=True)):
            writer.writerow([index, label, *(format_number(v) for v in row)])


def read_matrix_csv(
    path: str | os.PathLike,
) -> tuple[np.ndarray, list[str], list[str], dict[str, str]]:
    """``(matrix float64 [R, C], row labels, column labels, meta)`` of a file that
    :func:`write_matrix_csv` wrote; ``meta`` maps each ``# key: value`` line's key to its
    value as text. ``ValueError`` when the file is not such a matrix."""
    with open(path, encoding="utf-8", newline="") as handle:
        text = handle.read()
    lines = text.splitlines(keepends=True)
    meta: dict[str, str] = {}
    body_start = 0
    while body_start < len(lines) and lines[body_start].startswith("#"):
        match = _META_LINE.match(lines[body_start].rstrip("\r\n"))
        if match:
            meta[match.group(1)] = match.group(2)
        body_start += 1
    rows = list(csv.reader(io.StringIO("".join(lines[body_start:]))))
    if not rows or rows[0][:2] != ["index", "token"]:
        raise ValueError(f"'{path}' is not an Attention Atlas matrix: no 'index,token' header row")
    col_labels = []
    for j, name in enumerate(rows[0][2:]):
        index, sep, label = name.partition(":")
        if not sep or index != str(j):
            raise ValueError(f"'{path}': column {j + 2} is '{name}', not '{j}:<label>'")
        col_labels.append(label)
    row_labels, values = [], []
    for i, row in enumerate(r for r in rows[1:] if r):
        if len(row) != len(col_labels) + 2 or row[0] != str(i):
            raise ValueError(
                f"'{path}': row {i} does not have index {i} and {len(col_labels)} cells"
            )
        row_labels.append(row[1])
        values.append([float(v) for v in row[2:]])
    matrix = np.array(values, dtype=np.float64).reshape(len(row_labels), len(col_labels))
    return matrix, row_labels, col_labels, meta


def write_json(path: str | os.PathLike, data: Mapping) -> None:
    """``data`` as indented UTF-8 JSON, numbers cleaned (:func:`analysis.io.numbers.clean_json`:
    7 significant digits, no ``-0.0``, NaN and infinities as null)."""
    cleaned = clean_json(data)
    with _open_for_writing(Path(path)) as handle:
        json.dump(
            cleaned, handle, indent=2, ensure_ascii=False, allow_nan=False, default=_json_default
        )
        handle.write("\n")


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def build_summary(
    run: AttentionRun, view: AttentionView, graph=None, flow=None, timings=None
) -> dict:
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
        # tokens.csv start/end index text + "\n" + pair (text alone without a pair)
        "pair_start": pair_start(run),
        "offsets": OFFSETS_RULE,
        "view": {
            **view.spec.to_dict(),
            "description": view.spec.describe(),
            "title": view.title,
            "rows": len(view.row_labels),
        },
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
        summary["flow"] = {
            "query": view.spec.query,
            "layer": view.spec.layer,
            "total": float(np.sum(flow)),
        }
    return summary


def write_analysis_folder(
    out_dir, run: AttentionRun, view: AttentionView, graph=None, flow=None, timings=None
) -> Path:
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
    write_tokens_csv(
        folder / "tokens.csv",
        view.row_labels,
        view_spans(run, view),
        columns,
        segments=view_segments(run, view),
        generated=view_generated(run, view),
    )
    write_edges_csv(folder / "edges.csv", *edges)
    write_json(folder / "summary.json", build_summary(run, view, graph, flow, timings))
    return folder
