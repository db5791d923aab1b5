"""Where each model family keeps what the contribution measures need, layer by layer.

One :class:`LayerParts` per layer names the modules of that layer: the layer itself (its
input is the residual stream ``x``, its output the layer's output), the module whose output
holds the value vectors, the output projection as per-head matrices, the norm that reads the
attention block's output with the residual, and the position-wise remainder of the layer
(what turns that block output into the layer output). ``layer_parts(model)`` finds them for

- post-norm encoders: BERT, RoBERTa, ELECTRA, XLM-R/CamemBERT (``encoder.layer``),
  DistilBERT (``transformer.layer``), ALBERT (shared layer groups, one entry per use);
- pre-norm decoders: GPT-2 (``h``, fused ``c_attn``) and Llama-style decoders
  (``layers``: Llama, Mistral, Qwen2, Qwen3; grouped-query attention, RMSNorm, rotary).

Anything else raises ``ValueError`` with a sentence a person understands. Torch-only, no Qt.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

ENCODER_DECODER_MESSAGE = (
    "contributions are implemented for encoders and decoders, not encoder-decoders yet"
)

BERT_LIKE_TYPES = frozenset(
    {"bert", "roberta", "electra", "xlm-roberta", "camembert", "data2vec-text"}
)
LLAMA_LIKE_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3"})
SUPPORTED_TYPES = BERT_LIKE_TYPES | LLAMA_LIKE_TYPES | {"distilbert", "albert", "gpt2"}


@dataclass(frozen=True)
class LayerParts:
    """The modules and weights of one layer, as the measures read them.

    ``out_weight[h]`` (``[head_dim, hidden]``) maps head ``h``'s context to the hidden size,
    so the attention output is ``sum_h context_h @ out_weight[h] + out_bias``.
    """

    layer: nn.Module  # input: residual stream x [1, T, D]; output: the layer's output
    attention: nn.Module  # returns (attention output, attention weights [1, H, T, T])
    value: nn.Module  # its output holds the value vectors (bias included)
    value_columns: slice | None  # the value part of a fused q/k/v output (GPT-2)
    out_proj: nn.Module  # the output projection (its input: per-head contexts)
    out_weight: torch.Tensor  # [H, head_dim, D]
    out_bias: torch.Tensor | None  # [D]
    after_attention: nn.Module  # the norm whose input is attention output + residual
    post_norm: bool  # True: that norm is the layer's (BERT); False: pre-norm (GPT-2, Llama)
    causal: bool  # True for decoders: query i reads keys j <= i only
    rest: Callable[[torch.Tensor], torch.Tensor]  # block output y -> layer output, per token
    num_heads: int
    num_kv_heads: int
    head_dim: int


def base_model(model: nn.Module) -> nn.Module:
    """The bare stack of a model that may carry a head (``...ForCausalLM``)."""
    base = getattr(model, "base_model", None)
    return base if isinstance(base, nn.Module) else model


def check_supported(config) -> None:
    """Raise ``ValueError`` when contributions are not implemented for this model."""
    if getattr(config, "is_encoder_decoder", False):
        raise ValueError(ENCODER_DECODER_MESSAGE)
    model_type = str(getattr(config, "model_type", ""))
    if model_type not in SUPPORTED_TYPES:
        raise ValueError(
            f"contributions are not implemented for '{model_type}' models; they are for "
            "BERT-like encoders (BERT, RoBERTa, DistilBERT, ALBERT, ELECTRA), GPT-2 and "
            "Llama/Mistral/Qwen-style decoders"
        )


def _per_head(weight_in_by_out: torch.Tensor, heads: int) -> torch.Tensor:
    """``[H * dh, D]`` (rows: concatenated head contexts) -> ``[H, dh, D]``."""
    total, hidden = weight_in_by_out.shape
    return weight_in_by_out.detach().reshape(heads, total // heads, hidden)


def _linear_out(linear: nn.Linear, heads: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    bias = linear.bias.detach() if linear.bias is not None else None
    return _per_head(linear.weight.t(), heads), bias


def layer_parts(model: nn.Module) -> list[LayerParts]:
    """One :class:`LayerParts` per layer, in the order the layers run."""
    config = model.config
    check_supported(config)
    base = base_model(model)
    model_type = config.model_type
    if model_type in BERT_LIKE_TYPES:
        return [_bert_like(layer, config) for layer in base.encoder.layer]
    if model_type == "distilbert":
        return [_distilbert(layer, config) for layer in base.transformer.layer]
    if model_type == "albert":
        return _albert(base, config)
    if model_type == "gpt2":
        return [_gpt2(block, config) for block in base.h]
    return [_llama_like(layer, config) for layer in base.layers[: config.num_hidden_layers]]


def _bert_like(layer, config) -> LayerParts:
    heads = config.num_attention_heads
    attention = layer.attention
    weight, bias = _linear_out(attention.output.dense, heads)
    norm = attention.output.LayerNorm

    def rest(y: torch.Tensor) -> torch.Tensor:
        return layer.feed_forward_chunk(norm(y))

    return LayerParts(
        layer=layer,
        attention=attention.self,
        value=attention.self.value,
        value_columns=None,
        out_proj=attention.output.dense,
        out_weight=weight,
        out_bias=bias,
        after_attention=norm,
        post_norm=True,
        causal=False,
        rest=rest,
        num_heads=heads,
        num_kv_heads=heads,
        head_dim=weight.shape[1],
    )


def _distilbert(layer, config) -> LayerParts:
    heads = config.n_heads
    weight, bias = _linear_out(layer.attention.out_lin, heads)
    norm = layer.sa_layer_norm

    def rest(y: torch.Tensor) -> torch.Tensor:
        a = norm(y)
        return layer.output_layer_norm(layer.ffn(a) + a)

    return LayerParts(
        layer=layer,
        attention=layer.attention,
        value=layer.attention.v_lin,
        value_columns=None,
        out_proj=layer.attention.out_lin,
        out_weight=weight,
        out_bias=bias,
        after_attention=norm,
        post_norm=True,
        causal=False,
        rest=rest,
        num_heads=heads,
        num_kv_heads=heads,
        head_dim=weight.shape[1],
    )


def _albert(base, config) -> list[LayerParts]:
    """ALBERT shares its layers: layer ``i`` runs group ``i * groups // layers``."""
    groups = base.encoder.albert_layer_groups
    parts = []
    for i in range(config.num_hidden_layers):
        group = groups[int(i / (config.num_hidden_layers / config.num_hidden_groups))]
        parts.extend(_albert_layer(layer, config) for layer in group.albert_layers)
    return parts


def _albert_layer(layer, config) -> LayerParts:
    heads = config.num_attention_heads
    attention = layer.attention
    weight, bias = _linear_out(attention.dense, heads)
    norm = attention.LayerNorm

    def rest(y: torch.Tensor) -> torch.Tensor:
        a = norm(y)
        return layer.full_layer_layer_norm(layer.ff_chunk(a) + a)

    return LayerParts(
        layer=layer,
        attention=attention,
        value=attention.value,
        value_columns=None,
        out_proj=attention.dense,
        out_weight=weight,
        out_bias=bias,
        after_attention=norm,
        post_norm=True,
        causal=False,
        rest=rest,
        num_heads=heads,
        num_kv_heads=heads,
        head_dim=weight.shape[1],
    )


def _gpt2(block, config) -> LayerParts:
    heads = config.n_head
    hidden = config.n_embd
    attn = block.attn
    if getattr(attn, "is_cross_attention", False) or hasattr(block, "crossattention"):
        raise ValueError("contributions are not implemented for GPT-2 with cross-attention")
    # Conv1D: y = x @ weight + bias, weight [in, out]; c_attn's out is [q | k | v]
    weight = _per_head(attn.c_proj.weight, heads)
    bias = attn.c_proj.bias.detach()

    def rest(y: torch.Tensor) -> torch.Tensor:
        return y + block.mlp(block.ln_2(y))

    return LayerParts(
        layer=block,
        attention=attn,
        value=attn.c_attn,
        value_columns=slice(2 * hidden, 3 * hidden),
        out_proj=attn.c_proj,
        out_weight=weight,
        out_bias=bias,
        after_attention=block.ln_2,
        post_norm=False,
        causal=True,
        rest=rest,
        num_heads=heads,
        num_kv_heads=heads,
        head_dim=hidden // heads,
    )


def _llama_like(layer, config) -> LayerParts:
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    attn = layer.self_attn
    for extra in ("pre_feedforward_layernorm", "post_feedforward_layernorm"):
        if hasattr(layer, extra):  # Gemma/OLMo-2 style norms around the blocks
            raise ValueError(
                f"contributions are not implemented for '{config.model_type}' layers with {extra}"
            )
    weight, bias = _linear_out(attn.o_proj, heads)
    norm = layer.post_attention_layernorm

    def rest(y: torch.Tensor) -> torch.Tensor:
        return y + layer.mlp(norm(y))

    return LayerParts(
        layer=layer,
        attention=attn,
        value=attn.v_proj,
        value_columns=None,
        out_proj=attn.o_proj,
        out_weight=weight,
        out_bias=bias,
        after_attention=norm,
        post_norm=False,
        causal=True,
        rest=rest,
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=weight.shape[1],
    )
