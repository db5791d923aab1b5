"""Per-layer capacities *through* a source: what rollout, flow and the layered graph use.

Rollout (:func:`analysis.attention.rollout.attention_rollout`), attention flow
(:mod:`analysis.attention.flow`), the graph across layers
(:func:`analysis.graph.layered.layered_graph`) and its most probable route
(:func:`analysis.graph.paths.layered_route`) all live in one layered graph: node ``(l, t)``
is token ``t`` after ``l`` transformer layers, and edge ``(l + 1, i) -> (l, j)`` carries
``R_l[i, j]``, "how much of token ``i`` after layer ``l`` comes from token ``j`` before it".
``through`` says which per-layer matrices ``R_l`` are; every rule gives rows that are
distributions (ALTI and value zeroing rows that measured nothing stay all zero: dead ends):

- ``"attention"`` (the default, Abnar & Zuidema 2020): ``R_l = 0.5 * mean_h A_l + 0.5 * I``,
  rows renormalised. Raw attention leaves out the residual connection, so half of each
  token is taken to stay where it is.
- ``"value_norm"`` (Kobayashi et al. 2020): the same residual-augmented rule on the
  per-layer value-norm sums ``N_l[i, j] = ||sum_h alpha_ij^h f_h(x_j)||`` (rows
  normalised): ``R_l = 0.5 * N_l + 0.5 * I``, rows renormalised. Value norms weigh each
  attended token by the size of what it carries, but still measure the attention block
  without its residual, so the residual half is added as for attention.
- ``"alti"`` (Ferrando et al. 2022) and ``"value_zeroing"`` (Mohebbi et al. 2023): the
  per-layer matrices as they are (rows normalised, no identity added): both already
  include the residual (ALTI's ``T_i(x_i)`` term; value zeroing compares whole layer
  outputs). Their rollout is ``alti_rollout`` / ``value_zeroing_rollout`` of
  :func:`analysis.contributions.contributions_for_run`.

:func:`layer_capacities` reads them from a run (the contributions' per-layer arrays,
``run.contributions[LAYER_KEYS[through]]``, see :mod:`analysis.contributions`);
:func:`capacities_from` applies a rule to matrices at hand. The consumers take the result
as ``layers=`` and otherwise run exactly the code they run on attentions.
"""

from __future__ import annotations

import numpy as np

from analysis.attention.rollout import (
    checked_capacities,
    residual_augmented,
    residual_augmented_layers,
)
from analysis.contributions import LAYER_KEYS
from analysis.options import THROUGH_KINDS
from analysis.run import AttentionRun

__all__ = [
    "THROUGH_KINDS",
    "MissingContributions",
    "capacities_from",
    "checked_through",
    "layer_capacities",
    "missing_through",
]

_NAMES = {"value_norm": "value norm", "alti": "ALTI", "value_zeroing": "value zeroing"}


class MissingContributions(ValueError):
    """A view (or capacities) of a run whose contributions were not computed yet.

    ``kind`` is the contribution kind to compute (``"alti"``, ...); ``key`` the
    ``run.contributions`` entry that is missing (``"alti"`` for the ALTI view,
    ``"alti_layers"`` for anything through ALTI).
    """

    def __init__(self, kind: str, key: str | None = None) -> None:
        key = kind if key is None else key
        which = "per-layer " if key != kind else ""
        super().__init__(
            f"the {which}{kind.replace('_', ' ')} contributions of this run are not computed yet"
        )
        self.kind = kind
        self.key = key


def checked_through(through: str) -> str:
    """``through`` itself when it is one of :data:`THROUGH_KINDS`, else ``ValueError``."""
    if not isinstance(through, str) or through not in THROUGH_KINDS:
        raise ValueError(
            f"unknown source {through!r} to go through; choose one of {', '.join(THROUGH_KINDS)}"
        )
    return through


def capacities_from(through: str, matrices, *, upto_layer: int | None = None) -> np.ndarray:
    """The capacities ``R_0 .. R_upto`` of ``matrices`` under ``through``'s rule.

    Parameters
    ----------
    through : {"attention", "value_norm", "alti", "value_zeroing"}
        The rule (module docstring).
    matrices : array
        ``"attention"``: attentions ``[L, H, T, T]``; ``"value_norm"``: the per-layer
        value-norm sums ``[L, T, T]`` (``value_norm_sum``), rows normalised; ``"alti"`` /
        ``"value_zeroing"``: the per-layer matrices ``[L, T, T]`` (``alti``,
        ``value_zeroing``), rows normalised.
    upto_layer : int, optional
        The last layer wanted (0-based; default the last); only layers ``0..upto_layer`` are
        read and checked.

    Returns
    -------
    float64 array ``[upto_layer + 1, T, T]``; rows are distributions (ALTI and value zeroing
    rows that are all zero stay so).

    Raises
    ------
    ValueError
        Unknown ``through``, ``upto_layer`` out of range, or matrices of the wrong shape or
        with NaN, infinite or negative entries, or (ALTI, value zeroing, value norms) rows
        that are neither distributions nor all zero.

    Examples
    --------
    >>> alti = np.array([[[1.0, 0.0], [0.25, 0.75]]])
    >>> capacities_from("alti", alti)[0]
    array([[1.  , 0.  ],
           [0.25, 0.75]])
    >>> capacities_from("value_norm", np.array([[[0.0, 1.0], [1.0, 0.0]]]))[0]
    array([[0.5, 0.5],
           [0.5, 0.5]])
    """
    through = checked_through(through)
    array = np.asarray(matrices)
    count = int(array.shape[0]) if array.ndim >= 1 else 0
    last = count - 1 if upto_layer is None else upto_layer
    if isinstance(last, bool) or not (isinstance(last, int | np.integer) and 0 <= last < count):
        raise ValueError(f"layer must be a layer index in 0..{count - 1}, got {upto_layer!r}.")
    stop = int(last) + 1
    if through == "attention":
        return residual_augmented_layers(array[:stop])
    what = f"{_NAMES[through]} contributions"
    used = checked_capacities(array, what, check_layers=stop)[:stop]
    if through == "value_norm":
        return residual_augmented(used)
    return np.asarray(used, dtype=np.float64)


def missing_through(run: AttentionRun, through: str) -> str | None:
    """The ``run.contributions`` key that going ``through`` a source needs and ``run`` lacks
    (``"alti_layers"``, ...), or None (always None for ``"attention"``)."""
    through = checked_through(through)
    if through == "attention":
        return None
    key = LAYER_KEYS[through]
    return None if key in run.contributions else key


def layer_capacities(
    run: AttentionRun,
    through: str = "attention",
    *,
    upto_layer: int | None = None,
    stack: str = "self",
) -> np.ndarray:
    """Per-layer capacities of ``run`` through ``through``, for ``layers=`` of rollout,
    flow, :func:`~analysis.graph.layered.layered_graph` and
    :func:`~analysis.graph.paths.layered_route`.

    Parameters
    ----------
    run : AttentionRun
        For ``through != "attention"``, with the per-layer contributions in
        ``run.contributions`` (``"value_norm"``, ``"alti_layers"``,
        ``"value_zeroing_layers"``: :func:`analysis.contributions.run_contributions`).
    through : {"attention", "value_norm", "alti", "value_zeroing"}
        The source (module docstring states each rule).
    upto_layer : int, optional
        The last layer wanted (0-based, default the last): a flow or route at layer ``l``
        needs ``0..l`` only, and a long text's capacities are large (float64 ``L T^2``).
    stack : {"self", "decoder"}
        Whose attentions, for ``"attention"`` (an encoder-decoder's decoder self-attention);
        contributions exist for the self-attention stack only.

    Returns
    -------
    float64 array ``[upto_layer + 1, T, T]`` whose rows are distributions (or all zero).

    Raises
    ------
    MissingContributions
        The run lacks the per-layer arrays ``through`` needs (compute them first).
    ValueError
        Unknown ``through`` or ``stack``, a stack the run lacks, contributions through a
        stack other than ``"self"``, ``upto_layer`` out of range, bad values.

    Examples
    --------
    >>> capacities = layer_capacities(run, "alti", upto_layer=3)          # doctest: +SKIP
    >>> attention_flow(query=5, layer=3, layers=capacities)               # doctest: +SKIP
    """
    through = checked_through(through)
    if stack not in ("self", "decoder"):
        raise ValueError(
            f"capacities are defined for self-attention stacks ('self', 'decoder'), not {stack!r}"
        )
    if through == "attention":
        if stack == "decoder":
            if run.decoder_attentions is None:
                raise ValueError(
                    f"{run.model.name} has no decoder attention (it is not an encoder-decoder)"
                )
            return capacities_from("attention", run.decoder_attentions, upto_layer=upto_layer)
        return capacities_from("attention", run.attentions, upto_layer=upto_layer)
    if stack != "self":
        raise ValueError("contributions are computed for the self-attention stack only")
    missing = missing_through(run, through)
    if missing is not None:
        raise MissingContributions(through, missing)
    return capacities_from(through, run.contributions[LAYER_KEYS[through]], upto_layer=upto_layer)
