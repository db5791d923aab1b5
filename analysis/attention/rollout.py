"""Attention rollout (Abnar & Zuidema 2020) and the residual-augmented layer matrices it uses.

Per layer ``R_l = 0.5 * mean_h(A_l) + 0.5 * I``, rows renormalised; rollout up to layer ``L``
is ``R_L @ R_{L-1} @ ... @ R_0``: row ``i`` says how much of query ``i``'s representation at
layer ``L`` comes from each input token. The same ``R_l`` are the capacities of attention flow.
"""

from __future__ import annotations

import numpy as np


def residual_augmented(attention: np.ndarray) -> np.ndarray:
    """``0.5 * A + 0.5 * I`` with rows renormalised, for one ``[T, T]`` matrix (or a stack)."""
    a = np.asarray(attention, dtype=np.float64)
    n = a.shape[-1]
    r = 0.5 * a + 0.5 * np.eye(n)
    sums = r.sum(axis=-1, keepdims=True)
    return r / np.where(sums > 0, sums, 1.0)


def residual_augmented_layers(attentions: np.ndarray) -> np.ndarray:
    """``[L, H, T, T]`` attentions -> ``[L, T, T]`` residual-augmented head means."""
    return residual_augmented(np.asarray(attentions, dtype=np.float64).mean(axis=1))


def attention_rollout(attentions: np.ndarray, upto_layer: int | None = None) -> np.ndarray:
    """Rollout ``[T, T]`` through layers ``0..upto_layer`` (inclusive; default: all)."""
    layers = residual_augmented_layers(attentions)
    last = layers.shape[0] - 1 if upto_layer is None else int(upto_layer)
    if not 0 <= last < layers.shape[0]:
        raise ValueError(f"layer {last} is out of range 0..{layers.shape[0] - 1}")
    result = layers[0]
    for layer in layers[1 : last + 1]:
        result = layer @ result
    return result
