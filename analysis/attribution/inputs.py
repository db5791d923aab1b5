"""The tokens an attribution is over, from a text (pair) or from an analysed run.

``encode`` tokenizes exactly as :func:`analysis.attention.extract.extract` does (same
tokens, offsets, word ids, special tokens), so scores line up with the attention views;
``from_run`` reuses a run's tokens (a generation's prompt + generated ids included).
"""

from __future__ import annotations

import numpy as np

from analysis.attention.extract import (
    InputError,
    _checked_texts,
    _encode,
    _offsets,
    _token_limit,
    _token_roles,
)
from analysis.attribution.results import AttributionInput
from analysis.models.loading import LoadedModel
from analysis.run import ENCODER_DECODER, AttentionRun
from analysis.tokens import display_labels


def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def _one(loaded: LoadedModel, text: str, pair: str | None, limit: int) -> dict:
    tokenizer = loaded.tokenizer
    encoding, total = _encode(tokenizer, text, pair, limit)
    ids = encoding["input_ids"]
    tokens = tuple(tokenizer.convert_ids_to_tokens(ids[0].tolist()))
    special, segments, word_ids = _token_roles(encoding, tokenizer, ids)
    offsets = _offsets(encoding, special, segments, text, pair)
    types = encoding.get("token_type_ids")
    return {
        "ids": ids[0].numpy().astype(np.int64),
        "tokens": tokens,
        "special": np.asarray(special, dtype=bool),
        "segments": np.asarray(segments, dtype=np.int64),
        "word_ids": word_ids,
        "offsets": np.asarray(offsets, dtype=np.int64),
        "types": None if types is None else types[0].numpy().astype(np.int64),
        "truncated": total > limit,
    }


def encode(
    loaded: LoadedModel,
    text: str,
    pair: str | None = None,
    *,
    separate: bool = False,
    max_tokens: int | None = None,
) -> AttributionInput:
    """Tokenize ``text`` (and ``pair``) for an attribution.

    Parameters
    ----------
    loaded : LoadedModel
    text : str
    pair : str, optional
        Read with the text as one input (a question's context) unless ``separate``.
    separate : bool
        Encode ``pair`` as a second, separate input (the two texts of a similarity):
        ``sequence_ids`` is then 1 for its tokens and its segment 1.
    max_tokens : int, optional
        Truncate (each input) to this many tokens; the model's limit always applies.

    Returns
    -------
    AttributionInput

    Examples
    --------
    >>> from analysis.models.loading import load_model               # doctest: +SKIP
    >>> encode(load_model(), "A cat.", "A dog.", separate=True).sequence_ids  # doctest: +SKIP
    array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    """
    facts = loaded.facts
    if facts.architecture == ENCODER_DECODER:
        return _encode_seq2seq(loaded, text, pair, max_tokens)
    pair, _ = _checked_texts(facts, text, pair, None)
    if separate and pair is not None:
        limit = _token_limit(loaded, max_tokens, None)
        first = _one(loaded, text, None, limit)
        second = _one(loaded, pair, None, limit)
        second["segments"] = np.where(second["segments"] >= 0, 1, -1)
        parts = [first, second]
    else:
        limit = _token_limit(loaded, max_tokens, pair)
        parts = [_one(loaded, text, pair, limit)]
    cat = np.concatenate
    special = cat([p["special"] for p in parts])
    tokens = tuple(t for p in parts for t in p["tokens"])
    types = None if parts[0]["types"] is None else cat([p["types"] for p in parts])
    return AttributionInput(
        text=text,
        pair=pair,
        input_ids=_read_only(cat([p["ids"] for p in parts])),
        tokens=tokens,
        labels=display_labels(tokens, special),
        offsets=_read_only(cat([p["offsets"] for p in parts])),
        word_ids=tuple(w for p in parts for w in p["word_ids"]),
        special_mask=_read_only(special),
        segment_ids=_read_only(cat([p["segments"] for p in parts])),
        sequence_ids=_read_only(cat([np.full(len(p["ids"]), i, dtype=np.int64) for i, p in enumerate(parts)])),
        token_type_ids=None if types is None else _read_only(types),
        truncated=any(p["truncated"] for p in parts),
    )


def _encode_seq2seq(loaded: LoadedModel, text: str, pair: str | None, max_tokens: int | None) -> AttributionInput:
    """Encoder input = ``text``; decoder input = start token + ``pair`` (the prefix whose
    next token is the target), without a closing end token."""
    from analysis.attention.extract import _decoder_start_id

    _checked_texts(loaded.facts, text, None, None)
    limit = _token_limit(loaded, max_tokens, None)
    part = _one(loaded, text, None, limit)
    start = _decoder_start_id(loaded.model)
    prefix: list[int] = []
    if pair is not None and pair.strip():
        prefix = loaded.tokenizer(text_target=pair, add_special_tokens=False)["input_ids"]
    decoder = np.asarray([start, *prefix][:limit], dtype=np.int64)
    return AttributionInput(
        text=text,
        pair=pair if pair is not None and pair.strip() else None,
        input_ids=_read_only(part["ids"]),
        tokens=part["tokens"],
        labels=display_labels(part["tokens"], part["special"]),
        offsets=_read_only(part["offsets"]),
        word_ids=part["word_ids"],
        special_mask=_read_only(part["special"]),
        segment_ids=_read_only(part["segments"]),
        sequence_ids=_read_only(np.zeros(len(part["ids"]), dtype=np.int64)),
        token_type_ids=None,
        decoder_ids=_read_only(decoder),
        truncated=part["truncated"],
    )


def from_run(run: AttentionRun, loaded: LoadedModel | None = None) -> AttributionInput:
    """The tokens of an analysed run (its ``input_ids``, offsets, word ids, specials).

    For a generation run (``run.prompt_length`` set), tokens from ``prompt_length`` on
    are the generated ones. BERT-style token types are rebuilt from the segments (1 from
    the first pair token on). Encoder-decoder runs keep their decoder input.
    """
    segments = np.asarray(run.segment_ids, dtype=np.int64)
    types = None
    if loaded is not None and "token_type_ids" in getattr(loaded.tokenizer, "model_input_names", ()):
        types = np.zeros(len(segments), dtype=np.int64)
        second = np.flatnonzero(segments == 1)
        if second.size:
            types[second[0]:] = 1
    decoder = None
    if run.decoder_input_ids is not None:
        decoder = np.asarray(run.decoder_input_ids, dtype=np.int64)
    return AttributionInput(
        text=run.text,
        pair=run.pair,
        input_ids=np.asarray(run.input_ids, dtype=np.int64),
        tokens=tuple(run.tokens),
        labels=tuple(run.labels),
        offsets=np.asarray(run.offsets, dtype=np.int64),
        word_ids=tuple(run.word_ids),
        special_mask=np.asarray(run.special_mask, dtype=bool),
        segment_ids=segments,
        sequence_ids=np.zeros(len(segments), dtype=np.int64),
        token_type_ids=types,
        prompt_length=run.prompt_length,
        decoder_ids=decoder,
        truncated=run.truncated,
    )


def from_ids(
    loaded: LoadedModel,
    input_ids,
    *,
    prompt_length: int | None = None,
    text: str | None = None,
) -> AttributionInput:
    """Tokens given as ids (a prompt and its generation). Word ids and offsets come from
    re-tokenizing the decoded text when that gives the same ids back; otherwise every
    token is a word of its own and offsets are (0, 0)."""
    tokenizer = loaded.tokenizer
    ids = np.asarray(input_ids, dtype=np.int64).reshape(-1)
    if ids.size == 0:
        raise InputError("there are no tokens to attribute")
    tokens = tuple(tokenizer.convert_ids_to_tokens(ids.tolist()))
    from analysis.tokens import special_token_ids

    special_ids = special_token_ids(tokenizer)  # [UNK] is an ordinary token, as in the run
    special = np.array([int(i) in special_ids for i in ids], dtype=bool)
    decoded = tokenizer.decode(ids.tolist(), skip_special_tokens=False) if text is None else text
    word_ids: tuple[int | None, ...]
    offsets = np.zeros((ids.size, 2), dtype=np.int64)
    try:
        again = tokenizer(decoded, add_special_tokens=False, return_offsets_mapping=True)
        same = list(again["input_ids"]) == ids.tolist()
    except Exception:  # a tokenizer that cannot offset this text
        same = False
    if same:
        word_ids = tuple(None if s else w for w, s in zip(again.word_ids(), special, strict=True))
        for i, (a, b) in enumerate(again["offset_mapping"]):
            if not special[i]:
                piece = decoded[a:b]
                lead = len(piece) - len(piece.lstrip())
                inner = piece.strip()
                offsets[i] = (a + lead, a + lead + len(inner)) if inner else (a, b)
    else:
        counter = 0
        words = []
        for s in special:
            words.append(None if s else counter)
            counter += 0 if s else 1
        word_ids = tuple(words)
    segments = np.where(special, -1, 0).astype(np.int64)
    return AttributionInput(
        text=decoded,
        pair=None,
        input_ids=_read_only(ids.copy()),
        tokens=tokens,
        labels=display_labels(tokens, special),
        offsets=_read_only(offsets),
        word_ids=word_ids,
        special_mask=_read_only(special),
        segment_ids=_read_only(segments),
        sequence_ids=_read_only(np.zeros(ids.size, dtype=np.int64)),
        prompt_length=prompt_length,
    )
