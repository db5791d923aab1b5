"""Value-weighted attention (Kobayashi et al. 2020) and ALTI (Ferrando et al. 2022).

Both read a :class:`~analysis.contributions.capture.LayerCapture` and need no further
forward pass. Notation for one layer (``T`` tokens, ``D`` hidden, ``H`` query heads):

- ``f_h(x_j) = v_j^h W_O^h``: token ``j``'s value vector in head ``h`` (bias included,
  ``v_j^h = x_j W_V^h + b_V^h``) through that head's slice of the output projection; with
  grouped-query attention head ``h`` reads key/value head ``h // (H // KV)``;
- ``C_ij = sum_h alpha_ij^h f_h(x_j)``: what token ``j`` adds to query ``i`` through all
  heads (the attention output is ``sum_j C_ij + b_O``).

The ``[T, T, D]`` pair vectors are never held at once. ALTI makes them a few keys at a time
(one batched matrix product) and reduces them to L1 distances at once; the norms of the
heads' sum need no pair vectors at all (a Gram-matrix identity, see ``_summed_norms``).
"""

from __future__ import annotations

import numpy as np
import torch

from analysis.contributions.capture import LayerCapture
from analysis.contributions.combine import normalise_rows_in_place

__all__ = ["value_norms", "alti", "alti_terms", "head_vectors"]


# Bytes of pair vectors made per block: big enough for efficient products, small enough
# to stay in cache-sized pieces (MiniLM, 512 tokens: 8 MiB is ~10% faster than 1 MiB).
_BLOCK_BYTES = 8 * 2**20


def head_vectors(capture: LayerCapture, layer: int) -> torch.Tensor:
    """``[H, T, D]``: ``f_h(x_j) = v_j^h W_O^h`` for every head ``h`` and token ``j``."""
    values = capture.values[layer]  # [KV, T, dh]
    groups = capture.num_heads // capture.num_kv_heads
    if groups > 1:
        values = values.repeat_interleave(groups, dim=0)
    return torch.bmm(values, capture.parts[layer].out_weight.to(values.dtype))


def _structural_zeros(attention: torch.Tensor) -> torch.Tensor:
    """bool ``[T, T]``: pairs no head connects (causal upper triangle, padding), off the
    diagonal (the residual always connects a token to itself)."""
    zero = attention.sum(dim=0) == 0
    zero.fill_diagonal_(False)
    return zero


def _residual_terms(capture: LayerCapture, layer: int):
    """``(residual [T, D], target [T, D], scale [T] or None, gamma [D] or None)``.

    Post-norm: ``T_i(x_j)`` is ``gamma * L(C_ij + delta_ij x_i) / sigma_i`` with ``L`` the
    mean subtraction; distances are taken as ``|| sigma_i x~_i - gamma * L(...) ||_1 /
    sigma_i``. Pre-norm: ``T_i(x_j) = C_ij + delta_ij x_i``, target ``x~_i = y_i``.
    """
    x = capture.layer_inputs[layer]
    normed = capture.normed[layer]
    if not capture.post_norm:
        return x, normed, None, None
    norm = capture.parts[layer].after_attention
    gamma = norm.weight.detach().to(x.dtype)
    scale = capture.norm_scales[layer]
    residual = (x - x.mean(dim=-1, keepdim=True)) * gamma
    return residual, normed * scale[:, None], scale, gamma


def _keys_first(attention: torch.Tensor) -> torch.Tensor:
    """``[H, T_i, T_j]`` -> a ``[T_j, H, T_i]`` view of a ``[H, T_j, T_i]`` copy (batched 2-D
    transposes are several times faster than one 3-D permutation copy)."""
    return attention.transpose(1, 2).contiguous().permute(1, 0, 2)


def _summed_norms(capture: LayerCapture, layer: int, f: torch.Tensor) -> torch.Tensor:
    """``[T, T]``: ``||C_ij||_2`` without making the pair vectors.

    ``||sum_h a_h f_h||^2 = a^T G a`` with ``G_j = F_j F_j^T`` the ``[H, H]`` Gram matrix of
    token ``j``'s head vectors: ``H^2`` work per pair instead of ``H * D``.
    """
    a_by_key = _keys_first(capture.attentions[layer])  # [T_j, H, T_i]
    f_by_key = f.transpose(0, 1)  # [T_j, H, D]
    gram = torch.bmm(f_by_key, f_by_key.transpose(1, 2))  # [T_j, H, H]
    squared = (torch.bmm(gram, a_by_key) * a_by_key).sum(dim=1)  # [T_j, T_i]
    return squared.clamp_min_(0.0).sqrt_().T


def _alti_raw(capture: LayerCapture, layer: int) -> torch.Tensor:
    """One layer's ALTI scores ``max(0, ||x~_i||_1 - ||x~_i - T_i(x_j)||_1)``, ``[T, T]``.

    The pair vectors ``C_ij`` are made a few keys ``j`` at a time for all queries (one
    batched product of ``[T_i, H] @ [H, D]`` per key, subtracted from the output in the
    same product) and reduced to L1 distances at once.
    """
    attention = capture.attentions[layer]  # [H, T, T]
    t = attention.shape[-1]
    f = head_vectors(capture, layer)  # [H, T, D]
    residual, target, scale, gamma = _residual_terms(capture, layer)
    if gamma is not None:  # L and gamma are linear: apply them to f once, not to every pair
        f = (f - f.mean(dim=-1, keepdim=True)) * gamma
    d = f.shape[-1]
    f_by_key = f.transpose(0, 1).contiguous()  # [T_j, H, D]
    a_by_key = _keys_first(attention).transpose(1, 2)  # [T_j, T_i, H] (strided view)
    raw_by_key = torch.zeros((t, t), dtype=f.dtype, device=f.device)  # [T_j, T_i]
    l1_out = capture.normed[layer].abs().sum(dim=-1)  # [T]
    keys = max(1, _BLOCK_BYTES // max(1, t * d * f.element_size()))
    buffer = torch.empty(keys * t * d, dtype=f.dtype, device=f.device)
    for j0 in range(0, t, keys):
        j1 = min(t, j0 + keys)
        i0 = j0 if capture.is_causal else 0  # causal: queries before j0 cannot see it
        pairs = buffer[: (j1 - j0) * (t - i0) * d].view(j1 - j0, t - i0, d)
        # pairs = target_i - C_ij in one product (saves a pass over the block)
        wide = target[i0:].expand(j1 - j0, t - i0, d)
        torch.baddbmm(wide, a_by_key[j0:j1, i0:], f_by_key[j0:j1], alpha=-1.0, out=pairs)
        own = torch.arange(j0, j1, device=f.device)
        pairs[own - j0, own - i0] -= residual[j0:j1]  # T_i(x_i) holds the residual
        dist = pairs.abs_().sum(dim=-1)  # [B, T_i']: || target_i - T_i(x_j) ||_1
        if scale is not None:
            dist.div_(scale[None, i0:])
        raw_by_key[j0:j1, i0:] = torch.clamp_(l1_out[None, i0:] - dist, min=0.0)
    raw = raw_by_key.T
    raw[_structural_zeros(attention)] = 0.0
    return raw


def _check_layers(capture: LayerCapture, layers) -> list[int]:
    if layers is None:
        return list(range(capture.num_layers))
    chosen = [int(layer) for layer in layers]
    for layer in chosen:
        if not 0 <= layer < capture.num_layers:
            raise ValueError(f"layer {layer} is out of range 0..{capture.num_layers - 1}")
    return chosen


def value_norms(
    capture: LayerCapture, normalise: bool = True, *, layers=None
) -> tuple[np.ndarray, np.ndarray]:
    """Value-weighted attention: the norm of what each key token adds to each query.

    Per head ``||alpha_ij^h f_h(x_j)|| = alpha_ij^h ||f_h(x_j)||`` with ``f_h(x) =
    (x W_V^h + b_V^h) W_O^h``; over the whole layer ``||sum_h alpha_ij^h f_h(x_j)||``, the
    norm of the heads' sum (the layer-level measure of the paper: heads' vectors can cancel).

    Parameters
    ----------
    capture : LayerCapture
        From :func:`capture_layers`.
    normalise : bool, default True
        Divide each row (query) by its sum, per head and for the sum over heads, so that
        rows are distributions like attention's. False keeps the raw norms.
    layers : iterable of int, optional
        Only these layers (default: all), in this order.

    Returns
    -------
    per_head : ndarray, float32, ``[L, H, T, T]``
        ``per_head[l, h, i, j] = ||alpha_ij^h f_h(x_j)||`` (rows normalised if asked).
    summed : ndarray, float32, ``[L, T, T]``
        ``summed[l, i, j] = ||sum_h alpha_ij^h f_h(x_j)||`` (rows normalised if asked).
        Causal models: the upper triangle is 0.

    Examples
    --------
    >>> from analysis.contributions import capture_layers
    >>> from analysis.models.loading import load_model
    >>> loaded = load_model()
    >>> capture = capture_layers(loaded, loaded.tokenizer("The cat sat.")["input_ids"])
    >>> per_head, summed = value_norms(capture)
    >>> per_head.shape, summed.shape
    ((6, 12, 6, 6), (6, 6, 6))

    References
    ----------
    .. [1] Kobayashi, G., Kuribayashi, T., Yokoi, S., Inui, K. (2020). "Attention is Not Only
       a Weight: Analyzing Transformers with Vector Norms". EMNLP, 7057-7075.
    """
    chosen = _check_layers(capture, layers)
    t = capture.num_tokens
    per_head = np.empty((len(chosen), capture.num_heads, t, t), dtype=np.float32)
    summed = np.empty((len(chosen), t, t), dtype=np.float32)
    with torch.inference_mode():
        for out, layer in enumerate(chosen):
            f = head_vectors(capture, layer)  # [H, T, D]
            lengths = torch.linalg.vector_norm(f, dim=-1)  # [H, T]
            attention = capture.attentions[layer]
            if attention.device.type == "cpu":  # straight into the output array
                torch.mul(attention, lengths[:, None, :], out=torch.from_numpy(per_head[out]))
            else:
                _store(attention * lengths[:, None, :], per_head[out])
            _store(_summed_norms(capture, layer, f), summed[out])
    if normalise:
        normalise_rows_in_place(per_head)
        normalise_rows_in_place(summed)
    return per_head, summed


def _store(tensor: torch.Tensor, target: np.ndarray) -> None:
    """Copy a tensor into a numpy array (one copy, straight from the device)."""
    torch.from_numpy(target).copy_(tensor)


def alti(capture: LayerCapture, *, layers=None) -> np.ndarray:
    """ALTI: how much each input token contributes to each output of the attention block.

    Token ``j``'s term in the attention block's output for query ``i``, residual included,
    is ``T_i(x_j)``; its contribution is ``c_ij = max(0, ||x~_i||_1 - ||x~_i - T_i(x_j)||_1)``,
    rows normalised. Then ``sum_j T_i(x_j) + b_i = x~_i`` exactly (see :func:`alti_terms`).

    - Post-norm encoders (BERT, RoBERTa, DistilBERT, ALBERT, ELECTRA, MiniLM):
      ``x~_i = LN(y_i)``, ``y_i = x_i + sum_j C_ij + b_O``. The layer norm is linearised as
      in the paper: the mean subtraction ``L`` is linear, the division uses the token's
      own ``sigma_i = sqrt(var(y_i) + eps)`` held fixed, then ``gamma``:
      ``T_i(x_j) = gamma * L(C_ij + delta_ij x_i) / sigma_i``, ``b_i = gamma * L(b_O) /
      sigma_i + beta``.
    - Pre-norm decoders (GPT-2 LayerNorm, Llama/Qwen RMSNorm): ``x~_i`` is the block's
      output on the residual stream, ``y_i = x_i + sum_j C_ij + b_O`` (no norm after it).
      The input norm acts on each token by itself, so with its per-token scale held
      fixed (the value it had in the forward pass) ``v_j`` is a function of ``x_j`` alone
      and ``T_i(x_j) = C_ij + delta_ij x_i`` (the norm's ``beta`` and the value bias
      ride along in ``v_j``), ``b_i = b_O``. This decomposition is exact; the only
      approximation, as everywhere in ALTI, is that the attention weights are held fixed.

    Parameters
    ----------
    capture : LayerCapture
        From :func:`capture_layers`.
    layers : iterable of int, optional
        Only these layers (default: all), in this order.

    Returns
    -------
    ndarray, float32, ``[L, T, T]``
        ``c[l, i, j]``, rows sum to 1; causal models: the upper triangle is 0. Combine the
        layers with :func:`rollout_layers` (no added identity: the residual is already in).

    Examples
    --------
    >>> from analysis.contributions import capture_layers
    >>> from analysis.models.loading import load_model
    >>> loaded = load_model()
    >>> capture = capture_layers(loaded, loaded.tokenizer("The cat sat.")["input_ids"])
    >>> c = alti(capture)
    >>> c.shape, bool(np.allclose(c.sum(axis=-1), 1))
    ((6, 6, 6), True)

    References
    ----------
    .. [1] Ferrando, J., Gállego, G. I., Costa-jussà, M. R. (2022). "Measuring the Mixing of
       Contextual Information in the Transformer". EMNLP, 8698-8714.
    .. [2] Kobayashi, G., Kuribayashi, T., Yokoi, S., Inui, K. (2021). "Incorporating Residual
       and Normalization Layers into Analysis of Masked Language Models". EMNLP.
    """
    chosen = _check_layers(capture, layers)
    t = capture.num_tokens
    out = np.empty((len(chosen), t, t), dtype=np.float32)
    with torch.inference_mode():
        for index, layer in enumerate(chosen):
            _store(_alti_raw(capture, layer), out[index])
    return normalise_rows_in_place(out)


def alti_terms(capture: LayerCapture, layer: int) -> tuple[np.ndarray, np.ndarray]:
    """The decomposition ALTI measures, for one layer, with every vector made explicit.

    Memory is ``T * T * D`` floats: meant for checks and small inputs (``alti`` itself
    never builds it).

    Parameters
    ----------
    capture : LayerCapture
    layer : int

    Returns
    -------
    terms : ndarray, float32, ``[T, T, D]``
        ``terms[i, j] = T_i(x_j)`` (see :func:`alti` for the linearisation).
    bias : ndarray, float32, ``[T, D]``
        ``b_i``; ``terms.sum(axis=1) + bias`` equals ``capture.normed[layer]``.

    Examples
    --------
    >>> from analysis.contributions import capture_layers
    >>> from analysis.models.loading import load_model
    >>> loaded = load_model()
    >>> capture = capture_layers(loaded, loaded.tokenizer("The cat sat.")["input_ids"])
    >>> terms, bias = alti_terms(capture, 0)
    >>> bool(np.allclose(terms.sum(1) + bias, capture.normed[0].numpy(), atol=1e-5))
    True
    """
    layer = _check_layers(capture, [layer])[0]
    with torch.inference_mode():
        attention = capture.attentions[layer]
        f = head_vectors(capture, layer)
        terms = torch.einsum("hij,hjd->ijd", attention, f)
        x = capture.layer_inputs[layer]
        own = torch.arange(x.shape[0], device=x.device)
        terms[own, own] += x
        parts = capture.parts[layer]
        bias = (
            parts.out_bias.to(x.dtype).expand_as(x).clone()
            if parts.out_bias is not None
            else torch.zeros_like(x)
        )
        if capture.post_norm:
            norm = parts.after_attention
            gamma = norm.weight.detach()
            scale = capture.norm_scales[layer]
            terms = (terms - terms.mean(-1, keepdim=True)) * gamma / scale[:, None, None]
            bias = (bias - bias.mean(-1, keepdim=True)) * gamma / scale[:, None]
            if norm.bias is not None:
                bias = bias + norm.bias.detach()
        return terms.cpu().numpy(), bias.cpu().numpy()
