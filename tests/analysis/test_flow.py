"""Attention flow against a hand computation, networkx and the igraph implementation; the C
kernel directly (GIL, buffers); progress, cancellation and input checks."""

from __future__ import annotations

import threading

import networkx as nx
import numpy as np
import pytest

import analysis.attention.flow as flow_module
from analysis.attention.flow import attention_flow, attention_flow_matrix
from analysis.attention.rollout import attention_rollout, residual_augmented_layers
from analysis.progress import Cancelled


@pytest.fixture(params=["compiled", "fallback"])
def implementation(request, monkeypatch):
    """Runs a test with the C kernel (analysis/attention/_flow.c) and again with the igraph
    fallback used when the package was installed without a C compiler."""
    if request.param == "compiled":
        assert flow_module._flow_core is not None, (
            "the flow kernel is not built: run `make setup` (pip install -e .) with a C compiler"
        )
    else:
        monkeypatch.setattr(flow_module, "_flow_core", None)
    return request.param


def random_attentions(layers: int, heads: int, tokens: int, seed: int, causal: bool = False):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 2.0, (layers, heads, tokens, tokens))
    if causal:
        logits[..., np.triu_indices(tokens, 1)[0], np.triu_indices(tokens, 1)[1]] = -np.inf
    weights = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return weights / weights.sum(axis=-1, keepdims=True)


def sparse_attentions(layers: int, tokens: int, seed: int, keep: int = 2):
    """Each row attends to at most ``keep`` keys (exact zeros elsewhere), so many nodes of
    the layered graph are out of the query's reach and many flows are limited by cuts deep
    inside the graph; some rows are all zero (the residual keeps them on the diagonal)."""
    rng = np.random.default_rng(seed)
    a = np.zeros((layers, 1, tokens, tokens))
    for layer in range(layers):
        for i in range(tokens):
            if rng.random() < 0.1:
                continue
            keys = rng.choice(tokens, keep, replace=False)
            a[layer, 0, i, keys] = rng.dirichlet(np.ones(keep))
    return a


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


def test_flow_by_hand_two_layers_three_tokens(implementation):
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
def test_flow_equals_networkx(layers, tokens, seed, causal, implementation):
    attentions = random_attentions(layers, 2, tokens, seed, causal)
    for query in (0, tokens // 2, tokens - 1):
        for layer in range(layers):
            np.testing.assert_allclose(
                attention_flow(attentions, query, layer),
                networkx_flow(attentions, query, layer),
                rtol=1e-9,
                atol=1e-12,
            )


@pytest.mark.parametrize(("layers", "tokens", "seed"), [(4, 9, 0), (5, 12, 1), (3, 15, 2)])
def test_flow_equals_networkx_with_unreachable_nodes_and_deep_cuts(layers, tokens, seed):
    attentions = sparse_attentions(layers, tokens, seed)
    for query in range(0, tokens, 4):
        np.testing.assert_allclose(
            attention_flow(attentions, query),
            networkx_flow(attentions, query, layers - 1),
            rtol=1e-9,
            atol=1e-12,
        )


@pytest.mark.parametrize(
    ("kind", "layers", "tokens", "seed"),
    [
        ("dense", 6, 64, 0),
        ("causal", 6, 48, 1),
        ("sparse", 6, 80, 2),
        ("sharp", 4, 96, 3),
    ],
)
def test_kernel_equals_the_igraph_implementation(kind, layers, tokens, seed, monkeypatch):
    """Medium sizes, where networkx takes too long: the C kernel against the igraph
    push-relabel implementation that computed attention flow before it (the fallback)."""
    if kind == "sparse":
        attentions = sparse_attentions(layers, tokens, seed, keep=3)
    else:
        attentions = random_attentions(layers, 3, tokens, seed, causal=kind == "causal")
        if kind == "sharp":
            attentions = attentions**4 / (attentions**4).sum(axis=-1, keepdims=True)
    queries = (0, tokens // 3, tokens - 1)
    ours = [attention_flow(attentions, q, layer) for q in queries for layer in (1, layers - 1)]
    monkeypatch.setattr(flow_module, "_flow_core", None)
    theirs = [attention_flow(attentions, q, layer) for q in queries for layer in (1, layers - 1)]
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)


def test_flow_lies_within_its_cuts_and_above_rollout():
    attentions = random_attentions(4, 2, 20, 8)
    r = residual_augmented_layers(attentions)
    rollout = attention_rollout(attentions)
    for query in (0, 7, 19):
        flow = attention_flow(attentions, query)
        assert np.all(flow >= rollout[query] - 1e-12)
        assert np.all(flow <= 1.0 + 1e-12)
        assert np.all(flow <= r[0].sum(axis=0) + 1e-12)  # the edges into each input token


def test_flow_matrix_stacks_rows(implementation):
    attentions = random_attentions(2, 2, 6, 5)
    matrix = attention_flow_matrix(attentions)
    assert matrix.shape == (6, 6)
    np.testing.assert_allclose(matrix[4], attention_flow(attentions, 4))
    some = attention_flow_matrix(attentions, layer=0, queries=[1, 3])
    np.testing.assert_allclose(some[1], attention_flow(attentions, 3, layer=0))


def test_progress_reaches_one_from_the_calling_thread(implementation):
    attentions = random_attentions(3, 2, 40, 6)
    fractions, threads = [], set()

    def progress(fraction: float) -> None:
        fractions.append(fraction)
        threads.add(threading.get_ident())

    attention_flow(attentions, 2, progress=progress)
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(fractions) >= 2
    assert threads == {threading.get_ident()}


@pytest.mark.parametrize("when", [1, 2, 5])
def test_cancellation_stops_handing_out_blocks(when, implementation, monkeypatch):
    """Once cancelled() says True no further block starts: only the blocks already running
    (one per thread) finish, so cancelling waits about one block (~20 ms), not the rest."""
    monkeypatch.setattr(flow_module, "MAX_BLOCK", 1)  # one input token per block
    attentions = random_attentions(3, 2, 60, 7)
    calls, reports = [], []

    def cancelled() -> bool:
        calls.append(len(reports))
        return len(calls) > when

    with pytest.raises(Cancelled):
        attention_flow(attentions, 5, progress=reports.append, cancelled=cancelled)
    reports_when_cancelled = calls[-1]
    assert len(reports) - reports_when_cancelled <= flow_module.FLOW_THREADS
    assert len(reports) < 60
    with pytest.raises(Cancelled):
        attention_flow_matrix(attentions, cancelled=lambda: True)


def test_one_thread_when_the_flow_matrices_would_be_large(monkeypatch):
    """Each thread holds (layer - 1) T^2 doubles; above WORK_BYTES for all of them together
    (a 30-layer model at 1,024 tokens) flow runs on one thread, with the same result."""
    attentions = random_attentions(4, 2, 24, 11)
    both = attention_flow(attentions, 5)
    monkeypatch.setattr(flow_module, "WORK_BYTES", 1)
    threads = []
    real = flow_module.ThreadPoolExecutor

    def counting(max_workers, **kwargs):
        threads.append(max_workers)
        return real(max_workers=max_workers, **kwargs)

    monkeypatch.setattr(flow_module, "ThreadPoolExecutor", counting)
    np.testing.assert_array_equal(attention_flow(attentions, 5), both)
    assert threads == [1]


def test_flow_refuses_bad_arguments():
    attentions = random_attentions(2, 1, 4, 7)
    with pytest.raises(ValueError, match="query must be a token index in 0..3"):
        attention_flow(attentions, 4)
    with pytest.raises(ValueError, match="layer must be a layer index in 0..1"):
        attention_flow(attentions, 0, layer=2)
    with pytest.raises(ValueError, match="layer must be a layer index"):
        attention_flow(attentions, 0, layer=True)
    with pytest.raises(ValueError, match="4-D array"):
        attention_flow(attentions[0], 0)
    with pytest.raises(ValueError, match="as many keys as queries"):
        attention_flow(attentions[..., :3], 0)
    with pytest.raises(ValueError, match="query must be a token index"):
        attention_flow_matrix(attentions, queries=[0, 9])


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (np.nan, "contain NaN at layer 1, head 0, query 2, key 3"),
        (np.inf, "contain an infinite value at layer 1, head 0, query 2, key 3"),
        (-0.25, r"contain a negative value \(-0.25\) at layer 1, head 0, query 2, key 3"),
    ],
)
def test_flow_refuses_nan_infinite_and_negative_attention(value, message):
    """Before: NaN gave a flow of 0.0 for every token and negative weights negative flow."""
    attentions = random_attentions(2, 1, 4, 7)
    attentions[1, 0, 2, 3] = value
    with pytest.raises(ValueError, match=message):
        attention_flow(attentions, 0)
    with pytest.raises(ValueError, match=message):
        attention_flow_matrix(attentions)
    np.testing.assert_allclose(  # a layer the flow does not use is not checked
        attention_flow(attentions, 0, layer=0), residual_augmented_layers(attentions[:1])[0, 0]
    )


# --------------------------------------------------------------------------- the C kernel


def kernel_network(attentions, query, layer):
    layers = np.ascontiguousarray(residual_augmented_layers(attentions)[: layer + 1])
    return flow_module._flow_core.Network(layers, layer, query)


def test_kernel_leaves_its_work_array_zero_and_any_sink_order_works():
    attentions = random_attentions(4, 2, 16, 9)
    network = kernel_network(attentions, 3, 3)
    work = np.zeros(network.work_size)
    forward = np.empty(16)
    network.max_flows(np.arange(16, dtype=np.int64), forward, work)
    assert not work.any()
    backward = np.empty(16)
    network.max_flows(np.arange(15, -1, -1, dtype=np.int64), backward, work)
    np.testing.assert_array_equal(backward[::-1], forward)
    np.testing.assert_allclose(forward, networkx_flow(attentions, 3, 3), rtol=1e-9, atol=1e-12)


def test_kernel_refuses_bad_buffers_with_a_message():
    layers = np.ascontiguousarray(residual_augmented_layers(random_attentions(3, 1, 5, 0)))
    core = flow_module._flow_core
    with pytest.raises(ValueError, match=r"\[levels \+ 1, T, T\]"):
        core.Network(layers, 3, 0)
    with pytest.raises(ValueError, match=r"\[levels \+ 1, T, T\]"):
        core.Network(layers[:, :, :4].copy(), 2, 0)
    with pytest.raises(ValueError, match="query must be in 0..4"):
        core.Network(layers, 2, 5)
    network = core.Network(layers, 2, 1)
    work, out = np.zeros(network.work_size), np.empty(2)
    with pytest.raises(ValueError, match="out of range"):
        network.max_flows(np.array([0, 5], dtype=np.int64), out, work)
    with pytest.raises(ValueError, match="work_size"):
        network.max_flows(np.array([0, 1], dtype=np.int64), out, work[:-1])
    with pytest.raises(ValueError, match="same length"):
        network.max_flows(np.array([0, 1], dtype=np.int64), out[:1], work)


def test_the_kernel_releases_the_gil():
    """While a thread computes every token's flow on a dense 256-token, 6-layer network,
    this thread keeps running Python: the window's thread is never held up by flow."""
    attentions = random_attentions(6, 2, 256, 3)
    network = kernel_network(attentions, 100, 5)
    work, out = np.zeros(network.work_size), np.empty(256)
    inside = threading.Event()
    finished = threading.Event()

    def run():
        inside.set()
        network.max_flows(np.arange(256, dtype=np.int64), out, work)
        finished.set()

    thread = threading.Thread(target=run)
    thread.start()
    inside.wait()
    spins_while_running = 0
    while not finished.is_set():
        spins_while_running += 1
    thread.join()
    # Holding the GIL for the whole call would leave at most a handful of iterations (the
    # interpreter's 5 ms switch interval); the call takes far longer than that.
    assert spins_while_running > 10_000
    assert np.all(out > 0) and np.all(out <= 1 + 1e-12)
