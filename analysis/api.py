"""Attention Atlas from a notebook or a script: the window's analysis in five calls.

The same objects the window and the command line use, with the same meaning of every
number (README, "Conventions of meaning"); nothing here needs Qt. torch is imported on
the first :func:`analyse`, not on ``import analysis``.

Examples
--------
>>> import analysis as atlas                                        # doctest: +SKIP
>>> run = atlas.analyse("The cat sat on the mat.")                  # doctest: +SKIP
>>> view = atlas.view(run, layer=2, head=5)                         # doctest: +SKIP
>>> graph = atlas.build_graph(view, mode="top_k", top_k=3)                # doctest: +SKIP
>>> graph.metrics["betweenness"].argmax()                           # doctest: +SKIP
>>> atlas.export("out/", run, view, graph)                          # doctest: +SKIP

Through contributions instead of raw attention (rollout, flow):

>>> from analysis.api import with_contributions                     # doctest: +SKIP
>>> run = with_contributions(run, "alti")                           # doctest: +SKIP
>>> atlas.view(run, "rollout", through="alti").matrix               # doctest: +SKIP
>>> atlas.flow(run, query=3, through="alti")                        # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path

from analysis.attention.views import AttentionView, ViewSpec, make_view
from analysis.run import AttentionRun


def analyse(text: str, pair: str | None = None, *, model: str = "default", max_tokens: int | None = None,
            allow_pickle: bool = False) -> AttentionRun:
    """Run ``model`` once on ``text`` (and ``pair``) and return its attentions.

    Parameters
    ----------
    text : str
        The text to analyse.
    pair : str, optional
        A second text read with the first (a context for a question; encoder-decoder
        models read it as the decoder's input).
    model : str
        ``"default"`` (or ``"minilm"``, the embedded MiniLM), a local model folder, a hub id
        already in the local cache, or another source ``analysis.models.loading.load_model``
        accepts. Loaded once and cached for the process.
    max_tokens : int, optional
        Truncate the input to this many tokens (the model's own limit always applies).
    allow_pickle : bool
        Allow pickle (``.bin``) weights, which can run code when loaded.

    Returns
    -------
    AttentionRun
        Tokens, offsets and ``attentions[layer, head, query, key]``.
    """
    from analysis.attention.extract import extract
    from analysis.models.loading import load_model

    return extract(load_model(model, allow_pickle=allow_pickle), text, pair, max_tokens=max_tokens)


def with_contributions(run: AttentionRun, kinds="alti", *, allow_pickle: bool = False) -> AttentionRun:
    """``run`` with the contributions ``kinds`` computed (value norms, ALTI, value zeroing).

    Parameters
    ----------
    run : AttentionRun
        From :func:`analyse` (encoders and decoders).
    kinds : str or iterable of str
        ``"value_norm"``, ``"alti"``, ``"value_zeroing"`` (slow: one layer pass per token).
    allow_pickle : bool
        As for :func:`analyse`; the run's own model is loaded (cached).

    Returns
    -------
    AttentionRun
        The same run whose ``contributions`` also hold each kind's view array and its
        per-layer matrices (:func:`analysis.contributions.run_contributions`), so the
        contribution views and rollout / flow ``through`` them work.
    """
    from dataclasses import replace

    from analysis.contributions import contributions_for_run, run_contributions
    from analysis.models.loading import load_model

    loaded = load_model(run.model.source, allow_pickle=allow_pickle)
    arrays = contributions_for_run(loaded, run, kinds=kinds)
    return replace(run, contributions={**run.contributions, **run_contributions(arrays)})


def view(run: AttentionRun, kind: str | None = None, *, layer: int = -1, head: int | None = None,
         stack: str = "self", words: bool = False, no_special: bool = False,
         query: int | None = None, through: str = "attention") -> AttentionView:
    """One matrix of ``run``: a head, the mean or max of heads, rollout or flow's matrix.

    Without ``kind``: one head when ``head`` is given, else the mean of the heads of
    ``layer`` (as the command line does). Layers count from 0; ``-1`` is the last.
    ``through`` (rollout and flow): ``"attention"``, or ``"value_norm"``, ``"alti"``,
    ``"value_zeroing"`` for a run :func:`with_contributions` of that kind
    (:mod:`analysis.attention.capacities` states each rule).
    """
    kind = kind or ("head" if head is not None else "mean")
    return make_view(run, ViewSpec(kind=kind, layer=layer, head=head or 0, stack=stack, merge_words=words,
                                   drop_special=no_special, query=query, through=through))


def build_graph(view_or_matrix, *, mode: str = "coverage", coverage: float = 0.9, top_k: int = 5,
          min_weight: float = 0.0, self_loops: bool = False, resolution: float = 1.0, seed: int = 0):
    """The graph of a view: kept edges, every metric, Louvain communities (a GraphResult).

    ``view_or_matrix`` is an :class:`AttentionView` or a square matrix. Views whose values
    exceed 1 or are signed are scaled as the window does (``analysis.graph.rules.graph_weights``).
    """
    from analysis.graph.metrics import analyze_graph
    from analysis.graph.rules import SparsifyRule, graph_weights

    if isinstance(view_or_matrix, AttentionView):
        matrix, signed = view_or_matrix.matrix, view_or_matrix.signed
    else:
        matrix, signed = view_or_matrix, False
    rule = SparsifyRule(mode=mode, coverage=coverage, top_k=top_k, min_weight=min_weight, self_loops=self_loops)
    return analyze_graph(graph_weights(matrix, signed=signed).matrix, rule, resolution=resolution, seed=seed)


def flow(run: AttentionRun, query: int, layer: int = -1, *, through: str = "attention"):
    """Attention flow from token ``query`` at ``layer`` into every input token ``[T]``,
    through raw attention (default) or the run's per-layer value norms, ALTI or value
    zeroing (``through``; see :func:`view`)."""
    from analysis.attention.capacities import layer_capacities
    from analysis.attention.flow import attention_flow

    layer = layer + run.num_layers if layer < 0 else layer
    capacities = layer_capacities(run, through, upto_layer=layer)
    return attention_flow(layers=capacities, query=query, layer=layer)


def export(folder: str | os.PathLike, run: AttentionRun, view: AttentionView, graph=None, flow=None) -> Path:
    """Write attention.npz, tokens.csv, edges.csv and summary.json, as the window and
    ``attention-atlas analyze`` do; returns the folder."""
    from analysis.io.folder import write_analysis_folder

    return write_analysis_folder(folder, run, view, graph, flow)
