"""Hand-computed cases for the per-head statistics of the model overview."""

import ast
import math
from pathlib import Path

import numpy as np
import pytest

from analysis.attention.head_stats import (
    head_entropy,
    head_summary,
    head_thumbnails,
    mean_attention_distance,
    special_token_share,
)


def _stack(*heads):
    """[1, H, T, T] from H matrices."""
    return np.stack([np.asarray(h, dtype=np.float32) for h in heads])[None]


IDENTITY3 = np.eye(3)
UNIFORM3 = np.full((3, 3), 1 / 3)
# query 0 attends to itself; query 1 splits 50/50 over keys 0, 1; query 2 all to key 0
CAUSAL3 = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])


def test_entropy_hand_computed():
    ent = head_entropy(_stack(IDENTITY3, UNIFORM3, CAUSAL3))
    assert ent.shape == (1, 3)
    assert ent[0, 0] == pytest.approx(0.0)  # one-hot rows: 0 nats
    assert ent[0, 1] == pytest.approx(math.log(3), rel=1e-6)  # uniform: ln 3
    # rows: 0, ln 2, 0 -> mean ln(2)/3
    assert ent[0, 2] == pytest.approx(math.log(2) / 3, rel=1e-6)


def test_special_share_hand_computed():
    special = np.array([True, False, False])
    share = special_token_share(_stack(IDENTITY3, UNIFORM3, CAUSAL3), special)
    # identity: only query 0 puts mass 1 on key 0 -> 1/3
    # uniform: each row 1/3 -> 1/3
    # causal: 1, 0.5, 1 -> 2.5/3
    np.testing.assert_allclose(share[0], [1 / 3, 1 / 3, 2.5 / 3], rtol=1e-6)
    assert special_token_share(_stack(IDENTITY3), np.zeros(3, bool))[0, 0] == 0.0
    with pytest.raises(ValueError):
        special_token_share(_stack(IDENTITY3), np.zeros(4, bool))


def test_mean_distance_hand_computed():
    dist = mean_attention_distance(_stack(IDENTITY3, UNIFORM3, CAUSAL3))
    # identity: 0
    # uniform: row 0: (0+1+2)/3 = 1, row 1: (1+0+1)/3 = 2/3, row 2: 1 -> mean 8/9
    # causal: row 0: 0, row 1: 0.5*1 = 0.5, row 2: 1*2 = 2 -> 2.5/3
    np.testing.assert_allclose(dist[0], [0.0, 8 / 9, 2.5 / 3], rtol=1e-6)


def test_previous_token_head_distance_is_one():
    t = 6
    prev = np.zeros((t, t))
    prev[0, 0] = 1
    prev[np.arange(1, t), np.arange(t - 1)] = 1
    assert mean_attention_distance(_stack(prev))[0, 0] == pytest.approx((t - 1) / t)


def test_thumbnails_block_average():
    a = np.arange(16, dtype=np.float32).reshape(4, 4)
    th = head_thumbnails(a[None, None], size=2)
    assert th.shape == (1, 1, 2, 2)
    assert th.dtype == np.float32
    # top-left block: 0, 1, 4, 5 -> 2.5
    np.testing.assert_allclose(th[0, 0], [[2.5, 4.5], [10.5, 12.5]])


def test_thumbnails_uneven_blocks_keep_mean_and_small_inputs_unchanged():
    rng = np.random.default_rng(1)
    a = rng.random((2, 3, 10, 10)).astype(np.float32)
    th = head_thumbnails(a, size=4)  # blocks of 2 or 3 tokens
    assert th.shape == (2, 3, 4, 4)
    # block starts at floor(k * 2.5): 0, 2, 5, 7
    np.testing.assert_allclose(th[1, 2, 0, 1], a[1, 2, 0:2, 2:5].mean(), rtol=1e-6)
    np.testing.assert_allclose(th[1, 2, 3, 3], a[1, 2, 7:10, 7:10].mean(), rtol=1e-6)
    small = head_thumbnails(a, size=32)  # s = min(size, T)
    assert small.shape == a.shape
    np.testing.assert_array_equal(small, a)


def test_summary_keys_shapes_and_speed_scale():
    rng = np.random.default_rng(0)
    a = rng.random((2, 3, 17, 17)).astype(np.float32)
    a /= a.sum(-1, keepdims=True)
    special = np.zeros(17, bool)
    special[[0, 16]] = True
    out = head_summary(a, special)
    assert set(out) == {"entropy", "special_share", "mean_distance"}
    for v in out.values():
        assert v.shape == (2, 3)
        assert np.isfinite(v).all()
    assert (out["entropy"] <= math.log(17) + 1e-6).all()


def test_rejects_bad_shapes():
    with pytest.raises(ValueError):
        head_entropy(np.zeros((3, 3)))
    with pytest.raises(ValueError):
        head_thumbnails(np.zeros((1, 1, 3, 4)))


def test_module_is_numpy_only():
    src = Path(__file__).resolve().parents[2] / "analysis" / "attention" / "head_stats.py"
    imported = set()
    for node in ast.walk(ast.parse(src.read_text())):
        if isinstance(node, ast.Import):
            imported |= {n.name.split(".")[0] for n in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported <= {"__future__", "numpy"}


def test_query_rows_are_the_thumbnail_columns_of_one_row():
    from analysis.attention.head_stats import key_blocks, query_rows

    rng = np.random.default_rng(3)
    a = rng.random((2, 3, 10, 10))
    a /= a.sum(axis=-1, keepdims=True)
    full = query_rows(a, 7, size=32)
    np.testing.assert_allclose(full, a[:, :, 7, :], rtol=1e-6)
    blocks = query_rows(a, 7, size=4)
    edges = list(key_blocks(10, 4)) + [10]
    for b in range(4):
        np.testing.assert_allclose(blocks[..., b], a[:, :, 7, edges[b]:edges[b + 1]].mean(axis=-1), rtol=1e-6)
    with pytest.raises(ValueError):
        query_rows(a, 10)


def test_head_statistics_of_a_float16_stack_match_float64():
    from analysis.attention.head_stats import head_summary, head_thumbnails

    rng = np.random.default_rng(4)
    a = rng.random((3, 2, 40, 40))
    a /= a.sum(axis=-1, keepdims=True)
    special = np.zeros(40, bool)
    special[[0, 39]] = True
    half, exact = head_summary(a.astype(np.float16), special), head_summary(a, special)
    for name in exact:
        np.testing.assert_allclose(half[name], exact[name], rtol=2e-3, atol=1e-3)
    np.testing.assert_allclose(head_thumbnails(a.astype(np.float16), 8), head_thumbnails(a, 8), atol=1e-3)
