"""Rollout, attention flow, the graph across layers and its route *through* contributions
(analysis.attention.capacities): value norms, ALTI and value zeroing on tiny models.

References are built here independently: the layered graph by hand in networkx from the
per-layer contribution matrices (maximum flow), rollout as the plain matrix product that
analysis.contributions computes (``alti_rollout``), the best route by enumerating every
route. Through attention, every function gives what it gives on raw attentions, bit for bit.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import replace

import networkx as nx
import numpy as np
import pytest
import torch

import analysis.attention.flow as flow_module
from analysis.attention.capacities import (
    MissingContributions,
    capacities_from,
    layer_capacities,
    missing_through,
)
from analysis.attention.flow import attention_flow, attention_flow_matrix
from analysis.attention.rollout import attention_rollout, residual_augmented_layers
from analysis.attention.views import ViewSpec, make_view, needed_contribution, view_matrix_key
from analysis.contributions import LAYER_KEYS, RUN_KEYS, run_contributions
from analysis.graph.layered import layered_graph
from analysis.graph.paths import layered_route
from analysis.graph.rules import SparsifyRule
from tests.analysis.fake_runs import make_run

TEXT = "The quick brown fox jumps over the lazy dog."
FAMILIES = ("bert", "llama")
CONTRIBUTIONS = ("value_norm", "alti", "value_zeroing")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models gain nothing from threads on the shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_runs(tiny_model_dir):
    """``tiny_runs(family)`` -> ``(loaded, run with every contribution, raw arrays)``."""
    from analysis.attention.extract import extract
    from analysis.contributions import contributions_for_run
    from analysis.models.loading import load_model

    cache = {}

    def get(family):
        if family not in cache:
            loaded = load_model(str(tiny_model_dir(family)))
            run = extract(loaded, TEXT)
            arrays = contributions_for_run(loaded, run)
            cache[family] = (loaded, replace(run, contributions=run_contributions(arrays)), arrays)
        return cache[family]

    return get


def hand_flow(per_layer: np.ndarray, query: int, layer: int) -> np.ndarray:
    """networkx maximum flow on the layered graph built node by node from ``per_layer``
    ``[L, T, T]`` (edge ``(l + 1, i) -> (l, j)`` of capacity ``per_layer[l, i, j]``)."""
    tokens = per_layer.shape[-1]
    graph = nx.DiGraph()
    graph.add_nodes_from((level, t) for level in range(layer + 2) for t in range(tokens))
    for level in range(layer + 1):
        for i in range(tokens):
            for j in range(tokens):
                if per_layer[level, i, j] > 0:
                    graph.add_edge((level + 1, i), (level, j), capacity=float(per_layer[level, i, j]))
    return np.array(
        [nx.maximum_flow_value(graph, (layer + 1, query), (0, j)) for j in range(tokens)]
    )


def hand_residual(matrices: np.ndarray) -> np.ndarray:
    """``0.5 * M + 0.5 * I`` with rows renormalised, written out."""
    out = 0.5 * np.asarray(matrices, dtype=np.float64) + 0.5 * np.eye(matrices.shape[-1])
    return out / out.sum(axis=-1, keepdims=True)


def brute_force_route(per_layer: np.ndarray, query: int, target: int, layer: int):
    """The best route by enumerating every token at every inner level: (probability, tokens)."""
    tokens = per_layer.shape[-1]
    best, best_tokens = 0.0, None
    for inner in itertools.product(range(tokens), repeat=layer):
        route = (query, *inner, target)  # top first: level layer + 1, layer, ..., 0
        probability = 1.0
        for step in range(layer + 1):
            probability *= per_layer[layer - step, route[step], route[step + 1]]
        if probability > best:
            best, best_tokens = probability, route
    return best, best_tokens


# --------------------------------------------------------------------------- the rules


@pytest.mark.parametrize("family", FAMILIES)
def test_the_capacities_of_each_source_follow_their_rule(tiny_runs, family):
    _, run, arrays = tiny_runs(family)
    np.testing.assert_array_equal(layer_capacities(run, "attention"), residual_augmented_layers(run.attentions))
    np.testing.assert_allclose(
        layer_capacities(run, "value_norm"), hand_residual(arrays["value_norm_sum"]), rtol=0, atol=1e-12
    )
    for kind in ("alti", "value_zeroing"):  # as they are: no identity added
        capacities = layer_capacities(run, kind)
        assert capacities.dtype == np.float64
        np.testing.assert_array_equal(capacities, arrays[kind].astype(np.float64))
    for kind in ("attention", *CONTRIBUTIONS):
        capacities = layer_capacities(run, kind)
        assert capacities.shape == (run.num_layers, run.num_tokens, run.num_tokens)
        assert np.all(capacities >= 0)
        np.testing.assert_allclose(capacities.sum(axis=-1), 1.0, atol=1e-5, err_msg=kind)
        np.testing.assert_array_equal(layer_capacities(run, kind, upto_layer=0), capacities[:1])


def test_the_run_keeps_view_and_per_layer_arrays():
    arrays = {name: np.full((1, 2, 2), float(index)) for index, name in enumerate(
        ("value_norm", "value_norm_sum", "alti", "alti_rollout", "value_zeroing", "value_zeroing_rollout"))}
    kept = run_contributions(arrays)
    assert set(kept) == set(RUN_KEYS) == {"value_norm", "alti", "alti_layers", "value_zeroing",
                                          "value_zeroing_layers"}  # fmt: skip
    assert kept["value_norm"] is arrays["value_norm_sum"]  # per layer already: one array for both
    assert kept["alti"] is arrays["alti_rollout"] and kept["alti_layers"] is arrays["alti"]
    assert kept["value_zeroing"] is arrays["value_zeroing_rollout"]
    assert kept["value_zeroing_layers"] is arrays["value_zeroing"]
    assert LAYER_KEYS == {"value_norm": "value_norm", "alti": "alti_layers",
                          "value_zeroing": "value_zeroing_layers"}  # fmt: skip
    assert run_contributions({"alti": arrays["alti"]}) == {}  # without its rollout: nothing


# --------------------------------------------------------------------------- flow


@pytest.mark.parametrize("fallback", [False, True], ids=["C kernel", "igraph fallback"])
@pytest.mark.parametrize("family", FAMILIES)
def test_flow_through_alti_equals_networkx_on_the_alti_layers(tiny_runs, family, fallback, monkeypatch):
    if fallback:
        monkeypatch.setattr(flow_module, "_flow_core", None)
    else:
        assert flow_module._flow_core is not None, "the flow kernel is not built: run `make setup`"
    _, run, arrays = tiny_runs(family)
    capacities = layer_capacities(run, "alti")
    for layer in range(run.num_layers):
        for query in (0, run.num_tokens // 2, run.num_tokens - 1):
            ours = attention_flow(layers=capacities, query=query, layer=layer)
            expected = hand_flow(arrays["alti"], query, layer)
            np.testing.assert_allclose(ours, expected, rtol=1e-9, atol=1e-12)
            # and it lies where every flow does: between rollout and 1
            rollout = arrays["alti_rollout"][layer][query]
            assert np.all(ours >= rollout - 1e-6) and np.all(ours <= 1 + 1e-9)


@pytest.mark.parametrize("family", FAMILIES)
def test_flow_through_value_norms_and_value_zeroing_equals_networkx(tiny_runs, family):
    _, run, arrays = tiny_runs(family)
    layer, query = run.num_layers - 1, run.num_tokens - 2
    expected = {"value_norm": hand_residual(arrays["value_norm_sum"]), "value_zeroing": arrays["value_zeroing"]}
    for kind, per_layer in expected.items():
        ours = attention_flow(layers=layer_capacities(run, kind), query=query, layer=layer)
        np.testing.assert_allclose(ours, hand_flow(per_layer, query, layer), rtol=1e-9, atol=1e-12)
    rows = attention_flow_matrix(layers=layer_capacities(run, "alti"), layer=layer, queries=[query, 1])
    np.testing.assert_allclose(rows[0], hand_flow(arrays["alti"], query, layer), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(rows[1], hand_flow(arrays["alti"], 1, layer), rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------------- rollout and views


@pytest.mark.parametrize("family", FAMILIES)
def test_rollout_through_alti_and_value_zeroing_equals_their_rollout(tiny_runs, family):
    _, run, arrays = tiny_runs(family)
    for kind in ("alti", "value_zeroing"):
        for layer in range(run.num_layers):
            expected = arrays[f"{kind}_rollout"][layer]
            direct = attention_rollout(layers=layer_capacities(run, kind), upto_layer=layer)
            np.testing.assert_allclose(direct, expected, rtol=0, atol=1e-6, err_msg=kind)
            view = make_view(run, ViewSpec("rollout", layer=layer, through=kind))
            np.testing.assert_array_equal(view.matrix, direct)
            flow_view = make_view(run, ViewSpec("flow", layer=layer, through=kind, query=1))
            np.testing.assert_array_equal(flow_view.matrix, direct)  # flow's graph matrix
            # the contribution view itself shows the stored rollout: the same numbers
            np.testing.assert_allclose(make_view(run, ViewSpec(kind, layer=layer)).matrix, direct, atol=1e-6)
    by_hand = hand_residual(arrays["value_norm_sum"])
    view = make_view(run, ViewSpec("rollout", through="value_norm"))
    np.testing.assert_allclose(view.matrix, by_hand[1] @ by_hand[0], rtol=0, atol=1e-12)
    assert view.row_stochastic


def test_a_run_with_only_the_view_arrays_shows_them_and_asks_for_the_layers(tiny_runs):
    _, full, arrays = tiny_runs("bert")
    run = replace(full, contributions={"alti": arrays["alti_rollout"]})  # what the app stored before
    np.testing.assert_array_equal(make_view(run, ViewSpec("alti", layer=1)).matrix, arrays["alti_rollout"][1])
    spec = ViewSpec("flow", through="alti", query=2)
    assert needed_contribution(run, spec) == "alti" and missing_through(run, "alti") == "alti_layers"
    with pytest.raises(MissingContributions) as missing:
        make_view(run, spec)
    assert missing.value.kind == "alti" and missing.value.key == "alti_layers"
    assert "per-layer alti contributions" in str(missing.value)
    with pytest.raises(MissingContributions):
        layer_capacities(run, "value_zeroing")
    assert needed_contribution(full, spec) is None
    assert needed_contribution(run, ViewSpec("value_norm")) == "value_norm"
    assert needed_contribution(run, ViewSpec("rollout")) is None  # through attention: nothing


def test_view_specs_validate_describe_and_key_through():
    run = make_run(np.full((3, 1, 4, 4), 0.25), text="a b c d", tokens=("a", "b", "c", "d"),
                   offsets=[(0, 1), (2, 3), (4, 5), (6, 7)], word_ids=(0, 1, 2, 3),
                   special=[False] * 4)  # fmt: skip
    spec = ViewSpec("flow", layer=-1, query=3, through="alti")
    assert spec.resolved(run).describe() == "ALTI flow from token 3 at layer 2"
    assert ViewSpec("rollout", layer=1, through="value_zeroing").describe() == "value-zeroing rollout to layer 1"
    assert ViewSpec("rollout", layer=1, through="value_norm").describe() == "value-norm rollout to layer 1"
    assert ViewSpec("rollout", layer=1).describe() == "rollout to layer 1"
    assert view_matrix_key(ViewSpec("rollout", through="alti")) != view_matrix_key(ViewSpec("rollout"))
    # through means nothing for the other kinds: it resolves to attention there
    head = ViewSpec("head", layer=0, through="alti")
    assert head.resolved(run).through == "attention" and "ALTI" not in head.describe()
    assert view_matrix_key(head) == view_matrix_key(ViewSpec("head", layer=0))
    assert make_view(run, head).spec.through == "attention"
    with pytest.raises(ValueError, match="unknown source 'saliency'"):
        ViewSpec("rollout", through="saliency").resolved(run)
    with pytest.raises(ValueError, match="unknown source"):
        ViewSpec("head", through="ALTI").resolved(run)
    with pytest.raises(ValueError, match="self-attention stack only"):
        ViewSpec("rollout", through="alti", stack="decoder").resolved(run)
    assert ViewSpec().to_dict()["through"] == "attention"


# --------------------------------------------------------------------------- graph and route


@pytest.mark.parametrize("family", FAMILIES)
def test_route_through_value_zeroing_is_the_best_route(tiny_runs, family):
    _, run, arrays = tiny_runs(family)
    capacities = layer_capacities(run, "value_zeroing")
    t = run.num_tokens
    for query, target in itertools.product(range(t), repeat=2):
        route = layered_route(layers=capacities, query=query, target=target, layer=1)
        best, tokens = brute_force_route(arrays["value_zeroing"].astype(np.float64), query, target, 1)
        if tokens is None:
            assert not route.found and route.probability == 0.0
            continue
        np.testing.assert_allclose(route.probability, best, rtol=1e-12)
        assert route.tokens[0] == query and route.tokens[-1] == target


def test_route_through_capacities_is_the_best_route_on_a_deeper_case():
    """Four layers, five tokens, exact zeros, no ties: the route itself is unique."""
    rng = np.random.default_rng(3)
    per_layer = rng.random((4, 5, 5)) * (rng.random((4, 5, 5)) < 0.6)
    per_layer[:, np.arange(5), np.arange(5)] += 0.1  # the residual keeps every row alive
    per_layer /= per_layer.sum(axis=-1, keepdims=True)
    found = 0
    for query, target in itertools.product(range(5), repeat=2):
        for layer in range(4):
            route = layered_route(layers=per_layer, query=query, target=target, layer=layer)
            best, tokens = brute_force_route(per_layer, query, target, layer)
            np.testing.assert_allclose(route.probability, best, rtol=1e-12)
            if tokens is None:  # every route has a zero weight
                assert not route.found and route.reason
                continue
            found += 1
            assert route.tokens == tokens
            assert route.steps == tuple(zip(range(layer + 1, -1, -1), tokens, strict=True))
    assert found > 50  # most of the 100 cases have a route


@pytest.mark.parametrize("family", FAMILIES)
def test_the_layered_graph_through_alti_carries_the_alti_weights(tiny_runs, family):
    _, run, arrays = tiny_runs(family)
    graph = layered_graph(layers=layer_capacities(run, "alti"), layer=1, rule=SparsifyRule(mode="none"))
    t = run.num_tokens
    weights = {(int(s), int(d)): w for s, d, w in zip(graph.sources, graph.targets, graph.weights, strict=True)}
    expected = {((level + 1) * t + i, level * t + j): float(arrays["alti"][level, i, j])
                for level in range(2) for i in range(t) for j in range(t) if arrays["alti"][level, i, j] > 0}
    assert weights.keys() == expected.keys()
    np.testing.assert_array_equal([weights[k] for k in expected], list(expected.values()))
    kept = layered_graph(layers=layer_capacities(run, "alti"), layer=1, rule=SparsifyRule(), tokens=[0, 2, 3])
    assert kept.num_tokens == 3 and kept.num_layers_shown == 3


# --------------------------------------------------------------------------- through attention


@pytest.mark.parametrize("family", FAMILIES)
def test_through_attention_gives_todays_results_exactly(tiny_runs, family):
    """``layers=layer_capacities(run, "attention")`` against the raw attentions: bit for bit."""
    _, run, _ = tiny_runs(family)
    a = run.attentions
    capacities = layer_capacities(run, "attention")
    # today's rule written out: 0.5 * head mean + 0.5 * I, rows renormalised
    np.testing.assert_allclose(capacities, hand_residual(a.mean(axis=1, dtype=np.float64)), rtol=0, atol=1e-15)
    rule = SparsifyRule()
    for layer in range(run.num_layers):
        np.testing.assert_array_equal(
            attention_rollout(layers=capacities, upto_layer=layer), attention_rollout(a, layer)
        )
        np.testing.assert_array_equal(
            attention_flow(layers=capacities, query=3, layer=layer), attention_flow(a, 3, layer)
        )
        np.testing.assert_array_equal(
            attention_flow_matrix(layers=capacities, layer=layer), attention_flow_matrix(a, layer)
        )
        ours, raw = layered_graph(layers=capacities, layer=layer, rule=rule), layered_graph(a, layer, rule)
        for name in ("sources", "targets", "weights", "node_layer", "node_token"):
            np.testing.assert_array_equal(getattr(ours, name), getattr(raw, name))
        assert layered_route(layers=capacities, query=2, target=4, layer=layer) == layered_route(a, 2, 4, layer)
    spec = ViewSpec("rollout", layer=0)
    np.testing.assert_array_equal(make_view(run, spec).matrix, attention_rollout(a, 0))
    assert make_view(run, spec).spec.through == "attention"


# --------------------------------------------------------------------------- bad capacities


def good_capacities():
    return np.array([[[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.2, 0.3, 0.5]]] * 2)


def every_consumer(layers):
    """Each function that takes capacities, called on ``layers``."""
    return [
        lambda: attention_rollout(layers=layers),
        lambda: attention_flow(layers=layers, query=0),
        lambda: attention_flow_matrix(layers=layers),
        lambda: layered_graph(layers=layers, layer=1, rule=SparsifyRule()),
        lambda: layered_route(layers=layers, query=0, target=1),
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (np.nan, "contain NaN at layer 1, query 2, key 1"),
        (np.inf, "contain an infinite value at layer 1, query 2, key 1"),
        (-0.25, r"contain a negative value \(-0.25\) at layer 1, query 2, key 1"),
        (0.9, "row at layer 1, query 2 sums to 1.6; each row must be a distribution"),
    ],
)
def test_bad_capacities_are_refused_by_every_consumer(value, message):
    layers = good_capacities()
    layers[1, 2, 1] = value
    for call in every_consumer(layers):
        with pytest.raises(ValueError, match=message):
            call()
    # a layer that is not used is not checked (as for attentions)
    np.testing.assert_allclose(attention_flow(layers=layers, query=2, layer=0), layers[0, 2])


def test_capacity_shapes_and_sources_are_checked():
    with pytest.raises(ValueError, match="3-D array"):
        attention_rollout(layers=good_capacities()[0])
    with pytest.raises(ValueError, match="square"):
        attention_flow(layers=good_capacities()[:, :2], query=0)
    with pytest.raises(ValueError, match="not both or neither"):
        attention_flow(np.full((2, 1, 3, 3), 1 / 3), 0, layers=good_capacities())
    with pytest.raises(ValueError, match="not both or neither"):
        layered_route(query=0, target=1)
    with pytest.raises(ValueError, match="query must be a token index"):
        attention_flow(layers=good_capacities())
    with pytest.raises(ValueError, match="must be numbers"):
        attention_rollout(layers=good_capacities().astype(str))
    zero_row = good_capacities()
    zero_row[1, 1] = 0.0  # a row that is all zero is allowed (nothing reaches that token)
    assert attention_flow(layers=zero_row, query=1)[0] == 0.0
    with pytest.raises(ValueError, match="unknown source"):
        capacities_from("raw", good_capacities())
    with pytest.raises(ValueError, match="value norm contributions row"):
        capacities_from("value_norm", good_capacities() * 2)  # not normalised: refused
    with pytest.raises(ValueError, match="layer must be a layer index in 0..1"):
        capacities_from("alti", good_capacities(), upto_layer=2)


def test_contributions_need_the_self_attention_stack(tiny_runs):
    _, run, _ = tiny_runs("bert")
    with pytest.raises(ValueError, match="self-attention stack only"):
        layer_capacities(run, "alti", stack="decoder")
    with pytest.raises(ValueError, match="no decoder attention"):
        layer_capacities(run, "attention", stack="decoder")
    with pytest.raises(ValueError, match="not 'cross'"):
        layer_capacities(run, "attention", stack="cross")


# --------------------------------------------------------------------------- CLI and API


def test_the_command_line_flow_through_alti_equals_the_api(tiny_runs, tiny_model_dir, tmp_path, capsys):
    from analysis import api
    from analysis.cli import main

    folder = str(tiny_model_dir("bert"))
    out = tmp_path / "flow"
    assert main(["--text", TEXT, "--model", folder, "--view", "flow", "--query", "2", "--layer", "1",
                 "--through", "alti", "--out", str(out)]) == 0  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert summary["view"]["through"] == "alti"
    assert summary["view"]["description"] == "ALTI flow from token 2 at layer 1"
    assert "contributions" in summary["timings"]
    import csv

    with open(out / "tokens.csv", newline="", encoding="utf-8") as handle:
        written = np.array([float(row["flow"]) for row in csv.DictReader(handle)])
    _, run, arrays = tiny_runs("bert")
    expected = api.flow(api.with_contributions(run, "alti"), 2, layer=1, through="alti")
    np.testing.assert_allclose(written, expected, rtol=1e-6, atol=1e-9)  # files keep 7 digits
    np.testing.assert_allclose(expected, hand_flow(layer_capacities(run, "alti"), 2, 1), rtol=1e-9, atol=1e-12)
    assert not np.allclose(expected, api.flow(run, 2, layer=1))  # ALTI is not raw attention here
    # the view's graph is drawn on the ALTI rollout
    with open(out / "edges.csv", newline="", encoding="utf-8") as handle:
        edges = list(csv.DictReader(handle))
    assert edges
    for edge in edges:
        weight = arrays["alti_rollout"][1][int(edge["source"]), int(edge["target"])]
        np.testing.assert_allclose(float(edge["weight"]), weight, rtol=1e-6)


def test_the_command_line_checks_through_before_the_model_loads(tmp_path, capsys):
    from analysis.cli import main

    missing = str(tmp_path / "no-model")
    code = main(["--text", TEXT, "--model", missing, "--view", "rollout", "--through", "alti",
                 "--stack", "decoder", "--out", str(tmp_path / "o")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "--through alti needs --stack self" in err and "no-model" not in err
    with pytest.raises(SystemExit):
        main(["--text", TEXT, "--model", missing, "--view", "rollout", "--through", "raw",
              "--out", str(tmp_path / "o")])  # fmt: skip
    assert "invalid choice: 'raw'" in capsys.readouterr().err


def test_the_command_line_notes_an_ignored_through(tiny_model_dir, tmp_path, capsys):
    from analysis.cli import main

    out = tmp_path / "head"
    assert main(["--text", TEXT, "--model", str(tiny_model_dir("bert")), "--view", "head",
                 "--through", "alti", "--out", str(out)]) == 0  # fmt: skip
    assert "--through alti is ignored" in capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["view"]["through"] == "attention" and "contributions" not in summary["timings"]


def test_the_command_line_rollout_through_value_norms_uses_the_recorded_pass(tiny_model_dir, tmp_path,
                                                                            monkeypatch):
    """The extraction's own forward pass serves the contributions: no second capture."""
    import analysis.contributions.compute as compute
    from analysis.cli import main

    def no_second_pass(*args, **kwargs):
        raise AssertionError("capture_layers ran a second forward pass")

    monkeypatch.setattr(compute, "capture_layers", no_second_pass)
    out = tmp_path / "rollout"
    assert main(["--text", TEXT, "--model", str(tiny_model_dir("llama")), "--view", "rollout",
                 "--through", "value_norm", "--no-graph", "--out", str(out)]) == 0  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert summary["view"]["description"] == "value-norm rollout to layer 1"
