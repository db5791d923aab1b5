"""Row normalisation and rollout of per-layer contribution matrices (numpy only, no torch).

Contribution matrices already contain the residual (ALTI's ``T_i(x_i)`` term; value
zeroing compares whole layer outputs), so they are rolled out as they are, without the
``0.5 * A + 0.5 * I`` of attention rollout (:mod:`analysis.attention.rollout`):
``R = C_L @ C_{L-1} @ ... @ C_0``; row ``i`` says how much of token ``i``'s representation
after layer ``L`` comes from each input token.
"""

from __future__ import annotations

import numpy as np

__all__ = ["normalise_rows", "normalise_rows_in_place", "contribution_rollout", "rollout_layers"]


def normalise_rows(matrix: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (rows that sum to 0 stay 0), as float32.

    Parameters
    ----------
    matrix : array of shape ``[..., T, T]``
        Non-negative scores; rows are queries.

    Returns
    -------
    ndarray, float32, same shape
        Rows sum to 1 (or are all 0).

    Examples
    --------
    >>> normalise_rows(np.array([[1.0, 3.0], [0.0, 0.0]])).tolist()
    [[0.25, 0.75], [0.0, 0.0]]
    """
    return normalise_rows_in_place(np.array(matrix, dtype=np.float32))


def normalise_rows_in_place(matrix: np.ndarray) -> np.ndarray:
    """:func:`normalise_rows` into the float32 array itself (no copy of a big stack);
    returns it."""
    if matrix.dtype != np.float32:
        raise TypeError(f"expected a float32 array, got {matrix.dtype}")
    sums = matrix.sum(axis=-1, keepdims=True, dtype=np.float64)
    np.divide(matrix, np.where(sums > 0, sums, 1.0).astype(np.float32), out=matrix)
    return matrix


def rollout_layers(matrices: np.ndarray) -> np.ndarray:
    """Cumulative rollout: entry ``l`` is ``C_l @ ... @ C_0`` (layers ``0..l`` combined).

    Parameters
    ----------
    matrices : array of shape ``[L, T, T]``
        Per-layer contribution matrices, rows normalised (e.g. :func:`alti` or
        :func:`value_zeroing` output).

    Returns
    -------
    ndarray, float32, ``[L, T, T]``
        Rows still sum to 1 when the inputs' rows do.

    Examples
    --------
    >>> c = np.array([[[1.0, 0.0], [0.5, 0.5]]] * 2)
    >>> rollout_layers(c)[1].tolist()
    [[1.0, 0.0], [0.75, 0.25]]

    References
    ----------
    .. [1] Abnar, S., Zuidema, W. (2020). "Quantifying Attention Flow in Transformers". ACL.
    .. [2] Ferrando, J., Gállego, G. I., Costa-jussà, M. R. (2022). "Measuring the Mixing of
       Contextual Information in the Transformer". EMNLP.
    """
    layers = np.asarray(matrices, dtype=np.float64)
    if layers.ndim != 3 or layers.shape[1] != layers.shape[2]:
        raise ValueError(f"expected [layers, T, T] matrices, got shape {layers.shape}")
    out = np.empty(layers.shape, dtype=np.float32)
    result = layers[0]
    out[0] = result
    for index in range(1, layers.shape[0]):
        result = layers[index] @ result
        out[index] = result
    return out


def contribution_rollout(matrices: np.ndarray, upto_layer: int | None = None) -> np.ndarray:
    """Rollout ``[T, T]`` of contribution matrices through layers ``0..upto_layer``.

    Parameters
    ----------
    matrices : array of shape ``[L, T, T]``
        Per-layer contribution matrices with the residual already in them.
    upto_layer : int, optional
        Last layer included (default: all).

    Returns
    -------
    ndarray, float32, ``[T, T]``

    Examples
    --------
    >>> c = np.array([[[1.0, 0.0], [0.5, 0.5]]] * 3)
    >>> contribution_rollout(c, upto_layer=0).tolist()
    [[1.0, 0.0], [0.5, 0.5]]
    """
    layers = np.asarray(matrices)
    last = layers.shape[0] - 1 if upto_layer is None else int(upto_layer)
    if not 0 <= last < layers.shape[0]:
        raise ValueError(f"layer {last} is out of range 0..{layers.shape[0] - 1}")
    return rollout_layers(layers[: last + 1])[last]
