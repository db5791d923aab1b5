"""Per-head summaries of attention for the model overview: thumbnails and statistics.

Pure numpy (no Qt, no torch), so the widgets may import it. All functions take
``attentions`` shaped ``[layers, heads, T, T]`` with ``A[l, h, i, j]`` the attention of
query ``i`` to key ``j`` (rows sum to 1) and return arrays indexed ``[layer, head]``.
Every statistic is the *mean over queries* of a per-row quantity.

Memory: every function reads the stack one layer at a time, so a stored float16 stack of a
long text (30 layers x 9 heads x 1,024^2 tokens = 566 MB) is never converted whole.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "head_thumbnails",
    "head_entropy",
    "special_token_share",
    "mean_attention_distance",
    "head_summary",
    "query_rows",
]


def _check(attentions: np.ndarray) -> np.ndarray:
    a = np.asarray(attentions)
    if a.ndim != 4 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"attentions must be [layers, heads, T, T], got shape {a.shape}")
    return a


def _work_dtype(a: np.ndarray) -> np.dtype:
    """float32 and float64 stacks are read as they are; float16 (stored long runs) is
    widened to float32 one layer at a time, which keeps ~7 significant digits."""
    return a.dtype if a.dtype in (np.float32, np.float64) else np.dtype(np.float32)


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
    out = np.empty(a.shape[:2] + (s, s), dtype=np.float32)
    for layer in range(a.shape[0]):  # one layer at a time: no float32 copy of the whole stack
        # sum blocks along keys (the large reduction first), then along queries
        summed = np.add.reduceat(np.asarray(a[layer], dtype=np.float32), edges, axis=-1)
        out[layer] = np.add.reduceat(summed, edges, axis=-2)
    out /= counts[:, None] * counts[None, :]
    return out


def query_rows(attentions: np.ndarray, query: int, size: int = 32) -> np.ndarray:
    """Every head's attention row of one query, downsampled like its thumbnail's columns.

    Parameters
    ----------
    attentions : array ``[L, H, T, T]``
    query : int
        The query token (row) ``0 <= query < T``; e.g. the position that predicted a
        generated token.
    size : int, default 32
        Key blocks: ``s = min(size, T)`` nearly equal blocks of keys, the same blocks as
        :func:`head_thumbnails` uses for its columns.

    Returns
    -------
    float32 ``[L, H, s]``
        The mean of ``A[l, h, query, j]`` over the keys ``j`` of each block (with
        ``s == T`` the row itself).

    Examples
    --------
    >>> a = np.zeros((1, 1, 4, 4)); a[0, 0, 3] = [0.1, 0.2, 0.3, 0.4]
    >>> [round(float(v), 2) for v in query_rows(a, 3, size=2)[0, 0]]
    [0.15, 0.35]
    """
    a = _check(attentions)
    t = a.shape[-1]
    if not 0 <= int(query) < t:
        raise ValueError(f"query {query} is out of range 0..{t - 1}")
    if size < 1:
        raise ValueError("size must be >= 1")
    rows = np.asarray(a[:, :, int(query), :], dtype=np.float32)
    s = min(int(size), t)
    if s == t:
        return rows.copy()
    edges = _bin_edges(t, s)
    counts = np.diff(np.append(edges, t)).astype(np.float32)
    return np.add.reduceat(rows, edges, axis=-1) / counts


def key_blocks(tokens: int, size: int = 32) -> np.ndarray:
    """Start index of each key block of :func:`head_thumbnails` / :func:`query_rows`."""
    return _bin_edges(tokens, min(int(size), tokens))


def head_entropy(attentions: np.ndarray) -> np.ndarray:
    """Mean over queries of the row entropy ``-sum_j A[i,j] ln A[i,j]``, in nats (``0 ln 0 = 0``).

    0 for a head that attends to a single token, ``ln T`` for uniform attention.
    """
    a = _check(attentions)
    out = np.empty(a.shape[:2], dtype=np.float64)
    dtype = _work_dtype(a)
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
    keys = np.flatnonzero(mask)
    out = np.empty(a.shape[:2], dtype=np.float64)
    for layer in range(a.shape[0]):  # the special columns of one layer at a time
        out[layer] = a[layer][..., keys].sum(axis=-1, dtype=np.float64).mean(axis=-1)
    return out


def mean_attention_distance(attentions: np.ndarray) -> np.ndarray:
    """Mean over queries of ``sum_j A[i,j] * |i - j|``: how far a head looks, in tokens."""
    a = _check(attentions)
    t = a.shape[-1]
    idx = np.arange(t)
    dtype = _work_dtype(a)
    dist = np.abs(idx[:, None] - idx[None, :]).astype(dtype).ravel()
    out = np.empty(a.shape[:2], dtype=np.float64)
    for layer in range(a.shape[0]):
        # one matrix-vector product (BLAS) per layer, without materialising A * D or a
        # converted copy of the whole stack (float16 storage of a long text: GBs)
        flat = np.ascontiguousarray(a[layer], dtype=dtype).reshape(a.shape[1], t * t)
        out[layer] = flat @ dist
    return out / t


def head_summary(attentions: np.ndarray, special_mask: np.ndarray) -> dict[str, np.ndarray]:
    """All statistics the model overview shows: ``entropy`` (nats), ``special_share`` (0..1),
    ``mean_distance`` (tokens); each ``float64 [L, H]``."""
    return {
        "entropy": head_entropy(attentions),
        "special_share": special_token_share(attentions, special_mask),
        "mean_distance": mean_attention_distance(attentions),
    }
