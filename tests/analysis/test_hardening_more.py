"""Issue #13 ("Hardening"), the numbered cases that had no Qt-free test yet, and the
``generate`` / ``attribute`` commands' folders and option checks.

Where a case is tested elsewhere the test's name says where (``covered in ...``), so that
this file can be read as the issue's checklist.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os

import numpy as np
import pytest

import analysis.models.loading as loading
from analysis.cli import main as analyze_main
from tests.analysis.spies import CountingTokenizer

TEXT = "Tokenization of unbelievably complicated subwords happens frequently."


def _one_error_line(capsys, prog: str) -> str:
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if ": note: " not in line]
    assert len(lines) == 1 and lines[0].startswith(f"attention-atlas {prog}: error: "), err
    return lines[0]


def _rows(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _leftovers(folder) -> list[str]:
    """Temporary folders a command left beside its output (``.name.*.partial``/``.old``)."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --- 1. unbounded reads: every command reads a bounded regular file ------------------------
# (analyze: tests/analysis/test_cli_hardening.py; the reader: tests/analysis/test_text_files.py)


@pytest.mark.parametrize("prog", ["generate", "attribute"])
def test_1_generate_and_attribute_refuse_a_device_and_a_pipe_before_reading(tmp_path, capsys, no_model, prog):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    option = "--prompt-file" if prog == "generate" else "--file"
    for source, words in (("/dev/zero", "not a regular file"), (str(fifo), "named pipe")):
        assert _main(prog)([option, source, "--out", str(tmp_path / "o")]) == 2
        assert words in _one_error_line(capsys, prog)
    assert not (tmp_path / "o").exists()


# --- 3. the whole input was tokenized before truncation ------------------------------------
# (the tokens themselves: tests/analysis/test_extract.py, test_a_bounded_prefix_*)


def test_3_a_20_mb_text_is_analysed_from_a_bounded_prefix_and_not_written_out(
    tmp_path, capsys, monkeypatch, default_loaded
):
    counting = CountingTokenizer(default_loaded.tokenizer)
    monkeypatch.setattr(loading, "load_model", lambda *a, **k: dataclasses.replace(default_loaded, tokenizer=counting))
    text = ("The river meets the sea at the delta, near the old harbour. " * 340_000)[: 20 * 10**6]
    out = tmp_path / "o"
    assert analyze_main(["--text", text, "--no-graph", "--out", str(out)]) == 0
    assert "only the first 512 are analysed" in capsys.readouterr().err
    # the tokenizer read at most 8 characters per token of the limit, never the 20 MB
    assert counting.given and max(counting.given) <= 8 * 512
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["tokens"] == 512 and summary["truncated"]
    assert text.startswith(summary["text"]) and len(summary["text"]) < 8 * 512
    assert (out / "summary.json").stat().st_size < 64_000
    rows = _rows(out / "tokens.csv")
    assert max(int(r["end"]) for r in rows) == len(summary["text"])  # offsets into what was kept


# --- 4. max of heads + words ------------------------------------------------------------------
# (analyze: tests/analysis/test_cli_hardening.py::test_max_of_heads_with_words_...)


def test_4_generate_draws_the_graph_of_a_max_of_heads_words_view(tmp_path, capsys, tiny_model_dir):
    out = tmp_path / "o"
    argv = ["--model", str(tiny_model_dir("llama")), "--prompt", TEXT, "--no-chat",
            "--max-new-tokens", "2", "--view", "max", "--words", "--out", str(out)]
    assert _main("generate")(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["graph"]["edges"] > 0 and summary["view"]["kind"] == "max"


# --- 5. [UNK] is an ordinary token; an empty view exits 2 -----------------------------------
# (tokens, offsets, views: tests/analysis/test_extract.py::test_unk_*)


def test_5_emoji_only_text_without_specials_keeps_its_unknown_tokens(tmp_path, default_loaded):
    text = "😀 ☕ 🎉"
    out = tmp_path / "o"
    assert analyze_main(["--text", text, "--no-special", "--out", str(out)]) == 0
    rows = _rows(out / "tokens.csv")
    assert [r["token"] for r in rows] == ["[UNK]"] * 3
    assert [text[int(r["start"]):int(r["end"])] for r in rows] == ["😀", "☕", "🎉"]
    assert [r["segment"] for r in rows] == ["0"] * 3
    assert len(_rows(out / "edges.csv")) > 0


@pytest.mark.parametrize("text", ["[CLS] [SEP]", "\u200b"])  # typed specials; text BERT erases
def test_5_a_view_with_no_tokens_left_exits_2_with_one_clear_message(tmp_path, capsys, default_loaded, text):
    out = tmp_path / "o"
    assert analyze_main(["--text", text, "--no-special", "--out", str(out)]) == 2
    line = _one_error_line(capsys, "analyze")
    assert "the view has no tokens left" in line and "without --no-special" in line
    assert not out.exists() and _leftovers(tmp_path) == []


def test_5_an_empty_view_of_words_exits_2_with_the_same_message(tmp_path, capsys, default_loaded):
    assert analyze_main(["--text", "[CLS] [SEP]", "--no-special", "--words", "--out", str(tmp_path / "o")]) == 2
    assert "the view has no tokens left" in _one_error_line(capsys, "analyze")


def test_5_generate_exits_2_on_a_view_with_no_tokens_left(tmp_path, capsys, monkeypatch, tiny_model_dir):
    import analysis.generation.loop as loop
    from analysis.attention.extract import extract_ids

    def only_specials(loaded, prompt, **kwargs):  # a sequence of nothing but <s> tokens
        return extract_ids(loaded, [loaded.tokenizer.bos_token_id] * 3)

    monkeypatch.setattr(loop, "generate", only_specials)
    out = tmp_path / "o"
    argv = ["--model", str(tiny_model_dir("llama")), "--prompt", "Hi", "--no-chat", "--no-special",
            "--words", "--out", str(out)]
    assert _main("generate")(argv) == 2
    assert "the view has no tokens left" in _one_error_line(capsys, "generate")
    assert not out.exists() and _leftovers(tmp_path) == []


# --- 6. NaN passes silently through rollout and flow ----------------------------------------
# (the functions: tests/analysis/test_flow.py::test_flow_refuses_nan_infinite_and_negative_attention,
# tests/analysis/test_properties.py::test_rollout_refuses_nan_infinite_and_negative_weights)


@pytest.mark.parametrize("view", [["--view", "flow", "--query", "1"], ["--view", "rollout"]])
def test_6_a_model_that_outputs_nan_makes_analyze_exit_2(tmp_path, capsys, monkeypatch, default_loaded, view):
    import analysis.attention.extract as extraction

    real = extraction.extract

    def nan_extract(*args, **kwargs):
        run = real(*args, **kwargs)
        attentions = np.array(run.attentions)
        attentions[2, 0, 1, 1] = np.nan
        attentions.setflags(write=False)
        return dataclasses.replace(run, attentions=attentions)

    monkeypatch.setattr(extraction, "extract", nan_extract)
    out = tmp_path / "o"
    assert analyze_main(["--text", TEXT, *view, "--out", str(out)]) == 2
    assert "nan" in _one_error_line(capsys, "analyze").lower()
    assert not out.exists()


# --- 8. messages -----------------------------------------------------------------------------
# (load_model: tests/analysis/test_models.py::test_a_vision_model_*, test_a_model_without_attention_*,
# test_a_tokenizer_error_is_given_whole_on_one_line; pickle: test_cli_hardening.py)


def test_8_analyze_names_a_vision_model_and_a_mamba_model_in_one_line(tmp_path, capsys, fresh_model_cache):
    from tests.analysis.test_models import _tiny_mamba, _tiny_vit

    for folder, words in ((_tiny_vit(tmp_path / "vit"), "ViT is a vision model; Attention Atlas reads text models"),
                          (_tiny_mamba(tmp_path / "mamba"), "Mamba has no attention layers")):
        assert analyze_main(["--text", TEXT, "--model", str(folder), "--out", str(tmp_path / "o")]) == 2
        assert words in _one_error_line(capsys, "analyze")


# --- 10. command-line quirks -----------------------------------------------------------------
# (analyze: tests/analysis/test_cli_hardening.py; here: an ignored --query, and the same rules
# for generate and attribute)


def test_10_an_ignored_query_is_reported(tmp_path, capsys, default_loaded):
    assert analyze_main(["--text", TEXT, "--query", "3", "--out", str(tmp_path / "o")]) == 0
    assert "--query 3 is ignored: it applies to --view flow" in capsys.readouterr().err


def _main(prog: str):
    if prog == "generate":
        from analysis.generation.cli import main
    else:
        from analysis.attribution.cli import main
    return main


_GENERATE_BAD = [
    (["--out", ""], "--out is empty"),
    (["--prompt", "   "], "the prompt is empty"),
    (["--max-new-tokens", "0"], "--max-new-tokens must be at least 1"),
    (["--sample", "--temperature", "0"], "--temperature must be a number above 0"),
    (["--sample", "--temperature", "nan"], "--temperature must be a number above 0"),
    (["--sample", "--top-p", "1.5"], "--top-p must be above 0 and at most 1"),
    (["--sample", "--top-k", "-1"], "--top-k must be at least 0"),
    (["--top-k", "5"], "--top-k applies only with --sample"),
    (["--candidates", "-2"], "--candidates must be at least 0"),
    (["--coverage", "1.5"], "--coverage must be in"),
    (["--min-weight", "-1"], "--min-weight"),
]


@pytest.mark.parametrize(("args", "message"), _GENERATE_BAD)
def test_10_generate_checks_every_option_before_the_model_loads(tmp_path, capsys, no_model, args, message):
    out = ["--out", str(tmp_path / "o")] if "--out" not in args else []
    prompt = [] if "--prompt" in args else ["--prompt", "Hello"]
    assert _main("generate")([*prompt, *args, *out]) == 2
    assert message in _one_error_line(capsys, "generate")
    assert not (tmp_path / "o").exists() and _leftovers(tmp_path) == []


def test_10_generate_writes_at_once_needs_force_and_leaves_nothing_on_failure(tmp_path, capsys, tiny_model_dir):
    model = ["--model", str(tiny_model_dir("llama")), "--no-chat", "--max-new-tokens", "2"]
    out = tmp_path / "o"
    assert _main("generate")([*model, "--prompt", "Hello world", "--out", str(out)]) == 0
    before = (out / "generation.json").read_bytes()
    capsys.readouterr()
    assert _main("generate")([*model, "--prompt", "The cat", "--out", str(out)]) == 2
    assert "--force" in _one_error_line(capsys, "generate")
    assert (out / "generation.json").read_bytes() == before
    assert _main("generate")([*model, "--prompt", "The cat", "--out", str(out), "--force"]) == 0
    assert json.loads((out / "generation.json").read_text())["prompt"] == "The cat"
    capsys.readouterr()
    failed = tmp_path / "failed"
    assert _main("generate")([*model, "--prompt", "Hi", "--layer", "40", "--out", str(failed)]) == 2
    assert "--layer 40 is out of range" in _one_error_line(capsys, "generate")
    assert not failed.exists() and _leftovers(tmp_path) == []


def test_10_generate_counts_a_negative_head_from_the_end_and_reports_ignored_options(tmp_path, capsys, tiny_model_dir):
    from tests.tiny_models import HEADS, LAYERS

    out = tmp_path / "o"
    argv = ["--model", str(tiny_model_dir("llama")), "--no-chat", "--max-new-tokens", "2",
            "--prompt", "Hello world", "--view", "head", "--layer", "-1", "--head", "-1", "--out", str(out)]
    assert _main("generate")(argv) == 0
    view = json.loads((out / "summary.json").read_text())["view"]
    assert (view["layer"], view["head"]) == (LAYERS - 1, HEADS - 1)
    capsys.readouterr()
    argv = ["--model", str(tiny_model_dir("llama")), "--no-chat", "--max-new-tokens", "1", "--prompt", "Hi",
            "--head", "1", "--view", "mean", "--no-graph", "--coverage", "0.5", "--out", str(tmp_path / "p")]
    assert _main("generate")(argv) == 0
    err = capsys.readouterr().err
    assert "--head 1 is ignored" in err and "--coverage ignored: --no-graph skips the graph" in err


_ATTRIBUTE_BAD = [
    (["--out", ""], "--out is empty"),
    (["--text", "  "], "the text is empty"),
    (["--method", "lime", "--steps", "5"], "--steps is a setting"),
    (["--max-tokens", "0"], "--max-tokens must be positive"),
]


@pytest.mark.parametrize(("args", "message"), _ATTRIBUTE_BAD)
def test_10_attribute_checks_every_option_before_the_model_loads(tmp_path, capsys, no_model, args, message):
    out = ["--out", str(tmp_path / "o")] if "--out" not in args else []
    text = [] if "--text" in args else ["--text", TEXT]
    assert _main("attribute")([*text, *args, *out]) == 2
    assert message in _one_error_line(capsys, "attribute")
    assert not (tmp_path / "o").exists() and _leftovers(tmp_path) == []


def test_10_attribute_refuses_an_existing_analysis_without_force(tmp_path, capsys, no_model):
    out = tmp_path / "o"
    out.mkdir()
    (out / "summary.json").write_text("{}")
    assert _main("attribute")(["--text", TEXT, "--out", str(out)]) == 2
    assert "already holds an analysis (summary.json); add --force" in _one_error_line(capsys, "attribute")
    assert (out / "summary.json").read_text() == "{}"


def test_10_attribute_writes_at_once_and_leaves_nothing_on_failure(tmp_path, capsys, tiny_model_dir):
    model = ["--model", str(tiny_model_dir("gpt2")), "--method", "saliency"]
    out = tmp_path / "o"
    assert _main("attribute")([*model, "--text", "The cat sat on", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["attribution.csv", "summary.json"]
    before = (out / "attribution.csv").read_bytes()
    assert _main("attribute")([*model, "--text", "A dog", "--out", str(out), "--force"]) == 0
    assert (out / "attribution.csv").read_bytes() != before
    capsys.readouterr()
    failed = tmp_path / "failed"  # a target the model cannot have: fails after loading
    assert _main("attribute")([*model, "--text", "The cat", "--kind", "class", "--out", str(failed)]) == 2
    _one_error_line(capsys, "attribute")
    assert not failed.exists() and _leftovers(tmp_path) == []


def test_5_attributing_ids_keeps_unk_an_ordinary_token(default_loaded):
    """An attribution of token ids (a generation's) treats [UNK] as the run does: ordinary."""
    from analysis.attribution.inputs import from_ids

    tokenizer = default_loaded.tokenizer
    ids = tokenizer("cat \U0001F600 dog")["input_ids"]
    unk = tokenizer.unk_token_id
    assert unk in ids
    inputs = from_ids(default_loaded, ids)
    special = dict(zip(inputs.input_ids.tolist(), inputs.special_mask.tolist(), strict=False))
    assert special[unk] is False and special[tokenizer.cls_token_id] is True
