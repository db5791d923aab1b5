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
:func:`contributions_for_run` does it all for an :class:`~analysis.run.AttentionRun`;
:func:`run_contributions` picks what a run keeps of it (``run.contributions``):

- ``"value_norm"``: ``[L, T, T]`` per layer, rows normalised (``value_norm_sum``);
- ``"alti"``: ``[L, T, T]`` rolled out to each layer (``alti_rollout``);
  ``"alti_layers"``: ``[L, T, T]`` per layer (``alti``);
- ``"value_zeroing"``: rolled out (``value_zeroing_rollout``); ``"value_zeroing_layers"``:
  per layer (``value_zeroing``).

The kind's own key is what its view shows (:data:`VIEW_ARRAYS`); :data:`LAYER_KEYS` names
the per-layer matrices rollout, flow, the graph across layers and its route go *through*
(:mod:`analysis.attention.capacities`). Value norms are per layer already, so one array
serves both.

Implemented for BERT-like encoders (BERT, RoBERTa, DistilBERT, ALBERT, ELECTRA, MiniLM),
GPT-2 and Llama/Mistral/Qwen-style decoders; encoder-decoders raise ``ValueError``.

Importing this package imports neither torch nor Qt: the functions load on first use
(torch is imported then), so a window can import the names it needs cheaply.
"""

from __future__ import annotations

import importlib

KINDS = ("value_norm", "alti", "value_zeroing")
# contributions_for_run key whose array a kind's view shows (stored as run.contributions[kind])
VIEW_ARRAYS = {"value_norm": "value_norm_sum", "alti": "alti_rollout", "value_zeroing": "value_zeroing_rollout"}
# run.contributions key of a kind's per-layer matrices, and the contributions_for_run key they come from
LAYER_KEYS = {"value_norm": "value_norm", "alti": "alti_layers", "value_zeroing": "value_zeroing_layers"}
LAYER_ARRAYS = {"value_norm": "value_norm_sum", "alti": "alti", "value_zeroing": "value_zeroing"}
# every key a run's contributions may hold (what session files save and read back)
RUN_KEYS = tuple(dict.fromkeys(key for kind in KINDS for key in (kind, LAYER_KEYS[kind])))

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

__all__ = ["KINDS", "LAYER_ARRAYS", "LAYER_KEYS", "RUN_KEYS", "VIEW_ARRAYS", "run_contributions", *_LAZY]


def run_contributions(arrays: dict) -> dict:
    """What a run keeps (``run.contributions``) of :func:`contributions_for_run`'s output.

    Parameters
    ----------
    arrays : dict of str to ndarray
        As :func:`contributions_for_run` returns them (any subset of the kinds).

    Returns
    -------
    dict of str to ndarray
        For each kind computed, its view array under the kind's name (``"alti"``: the
        rollout to each layer) and its per-layer matrices under :data:`LAYER_KEYS`
        (``"alti_layers"``), the same arrays, not copies.

    Examples
    --------
    >>> import numpy as np
    >>> out = {"alti": np.eye(2)[None], "alti_rollout": np.eye(2)[None]}
    >>> sorted(run_contributions(out))
    ['alti', 'alti_layers']
    """
    kept = {}
    for kind in KINDS:
        if VIEW_ARRAYS[kind] in arrays and LAYER_ARRAYS[kind] in arrays:
            kept[kind] = arrays[VIEW_ARRAYS[kind]]
            kept[LAYER_KEYS[kind]] = arrays[LAYER_ARRAYS[kind]]
    return kept


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
