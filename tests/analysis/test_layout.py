"""analysis.graph.layout: shapes, determinism, reading order, clustering, layered rows."""

import numpy as np
import pytest

from analysis.graph.layout import arc_layout, circular_layout, force_layout, layered_layout


def _two_clusters(size=8):
    s, t = [], []
    for base in (0, size):
        for i in range(size):
            for j in range(size):
                if i != j:
                    s.append(base + i)
                    t.append(base + j)
    s.append(0)  # one weak bridge
    t.append(size)
    w = np.ones(len(s))
    w[-1] = 0.05
    return 2 * size, np.array(s), np.array(t), w


@pytest.mark.parametrize("n", [0, 1, 2, 7, 64])
def test_shapes(n):
    assert arc_layout(n).shape == (n, 2)
    assert circular_layout(n).shape == (n, 2)
    s = np.arange(max(n - 1, 0))
    assert force_layout(n, s, s + 1, np.ones_like(s, dtype=float)).shape == (n, 2)
    for pos in (arc_layout(n), circular_layout(n)):
        assert pos.dtype == np.float64 and np.all(np.isfinite(pos))


def test_arc_preserves_reading_order():
    pos = arc_layout(10)
    assert np.all(np.diff(pos[:, 0]) > 0)
    assert np.allclose(pos[:, 1], 0)


def test_circular_equal_spacing_clockwise_from_top():
    pos = circular_layout(12)
    r = np.hypot(pos[:, 0], pos[:, 1])
    assert np.allclose(r, r[0])
    assert pos[0, 1] == pytest.approx(r[0])  # token 0 at the top
    assert pos[3, 0] > 0  # clockwise: a quarter turn later it is on the right
    d = np.hypot(*np.diff(np.vstack([pos, pos[:1]]), axis=0).T)
    assert np.allclose(d, d[0])


def test_force_deterministic_with_seed():
    n, s, t, w = _two_clusters()
    a = force_layout(n, s, t, w, seed=3)
    b = force_layout(n, s, t, w, seed=3)
    c = force_layout(n, s, t, w, seed=4)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_force_connected_nodes_closer_than_unconnected():
    n, s, t, w = _two_clusters()
    pos = force_layout(n, s, t, w, seed=0)
    d = np.hypot(*(pos[:, None, :] - pos[None, :, :]).transpose(2, 0, 1))
    half = n // 2
    within = np.concatenate([d[:half, :half][~np.eye(half, dtype=bool)],
                             d[half:, half:][~np.eye(half, dtype=bool)]])
    between = d[:half, half:].ravel()
    assert within.mean() < 0.5 * between.mean()
    assert within.max() < between.mean()


def test_force_isolated_nodes_stay_in_view():
    pos = force_layout(10, np.array([0, 1]), np.array([1, 2]), np.array([1.0, 1.0]))
    assert np.all(np.isfinite(pos))
    assert np.abs(pos).max() < 50


def test_force_rejects_bad_edges():
    with pytest.raises(ValueError):
        force_layout(3, np.array([0, 5]), np.array([1, 2]), np.array([1.0, 1.0]))
    with pytest.raises(ValueError):
        force_layout(3, np.array([0]), np.array([1, 2]), None)


def test_force_init_is_used():
    n, s, t, w = _two_clusters(4)
    init = circular_layout(n)
    a = force_layout(n, s, t, w, init=init, iterations=1)
    assert np.all(np.isfinite(a)) and a.shape == (n, 2)


def test_layered_rows_bottom_to_top():
    layer = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    order = np.array([0, 1, 2, 0, 1, 2, 0, 2])
    pos = layered_layout(layer, order)
    ys = [np.unique(pos[layer == k, 1]) for k in range(3)]
    assert all(len(y) == 1 for y in ys)
    assert ys[0][0] < ys[1][0] < ys[2][0]  # input layer at the bottom
    for k in range(3):
        xs = pos[layer == k, 0]
        assert np.all(np.diff(xs) > 0)  # tokens left to right
    # the same token sits in the same column in every layer
    assert pos[7, 0] == pos[2, 0] == pos[5, 0]


def test_layered_shape_mismatch():
    with pytest.raises(ValueError):
        layered_layout(np.zeros(3), np.zeros(4))
    assert layered_layout(np.zeros(0), np.zeros(0)).shape == (0, 2)


def test_layout_module_imports_only_numpy():
    import ast

    import analysis.graph.layout

    tree = ast.parse(open(analysis.graph.layout.__file__).read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module if node.module.startswith("analysis") else node.module.split(".")[0])
    assert names <= {"numpy", "__future__", "analysis.options"}
