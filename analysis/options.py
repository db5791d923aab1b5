"""Every option list the app offers, defined once: the widgets, the CLI and the analysis
code import them from here.

Each list is a tuple of ``(key, label, tip)``: ``key`` is what the code and the files use,
``label`` what a person reads, ``tip`` one sentence on what it means. The plain key tuples
(``VIEW_KINDS``, ...) are derived from them.

Examples
--------
>>> from analysis.options import VIEW_KINDS, label_of, VIEW_ITEMS
>>> VIEW_KINDS[:3]
('head', 'mean', 'max')
>>> label_of(VIEW_ITEMS, "rollout")
'Rollout'
"""

from __future__ import annotations

from collections.abc import Sequence

Option = tuple[str, str, str]

VIEW_ITEMS: tuple[Option, ...] = (
    ("head", "One head", "The attention of one head of one layer"),
    ("mean", "Mean of heads", "The mean over all heads of the layer"),
    ("max", "Max of heads", "The largest weight over all heads of the layer, cell by cell (rows are not distributions)"),
    ("rollout", "Rollout", "Attention rollout: residual-augmented head means multiplied through layers 0..layer"),
    ("flow", "Flow", "Attention flow: max-flow from the selected token at this layer into every input token"),
    ("value_norm", "Value norms", "Kobayashi et al. 2020: ||sum_h a_ij f_h(x_j)||, the size of what token j adds to "
     "token i in this layer, rows normalised"),
    ("alti", "ALTI", "Ferrando et al. 2022: each token's share of the attention block's output (residual and "
     "layer norm included), combined by rollout through layers 0..layer"),
    ("value_zeroing", "Value zeroing", "Mohebbi et al. 2023: how far token i's output moves when token j's values "
     "are zeroed, combined by rollout through layers 0..layer (one layer pass per token: slow)"),
)
# What rollout, flow, the graph across layers and its route are computed through: the
# per-layer capacities R_l (analysis.attention.capacities states each rule).
THROUGH_ITEMS: tuple[Option, ...] = (
    ("attention", "Attention", "Raw attention: 0.5 * mean of heads + 0.5 * identity per layer (Abnar & Zuidema 2020)"),
    ("value_norm", "Value norms", "Value-weighted attention per layer (Kobayashi et al. 2020), with the same "
     "0.5 * identity added for the residual"),
    ("alti", "ALTI", "ALTI per layer (Ferrando et al. 2022), residual and layer norm already included"),
    ("value_zeroing", "Value zeroing", "Value zeroing per layer (Mohebbi et al. 2023), residual already "
     "included (one layer pass per token: slow)"),
)
STACK_ITEMS: tuple[Option, ...] = (
    ("self", "Encoder", "Self-attention of the model (the encoder of an encoder-decoder)"),
    ("decoder", "Decoder", "Decoder self-attention of an encoder-decoder model"),
    ("cross", "Cross", "Cross-attention: decoder tokens (rows) attending to encoder tokens (columns)"),
)
SPARSIFY_ITEMS: tuple[Option, ...] = (
    ("coverage", "Coverage", "Per query, the strongest edges that together cover a share of its attention"),
    ("top_k", "Top k", "Per query, its k strongest edges"),
    ("threshold", "Threshold", "Every edge at least as heavy as the minimum weight"),
    ("none", "All edges", "Every positive attention weight (slow for long texts)"),
)
LAYOUT_ITEMS: tuple[Option, ...] = (
    ("arc", "Arc", "Tokens on a line in reading order, edges as arcs"),
    ("circular", "Circular", "Tokens on a circle in reading order"),
    ("force", "Force", "Force-directed: strongly linked tokens drawn close (computed in the background)"),
    ("layered", "Layered", "Tokens at every layer, for rollout and flow: the graph across layers"),
)
PATH_ITEMS: tuple[Option, ...] = (
    ("probable", "Most probable path", "The chain of attention with the largest product of weights"),
    ("widest", "Widest path", "The chain whose weakest link is strongest"),
)
METRIC_ITEMS: tuple[Option, ...] = (
    ("in_strength", "In-strength", "Attention a token receives: the sum of its incoming edge weights"),
    ("out_strength", "Out-strength", "Attention a token pays along kept edges (1 with every edge kept)"),
    ("betweenness", "Betweenness", "Share of most probable paths between other tokens that pass through it"),
    ("closeness", "Closeness", "How near it is, along -ln(weight) lengths, to the tokens that reach it"),
    ("pagerank", "PageRank", "Stationary share of a random walk that follows attention (damping 0.85)"),
    ("hub", "Hub", "HITS hub score: attends to good authorities"),
    ("authority", "Authority", "HITS authority score: attended to by good hubs"),
)


def keys_of(items: Sequence[Option]) -> tuple[str, ...]:
    """The keys of an option list, in order."""
    return tuple(key for key, _, _ in items)


def label_of(items: Sequence[Option], key: str) -> str:
    """The label of ``key`` in ``items``; ``KeyError`` naming the choices otherwise."""
    for k, label, _ in items:
        if k == key:
            return label
    raise KeyError(f"{key!r} is not one of {', '.join(keys_of(items))}")


VIEW_KINDS = keys_of(VIEW_ITEMS)
THROUGH_KINDS = keys_of(THROUGH_ITEMS)
STACKS = keys_of(STACK_ITEMS)
SPARSIFY_MODES = keys_of(SPARSIFY_ITEMS)
LAYOUT_KINDS = keys_of(LAYOUT_ITEMS)
PATH_KINDS = keys_of(PATH_ITEMS)
METRIC_NAMES = keys_of(METRIC_ITEMS)
LAYERED_VIEW_KINDS = ("rollout", "flow")  # views whose graph can be shown across layers
CONTRIBUTION_KINDS = ("value_norm", "alti", "value_zeroing")  # views computed on demand from the model

# Community colours everywhere (canvas, figures, GEXF/GraphML): Tableau 10, then the lighter
# Tableau 20 partners; qualitative, stable per community id.
COMMUNITY_PALETTE = (
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1",
    "#76b7b2", "#edc948", "#9c755f", "#ff9da7", "#bab0ac",
    "#a0cbe8", "#ffbe7d", "#8cd17d", "#ff9d9a", "#d4a6c8",
    "#86bcb6", "#f1ce63", "#d7b5a6", "#fabfd2", "#79706e",
)  # fmt: skip
NO_COMMUNITY_COLOR = "#6b7f99"
