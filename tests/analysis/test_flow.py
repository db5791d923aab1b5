"""Attention flow against a hand computation and networkx; progress and cancellation."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from analysis.attention.flow import attention_flow, attention_flow_matrix
from analysis.attention.rollout import residual_augmented_layers
from analysis.progress import Cancelled


def random_attentions(layers: int, heads: int, tokens: int, seed: int, causal: bool = False):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 2.0, (layers, heads, tokens, tokens))
    if causal:
        logits[..., np.triu_indices(tokens, 1)[0], np.triu_indices(tokens, 1)[1]] = -np.inf
    weights = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return weights / weights.sum(axis=-1, keepdims=True)


def networkx_flow(attentions: np.ndarray, query: int, layer: int) -> np.ndarray:
    """The reference: the full layered graph, one nx.maximum_flow_value per input token."""
    r = residual_augmented_layers(attentions)
    tokens = r.shape[-1]
    graph = nx.DiGraph()
    for level in range(layer + 1):
        for i in range(tokens):
            for j in range(tokens):
                if r[level, i, j] > 0:
                    graph.add_edge((level + 1, i), (level, j), capacity=r[level, i, j])
    return np.array(
        [
            nx.maximum_flow_value(graph, (layer + 1, query), (0, j)) if (0, j) in graph else 0.0
            for j in range(tokens)
        ]
    )


def test_flow_by_hand_two_layers_three_tokens():
    # R_1[0] = [.5, .25, .25]; R_0 = .5 I + .5 (cyclic shift): rows [.5,.5,0], [0,.5,.5], [.5,0,.5].
    top = np.array([[0.0, 0.5, 0.5], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    shift = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    attentions = np.stack([shift, top])[:, None]
    np.testing.assert_allclose(attention_flow(attentions, 0), [0.75, 0.75, 0.5], rtol=1e-12)
    np.testing.assert_allclose(attention_flow(attentions, 0, layer=0), [0.5, 0.5, 0.0])


@pytest.mark.parametrize(
    ("layers", "tokens", "seed", "causal"),
    [(2, 6, 0, False), (3, 8, 1, False), (3, 10, 2, False), (2, 7, 3, True), (3, 9, 4, True)],
)
def test_flow_equals_networkx(layers, tokens, seed, causal):
    attentions = random_attentions(layers, 2, tokens, seed, causal)
    for query in (0, tokens // 2, tokens - 1):
        for layer in range(layers):
            np.testing.assert_allclose(
                attention_flow(attentions, query, layer),
                networkx_flow(attentions, query, layer),
                rtol=1e-6,
                atol=1e-12,
            )


def test_flow_matrix_stacks_rows():
    attentions = random_attentions(2, 2, 6, 5)
    matrix = attention_flow_matrix(attentions)
    assert matrix.shape == (6, 6)
    np.testing.assert_allclose(matrix[4], attention_flow(attentions, 4))
    some = attention_flow_matrix(attentions, layer=0, queries=[1, 3])
    np.testing.assert_allclose(some[1], attention_flow(attentions, 3, layer=0))


def test_progress_and_cancellation():
    attentions = random_attentions(3, 2, 8, 6)
    fractions = []
    attention_flow(attentions, 2, progress=fractions.append)
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(fractions) == 8
    calls = []

    def cancelled() -> bool:
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(Cancelled):
        attention_flow(attentions, 2, cancelled=cancelled)
    with pytest.raises(Cancelled):
        attention_flow_matrix(attentions, cancelled=lambda: True)


def test_flow_refuses_bad_arguments():
    attentions = random_attentions(2, 1, 4, 7)
    with pytest.raises(ValueError):
        attention_flow(attentions, 4)
    with pytest.raises(ValueError):
        attention_flow(attentions, 0, layer=2)
    with pytest.raises(ValueError):
        attention_flow(attentions[0], 0)
