"""Hand-made AttentionRuns for view tests: no model, no torch."""

from __future__ import annotations

import numpy as np

from analysis.run import DECODER, ENCODER, AttentionRun, ModelFacts


def make_facts(layers: int, heads: int, causal: bool = False) -> ModelFacts:
    return ModelFacts(
        name="fake", source="fake", model_type="gpt2" if causal else "bert",
        architecture=DECODER if causal else ENCODER, num_layers=layers, num_heads=heads,
        num_kv_heads=heads, max_positions=512, is_causal=causal,
    )


def make_run(attentions: np.ndarray, *, text: str, tokens, offsets, word_ids, special, causal=False, segments=None):
    attentions = np.asarray(attentions, dtype=np.float32)
    n = attentions.shape[-1]
    special = np.asarray(special, dtype=bool)
    return AttentionRun(
        text=text, pair=None, tokens=tuple(tokens), labels=tuple(t.removeprefix("##") for t in tokens),
        input_ids=np.arange(n, dtype=np.int64), offsets=np.asarray(offsets, dtype=np.int64),
        word_ids=tuple(word_ids), special_mask=special,
        segment_ids=np.asarray(segments if segments is not None else np.where(special, -1, 0), dtype=np.int64),
        attentions=attentions, model=make_facts(attentions.shape[0], attentions.shape[1], causal),
    )


# "[CLS] play ##ing cats [SEP]" for the text "playing cats"
WORD_TEXT = "playing cats"
WORD_TOKENS = ["[CLS]", "play", "##ing", "cats", "[SEP]"]
WORD_OFFSETS = [(0, 0), (0, 4), (4, 7), (8, 12), (0, 0)]
WORD_IDS = [None, 0, 0, 1, None]
WORD_SPECIAL = [True, False, False, False, True]
WORD_MATRIX = np.array(
    [
        [0.2, 0.2, 0.2, 0.2, 0.2],
        [0.1, 0.4, 0.3, 0.1, 0.1],
        [0.5, 0.1, 0.1, 0.2, 0.1],
        [0.3, 0.2, 0.2, 0.2, 0.1],
        [0.6, 0.1, 0.1, 0.1, 0.1],
    ]
)


def word_run(layers: int = 1, heads: int = 1):
    attentions = np.broadcast_to(WORD_MATRIX, (layers, heads, 5, 5)).copy()
    return make_run(attentions, text=WORD_TEXT, tokens=WORD_TOKENS, offsets=WORD_OFFSETS,
                    word_ids=WORD_IDS, special=WORD_SPECIAL)
