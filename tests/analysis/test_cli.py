"""``attention-atlas analyze`` end to end on the embedded default model, and its errors."""

import csv
import json

import numpy as np
import pytest

from analysis.attention.extract import extract
from analysis.attention.views import ViewSpec, make_view
from analysis.cli import main
from analysis.graph.metrics import analyze_graph
from analysis.graph.rules import SparsifyRule
from analysis.models.loading import load_model

TEXT = "The cat sat on the mat because it was tired."


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def default_run():
    return extract(load_model("default"), TEXT)


def test_analyze_writes_the_four_files(tmp_path, default_run, capsys):
    out = tmp_path / "out"
    assert main(["--text", TEXT, "--layer", "2", "--head", "5", "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out

    with np.load(out / "attention.npz", allow_pickle=False) as data:
        assert data["attentions"].dtype == np.float32
        assert data["attentions"].shape == (6, 12, default_run.num_tokens, default_run.num_tokens)
        np.testing.assert_allclose(data["attentions"], default_run.attentions, atol=1e-6)
        assert list(data["tokens"]) == list(default_run.tokens)
        assert data["input_ids"].dtype == np.int64

    view = make_view(default_run, ViewSpec("head", layer=2, head=5))
    graph = analyze_graph(view.matrix, SparsifyRule())
    tokens = read_csv(out / "tokens.csv")
    assert list(tokens[0])[:10] == ["index", "token", "start", "end", "segment", "in_strength",
                                    "out_strength", "betweenness", "closeness", "pagerank"]
    assert "community" in tokens[0]
    assert [row["token"] for row in tokens] == list(view.row_labels)
    cat = tokens[2]
    assert TEXT[int(cat["start"]):int(cat["end"])] == "cat"
    np.testing.assert_allclose([float(r["pagerank"]) for r in tokens], graph.metrics["pagerank"], rtol=1e-6)  # 7 digits
    assert [int(r["community"]) for r in tokens] == graph.communities.tolist()

    edges = read_csv(out / "edges.csv")
    assert len(edges) == len(graph.weights)
    for row in edges[:20]:
        assert float(row["weight"]) == pytest.approx(view.matrix[int(row["source"]), int(row["target"])])

    summary = json.loads((out / "summary.json").read_text())
    assert summary["layers"] == 6 and summary["heads"] == 12 and summary["tokens"] == default_run.num_tokens
    assert summary["view"]["kind"] == "head" and summary["view"]["layer"] == 2 and summary["view"]["head"] == 5
    assert summary["graph"]["sparsification"]["mode"] == "coverage"
    assert summary["graph"]["kernels"] == "C (paths, Louvain)"  # built by `make setup`
    assert summary["modularity"] == pytest.approx(graph.modularity)
    assert {"load", "forward", "graph"} <= set(summary["timings"])
    assert all(value >= 0 for value in summary["timings"].values())


def test_default_view_is_the_mean_of_the_last_layer(tmp_path, default_run):
    out = tmp_path / "mean"
    assert main(["--text", TEXT, "--no-graph", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["view"]["kind"] == "mean" and summary["view"]["layer"] == 5 and summary["graph"] is None
    matrix = default_run.attentions[5].mean(axis=0)
    edges = read_csv(out / "edges.csv")
    assert len(edges) == int((matrix > 0).sum())


def test_flow_view_adds_a_flow_column(tmp_path):
    out = tmp_path / "flow"
    assert main(["--text", "A short one.", "--view", "flow", "--query", "1", "--layer", "3", "--out", str(out)]) == 0
    tokens = read_csv(out / "tokens.csv")
    flow = np.array([float(r["flow"]) for r in tokens])
    assert flow.shape == (len(tokens),) and np.all(flow >= -1e-9) and flow.max() > 0
    summary = json.loads((out / "summary.json").read_text())
    assert "flow" in summary["timings"] and summary["flow"]["query"] == 1


def test_words_and_pair_options(tmp_path):
    out = tmp_path / "pair"
    assert main(["--text", "Where is the cat?", "--pair", "The cat is sleeping.", "--words", "--no-special",
                 "--out", str(out)]) == 0
    tokens = [r["token"] for r in read_csv(out / "tokens.csv")]
    assert "[CLS]" not in tokens and "sleeping" in tokens


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--text", TEXT, "--layer", "9"], "layer 9 is out of range"),
        (["--text", TEXT, "--head", "40"], "head 40 is out of range"),
        (["--text", "   "], "empty"),
        (["--file", "/nonexistent/t.txt"], "no such file"),
        (["--text", TEXT, "--view", "flow"], "--query"),
        (["--text", TEXT, "--model", "{tmp}"], "not a model folder"),
    ],
)
def test_bad_arguments_exit_non_zero_with_one_line(tmp_path, capsys, args, message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert main([*args, "--out", str(tmp_path / "o")]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message.lower() in err.lower(), err


def test_unwritable_output_folder_is_reported(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["--text", TEXT, "--out", str(blocker / "sub")]) != 0
    assert "cannot write" in capsys.readouterr().err


def test_help_explains_every_flag(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--model", "--text", "--file", "--pair", "--layer", "--head", "--view", "--query", "--out"):
        assert flag in text
