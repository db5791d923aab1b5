"""Contributions beyond raw attention: value-weighted attention, ALTI, value zeroing.

Views beside attention that also count what the attended tokens carry and the residual:

- :func:`value_norms` (Kobayashi et al. 2020): ``||alpha_ij f_h(x_j)||`` per head and
  ``||sum_h alpha_ij^h f_h(x_j)||`` per layer, ``f_h(x) = (x W_V^h + b_V^h) W_O^h``;
- :func:`alti` (Ferrando et al. 2022): each token's share of the attention block's
  output, residual and (post-norm) layer norm included;
- :func:`value_zeroing` (Mohebbi et al. 2023): how far each token's layer output moves
  when one token's values are zeroed (costs about ``T`` forward passes; cancellable).

All read one :func:`capture_layers` pass (one forward with read-only hooks), or the pass an
extraction makes anyway, recorded by :func:`record_layers` around it. Per-layer
matrices are ``[i, j]`` = how much token ``j`` contributes to token ``i`` (rows: queries),
rows normalised to distributions, combined across layers by :func:`rollout_layers`.
:func:`contributions_for_run` does it all for an :class:`~analysis.run.AttentionRun`.

Implemented for BERT-like encoders (BERT, RoBERTa, DistilBERT, ALBERT, ELECTRA, MiniLM),
GPT-2 and Llama/Mistral/Qwen-style decoders; encoder-decoders raise ``ValueError``.

Importing this package imports neither torch nor Qt: the functions load on first use
(torch is imported then), so a window can import the names it needs cheaply.
"""

from __future__ import annotations

import importlib

KINDS = ("value_norm", "alti", "value_zeroing")

_LAZY = {
    "LayerCapture": "capture",
    "capture_layers": "capture",
    "record_layers": "capture",
    "LayerRecorder": "capture",
    "value_norms": "measures",
    "alti": "measures",
    "alti_terms": "measures",
    "head_vectors": "measures",
    "value_zeroing": "zeroing",
    "contributions_for_run": "compute",
    "token_type_ids_of": "compute",
    "normalise_rows": "combine",
    "rollout_layers": "combine",
    "contribution_rollout": "combine",
}

__all__ = ["KINDS", *_LAZY]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
