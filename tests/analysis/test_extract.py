"""Extraction: tokens, offsets, segments, attentions equal to raw transformers output."""

from __future__ import annotations

import dataclasses
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from analysis.attention.extract import ExtractionError, InputError, extract
from analysis.tokens import display_label, display_labels
from tests.analysis.spies import CountingTokenizer
from tests.tiny_models import (
    CORPUS,
    DECODER_FAMILIES,
    ENCODER_DECODER_FAMILIES,
    ENCODER_FAMILIES,
    FAMILIES,
    HEADS,
    LAYERS,
    MAX_POSITIONS,
)

SENTENCE = "The quick brown fox didn't jump over 3 lazy dogs — it’s Tokenization!"
QUESTION = "Where does the river meet the sea?"
CONTEXT = "The river meets the sea at the delta, near the old harbour."
ATOL = 1e-5


def _raw_attentions(loaded, text, pair=None):
    """What transformers itself returns for the same text: ``(input_ids, attentions)``."""
    inputs = loaded.tokenizer(text, pair, return_tensors="pt")
    with torch.no_grad():
        out = loaded.model(**inputs, output_attentions=True)
    return inputs["input_ids"][0], np.stack([a[0].numpy() for a in out.attentions])


def _raw_seq2seq(loaded, text, target):
    """Encoder, decoder and cross attentions of transformers for ``text`` -> ``target``."""
    model = loaded.model
    inputs = loaded.tokenizer(text, return_tensors="pt")
    labels = loaded.tokenizer(text_target=target, return_tensors="pt")["input_ids"]
    if hasattr(model, "_shift_right"):  # T5
        decoder_ids = model._shift_right(labels)
    else:  # BART
        from transformers.models.bart.modeling_bart import shift_tokens_right

        decoder_ids = shift_tokens_right(
            labels, model.config.pad_token_id, model.config.decoder_start_token_id
        )
    with torch.no_grad():
        out = model(**inputs, decoder_input_ids=decoder_ids, output_attentions=True)

    def stack(layers):
        return np.stack([a[0].numpy() for a in layers])

    return (
        decoder_ids[0],
        stack(out.encoder_attentions),
        stack(out.decoder_attentions),
        stack(out.cross_attentions),
    )


# --- every family equals transformers ---------------------------------------------------


@pytest.mark.parametrize("family", ENCODER_FAMILIES + DECODER_FAMILIES)
def test_attentions_equal_the_raw_transformers_output(family, tiny):
    loaded = tiny(family)
    run = extract(loaded, SENTENCE)
    ids, raw = _raw_attentions(loaded, SENTENCE)
    assert run.input_ids.dtype == np.int64
    np.testing.assert_array_equal(run.input_ids, ids.numpy())
    assert run.tokens == tuple(loaded.tokenizer.convert_ids_to_tokens(ids.tolist()))
    assert run.attentions.dtype == np.float32
    assert run.attentions.shape == (LAYERS, HEADS, len(ids), len(ids))
    np.testing.assert_allclose(run.attentions, raw, atol=ATOL, rtol=0)
    np.testing.assert_allclose(run.attentions.sum(-1), 1.0, atol=1e-5)
    assert (run.num_layers, run.num_heads) == (run.model.num_layers, run.model.num_heads)
    assert run.decoder_attentions is None and run.cross_attentions is None


@pytest.mark.parametrize("family", ENCODER_FAMILIES)
def test_pair_attentions_equal_the_raw_transformers_output(family, tiny):
    loaded = tiny(family)
    run = extract(loaded, QUESTION, CONTEXT)
    ids, raw = _raw_attentions(loaded, QUESTION, CONTEXT)
    np.testing.assert_array_equal(run.input_ids, ids.numpy())
    np.testing.assert_allclose(run.attentions, raw, atol=ATOL, rtol=0)


@pytest.mark.parametrize("family", DECODER_FAMILIES)
def test_a_causal_model_has_a_zero_upper_triangle(family, tiny):
    run = extract(tiny(family), SENTENCE)
    assert run.model.is_causal
    upper = np.triu(np.ones((run.num_tokens, run.num_tokens), dtype=bool), k=1)
    assert np.all(run.attentions[..., upper] == 0.0)
    assert np.all(run.attentions[..., ~upper] > 0.0)


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_grouped_query_attention_gives_one_matrix_per_query_head(family, tiny):
    run = extract(tiny(family), SENTENCE)
    assert run.model.num_kv_heads < run.model.num_heads
    assert run.attentions.shape[1] == run.model.num_heads == HEADS
    # heads sharing one key/value head still attend differently (own queries)
    assert not np.allclose(run.attentions[:, 0], run.attentions[:, 1])


@pytest.mark.parametrize("family", ENCODER_DECODER_FAMILIES)
def test_encoder_decoder_arrays_equal_the_raw_output(family, tiny):
    loaded = tiny(family)
    target = "Hello world, a new line."
    run = extract(loaded, SENTENCE, decoder_text=target)
    decoder_ids, encoder, decoder, cross = _raw_seq2seq(loaded, SENTENCE, target)
    t, td = run.num_tokens, len(decoder_ids)
    assert run.attentions.shape == (LAYERS, HEADS, t, t)
    assert run.decoder_attentions.shape == (LAYERS, HEADS, td, td)
    assert run.cross_attentions.shape == (LAYERS, HEADS, td, t)
    for array in (run.attentions, run.decoder_attentions, run.cross_attentions):
        assert array.dtype == np.float32 and not array.flags.writeable
    np.testing.assert_array_equal(run.decoder_input_ids, decoder_ids.numpy())
    assert run.decoder_tokens == tuple(loaded.tokenizer.convert_ids_to_tokens(decoder_ids.tolist()))
    assert len(run.decoder_labels) == td
    np.testing.assert_allclose(run.attentions, encoder, atol=ATOL, rtol=0)
    np.testing.assert_allclose(run.decoder_attentions, decoder, atol=ATOL, rtol=0)
    np.testing.assert_allclose(run.cross_attentions, cross, atol=ATOL, rtol=0)
    upper = np.triu(np.ones((td, td), dtype=bool), k=1)
    assert np.all(run.decoder_attentions[..., upper] == 0.0)
    np.testing.assert_allclose(run.cross_attentions.sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("family", ENCODER_DECODER_FAMILIES)
def test_the_decoder_input_rule(family, tiny):
    loaded = tiny(family)
    start = loaded.model.config.decoder_start_token_id
    target_ids = loaded.tokenizer(text_target=CONTEXT)["input_ids"]

    by_pair = extract(loaded, QUESTION, CONTEXT)  # the pair is the decoder input
    assert by_pair.pair is None and set(by_pair.segment_ids.tolist()) <= {-1, 0}
    assert by_pair.decoder_input_ids.tolist() == [start] + target_ids[:-1]

    explicit = extract(loaded, QUESTION, decoder_text=CONTEXT)
    np.testing.assert_array_equal(explicit.decoder_input_ids, by_pair.decoder_input_ids)

    itself = extract(loaded, CONTEXT)  # no pair, no decoder text: the text itself
    assert itself.decoder_input_ids.tolist() == [start] + target_ids[:-1]

    both = extract(loaded, QUESTION, CONTEXT, decoder_text="Hello")
    assert both.pair == CONTEXT and 1 in both.segment_ids.tolist()


def test_decoder_text_needs_an_encoder_decoder_model(tiny):
    with pytest.raises(InputError, match="has no decoder"):
        extract(tiny("bert"), SENTENCE, decoder_text="Hello")


# --- tokens, offsets, segments --------------------------------------------------------


def test_default_model_tokens_offsets_and_rows(default_loaded):
    run = extract(default_loaded, SENTENCE)
    assert run.model.num_layers == 6 and run.model.num_heads == 12
    assert run.attentions.shape == (6, 12, run.num_tokens, run.num_tokens)
    np.testing.assert_allclose(run.attentions.sum(-1), 1.0, atol=1e-5)
    assert run.tokens[0] == "[CLS]" and run.tokens[-1] == "[SEP]"
    assert run.special_mask.tolist() == [t in ("[CLS]", "[SEP]") for t in run.tokens]
    assert run.offsets.shape == (run.num_tokens, 2) and run.offsets.dtype == np.int64
    for token, (start, end), special in zip(run.tokens, run.offsets, run.special_mask, strict=True):
        if special:
            assert (start, end) == (0, 0)
        else:
            # the model is uncased and strips accents, so compare as it sees the text
            assert SENTENCE[start:end].lower() == token.removeprefix("##")
    assert run.labels[run.tokens.index("##ization")] == "##ization"
    assert run.word_ids[0] is None and run.word_ids[1] == 0
    words = [w for w in run.word_ids if w is not None]
    assert words == sorted(words)


def test_default_model_arrays_are_read_only(default_loaded):
    run = extract(default_loaded, SENTENCE)
    for array in (run.attentions, run.input_ids, run.offsets, run.special_mask, run.segment_ids):
        assert not array.flags.writeable
    with pytest.raises(ValueError):
        run.attentions[0, 0, 0, 0] = 1.0


def test_bert_pair_has_question_and_context_segments(default_loaded):
    run = extract(default_loaded, QUESTION, CONTEXT)
    assert run.pair == CONTEXT
    sep = [i for i, t in enumerate(run.tokens) if t == "[SEP]"]
    assert run.tokens[0] == "[CLS]" and len(sep) == 2 and sep[1] == run.num_tokens - 1
    expected = [-1] + [0] * (sep[0] - 1) + [-1] + [1] * (sep[1] - sep[0] - 1) + [-1]
    assert run.segment_ids.tolist() == expected
    for i in range(run.num_tokens):
        if run.special_mask[i]:
            continue
        start, end = run.offsets[i]
        assert run.segment_text(i)[start:end].lower() == run.tokens[i].removeprefix("##")
    _, raw = _raw_attentions(default_loaded, QUESTION, CONTEXT)
    np.testing.assert_allclose(run.attentions, raw, atol=ATOL, rtol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_offsets_point_into_the_text_without_edge_spaces(family, tiny):
    run = extract(tiny(family), SENTENCE, None if family in ENCODER_DECODER_FAMILIES else CONTEXT)
    assert len(run.labels) == len(run.word_ids) == run.num_tokens
    for i in range(run.num_tokens):
        start, end = run.offsets[i]
        if run.special_mask[i]:
            assert (start, end) == (0, 0) and run.segment_ids[i] == -1
            assert run.word_ids[i] is None
            continue
        source = run.segment_text(i)
        assert 0 <= start <= end <= len(source)
        piece = source[start:end]
        assert piece == piece.strip() or not piece.strip()


def test_byte_level_labels_match_the_text(tiny):
    run = extract(tiny("gpt2"), "Hello world, it’s fine.\nNext line.")
    assert "Ċ" in run.tokens
    assert run.labels[run.tokens.index("Ċ")] == "⏎"
    start, end = run.offsets[run.tokens.index("Ċ")]
    assert run.text[start:end] == "\n"
    for token, label, (start, end) in zip(run.tokens, run.labels, run.offsets, strict=True):
        # decoded or plain ASCII tokens; a lone space token's trimmed span is empty
        if (label != token or token.isascii()) and label not in ("⏎", "␣"):
            assert run.text[start:end] == label.removeprefix("##")


def test_special_tokens_per_family(tiny):
    gpt2 = extract(tiny("gpt2"), "Hello world")
    assert not gpt2.special_mask.any()  # GPT-2 adds no special tokens
    typed = extract(tiny("gpt2"), "Hello<|endoftext|>world")
    assert typed.special_mask[typed.tokens.index("<|endoftext|>")]
    llama = extract(tiny("llama"), "Hello world")
    assert llama.tokens[0] == "<s>" and llama.special_mask[0] and llama.segment_ids[0] == -1
    roberta = extract(tiny("roberta"), "Hello world")
    assert roberta.tokens[0] == "<s>" and roberta.tokens[-1] == "</s>"
    assert roberta.special_mask[[0, -1]].all() and roberta.labels[0] == "<s>"
    t5 = extract(tiny("t5"), "Hello world")
    assert t5.tokens[-1] == "</s>" and t5.special_mask[-1] and not t5.special_mask[0]


# --- truncation ------------------------------------------------------------------------


def test_a_short_text_is_not_truncated(default_loaded):
    run = extract(default_loaded, SENTENCE)
    assert not run.truncated and run.notice is None


def test_a_long_text_is_truncated_and_says_so(default_loaded):
    text = "word " * 810
    run = extract(default_loaded, text)
    assert run.truncated
    assert run.num_tokens == 512 and run.attentions.shape[-1] == 512
    assert run.notice == (
        "The text is longer than the 512 tokens all-MiniLM-L6-v2 (embedded) reads; "
        "only the first 512 are analysed."
    )
    assert run.tokens[-1] == "[SEP]"
    # the run keeps the part analysed: up to the end of the last token kept (510 words)
    assert run.text == ("word " * 510).rstrip() and run.offsets[-2].tolist() == [2545, 2549]


def test_max_tokens_truncates_below_the_model_limit(tiny):
    run = extract(tiny("gpt2"), SENTENCE, max_tokens=8)
    assert run.truncated and run.num_tokens == 8
    assert run.notice == "The text is longer than the token limit of 8; only the first 8 are analysed."
    full = extract(tiny("gpt2"), SENTENCE)
    assert run.tokens == full.tokens[:8]
    # causal: the first 8 tokens see the same as in the full text
    np.testing.assert_allclose(run.attentions, full.attentions[..., :8, :8], atol=ATOL)


def test_a_long_pair_shortens_the_context_first(default_loaded):
    run = extract(default_loaded, QUESTION, "the sea " * 400)
    assert run.truncated and run.num_tokens == 512
    question = [t for t, s in zip(run.tokens, run.segment_ids, strict=True) if s == 0]
    assert " ".join(question) == "where does the river meet the sea ?"
    assert run.notice == (
        "The text and its pair are longer than the 512 tokens all-MiniLM-L6-v2 (embedded) "
        "reads; only the whole text and the pair's first 501 tokens are analysed."
    )
    assert run.text == QUESTION and run.pair == "the sea " * 250 + "the"  # 501 tokens


def test_a_long_text_with_a_short_pair_keeps_the_whole_pair_and_says_so(default_loaded):
    run = extract(default_loaded, "word " * 1000, "a short pair")
    assert run.truncated and run.num_tokens == 512 and run.pair == "a short pair"
    assert run.text == ("word " * 506).rstrip()
    assert run.notice == (
        "The text and its pair are longer than the 512 tokens all-MiniLM-L6-v2 (embedded) "
        "reads; only the text's first 506 tokens and the whole pair are analysed."
    )


def test_tiny_model_limit_applies(tiny):
    run = extract(tiny("bert"), "fox " * 100)
    assert run.truncated and run.num_tokens == MAX_POSITIONS


# --- bounded tokenization: only a prefix of a long input is tokenized --------------------

# Pieces of text with every kind of boundary: double spaces, newlines, tabs, punctuation
# runs, emoji (MiniLM's [UNK]), CJK without spaces, a 150-letter word (WordPiece's [UNK]
# for words over 100 characters), numbers and special tokens typed in the text.
_PIECES = [
    *[sentence.split(" ") for sentence in CORPUS],
    ["😀", "☕☕"], ["東京は日本の首都です。大阪もです。"], ["x" * 150], ["3.14159", "1,000,000"],
    ["don't", "—", "it’s", "...", "?!"], ["Ünïcödé", "naïve"], ["[SEP]", "<|endoftext|>", "</s>"],
]
_GLUE = [" ", " ", " ", "  ", "\n", "\n\n", "\t", " \n ", ""]


def _random_text(seed: int, words: int) -> str:
    rng = random.Random(seed)
    out = []
    while len(out) < words:
        piece = rng.choice(_PIECES)
        out.extend(word + rng.choice(_GLUE) for word in piece)
    return "".join(out)


def _truncated_whole(tokenizer, text, pair, limit):
    """The reference: tokenize the whole input, then truncate at the limit (as before)."""
    options = dict(return_offsets_mapping=True, return_special_tokens_mask=True, verbose=False)
    whole = tokenizer(text, pair, **options)
    if len(whole["input_ids"]) <= limit:
        return whole, False
    strategy = "longest_first"
    if pair is not None:
        first = whole.sequence_ids().count(0)
        if first + tokenizer.num_special_tokens_to_add(pair=True) < limit:
            strategy = "only_second"
    return tokenizer(text, pair, truncation=strategy, max_length=limit, **options), True


def _assert_same_encoding(tokenizer, text, pair, limit):
    from analysis.attention.extract import encode_bounded

    reference, truncated = _truncated_whole(tokenizer, text, pair, limit)
    bounded = encode_bounded(tokenizer, text, pair, limit)
    encoding = bounded.encoding
    assert bounded.truncated == truncated
    assert encoding["input_ids"][0].tolist() == reference["input_ids"]
    assert [tuple(o) for o in encoding["offset_mapping"][0].tolist()] == [
        tuple(o) for o in reference["offset_mapping"]
    ]
    assert encoding["special_tokens_mask"][0].tolist() == reference["special_tokens_mask"]
    assert encoding.sequence_ids(0) == reference.sequence_ids()
    assert encoding.word_ids(0) == reference.word_ids()
    for segment, (whole, part) in enumerate(
        zip((text, pair), (bounded.analysed_text, bounded.analysed_pair), strict=True)
    ):
        if whole is None:
            continue
        assert whole.startswith(part)
        ends = [e for (_, e), s in zip(reference["offset_mapping"], reference.sequence_ids(), strict=True)
                if s == segment]
        assert part == (whole[: max(ends, default=0)] if bounded.cut[segment] else whole)
    return bounded


def _tokenizers(default_loaded, tiny):
    """MiniLM (WordPiece), byte-level BPE with and without specials, and Unigram."""
    return {
        "minilm": (default_loaded.tokenizer, 512),
        "roberta": (tiny("roberta").tokenizer, MAX_POSITIONS),
        "gpt2": (tiny("gpt2").tokenizer, MAX_POSITIONS),
        "qwen2": (tiny("qwen2").tokenizer, MAX_POSITIONS),
        "t5": (tiny("t5").tokenizer, MAX_POSITIONS),
    }


@pytest.mark.parametrize("name", ["minilm", "roberta", "gpt2", "qwen2", "t5"])
def test_a_bounded_prefix_gives_the_tokens_of_truncating_the_whole_text(name, default_loaded, tiny):
    tokenizer, limit = _tokenizers(default_loaded, tiny)[name]
    for seed in range(6):
        for words in (5, limit // 3, 6 * limit, 40 * limit):
            text = _random_text(seed, words)
            _assert_same_encoding(tokenizer, text, None, limit)
            _assert_same_encoding(tokenizer, text, None, limit - 7)  # a max_tokens below it
    # a text without spaces is cut inside a word: the margin keeps the tokens exact
    _assert_same_encoding(tokenizer, "東京は日本の首都です。" * 3000, None, limit)
    # a long run of spaces before the words: the prefix grows until it holds enough tokens
    _assert_same_encoding(tokenizer, " " * 300_000 + "The cat sat. " * 2000, None, limit)


@pytest.mark.parametrize("name", ["minilm", "roberta", "t5"])
def test_a_bounded_pair_keeps_the_truncation_strategy(name, default_loaded, tiny):
    # (The whole pairs stay ~5 times the limit: the reference's own longest_first truncation
    # of two 100k-token texts takes 35 s and 8 GB, all of it in the overflow windows.)
    tokenizer, limit = _tokenizers(default_loaded, tiny)[name]
    for seed in range(3):
        short, long = _random_text(seed, 6), _random_text(seed + 100, 4 * limit)
        longer = long + " " + _random_text(seed + 200, 2 * limit)
        half = _random_text(seed + 300, limit // 2)
        for max_tokens in (limit, limit - 1):  # even and odd budgets (the odd token's rule)
            for text, pair in ((short, long), (long, short), (longer, long), (long, longer),
                               (half, half + " and more words here"), (half, long)):
                _assert_same_encoding(tokenizer, text, pair, max_tokens)


def test_the_odd_token_of_a_pair_goes_to_the_longer_text_even_when_its_prefix_is_shorter(default_loaded):
    from analysis.attention import extract as extraction

    tokenizer = default_loaded.tokenizer  # a pair of MiniLM: 509 tokens to share, odd
    dense = "a b c d e f g h " * 400  # 6,400 characters, 2 per token: 3,200 tokens
    sparse = "wonderful " * 4000  # 40,000 characters, 10 per token: 4,000 tokens
    grown = []
    original = extraction._segments_to_grow

    def spy(*args):
        grown.append(original(*args))
        return grown[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(extraction, "_segments_to_grow", spy)
        bounded = _assert_same_encoding(tokenizer, dense, sparse, 512)
    # the first prefixes (4,080 characters each) make the dense text look longer; the pair's
    # prefix grew so that the odd token went to the pair, as with the whole texts
    assert [1] in grown and bounded.kept == (254, 255)


def test_a_long_text_gives_the_tokenizer_a_bounded_prefix(default_loaded):
    counting = CountingTokenizer(default_loaded.tokenizer)
    loaded = dataclasses.replace(default_loaded, tokenizer=counting)
    given = {}
    for size in (10**5, 20 * 10**6):
        counting.given.clear()
        text = ("Tokenization of unbelievably complicated words. " * (size // 48 + 1))[:size]
        run = extract(loaded, text)
        given[size] = list(counting.given)
        assert run.truncated and run.num_tokens == 512
        assert len(run.text) < 8 * 512 and text.startswith(run.text)
    # what the tokenizer reads does not grow with the text: the same prefix every time,
    # at most 8 characters per token of the limit, read once to count and once to cut
    assert given[10**5] == given[20 * 10**6]
    assert len(given[10**5]) == 2 and max(given[10**5]) <= 8 * 512
    counting.given.clear()
    run = extract(loaded, "Where is the cat?", "The cat is on the mat. " * 10**6)  # 23 MB pair
    assert run.truncated and max(counting.given) <= 2 * 8 * 512 and len(run.pair) < 8 * 512
    assert run.notice.endswith("only the whole text and the pair's first 504 tokens are analysed.")


def test_an_encoder_decoder_reads_a_bounded_prefix_of_a_long_decoder_text(tiny):
    counting = CountingTokenizer(tiny("t5").tokenizer)
    loaded = dataclasses.replace(tiny("t5"), tokenizer=counting)
    run = extract(loaded, "the cat " * 10**5)
    assert max(counting.given) <= 8 * MAX_POSITIONS
    assert len(run.decoder_tokens) == MAX_POSITIONS and run.num_tokens == MAX_POSITIONS
    assert "The decoder input is longer than the 64 tokens" in run.notice
    whole = tiny("t5").tokenizer(text_target="the cat " * 10**5, truncation=True,
                                 max_length=MAX_POSITIONS)["input_ids"]
    assert run.decoder_input_ids[1:].tolist() == whole[:-1]


def test_a_tokenizer_set_to_truncate_on_the_left_still_keeps_the_first_tokens(default_loaded):
    tokenizer = default_loaded.tokenizer
    tokenizer.truncation_side = "left"
    try:
        run = extract(default_loaded, "one two three " * 400)
        assert tokenizer.truncation_side == "left"  # restored
    finally:
        tokenizer.truncation_side = "right"
    assert run.tokens[1:4] == ("one", "two", "three")


# --- the unknown token is an ordinary token ------------------------------------------------


def test_unk_is_an_ordinary_token_with_its_span(default_loaded):
    from analysis.attention.views import ViewSpec, make_view

    text = "I love 😀 and ☕ tea"
    run = extract(default_loaded, text)
    unknown = [i for i, t in enumerate(run.tokens) if t == "[UNK]"]
    assert len(unknown) == 2
    for i, emoji in zip(unknown, ("😀", "☕"), strict=True):
        assert not run.special_mask[i] and run.segment_ids[i] == 0 and run.word_ids[i] is not None
        start, end = run.offsets[i]
        assert text[start:end] == emoji and run.labels[i] == "[UNK]"
    view = make_view(run, ViewSpec(kind="mean", layer=0, drop_special=True))
    assert view.row_labels == ("i", "love", "[UNK]", "and", "[UNK]", "tea")
    assert run.special_mask.tolist() == [True] + [False] * 6 + [True]


def test_unk_of_a_unigram_tokenizer_is_ordinary_and_delimiters_stay_special(tiny):
    from analysis.tokens import special_token_ids, unknown_token_id

    t5 = tiny("t5")
    run = extract(t5, "Hello 😀 world")
    unknown = run.tokens.index("<unk>")
    assert not run.special_mask[unknown] and run.labels[unknown] == "<unk>"
    assert run.text[slice(*run.offsets[unknown])] == "😀"
    assert unknown_token_id(t5.tokenizer) == t5.tokenizer.unk_token_id
    assert t5.tokenizer.unk_token_id not in special_token_ids(t5.tokenizer)
    # GPT-2's unk_token is its <|endoftext|>, a delimiter the byte-level model never produces
    gpt2 = tiny("gpt2").tokenizer
    assert unknown_token_id(gpt2) is None and gpt2.unk_token_id in special_token_ids(gpt2)
    typed = extract(tiny("gpt2"), "Hello<|endoftext|>world")
    assert typed.special_mask[typed.tokens.index("<|endoftext|>")]


def test_extract_ids_keeps_unk_ordinary(default_loaded):
    from analysis.attention.extract import extract_ids

    ids = default_loaded.tokenizer("tea ☕ now")["input_ids"]
    run = extract_ids(default_loaded, ids)
    assert run.tokens[2] == "[UNK]" and not run.special_mask[2]
    assert run.special_mask.tolist() == [True, False, False, False, True]


# --- errors and timings ---------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
def test_empty_text_is_an_input_error(text, tiny):
    with pytest.raises(InputError, match="the text is empty"):
        extract(tiny("bert"), text)


def test_not_a_string_is_an_input_error(tiny):
    with pytest.raises(InputError, match="must be a string"):
        extract(tiny("bert"), None)


def test_a_blank_pair_means_no_pair(tiny):
    run = extract(tiny("bert"), SENTENCE, "  ")
    assert run.pair is None and 1 not in run.segment_ids.tolist()


def test_a_token_limit_below_the_special_tokens_is_an_input_error(tiny):
    with pytest.raises(InputError, match="at least 3"):
        extract(tiny("bert"), SENTENCE, max_tokens=2)


class _Broken(torch.nn.Module):
    def forward(self, input_ids, attention_mask=None, token_type_ids=None, **kwargs):
        raise RuntimeError("boom\nwith a long traceback-like tail")


class _Blind(torch.nn.Module):
    def forward(self, input_ids, attention_mask=None, token_type_ids=None, **kwargs):
        return SimpleNamespace(attentions=None)


def test_a_failing_forward_pass_is_one_readable_line(tiny):
    broken = dataclasses.replace(tiny("bert"), model=_Broken())
    with pytest.raises(ExtractionError, match=r"failed on this text: boom$"):
        extract(broken, SENTENCE)


def test_a_model_without_attention_weights_says_so(tiny):
    blind = dataclasses.replace(tiny("bert"), model=_Blind())
    with pytest.raises(ExtractionError, match="returned no attention weights"):
        extract(blind, SENTENCE)


def test_timings_are_reported_in_seconds(tiny):
    loaded = tiny("bert")
    run = extract(loaded, SENTENCE)
    assert set(run.timings) == {"load", "tokenize", "forward", "convert"}
    assert run.timings["load"] == loaded.load_seconds
    assert all(value >= 0 for value in run.timings.values())


# --- display labels ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "label"),
    [
        ("Ġthe", "the"),
        ("##ing", "##ing"),
        ("▁the", "the"),
        ("Ċ", "⏎"),
        ("ĊĊ", "⏎⏎"),
        ("ĉ", "⇥"),
        ("âĢĻ", "’"),
        ("ĠâĢĻ", "’"),
        ("ĠcafÃ©", "café"),
        ("<0x0A>", "⏎"),
        ("Ġ", "␣"),
        ("▁", "␣"),
        ("▁New▁York", "New York"),
        ("hello", "hello"),
        ("##", "##"),
        ("[CLS]", "[CLS]"),
        ("<s>", "<s>"),
        ("</s>", "</s>"),
        ("<|endoftext|>", "<|endoftext|>"),
        ("âĢ", "âĢ"),  # part of a character: cannot be shown alone
        ("<0xE2>", "<0xE2>"),
    ],
)
def test_display_label(token, label):
    assert display_label(token) == label


def test_special_tokens_keep_their_spelling():
    assert display_label("▁weird", special=True) == "▁weird"
    assert display_labels(["[CLS]", "##s", "Ġa"], [True, False, False]) == ("[CLS]", "##s", "a")


# --- token ids in (generation), float16 for long runs ------------------------------------


@pytest.mark.parametrize("family", ENCODER_FAMILIES + DECODER_FAMILIES)
def test_extract_ids_equals_extract_on_the_same_ids(family, tiny):
    from analysis.attention.extract import extract_ids

    loaded = tiny(family)
    run = extract(loaded, SENTENCE)
    again = extract_ids(loaded, run.input_ids.tolist())
    np.testing.assert_array_equal(again.input_ids, run.input_ids)
    assert again.tokens == run.tokens and again.labels == run.labels
    np.testing.assert_array_equal(again.special_mask, run.special_mask)
    np.testing.assert_array_equal(again.attentions, run.attentions)
    assert again.prompt_length is None and again.generation is None
    for i in np.flatnonzero(~again.special_mask):  # offsets point into the decoded text
        start, end = again.offsets[i]
        assert 0 <= start <= end <= len(again.text)
    assert set(again.timings) == {"load", "tokenize", "forward", "convert"}


def test_extract_ids_offsets_and_words_of_a_byte_level_text(tiny):
    from analysis.attention.extract import extract_ids

    loaded = tiny("gpt2")
    text = "Tokenization splits café words!"
    ids = loaded.tokenizer(text)["input_ids"]
    run = extract_ids(loaded, ids, prompt_length=2, generation="record")
    assert run.text == text and run.prompt_length == 2 and run.generation == "record"
    assert run.generated_mask.tolist() == [False, False] + [True] * (len(ids) - 2)
    reference = extract(loaded, text)
    np.testing.assert_array_equal(run.offsets, reference.offsets)
    assert run.word_ids == reference.word_ids
    # ids that do not re-tokenize to themselves: offsets from each token's decoded piece
    pieces = ["Tok", "en"] + [t for t in loaded.tokenizer.convert_ids_to_tokens(ids)[1:]]
    odd = [loaded.tokenizer.convert_tokens_to_ids(p) for p in pieces]
    if odd != ids and loaded.tokenizer.unk_token_id not in odd:
        split = extract_ids(loaded, odd)
        assert split.text == text
        spans = [split.text[s:e] for s, e in split.offsets.tolist()]
        assert spans[:2] == ["Tok", "en"] and split.word_ids[0] == split.word_ids[1]


def test_extract_ids_refusals(tiny):
    from analysis.attention.extract import extract_ids

    with pytest.raises(InputError, match="no token ids"):
        extract_ids(tiny("gpt2"), [])
    with pytest.raises(InputError, match="outside the vocabulary"):
        extract_ids(tiny("gpt2"), [10**7])
    with pytest.raises(InputError, match=f"more than .* reads \\({MAX_POSITIONS}\\)"):
        extract_ids(tiny("gpt2"), [5] * (MAX_POSITIONS + 1))
    with pytest.raises(InputError, match="encoder-decoder model"):
        extract_ids(tiny("t5"), [5, 6])


def test_the_attention_dtype_is_decided_by_size():
    from analysis.attention.extract import FLOAT16_ABOVE_BYTES, attention_dtype

    assert FLOAT16_ABOVE_BYTES == 256 * 2**20
    assert attention_dtype(6, 12, 512) == np.float32  # the default model at its longest
    assert attention_dtype(30, 9, 400) == np.float32  # the chat model, 400 tokens: 173 MB
    assert attention_dtype(30, 9, 1024) == np.float16  # 1,024 tokens: 1.1 GB as float32


@pytest.mark.parametrize("family", ENCODER_FAMILIES + DECODER_FAMILIES + ENCODER_DECODER_FAMILIES)
def test_float16_runs_are_within_1e3_of_float32(family, tiny, monkeypatch):
    from analysis.attention import extract as extract_module

    loaded = tiny(family)
    full = extract(loaded, SENTENCE)
    monkeypatch.setattr(extract_module, "FLOAT16_ABOVE_BYTES", 0)
    half = extract(loaded, SENTENCE)
    assert half.attentions.dtype == np.float16 and not half.attentions.flags.writeable
    np.testing.assert_allclose(
        half.attentions.astype(np.float32), full.attentions, atol=1e-3, rtol=0
    )
    if family in ENCODER_DECODER_FAMILIES:
        for name in ("decoder_attentions", "cross_attentions"):
            a, b = getattr(half, name), getattr(full, name)
            assert a.dtype == np.float16
            np.testing.assert_allclose(a.astype(np.float32), b, atol=1e-3, rtol=0)


def test_float16_hooks_free_each_layer_and_fall_back_when_they_cannot(tiny, monkeypatch):
    """The capture path hands None on in place of each layer's weights (so the model keeps
    none of them); a model whose attention modules give no weights uses the plain path."""
    from analysis.attention import extract as extract_module

    monkeypatch.setattr(extract_module, "FLOAT16_ABOVE_BYTES", 0)
    loaded = tiny("llama")
    seen = []
    real_forward = extract_module._forward

    def spy(loaded_, inputs):
        output = real_forward(loaded_, inputs)
        seen.append(output.attentions)
        return output

    monkeypatch.setattr(extract_module, "_forward", spy)
    run = extract(loaded, SENTENCE)
    assert run.attentions.dtype == np.float16
    assert len(seen) == 1 and not seen[0]  # nothing kept by the model's own recorders
    monkeypatch.setattr(extract_module, "_attention_recorders", lambda model: None)
    seen.clear()
    fallback = extract(loaded, SENTENCE)
    assert len(seen) == 1 and len(seen[0]) == LAYERS
    np.testing.assert_array_equal(fallback.attentions, run.attentions)


def test_every_analysis_accepts_float16_attentions(tiny, monkeypatch):
    from analysis.attention import extract as extract_module
    from analysis.attention.flow import attention_flow
    from analysis.attention.head_stats import head_summary, head_thumbnails
    from analysis.attention.rollout import attention_rollout
    from analysis.attention.views import ViewSpec, make_view
    from analysis.graph.layered import layered_graph
    from analysis.graph.metrics import analyze_graph
    from analysis.graph.rules import SparsifyRule

    loaded = tiny("llama")
    full = extract(loaded, SENTENCE)
    monkeypatch.setattr(extract_module, "FLOAT16_ABOVE_BYTES", 0)
    half = extract(loaded, SENTENCE)
    for spec in (ViewSpec(kind="head", layer=1, head=2), ViewSpec(kind="mean"), ViewSpec(kind="max"),
                 ViewSpec(kind="rollout"), ViewSpec(kind="mean", merge_words=True, drop_special=True)):  # fmt: skip
        a, b = make_view(half, spec), make_view(full, spec)
        assert a.matrix.dtype == np.float64
        np.testing.assert_allclose(a.matrix, b.matrix, atol=2e-3)
    np.testing.assert_allclose(
        attention_rollout(half.attentions), attention_rollout(full.attentions), atol=2e-3
    )
    for key, value in head_summary(half.attentions, half.special_mask).items():
        np.testing.assert_allclose(
            value, head_summary(full.attentions, full.special_mask)[key], atol=1e-2
        )
    np.testing.assert_allclose(
        head_thumbnails(half.attentions, 4), head_thumbnails(full.attentions, 4), atol=1e-3
    )
    np.testing.assert_allclose(
        attention_flow(half.attentions, 3), attention_flow(full.attentions, 3), atol=5e-3
    )
    rule = SparsifyRule()
    assert layered_graph(half.attentions, 1, rule).node_token.size > 0
    view = make_view(half, ViewSpec(kind="mean"))
    assert analyze_graph(view.matrix, rule).weights.size > 0


def test_a_float16_run_is_written_as_float32(tiny, monkeypatch, tmp_path):
    from analysis.attention import extract as extract_module
    from analysis.io.folder import write_attention_npz

    monkeypatch.setattr(extract_module, "FLOAT16_ABOVE_BYTES", 0)
    run = extract(tiny("gpt2"), SENTENCE)
    write_attention_npz(tmp_path / "a.npz", run)
    with np.load(tmp_path / "a.npz", allow_pickle=False) as npz:
        assert npz["attentions"].dtype == np.float32
        np.testing.assert_array_equal(npz["attentions"], run.attentions.astype(np.float32))


def test_the_hook_path_equals_the_plain_path_in_float32(tiny, monkeypatch):
    from analysis.attention import extract as extract_module

    for family in ("bert", "albert", "gpt2", "qwen2"):
        plain = extract(tiny(family), SENTENCE)
        monkeypatch.setattr(extract_module, "CAPTURE_ABOVE_BYTES", 0)
        hooked = extract(tiny(family), SENTENCE)
        monkeypatch.undo()
        assert hooked.attentions.dtype == np.float32
        np.testing.assert_array_equal(hooked.attentions, plain.attentions)
