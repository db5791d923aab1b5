"""One text (or text pair) through one loaded model: tokens, offsets and attentions.

``extract`` tokenizes with a fast tokenizer (character offsets, word ids, segment ids),
runs one forward pass with ``output_attentions=True`` under ``torch.inference_mode()``
and returns an immutable ``AttentionRun``. The attentions of all layers are concatenated
once into a float32 ``[layers, heads, T, T]`` array (batch 1, no padding) and made
read-only; nothing else is copied.

Meaning of the arrays (see ``analysis.run``): ``attentions[l, h, i, j]`` is how much query
token ``i`` attends to key token ``j``; rows sum to 1. Causal decoders have an exactly
zero upper triangle.

Grouped-query attention (Llama, Qwen2, Mistral, ...): with the eager implementation
transformers repeats each key/value head for its group of query heads before the
softmax, so ``attentions`` has one matrix per *query* head (``facts.num_heads``), not per
key/value head (``facts.num_kv_heads``); query heads of one group share keys but not
attention patterns.
"""

from __future__ import annotations

import inspect
import time
from functools import lru_cache

import numpy as np
import torch

from analysis.models.loading import LoadedModel
from analysis.run import ENCODER_DECODER, AttentionRun
from analysis.tokens import display_labels

_NOT_MODEL_INPUTS = ("offset_mapping", "special_tokens_mask", "overflow_to_sample_mapping")


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
      (``only_second``) when the text alone fits, else both (``longest_first``).
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
    encoding, total = _encode(tokenizer, text, pair, limit)
    ids = encoding["input_ids"]
    tokens = tuple(tokenizer.convert_ids_to_tokens(ids[0].tolist()))
    special, segments, word_ids = _token_roles(encoding, tokenizer, ids)
    offsets = _offsets(encoding, special, segments, text, pair)
    labels = display_labels(tokens, special)
    notices = [_truncation_notice(facts, total, limit, pair)] if total > limit else []
    inputs = _model_inputs(loaded.model, encoding, loaded.device)
    decoder = None
    if is_seq2seq:
        decoder = _decoder_input(loaded, decoder_text, limit)
        inputs["decoder_input_ids"] = decoder["ids"].to(loaded.device)
        if decoder["notice"]:
            notices.append(decoder["notice"])
    tokenize_s = time.perf_counter() - start

    start = time.perf_counter()
    output = _forward(loaded, inputs)
    forward_s = time.perf_counter() - start

    start = time.perf_counter()
    if is_seq2seq:
        attentions = _stack(output.encoder_attentions, facts.name)
        decoder_attentions = _stack(output.decoder_attentions, facts.name)
        cross_attentions = _stack(output.cross_attentions, facts.name)
    else:
        attentions = _stack(output.attentions, facts.name)
        decoder_attentions = cross_attentions = None
    del output  # the per-layer tensors: the arrays above are their only copy now
    input_ids = _read_only(ids[0].numpy().astype(np.int64, copy=False))
    convert_s = time.perf_counter() - start

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
        truncated=total > limit,
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


def _encode(tokenizer, text: str, pair: str | None, limit: int):
    """``(encoding, untruncated length)``: one pass, a second only when too long."""
    options = dict(
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
        return_tensors="pt",
        verbose=False,
    )
    encoding = tokenizer(text, pair, **options)
    total = int(encoding["input_ids"].shape[1])
    if total <= limit:
        return encoding, total
    strategy = "longest_first"
    if pair is not None:
        first = sum(1 for s in encoding.sequence_ids(0) if s == 0)
        if first + tokenizer.num_special_tokens_to_add(pair=True) < limit:
            strategy = "only_second"
    encoding = tokenizer(text, pair, truncation=strategy, max_length=limit, **options)
    return encoding, total


def _token_roles(encoding, tokenizer, ids: torch.Tensor):
    """``(special_mask, segment_ids, word_ids)``.

    A token is special when the tokenizer added it (``[CLS]``, ``<s>`` BOS, ``</s>``) or
    its id is one of the tokenizer's special ids (a ``<|endoftext|>`` typed in the text).
    Special tokens get segment -1 and word id None.
    """
    sequence_ids = encoding.sequence_ids(0)
    added = encoding["special_tokens_mask"][0].numpy().astype(bool)
    special_ids = np.fromiter(tokenizer.all_special_ids, dtype=np.int64)
    special = added | np.isin(ids[0].numpy(), special_ids)
    special |= np.fromiter((s is None for s in sequence_ids), dtype=bool, count=len(sequence_ids))
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


def _truncation_notice(facts, total: int, limit: int, pair: str | None) -> str:
    """The sentence that tells a person the input was cut."""
    what = "The text and its pair have" if pair is not None else "The text has"
    if limit < facts.max_positions:
        reader = f"the token limit is {limit}"
    else:
        reader = f"{facts.name} reads at most {limit}"
    shown = "only the first" if pair is None else "only"
    return f"{what} {total} tokens; {reader}, so {shown} {limit} are shown."


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
    """Teacher-forced decoder input: the target's ids shifted right by one start token."""
    tokenizer = loaded.tokenizer
    target = tokenizer(text_target=decoder_text, return_tensors="pt", verbose=False)["input_ids"]
    notice = None
    total = int(target.shape[1])
    if total > limit:
        target = tokenizer(
            text_target=decoder_text,
            return_tensors="pt",
            truncation=True,
            max_length=limit,
            verbose=False,
        )["input_ids"]
        notice = f"The decoder input has {total} tokens; only the first {limit} are used."
    start = torch.full((1, 1), _decoder_start_id(loaded.model), dtype=target.dtype)
    ids = torch.cat([start, target[:, :-1]], dim=1)
    tokens = tuple(tokenizer.convert_ids_to_tokens(ids[0].tolist()))
    special_ids = set(tokenizer.all_special_ids)
    special = [i in special_ids for i in ids[0].tolist()]
    return {
        "ids": ids,
        "input_ids": _read_only(ids[0].numpy().astype(np.int64, copy=False)),
        "tokens": tokens,
        "labels": display_labels(tokens, special),
        "notice": notice,
    }


def _stack(layers, name: str) -> np.ndarray:
    """Per-layer ``[1, H, T, T]`` tensors -> one read-only float32 ``[L, H, T, T]`` array.

    Exactly one copy, layer by layer into a fresh numpy array (measured about twice as
    fast as ``torch.cat`` on CPU); CPU float32 tensors are read in place.
    """
    if not layers or any(a is None for a in layers):
        raise ExtractionError(f"{name} returned no attention weights")
    first = layers[0]
    out = np.empty((len(layers), *first.shape[1:]), dtype=np.float32)
    for index, layer in enumerate(layers):
        out[index] = layer[0].detach().to("cpu", torch.float32).numpy()
    return _read_only(out)


def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array
