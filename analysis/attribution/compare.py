"""One comparison of explanations of one target: attribution methods, attention and
contributions, each scored for faithfulness on the same input.

:func:`compare_explanations` explains one target of an analysed run in several ways and
scores every explanation the same way, so a person sees on *their* input which one to
trust:

- the attribution methods (``analysis.attribution.options.METHODS``: saliency, Input x
  Gradient, Integrated Gradients, occlusion, LIME, KernelSHAP), each an
  :class:`~analysis.attribution.results.Attribution` of the target;
- the attention- and contribution-based importance of the *target position* (the position
  whose output the target reads), the views ``VIEWS``: the last layer's mean attention row,
  the attention rollout row, the attention flow from that position into each input token,
  the last layer's value norms row, the ALTI rollout row and the value zeroing rollout row
  (value zeroing costs about ``T`` layer passes, so it is asked for explicitly).

Each explanation gets ERASER comprehensiveness and sufficiency per bin and their AOPC
(:mod:`analysis.attribution.faithfulness`, one objective for all of them, the same
baseline token for removed tokens) and Spearman's rank correlation with the reference
explanation (the chosen method), both over the tokens faithfulness may remove (not special,
sources of the target).

The target position
-------------------
- next token of a causal LM: the position whose next token is explained (the last one by
  default);
- a generated token ``k`` of a generation (``Target("generation")``, ``row=k``): the position
  that predicted it (the token just before it); the comparison explains it as the next token
  of that position, which is the same function of the same tokens;
- masked token: the mask's position; question answering: the answer position whose start
  or end logit is read;
- class of a sequence-classification head: the first token (``[CLS]``, ``<s>``), which the
  BERT-like encoders' classification heads read;
- similarity (the cosine of the two texts' mean-pooled embeddings): each text is encoded on
  its own, as the model embeds it, so each text is extracted on its own (the run's joint
  pair encoding is not what the model compares); the embedding is the mean over the text's
  positions, so a view's importance is the mean of every position's row (of the text's own
  matrices), the two texts' importances side by side.

Encoder-decoder models read the target in the decoder: there the views are skipped (with a
reason in ``Comparison.skipped``) and only the attribution methods are compared.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from analysis.attribution.faithfulness import (
    faithfulness_candidates,
    faithfulness_of_objective,
    rank_correlation,
    target_from_info,
)
from analysis.attribution.options import (
    DEFAULT_BASELINE,
    DEFAULT_MAX_STEPS,
    DEFAULT_SAMPLES,
    DEFAULT_STEPS,
    DEFAULT_TOLERANCE,
    FAITHFULNESS_BINS,
    METHOD_DESCRIPTIONS,
    METHOD_ITEMS,
    METHODS,
)
from analysis.attribution.results import (
    Attribution,
    AttributionInput,
    FaithfulnessResult,
    TargetInfo,
)
from analysis.progress import CancelCheck, ProgressCallback, raise_if_cancelled, report_progress

#: The attention- and contribution-based views: (key, label, what the numbers are).
VIEW_ITEMS: tuple[tuple[str, str, str], ...] = (
    ("attention", "attention (last layer)",
     "The target position's attention row in the last layer, averaged over the heads: where "
     "that position looks, not how much of each token reaches it."),
    ("rollout", "attention rollout",
     "The target position's row of attention rollout through every layer (0.5 * mean "
     "attention + 0.5 * I per layer, multiplied through; Abnar & Zuidema 2020)."),
    ("flow", "attention flow",
     "Maximum flow from the target position at the last layer into each input token through "
     "the residual-augmented attention graph (Abnar & Zuidema 2020)."),
    ("value_norm", "value norms (last layer)",
     "The target position's row of the last layer's ||sum_h alpha_ij f_h(x_j)||, rows "
     "normalised: attention weighted by the size of what each token sends (Kobayashi et "
     "al. 2020)."),
    ("alti", "ALTI",
     "Each input token's share of the target position's last-layer representation, residual "
     "and layer norms included, rolled out through every layer (Ferrando et al. 2022)."),
    ("value_zeroing", "value zeroing",
     "How far the target position's representations move when a token's value vectors are "
     "zeroed, rolled out through every layer (Mohebbi et al. 2023); slow: about one layer "
     "pass per token."),
)
VIEWS: tuple[str, ...] = tuple(key for key, _, _ in VIEW_ITEMS)
#: The views compared unless others are asked for (value zeroing is slow: opt-in).
DEFAULT_VIEWS: tuple[str, ...] = ("attention", "rollout", "flow", "value_norm", "alti")
#: The attribution methods compared unless others are asked for.
DEFAULT_METHODS: tuple[str, ...] = ("integrated_gradients", "input_x_gradient", "occlusion")

_VIEW_LABELS = {key: label for key, label, _ in VIEW_ITEMS}
_VIEW_DESCRIPTIONS = {key: text for key, _, text in VIEW_ITEMS}
_METHOD_LABELS = {key: label for key, label, _ in METHOD_ITEMS}
# view -> (contribution kind, the array of contributions_for_run that the view reads)
_CONTRIBUTION_OF_VIEW = {
    "value_norm": ("value_norm", "value_norm_sum"),
    "alti": ("alti", "alti_rollout"),
    "value_zeroing": ("value_zeroing", "value_zeroing_rollout"),
}
_MEAN_NOTE = " For a similarity: the mean of every position's row (the embedding is their mean), per text."


@dataclass(frozen=True)
class Explanation:
    """One explanation of the target, scored.

    Attributes
    ----------
    name : str
        A method (``integrated_gradients``...), a view (``attention``, ``rollout``,
        ``flow``, ``value_norm``, ``alti``, ``value_zeroing``) or a given importance's name.
    label : str
        For display: ``Integrated Gradients``, ``attention (last layer)``...
    kind : str
        ``attribution``, ``attention``, ``contribution`` or ``given``.
    description : str
        One sentence: what the numbers are.
    importance : float64 [T]
        Over the comparison's input tokens; NaN for tokens that are no source of the
        target (after its position in a causal model). Special tokens keep their value but
        are never removed nor ranked. A word-level attribution gives each piece its word's
        score.
    faithfulness : FaithfulnessResult
        Comprehensiveness and sufficiency per bin and their AOPC, in the target's units.
    spearman : float
        Rank correlation with the reference explanation over the candidate tokens (NaN
        when either is constant there).
    attribution : Attribution or None
        The method's full result (f(x), f(baseline), delta, convergence...); None for views.
    seconds : float
        Computing the importance (contributions shared by several views count once, in the
        first); ``faithfulness_seconds`` scoring it.
    """

    name: str
    label: str
    kind: str
    description: str
    importance: np.ndarray
    faithfulness: FaithfulnessResult
    spearman: float
    attribution: Attribution | None = None
    seconds: float = 0.0
    faithfulness_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: NaN becomes None."""
        out: dict[str, Any] = {
            "name": self.name,
            "label": self.label,
            "kind": self.kind,
            "description": self.description,
            "importance": [_number(v) for v in self.importance],
            "faithfulness": self.faithfulness.as_dict(),
            "spearman": _number(self.spearman),
            "seconds": float(self.seconds),
            "faithfulness_seconds": float(self.faithfulness_seconds),
        }
        if self.attribution is not None:
            a = self.attribution
            out["attribution"] = {
                "method": a.method, "unit": a.unit, "f_x": _number(a.f_x), "f_baseline": _number(a.f_baseline),
                "delta": _number(a.delta), "converged": a.converged, "steps": a.steps, "samples": a.samples,
                "params": a.params,
            }
        return out


@dataclass(frozen=True)
class Comparison:
    """Explanations of one target over the same tokens, each scored for faithfulness.

    Attributes
    ----------
    target : TargetInfo
        What every explanation explains (resolved once: the same token, class, position).
    inputs : AttributionInput
        The tokens (a similarity's two texts, each encoded on its own, side by side).
    reference : str
        The explanation the Spearman correlations are with (the chosen method).
    position : int or None
        The target position the views read (index into ``inputs``); None for a similarity
        (the mean over each text's positions) and where views were skipped.
    position_note : str
        One sentence: which position the views read and why.
    explanations : tuple of Explanation
        In the order asked (methods, views, given importances), the reference first.
    skipped : dict of str to str
        Views that could not be computed for this model, with the reason.
    candidates : bool [T]
        The tokens faithfulness may remove (not special, sources of the target).
    baseline : str
        What removed tokens became (and Integrated Gradients' path start).
    bins : float64 [B]
    timings : dict of str to float
        Seconds: ``prepare``, ``contributions``, ``total``.

    Examples
    --------
    >>> comparison = compare_explanations(loaded, run, Target())          # doctest: +SKIP
    >>> comparison["alti"].faithfulness.aopc_comprehensiveness            # doctest: +SKIP
    >>> [e.name for e in comparison.ranked()]                             # doctest: +SKIP
    """

    target: TargetInfo
    inputs: AttributionInput
    reference: str
    position: int | None
    position_note: str
    explanations: tuple[Explanation, ...]
    skipped: dict[str, str] = field(default_factory=dict)
    candidates: np.ndarray | None = None
    baseline: str = DEFAULT_BASELINE
    bins: np.ndarray | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(e.name for e in self.explanations)

    def __getitem__(self, name: str) -> Explanation:
        for explanation in self.explanations:
            if explanation.name == name:
                return explanation
        raise KeyError(f"no explanation named {name!r}; the comparison has {', '.join(self.names)}")

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def ranked(self, by: str = "aopc_comprehensiveness") -> tuple[Explanation, ...]:
        """The explanations from most to least faithful: highest comprehensiveness AOPC
        first (``by="aopc_sufficiency"``: lowest sufficiency AOPC first)."""
        if by not in ("aopc_comprehensiveness", "aopc_sufficiency"):
            raise ValueError(f"by must be 'aopc_comprehensiveness' or 'aopc_sufficiency', not {by!r}")
        sign = -1.0 if by == "aopc_comprehensiveness" else 1.0
        return tuple(sorted(self.explanations, key=lambda e: sign * getattr(e.faithfulness, by)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (``json.dumps`` takes it as it is): NaN becomes None."""
        return {
            "target": asdict(self.target),
            "tokens": list(self.inputs.labels),
            "sequence_ids": [int(s) for s in self.inputs.sequence_ids],
            "candidates": [bool(c) for c in self.candidates] if self.candidates is not None else None,
            "reference": self.reference,
            "position": self.position,
            "position_note": self.position_note,
            "baseline": self.baseline,
            "bins": [float(b) for b in self.bins] if self.bins is not None else None,
            "explanations": [e.to_dict() for e in self.explanations],
            "skipped": dict(self.skipped),
            "timings": {k: float(v) for k, v in self.timings.items()},
        }


def _number(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


# --- what the views read ------------------------------------------------------------------


@dataclass
class _Part:
    """One model input whose matrices the views read: a run and the position read (None:
    the mean over its positions); a similarity has two, their tokens side by side."""

    run: Any
    position: int | None
    contributions: dict[str, np.ndarray] = field(default_factory=dict)

    def row(self, matrix: np.ndarray) -> np.ndarray:
        matrix = np.asarray(matrix, dtype=np.float64)
        return matrix.mean(axis=0) if self.position is None else matrix[self.position].copy()


def _stored_contribution(run, view: str) -> np.ndarray | None:
    """The run's own contribution array for ``view`` (``[L, T, T]``), if it has it: under
    the :func:`contributions_for_run` key (``value_norm_sum``, ``alti_rollout``,
    ``value_zeroing_rollout``), or, as the window keeps them, the view's array under the
    kind itself (``run.contributions["alti"]`` is then the ALTI rollout)."""
    kind, key = _CONTRIBUTION_OF_VIEW[view]
    stored = run.contributions or {}

    def fits(array) -> bool:
        return array is not None and np.ndim(array) == 3 and np.shape(array)[-1] == run.num_tokens

    if fits(stored.get(key)):
        return np.asarray(stored[key])
    # contributions_for_run returns the kind's key too (per layer, or [L, H, T, T] value
    # norms) only beside the view's key: alone, the kind's key holds the view's array
    if key not in stored and fits(stored.get(kind)):
        return np.asarray(stored[kind])
    return None


def _ensure_contributions(loaded, parts: list[_Part], views: Sequence[str], progress, cancelled) -> None:
    """Each part gains the contribution arrays the views need: the run's own when it has
    them, else computed by :func:`analysis.contributions.contributions_for_run`."""
    from analysis.contributions import contributions_for_run

    wanted = [v for v in views if v in _CONTRIBUTION_OF_VIEW]
    for index, part in enumerate(parts):
        missing = []
        for view in wanted:
            stored = _stored_contribution(part.run, view)
            if stored is None:
                missing.append(view)
            else:
                part.contributions[view] = stored
        if missing:
            def sub(fraction: float, index: int = index) -> None:
                report_progress(progress, (index + fraction) / len(parts))

            kinds = tuple(_CONTRIBUTION_OF_VIEW[v][0] for v in missing)
            arrays = contributions_for_run(loaded, part.run, kinds=kinds, progress=sub, cancelled=cancelled)
            for view in missing:
                part.contributions[view] = arrays[_CONTRIBUTION_OF_VIEW[view][1]]
        report_progress(progress, (index + 1) / len(parts))


def _view_importance(view: str, parts: list[_Part], progress, cancelled) -> np.ndarray:
    """The view's importance over the comparison's tokens: each part's row, side by side."""
    from analysis.attention.flow import attention_flow, attention_flow_matrix
    from analysis.attention.rollout import attention_rollout

    pieces = []
    for index, part in enumerate(parts):
        attentions = part.run.attentions

        def sub(fraction: float, index: int = index) -> None:
            report_progress(progress, (index + fraction) / len(parts))

        if view == "attention":
            pieces.append(part.row(np.asarray(attentions[-1], dtype=np.float64).mean(axis=0)))
        elif view == "rollout":
            pieces.append(part.row(attention_rollout(attentions)))
        elif view == "flow":
            if part.position is None:
                pieces.append(attention_flow_matrix(attentions, progress=sub, cancelled=cancelled).mean(axis=0))
            else:
                pieces.append(attention_flow(attentions, part.position, progress=sub, cancelled=cancelled))
        else:
            pieces.append(part.row(part.contributions[view][-1]))
        report_progress(progress, (index + 1) / len(parts))
    return np.concatenate(pieces)


# --- the comparison -------------------------------------------------------------------------


def _checked_names(methods, views, importances) -> tuple[list[str], list[str], dict[str, np.ndarray]]:
    from analysis.attention.extract import InputError

    methods = list(dict.fromkeys([methods] if isinstance(methods, str) else (methods or ())))
    views = list(dict.fromkeys([views] if isinstance(views, str) else (views or ())))
    for name in methods:
        if name not in METHODS:
            raise InputError(f"unknown method {name!r}; expected one of {', '.join(METHODS)}")
    for name in views:
        if name not in VIEWS:
            raise InputError(f"unknown view {name!r}; expected one of {', '.join(VIEWS)}")
    given = {str(k): np.asarray(v, dtype=np.float64).reshape(-1) for k, v in (importances or {}).items()}
    clash = sorted(set(given) & (set(methods) | set(views)))
    if clash:
        raise InputError(f"the given importance {clash[0]!r} has the name of a method or view: rename it")
    if not (methods or views or given):
        raise InputError("there is nothing to compare: ask for at least one method or view")
    return methods, views, given


def _resolved(loaded, run, target, row: int, baseline: str, max_tokens: int | None):
    """``(inputs, objective, concrete target, parts, position, note, skipped)``: the tokens,
    the target resolved once, and what the views read."""
    from analysis.attention.extract import InputError
    from analysis.attribution.inputs import encode, from_run
    from analysis.attribution.targets import Target, build_objective, needs_separate_pair
    from analysis.run import ENCODER_DECODER

    target = target or Target()
    generated = None
    if target.kind == "generation":
        if run.prompt_length is None:
            raise InputError("this run is not a generation: generate first, then compare the explanations of "
                             "its tokens")
        count = run.num_tokens - run.prompt_length
        if not 0 <= int(row) < count:
            raise InputError(f"the generation has {count} generated tokens: row must be in 0..{count - 1}, not {row}")
        generated = run.prompt_length + int(row)
        target = Target("next_token", token=int(run.input_ids[generated]), position=generated - 1,
                        function=target.function)
    separate = needs_separate_pair(loaded, target)
    if separate:
        if run.pair is None:
            raise InputError(f"{loaded.facts.name} compares two texts: give a second text (a pair) to compare the "
                             "text with")
        inputs = encode(loaded, run.text, run.pair, separate=True, max_tokens=max_tokens)
    else:
        inputs = from_run(run, loaded)
    objective = build_objective(loaded, inputs, target, baseline=baseline)
    info = objective.infos[0]
    concrete = target_from_info(info)
    skipped: dict[str, str] = {}
    if loaded.facts.architecture == ENCODER_DECODER:
        return inputs, objective, concrete, [], None, (
            "The target is read in the decoder: the attention and contribution views of the encoder "
            "are not compared."), skipped
    if info.kind == "similarity":
        from analysis.attention.extract import extract

        parts = [_Part(extract(loaded, text, max_tokens=max_tokens), None) for text in (inputs.text, inputs.pair)]
        ids = np.concatenate([p.run.input_ids for p in parts])
        if not np.array_equal(ids, inputs.input_ids):
            raise ValueError("the texts extracted on their own have other tokens than the similarity's input")
        return inputs, objective, concrete, parts, None, (
            "Similarity of mean-pooled embeddings: each text is extracted on its own, and a view's "
            "importance is the mean of every position's row of that text's matrices."), skipped
    if info.kind == "class":
        position, note = 0, "Class: the first token's row (the token a classification head reads)."
    elif generated is not None:
        position = generated - 1
        note = (f"Generated token {row} ({info.token!r}): the row of position {position} "
                f"({inputs.labels[position]!r}), which predicted it.")
    else:
        position = int(info.position)
        what = {"next_token": "Next token", "masked_token": "Masked token", "qa_start": "Answer start",
                "qa_end": "Answer end"}.get(info.kind, info.kind)
        note = f"{what}: the row of position {position} ({inputs.labels[position]!r}), whose output the target reads."
    if run.num_tokens != inputs.num_tokens:
        raise ValueError("the run's attentions cover other tokens than the attribution's input")
    return inputs, objective, concrete, [_Part(run, position)], position, note, skipped


def compare_explanations(
    loaded,
    run,
    target=None,
    *,
    methods: Sequence[str] = DEFAULT_METHODS,
    views: Sequence[str] = DEFAULT_VIEWS,
    importances: Mapping[str, np.ndarray] | None = None,
    reference: str | None = None,
    row: int = 0,
    baseline: str = DEFAULT_BASELINE,
    steps: int = DEFAULT_STEPS,
    adaptive: bool = False,
    tolerance: float = DEFAULT_TOLERANCE,
    max_steps: int = DEFAULT_MAX_STEPS,
    n_samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    words: bool = False,
    keep_first: bool = True,
    bins: Sequence[float] = FAITHFULNESS_BINS,
    max_tokens: int | None = None,
    batch_size: int | None = None,
    progress: ProgressCallback | None = None,
    cancelled: CancelCheck | None = None,
    on_step: Callable[[str], None] | None = None,
    on_explanation: Callable[[Explanation], None] | None = None,
) -> Comparison:
    """Explain one target of ``run`` by attribution methods, attention and contributions,
    and score every explanation's faithfulness on this input.

    Parameters
    ----------
    loaded : LoadedModel
        The model the run was made with.
    run : AttentionRun
        From :func:`analysis.attention.extract.extract` (or a generation's run). Its
        contributions (``run.contributions``) are reused when present.
    target : Target, optional
        What to explain (default ``Target()``: what the model does). Resolved once (the
        predicted token, class or answer position) and kept for every explanation. A
        ``Target("generation")`` explains generated token ``row``.
    methods : sequence of str
        Attribution methods (default Integrated Gradients, Input x Gradient, occlusion).
    views : sequence of str
        Of ``VIEWS`` (default all but ``value_zeroing``, which costs about ``T`` layer
        passes).
    importances : mapping of str to float array [T], optional
        Other importance vectors over the comparison's tokens, scored beside the others
        (kind ``given``).
    reference : str, optional
        The explanation the Spearman correlations are with; default the first method
        (else the first view).
    row : int
        A generation target's generated token (0 = the first generated one).
    baseline, steps, adaptive, tolerance, max_steps, n_samples, seed, words, keep_first :
        As for :func:`analysis.attribution.methods.attribute`; ``baseline`` is also what
        faithfulness puts in place of removed tokens.
    bins : shares of the candidate tokens removed / kept (default 1, 5, 10, 20, 50%).
    max_tokens : int, optional
        A similarity's texts are each truncated to this many tokens.
    progress : callable, optional
        ``progress(fraction)`` over the whole comparison.
    cancelled : callable, optional
        Checked between explanations and inside the long ones; True raises
        :class:`analysis.progress.Cancelled`.
    on_step : callable, optional
        ``on_step(sentence)`` before each step ("Attributing with Integrated Gradients…").
    on_explanation : callable, optional
        ``on_explanation(explanation)`` as each explanation is done (partial results).

    Returns
    -------
    Comparison

    Raises
    ------
    InputError
        Unknown methods or views, a target the model cannot do, a similarity without a
        second text, a generation row out of range (one line each).
    Cancelled
        When ``cancelled()`` returned True.

    Examples
    --------
    >>> from analysis.attention.extract import extract                                # doctest: +SKIP
    >>> loaded = load_model("smollm2")                                                  # doctest: +SKIP
    >>> run = extract(loaded, "The capital of France is")                               # doctest: +SKIP
    >>> comparison = compare_explanations(loaded, run, Target(), views=(*DEFAULT_VIEWS, "value_zeroing"))  # doctest: +SKIP
    >>> for e in comparison.ranked():                                                   # doctest: +SKIP
    ...     print(f"{e.label:<24} {e.faithfulness.aopc_comprehensiveness:6.2f} {e.spearman:5.2f}")

    References
    ----------
    DeYoung et al. (2020), "ERASER: A benchmark to evaluate rationalized NLP models".
    Abnar & Zuidema (2020), "Quantifying attention flow in transformers".
    Kobayashi et al. (2020), "Attention is not only a weight"; Ferrando et al. (2022),
    "Measuring the mixing of contextual information in the transformer" (ALTI); Mohebbi
    et al. (2023), "Quantifying context mixing in transformers" (value zeroing).
    """
    from analysis.attribution.methods import attribute, check_options

    started = time.perf_counter()
    methods, views, given = _checked_names(methods, views, importances)
    for method in methods:
        check_options(method, baseline=baseline, steps=steps, max_steps=max_steps, tolerance=tolerance,
                      n_samples=n_samples)
    raise_if_cancelled(cancelled, "comparison")
    inputs, objective, concrete, parts, position, note, skipped = _resolved(
        loaded, run, target, row, baseline, max_tokens)
    if not parts:
        for view in views:
            skipped[view] = note
        views = []
    order = [*methods, *views, *given]
    if not order:
        raise ValueError(f"there is nothing left to compare: {note}")
    reference = reference or order[0]
    if reference not in order:
        raise ValueError(f"the reference {reference!r} is not compared; compare one of {', '.join(order)}")
    order.remove(reference)
    order.insert(0, reference)
    for name, values in given.items():
        if values.shape[0] != inputs.num_tokens:
            raise ValueError(f"the importance {name!r} has {values.shape[0]} values for {inputs.num_tokens} tokens")

    sources = np.asarray(objective.sources[0], dtype=bool)
    candidates = faithfulness_candidates(objective)
    prepared = time.perf_counter()
    contribution_views = [v for v in views if v in _CONTRIBUTION_OF_VIEW]
    needs_contributions = bool(contribution_views)
    total_steps = len(order) + (len(parts) * (3 if "value_zeroing" in views else 1) if needs_contributions else 0)
    done = [0.0]

    def stepper(weight: float = 1.0) -> ProgressCallback:
        base = done[0]
        return lambda fraction: report_progress(progress, (base + weight * fraction) / total_steps)

    def finish_step(weight: float = 1.0) -> None:
        done[0] += weight
        report_progress(progress, done[0] / total_steps)

    def say(sentence: str) -> None:
        if on_step is not None:
            on_step(sentence)

    contributions_seconds = 0.0
    explanations: list[Explanation] = []
    reference_importance = None
    for name in order:
        raise_if_cancelled(cancelled, "comparison")
        began = time.perf_counter()
        attribution = None
        if name in methods:
            label, kind, description = _METHOD_LABELS[name], "attribution", METHOD_DESCRIPTIONS[name]
            say(f"Attributing with {label}…")
            attribution = attribute(
                loaded, inputs, concrete, name, baseline=baseline, steps=steps, adaptive=adaptive,
                tolerance=tolerance, max_steps=max_steps, n_samples=n_samples, seed=seed, words=words,
                keep_first=keep_first, batch_size=batch_size, progress=stepper(), cancelled=cancelled)
            importance = np.asarray(attribution.token_scores, dtype=np.float64)
        elif name in views:
            label, description = _VIEW_LABELS[name], _VIEW_DESCRIPTIONS[name]
            if position is None:
                description += _MEAN_NOTE
            kind = "contribution" if name in _CONTRIBUTION_OF_VIEW else "attention"
            if name in _CONTRIBUTION_OF_VIEW and needs_contributions:
                say(f"Computing {', '.join(_VIEW_LABELS[v] for v in contribution_views)}…")
                weight = float(total_steps - len(order))
                _ensure_contributions(loaded, parts, contribution_views, stepper(weight), cancelled)
                finish_step(weight)
                needs_contributions = False
                contributions_seconds = time.perf_counter() - began
            say(f"Computing {label}…")
            importance = _view_importance(name, parts, stepper(), cancelled)
        else:
            label, kind, description = name, "given", "An importance given by the caller."
            importance = given[name].copy()
        importance = np.where(sources, importance, np.nan)
        computed = time.perf_counter()
        raise_if_cancelled(cancelled, "comparison")
        faith = faithfulness_of_objective(objective, importance, bins=bins, batch_size=batch_size)
        if reference_importance is None:
            reference_importance = importance
        explanation = Explanation(
            name=name, label=label, kind=kind, description=description, importance=importance,
            faithfulness=faith, spearman=rank_correlation(reference_importance, importance, candidates),
            attribution=attribution, seconds=computed - began, faithfulness_seconds=time.perf_counter() - computed)
        explanations.append(explanation)
        finish_step()
        if on_explanation is not None:
            on_explanation(explanation)
    finished = time.perf_counter()
    return Comparison(
        target=objective.infos[0],
        inputs=inputs,
        reference=reference,
        position=position,
        position_note=note,
        explanations=tuple(explanations),
        skipped=skipped,
        candidates=candidates,
        baseline=baseline,
        bins=np.asarray(bins, dtype=np.float64),
        timings={"prepare": prepared - started, "contributions": contributions_seconds,
                 "total": finished - started},
    )
