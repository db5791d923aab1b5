import numpy as np
import pytest

from analysis.attention.rollout import attention_rollout, residual_augmented
from analysis.attention.views import ViewSpec, make_view, values_for_view, view_position
from tests.analysis.fake_runs import WORD_MATRIX, make_run, word_run


def three_token_layers():
    a0 = np.array([[1, 0, 0], [0.5, 0.5, 0], [1 / 3, 1 / 3, 1 / 3]])
    a1 = np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=float)
    return np.stack([a0, a1])[:, None]  # [2 layers, 1 head, 3, 3]


def test_rollout_matches_hand_computed_three_token_case():
    attentions = three_token_layers()
    # R0 = 0.5 A0 + 0.5 I = [[1,0,0],[.25,.75,0],[1/6,1/6,2/3]]; R1 = 0.5 A1 + 0.5 I.
    np.testing.assert_allclose(attention_rollout(attentions, 0), [[1, 0, 0], [0.25, 0.75, 0], [1 / 6, 1 / 6, 2 / 3]])
    expected = [[0.625, 0.375, 0.0], [5 / 24, 11 / 24, 1 / 3], [7 / 12, 1 / 12, 1 / 3]]
    np.testing.assert_allclose(attention_rollout(attentions, 1), expected)
    np.testing.assert_allclose(attention_rollout(attentions).sum(axis=1), 1.0)


def test_rollout_averages_heads_and_renormalises():
    heads = np.array([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [1.0, 0.0]]])[None]  # mean = 0.5 everywhere
    np.testing.assert_allclose(attention_rollout(heads), [[0.75, 0.25], [0.25, 0.75]])
    np.testing.assert_allclose(residual_augmented(np.zeros((2, 2))), np.eye(2))


def test_rollout_layer_out_of_range():
    with pytest.raises(ValueError, match="out of range"):
        attention_rollout(three_token_layers(), 5)


def test_head_mean_max_views_slice_the_run():
    rng = np.random.default_rng(0)
    attentions = rng.dirichlet(np.ones(5), size=(3, 4, 5))
    run = word_run()
    run = make_run(attentions, text=run.text, tokens=run.tokens, offsets=run.offsets, word_ids=run.word_ids,
                   special=run.special_mask)
    np.testing.assert_allclose(make_view(run, ViewSpec("head", layer=1, head=2)).matrix, run.attentions[1, 2])
    np.testing.assert_allclose(make_view(run, ViewSpec("mean", layer=-1)).matrix, run.attentions[2].mean(0), rtol=1e-6)
    np.testing.assert_allclose(make_view(run, ViewSpec("max", layer=0)).matrix, run.attentions[0].max(0))
    view = make_view(run, ViewSpec("head", layer=-1, head=0))
    assert view.spec.layer == 2 and view.row_labels == ("[CLS]", "play", "ing", "cats", "[SEP]")
    assert view.masked is None and "layer 2 · head 0" in view.title


def test_word_merging_sums_keys_and_averages_queries():
    view = make_view(word_run(), ViewSpec("head", layer=0, head=0, merge_words=True))
    assert view.row_labels == ("[CLS]", "playing", "cats", "[SEP]")
    assert view.row_tokens == ((0,), (1, 2), (3,), (4,))
    # Row "playing" = mean of rows play/ing: [0.3, 0.25, 0.2, 0.15, 0.1]; then keys play+ing summed.
    np.testing.assert_allclose(view.matrix[1], [0.3, 0.45, 0.15, 0.1])
    # Row [CLS]: keys play+ing = 0.4.
    np.testing.assert_allclose(view.matrix[0], [0.2, 0.4, 0.2, 0.2])
    np.testing.assert_allclose(view.matrix.sum(axis=1), 1.0)


def test_dropping_special_tokens_renormalises_rows():
    view = make_view(word_run(), ViewSpec("head", layer=0, head=0, drop_special=True))
    assert view.row_labels == ("play", "ing", "cats")
    row = WORD_MATRIX[1, 1:4]
    np.testing.assert_allclose(view.matrix[0], row / row.sum())
    np.testing.assert_allclose(view.matrix.sum(axis=1), 1.0)
    both = make_view(word_run(), ViewSpec("head", layer=0, head=0, drop_special=True, merge_words=True))
    assert both.row_labels == ("playing", "cats")
    np.testing.assert_allclose(both.matrix.sum(axis=1), 1.0)
    assert view_position(both, 2) == 0 and view_position(both, 0) is None


def test_causal_runs_mark_the_upper_triangle_masked():
    lower = np.tril(np.ones((4, 4)))
    attentions = (lower / lower.sum(1, keepdims=True))[None, None]
    run = make_run(attentions, text="a bc d", tokens=["a", "b", "##c", "d"], offsets=[(0, 1), (2, 3), (3, 4), (5, 6)],
                   word_ids=[0, 1, 1, 2], special=[False] * 4, causal=True)
    view = make_view(run, ViewSpec("head", layer=0, head=0))
    np.testing.assert_array_equal(view.masked, np.triu(np.ones((4, 4), bool), 1))
    merged = make_view(run, ViewSpec("head", layer=0, head=0, merge_words=True))
    assert merged.row_labels == ("a", "bc", "d")
    # "bc" can see itself (b sees b, c sees b and c): not masked; "d" after "bc": masked for rows a, bc.
    np.testing.assert_array_equal(merged.masked, [[False, True, True], [False, False, True], [False, False, False]])
    rollout = make_view(run, ViewSpec("rollout", layer=0))
    assert np.allclose(rollout.matrix[view.masked], 0.0)


def test_flow_spec_needs_a_query_and_bad_specs_explain_themselves():
    run = word_run(layers=2, heads=2)
    with pytest.raises(ValueError, match="needs a query"):
        make_view(run, ViewSpec("flow", layer=1))
    with pytest.raises(ValueError, match="layer 7 is out of range"):
        make_view(run, ViewSpec("head", layer=7))
    with pytest.raises(ValueError, match="head 9 is out of range"):
        make_view(run, ViewSpec("head", layer=0, head=9))
    with pytest.raises(ValueError, match="no cross attention"):
        make_view(run, ViewSpec("head", stack="cross"))
    flow_view = make_view(run, ViewSpec("flow", layer=1, query=1, merge_words=True))
    rollout_view = make_view(run, ViewSpec("rollout", layer=1, merge_words=True))
    np.testing.assert_allclose(flow_view.matrix, rollout_view.matrix)  # flow's graph is the rollout
    assert not np.allclose(flow_view.matrix, make_view(run, ViewSpec("mean", layer=1, merge_words=True)).matrix)
    np.testing.assert_allclose(values_for_view(flow_view, np.array([1.0, 2.0, 3.0, 4.0, 5.0])), [1.0, 5.0, 4.0, 5.0])
