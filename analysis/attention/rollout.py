"""Attention rollout (Abnar & Zuidema 2020) and the residual-augmented layer matrices it uses.

Per layer ``R_l = 0.5 * mean_h(A_l) + 0.5 * I``, rows renormalised; rollout up to layer ``L``
is ``R_L @ R_{L-1} @ ... @ R_0``: row ``i`` says how much of query ``i``'s representation at
layer ``L`` comes from each input token. The same ``R_l`` are the capacities of attention flow.

Every ``R_l`` row is a distribution (non-negative, sums to 1: the residual half keeps it
positive even where a query's attention row is all zero), so rollout rows are
distributions too. Inputs must be finite and non-negative; anything else raises
``ValueError`` saying what is wrong and where.
"""

from __future__ import annotations

import numpy as np

_AXES = ("layer", "head", "query", "key")


def _first_bad(array: np.ndarray, bad: np.ndarray, names: tuple[str, ...]) -> str:
    """``"layer 2, head 0, query 5, key 7"`` for the first True entry of ``bad``."""
    where = np.unravel_index(int(np.argmax(bad.ravel())), array.shape)
    return ", ".join(f"{name} {int(i)}" for name, i in zip(names, where, strict=True))


def check_values(array: np.ndarray, what: str, names: tuple[str, ...]) -> None:
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
        f"{what} contain {problem} at {_first_bad(array, bad, names)}; attention weights must "
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


def attention_rollout(attentions: np.ndarray, upto_layer: int | None = None) -> np.ndarray:
    """Rollout ``[T, T]`` through layers ``0..upto_layer`` (inclusive; default: all).

    Parameters
    ----------
    attentions : array ``[layers, heads, T, T]``
        Finite, non-negative attention weights (``ValueError`` otherwise).
    upto_layer : int, optional
        The last layer rolled out (0-based); default the last layer.

    Returns
    -------
    float64 array ``[T, T]``: ``R_upto @ ... @ R_0``; every row is a distribution.

    Examples
    --------
    >>> a = np.array([[[[1.0, 0.0], [1.0, 0.0]]], [[[0.0, 1.0], [0.0, 1.0]]]])
    >>> attention_rollout(a)
    array([[0.75, 0.25],
           [0.5 , 0.5 ]])
    """
    count = checked_attentions(attentions, check_layers=0).shape[0]
    last = count - 1 if upto_layer is None else upto_layer
    if not isinstance(last, int | np.integer) or isinstance(last, bool):
        raise ValueError(f"upto_layer must be a layer index, got {upto_layer!r}.")
    if not 0 <= last < count:
        raise ValueError(f"layer {last} is out of range 0..{count - 1}.")
    a = checked_attentions(attentions, check_layers=int(last) + 1)[: int(last) + 1]
    layers = residual_augmented(a.mean(axis=1, dtype=np.float64))
    result = layers[0]
    for layer in layers[1:]:
        result = layer @ result
    return result
