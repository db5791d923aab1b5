"""Which entries of a view matrix become graph edges, and how a weight becomes a length.

Conventions (see README, "Conventions of meaning"): the input is a view matrix ``A``
``[n, n]``; ``A[i, j]`` is how much query ``i`` attends to key ``j``, weights lie in
``[0, 1]``. Edge ``i -> j`` carries ``weight = A[i, j]`` ("i attends to j") and ``length =
-ln(weight)``, so a shortest path is the most probable chain of attention. Zero weights are
never edges. numpy only: the window builds rules without importing the graph libraries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from analysis.options import SPARSIFY_MODES

# Weights a little above 1 (float32 rounding of a one-hot row) are clipped to 1.
WEIGHT_SLACK = 1e-6


@dataclass(frozen=True)
class SparsifyRule:
    """Which entries of a view matrix become graph edges.

    ``mode``:
      - ``"coverage"``: per query row, the strongest edges whose cumulative weight first
        reaches ``coverage`` of the row's total (the total over the row's candidate edges,
        i.e. without the diagonal when ``self_loops`` is False);
      - ``"top_k"``: the ``top_k`` strongest edges per row;
      - ``"threshold"``: every edge with weight >= ``min_weight``;
      - ``"none"``: every positive entry.
    Entries tied with the last kept one are all kept (the result never depends on column
    order), so a row may keep more than ``top_k`` edges when weights tie. ``min_weight`` is
    applied in every mode, after the per-row selection. Zero weights are never edges.
    """

    mode: str = "coverage"
    coverage: float = 0.9
    top_k: int = 5
    min_weight: float = 0.0
    self_loops: bool = False

    def __post_init__(self) -> None:
        if self.mode not in SPARSIFY_MODES:
            raise ValueError(f"unknown sparsify mode {self.mode!r}; use one of {SPARSIFY_MODES}")
        if not (isinstance(self.coverage, int | float) and 0.0 < self.coverage <= 1.0):
            raise ValueError(f"coverage must be in (0, 1], got {self.coverage!r}")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int | np.integer):
            raise ValueError(f"top_k must be a whole number, got {self.top_k!r}")
        if self.top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {self.top_k}")
        if not (isinstance(self.min_weight, int | float) and 0.0 <= self.min_weight <= 1.0):
            raise ValueError(f"min_weight must be in [0, 1], got {self.min_weight!r}")
        if not isinstance(self.self_loops, bool | np.bool_):
            raise ValueError(f"self_loops must be True or False, got {self.self_loops!r}")

    def describe(self) -> str:
        """One human sentence, e.g. "per query, the strongest edges covering 90% of its attention; no self-loops"."""
        if self.mode == "coverage":
            text = f"per query, the strongest edges covering {self.coverage:.0%} of its attention"
        elif self.mode == "top_k":
            text = f"per query, its {self.top_k} strongest edge{'s' if self.top_k != 1 else ''}"
        elif self.mode == "threshold":
            text = f"every edge of weight at least {self.min_weight:g}"
        else:
            text = "every positive attention weight"
        if self.min_weight > 0 and self.mode != "threshold":
            text += f", only weights of at least {self.min_weight:g}"
        return text + ("; self-loops kept" if self.self_loops else "; no self-loops")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of the fields."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SparsifyRule:
        """Inverse of :meth:`to_dict`; unknown keys are an error, missing keys take defaults."""
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown sparsify rule fields: {sorted(unknown)}")
        return cls(**dict(data))


def checked_view_matrix(matrix: np.ndarray) -> np.ndarray:
    """The matrix as float64 ``[n, n]`` with weights in ``[0, 1]``; ValueError otherwise."""
    a = np.asarray(matrix, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"a view matrix must be square [n, n], got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError("the view matrix contains NaN or infinite values")
    if a.size and a.min() < 0:
        raise ValueError(f"attention weights must be >= 0, found {a.min():g}")
    if a.size and a.max() > 1.0 + WEIGHT_SLACK:
        raise ValueError(
            f"attention weights must be <= 1 (path lengths are -ln(weight)), found {a.max():g}"
        )
    return np.minimum(a, 1.0)


def edge_lengths(weights: np.ndarray) -> np.ndarray:
    """``-ln(weight)`` for weights in ``(0, 1]``: the length of an edge on a path."""
    return np.maximum(-np.log(np.asarray(weights, dtype=np.float64)), 0.0)


def _row_cut_values(candidates: np.ndarray, rule: SparsifyRule) -> np.ndarray:
    """Per row, the smallest weight still kept by the rule's per-row selection."""
    n = candidates.shape[1]
    if rule.mode == "top_k":
        if rule.top_k >= n:
            return np.zeros(candidates.shape[0])
        return -np.partition(-candidates, rule.top_k - 1, axis=1)[:, rule.top_k - 1]
    descending = -np.sort(-candidates, axis=1)
    cumulative = np.cumsum(descending, axis=1)
    needed = rule.coverage * cumulative[:, -1:] * (1.0 - 1e-12)
    reached_at = np.minimum((cumulative < needed).sum(axis=1), n - 1)
    return descending[np.arange(candidates.shape[0]), reached_at]


def sparsify(
    matrix: np.ndarray, rule: SparsifyRule = SparsifyRule()
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Kept edges of a view matrix: ``(sources, targets, weights)``, row-major order.

    ``sources``/``targets`` are int64 token indices (edge ``source -> target`` = "source
    attends to target"), ``weights`` float64 ``A[source, target]``. See :class:`SparsifyRule`.
    """
    return sparsify_checked(checked_view_matrix(matrix), rule)


def sparsify_checked(a: np.ndarray, rule: SparsifyRule) -> tuple[np.ndarray, ...]:
    """:func:`sparsify` on a matrix already through :func:`checked_view_matrix`."""
    n = a.shape[0]
    keep = a > 0
    if not rule.self_loops:
        keep[np.arange(n), np.arange(n)] = False
    if (
        rule.mode in ("coverage", "top_k")
        and n
        and not (rule.mode == "coverage" and rule.coverage >= 1.0)
    ):
        candidates = np.where(keep, a, 0.0)
        keep &= candidates >= _row_cut_values(candidates, rule)[:, None]
    if rule.min_weight > 0:
        keep &= a >= rule.min_weight
    sources, targets = np.nonzero(keep)
    return sources.astype(np.int64), targets.astype(np.int64), a[sources, targets]


DEFAULT_RULE = SparsifyRule()  # coverage 90%, no self-loops


@dataclass(frozen=True)
class GraphWeights:
    """A view matrix made into graph weights in ``[0, 1]``, and what was done to it.

    ``matrix`` is what the graph, its paths and its exports use; ``scale`` the factor the
    view's values were divided by (1.0 when they already lay in ``[0, 1]``); ``note`` one
    sentence for the person when the weights are not the view's values (None otherwise).
    """

    matrix: np.ndarray
    scale: float = 1.0
    note: str | None = None


def graph_weights(matrix: np.ndarray, *, signed: bool = False) -> GraphWeights:
    """Graph weights for any real view matrix, with a stated meaning.

    Row-stochastic views (one head, mean of heads, rollout, and views with specials dropped)
    are used as they are. Views whose values exceed 1 (the words of a max-of-heads view,
    contribution sums) are divided by their largest value, so that path lengths
    ``-ln(weight)`` are defined and the strongest cell weighs 1. Signed views (attributions)
    use the magnitude ``|value| / max |value|``.

    Parameters
    ----------
    matrix : array [n, n]
        The view's matrix.
    signed : bool
        The view's values may be negative by meaning (else a negative value is an error).

    Returns
    -------
    GraphWeights

    Raises
    ------
    ValueError
        For a non-square matrix, NaN or infinite values, or negative values in a view that
        is not signed.

    Examples
    --------
    >>> w = graph_weights(np.array([[0.0, 1.5], [0.5, 0.5]]))
    >>> w.matrix.tolist(), w.scale
    ([[0.0, 1.0], [0.3333333333333333, 0.3333333333333333]], 1.5)
    """
    a = np.asarray(matrix, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"a view matrix must be square [n, n], got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError("the view has NaN or infinite values, so it has no graph; the model's output is broken")
    if a.size == 0:
        return GraphWeights(a)
    if signed:
        top = float(np.abs(a).max())
        if top == 0:
            return GraphWeights(np.zeros_like(a), 1.0, "every value is 0, so the graph has no edges")
        return GraphWeights(np.abs(a) / top, top, f"edges weigh |value| / {top:.4g} (the largest magnitude)")
    if a.min() < 0:
        raise ValueError(f"this view has negative values (down to {a.min():.3g}); only signed views may")
    top = float(a.max())
    if top <= 1.0 + WEIGHT_SLACK:
        return GraphWeights(np.minimum(a, 1.0))
    return GraphWeights(a / top, top, f"weights are the values divided by {top:.4g} (the largest), so that path lengths -ln(w) are defined")
