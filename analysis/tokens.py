"""Readable labels for tokens as tokenizers write them.

Tokenizers mark word starts and bytes in ways that confuse a reader: byte-level BPE
(GPT-2, RoBERTa, BART, Qwen) writes a leading space as ``Ġ``, a newline as ``Ċ`` and
every non-ASCII byte as some Latin letter (``’`` becomes ``âĢĻ``); SentencePiece
(T5, ALBERT, Llama) writes a leading space as ``▁`` and unknown bytes as ``<0x0A>``;
WordPiece (BERT) marks a word's continuation with ``##``. ``display_label`` undoes these
marks for display only; the run keeps the tokens as the tokenizer wrote them.
"""

from __future__ import annotations

import re
from functools import lru_cache

_METASPACE = "▁"
_CONTINUATION = "##"
_BYTE_FALLBACK = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")
_SPECIAL_LOOKING = re.compile(r"^(\[[A-Za-z_]+\]|<[^<>\s]+>|<\|[^<>|\s]+\|>)$")
_SHOWN_WHITESPACE = {"\n": "⏎", "\r": "⏎", "\t": "⇥"}
_SPACE = "␣"


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


def display_label(token: str, *, special: bool = False) -> str:
    """A readable label for one token: ``"Ġthe"`` -> ``"the"``, ``"##ing"`` -> ``"ing"``,
    ``"▁the"`` -> ``"the"``, ``"Ċ"`` -> ``"⏎"``, ``"âĢĻ"`` -> ``"’"``.

    Special tokens (``[CLS]``, ``<s>``, ``<|endoftext|>``; or any token with
    ``special=True``) are kept as written. A byte-level piece that is only part of a
    multi-byte character cannot be shown alone and is kept as written too.
    """
    byte = _BYTE_FALLBACK.match(token)
    if special or not token or (_SPECIAL_LOOKING.match(token) and not byte):
        return token
    if byte:
        value = int(byte.group(1), 16)
        return _show_whitespace(chr(value)) if value < 0x80 else token
    if token.startswith(_CONTINUATION) and len(token) > len(_CONTINUATION):
        return token[len(_CONTINUATION) :]
    if _METASPACE in token:
        return _show_whitespace(token.replace(_METASPACE, " "))
    if _is_byte_level(token):
        decoded = _decode_byte_level(token)
        return token if decoded is None else _show_whitespace(decoded)
    return _show_whitespace(token)


def display_labels(tokens, special_mask=None) -> tuple[str, ...]:
    """``display_label`` for each token; ``special_mask[i]`` keeps token ``i`` as written."""
    if special_mask is None:
        return tuple(display_label(t) for t in tokens)
    return tuple(
        display_label(t, special=bool(s)) for t, s in zip(tokens, special_mask, strict=True)
    )
