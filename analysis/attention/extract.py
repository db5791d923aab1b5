"""One text (or text pair) through one loaded model: tokens, offsets and attentions.

``extract`` tokenizes with a fast tokenizer (character offsets, word ids, segment ids),
runs one forward pass with ``output_attentions=True`` under ``torch.inference_mode()``
and returns an immutable ``AttentionRun``. The attentions of all layers are concatenated
once into a float32 ``[layers, heads, T, T]`` array (batch 1, no padding) and made
read-only; nothing else is copied.

Meaning of the arrays (see ``analysis.run``): ``attentions[l, h, i, j]`` is how much query
token ``i`` attends to key token ``j``; rows sum to 1. Causal decoders have an exactly
zero upper triangle.

Memory: attentions take ``layers x heads x T^2`` numbers (the chat model at 1,024 tokens:
30 x 9 x 1024^2 = 283 million, 1.1 GB as float32). Two rules keep long runs small:

- above :data:`CAPTURE_ABOVE_BYTES` (64 MiB of float32) of an encoder or a decoder, each
  layer's weights are copied into the run's array by a forward hook on its attention module
  as soon as the layer has computed them, and the model keeps none of them, so the float32
  tensors of all layers and their copy never exist at the same time (the model's own
  ``output_attentions`` would hold them all until the pass ends: twice the memory);
- above :data:`FLOAT16_ABOVE_BYTES` (256 MiB of float32) the run stores them as **float16**
  (half the memory; every value in ``[0, 1]`` is then within ``2**-12 < 2.5e-4`` of the
  float32 one, well within ``1e-3``).

Smaller runs are float32, exactly as transformers returns them. Code that reads
``run.attentions`` converts to float32 or float64 where it computes (the views do), one layer
at a time where the array is large.

Long inputs: only a bounded prefix of the text is tokenized (:func:`encode_bounded`), so
the time and memory of a 50 MB text are those of its first few thousand characters; the
tokens kept are exactly the first ones of the whole text's tokenization, and the run's
``text`` (and ``pair``) is the part analysed: it ends with the last token kept.

``extract_ids`` runs given token ids (a prompt and its generation, see
:mod:`analysis.generation`) instead of a text: tokens, offsets into the decoded text, word
and special marks are recovered from the ids.

Grouped-query attention (Llama, Qwen2, Mistral, ...): with the eager implementation
transformers repeats each key/value head for its group of query heads before the
softmax, so ``attentions`` has one matrix per *query* head (``facts.num_heads``), not per
key/value head (``facts.num_kv_heads``); query heads of one group share keys but not
attention patterns.
"""

from __future__ import annotations

import contextlib
import inspect
import re
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from analysis.models.loading import LoadedModel
from analysis.run import ENCODER_DECODER, AttentionRun
from analysis.tokens import display_labels, special_token_ids, unknown_token_id

_NOT_MODEL_INPUTS = ("offset_mapping", "special_tokens_mask", "overflow_to_sample_mapping")

# Above this many bytes of float32 attentions a run stores them as float16 (see module doc).
FLOAT16_ABOVE_BYTES = 256 * 2**20
# Above this many bytes of float32 attentions, hooks copy them layer by layer (module doc).
CAPTURE_ABOVE_BYTES = 64 * 2**20
# Long inputs are tokenized a bounded prefix at a time (see :func:`encode_bounded`): the
# first prefix has this many characters per token the model reads, and it grows this many
# times over while it holds too few tokens.
PREFIX_CHARS_PER_TOKEN = 8
PREFIX_GROWTH = 4
# A prefix that cannot end just before a space (none in its second half) must hold this
# many tokens more than are kept, since its last word may tokenize differently whole.
HARD_CUT_MARGIN = 64
_SPACE_AFTER_A_WORD = re.compile(r"(?<=\S) ")  # a space (U+0020) that follows a non-space


def attention_dtype(layers: int, heads: int, queries: int, keys: int | None = None) -> np.dtype:
    """The dtype a run stores ``[layers, heads, queries, keys]`` attentions in: float32, or
    float16 when float32 would take more than :data:`FLOAT16_ABOVE_BYTES`.

    Examples
    --------
    >>> attention_dtype(6, 12, 512)  # MiniLM at its longest: 75 MB
    dtype('float32')
    >>> attention_dtype(30, 9, 1024)  # the chat model at 1,024 tokens: 1.1 GB as float32
    dtype('float16')
    """
    keys = queries if keys is None else keys
    size = 4 * int(layers) * int(heads) * int(queries) * int(keys)
    return np.dtype(np.float16 if size > FLOAT16_ABOVE_BYTES else np.float32)


class InputError(ValueError):
    """The text (or a setting) cannot be analysed; the message says why in one line."""


class ExtractionError(RuntimeError):
    """The model ran but gave no attentions to show; the message says why in one line."""


def extract(
    loaded: LoadedModel,
    text: str,
    pair: str | None = None,
    *,
    max_tokens: int | None = None,
    decoder_text: str | None = None,
) -> AttentionRun:
    """Tokenize ``text`` (and ``pair``), run the model once and return its attentions.

    - ``pair``: a second text read with the first (question + context for BERT-like
      encoders, which see it as segment 1). An empty ``pair`` means no pair.
    - ``max_tokens``: show at most this many tokens (the model's own limit,
      ``facts.max_positions``, always applies). A longer input is truncated, ``truncated``
      is set and ``notice`` says so in a sentence; a pair is shortened first
      (``only_second``) when the text alone fits, else both (``longest_first``). Only a
      bounded prefix of a long input is tokenized (:func:`encode_bounded`), and
      ``run.text`` / ``run.pair`` are then the parts analysed (up to the last token kept).
    - Encoder-decoder models (T5, BART): ``attentions`` is the encoder's self-attention
      over the source tokens. The decoder reads, by teacher forcing, the *decoder input*:
      ``decoder_text`` if given; else ``pair`` if given (then the encoder reads ``text``
      alone and ``run.pair`` is None); else ``text`` itself. That input is tokenized as a
      target (``text_target``, so T5 ends it with ``</s>``) and shifted right by one with
      the model's ``decoder_start_token_id`` in front, exactly like the models'
      ``_shift_right`` / ``shift_tokens_right`` during training. ``decoder_attentions``
      is ``[L, H, Td, Td]`` (causal), ``cross_attentions`` ``[L, H, Td, T]`` (decoder
      query ``i`` over source token ``j``).

    Offsets are character spans into the token's own segment text (``text`` or ``pair``),
    narrowed to exclude the space that a ``Ġ``/``▁`` word-start marker stands for; special
    tokens have ``(0, 0)``. Timings in seconds: ``load`` (the model's), ``tokenize``,
    ``forward``, ``convert``.
    """
    facts = loaded.facts
    is_seq2seq = facts.architecture == ENCODER_DECODER
    pair, decoder_text = _checked_texts(facts, text, pair, decoder_text)
    limit = _token_limit(loaded, max_tokens, pair)

    start = time.perf_counter()
    tokenizer = loaded.tokenizer
    bounded = encode_bounded(tokenizer, text, pair, limit)
    encoding = bounded.encoding
    text, pair = bounded.analysed_text, bounded.analysed_pair
    ids = encoding["input_ids"]
    tokens = tuple(tokenizer.convert_ids_to_tokens(ids[0].tolist()))
    special, segments, word_ids = _token_roles(encoding, tokenizer, ids)
    offsets = _offsets(encoding, special, segments, text, pair)
    labels = display_labels(tokens, special, word_ids=word_ids, segment_ids=segments)
    notices = [_truncation_notice(facts, bounded, limit)] if bounded.truncated else []
    inputs = _model_inputs(loaded.model, encoding, loaded.device)
    decoder = None
    if is_seq2seq:
        decoder = _decoder_input(loaded, decoder_text, limit)
        inputs["decoder_input_ids"] = decoder["ids"].to(loaded.device)
        if decoder["notice"]:
            notices.append(decoder["notice"])
    tokenize_s = time.perf_counter() - start

    if is_seq2seq:
        start = time.perf_counter()
        output = _forward(loaded, inputs)
        forward_s = time.perf_counter() - start
        start = time.perf_counter()
        source_len = int(ids.shape[1])
        target_len = int(decoder["ids"].shape[1])
        dtype = attention_dtype(
            facts.num_layers + facts.decoder_layers,
            max(facts.num_heads, facts.decoder_heads),
            max(source_len, target_len),
        )
        attentions = _stack(getattr(output, "encoder_attentions", None), facts.name, dtype)
        decoder_attentions = _stack(getattr(output, "decoder_attentions", None), facts.name, dtype)
        cross_attentions = _stack(getattr(output, "cross_attentions", None), facts.name, dtype)
        del output  # the per-layer tensors: the arrays above are their only copy now
        convert_s = time.perf_counter() - start
    else:
        attentions, forward_s, convert_s = _self_attentions(loaded, inputs, int(ids.shape[1]))
        decoder_attentions = cross_attentions = None
    input_ids = _read_only(ids[0].numpy().astype(np.int64, copy=False))

    return AttentionRun(
        text=text,
        pair=pair,
        tokens=tokens,
        labels=labels,
        input_ids=input_ids,
        offsets=offsets,
        word_ids=word_ids,
        special_mask=special,
        segment_ids=segments,
        attentions=attentions,
        model=facts,
        truncated=bounded.truncated,
        notice=" ".join(notices) or None,
        timings={
            "load": float(loaded.load_seconds),
            "tokenize": tokenize_s,
            "forward": forward_s,
            "convert": convert_s,
        },
        decoder_tokens=decoder["tokens"] if decoder else None,
        decoder_labels=decoder["labels"] if decoder else None,
        decoder_input_ids=decoder["input_ids"] if decoder else None,
        decoder_attentions=decoder_attentions,
        cross_attentions=cross_attentions,
    )


def extract_ids(
    loaded: LoadedModel,
    ids,
    *,
    text: str | None = None,
    prompt_length: int | None = None,
    generation=None,
) -> AttentionRun:
    """Run given token ids through the model once and return their attentions.

    Parameters
    ----------
    loaded : LoadedModel
        An encoder or a decoder (encoder-decoders need a source and a target: use
        :func:`extract`).
    ids : sequence of int
        The token ids, special tokens included, exactly as the model should read them
        (e.g. a chat-templated prompt followed by what the model generated).
    text : str, optional
        The run's ``text``. Default: the ids decoded, special tokens written out, so that
        every token's offsets point into it. A different text is aligned piece by piece.
    prompt_length : int, optional
        For a generation: tokens ``[0, prompt_length)`` are the prompt.
    generation : object, optional
        The per-step record kept in ``run.generation`` (:class:`analysis.generation.Generation`).

    Returns
    -------
    AttentionRun
        As :func:`extract` gives, with ``prompt_length`` and ``generation`` set. Special
        tokens are those the tokenizer calls special (``<|im_start|>``, ``</s>``, ...); word
        ids and offsets are those of re-tokenizing the text when that gives the same ids,
        else recovered from each token's decoded piece. Timings: ``load``, ``tokenize``
        (recovering tokens and offsets), ``forward``, ``convert``.

    Raises
    ------
    InputError
        No ids, ids outside the vocabulary, more tokens than the model reads, or an
        encoder-decoder model.

    Examples
    --------
    >>> from analysis.models.loading import load_model
    >>> loaded = load_model("smollm2")
    >>> run = extract_ids(loaded, loaded.tokenizer("The cat sat.")["input_ids"])
    >>> run.tokens, run.attentions.shape
    (('The', 'Ġcat', 'Ġsat', '.'), (30, 9, 4, 4))
    """
    facts = loaded.facts
    if facts.architecture == ENCODER_DECODER:
        raise InputError(
            f"{facts.name} is an encoder-decoder model: give it a text and a decoder text instead"
        )
    start = time.perf_counter()
    id_list = _checked_ids(loaded, ids)
    tokenizer = loaded.tokenizer
    tokens = tuple(tokenizer.convert_ids_to_tokens(id_list))
    special = _read_only(np.isin(np.asarray(id_list, dtype=np.int64), _special_ids(tokenizer)))
    text, offsets, word_ids = _text_offsets_words(tokenizer, id_list, special, text)
    segments = _read_only(np.where(special, -1, 0).astype(np.int64))
    labels = display_labels(tokens, special, word_ids=word_ids, segment_ids=segments)
    input_ids = torch.tensor([id_list], dtype=torch.long)
    accepted = _forward_parameters(type(loaded.model))
    inputs = {"input_ids": input_ids.to(loaded.device)}
    if "attention_mask" in accepted:
        inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
    if "use_cache" in accepted:
        inputs["use_cache"] = False
    tokenize_s = time.perf_counter() - start

    attentions, forward_s, convert_s = _self_attentions(loaded, inputs, len(id_list))
    if prompt_length is not None and not 0 <= int(prompt_length) <= len(id_list):
        raise InputError(f"the prompt length {prompt_length} is outside 0..{len(id_list)}")
    return AttentionRun(
        text=text,
        pair=None,
        tokens=tokens,
        labels=labels,
        input_ids=_read_only(np.asarray(id_list, dtype=np.int64)),
        offsets=offsets,
        word_ids=word_ids,
        special_mask=special,
        segment_ids=segments,
        attentions=attentions,
        model=facts,
        timings={
            "load": float(loaded.load_seconds),
            "tokenize": tokenize_s,
            "forward": forward_s,
            "convert": convert_s,
        },
        prompt_length=None if prompt_length is None else int(prompt_length),
        generation=generation,
    )


def _checked_ids(loaded: LoadedModel, ids) -> list[int]:
    if isinstance(ids, torch.Tensor):
        ids = ids.detach().cpu().reshape(-1).tolist()
    elif isinstance(ids, np.ndarray):
        ids = ids.reshape(-1).tolist()
    try:
        id_list = [int(i) for i in ids]
    except (TypeError, ValueError) as error:
        raise InputError("the token ids must be whole numbers") from error
    if not id_list:
        raise InputError("there are no token ids to analyse")
    vocab = int(getattr(loaded.model.config, "vocab_size", 0) or 0) or len(loaded.tokenizer)
    if min(id_list) < 0 or max(id_list) >= max(vocab, len(loaded.tokenizer)):
        raise InputError(f"a token id is outside the vocabulary of {loaded.facts.name}")
    limit = loaded.facts.max_positions
    if len(id_list) > limit:
        raise InputError(f"{len(id_list)} tokens are more than {loaded.facts.name} reads ({limit})")
    return id_list


def _special_ids(tokenizer) -> np.ndarray:
    """Ids of every special token (the named ones and added tokens marked special), without
    the unknown token, which is ordinary (:func:`analysis.tokens.special_token_ids`)."""
    return np.fromiter(sorted(special_token_ids(tokenizer)), dtype=np.int64)


def _text_offsets_words(tokenizer, ids: list[int], special: np.ndarray, text: str | None):
    """``(text, offsets [T, 2], word ids)`` for token ids (specials: ``(0, 0)``, None)."""
    pieces = _decoded_pieces(tokenizer, ids)
    decoded = "".join(pieces)
    text = decoded if text is None else text
    if text == decoded:
        encoding = tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, verbose=False
        )
        if list(encoding["input_ids"]) == ids:  # the text re-tokenizes to these very ids
            offsets = np.asarray(encoding["offset_mapping"], dtype=np.int64).reshape(-1, 2)
            words = encoding.word_ids()
            offsets[special] = 0
            word_ids = tuple(None if sp else w for w, sp in zip(words, special, strict=True))
            return text, _narrowed(offsets, text), word_ids
    offsets = np.zeros((len(ids), 2), dtype=np.int64)
    cursor = 0
    for i, piece in enumerate(pieces):
        if special[i]:
            cursor = _advance(text, cursor, piece)
            continue
        inner = piece.strip()
        if not inner:
            at = text.find(piece, cursor) if piece else -1
            if at < 0 or at > cursor + len(piece) + 16:
                offsets[i] = (cursor, cursor)
                continue
            offsets[i] = (at, at + len(piece))
            cursor = at + len(piece)
            continue
        at = text.find(inner, cursor)
        if at < 0:
            offsets[i] = (cursor, cursor)
            continue
        offsets[i] = (at, at + len(inner))
        cursor = at + len(inner)
    # A character split over byte tokens ("☕" = "Ġâ" "ĺ" "ķ"): every part gets its span.
    options = dict(skip_special_tokens=False, clean_up_tokenization_spaces=False)
    partial = [
        not special[i] and not pieces[i].strip() and "\ufffd" in tokenizer.decode([t], **options)
        for i, t in enumerate(ids)
    ]
    for i in range(len(ids) - 2, -1, -1):
        if partial[i] and not special[i + 1]:
            offsets[i] = offsets[i + 1]
    return text, _narrowed(offsets, text), _word_ids(text, offsets, special, pieces, partial)


def _advance(text: str, cursor: int, piece: str) -> int:
    at = text.find(piece, cursor) if piece else -1
    return at + len(piece) if at >= 0 else cursor


def _decoded_pieces(tokenizer, ids: list[int]) -> list[str]:
    """The text each token adds, so that ``"".join(pieces)`` is the decoded ids.

    Tokens decoded one by one usually join up to the whole (byte-level BPE); where they do
    not (SentencePiece drops a first token's space; a character split over byte tokens), the
    pieces are the differences of decoded prefixes.
    """
    options = dict(skip_special_tokens=False, clean_up_tokenization_spaces=False)
    whole = tokenizer.decode(ids, **options)
    single = [tokenizer.decode([i], **options) for i in ids]
    if "".join(single) == whole and "\ufffd" not in whole:
        return single
    pieces, previous = [], ""
    for end in range(1, len(ids) + 1):
        current = tokenizer.decode(ids[:end], **options)
        common = 0
        limit = min(len(previous), len(current))
        while common < limit and previous[common] == current[common]:
            common += 1
        surplus = len(previous) - common  # replacement characters that became real ones
        for back in range(len(pieces) - 1, -1, -1):
            if surplus <= 0:
                break
            cut = min(surplus, len(pieces[back]))
            pieces[back] = pieces[back][: len(pieces[back]) - cut]
            surplus -= cut
        pieces.append(current[common:])
        previous = current
    if "".join(pieces) != previous:  # pragma: no cover - defensive
        return single
    return pieces


def _narrowed(offsets: np.ndarray, text: str) -> np.ndarray:
    """Spans without their edge whitespace (as ``extract`` gives them)."""
    offsets = offsets.copy()
    for i, (start, end) in enumerate(offsets.tolist()):
        if end <= start:
            continue
        piece = text[start:end]
        inner = piece.strip()
        if inner and inner != piece:
            lead = len(piece) - len(piece.lstrip())
            offsets[i] = (start + lead, start + lead + len(inner))
    return _read_only(offsets)


def _word_ids(text: str, offsets: np.ndarray, special: np.ndarray, pieces, partial) -> tuple:
    """Word index per token: a new word starts after whitespace, a special token, or where
    a token begins with a space; sub-word continuations (and the byte tokens of one
    character) keep the word."""
    words: list[int | None] = []
    word = -1
    previous_end = None
    for i, piece in enumerate(pieces):
        if special[i]:
            words.append(None)
            previous_end = None
            continue
        start = int(offsets[i, 0])
        starts_word = not (i > 0 and partial[i - 1]) and (
            previous_end is None
            or piece[:1].isspace()
            or start > previous_end
            or (previous_end > 0 and text[previous_end - 1 : previous_end].isspace())
        )
        if starts_word:
            word += 1
        words.append(max(word, 0))
        previous_end = int(offsets[i, 1])
    return tuple(words)


# --- checks --------------------------------------------------------------------------


def _checked_texts(facts, text, pair, decoder_text) -> tuple[str | None, str | None]:
    """``(pair, decoder_text)`` after the checks and the decoder input rule.

    A blank pair is no pair. For encoder-decoder models the decoder input is
    ``decoder_text``, else the pair (which the encoder then does not read), else ``text``.
    """
    _check_text(text, "text")
    pair = pair if pair is not None and pair.strip() else None
    is_seq2seq = facts.architecture == ENCODER_DECODER
    if decoder_text is not None:
        if not is_seq2seq:
            raise InputError(
                f"{facts.name} has no decoder: a decoder text needs T5, BART or similar"
            )
        _check_text(decoder_text, "decoder text")
        return pair, decoder_text
    if is_seq2seq:
        return None, pair if pair is not None else text
    return pair, None


def _check_text(text, what: str) -> None:
    if not isinstance(text, str):
        raise InputError(f"the {what} must be a string, not {type(text).__name__}")
    if not text.strip():
        raise InputError(f"the {what} is empty: type or paste something to analyse")


def _token_limit(loaded: LoadedModel, max_tokens: int | None, pair: str | None) -> int:
    """The most tokens this run may have: the model's limit, or ``max_tokens`` if smaller."""
    limit = loaded.facts.max_positions
    if max_tokens is not None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
            raise InputError(f"the token limit must be a whole number, not {max_tokens!r}")
        limit = min(limit, max_tokens)
    least = loaded.tokenizer.num_special_tokens_to_add(pair=pair is not None) + 1
    if limit < least:
        raise InputError(f"the token limit must be at least {least} for this model")
    return limit


# --- tokens --------------------------------------------------------------------------


@dataclass(frozen=True)
class BoundedEncoding:
    """What :func:`encode_bounded` gives: the encoding of at most ``limit`` tokens and the
    parts of the texts it covers."""

    encoding: Any  # the tokenizer's BatchEncoding, tensors "pt", offsets and special mask
    truncated: bool  # True when tokens were left out
    analysed_text: str  # the text up to its last token kept (the whole text if nothing was cut)
    analysed_pair: str | None  # the same for the pair
    kept: tuple[int, ...]  # tokens kept per segment (text, pair), special tokens not counted
    cut: tuple[bool, ...]  # per segment: were some of its tokens left out?
    read: tuple[int, ...]  # characters given to the tokenizer per segment (bounded)


def prefix_end(text: str, chars: int) -> tuple[int, bool]:
    """``(end, safe)``: where a prefix of about ``chars`` characters of ``text`` ends.

    ``safe`` prefixes end just before a space (U+0020) that follows a non-space, in the
    second half of the ``chars`` characters: every supported tokenizer splits words there
    (WordPiece and byte-level BPE pre-tokenizers, SentencePiece's ``▁``), so the prefix
    tokenizes exactly as the start of the whole text. A text no longer than ``chars`` is
    its own prefix (safe). Otherwise, without such a space, the prefix is cut at ``chars``
    and is not safe: its last word may tokenize differently.

    Examples
    --------
    >>> prefix_end("the cat sat on the mat", 12)
    (11, True)
    >>> prefix_end("the cat", 12)
    (7, True)
    >>> prefix_end("x" * 20, 12)
    (12, False)
    """
    if len(text) <= chars:
        return len(text), True
    at = -1
    for match in _SPACE_AFTER_A_WORD.finditer(text, max(1, chars // 2), chars + 1):
        at = match.start()
    return (at, True) if at > 0 else (chars, False)


def encode_bounded(
    tokenizer, text: str, pair: str | None, limit: int, *, target: bool = False
) -> BoundedEncoding:
    """Tokenize ``text`` (and ``pair``) to at most ``limit`` tokens, reading only a bounded
    prefix of each, so that time and memory do not grow with what is left out.

    Parameters
    ----------
    tokenizer : transformers fast tokenizer
    text, pair : str
        The texts (``pair`` None: no pair).
    limit : int
        The most tokens, special tokens included (at least the special tokens + 1).
    target : bool
        Tokenize ``text`` as a target (``text_target``: an encoder-decoder's decoder
        input); ``pair`` must then be None.

    Returns
    -------
    BoundedEncoding
        The same tokens, offsets and special marks as tokenizing the whole texts and
        truncating them at ``limit`` (right side; a pair ``only_second`` when the text
        alone fits, else ``longest_first``), whenever the texts fit, and for longer texts
        whose prefixes end at a space (:func:`prefix_end`).

    Notes
    -----
    Each segment's prefix starts at :data:`PREFIX_CHARS_PER_TOKEN` characters per token of
    the limit and grows :data:`PREFIX_GROWTH`-fold while it is not the whole segment and
    gives fewer than ``limit - specials + 1`` tokens (one more than can be kept, so that
    truncation is certain), :data:`HARD_CUT_MARGIN` more for a prefix cut inside a word.
    ``longest_first`` gives the odd token of an odd budget to the longer segment when both
    are cut: when neither is read whole, the longer is the one with more tokens per
    character of its prefix times its length (an estimate; the only place where the result
    may differ from tokenizing everything), and its prefix grows until it also has more
    tokens. A text that fits in the first prefix is tokenized once, as before.

    Examples
    --------
    >>> from analysis.models.loading import load_model           # doctest: +SKIP
    >>> bounded = encode_bounded(load_model().tokenizer, "word " * 10**6, None, 512)  # doctest: +SKIP
    >>> bounded.truncated, bounded.read, bounded.encoding["input_ids"].shape  # doctest: +SKIP
    (True, (4084,), torch.Size([1, 512]))
    """
    options = dict(
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
        return_tensors="pt",
        verbose=False,
    )
    segments = [text] if pair is None else [text, pair]
    room = limit - tokenizer.num_special_tokens_to_add(pair=pair is not None)
    chars = [PREFIX_CHARS_PER_TOKEN * (room + 1)] * len(segments)
    with _truncating_on_the_right(tokenizer):
        while True:
            cuts = [prefix_end(segment, c) for segment, c in zip(segments, chars, strict=True)]
            pieces = [segment[:end] for segment, (end, _) in zip(segments, cuts, strict=True)]
            encoding = _tokenized(tokenizer, pieces, target, options)
            counts = _segment_counts(encoding, len(segments))
            grow = _segments_to_grow(segments, pieces, cuts, counts, room)
            if not grow:
                break
            for i in grow:
                chars[i] *= PREFIX_GROWTH
        whole = [len(piece) == len(segment) for piece, segment in zip(pieces, segments, strict=True)]
        truncated = not all(whole) or int(encoding["input_ids"].shape[1]) > limit
        if truncated:
            strategy = "longest_first"
            if pair is not None and whole[0] and counts[0] < room:
                strategy = "only_second"
            encoding = _tokenized(
                tokenizer, pieces, target, dict(options, truncation=strategy, max_length=limit)
            )
    kept = _segment_counts(encoding, len(segments))
    cut = [truncated and (not whole[i] or kept[i] < counts[i]) for i in range(len(segments))]
    analysed = [
        _analysed_part(encoding, i, segment) if cut[i] else segment
        for i, segment in enumerate(segments)
    ]
    return BoundedEncoding(
        encoding=encoding,
        truncated=truncated,
        analysed_text=analysed[0],
        analysed_pair=analysed[1] if pair is not None else None,
        kept=tuple(kept),
        cut=tuple(cut),
        read=tuple(len(piece) for piece in pieces),
    )


def _tokenized(tokenizer, pieces: list[str], target: bool, options: dict):
    if target:
        return tokenizer(text_target=pieces[0], **options)
    return tokenizer(*pieces, **options)


def _segments_to_grow(segments, pieces, cuts, counts, room: int) -> list[int]:
    """Indices of the segments whose prefix must grow (see :func:`encode_bounded`)."""
    whole = [len(piece) == len(segment) for piece, segment in zip(pieces, segments, strict=True)]
    grow = [
        i
        for i, (_, safe) in enumerate(cuts)
        if not whole[i] and counts[i] < room + 1 + (0 if safe else HARD_CUT_MARGIN)
    ]
    if grow or len(segments) == 1 or all(whole) or room % 2 == 0 or min(counts) <= room // 2:
        return grow
    # Both segments are cut by longest_first and the odd token goes to the longer one: make
    # the prefixes' counts order as the whole segments' do (a tie goes to the pair).
    text_longer_here = counts[0] > counts[1]
    if whole[0]:
        return [] if not text_longer_here else [1]
    if whole[1]:
        return [] if text_longer_here else [0]
    estimates = [c * len(s) / max(1, len(p)) for c, s, p in zip(counts, segments, pieces, strict=True)]
    text_longer = estimates[0] > estimates[1]
    if text_longer == text_longer_here:
        return []
    return [0 if text_longer else 1]


def _segment_counts(encoding, segments: int) -> list[int]:
    """Tokens of each segment (0: text, 1: pair) in an encoding; special tokens not counted."""
    sequence_ids = encoding.sequence_ids(0)
    return [sum(1 for s in sequence_ids if s == i) for i in range(segments)]


def _analysed_part(encoding, segment: int, text: str) -> str:
    """``text`` up to the end of the last token of ``segment`` in the encoding."""
    offsets = encoding["offset_mapping"][0].tolist()
    ends = [end for (_, end), s in zip(offsets, encoding.sequence_ids(0), strict=True) if s == segment]
    return text[: max(ends, default=0)]


@contextlib.contextmanager
def _truncating_on_the_right(tokenizer):
    """Truncation keeps the first tokens (a tokenizer may be set to keep the last ones)."""
    side = getattr(tokenizer, "truncation_side", "right")
    if side == "right":
        yield
        return
    tokenizer.truncation_side = "right"
    try:
        yield
    finally:
        tokenizer.truncation_side = side


def _encode(tokenizer, text: str, pair: str | None, limit: int):
    """``(encoding, total)`` of :func:`encode_bounded` (kept for its callers): ``total`` is
    the untruncated length when nothing was cut, else ``limit + 1`` (the whole text's
    length is never computed; prefer ``encode_bounded(...).truncated``)."""
    bounded = encode_bounded(tokenizer, text, pair, limit)
    total = int(bounded.encoding["input_ids"].shape[1])
    return bounded.encoding, (limit + 1 if bounded.truncated else total)


def _token_roles(encoding, tokenizer, ids: torch.Tensor):
    """``(special_mask, segment_ids, word_ids)``.

    A token is special when the tokenizer added it (``[CLS]``, ``<s>`` BOS, ``</s>``) or
    its id is one of the tokenizer's special ids (a ``<|endoftext|>`` typed in the text).
    The unknown token (``[UNK]``, ``<unk>``) is ordinary: it stands for text of its segment
    (:func:`analysis.tokens.unknown_token_id`). Special tokens get segment -1 and word id
    None.
    """
    sequence_ids = encoding.sequence_ids(0)
    added = encoding["special_tokens_mask"][0].numpy().astype(bool)
    in_segment = np.fromiter((s is not None for s in sequence_ids), dtype=bool, count=len(sequence_ids))
    special = added | np.isin(ids[0].numpy(), _special_ids(tokenizer)) | ~in_segment
    unknown = unknown_token_id(tokenizer)
    if unknown is not None:  # an [UNK] typed or produced in a segment is that segment's text
        special &= ~((ids[0].numpy() == unknown) & in_segment)
    segments = np.fromiter(
        (-1 if sp else s for s, sp in zip(sequence_ids, special, strict=True)),
        dtype=np.int64,
        count=len(sequence_ids),
    )
    word_ids = tuple(None if sp else w for w, sp in zip(encoding.word_ids(0), special, strict=True))
    return _read_only(special), _read_only(segments), word_ids


def _offsets(encoding, special: np.ndarray, segments: np.ndarray, text: str, pair: str | None):
    """int64 ``[T, 2]`` spans into each token's segment text, without edge whitespace."""
    offsets = encoding["offset_mapping"][0].numpy().astype(np.int64, copy=True)
    offsets[special] = 0
    for i, (start, end) in enumerate(offsets.tolist()):
        if end <= start:
            continue
        source = pair if segments[i] == 1 and pair is not None else text
        piece = source[start:end]
        inner = piece.strip()
        if inner and inner != piece:
            lead = len(piece) - len(piece.lstrip())
            offsets[i] = (start + lead, start + lead + len(inner))
    return _read_only(offsets)


def _truncation_notice(facts, bounded: BoundedEncoding, limit: int) -> str:
    """The sentence that tells a person the input was cut.

    Only a prefix was tokenized, so it says that the input is longer than the limit, not by
    how many tokens.
    """
    reader = _limit_phrase(facts, limit)
    if len(bounded.kept) == 1:
        return f"The text is longer than {reader}; only the first {limit} are analysed."
    text_kept, pair_kept = bounded.kept
    text_part = f"the text's first {text_kept} tokens" if bounded.cut[0] else "the whole text"
    pair_part = f"the pair's first {pair_kept} tokens" if bounded.cut[1] else "the whole pair"
    return f"The text and its pair are longer than {reader}; only {text_part} and {pair_part} are analysed."


def _limit_phrase(facts, limit: int) -> str:
    """``"the 512 tokens <model> reads"``, or ``"the token limit of 8"`` below the model's."""
    if limit < facts.max_positions:
        return f"the token limit of {limit}"
    return f"the {limit} tokens {facts.name} reads"


# --- forward -------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _forward_parameters(model_class: type) -> frozenset[str]:
    return frozenset(inspect.signature(model_class.forward).parameters)


def _model_inputs(model, encoding, device: str) -> dict[str, torch.Tensor]:
    """The encoding's tensors that the model's ``forward`` accepts, on ``device``."""
    accepted = _forward_parameters(type(model))
    inputs = {
        key: value.to(device)
        for key, value in encoding.items()
        if key not in _NOT_MODEL_INPUTS and key in accepted
    }
    if "use_cache" in accepted:
        inputs["use_cache"] = False  # no key/value cache: one pass, nothing to reuse
    return inputs


def _forward(loaded: LoadedModel, inputs: dict):
    """One forward pass with attentions, no autograd; failures become ExtractionError."""
    try:
        with torch.inference_mode():
            return loaded.model(**inputs, output_attentions=True, return_dict=True)
    except Exception as exc:  # out of memory, a model that rejects this input, ...
        text = str(exc).strip()
        reason = text.splitlines()[0] if text else type(exc).__name__
        raise ExtractionError(f"{loaded.facts.name} failed on this text: {reason}") from exc


def _decoder_start_id(model) -> int:
    """The token a decoder input starts with (``decoder_start_token_id``, else pad)."""
    for source in (model.config, getattr(model, "generation_config", None)):
        value = getattr(source, "decoder_start_token_id", None) if source is not None else None
        if value is not None:
            return int(value)
    pad = getattr(model.config, "pad_token_id", None)
    if pad is None:
        raise InputError("this model names no decoder start token, so its decoder cannot be fed")
    return int(pad)


def _decoder_input(loaded: LoadedModel, decoder_text: str, limit: int) -> dict:
    """Teacher-forced decoder input: the target's ids shifted right by one start token
    (a long target tokenized a bounded prefix at a time, as the text is)."""
    tokenizer = loaded.tokenizer
    bounded = encode_bounded(tokenizer, decoder_text, None, limit, target=True)
    target = bounded.encoding["input_ids"]
    notice = None
    if bounded.truncated:
        reader = _limit_phrase(loaded.facts, limit)
        notice = f"The decoder input is longer than {reader}; only the first {limit} are used."
    start = torch.full((1, 1), _decoder_start_id(loaded.model), dtype=target.dtype)
    ids = torch.cat([start, target[:, :-1]], dim=1)
    tokens = tuple(tokenizer.convert_ids_to_tokens(ids[0].tolist()))
    special_ids = special_token_ids(tokenizer)
    special = [i in special_ids for i in ids[0].tolist()]
    return {
        "ids": ids,
        "input_ids": _read_only(ids[0].numpy().astype(np.int64, copy=False)),
        "tokens": tokens,
        "labels": display_labels(tokens, special),
        "notice": notice,
    }


def _stack(layers, name: str, dtype=np.float32) -> np.ndarray:
    """Per-layer ``[1, H, T, T]`` tensors -> one read-only ``[L, H, T, T]`` array of ``dtype``.

    Exactly one copy, layer by layer into a fresh numpy array (measured about twice as
    fast as ``torch.cat`` on CPU); CPU float32 tensors are read in place.
    """
    if not layers or any(a is None for a in layers):
        raise ExtractionError(
            f"{name} returned no attention weights, so there is no attention to show; "
            "choose a transformer model with attention layers"
        )
    first = layers[0]
    out = np.empty((len(layers), *first.shape[1:]), dtype=dtype)
    for index, layer in enumerate(layers):
        out[index] = layer[0].detach().to("cpu", torch.float32).numpy()
    return _read_only(out)


def _self_attentions(loaded: LoadedModel, inputs: dict, tokens: int):
    """``(attentions, forward seconds, convert seconds)`` of an encoder or a decoder.

    Small runs: the model's own ``output_attentions``, stacked. Above
    :data:`CAPTURE_ABOVE_BYTES`: copied layer by layer by hooks (:func:`_capture_forward`),
    as float16 above :data:`FLOAT16_ABOVE_BYTES`.
    """
    facts = loaded.facts
    dtype = attention_dtype(facts.num_layers, facts.num_heads, tokens)
    float32_bytes = 4 * facts.num_layers * facts.num_heads * tokens * tokens
    if dtype == np.float16 or float32_bytes > CAPTURE_ABOVE_BYTES:
        start = time.perf_counter()
        captured = _capture_forward(
            loaded, inputs, (facts.num_layers, facts.num_heads, tokens), dtype
        )
        if captured is not None:
            return _read_only(captured), time.perf_counter() - start, 0.0
    start = time.perf_counter()
    output = _forward(loaded, inputs)
    forward_s = time.perf_counter() - start
    start = time.perf_counter()
    attentions = _stack(getattr(output, "attentions", None), facts.name, dtype)
    del output
    return attentions, forward_s, time.perf_counter() - start


def _attention_recorders(model) -> list[tuple[torch.nn.Module, int]] | None:
    """The modules whose output holds each layer's attention weights, with the index of the
    weights in that output, from the model's ``_can_record_outputs["attentions"]`` (what
    transformers itself hooks for ``output_attentions``); None when the model has no such
    single, class-based recorder."""
    spec = (getattr(type(model), "_can_record_outputs", None) or {}).get("attentions")
    if isinstance(spec, list):
        if len(spec) != 1:
            return None
        spec = spec[0]
    if isinstance(spec, type):
        target, index, layer_name = spec, 1, None
    elif spec is not None and isinstance(getattr(spec, "target_class", None), type):
        target, index, layer_name = spec.target_class, int(spec.index), spec.layer_name
    else:
        return None
    wanted = f".{layer_name.strip('.')}." if layer_name else None
    modules, seen = [], set()
    for name, module in model.named_modules():
        if not isinstance(module, target) or id(module) in seen:
            continue
        if wanted is not None and wanted not in f".{name}.":
            continue
        seen.add(id(module))
        modules.append((module, index))
    return modules or None


def _capture_forward(loaded: LoadedModel, inputs: dict, shape: tuple[int, int, int], dtype):
    """One forward pass whose attention weights go straight into a ``dtype`` array.

    A forward hook (run before transformers' own recorders) on each attention module copies
    the layer's ``[1, H, T, T]`` weights into ``out[layer]`` and hands ``None`` on in their
    place, so the float32 tensor is freed with the layer instead of being kept until the
    pass ends. Returns None (the caller then uses the plain path) when the model's modules
    do not give one weights tensor per layer this way.
    """
    layers, heads, tokens = shape
    recorders = _attention_recorders(loaded.model)
    if recorders is None:
        return None
    out = np.empty((layers, heads, tokens, tokens), dtype=dtype)
    state = {"filled": 0, "failed": False}

    def hook(module, args, output, index):
        if not isinstance(output, tuple) or not output:
            state["failed"] = True
            return None
        position = index % len(output)
        weights = output[position]
        layer = state["filled"]
        if (
            weights is None
            or layer >= layers
            or tuple(weights.shape[1:]) != (heads, tokens, tokens)
        ):
            state["failed"] = True
            return None
        out[layer] = weights[0].detach().to("cpu", torch.float32).numpy()
        state["filled"] = layer + 1
        return output[:position] + (None,) + output[position + 1 :]

    handles = [
        module.register_forward_hook(lambda m, a, o, i=index: hook(m, a, o, i), prepend=True)
        for module, index in recorders
    ]
    try:
        _forward(loaded, inputs)
    finally:
        for handle in handles:
            handle.remove()
    if state["failed"] or state["filled"] != layers:
        return None
    return out


def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array
