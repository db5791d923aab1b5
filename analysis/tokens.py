"""Readable labels for tokens as tokenizers write them.

Tokenizers mark word starts and bytes in ways that confuse a reader: byte-level BPE
(GPT-2, RoBERTa, BART, Qwen) writes a leading space as ``Ġ``, a newline as ``Ċ`` and
every non-ASCII byte as some Latin letter (``’`` becomes ``âĢĻ``); SentencePiece
(T5, ALBERT, Llama) writes a leading space as ``▁`` and unknown bytes as ``<0x0A>``;
WordPiece (BERT) marks a word's continuation with ``##``. ``display_label`` turns these
marks into readable text for display only; the run keeps the tokens as the tokenizer
wrote them.

**Word pieces stay visible.** A label that starts with ``##`` is a piece that continues
the word of the token before it, whatever the tokenizer:

- WordPiece writes ``##`` itself: ``"##ing"`` stays ``"##ing"``.
- Byte-level BPE and SentencePiece mark word *starts* instead (``Ġthe``, ``▁the``): the
  marker is dropped (``"the"``) and a piece that continues a word gets ``##`` in front.
  :func:`display_labels` decides which pieces continue a word from the whole sequence:
  with ``word_ids`` (as the tokenizer gives them), a token continues a word when it has
  the same (segment, word) as the token before it; without them, when it has no word-start
  marker and it joins the token before it letter to letter (the previous token's text
  ends with a letter or digit and this one's begins with one; ``"Token" "ization"`` ->
  ``"Token" "##ization"``; ``"Ġworld" ","`` -> ``"world" ","``). In both cases a piece that
  begins with punctuation or a space is never marked, and only sequences that use
  word-start markers are marked this way (WordPiece's ``##`` are its own).
- Special tokens (``[CLS]``, ``<s>``, ``<|endoftext|>``) are kept as written; so is a
  byte-level piece that is only part of a multi-byte character (``"âĢ"``).

**The unknown token is an ordinary token.** ``[UNK]`` (WordPiece) or ``<unk>`` (Unigram),
which a tokenizer gives to text outside its vocabulary (an emoji for MiniLM), stands for
that text: it has its character span, word and segment, and "Hide specials" keeps it. Its
label is written as the tokenizer writes it. :func:`unknown_token_id` tells it apart from
an unknown token that is really a delimiter (GPT-2's and SmolLM2's ``<|endoftext|>`` is
named ``unk_token`` too, but the byte-level model never produces it); such a token stays
special. :func:`special_token_ids` is the set of special ids without it.

Merged words in views (``analysis.attention.views.group_label``) read as the word itself,
taken from the text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

_METASPACE = "▁"
_BYTE_LEVEL_SPACE = "Ġ"
_CONTINUATION = "##"
CONTINUATION_MARK = _CONTINUATION  # what a label of a word-continuing piece starts with
_BYTE_FALLBACK = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")
_SPECIAL_LOOKING = re.compile(r"^(\[[A-Za-z_]+\]|<[^<>\s]+>|<\|[^<>|\s]+\|>)$")
_SHOWN_WHITESPACE = {"\n": "⏎", "\r": "⏎", "\t": "⇥"}
_SPACE = "␣"
# A private-use character that no vocabulary holds: what a tokenizer's model gives for it
# is its unknown token, or nothing (byte-level BPE, byte fallback) when it has none.
_OUTSIDE_EVERY_VOCABULARY = "\U0010fffd"
# Roles whose token is a delimiter: an unknown token shared with one of them stays special.
_DELIMITER_ROLES = ("bos_token_id", "eos_token_id", "cls_token_id", "sep_token_id", "mask_token_id")


def unknown_token_id(tokenizer) -> int | None:
    """The id of the token ``tokenizer`` gives to text outside its vocabulary, or None.

    Parameters
    ----------
    tokenizer : transformers fast tokenizer
        One with a Rust ``backend_tokenizer``.

    Returns
    -------
    int or None
        ``tokenizer.unk_token_id`` when the tokenizer's model really produces it for an
        unknown character and it is not also a delimiter (``bos``, ``eos``, ``cls``,
        ``sep`` or ``mask``); else None (byte-level BPE and byte-fallback tokenizers have
        no unknown text; GPT-2's ``unk_token`` is its ``<|endoftext|>``).

    Examples
    --------
    >>> from analysis.models.loading import load_model          # doctest: +SKIP
    >>> unknown_token_id(load_model("minilm").tokenizer)        # doctest: +SKIP
    100
    >>> unknown_token_id(load_model("smollm2").tokenizer) is None  # doctest: +SKIP
    True
    """
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is None:
        return None
    unk = int(unk)
    if any(getattr(tokenizer, role, None) == unk for role in _DELIMITER_ROLES):
        return None
    model = getattr(getattr(tokenizer, "backend_tokenizer", None), "model", None)
    try:
        produced = {int(token.id) for token in model.tokenize(_OUTSIDE_EVERY_VOCABULARY)}
    except Exception:  # no Rust model, or one that cannot tokenize alone: keep it special
        return None
    return unk if unk in produced else None


def special_token_ids(tokenizer) -> frozenset[int]:
    """Ids of every special token of ``tokenizer`` except its unknown token.

    The named ones (``all_special_ids``: ``[CLS]``, ``</s>``, ...) and the added tokens
    marked special (``<|im_start|>``), less :func:`unknown_token_id`, which is an ordinary
    token (see the module doc).

    Examples
    --------
    >>> from analysis.models.loading import load_model              # doctest: +SKIP
    >>> sorted(special_token_ids(load_model("minilm").tokenizer))   # doctest: +SKIP
    [0, 101, 102, 103]
    """
    ids = {int(i) for i in tokenizer.all_special_ids}
    added = getattr(tokenizer, "added_tokens_decoder", None) or {}
    ids |= {int(i) for i, token in added.items() if getattr(token, "special", False)}
    ids.discard(unknown_token_id(tokenizer))
    return frozenset(ids)


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """The inverse of GPT-2's ``bytes_to_unicode``: visible character -> byte value."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


def _is_byte_level(token: str) -> bool:
    """True when ``token`` uses byte-level BPE's stand-ins (``Ġ``, ``Ċ``, ``Ģ``, ...).

    Those stand-ins are the characters U+0100..U+0143, which byte-level BPE uses for bytes
    that are not printable Latin-1; ordinary text tokens rarely contain them.
    """
    return any("\u0100" <= ch <= "\u0143" for ch in token)


def _decode_byte_level(token: str) -> str | None:
    """The text a byte-level token stands for, or None when its bytes are not whole UTF-8."""
    decoder = _byte_decoder()
    try:
        raw = bytes(decoder[ch] for ch in token)
        return raw.decode("utf-8")
    except (KeyError, UnicodeDecodeError):
        return None


def _show_whitespace(text: str) -> str:
    """Leading word-start spaces dropped; newlines and tabs drawn; blank tokens as ``␣``."""
    stripped = text.lstrip(" ")
    if not stripped:
        return _SPACE * max(1, len(text))
    return "".join(_SHOWN_WHITESPACE.get(ch, ch) for ch in stripped)


def _is_kept(token: str, special: bool) -> bool:
    """Special tokens and the like are shown exactly as written."""
    return (
        special
        or not token
        or bool(_SPECIAL_LOOKING.match(token) and not _BYTE_FALLBACK.match(token))
    )


def _text_of(token: str, byte_level: bool = False) -> tuple[str | None, bool]:
    """``(the text a non-special token stands for, whether it has a word-start marker)``.

    The text is None when the token cannot be shown as text (part of a character).
    WordPiece tokens are returned as written (``##`` included). ``byte_level``: the token
    comes from a byte-level BPE sequence, so even a token without ``Ġ``-like stand-ins
    (``"Ã©"``) is decoded from bytes.
    """
    if byte_level and all(ch in _byte_decoder() for ch in token):
        return _decode_byte_level(token), token.startswith(_BYTE_LEVEL_SPACE)
    byte = _BYTE_FALLBACK.match(token)
    if byte:
        value = int(byte.group(1), 16)
        return (chr(value) if value < 0x80 else None), False
    if token.startswith(_CONTINUATION):
        return token, False
    if _METASPACE in token:
        return token.replace(_METASPACE, " "), token.startswith(_METASPACE)
    if _is_byte_level(token):
        return _decode_byte_level(token), token.startswith(_BYTE_LEVEL_SPACE)
    return token, False


def display_label(
    token: str, *, special: bool = False, continuation: bool = False, byte_level: bool = False
) -> str:
    """A readable label for one token: ``"Ġthe"`` -> ``"the"``, ``"##ing"`` -> ``"##ing"``,
    ``"▁the"`` -> ``"the"``, ``"Ċ"`` -> ``"⏎"``, ``"âĢĻ"`` -> ``"’"``.

    ``continuation=True`` says the token continues the word of the token before it (see
    :func:`display_labels`, which works it out): a piece without ``##`` then gets it in
    front (``display_label("ization", continuation=True)`` -> ``"##ization"``), unless it
    begins with punctuation or a space.

    Special tokens (``[CLS]``, ``<s>``, ``<|endoftext|>``; or any token with
    ``special=True``) are kept as written. A byte-level piece that is only part of a
    multi-byte character cannot be shown alone and is kept as written too. ``byte_level``
    says the token comes from a byte-level BPE sequence (``display_labels`` sees it), so
    that a piece like ``"Ã©"`` is decoded (``"é"``) too.
    """
    if _is_kept(token, special):
        return token
    text, _ = _text_of(token, byte_level)
    if text is None:
        return token
    if text.startswith(_CONTINUATION):  # WordPiece's own mark (or a text of '#'s): as written
        return text
    label = _show_whitespace(text)
    if continuation and _joins_on_the_left(text):
        return _CONTINUATION + label
    return label


def _joins_on_the_left(text: str) -> bool:
    return bool(text) and text[0].isalnum()


def _joins_on_the_right(text: str) -> bool:
    return bool(text) and text[-1].isalnum()


def _is_byte_level_sequence(tokens: Sequence[str], special: Sequence[bool]) -> bool:
    return any(not s and _is_byte_level(t) for t, s in zip(tokens, special, strict=True))


def continuation_mask(
    tokens: Sequence[str],
    special_mask=None,
    *,
    word_ids: Sequence[int | None] | None = None,
    segment_ids=None,
) -> list[bool]:
    """For each token: does it continue the word of the token before it (see module doc)?

    WordPiece ``##`` pieces always do. Tokens of a sequence without word-start markers
    (``Ġ``, ``▁``) otherwise never do, since such tokenizers mark continuations themselves.
    """
    n = len(tokens)
    special = [False] * n if special_mask is None else [bool(s) for s in special_mask]
    if len(special) != n:
        raise ValueError(f"{len(special)} special marks for {n} tokens")
    byte_level = _is_byte_level_sequence(tokens, special)
    texts = [
        None if _is_kept(t, s) else _text_of(t, byte_level)
        for t, s in zip(tokens, special, strict=True)
    ]
    marked = byte_level or any(
        entry is not None and _METASPACE in tokens[i] for i, entry in enumerate(texts)
    )
    result = [False] * n
    for i, entry in enumerate(texts):
        if entry is None or entry[0] is None:
            continue
        text, starts_word = entry
        if text.startswith(_CONTINUATION) and len(text) > len(_CONTINUATION) and not marked:
            result[i] = True  # WordPiece
            continue
        if not marked or starts_word or i == 0 or texts[i - 1] is None:
            continue
        if word_ids is not None:
            same_segment = segment_ids is None or int(segment_ids[i]) == int(segment_ids[i - 1])
            result[i] = (
                word_ids[i] is not None
                and word_ids[i] == word_ids[i - 1]
                and same_segment
                and _joins_on_the_left(text)
            )
        else:
            previous = texts[i - 1][0]
            result[i] = (
                previous is not None and _joins_on_the_right(previous) and _joins_on_the_left(text)
            )
    return result


def display_labels(
    tokens,
    special_mask=None,
    *,
    word_ids: Sequence[int | None] | None = None,
    segment_ids=None,
) -> tuple[str, ...]:
    """``display_label`` for each token of a sequence, with pieces that continue a word
    marked ``##`` (see the module doc); ``special_mask[i]`` keeps token ``i`` as written.

    ``word_ids`` (and ``segment_ids`` for a pair), as the tokenizer gives them, decide
    which byte-level / SentencePiece pieces continue a word; without them the letters on
    either side of the join decide.
    """
    tokens = list(tokens)
    special = [False] * len(tokens) if special_mask is None else [bool(s) for s in special_mask]
    if len(special) != len(tokens):
        raise ValueError(f"{len(special)} special marks for {len(tokens)} tokens")
    continues = continuation_mask(tokens, special, word_ids=word_ids, segment_ids=segment_ids)
    byte_level = _is_byte_level_sequence(tokens, special)
    return tuple(
        display_label(t, special=s, continuation=c, byte_level=byte_level)
        for t, s, c in zip(tokens, special, continues, strict=True)
    )
