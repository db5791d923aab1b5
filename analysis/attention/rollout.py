"""Attention rollout (Abnar & Zuidema 2020) and the per-layer matrices it multiplies.

Per layer ``R_l = 0.5 * mean_h(A_l) + 0.5 * I``, rows renormalised; rollout up to layer ``L``
is ``R_L @ R_{L-1} @ ... @ R_0``: row ``i`` says how much of query ``i``'s representation at
layer ``L`` comes from each input token. The same ``R_l`` are the capacities of attention flow.

Every function here, in :mod:`analysis.attention.flow` and in :mod:`analysis.graph.layered` /
:func:`analysis.graph.paths.layered_route` takes either raw ``attentions`` ``[L, H, T, T]``
(the default: ``R_l`` as above) or ``layers=`` ``[L, T, T]``, per-layer capacities built by
another rule (:func:`analysis.attention.capacities.layer_capacities`: through value norms,
ALTI or value zeroing); both go through :func:`capacities_upto`, so the rest of the code is
one path.

Every ``R_l`` row is a distribution (non-negative, sums to 1: the residual half keeps it
positive even where a query's attention row is all zero), so rollout rows are
distributions too. Attentions must be finite and non-negative; given capacities must also
have rows that are distributions or all zero (a contribution row that measured nothing: a
dead end, through which rollout and flow carry nothing); anything else raises
``ValueError`` saying what is wrong and where.
"""

from __future__ import annotations

import numpy as np

_AXES = ("layer", "head", "query", "key")
_LAYER_AXES = ("layer", "query", "key")
ROW_TOLERANCE = 1e-4  # a capacity row sums to 1 within this (float32 rows normalised: ~1e-7)


def _first_bad(array: np.ndarray, bad: np.ndarray, names: tuple[str, ...]) -> str:
    """``"layer 2, head 0, query 5, key 7"`` for the first True entry of ``bad``."""
    where = np.unravel_index(int(np.argmax(bad.ravel())), array.shape)
    return ", ".join(f"{name} {int(i)}" for name, i in zip(names, where, strict=True))


def check_values(
    array: np.ndarray, what: str, names: tuple[str, ...], noun: str = "attention weights"
) -> None:
    """Raise ``ValueError`` unless every entry is finite and non-negative.

    Two reductions (min and max) in the array's own dtype; NaN and infinities make them
    non-finite, so the common case costs no temporary array.
    """
    if array.size == 0:
        return
    low, high = array.min(), array.max()
    if np.isfinite(low) and np.isfinite(high) and low >= 0:
        return
    if np.isnan(low) or np.isnan(high):
        bad, problem = np.isnan(array), "NaN"
    elif not (np.isfinite(low) and np.isfinite(high)):
        bad, problem = np.isinf(array), "an infinite value"
    else:
        bad, problem = array < 0, f"a negative value ({float(low):.3g})"
    raise ValueError(
        f"{what} contain {problem} at {_first_bad(array, bad, names)}; {noun} must "
        "be finite and non-negative."
    )


def checked_attentions(
    attentions, what: str = "attentions", *, check_layers: int | None = None
) -> np.ndarray:
    """``attentions`` as an array ``[layers, heads, T, T]`` whose entries are finite and
    non-negative, else ``ValueError`` with one sentence saying what is wrong.

    ``check_layers``: check the values of only that many leading layers (0: the shape only),
    for callers that use only those; default all.
    """
    a = np.asarray(attentions)
    if a.ndim != 4:
        raise ValueError(
            f"{what} must be a 4-D array [layers, heads, queries, keys], got shape {a.shape}."
        )
    if a.shape[-1] != a.shape[-2]:
        raise ValueError(
            f"{what} must be self-attention with as many keys as queries, got "
            f"{a.shape[-2]} queries and {a.shape[-1]} keys."
        )
    if 0 in a.shape:
        raise ValueError(
            f"{what} need at least one layer, one head and one token, got shape {a.shape}."
        )
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise ValueError(f"{what} must be numbers, got dtype {a.dtype}.")
    check_values(a if check_layers is None else a[:check_layers], what, _AXES)
    return a


def checked_capacities(
    layers, what: str = "capacities", *, check_layers: int | None = None
) -> np.ndarray:
    """``layers`` as an array ``[layers, T, T]`` of per-layer capacities, checked.

    Parameters
    ----------
    layers : array ``[layers, T, T]``
        ``layers[l, i, j]``: how much token ``i`` after layer ``l`` draws on token ``j``
        before it (:func:`analysis.attention.capacities.layer_capacities`).
    what : str
        What to call them in an error.
    check_layers : int, optional
        Check the values of only that many leading layers (0: the shape only); default all.

    Returns
    -------
    The array itself (any numeric dtype; not copied).

    Raises
    ------
    ValueError
        Not 3-D and square, empty, not numbers; an entry NaN, infinite or negative; a row
        that is neither a distribution (sum 1 within ``ROW_TOLERANCE``) nor all zero. The
        flow kernel reads the capacities as given, and its exactness and the bounds of
        every result (flow in ``[0, 1]``, rollout rows distributions) hold for such rows.

    Examples
    --------
    >>> checked_capacities(np.array([[[0.5, 0.5], [0.0, 1.0]]])).shape
    (1, 2, 2)
    """
    r = np.asarray(layers)
    if r.ndim != 3:
        raise ValueError(f"{what} must be a 3-D array [layers, queries, keys], got shape {r.shape}.")
    if r.shape[-1] != r.shape[-2]:
        raise ValueError(
            f"{what} must be square, with as many keys as queries, got {r.shape[-2]} queries "
            f"and {r.shape[-1]} keys."
        )
    if 0 in r.shape:
        raise ValueError(f"{what} need at least one layer and one token, got shape {r.shape}.")
    if not (np.issubdtype(r.dtype, np.floating) or np.issubdtype(r.dtype, np.integer)):
        raise ValueError(f"{what} must be numbers, got dtype {r.dtype}.")
    used = r if check_layers is None else r[:check_layers]
    check_values(used, what, _LAYER_AXES, noun="capacities")
    if used.size:
        sums = used.sum(axis=-1, dtype=np.float64)
        bad = (np.abs(sums - 1.0) > ROW_TOLERANCE) & (sums != 0)
        if bad.any():
            layer, query = np.unravel_index(int(np.argmax(bad.ravel())), bad.shape)
            raise ValueError(
                f"{what} row at layer {int(layer)}, query {int(query)} sums to "
                f"{float(sums[layer, query]):.6g}; each row must be a distribution (sum 1) or "
                "all zero: normalise the rows first (analysis.contributions.normalise_rows)."
            )
    return r


def source_size(attentions=None, layers=None) -> tuple[int, int]:
    """``(layers, tokens)`` of exactly one of ``attentions`` ``[L, H, T, T]`` or ``layers``
    ``[L, T, T]`` (shapes checked, values not); ``ValueError`` when both or neither."""
    if (attentions is None) == (layers is None):
        raise ValueError(
            "give either attentions [layers, heads, T, T] or layers= per-layer capacities "
            "[layers, T, T], not both or neither."
        )
    if layers is None:
        shape = checked_attentions(attentions, check_layers=0).shape
    else:
        shape = checked_capacities(layers, check_layers=0).shape
    return int(shape[0]), int(shape[-1])


def capacities_upto(attentions=None, layers=None, last: int | None = None) -> np.ndarray:
    """Capacities ``R_0 .. R_last`` ``[last + 1, T, T]`` float64 from one source.

    Parameters
    ----------
    attentions : array ``[L, H, T, T]``, optional
        Raw attentions: ``R_l = 0.5 * mean_h A_l + 0.5 * I`` (:func:`residual_augmented_layers`
        of layers ``0..last`` only, whose values alone are checked).
    layers : array ``[L, T, T]``, optional
        Capacities as they are (checked by :func:`checked_capacities`, layers ``0..last``).
    last : int, optional
        The last layer (0-based, in range: the caller checks it); default the last.

    Returns
    -------
    float64 array ``[last + 1, T, T]`` whose rows are distributions (or, for given
    capacities, all zero).
    """
    count, _ = source_size(attentions, layers)
    stop = count if last is None else int(last) + 1
    if layers is None:
        return residual_augmented_layers(np.asarray(attentions)[:stop])
    used = checked_capacities(layers, check_layers=stop)[:stop]
    return np.asarray(used, dtype=np.float64)


def residual_augmented(attention: np.ndarray) -> np.ndarray:
    """``0.5 * A + 0.5 * I`` with rows renormalised, for one ``[T, T]`` matrix (or a stack
    ``[..., T, T]``).

    Parameters
    ----------
    attention : array ``[..., T, T]``
        Attention rows (query ``i`` over keys ``j``), finite and non-negative.

    Returns
    -------
    float64 array of the same shape whose rows are distributions.

    Examples
    --------
    >>> residual_augmented(np.array([[0.0, 1.0], [0.5, 0.5]]))
    array([[0.5 , 0.5 ],
           [0.25, 0.75]])
    """
    a = np.asarray(attention, dtype=np.float64)
    if a.ndim < 2 or a.shape[-1] != a.shape[-2] or a.shape[-1] == 0:
        raise ValueError(
            f"attention must be square [..., T, T] with T >= 1, got shape {a.shape}."
        )
    names = {2: ("query", "key"), 3: ("layer", "query", "key"), 4: _AXES}.get(
        a.ndim, tuple(f"axis {k}" for k in range(a.ndim))
    )
    check_values(a, "attention", names)
    n = a.shape[-1]
    r = 0.5 * a + 0.5 * np.eye(n)
    sums = r.sum(axis=-1, keepdims=True)
    return r / np.where(sums > 0, sums, 1.0)


def residual_augmented_layers(attentions: np.ndarray) -> np.ndarray:
    """``[L, H, T, T]`` attentions -> ``[L, T, T]`` residual-augmented head means.

    Parameters
    ----------
    attentions : array ``[layers, heads, T, T]``
        Finite, non-negative (``ValueError`` otherwise).

    Returns
    -------
    float64 array ``[layers, T, T]``: ``R_l = 0.5 * mean_h A_l + 0.5 * I``, rows renormalised.

    Examples
    --------
    >>> a = np.array([[[[0.0, 1.0], [1.0, 0.0]]]])  # one layer, one head
    >>> residual_augmented_layers(a)[0]
    array([[0.5, 0.5],
           [0.5, 0.5]])
    """
    a = checked_attentions(attentions)
    # The mean reduces in float64 without a float64 copy of the whole stack.
    return residual_augmented(a.mean(axis=1, dtype=np.float64))


def attention_rollout(
    attentions: np.ndarray | None = None,
    upto_layer: int | None = None,
    *,
    layers: np.ndarray | None = None,
) -> np.ndarray:
    """Rollout ``[T, T]`` through layers ``0..upto_layer`` (inclusive; default: all).

    Parameters
    ----------
    attentions : array ``[layers, heads, T, T]``, optional
        Finite, non-negative attention weights (``ValueError`` otherwise); the capacities are
        ``R_l = 0.5 * mean_h A_l + 0.5 * I``, rows renormalised.
    upto_layer : int, optional
        The last layer rolled out (0-based); default the last layer.
    layers : array ``[layers, T, T]``, optional
        Instead of ``attentions``: per-layer capacities as they are (rows distributions), for
        example :func:`analysis.attention.capacities.layer_capacities` through ALTI; then the
        result is the rollout of those (for ALTI: ``alti_rollout[upto_layer]``).

    Returns
    -------
    float64 array ``[T, T]``: ``R_upto @ ... @ R_0``; every row is a distribution (given
    ``layers`` with an all-zero row, a dead end, the rows that reach it sum to less than 1).

    Examples
    --------
    >>> a = np.array([[[[1.0, 0.0], [1.0, 0.0]]], [[[0.0, 1.0], [0.0, 1.0]]]])
    >>> attention_rollout(a)
    array([[0.75, 0.25],
           [0.5 , 0.5 ]])
    >>> attention_rollout(layers=np.array([[[1.0, 0.0], [0.5, 0.5]]] * 2))
    array([[1.  , 0.  ],
           [0.75, 0.25]])
    """
    count, _ = source_size(attentions, layers)
    last = count - 1 if upto_layer is None else upto_layer
    if not isinstance(last, int | np.integer) or isinstance(last, bool):
        raise ValueError(f"upto_layer must be a layer index, got {upto_layer!r}.")
    if not 0 <= last < count:
        raise ValueError(f"layer {last} is out of range 0..{count - 1}.")
    capacities = capacities_upto(attentions, layers, int(last))
    result = capacities[0].copy()  # given float64 capacities are not copied: never return them
    for layer in capacities[1:]:
        result = layer @ result
    return result
