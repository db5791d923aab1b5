"""Faithfulness of an importance vector: ERASER comprehensiveness and sufficiency, AOPC,
and rank agreement between methods.

For any importance over the input tokens (attribution scores, but also attention-based
importance computed elsewhere: a plain array), the top ``k`` tokens (``k = ceil(q * n)``,
at least 1, for the shares ``q`` in 1, 5, 10, 20, 50% of the ``n`` candidate tokens) are

- removed: *comprehensiveness* ``f(x) - f(x without them)`` (DeYoung et al. 2020): large
  when the tokens ranked important were needed;
- kept alone: *sufficiency* ``f(x) - f(only them)``: small when they suffice.

Removed tokens are replaced by the baseline (the padding token's embedding by default,
as the attribution methods do); special tokens are never removed. AOPC is the mean over
the bins (the area over the perturbation curve). ``f`` is the target's function
(log-probability by default), so the figures are in its units.

A similarity target (the cosine of two texts' mean-pooled embeddings, each text encoded on
its own) is scored over the tokens of both texts together: the top ``k`` of all their
candidate tokens are removed (or kept) wherever they are, each replaced by the baseline
token in its own text, and ``f`` is recomputed as the cosine of the two perturbed texts'
embeddings, each text again encoded on its own.

References
----------
DeYoung et al. (2020), "ERASER: A benchmark to evaluate rationalized NLP models".
Samek et al. (2017), "Evaluating the visualization of what a deep neural network has
learned" (AOPC).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from analysis.attribution.options import DEFAULT_BASELINE, FAITHFULNESS_BINS
from analysis.attribution.results import AttributionInput, FaithfulnessResult


def bin_counts(bins: Sequence[float], candidates: int) -> np.ndarray:
    """Tokens per bin: ``ceil(share * candidates)``, at least 1 and at most all."""
    return np.array([min(candidates, max(1, math.ceil(q * candidates - 1e-9))) for q in bins], dtype=np.int64)


def ranking(importance: np.ndarray, candidates: np.ndarray, by: str = "value") -> np.ndarray:
    """Candidate token indices from most to least important (ties: earlier token first).

    ``by="value"`` ranks signed scores (most positive first: the tokens that raise the
    target); ``by="abs"`` ranks magnitudes.
    """
    importance = np.asarray(importance, dtype=np.float64)
    index = np.flatnonzero(candidates)
    key = importance[index] if by == "value" else np.abs(importance[index])
    if by not in ("value", "abs"):
        raise ValueError(f"by must be 'value' or 'abs', not {by!r}")
    return index[np.lexsort((index, -key))]


def faithfulness_of_function(
    fn: Callable[[np.ndarray], np.ndarray],
    importance: np.ndarray,
    candidates: np.ndarray,
    *,
    bins: Sequence[float] = FAITHFULNESS_BINS,
    by: str = "value",
    removed_by: str = DEFAULT_BASELINE,
) -> FaithfulnessResult:
    """ERASER figures for any function of a keep-mask.

    Parameters
    ----------
    fn : callable
        ``fn(keep) -> values``: ``keep`` bool ``[b, T]`` (False = replaced), values ``[b]``.
    importance : float array [T]
    candidates : bool array [T]
        Tokens that may be removed (not special, finite importance).
    bins, by : see :func:`faithfulness`.

    Returns
    -------
    FaithfulnessResult

    Examples
    --------
    >>> import numpy as np
    >>> w = np.array([3.0, 1.0, 0.0, -1.0])                 # f = sum of kept weights
    >>> result = faithfulness_of_function(lambda keep: keep @ w, w, np.ones(4, bool), bins=(0.25, 0.5))
    >>> result.comprehensiveness.tolist(), result.sufficiency.tolist(), result.aopc_comprehensiveness
    ([3.0, 4.0], [0.0, -1.0], 3.5)
    """
    importance = np.asarray(importance, dtype=np.float64)
    candidates = np.asarray(candidates, dtype=bool) & np.isfinite(importance)
    total = importance.shape[0]
    bins_array = np.asarray(bins, dtype=np.float64)
    order = ranking(importance, candidates, by)
    n = order.size
    if n == 0:
        raise ValueError("there is no token that could be removed")
    counts = bin_counts(bins_array, n)
    masks = [np.ones(total, dtype=bool)]
    for k in counts:
        top = order[:k]
        without = np.ones(total, dtype=bool)
        without[top] = False
        only = ~candidates.copy()
        only[top] = True
        masks += [without, only]
    values = np.asarray(fn(np.stack(masks)), dtype=np.float64).reshape(-1)
    f_x = float(values[0])
    comp = f_x - values[1::2]
    suff = f_x - values[2::2]
    return FaithfulnessResult(
        bins=bins_array,
        counts=counts,
        comprehensiveness=comp,
        sufficiency=suff,
        aopc_comprehensiveness=float(comp.mean()),
        aopc_sufficiency=float(suff.mean()),
        f_x=f_x,
        removed_by=removed_by,
    )


def faithfulness(
    loaded,
    target,
    input_ids,
    importance,
    *,
    pair_ids=None,
    baseline: str = DEFAULT_BASELINE,
    bins: Sequence[float] = FAITHFULNESS_BINS,
    by: str = "value",
    row: int = 0,
    positions: np.ndarray | None = None,
    batch_size: int | None = None,
) -> FaithfulnessResult:
    """ERASER comprehensiveness, sufficiency and AOPC of ``importance`` for ``target``.

    Parameters
    ----------
    loaded : LoadedModel
    target : Target or TargetInfo
        What the importance explains. A target whose token was left to the model is
        resolved once, at the full input, and kept fixed while tokens are removed. A
        ``TargetInfo`` (``Attribution.target``) reuses the explained token, class or
        position; a generation row is ``Target("generation")`` with ``row``.
    input_ids : AttributionInput or int array [T]
        The tokens (an ``Attribution.inputs``, or ids: specials are recognised by id). A
        similarity's ``AttributionInput`` holds both texts (``sequence_ids`` 0 and 1).
    importance : float array [T]
        Any importance over those tokens (``Attribution.token_scores``, an attention row,
        a contribution matrix's row...). NaN marks a token that is not a candidate. For a
        similarity it covers both texts, the first text's tokens first.
    pair_ids : int array, optional
        A similarity given as ids: the second text's ids (``input_ids`` are then the first
        text's), each text encoded on its own with its special tokens.
    baseline : str
        What removed tokens become: ``pad`` (default), ``unk`` or ``zero`` embeddings.
    bins : shares of the candidate tokens (default 1, 5, 10, 20, 50%).
    by : ``"value"`` (default: most positive first) or ``"abs"``.
    row : which row of a generation target (default 0).

    Returns
    -------
    FaithfulnessResult

    Raises
    ------
    ValueError
        When ``importance`` has another length than the tokens, or no token can be removed.

    Examples
    --------
    >>> result = attribute(loaded, "The capital of France is", Target())       # doctest: +SKIP
    >>> faithfulness(loaded, result.target, result.inputs, result.token_scores)  # doctest: +SKIP
    >>> pair = attribute(minilm, "A cat sat.", Target("similarity"), pair="A dog sat.")  # doctest: +SKIP
    >>> faithfulness(minilm, pair.target, pair.inputs, pair.token_scores)        # doctest: +SKIP
    """
    from analysis.attribution.inputs import from_ids
    from analysis.attribution.results import TargetInfo
    from analysis.attribution.targets import Target, build_objective

    if isinstance(input_ids, AttributionInput):
        if pair_ids is not None:
            raise ValueError("pair_ids go with ids; an AttributionInput already holds both texts")
        inputs = input_ids
    elif pair_ids is not None:
        inputs = pair_from_ids(loaded, input_ids, pair_ids)
    else:
        inputs = from_ids(loaded, input_ids)
    if isinstance(target, TargetInfo):
        target = target_from_info(target)
    if not isinstance(target, Target):
        raise TypeError("target must be a Target or a TargetInfo")
    objective = build_objective(loaded, inputs, target, baseline=baseline, generated_positions=positions)
    return faithfulness_of_objective(objective, importance, row=row, bins=bins, by=by, batch_size=batch_size)


def faithfulness_of_objective(
    objective,
    importance,
    *,
    row: int = 0,
    bins: Sequence[float] = FAITHFULNESS_BINS,
    by: str = "value",
    batch_size: int | None = None,
) -> FaithfulnessResult:
    """:func:`faithfulness` of an already built objective (one objective serves many
    importance vectors of the same target).

    Parameters
    ----------
    objective : analysis.attribution.targets.Objective
        From :func:`analysis.attribution.targets.build_objective` (its baseline is what
        removed tokens become).
    importance : float array [T]
        Over the objective's tokens; NaN marks a token that is not a candidate.
    row : int
        The objective's row (a generation's generated token; 0 otherwise).
    bins, by, batch_size : see :func:`faithfulness`.

    Returns
    -------
    FaithfulnessResult
        With ``target`` the row's resolved target.

    Raises
    ------
    ValueError
        When ``importance`` has another length than the tokens, or no token can be removed.
    """
    from dataclasses import replace

    importance = np.asarray(importance, dtype=np.float64).reshape(-1)
    if importance.shape[0] != objective.num_tokens:
        raise ValueError(f"importance has {importance.shape[0]} values for {objective.num_tokens} tokens")
    candidates = faithfulness_candidates(objective, row) & np.isfinite(importance)
    fn = objective_mask_function(objective, row, batch_size)
    result = faithfulness_of_function(fn, importance, candidates, bins=bins, by=by,
                                      removed_by=objective.baseline_name)
    return replace(result, target=objective.infos[row])


def faithfulness_candidates(objective, row: int = 0) -> np.ndarray:
    """bool [T]: the tokens faithfulness may remove for ``row``: not special (nor kept
    like one) and a source of the row (causal models: not after its position)."""
    return ~np.asarray(objective.fixed, dtype=bool) & np.asarray(objective.sources[row], dtype=bool)


def objective_mask_function(objective, row: int = 0, batch_size: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """``fn(keep) -> values``: the objective's ``row`` at keep-masks ``[b, T]`` (False:
    the token takes the baseline), float64 ``[b]``, in batches under inference mode."""
    import torch

    size = batch_size or objective.batch_size(grad=False)

    def fn(keep: np.ndarray) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for start in range(0, keep.shape[0], size):
                part = torch.as_tensor(keep[start : start + size])
                out.append(objective(objective.at_masks(part), rows=[row])[:, row].double().cpu().numpy())
        return np.concatenate(out)

    return fn


def pair_from_ids(loaded, input_ids, pair_ids) -> AttributionInput:
    """Two texts given as ids, each encoded on its own (a similarity's input): the first
    text's tokens then the second's, ``sequence_ids`` 0 and 1.

    Examples
    --------
    >>> ids = loaded.tokenizer("A cat.")["input_ids"]                 # doctest: +SKIP
    >>> pair_from_ids(loaded, ids, loaded.tokenizer("A dog.")["input_ids"]).sequence_ids  # doctest: +SKIP
    array([0, 0, 0, 0, 1, 1, 1, 1])
    """
    from dataclasses import replace

    from analysis.attribution.inputs import from_ids

    first, second = from_ids(loaded, input_ids), from_ids(loaded, pair_ids)
    cat = np.concatenate
    segments = cat([first.segment_ids, np.where(np.asarray(second.segment_ids) >= 0, 1, -1)])
    return replace(
        first,
        pair=second.text,
        input_ids=cat([first.input_ids, second.input_ids]),
        tokens=first.tokens + second.tokens,
        labels=first.labels + second.labels,
        offsets=cat([first.offsets, second.offsets]),
        word_ids=first.word_ids + second.word_ids,
        special_mask=cat([first.special_mask, second.special_mask]),
        segment_ids=segments,
        sequence_ids=cat([np.zeros(first.num_tokens, np.int64), np.ones(second.num_tokens, np.int64)]),
        token_type_ids=None,
        prompt_length=None,
    )


def target_from_info(info) -> object:
    """The :class:`~analysis.attribution.targets.Target` that resolves to ``info`` again:
    the same token (and contrast), position, class or answer position, fixed, so the target
    no longer depends on what the model predicts for a perturbed input."""
    from analysis.attribution.targets import Target

    function = info.function if info.function != "cosine" else "log_prob"
    if info.kind == "generation":
        return Target("generation", function=function)
    if info.kind in ("next_token", "masked_token"):
        return Target(info.kind, token=info.token_id, contrast=info.contrast_id,
                      position=info.position, function=function)
    if info.kind == "class":
        return Target("class", label=info.label, function=function)
    if info.kind in ("qa_start", "qa_end"):
        return Target(info.kind, position=info.position, function=function)
    return Target(info.kind, function=function)


def rank_correlation(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Spearman's rank correlation of two importance vectors over the tokens in ``mask``
    (default: where both are finite); NaN when fewer than 2 tokens or a constant vector.

    Examples
    --------
    >>> rank_correlation(np.array([1.0, 2.0, 3.0]), np.array([10.0, 20.0, 40.0]))
    1.0
    """
    from scipy.stats import spearmanr

    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    keep = np.isfinite(a) & np.isfinite(b)
    if mask is not None:
        keep &= np.asarray(mask, dtype=bool)
    if keep.sum() < 2 or np.ptp(a[keep]) == 0 or np.ptp(b[keep]) == 0:
        return float("nan")
    return float(spearmanr(a[keep], b[keep]).statistic)


def method_agreement(scores: Mapping[str, np.ndarray], mask: np.ndarray | None = None) -> tuple[tuple[str, ...], np.ndarray]:
    """Spearman correlation between every pair of methods' scores over the same tokens.

    Returns ``(names, matrix)`` with ``matrix[i, j]`` the correlation of methods i and j.

    Examples
    --------
    >>> names, m = method_agreement({"a": np.array([1.0, 2, 3]), "b": np.array([3.0, 2, 1])})
    >>> names, m.tolist()
    (('a', 'b'), [[1.0, -1.0], [-1.0, 1.0]])
    """
    names = tuple(scores)
    matrix = np.eye(len(names))
    for i, first in enumerate(names):
        for j in range(i + 1, len(names)):
            value = rank_correlation(scores[first], scores[names[j]], mask)
            matrix[i, j] = matrix[j, i] = value
    return names, matrix
