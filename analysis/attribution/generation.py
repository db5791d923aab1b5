"""A generation attributed token by token: ``[generated tokens x (prompt + generated)]``.

As Inseq shows it, the input is the prompt ids followed by the generated ids; row ``r``
explains generated token ``g_r`` (read at position ``g_r - 1``) over every token before it,
prompt and earlier generated tokens alike. Cells of tokens at or after ``g_r`` are NaN
(causal: "masked", not "no effect").

The gradient methods run ONE forward pass over the whole sequence for all rows, then one
backward pass per row: the causal mask makes position ``g - 1``'s output independent of
later tokens, so the rows do not disturb one another. Integrated Gradients evaluates each
path point for the rows that need it, either as one sample shared by those rows (one
forward, a backward pass per row) or as one sample per row on its own prefix, whichever a
cost model prefers (:class:`analysis.attribution.integrated.PathEvaluator`). The
perturbation methods perturb each row's own sources. Rows are delivered through
``on_row(row, scores)`` as soon as they are final.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from analysis.attention.extract import InputError
from analysis.attribution.inputs import from_ids
from analysis.attribution.integrated import integrate, quadrature_name
from analysis.attribution.methods import (
    check_options,
    gradients,
    input_x_gradient_scores,
    perturbation_scores,
    saliency_scores,
    units_for,
)
from analysis.attribution.options import (
    DEFAULT_BASELINE,
    DEFAULT_MAX_STEPS,
    DEFAULT_SAMPLES,
    DEFAULT_STEPS,
    DEFAULT_TOLERANCE,
    METHOD_DESCRIPTIONS,
    TARGET_FUNCTIONS,
)
from analysis.attribution.results import AttributionInput, GenerationAttribution
from analysis.attribution.targets import Target, build_objective
from analysis.attribution.words import WordUnits, aggregate
from analysis.models.loading import LoadedModel
from analysis.progress import CancelCheck, ProgressCallback, raise_if_cancelled, report_progress
from analysis.run import DECODER

RowCallback = Callable[[int, np.ndarray], None]


def generate_greedy(
    loaded: LoadedModel,
    prompt: str | np.ndarray,
    max_new_tokens: int,
    *,
    cancelled: CancelCheck | None = None,
) -> AttributionInput:
    """Greedy generation of up to ``max_new_tokens`` tokens after ``prompt`` (a text or
    its ids); stops early at the end-of-text token. Returns prompt + generated tokens with
    ``prompt_length`` set.

    Examples
    --------
    >>> inputs = generate_greedy(loaded, "The capital of France is", 8)  # doctest: +SKIP
    >>> inputs.prompt_length, inputs.num_tokens                          # doctest: +SKIP
    (5, 13)
    """
    from analysis.attribution import heads as H

    if loaded.facts.architecture != DECODER:
        raise InputError(f"{loaded.facts.name} does not generate text: generation needs a decoder")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise InputError(f"the number of tokens to generate must be a positive whole number, not {max_new_tokens!r}")
    model = H.head_model(loaded, H.CAUSAL_LM)
    tokenizer = loaded.tokenizer
    if isinstance(prompt, str):
        if not prompt.strip():
            raise InputError("the prompt is empty: type something to continue")
        ids = list(tokenizer(prompt)["input_ids"])
    else:
        ids = [int(i) for i in np.asarray(prompt).reshape(-1)]
    prompt_length = len(ids)
    limit = loaded.facts.max_positions
    if prompt_length + max_new_tokens > limit:
        raise InputError(f"{loaded.facts.name} reads at most {limit} tokens: the prompt has {prompt_length}")
    device = next(loaded.model.parameters()).device
    eos = tokenizer.eos_token_id
    past = None
    step_input = torch.tensor([ids], device=device)
    with torch.inference_mode():
        for _ in range(max_new_tokens):
            raise_if_cancelled(cancelled, "generation")
            out = model(input_ids=step_input, cache=past, use_cache=True, logits_to_keep=1)
            past = out.cache
            token = int(out.logits[0, -1].argmax())
            ids.append(token)
            if eos is not None and token == eos:
                break
            step_input = torch.tensor([[token]], device=device)
    return from_ids(loaded, ids, prompt_length=prompt_length)


def _row_units(scores: np.ndarray, sources: np.ndarray, units: WordUnits) -> np.ndarray:
    """Token scores of one row -> unit scores, NaN for tokens that are no source."""
    masked = np.where(sources, scores, np.nan)
    return aggregate(masked, units)


def attribute_generation(
    loaded: LoadedModel,
    inputs: AttributionInput,
    method: str = "integrated_gradients",
    *,
    positions: np.ndarray | None = None,
    target_function: str = "log_prob",
    baseline: str = DEFAULT_BASELINE,
    steps: int = DEFAULT_STEPS,
    adaptive: bool = False,
    tolerance: float = DEFAULT_TOLERANCE,
    max_steps: int = DEFAULT_MAX_STEPS,
    n_samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    words: bool = False,
    keep_first: bool = True,
    batch_size: int | None = None,
    progress: ProgressCallback | None = None,
    cancelled: CancelCheck | None = None,
    on_row: RowCallback | None = None,
) -> GenerationAttribution:
    """Attribute every generated token of ``inputs`` to the tokens before it.

    Parameters
    ----------
    loaded : LoadedModel
        A decoder (causal language model).
    inputs : AttributionInput
        Prompt + generated tokens with ``prompt_length`` set: from :func:`generate_greedy`,
        :func:`analysis.attribution.inputs.from_run` of a generation run, or
        :func:`analysis.attribution.inputs.from_ids`.
    method : str
        Any of ``analysis.attribution.options.METHODS``.
    positions : int array, optional
        The input indices of the tokens to explain (default: every generated token).
    target_function : str
        ``log_prob`` (default), ``prob`` or ``logit`` of each generated token.
    baseline, steps, adaptive, tolerance, max_steps, n_samples, seed, words, keep_first
        As :func:`analysis.attribution.methods.attribute`; with ``adaptive`` each row
        refines its own path panels until it reaches the tolerance or the cap (rows that
        are done take no more evaluations).
    progress, cancelled : callbacks
        ``progress(fraction)`` per batch, ``cancelled()`` between batches.
    on_row : callable, optional
        ``on_row(row, scores)`` with a row's final unit scores (float64 [U], NaN where not
        a source) as soon as it is done: partial results for the window.

    Returns
    -------
    GenerationAttribution

    Examples
    --------
    >>> inputs = generate_greedy(loaded, "The capital of France is", 8)      # doctest: +SKIP
    >>> result = attribute_generation(loaded, inputs, on_row=print)            # doctest: +SKIP
    >>> result.scores.shape                                                    # doctest: +SKIP
    (8, 13)

    References
    ----------
    Sarti et al. (2023), "Inseq: An interpretability toolkit for sequence generation models".
    """
    check_options(method, baseline=baseline, steps=steps, max_steps=max_steps, tolerance=tolerance,
                  n_samples=n_samples)
    if target_function not in TARGET_FUNCTIONS:
        raise InputError(f"unknown target function {target_function!r}; expected one of {', '.join(TARGET_FUNCTIONS)}")
    started = time.perf_counter()
    is_ig = method == "integrated_gradients"
    objective = build_objective(loaded, inputs, Target("generation", function=target_function),
                                baseline=baseline, generated_positions=positions, keep_first=is_ig and keep_first)
    units = units_for(inputs, words)
    rows = objective.num_rows
    scores = np.full((rows, units.num_units), np.nan)
    delta = np.full(rows, np.nan)
    converged = np.ones(rows, dtype=bool)
    used_steps = samples = None
    params: dict = {"baseline": baseline, "words": words, "target_function": target_function}
    if is_ig:
        params["first_token_kept"] = objective.first_kept
    prepared = time.perf_counter()

    def deliver(row: int, token_scores: np.ndarray) -> None:
        scores[row] = _row_units(token_scores, objective.sources[row], units)
        if on_row is not None:
            on_row(row, scores[row].copy())

    if method == "integrated_gradients":
        outcome = integrate(objective, steps=steps, adaptive=adaptive, tolerance=tolerance, max_steps=max_steps,
                            batch_size=batch_size, progress=progress, cancelled=cancelled, on_row=deliver)
        f_x, f_b = outcome.f_x, outcome.f_baseline
        delta, converged = outcome.delta, outcome.converged
        used_steps = int(outcome.steps)
        params.update(steps=steps, adaptive=adaptive, tolerance=tolerance, max_steps=max_steps,
                      quadrature=quadrature_name(adaptive), stopped=outcome.stopped,
                      error_bound=[float(v) for v in outcome.error_bound],
                      row_steps=[int(v) for v in outcome.row_steps], stopped_rows=outcome.row_stopped)
    else:
        ends = objective.values(torch.stack([objective.baseline, objective.x]))
        f_b, f_x = ends[0].numpy(), ends[1].numpy()
        if method in ("saliency", "input_x_gradient"):
            raise_if_cancelled(cancelled, "attribution")
            grads = gradients(objective)
            token = saliency_scores(grads) if method == "saliency" else input_x_gradient_scores(grads, objective.x)
            for r in range(rows):
                deliver(r, token[r])
            report_progress(progress, 1.0)
        else:
            samples = 0
            for r in range(rows):
                raise_if_cancelled(cancelled, "attribution")

                def row_progress(fraction: float, r=r) -> None:
                    report_progress(progress, (r + fraction) / rows)

                unit_scores, count = perturbation_scores(objective, units, method, r, n_samples=n_samples, seed=seed,
                                                         batch_size=batch_size, progress=row_progress,
                                                         cancelled=cancelled)
                samples += count
                scores[r] = unit_scores
                if on_row is not None:
                    on_row(r, unit_scores.copy())
                if method == "kernel_shap":
                    delta[r] = abs(np.nansum(unit_scores) - (f_x[r] - f_b[r]))
            if method != "occlusion":
                params.update(n_samples=n_samples, seed=seed)
    finished = time.perf_counter()
    positions_out = np.array([info.position + 1 for info in objective.infos], dtype=np.int64)
    return GenerationAttribution(
        method=method,
        target_function=target_function,
        baseline=baseline,
        inputs=inputs,
        units=units,
        scores=scores,
        target_positions=positions_out,
        target_labels=tuple(inputs.labels[p] for p in positions_out),
        f_x=np.asarray(f_x, dtype=np.float64),
        f_baseline=np.asarray(f_b, dtype=np.float64),
        delta=np.asarray(delta, dtype=np.float64),
        converged=np.asarray(converged, dtype=bool),
        steps=used_steps,
        samples=samples,
        params=params,
        timings={"prepare": prepared - started, "attribute": finished - prepared, "total": finished - started},
        description=METHOD_DESCRIPTIONS[method],
    )
