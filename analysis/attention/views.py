"""Views of a run: the one matrix a person looks at.

A view picks an attention stack (encoder/decoder self-attention, or cross-attention), a
layer, and a reduction over heads (one head, mean, max) or across layers (rollout; flow uses
the rollout matrix for its graph and adds a per-token flow vector, see ``analysis.attention.flow``).
It can then drop special tokens and merge sub-word tokens into words.

Rollout and flow go *through* a source (``ViewSpec.through``, :mod:`analysis.attention.capacities`):
raw attention by default, or the per-layer value norms, ALTI or value zeroing of the run
(``run.contributions``, see :mod:`analysis.contributions`); the view's matrix is then the
rollout of those capacities (through ALTI: ``alti_rollout``), and the flow, the graph across
layers and its route use the same capacities. ``through`` means nothing for the other kinds
and resolves to ``"attention"`` there.

Rules, in the order they are applied:

1. **Drop special tokens** (optional): their rows and columns are removed and each remaining
   row is renormalised to sum to 1, so the view reads "of the attention that went to real
   tokens, which share went where". A row whose attention went entirely to special tokens
   stays all zero.
2. **Merge sub-words into words** (optional): tokens with the same word id in the same
   segment form one word. ``W[a, b] = mean over queries i in a of (sum over keys j in b of
   A[i, j])``: a word *receives* the total attention paid to its pieces and *pays* the
   average of its pieces' attention, so rows still sum to 1. Special tokens stay their own
   group.

Causal stacks mark the structurally-zero upper triangle in ``masked``; after merging, a cell
is masked when every token-level cell under it is masked.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from analysis.attention.capacities import (
    MissingContributions,
    checked_through,
    layer_capacities,
    missing_through,
)
from analysis.attention.rollout import attention_rollout
from analysis.options import CONTRIBUTION_KINDS, LAYERED_VIEW_KINDS, STACKS, VIEW_KINDS
from analysis.run import AttentionRun

_THROUGH_TITLES = {"value_norm": "value-norm", "alti": "ALTI", "value_zeroing": "value-zeroing"}


@dataclass(frozen=True)
class ViewSpec:
    """Which matrix of a run to look at. Layers and heads are 0-based; layer -1 = the last."""

    kind: str = "head"
    layer: int = -1
    head: int = 0
    stack: str = "self"
    merge_words: bool = False
    drop_special: bool = False
    query: int | None = None  # the flow view's query token (index into the run's tokens)
    # rollout and flow only: the per-layer capacities they go through (analysis.options
    # THROUGH_KINDS: "attention", "value_norm", "alti", "value_zeroing")
    through: str = "attention"

    def resolved(self, run: AttentionRun) -> ViewSpec:
        """This spec with ``layer`` made non-negative and checked against ``run``."""
        if self.kind not in VIEW_KINDS:
            raise ValueError(f"unknown view '{self.kind}'; choose one of {', '.join(VIEW_KINDS)}")
        if self.stack not in STACKS:
            raise ValueError(f"unknown attention stack '{self.stack}'")
        through = checked_through(self.through)  # any kind: a typo is an error, not ignored
        through = through if self.kind in LAYERED_VIEW_KINDS else "attention"
        if through != "attention" and self.stack != "self":
            raise ValueError(
                f"rollout and flow through {through.replace('_', ' ')} are defined for the "
                "self-attention stack only (contributions are computed for it alone)"
            )
        attentions = stack_attentions(run, self.stack)
        layers, heads = attentions.shape[:2]
        layer = self.layer + layers if self.layer < 0 else self.layer
        if not 0 <= layer < layers:
            raise ValueError(f"layer {self.layer} is out of range: the model has layers 0..{layers - 1}")
        if self.kind == "head" and not 0 <= self.head < heads:
            raise ValueError(f"head {self.head} is out of range: layers have heads 0..{heads - 1}")
        if self.kind in ("rollout", "flow") and self.stack == "cross":
            raise ValueError("rollout and flow are defined for self-attention, not cross-attention")
        if self.kind in CONTRIBUTION_KINDS and self.stack != "self":
            raise ValueError("contributions are computed for the self-attention stack only")
        if self.kind == "flow":
            if self.query is None:
                raise ValueError("the flow view needs a query token")
            if not 0 <= self.query < attentions.shape[-2]:
                raise ValueError(f"query token {self.query} is out of range 0..{attentions.shape[-2] - 1}")
        return replace(self, layer=layer, through=through)

    def describe(self) -> str:
        """A short human title, e.g. 'layer 3 · head 7', 'rollout to layer 5' or 'ALTI flow
        from token 3 at layer 5'."""
        where = {"self": "", "decoder": "decoder ", "cross": "cross-attention "}[self.stack]
        if self.kind == "head":
            text = f"{where}layer {self.layer} · head {self.head}"
        elif self.kind in ("mean", "max"):
            text = f"{where}layer {self.layer} · {self.kind} of heads"
        elif self.kind == "rollout":
            text = f"{where}{self._through_prefix()}rollout to layer {self.layer}"
        elif self.kind == "value_norm":
            text = f"layer {self.layer} · value norms"
        elif self.kind in CONTRIBUTION_KINDS:
            text = f"{'ALTI' if self.kind == 'alti' else 'value zeroing'} to layer {self.layer}"
        else:
            text = f"{where}{self._through_prefix()}flow from token {self.query} at layer {self.layer}"
        extras = [e for e, on in (("words", self.merge_words), ("no specials", self.drop_special)) if on]
        return text + (f" ({', '.join(extras)})" if extras else "")

    def _through_prefix(self) -> str:
        """'ALTI ' for a rollout or flow through ALTI, '' through attention."""
        title = _THROUGH_TITLES.get(self.through)
        return f"{title} " if title and self.kind in LAYERED_VIEW_KINDS else ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class AttentionView:
    """One matrix of a run, ready to draw, graph or export. Rows are queries, columns keys."""

    matrix: np.ndarray  # float64 [R, C]
    row_labels: tuple[str, ...]
    col_labels: tuple[str, ...]
    row_tokens: tuple[tuple[int, ...], ...]  # run token indices behind each row
    col_tokens: tuple[tuple[int, ...], ...]
    masked: np.ndarray | None  # bool [R, C]: structurally zero (causal), None if nothing is
    spec: ViewSpec
    title: str
    # What a cell means. Row-stochastic views (head, mean, rollout, flow's matrix) have rows
    # that are distributions; max-of-heads rows are not (they may sum to more than 1, and a
    # merged word's cell to more than 1); signed views (attributions) may be negative.
    row_stochastic: bool = True
    signed: bool = False

    @property
    def is_square(self) -> bool:
        return self.matrix.shape[0] == self.matrix.shape[1] and self.row_tokens == self.col_tokens


def view_matrix_key(spec: ViewSpec) -> tuple:
    """What a view's matrix depends on besides the run: every part of the spec but the flow
    query (the flow view's matrix is the rollout, whatever the query); ``through`` counts for
    rollout and flow only."""
    through = spec.through if spec.kind in LAYERED_VIEW_KINDS else "attention"
    return (spec.kind, spec.layer, spec.head, spec.stack, spec.merge_words, spec.drop_special, through)


def needed_contribution(run: AttentionRun, spec: ViewSpec) -> str | None:
    """The contribution kind (``"alti"``, ...) that ``spec`` needs and ``run`` lacks, or None.

    A contribution view needs its own array (``run.contributions[kind]``); a rollout or flow
    through a contribution needs its per-layer matrices (``run.contributions["alti_layers"]``,
    see :data:`analysis.contributions.LAYER_KEYS`). Compute the kind with
    :func:`analysis.contributions.contributions_for_run` and keep
    :func:`analysis.contributions.run_contributions` of it. ``ValueError`` for an unknown
    ``through``.
    """
    if spec.kind in CONTRIBUTION_KINDS:
        return None if spec.kind in run.contributions else spec.kind
    if spec.kind in LAYERED_VIEW_KINDS and spec.stack == "self":
        through = checked_through(spec.through)
        return None if missing_through(run, through) is None else through
    return None


def stack_attentions(run: AttentionRun, stack: str) -> np.ndarray:
    """The ``[L, H, Tq, Tk]`` array of a stack; clear error when the model has no such stack."""
    if stack == "self":
        return run.attentions
    array = run.decoder_attentions if stack == "decoder" else run.cross_attentions
    if array is None:
        raise ValueError(f"{run.model.name} has no {stack} attention (it is not an encoder-decoder)")
    return array


def reduce_heads(attentions: np.ndarray, spec: ViewSpec) -> np.ndarray:
    """The ``[Tq, Tk]`` matrix of a resolved spec before token filtering (rollout and flow:
    through attention; :func:`make_view` handles the other sources)."""
    if spec.kind == "head":
        return np.asarray(attentions[spec.layer, spec.head], dtype=np.float64)
    if spec.kind == "mean":
        return attentions[spec.layer].mean(axis=0, dtype=np.float64)
    if spec.kind == "max":
        return np.asarray(attentions[spec.layer].max(axis=0), dtype=np.float64)
    return attention_rollout(attentions, spec.layer)  # rollout, and flow's graph matrix


def _stack_tokens(run: AttentionRun, stack: str, side: str) -> tuple[list[str], np.ndarray, list]:
    """Labels, special mask and (segment, word) keys of the query ('row') or key ('col') side."""
    decoder_side = stack == "decoder" or (stack == "cross" and side == "row")
    if decoder_side:
        labels = list(run.decoder_labels or ())
        specials = np.zeros(len(labels), dtype=bool)
        keys = [("decoder", i) for i in range(len(labels))]  # decoder tokens are not merged
        return labels, specials, keys
    keys = [
        None if run.special_mask[i] or run.word_ids[i] is None else (int(run.segment_ids[i]), run.word_ids[i])
        for i in range(run.num_tokens)
    ]
    return list(run.labels), np.asarray(run.special_mask, dtype=bool), keys


def token_groups(keys: list, keep: np.ndarray, merge: bool) -> list[tuple[int, ...]]:
    """Kept token indices grouped into display units, in reading order.

    With ``merge``, consecutive tokens sharing a (segment, word) key form one group; a key of
    None (special token) is always its own group.
    """
    groups: list[list[int]] = []
    last_key = object()
    for index in np.flatnonzero(keep):
        key = keys[index]
        if merge and key is not None and key == last_key:
            groups[-1].append(int(index))
        else:
            groups.append([int(index)])
        last_key = key
    return [tuple(g) for g in groups]


def group_label(run: AttentionRun, group: tuple[int, ...], labels: list[str], decoder: bool) -> str:
    """A word's text as it stands in the input (from offsets), else its joined token labels."""
    if len(group) == 1 or decoder:
        return labels[group[0]] if len(group) == 1 else "".join(labels[i] for i in group)
    start, end = int(run.offsets[group[0], 0]), int(run.offsets[group[-1], 1])
    text = run.segment_text(group[0])[start:end]
    return text if text.strip() else "".join(labels[i] for i in group)


def renormalise_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to sum to 1; all-zero rows stay zero."""
    sums = matrix.sum(axis=1, keepdims=True)
    return matrix / np.where(sums > 0, sums, 1.0)


def merge_matrix(matrix: np.ndarray, row_groups, col_groups) -> np.ndarray:
    """Sum over the keys of each column group, mean over the queries of each row group (an
    empty ``[R, C]`` matrix when a side has no group: every token was dropped)."""
    if not row_groups or not col_groups:
        return np.zeros((len(row_groups), len(col_groups)), dtype=np.float64)
    col_summed = np.stack([matrix[:, list(g)].sum(axis=1) for g in col_groups], axis=1)
    return np.stack([col_summed[list(g)].mean(axis=0) for g in row_groups], axis=0)


def causal_mask(row_groups, col_groups) -> np.ndarray:
    """Masked where every key of the column group comes after every query of the row group."""
    if not row_groups or not col_groups:
        return np.zeros((len(row_groups), len(col_groups)), dtype=bool)
    row_last = np.array([g[-1] for g in row_groups])
    col_first = np.array([g[0] for g in col_groups])
    return col_first[None, :] > row_last[:, None]


def make_view(run: AttentionRun, spec: ViewSpec) -> AttentionView:
    """Slice, reduce, filter and merge a run into the view ``spec`` asks for.

    Raises :class:`MissingContributions` when the view needs contributions the run lacks
    (a contribution view, or a rollout or flow through one: :func:`needed_contribution`),
    ``ValueError`` for a spec that does not fit the run.
    """
    spec = spec.resolved(run)
    if spec.kind in CONTRIBUTION_KINDS:
        if spec.kind not in run.contributions:
            raise MissingContributions(spec.kind)
        matrix = np.asarray(run.contributions[spec.kind][spec.layer], dtype=np.float64)
    elif spec.kind in LAYERED_VIEW_KINDS and spec.through != "attention":
        # the rollout of the capacities flow, the layered graph and its route use
        capacities = layer_capacities(run, spec.through, upto_layer=spec.layer)
        matrix = attention_rollout(layers=capacities, upto_layer=spec.layer)
    else:
        matrix = reduce_heads(stack_attentions(run, spec.stack), spec)

    row_labels, row_special, row_keys = _stack_tokens(run, spec.stack, "row")
    col_labels, col_special, col_keys = _stack_tokens(run, spec.stack, "col")
    row_keep = ~row_special if spec.drop_special else np.ones(len(row_labels), dtype=bool)
    col_keep = ~col_special if spec.drop_special else np.ones(len(col_labels), dtype=bool)
    row_groups = token_groups(row_keys, row_keep, spec.merge_words)
    col_groups = token_groups(col_keys, col_keep, spec.merge_words)

    if spec.drop_special:
        matrix = renormalise_rows(matrix[np.ix_(row_keep, col_keep)])
        # Re-index groups into the filtered matrix for merging.
        row_pos = np.cumsum(row_keep) - 1
        col_pos = np.cumsum(col_keep) - 1
        local_rows = [tuple(int(row_pos[i]) for i in g) for g in row_groups]
        local_cols = [tuple(int(col_pos[i]) for i in g) for g in col_groups]
    else:
        local_rows, local_cols = row_groups, col_groups
    if spec.merge_words:
        matrix = merge_matrix(matrix, local_rows, local_cols)

    causal = spec.stack == "decoder" or (spec.stack == "self" and run.model.is_causal)
    masked = causal_mask(row_groups, col_groups) if causal else None
    row_decoder = spec.stack in ("decoder", "cross")
    col_decoder = spec.stack == "decoder"
    return AttentionView(
        matrix=matrix,
        row_labels=tuple(group_label(run, g, row_labels, row_decoder) for g in row_groups),
        col_labels=tuple(group_label(run, g, col_labels, col_decoder) for g in col_groups),
        row_tokens=tuple(row_groups),
        col_tokens=tuple(col_groups),
        masked=masked,
        spec=spec,
        title=f"{run.model.name} · {spec.describe()}",
        row_stochastic=spec.kind != "max",
    )


def view_position(view: AttentionView, token: int, side: str = "row") -> int | None:
    """The row (or column) of ``view`` that holds run token ``token``, or None if dropped."""
    groups = view.row_tokens if side == "row" else view.col_tokens
    for position, group in enumerate(groups):
        if token in group:
            return position
    return None


def values_for_view(view: AttentionView, token_values: np.ndarray, side: str = "col") -> np.ndarray:
    """Per-token values (e.g. flow into each input token) summed over each view row/column group."""
    groups = view.col_tokens if side == "col" else view.row_tokens
    values = np.asarray(token_values, dtype=np.float64)
    return np.array([values[list(g)].sum() for g in groups])
