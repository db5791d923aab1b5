"""``attention-atlas attribute``: the files it writes, and its errors (checked before a model
loads); ERASER faithfulness on constructed and tiny-model cases."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from analysis.attribution.cli import main
from analysis.attribution.faithfulness import (
    bin_counts,
    faithfulness_of_function,
    method_agreement,
    rank_correlation,
    ranking,
)
from analysis.cli import COMMANDS, command_main

TEXT = "the cat sat on the mat"


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_registered_as_the_attribute_command():
    assert COMMANDS["attribute"] == "analysis.attribution.cli"
    assert command_main("attribute") is main


# --- faithfulness (no model) -----------------------------------------------------------


def test_aopc_of_a_constructed_case():
    """f = sum of the kept tokens' weights. With the importance equal to the weights, the
    top-k removal drops f by the k largest weights, keeping only them leaves f - their sum."""
    weights = np.array([5.0, -1.0, 3.0, 0.0, 2.0, 4.0, 1.0, -2.0, 0.5, 0.25])
    bins = (0.1, 0.2, 0.5)

    def fn(keep):
        return keep @ weights

    result = faithfulness_of_function(fn, weights, np.ones(10, dtype=bool), bins=bins)
    top = np.sort(weights)[::-1]
    total = weights.sum()
    expected_comp = [top[:1].sum(), top[:2].sum(), top[:5].sum()]  # 5; 9; 14.5
    expected_suff = [total - s for s in expected_comp]
    np.testing.assert_allclose(result.counts, [1, 2, 5])
    np.testing.assert_allclose(result.comprehensiveness, expected_comp)
    np.testing.assert_allclose(result.sufficiency, expected_suff)
    assert result.aopc_comprehensiveness == pytest.approx(np.mean(expected_comp))
    assert result.aopc_sufficiency == pytest.approx(np.mean(expected_suff))
    assert result.f_x == pytest.approx(total)

    # a reversed ranking is less comprehensive: AOPC orders the explanations
    worse = faithfulness_of_function(fn, -weights, np.ones(10, dtype=bool), bins=bins)
    assert worse.aopc_comprehensiveness < result.aopc_comprehensiveness
    assert worse.aopc_sufficiency > result.aopc_sufficiency


def test_faithfulness_never_removes_non_candidates():
    weights = np.array([100.0, 1.0, 2.0, 3.0])
    candidates = np.array([False, True, True, True])  # token 0 is special
    result = faithfulness_of_function(lambda keep: keep @ weights, weights, candidates, bins=(0.34, 1.0))
    np.testing.assert_allclose(result.counts, [2, 3])
    np.testing.assert_allclose(result.comprehensiveness, [5.0, 6.0])
    np.testing.assert_allclose(result.sufficiency, [1.0, 0.0])


def test_bins_and_ranking():
    assert bin_counts((0.01, 0.05, 0.1, 0.2, 0.5), 20).tolist() == [1, 1, 2, 4, 10]
    assert ranking(np.array([0.5, -3.0, 2.0]), np.ones(3, bool)).tolist() == [2, 0, 1]
    assert ranking(np.array([0.5, -3.0, 2.0]), np.ones(3, bool), by="abs").tolist() == [1, 2, 0]


def test_spearman_between_methods():
    a = np.array([1.0, 2.0, 3.0, 4.0])
    assert rank_correlation(a, a**3) == pytest.approx(1.0)
    assert rank_correlation(a, -a) == pytest.approx(-1.0)
    assert np.isnan(rank_correlation(a, np.ones(4)))
    names, matrix = method_agreement({"x": a, "y": a[::-1], "z": np.array([1.0, 3.0, 2.0, 4.0])})
    assert names == ("x", "y", "z")
    assert matrix[0, 1] == pytest.approx(-1.0) and matrix[0, 2] == pytest.approx(0.8)
    np.testing.assert_allclose(matrix, matrix.T)


# --- faithfulness on a model -------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_gpt2(tiny_model_dir):
    from analysis.models.loading import load_model

    return load_model(str(tiny_model_dir("gpt2")))


def test_faithfulness_of_an_attribution_on_a_tiny_model(tiny_gpt2):
    from analysis.attribution import Target, attribute, faithfulness

    result = attribute(tiny_gpt2, TEXT, Target(), "occlusion")
    everything = faithfulness(tiny_gpt2, result.target, result.inputs, result.token_scores, bins=(1.0,))
    # removing every token is the baseline; keeping every token is the text
    assert everything.comprehensiveness[0] == pytest.approx(result.f_x - result.f_baseline, abs=1e-5)
    assert everything.sufficiency[0] == pytest.approx(0.0, abs=1e-6)
    first = faithfulness(tiny_gpt2, result.target, result.inputs, result.token_scores)
    n = result.inputs.num_tokens  # no special tokens in a GPT-2 text
    assert first.counts.tolist() == bin_counts((0.01, 0.05, 0.1, 0.2, 0.5), n).tolist()
    # with one token removed, comprehensiveness is exactly that token's occlusion score
    assert first.comprehensiveness[0] == pytest.approx(result.scores.max(), abs=1e-5)
    # ids and a plain array work as well (attention-based importance computed elsewhere)
    again = faithfulness(tiny_gpt2, Target(token=result.target.token_id), np.array(result.inputs.input_ids),
                         np.arange(result.inputs.num_tokens, dtype=float))
    assert again.comprehensiveness.shape == (5,)


# --- the command ---------------------------------------------------------------------


def test_next_token_attribution_writes_csv_and_summary(tmp_path, tiny_model_dir, capsys):
    out = tmp_path / "out"
    code = main(["--model", str(tiny_model_dir("gpt2")), "--text", TEXT, "--target", " mat",
                 "--adaptive", "--faithfulness", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert "wrote" in capsys.readouterr().out
    rows = read_csv(out / "attribution.csv")
    assert list(rows[0]) == ["index", "token", "start", "end", "score"]
    assert [int(r["index"]) for r in rows] == list(range(len(rows)))
    mat = next(r for r in rows if TEXT[int(r["start"]):int(r["end"])] == "mat")
    assert mat["token"] == "mat"  # display label (the tokenizer wrote "Ġmat")
    summary = json.loads((out / "summary.json").read_text())
    for key in ("method", "parameters", "target", "target_function", "baseline", "f_x", "f_baseline",
                "steps", "delta", "converged", "faithfulness", "timings"):
        assert key in summary, key
    assert summary["method"] == "integrated_gradients"
    assert summary["parameters"]["adaptive"] is True
    assert summary["target"]["token"] == " mat" and summary["target_function"] == "log_prob"
    assert summary["baseline"] == "pad" and summary["converged"] is True
    total = sum(float(r["score"]) for r in rows)
    assert abs(total - (summary["f_x"] - summary["f_baseline"])) == pytest.approx(summary["delta"], abs=1e-6)
    assert set(summary["faithfulness"]) >= {"aopc_comprehensiveness", "aopc_sufficiency", "bins"}
    assert summary["timings"]["total"] > 0


def test_interpolate_first_and_baseline_reach_the_summary(tmp_path, tiny_model_dir):
    out = tmp_path / "first"
    assert main(["--model", str(tiny_model_dir("gpt2")), "--text", TEXT, "--steps", "8", "--baseline", "zero",
                 "--interpolate-first", "--target-function", "prob", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["parameters"]["first_token_kept"] is False and summary["parameters"]["steps"] == 8
    assert summary["baseline"] == "zero" and summary["target_function"] == "prob"
    assert 0 < summary["f_x"] < 1


def test_generation_writes_the_matrix(tmp_path, tiny_model_dir):
    out = tmp_path / "gen"
    assert main(["--model", str(tiny_model_dir("llama")), "--text", TEXT, "--generate", "3",
                 "--method", "saliency", "--out", str(out)]) == 0
    with np.load(out / "attribution.npz", allow_pickle=False) as data:
        scores = data["scores"]
        assert scores.dtype == np.float32 and scores.shape[0] == 3
        assert len(data["sources"]) == scores.shape[1] and len(data["targets"]) == 3
        positions = data["target_positions"]
        for r, g in enumerate(positions):
            assert np.isnan(scores[r, g:]).all() and np.isfinite(scores[r, :g]).all()
    rows = read_csv(out / "attribution.csv")
    assert len(rows) == scores.shape[1]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["target"]["kind"] == "generation" and len(summary["f_x"]) == 3


def test_similarity_on_the_default_model_with_words(tmp_path):
    out = tmp_path / "sim"
    assert main(["--text", "The movie was wonderful.", "--pair", "A great film.", "--method", "kernel_shap",
                 "--samples", "40", "--seed", "1", "--words", "--faithfulness", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["target"]["kind"] == "similarity" and summary["unit"] == "word"
    assert summary["parameters"]["n_samples"] == 40 and summary["parameters"]["seed"] == 1
    rows = read_csv(out / "attribution.csv")
    assert "wonderful" in [r["token"] for r in rows]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--method", "lime", "--steps", "5"], "--steps is a setting"),
        (["--method", "saliency", "--samples", "5"], "--samples is a setting"),
        (["--generate", "0"], "positive number"),
        (["--generate", "2", "--pair", "x"], "drop --pair"),
        (["--steps", "0"], "positive whole number"),
        (["--adaptive", "--tolerance", "2"], "tolerance"),
    ],
)
def test_options_are_checked_before_the_model_loads(tmp_path, capsys, argv, message):
    missing = tmp_path / "no-such-model"
    code = main(["--model", str(missing), "--text", TEXT, *argv, "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "does not exist" not in err
    assert err.count("\n") == 1


def test_model_errors_are_one_line(tmp_path, capsys):
    assert main(["--model", str(tmp_path / "nope"), "--text", TEXT, "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["--text", TEXT, "--out", str(tmp_path / "o")]) == 2  # MiniLM needs a pair
    assert "give a second text" in capsys.readouterr().err
