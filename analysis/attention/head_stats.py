"""Per-head summaries of attention for the model overview: thumbnails and statistics.

Pure numpy (no Qt, no torch), so the widgets may import it. All functions take
``attentions`` shaped ``[layers, heads, T, T]`` with ``A[l, h, i, j]`` the attention of
query ``i`` to key ``j`` (rows sum to 1) and return arrays indexed ``[layer, head]``.
Every statistic is the *mean over queries* of a per-row quantity.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "head_thumbnails",
    "head_entropy",
    "special_token_share",
    "mean_attention_distance",
    "head_summary",
]


def _check(attentions: np.ndarray) -> np.ndarray:
    a = np.asarray(attentions)
    if a.ndim != 4 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"attentions must be [layers, heads, T, T], got shape {a.shape}")
    return a


def _bin_edges(t: int, s: int) -> np.ndarray:
    """Start index of each of ``s`` nearly equal blocks covering ``range(t)``."""
    return np.floor(np.arange(s) * (t / s)).astype(np.intp)


def head_thumbnails(attentions: np.ndarray, size: int = 32) -> np.ndarray:
    """Downsample every head to ``[L, H, s, s]`` with ``s = min(size, T)`` by block averaging.

    Block *averaging* (not max-pooling) is used: the thumbnail keeps the attention mass
    of each block, so a diffuse head looks diffuse and a head that spends 90 % of its
    attention on [CLS] still shows one dominant column; max-pooling would make every
    head with a single stray spike look alike. When ``T`` is not a multiple of ``s``
    the blocks differ by at most one token. Returns float32.
    """
    a = _check(attentions)
    if size < 1:
        raise ValueError("size must be >= 1")
    t = a.shape[-1]
    s = min(int(size), t)
    if s == t:
        return a.astype(np.float32, copy=True)
    edges = _bin_edges(t, s)
    counts = np.diff(np.append(edges, t)).astype(np.float32)
    # sum blocks along keys (the large reduction first), then along queries
    summed = np.add.reduceat(np.asarray(a, dtype=np.float32), edges, axis=-1)
    summed = np.add.reduceat(summed, edges, axis=-2)
    return (summed / (counts[:, None] * counts[None, :])).astype(np.float32)


def head_entropy(attentions: np.ndarray) -> np.ndarray:
    """Mean over queries of the row entropy ``-sum_j A[i,j] ln A[i,j]``, in nats (``0 ln 0 = 0``).

    0 for a head that attends to a single token, ``ln T`` for uniform attention.
    """
    a = _check(attentions)
    out = np.empty(a.shape[:2], dtype=np.float64)
    dtype = a.dtype if a.dtype in (np.float32, np.float64) else np.float64
    for layer in range(a.shape[0]):  # one layer at a time keeps the temporaries small
        x = np.asarray(a[layer], dtype=dtype)
        logs = np.zeros_like(x)
        np.log(x, out=logs, where=x > 0)  # 0 ln 0 = 0
        logs *= x
        out[layer] = -logs.sum(axis=-1, dtype=np.float64).mean(axis=-1)
    return out


def special_token_share(attentions: np.ndarray, special_mask: np.ndarray) -> np.ndarray:
    """Mean over queries of the attention mass on special keys ([CLS], [SEP], <s>, ...), 0..1."""
    a = _check(attentions)
    mask = np.asarray(special_mask, dtype=bool)
    if mask.shape != (a.shape[-1],):
        raise ValueError(f"special_mask must have shape ({a.shape[-1]},), got {mask.shape}")
    if not mask.any():
        return np.zeros(a.shape[:2], dtype=np.float64)
    return a[..., mask].sum(axis=-1, dtype=np.float64).mean(axis=-1)


def mean_attention_distance(attentions: np.ndarray) -> np.ndarray:
    """Mean over queries of ``sum_j A[i,j] * |i - j|``: how far a head looks, in tokens."""
    a = _check(attentions)
    t = a.shape[-1]
    idx = np.arange(t)
    dtype = a.dtype if a.dtype in (np.float32, np.float64) else np.float64
    dist = np.abs(idx[:, None] - idx[None, :]).astype(dtype)
    # one matrix-vector product (BLAS) without materialising A * D
    flat = np.ascontiguousarray(a, dtype=dtype).reshape(a.shape[0] * a.shape[1], t * t)
    return (flat @ dist.ravel()).astype(np.float64).reshape(a.shape[:2]) / t


def head_summary(attentions: np.ndarray, special_mask: np.ndarray) -> dict[str, np.ndarray]:
    """All statistics the model overview shows: ``entropy`` (nats), ``special_share`` (0..1),
    ``mean_distance`` (tokens); each ``float64 [L, H]``."""
    return {
        "entropy": head_entropy(attentions),
        "special_share": special_token_share(attentions, special_mask),
        "mean_distance": mean_attention_distance(attentions),
    }
