"""``attention-atlas analyze`` refuses bad options before the model loads, warns on ignored
ones, writes its folder all at once and never overwrites an analysis without --force."""

import json
import os

import numpy as np
import pytest

from analysis.cli import main

TEXT = "Tokenization of unbelievably complicated subwords happens frequently."


@pytest.mark.parametrize(("args", "message"), [
    (["--out", ""], "--out is empty"),
    (["--resolution", "0"], "--resolution must be a positive number"),
    (["--sparsify", "top_k", "--top-k", "0"], "--top-k must be at least 1"),
    (["--coverage", "1.5"], "--coverage must be in"),
    (["--max-tokens", "0"], "--max-tokens must be at least 1"),
    (["--file", "/dev/zero"], "not a regular file"),
])
def test_bad_options_are_refused_before_the_model_loads(tmp_path, capsys, no_model, args, message):
    out = ["--out", str(tmp_path / "o")] if "--out" not in args else []
    source = [] if "--file" in args else ["--text", TEXT]
    assert main([*source, *args, *out]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "o").exists()


def test_a_named_pipe_does_not_hang(tmp_path, capsys, no_model):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert main(["--file", str(fifo), "--out", str(tmp_path / "o")]) == 2
    assert "named pipe" in capsys.readouterr().err


def test_top_k_is_not_checked_when_top_k_is_not_used_but_its_neglect_is_reported(tmp_path, capsys, default_loaded):
    assert main(["--text", TEXT, "--top-k", "0", "--head", "2", "--view", "mean", "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert "--top-k 0 is ignored" in err and "--head 2 is ignored" in err


def test_max_of_heads_with_words_gets_a_graph_with_its_meaning_stated(tmp_path, capsys, default_loaded):
    out = tmp_path / "o"
    assert main(["--text", TEXT, "--view", "max", "--words", "--layer", "0", "--out", str(out)]) == 0
    assert "divided by" in capsys.readouterr().err
    assert json.loads((out / "summary.json").read_text())["graph"]["edges"] > 0


def test_an_existing_analysis_needs_force_and_a_failure_leaves_nothing(tmp_path, capsys, default_loaded):
    out = tmp_path / "o"
    assert main(["--text", TEXT, "--out", str(out)]) == 0
    before = (out / "summary.json").read_bytes()
    assert main(["--text", "Another text.", "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err and (out / "summary.json").read_bytes() == before
    assert main(["--text", "Another text.", "--out", str(out), "--force"]) == 0
    assert (out / "summary.json").read_bytes() != before
    failed = tmp_path / "failed"
    assert main(["--text", TEXT, "--layer", "40", "--out", str(failed)]) == 2
    assert not failed.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_negative_layer_head_and_query_count_from_the_end(tmp_path, default_loaded):
    out = tmp_path / "o"
    assert main(["--text", TEXT, "--layer", "-1", "--head", "-1", "--out", str(out)]) == 0
    view = json.loads((out / "summary.json").read_text())["view"]
    assert (view["layer"], view["head"]) == (5, 11)
    flow = tmp_path / "flow"
    assert main(["--text", TEXT, "--view", "flow", "--query", "-2", "--out", str(flow)]) == 0
    summary = json.loads((flow / "summary.json").read_text())
    assert summary["view"]["query"] == summary["tokens"] - 2


def test_a_bom_does_not_shift_the_offsets(tmp_path, default_loaded):
    source = tmp_path / "t.txt"
    source.write_bytes("\ufeffThe cat sat.".encode())
    out = tmp_path / "o"
    assert main(["--file", str(source), "--out", str(out)]) == 0
    data = np.load(out / "attention.npz", allow_pickle=False)
    assert str(data["tokens"][1]) == "the"
    import csv

    with open(out / "tokens.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert (rows[1]["start"], rows[1]["end"]) == ("0", "3")


def test_the_pickle_refusal_names_the_option(tmp_path, capsys):
    from tests.tiny_models import build_pickle_only_model

    folder = build_pickle_only_model(tmp_path / "pickle")
    assert main(["--text", TEXT, "--model", str(folder), "--out", str(tmp_path / "o")]) == 2
    assert "--allow-pickle" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["value_norm", "alti"])
def test_contribution_views_from_the_command_line(tmp_path, default_loaded, kind):
    out = tmp_path / kind
    assert main(["--text", TEXT, "--view", kind, "--layer", "3", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["view"]["kind"] == kind and "contributions" in summary["timings"]
