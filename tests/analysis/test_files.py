"""The data files: numbers as float32 means them, word-piece labels, absolute offsets with
segments, the indexed matrix CSV and its reader, GEXF / GraphML with drawing and metadata."""

from __future__ import annotations

import csv
import json
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import replace

import networkx as nx
import numpy as np
import pytest

from analysis.attention.extract import extract, extract_ids
from analysis.attention.views import ViewSpec, make_view
from analysis.graph.export import (
    COMMUNITY_PALETTE,
    POSITION_SCALE,
    SIZE_RANGE,
    to_networkx,
    write_gexf,
    write_graphml,
)
from analysis.graph.layout import circular_layout
from analysis.graph.metrics import analyze_graph
from analysis.graph.rules import SparsifyRule
from analysis.io.folder import (
    input_text,
    pair_start,
    read_matrix_csv,
    token_spans,
    view_generated,
    view_spans,
    write_analysis_folder,
    write_json,
    write_matrix_csv,
    write_tokens_csv,
)
from analysis.io.numbers import clean_json, clean_number, format_number
from analysis.models.loading import load_model
from analysis.options import METRIC_NAMES
from analysis.tokens import continuation_mask, display_label, display_labels

TEXT = "Where is the tokenization cat?"
PAIR = "The cat is sleeping on the mat, is it?"
VIZ = "{http://www.gexf.net/1.2draft/viz}"
GEXF = "{http://www.gexf.net/1.2draft}"


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def attention_like(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    matrix = rng.random((n, n)) ** 3
    return matrix / matrix.sum(axis=1, keepdims=True)


# --- numbers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (-0.0, "0.0"),
        (-4.66e-17, "0.0"),
        (3e-13, "0.0"),
        (0.30000001192092896, "0.3"),
        (np.float32(0.1), "0.1"),
        (1 / 3, "0.3333333"),
        (-2 / 3, "-0.6666667"),
        (2.5e-08, "2.5e-08"),
        (1234567.89, "1234568.0"),
        (12, "12"),
        (np.int64(-3), "-3"),
        (True, "1"),
        (float("nan"), "nan"),
        (float("-inf"), "-inf"),
    ],
)
def test_format_number(value, text):
    assert format_number(value) == text


def test_clean_number_keeps_types_and_never_gives_negative_zero():
    assert clean_number(np.int32(7)) == 7 and isinstance(clean_number(np.int32(7)), int)
    zero = clean_number(-1e-15)
    assert zero == 0.0 and math.copysign(1.0, zero) == 1.0
    assert math.copysign(1.0, clean_number(-0.0)) == 1.0
    assert clean_number(0.123456789, digits=3) == 0.123
    assert format_number(0.123456789, digits=4) == "0.1235"  # the widgets' shorter form


def test_clean_json_rounds_nested_numbers_and_nulls_nan():
    data = {
        "a": np.float64(-0.0),
        "b": [np.nan, 1 / 3, (np.inf, 2)],
        "c": np.arange(2),
        "d": "x",
        "e": True,
    }
    assert clean_json(data) == {
        "a": 0.0,
        "b": [None, 0.3333333, [None, 2]],
        "c": [0, 1],
        "d": "x",
        "e": True,
    }


def test_write_json_is_strict_json(tmp_path):
    write_json(tmp_path / "s.json", {"nan": float("nan"), "noise": -4.66e-17, "x": np.float32(0.1)})
    text = (tmp_path / "s.json").read_text(encoding="utf-8")
    assert json.loads(text) == {"nan": None, "noise": 0.0, "x": 0.1}
    assert "NaN" not in text and "e-17" not in text


# --- word-piece labels -------------------------------------------------------------------


def test_wordpiece_continuations_keep_their_marker():
    assert display_label("##ing") == "##ing"
    assert display_labels(
        ["[CLS]", "token", "##ization", "is", ",", "[SEP]"], [1, 0, 0, 0, 0, 1]
    ) == ("[CLS]", "token", "##ization", "is", ",", "[SEP]")
    assert continuation_mask(["[CLS]", "token", "##ization", "is"], [1, 0, 0, 0]) == [
        False,
        False,
        True,
        False,
    ]


def test_byte_level_pieces_without_a_word_start_are_marked():
    tokens = ["Token", "ization", "Ġsplits", "Ġcaf", "Ã©", "Ġwords", "!", "Ċ", "Next", "Ġ12", "34"]
    assert display_labels(tokens) == (
        "Token",
        "##ization",
        "splits",
        "caf",
        "##é",
        "words",
        "!",
        "⏎",
        "Next",
        "12",
        "##34",
    )


def test_sentencepiece_pieces_without_a_word_start_are_marked():
    assert display_labels(["<s>", "▁Token", "ization", "▁world", ","], [1, 0, 0, 0, 0]) == (
        "<s>",
        "Token",
        "##ization",
        "world",
        ",",
    )


def test_word_ids_decide_when_given():
    tokens = ["▁a", "b", "▁c", "d", "e"]
    labels = display_labels(tokens, word_ids=[0, 0, 0, 0, 1], segment_ids=[0, 0, 1, 1, 1])
    assert labels == ("a", "##b", "c", "##d", "e")  # same word id across segments is not a word
    assert display_label("ization", continuation=True) == "##ization"
    assert display_label(",", continuation=True) == ","  # punctuation never carries the mark


def test_a_real_wordpiece_run_shows_pieces_and_merged_words(default_loaded):
    run = extract(default_loaded, TEXT)
    assert run.labels[run.tokens.index("##ization")] == "##ization"
    words = make_view(run, ViewSpec("head", layer=0, merge_words=True))
    assert "tokenization" in words.row_labels and not any(
        label.startswith("##") for label in words.row_labels
    )


def test_byte_level_pieces_match_the_word_ids(tiny_model_dir):
    loaded = load_model(str(tiny_model_dir("gpt2")))
    text = "Tokenization splits unbelievably long words"
    run = extract(loaded, text)
    assert any(label.startswith("##") for label in run.labels)
    for i in range(1, run.num_tokens):
        if "␣" in (run.labels[i], run.labels[i - 1]):
            continue  # a lone space token (this tiny vocabulary has them): no letters to join
        assert run.labels[i].startswith("##") == (run.word_ids[i] == run.word_ids[i - 1]), (
            run.tokens
        )
        start, end = run.offsets[i]
        assert text[start:end] == run.labels[i].removeprefix("##")


# --- the matrix CSV ----------------------------------------------------------------------


def test_matrix_csv_round_trips_with_unique_columns(tmp_path):
    labels = ["[CLS]", "the", "cat", "is", "the", 'a,"b"', "##ing", "[SEP]"]
    matrix = attention_like(8)
    matrix[0, 1] = -4.66e-17
    matrix[0, 2] = -0.0
    path = tmp_path / "m.csv"
    write_matrix_csv(
        path, matrix, labels, labels, meta={"model": "mini", "layer": 2, "note": "two\nlines"}
    )
    lines = path.read_text(encoding="utf-8").splitlines()
    comments = [line for line in lines if line.startswith("#")]
    assert lines[: len(comments)] == comments  # comments come first
    assert f"skiprows={len(comments)}" in lines[0]
    assert (
        "# model: mini" in comments and "# layer: 2" in comments and "# note: two lines" in comments
    )
    header = next(csv.reader([lines[len(comments)]]))
    assert header[:2] == ["index", "token"] and len(set(header)) == len(header)
    assert header[2:] == [f"{j}:{label}" for j, label in enumerate(labels)]
    back, rows, cols, meta = read_matrix_csv(path)
    assert rows == labels and cols == labels
    assert meta == {"model": "mini", "layer": "2", "note": "two lines"}
    np.testing.assert_allclose(back, matrix, rtol=5e-7, atol=1e-12)
    assert back[0, 1] == 0.0 and math.copysign(1.0, back[0, 2]) == 1.0
    text = path.read_text(encoding="utf-8")
    assert "-0.0" not in text and "e-17" not in text


def test_matrix_csv_of_a_view_says_what_it_is(tmp_path, default_loaded):
    run = extract(default_loaded, TEXT, PAIR)
    view = make_view(run, ViewSpec("head", layer=2, head=5))
    path = tmp_path / "m.csv"
    write_matrix_csv(
        path, view.matrix, view.row_labels, view.col_labels, view=view, model=run.model.name
    )
    matrix, rows, cols, meta = read_matrix_csv(path)
    assert rows == list(view.row_labels) and cols == list(view.col_labels)
    np.testing.assert_allclose(matrix, view.matrix, rtol=5e-7, atol=1e-12)
    assert meta["model"] == run.model.name and meta["view"] == "layer 2 · head 5"
    assert (meta["kind"], meta["layer"], meta["head"], meta["stack"]) == ("head", "2", "5", "self")
    assert meta["rows"].startswith("queries") and meta["columns"].startswith("keys")
    assert "each row sums to 1" in meta["cell"]
    maxed = make_view(run, ViewSpec("max", layer=1, merge_words=True, drop_special=True))
    write_matrix_csv(path, maxed.matrix, maxed.row_labels, maxed.col_labels, view=maxed)
    _, _, _, meta = read_matrix_csv(path)
    assert "head" not in meta and "rows do not sum to 1" in meta["cell"]
    assert "renormalised" in meta["cell"] and "mean of its pieces" in meta["cell"]


def test_the_old_matrix_call_still_works_and_bad_files_are_refused(tmp_path):
    path = tmp_path / "m.csv"
    write_matrix_csv(path, np.eye(2), ["a", "b"], ["c", "d"])  # app/exports.py's call
    matrix, rows, cols, meta = read_matrix_csv(path)
    assert rows == ["a", "b"] and cols == ["c", "d"] and meta == {}
    np.testing.assert_array_equal(matrix, np.eye(2))
    with pytest.raises(ValueError):
        write_matrix_csv(path, np.eye(2), ["a"], ["c", "d"])
    (tmp_path / "bad.csv").write_text("query \\ key,a\na,1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="index,token"):
        read_matrix_csv(tmp_path / "bad.csv")


# --- tokens.csv: absolute offsets, segments, generated -------------------------------------


@pytest.fixture(scope="module")
def pair_folder(tmp_path_factory, default_loaded):
    run = extract(default_loaded, TEXT, PAIR)
    view = make_view(run, ViewSpec("head", layer=2, head=5))
    graph = analyze_graph(view.matrix, SparsifyRule())
    folder = tmp_path_factory.mktemp("pair")
    write_analysis_folder(folder, run, view, graph)
    write_matrix_csv(
        folder / "matrix.csv",
        view.matrix,
        view.row_labels,
        view.col_labels,
        view=view,
        model=run.model.name,
    )
    write_gexf(graph, view.row_labels, folder / "graph.gexf", model=run.model.name, view=view)
    write_graphml(graph, view.row_labels, folder / "graph.graphml", model=run.model.name, view=view)
    return run, view, graph, folder


def test_tokens_csv_offsets_are_absolute_in_text_newline_pair(pair_folder):
    run, view, _, folder = pair_folder
    typed = TEXT + "\n" + PAIR
    assert input_text(run) == typed and pair_start(run) == len(TEXT) + 1
    rows = read_rows(folder / "tokens.csv")
    assert list(rows[0])[:5] == ["index", "token", "start", "end", "segment"]
    assert "generated" not in rows[0]
    assert [r["token"] for r in rows] == list(view.row_labels)
    assert [int(r["segment"]) for r in rows] == run.segment_ids.tolist()
    for row in rows:
        start, end, segment = int(row["start"]), int(row["end"]), int(row["segment"])
        if segment == -1:
            assert start == end
            continue
        # the model is uncased: compare as it sees the text
        assert typed[start:end].lower() == row["token"].removeprefix("##")
        assert (start > len(TEXT)) == (segment == 1)
    specials = [(int(r["start"]), int(r["end"])) for r in rows if r["segment"] == "-1"]
    assert specials == [(0, 0), (len(TEXT), len(TEXT)), (len(typed), len(typed))]
    pair_tokens = [r for r in rows if r["segment"] == "1"]
    assert typed[int(pair_tokens[0]["start"]) : int(pair_tokens[-1]["end"])] == PAIR
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    assert summary["pair_start"] == len(TEXT) + 1 and "text + '\\n' + pair" in summary["offsets"]
    assert summary["view"]["description"] == "layer 2 · head 5"


def test_merged_words_span_their_pieces(tmp_path, default_loaded):
    run = extract(default_loaded, TEXT, PAIR)
    view = make_view(run, ViewSpec("mean", merge_words=True, drop_special=True))
    spans = view_spans(run, view)
    typed = input_text(run)
    labels = [label.lower() for label in view.row_labels]  # the model is uncased
    assert [typed[s:e].lower() for s, e in spans] == labels
    assert "tokenization" in view.row_labels
    write_analysis_folder(tmp_path, run, view)
    rows = read_rows(tmp_path / "tokens.csv")
    assert [typed[int(r["start"]) : int(r["end"])].lower() for r in rows] == labels
    assert {r["segment"] for r in rows} == {"0", "1"}


def test_token_spans_without_a_pair_are_the_offsets(default_loaded):
    run = extract(default_loaded, TEXT)
    spans = token_spans(run)
    keep = ~run.special_mask
    np.testing.assert_array_equal(spans[keep], run.offsets[keep])
    assert input_text(run) == TEXT and pair_start(run) is None


def test_a_generation_has_a_generated_column(tmp_path, tiny_model_dir):
    loaded = load_model(str(tiny_model_dir("gpt2")))
    ids = loaded.tokenizer("The cat sat on the mat")["input_ids"]
    run = extract_ids(loaded, ids, prompt_length=3)
    view = make_view(run, ViewSpec("mean"))
    assert view_generated(run, view) == [0, 0, 0] + [1] * (len(ids) - 3)
    write_analysis_folder(tmp_path, run, view)
    rows = read_rows(tmp_path / "tokens.csv")
    assert list(rows[0])[:6] == ["index", "token", "start", "end", "segment", "generated"]
    assert [int(r["generated"]) for r in rows] == [0, 0, 0] + [1] * (len(ids) - 3)
    assert view_generated(replace(run, prompt_length=None), view) is None


def test_decoder_rows_have_no_offsets(tmp_path, tiny_model_dir):
    loaded = load_model(str(tiny_model_dir("t5")))
    run = extract(loaded, "Hello world", decoder_text="Hallo Welt")
    view = make_view(run, ViewSpec("mean", stack="decoder"))
    write_analysis_folder(tmp_path, run, view)
    rows = read_rows(tmp_path / "tokens.csv")
    assert len(rows) == len(run.decoder_tokens)
    assert all(r["start"] == r["end"] == r["segment"] == "" for r in rows)


def test_write_tokens_csv_without_segments_keeps_its_columns(tmp_path):
    write_tokens_csv(
        tmp_path / "a.csv", ["a", "b"], [(0, 1), (2, 3)], {"score": np.array([-0.0, 1 / 3])}
    )
    rows = read_rows(tmp_path / "a.csv")
    assert list(rows[0]) == ["index", "token", "start", "end", "score"]
    assert [r["score"] for r in rows] == ["0.0", "0.3333333"]
    with pytest.raises(ValueError, match="segment"):
        write_tokens_csv(tmp_path / "b.csv", ["a", "b"], [(0, 1), (2, 3)], segments=[0])


def _significant_digits(number: str) -> int:
    mantissa = number.lstrip("-").split("e")[0].replace(".", "").lstrip("0")
    return len(mantissa.rstrip("0")) if "." in number.split("e")[0] else len(mantissa)


def test_no_float_noise_in_any_file(pair_folder):
    _, _, _, folder = pair_folder
    names = ["tokens.csv", "edges.csv", "summary.json", "matrix.csv", "graph.gexf", "graph.graphml"]
    for name in names:
        text = (folder / name).read_text(encoding="utf-8")
        assert not re.search(r"-0\.0(?![0-9])", text), name
        assert not re.search(r"e-(1[3-9]|[2-9]\d|\d{3})", text), name  # nothing below 1e-12
        assert "e-17" not in text and "NaN" not in text, name
    for name in ("tokens.csv", "edges.csv", "matrix.csv"):
        with open(folder / name, encoding="utf-8", newline="") as handle:
            cells = [
                c
                for row in csv.reader(line for line in handle if not line.startswith("#"))
                for c in row
            ]
        numbers = [c for c in cells if re.fullmatch(r"-?\d+\.\d+(e[+-]\d+)?|-?\d+e[+-]\d+", c)]
        assert numbers, name
        assert max(_significant_digits(c) for c in numbers) <= 7, name
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    assert all(v >= 0 for v in summary["timings"].values())


# --- GEXF and GraphML ------------------------------------------------------------------------


def _gexf_nodes(path):
    root = ET.parse(path).getroot()
    return root, root.find(f"{GEXF}graph").find(f"{GEXF}nodes").findall(f"{GEXF}node")


def test_gexf_has_positions_colours_sizes_and_metadata(pair_folder):
    run, view, graph, folder = pair_folder
    root, nodes = _gexf_nodes(folder / "graph.gexf")
    assert len(nodes) == graph.n
    sizes = []
    for node in nodes:
        index = int(node.get("id"))
        assert node.get("label") == view.row_labels[index]
        position = node.find(f"{VIZ}position")
        assert float(position.get("x")) == pytest.approx(index * POSITION_SCALE)  # the arc layout
        assert float(position.get("y")) == 0.0
        colour = node.find(f"{VIZ}color")
        expected = COMMUNITY_PALETTE[int(graph.communities[index]) % len(COMMUNITY_PALETTE)]
        assert "#" + "".join(f"{int(colour.get(c)):02x}" for c in "rgb") == expected
        sizes.append(float(node.find(f"{VIZ}size").get("value")))
    pagerank = graph.metrics["pagerank"]
    assert (
        sizes[int(np.argmax(pagerank))] == SIZE_RANGE[1]
        and sizes[int(np.argmin(pagerank))] == SIZE_RANGE[0]
    )
    assert all(SIZE_RANGE[0] <= s <= SIZE_RANGE[1] for s in sizes)
    meta = root.find(f"{GEXF}meta")
    assert meta.find(f"{GEXF}creator").text == "Attention Atlas"
    description = meta.find(f"{GEXF}description").text
    for line in (
        f"model: {run.model.name}",
        "view: layer 2 · head 5",
        f"sparsification: {graph.rule.describe()}",
        f"modularity: {clean_number(graph.modularity)!r}",
    ):
        assert line in description.splitlines()
    assert re.search(r"^created: \d{4}-\d\d-\d\dT", description, re.M)
    assert root.find(f"{GEXF}graph").get("name") == "layer 2 · head 5"


def test_gexf_values_read_back_with_networkx(pair_folder):
    _, view, graph, folder = pair_folder
    back = nx.read_gexf(folder / "graph.gexf")
    assert back.number_of_nodes() == graph.n and back.number_of_edges() == len(graph.weights)
    for node in range(graph.n):
        data = back.nodes[str(node)]
        assert data["label"] == view.row_labels[node] and data["index"] == node
        assert data["community"] == int(graph.communities[node])
        for name in METRIC_NAMES:
            assert data[name] == pytest.approx(graph.metrics[name][node], rel=5e-7, abs=1e-12)
        assert {"position", "color", "size"} <= set(data["viz"])
    for s, t, w, length in zip(
        graph.sources, graph.targets, graph.weights, graph.lengths, strict=True
    ):
        edge = back.edges[str(s), str(t)]
        assert edge["weight"] == pytest.approx(w, rel=5e-7) and edge["length"] == pytest.approx(
            length, rel=5e-7
        )


def test_graphml_has_the_same_attributes_and_the_facts(pair_folder):
    run, view, graph, folder = pair_folder
    back = nx.read_graphml(folder / "graph.graphml")
    assert back.graph["model"] == run.model.name and back.graph["view"] == "layer 2 · head 5"
    assert back.graph["sparsification"] == graph.rule.describe()
    assert back.graph["modularity"] == pytest.approx(graph.modularity, rel=5e-7)
    assert back.graph["edges"] == len(graph.weights) and "created" in back.graph
    for node in range(graph.n):
        data = back.nodes[str(node)]
        assert data["label"] == view.row_labels[node] and data["index"] == node
        assert data["x"] == pytest.approx(node * POSITION_SCALE) and data["y"] == 0.0
        assert SIZE_RANGE[0] <= data["size"] <= SIZE_RANGE[1]
        assert (
            data["color"]
            == COMMUNITY_PALETTE[int(graph.communities[node]) % len(COMMUNITY_PALETTE)]
        )
        for name in METRIC_NAMES:
            assert data[name] == pytest.approx(graph.metrics[name][node], rel=5e-7, abs=1e-12)


def test_gexf_takes_positions_palette_and_size_metric(tmp_path):
    result = analyze_graph(attention_like(6, seed=3))
    labels = [f"w{i}" for i in range(6)]
    positions = circular_layout(6)
    palette = ["#000000", "#ffffff"]
    path = tmp_path / "g.gexf"
    write_gexf(
        result,
        labels,
        path,
        positions=positions,
        palette=palette,
        size_metric="in_strength",
        meta={"model": "mine", "date": "today"},
    )
    root, nodes = _gexf_nodes(path)
    for node in nodes:
        i = int(node.get("id"))
        position = node.find(f"{VIZ}position")
        assert float(position.get("x")) == pytest.approx(
            positions[i, 0] * POSITION_SCALE, rel=1e-6, abs=1e-9
        )
        assert float(position.get("y")) == pytest.approx(
            positions[i, 1] * POSITION_SCALE, rel=1e-6, abs=1e-9
        )
        colour = node.find(f"{VIZ}color")
        white = int(result.communities[i]) % 2 == 1
        assert colour.get("r") == ("255" if white else "0")
    sizes = [float(n.find(f"{VIZ}size").get("value")) for n in nodes]
    assert sizes[int(np.argmax(result.metrics["in_strength"]))] == SIZE_RANGE[1]
    description = root.find(f"{GEXF}meta").find(f"{GEXF}description").text.splitlines()
    assert "model: mine" in description and "date: today" in description
    with pytest.raises(ValueError, match="positions"):
        write_gexf(result, labels, path, positions=np.zeros((5, 2)))
    with pytest.raises(ValueError, match="colour"):
        write_gexf(result, labels, path, palette=["red"])
    with pytest.raises(ValueError, match="size metric"):
        write_gexf(result, labels, path, size_metric="fame")


def test_to_networkx_keeps_full_precision():
    result = analyze_graph(attention_like(7, seed=5))
    graph = to_networkx(result, [str(i) for i in range(7)], meta={"model": "m", "none": None})
    assert graph.graph["model"] == "m" and "none" not in graph.graph
    assert graph.nodes[2]["pagerank"] == result.metrics["pagerank"][2]
    assert graph.nodes[2]["index"] == 2
