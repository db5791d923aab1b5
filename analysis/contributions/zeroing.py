"""Value zeroing (Mohebbi et al. 2023): how much each token's output changes without a token.

For layer ``l`` and token ``j``: set token ``j``'s value vectors to zero in every head of
that layer, recompute that layer from its captured input, and score each token ``i`` by
the cosine distance between its original output ``x~_i`` and the new one
``x~_i^{not j}``. Rows are normalised; layers combine by rollout (the residual is in the
outputs already).

How the layer is recomputed: zeroing ``v_j`` changes neither queries nor keys, so the
attention weights stay as they were and the attention output of query ``i`` loses exactly
``C_ij = sum_h alpha_ij^h v_j^h W_O^h``. The block output becomes ``y_i - C_ij`` and the
rest of the layer (layer norm and feed-forward for encoders; the residual MLP for
decoders), which works on each token by itself, is run on it with the layer's own modules.
This equals running the whole layer with the zeroed values (tests check it against that
literal recomputation) without recomputing queries, keys, softmax and the projections.
Queries before ``j`` in a causal model cannot see ``j``: their score is exactly 0 and they
are not recomputed.

It costs one feed-forward pass over ``T`` tokens per token per layer (about ``T`` times a
plain forward pass), done in batches of several ``j`` that fit ``max_batch_bytes``; it
reports ``progress(fraction)`` after each batch and checks ``cancelled()`` before each.
"""

from __future__ import annotations

import numpy as np
import torch

from analysis.contributions.capture import LayerCapture
from analysis.contributions.combine import normalise_rows_in_place
from analysis.contributions.measures import _check_layers, _keys_first, head_vectors
from analysis.progress import CancelCheck, ProgressCallback, raise_if_cancelled, report_progress

__all__ = ["value_zeroing"]

_BATCH_BYTES = 96 * 2**20


def _intermediate_width(capture: LayerCapture, layer: int) -> int:
    """The widest per-token tensor inside the rest of the layer (the MLP's hidden size)."""
    shapes = [p.shape for p in capture.parts[layer].layer.parameters() if p.ndim == 2]
    return max([capture.hidden_size, *(max(shape) for shape in shapes)])


def _cosine_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``1 - cos(a, b)`` over the last axis, as ``||a/|a| - b/|b|||^2 / 2`` (exact 0 for
    equal vectors, and no cancellation near 0 where ``1 - cos`` would lose all digits)."""
    tiny = torch.finfo(a.dtype).tiny
    a = a / torch.linalg.vector_norm(a, dim=-1, keepdim=True).clamp_min(tiny)
    b = b / torch.linalg.vector_norm(b, dim=-1, keepdim=True).clamp_min(tiny)
    return 0.5 * torch.linalg.vector_norm(a - b, dim=-1).square()


def value_zeroing(
    loaded,
    capture: LayerCapture,
    progress: ProgressCallback | None = None,
    cancelled: CancelCheck | None = None,
    *,
    layers=None,
    normalise: bool = True,
    max_batch_bytes: int = _BATCH_BYTES,
) -> np.ndarray:
    """Value zeroing scores: cosine distance of each output when one token's values are zeroed.

    Parameters
    ----------
    loaded : LoadedModel or transformers model
        The model ``capture`` was made with (its layers recompute the outputs).
    capture : LayerCapture
        From :func:`capture_layers`.
    progress : callable, optional
        ``progress(fraction)`` with ``fraction`` in ``[0, 1]``, after each batch of tokens.
    cancelled : callable, optional
        ``cancelled() -> bool``, checked before each batch; when it returns True the
        computation stops with :class:`analysis.progress.Cancelled`.
    layers : iterable of int, optional
        Only these layers (default: all), in this order.
    normalise : bool, default True
        Rows (queries) divided by their sums; False keeps the raw cosine distances.
    max_batch_bytes : int
        Memory for one batch of recomputed outputs; more tokens ``j`` per batch run faster.

    Returns
    -------
    ndarray, float32, ``[L, T, T]``
        ``s[l, i, j] = cosine_distance(x~_i, x~_i^{not j})`` in layer ``l``, rows
        normalised. Causal models: the upper triangle is exactly 0.

    Raises
    ------
    Cancelled
        When ``cancelled()`` returned True.

    Examples
    --------
    >>> from analysis.contributions import capture_layers
    >>> from analysis.models.loading import load_model
    >>> loaded = load_model()
    >>> capture = capture_layers(loaded, loaded.tokenizer("The cat sat.")["input_ids"])
    >>> s = value_zeroing(loaded, capture)
    >>> s.shape
    (6, 6, 6)

    References
    ----------
    .. [1] Mohebbi, H., Zuidema, W., Chrupała, G., Alishahi, A. (2023). "Quantifying Context
       Mixing in Transformers". EACL, 3378-3400.
    """
    model = getattr(loaded, "model", loaded)
    if not any(m is capture.parts[0].layer for m in model.modules()):
        raise ValueError("this capture was made with another model")
    chosen = _check_layers(capture, layers)
    t = capture.num_tokens
    scores = np.zeros((len(chosen), t, t), dtype=np.float32)
    plans = []
    for layer in chosen:
        per_j = t * _intermediate_width(capture, layer) * 4 * 3  # a few tensors of that width
        plans.append(max(1, min(t, int(max_batch_bytes) // max(1, per_j))))
    total = sum(-(-t // batch) for batch in plans)
    done = 0
    report_progress(progress, 0.0)
    with torch.inference_mode():
        for index, (layer, batch) in enumerate(zip(chosen, plans, strict=True)):
            attention = capture.attentions[layer]  # [H, T, T]
            f_by_key = head_vectors(capture, layer).transpose(0, 1).contiguous()  # [T, H, D]
            a_by_key = _keys_first(attention).transpose(1, 2)  # [T_j, T_i, H] (strided view)
            block = capture.block_outputs[layer]
            original = capture.layer_outputs[layer]
            rest = capture.parts[layer].rest
            unseen = attention.sum(dim=0) == 0  # [T_i, T_j]: no head links i to j
            unseen.fill_diagonal_(False)
            for j0 in range(0, t, batch):
                raise_if_cancelled(cancelled, "value zeroing")
                j1 = min(t, j0 + batch)
                i0 = j0 if capture.is_causal else 0  # queries before j0 never see it
                wide = block[i0:].expand(j1 - j0, t - i0, block.shape[-1])
                # y_i - C_ij for every j of the batch: [B, T_i', D]
                without = torch.baddbmm(wide, a_by_key[j0:j1, i0:], f_by_key[j0:j1], alpha=-1.0)
                changed = rest(without)
                distance = _cosine_distance(changed, original[None, i0:])  # [B, T_i']
                scores[index, i0:, j0:j1] = distance.T.cpu().numpy()
                done += 1
                report_progress(progress, done / total)
            scores[index][unseen.cpu().numpy()] = 0.0
    return normalise_rows_in_place(scores) if normalise else scores
