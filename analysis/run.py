"""The immutable result of one forward pass: tokens, their places in the text, attentions.

Conventions (see README): ``attentions[l, h, i, j]`` is how much query token ``i`` attends
to key token ``j`` in layer ``l``, head ``h``; every row sums to 1 (0 for padding).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

ENCODER = "encoder"
DECODER = "decoder"
ENCODER_DECODER = "encoder-decoder"


@dataclass(frozen=True)
class ModelFacts:
    """What a loaded model is: enough to label a figure and to check a request."""

    name: str  # human name: a hub id, a folder name, or "all-MiniLM-L6-v2 (embedded)"
    source: str  # what was asked for: "default", a folder path or a hub id
    model_type: str  # config.model_type: "bert", "gpt2", "llama", "t5", ...
    architecture: str  # ENCODER, DECODER or ENCODER_DECODER
    num_layers: int  # layers of the stack whose attention is in `attentions`
    num_heads: int  # query heads per layer
    num_kv_heads: int  # key/value heads (fewer than num_heads with grouped-query attention)
    max_positions: int  # the longest input the model accepts, in tokens
    is_causal: bool  # True for decoders: the upper triangle of `attentions` is masked
    decoder_layers: int = 0  # encoder-decoder models only
    decoder_heads: int = 0
    # What the window offers (analysis.generation): a language-model head that can generate
    # text (decoders with an LM head), and a chat template in the tokenizer (instruct models).
    can_generate: bool = False
    has_chat_template: bool = False


@dataclass(frozen=True)
class AttentionRun:
    """One text (or text pair) through one model. Arrays are read-only."""

    text: str
    pair: str | None
    tokens: tuple[str, ...]  # as the tokenizer writes them ("Ġthe", "▁the", "##s")
    labels: tuple[str, ...]  # readable display labels ("the", "s")
    input_ids: np.ndarray  # int64 [T]
    offsets: np.ndarray  # int64 [T, 2]: character span in its segment's text; (0, 0) for specials
    word_ids: tuple[int | None, ...]  # word index within its segment; None for special tokens
    special_mask: np.ndarray  # bool [T]: True for [CLS], [SEP], <s>, </s>, <bos>, ...
    segment_ids: np.ndarray  # int64 [T]: 0 = text, 1 = pair, -1 = special token
    attentions: np.ndarray  # float32 [layers, heads, T, T]; encoder self-attention for enc-dec
    model: ModelFacts
    truncated: bool = False
    notice: str | None = None  # human sentence when something was changed (e.g. truncation)
    timings: dict[str, float] = field(default_factory=dict)  # seconds: "load", "forward", ...
    # Encoder-decoder models only (None otherwise):
    decoder_tokens: tuple[str, ...] | None = None
    decoder_labels: tuple[str, ...] | None = None
    decoder_input_ids: np.ndarray | None = None  # int64 [Td]
    decoder_attentions: np.ndarray | None = None  # float32 [layers, heads, Td, Td]
    cross_attentions: np.ndarray | None = None  # float32 [layers, heads, Td, T]
    # A generation only (analysis.generation; None otherwise): tokens [0, prompt_length) are
    # the prompt (chat template included), the rest were generated; `generation` is the
    # per-step record (chosen token, its probability, top candidates, logit lens).
    prompt_length: int | None = None
    generation: Any = None
    # Contribution matrices computed on demand (analysis.contributions.run_contributions),
    # float32 [layers, T, T]: "value_norm" (per layer), "alti" and "value_zeroing" (combined by
    # rollout to each layer: what their views show), "alti_layers" and "value_zeroing_layers"
    # (per layer: what rollout, flow and the layered graph go through).
    contributions: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def num_tokens(self) -> int:
        return len(self.tokens)

    @property
    def num_layers(self) -> int:
        return int(self.attentions.shape[0])

    @property
    def num_heads(self) -> int:
        return int(self.attentions.shape[1])

    @property
    def generated_mask(self) -> np.ndarray:
        """bool [T]: True for the tokens the model generated (all False when none were)."""
        mask = np.zeros(self.num_tokens, dtype=bool)
        if self.prompt_length is not None:
            mask[self.prompt_length :] = True
        return mask

    def segment_text(self, index: int) -> str:
        """The text a token's offsets refer to."""
        return self.pair if (self.segment_ids[index] == 1 and self.pair is not None) else self.text
