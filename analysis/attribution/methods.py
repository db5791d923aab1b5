"""Attribution methods over a target's objective: gradients, Integrated Gradients and the
perturbation methods (Captum's ``FeatureAblation``, ``Lime``, ``KernelShap``).

The entry point is :func:`attribute`; :func:`analysis.attribution.generation.attribute_generation`
does a whole generation. What each method's numbers mean is in
``analysis.attribution.options.METHOD_DESCRIPTIONS``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from analysis.attention.extract import InputError
from analysis.attribution.inputs import encode
from analysis.attribution.integrated import frozen_parameters, integrate, quadrature_name
from analysis.attribution.options import (
    BASELINES,
    DEFAULT_BASELINE,
    DEFAULT_MAX_STEPS,
    DEFAULT_SAMPLES,
    DEFAULT_STEPS,
    DEFAULT_TOLERANCE,
    METHOD_DESCRIPTIONS,
    METHODS,
    PERTURBATION_METHODS,
)
from analysis.attribution.results import Attribution, AttributionInput
from analysis.attribution.targets import (
    Objective,
    Target,
    build_objective,
    check_target,
    needs_separate_pair,
)
from analysis.attribution.words import WordUnits, aggregate, token_units, word_units
from analysis.models.loading import LoadedModel
from analysis.progress import CancelCheck, ProgressCallback, raise_if_cancelled, report_progress


def check_options(
    method: str = "integrated_gradients",
    *,
    baseline: str = DEFAULT_BASELINE,
    steps: int = DEFAULT_STEPS,
    max_steps: int = DEFAULT_MAX_STEPS,
    tolerance: float = DEFAULT_TOLERANCE,
    n_samples: int = DEFAULT_SAMPLES,
    target: Target | None = None,
) -> None:
    """Raise ``InputError`` (one line) for settings no model accepts; needs no model."""
    if method not in METHODS:
        raise InputError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    if baseline not in BASELINES:
        raise InputError(f"unknown baseline {baseline!r}; expected one of {', '.join(BASELINES)}")
    for name, value in (("steps", steps), ("step cap", max_steps), ("samples", n_samples)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise InputError(f"the {name} must be a positive whole number, not {value!r}")
    if method in ("lime", "kernel_shap") and n_samples < 2:
        raise InputError("LIME and KernelSHAP need at least 2 samples")
    if not 0 < float(tolerance) < 1:
        raise InputError(f"the tolerance must be between 0 and 1, not {tolerance!r}")
    if target is not None:
        check_target(target)


def units_for(inputs: AttributionInput, words: bool) -> WordUnits:
    """Words (sum of pieces) or tokens, as the units scores are reported over."""
    if words:
        return word_units(inputs.word_ids, inputs.segment_ids, labels=inputs.labels,
                          offsets=inputs.offsets, texts=(inputs.text, inputs.pair))
    return token_units(inputs.labels, inputs.offsets, inputs.segment_ids)


# --- gradients -------------------------------------------------------------------------


def gradients(objective: Objective, rows=None) -> np.ndarray:
    """Gradients of the objective's rows at the input: float32 ``[K, N, E]``, one forward
    pass and one backward pass per row."""
    wanted = list(range(objective.num_rows)) if rows is None else list(rows)
    out = np.zeros((len(wanted), objective.num_tokens, objective.x.shape[1]), dtype=np.float32)
    with frozen_parameters(objective.model), torch.enable_grad():
        point = objective.x[None].detach().clone().requires_grad_(True)
        values = objective(point)
        for j, k in enumerate(wanted):
            (grad,) = torch.autograd.grad(values[0, k], point, retain_graph=j < len(wanted) - 1)
            out[j] = grad[0].float().cpu().numpy()
    return out


def saliency_scores(grads: np.ndarray) -> np.ndarray:
    """L2 norm of each token's gradient: ``[K, N, E] -> [K, N]``."""
    return np.linalg.norm(grads.astype(np.float64), axis=-1)


def input_x_gradient_scores(grads: np.ndarray, x: torch.Tensor) -> np.ndarray:
    """Embedding times gradient summed over the embedding: ``[K, N, E] -> [K, N]``."""
    return (grads.astype(np.float64) * x.double().cpu().numpy()[None]).sum(-1)


# --- perturbations ---------------------------------------------------------------------


class _WeightedLeastSquares:
    """Captum ``Model`` for LIME/KernelSHAP surrogates: weighted linear least squares with
    an optional ridge penalty, solved in closed form (float64). Replaces Captum's
    scikit-learn defaults (not a dependency); deterministic."""

    def __init__(self, ridge: float = 0.0):
        self.ridge = float(ridge)
        self.coef: np.ndarray | None = None
        self.intercept = 0.0

    def fit(self, train_data, **_kwargs):
        xs, ys, ws = [], [], []
        for batch in train_data:
            xs.append(batch[0].double().numpy())
            ys.append(batch[1].double().numpy().reshape(len(batch[0]), -1)[:, 0])
            ws.append(batch[2].double().numpy().reshape(-1) if len(batch) > 2 else np.ones(len(batch[0])))
        x, y, w = np.concatenate(xs), np.concatenate(ys), np.concatenate(ws)
        sw = np.sqrt(np.maximum(w, 0.0))
        design = np.hstack([np.ones((x.shape[0], 1)), x]) * sw[:, None]
        target = y * sw
        if self.ridge > 0:  # no penalty on the intercept
            penalty = np.sqrt(self.ridge) * np.eye(x.shape[1] + 1)[1:]
            design = np.vstack([design, penalty])
            target = np.concatenate([target, np.zeros(x.shape[1])])
        solution, *_ = np.linalg.lstsq(design, target, rcond=None)
        self.intercept = float(solution[0])
        self.coef = solution[1:]
        return {}

    def representation(self) -> torch.Tensor:
        return torch.as_tensor(self.coef, dtype=torch.float64)[None]

    def bias(self):
        return torch.tensor([self.intercept])


def explain_mask_function(
    fn: Callable[[torch.Tensor], torch.Tensor],
    n_features: int,
    method: str,
    *,
    n_samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    batch_size: int = 64,
    progress: ProgressCallback | None = None,
    cancelled: CancelCheck | None = None,
) -> tuple[np.ndarray, int]:
    """Occlusion, LIME or KernelSHAP of any function of a keep-mask over features.

    Parameters
    ----------
    fn : callable
        ``fn(keep) -> values``: ``keep`` is a bool tensor ``[b, F]`` (True = the feature is
        kept, False = replaced by the baseline), values a tensor ``[b]``.
    n_features : int
    method : str
        ``occlusion`` (Captum ``FeatureAblation``: ``f(all) - f(all but feature i)``),
        ``lime`` (Captum ``Lime``: Bernoulli(0.5) masks, exponential cosine kernel, weighted
        ridge surrogate with penalty 1 as the reference LIME) or ``kernel_shap`` (Captum
        ``KernelShap``: Shapley-kernel masks, weighted least squares).
    n_samples : int
        LIME / KernelSHAP masks (occlusion always takes ``n_features + 1``).
    seed : int
        Seeds the mask sampling (the global torch generator is left as it was).
    batch_size : int
        Masks per forward pass.

    Returns
    -------
    (scores float64 [F], evaluations)

    Examples
    --------
    >>> import torch
    >>> w = torch.tensor([1.0, -2.0, 0.5])
    >>> scores, _ = explain_mask_function(lambda keep: keep.double() @ w.double(), 3, "kernel_shap", n_samples=50)
    >>> [round(s, 6) for s in scores.tolist()]
    [1.0, -2.0, 0.5]

    References
    ----------
    Ribeiro, Singh & Guestrin (2016), "Why should I trust you?" (LIME).
    Lundberg & Lee (2017), "A unified approach to interpreting model predictions" (SHAP).
    """
    from captum.attr import FeatureAblation, KernelShap, Lime

    if method not in PERTURBATION_METHODS:
        raise ValueError(f"{method!r} is not a perturbation method")
    total = n_features + 1 if method == "occlusion" else n_samples
    count = [0]

    def forward(mask: torch.Tensor) -> torch.Tensor:
        raise_if_cancelled(cancelled, "attribution")
        with torch.inference_mode():
            values = fn(mask > 0.5)
        count[0] += int(mask.shape[0])
        report_progress(progress, count[0] / max(total, 1))
        return values.double().reshape(-1).cpu()

    inp = torch.ones(1, n_features, dtype=torch.float64)
    base = torch.zeros(1, n_features, dtype=torch.float64)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        if method == "occlusion":
            out = FeatureAblation(forward).attribute(inp, baselines=base, perturbations_per_eval=batch_size)
        elif method == "lime":
            explainer = Lime(forward, interpretable_model=_WeightedLeastSquares(ridge=1.0))
            out = explainer.attribute(inp, baselines=base, n_samples=n_samples, perturbations_per_eval=batch_size)
        else:
            explainer = KernelShap(forward)
            explainer.interpretable_model = _WeightedLeastSquares()
            out = explainer.attribute(inp, baselines=base, n_samples=n_samples, perturbations_per_eval=batch_size)
    return out.double().reshape(-1).numpy(), count[0]


def _features(objective: Objective, units: WordUnits, row: int) -> tuple[np.ndarray, np.ndarray]:
    """``(unit ids that are features, token -> feature index or -1)`` for one row: the
    non-special units whose tokens are sources of the row."""
    fixed = objective.fixed
    sources = objective.sources[row]
    usable = np.zeros(units.num_units, dtype=bool)
    for t, u in enumerate(units.token_units):
        if not fixed[t] and sources[t]:
            usable[u] = True
    feature_units = np.flatnonzero(usable)
    index_of = {int(u): i for i, u in enumerate(feature_units)}
    token_feature = np.array([index_of.get(int(u), -1) if not fixed[t] else -1
                              for t, u in enumerate(units.token_units)], dtype=np.int64)
    return feature_units, token_feature


def perturbation_scores(
    objective: Objective,
    units: WordUnits,
    method: str,
    row: int = 0,
    *,
    n_samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    batch_size: int | None = None,
    progress: ProgressCallback | None = None,
    cancelled: CancelCheck | None = None,
) -> tuple[np.ndarray, int]:
    """Unit scores ``[U]`` (0 for special tokens, NaN for units that are no source of the
    row) of a perturbation method for one row of the objective, and the evaluations."""
    feature_units, token_feature = _features(objective, units, row)
    scores = np.zeros(units.num_units, dtype=np.float64)
    not_source = np.ones(units.num_units, dtype=bool)
    for t, u in enumerate(units.token_units):
        if objective.sources[row, t]:
            not_source[u] = False
    if feature_units.size == 0:
        scores[not_source] = np.nan
        return scores, 0
    column = torch.as_tensor(np.maximum(token_feature, 0), device=objective.device)
    is_feature = torch.as_tensor(token_feature >= 0, device=objective.device)

    def fn(keep: torch.Tensor) -> torch.Tensor:
        keep = keep.to(objective.device)
        token_keep = torch.where(is_feature[None], keep[:, column], torch.ones_like(is_feature)[None])
        return objective(objective.at_masks(token_keep), rows=[row])[:, row]

    size = batch_size or objective.batch_size(grad=False)
    values, count = explain_mask_function(fn, int(feature_units.size), method, n_samples=n_samples,
                                          seed=seed, batch_size=size, progress=progress, cancelled=cancelled)
    scores[feature_units] = values
    scores[not_source] = np.nan
    return scores, count


# --- the entry point -------------------------------------------------------------------


def attribute(
    loaded: LoadedModel,
    inputs: AttributionInput | str,
    target: Target | None = None,
    method: str = "integrated_gradients",
    *,
    pair: str | None = None,
    baseline: str = DEFAULT_BASELINE,
    steps: int = DEFAULT_STEPS,
    adaptive: bool = False,
    tolerance: float = DEFAULT_TOLERANCE,
    max_steps: int = DEFAULT_MAX_STEPS,
    n_samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    words: bool = False,
    keep_first: bool = True,
    max_tokens: int | None = None,
    batch_size: int | None = None,
    progress: ProgressCallback | None = None,
    cancelled: CancelCheck | None = None,
) -> Attribution:
    """Which input tokens (or words) drive ``target``, by ``method``.

    Parameters
    ----------
    loaded : LoadedModel
        From :func:`analysis.models.loading.load_model`.
    inputs : AttributionInput or str
        Tokens from :func:`analysis.attribution.inputs.encode` / ``from_run``, or a text
        (then tokenized here with ``pair``; a similarity encodes the pair on its own).
    target : Target, optional
        What to explain (default ``Target()``: what the model does, see
        :func:`analysis.attribution.targets.available_targets`).
    method : str
        ``saliency``, ``input_x_gradient``, ``integrated_gradients`` (default),
        ``occlusion``, ``lime`` or ``kernel_shap``.
    baseline : str
        ``pad`` (default), ``unk`` or ``zero``: IG's path start, the perturbation methods'
        replacement for removed tokens. Special tokens always stay as they are.
    steps : int
        IG: Gauss-Legendre nodes; with ``adaptive``, the first grid has ``min(steps, 8)``
        intervals.
    adaptive : bool
        IG: refine Simpson panels of the path where their exact completeness errors are
        largest until ``delta <= tolerance * |f(x) - f(baseline)|`` or ``max_steps``
        (``converged`` says which; see :mod:`analysis.attribution.integrated`).
    n_samples : int
        LIME / KernelSHAP masks.
    seed : int
        LIME / KernelSHAP sampling seed: the same seed gives the same scores.
    words : bool
        Report words (sum of their pieces; the perturbation methods then perturb whole
        words) instead of tokens.
    keep_first : bool
        IG on a causal LM: keep the first token (the model's attention sink) as it is in
        the baseline, so its score is 0 (default True: interpolating it makes the path's
        integrand spike, see :mod:`analysis.attribution.integrated`; ``params`` records
        ``first_token_kept``). Ignored by the other methods.
    progress, cancelled : callbacks
        ``progress(fraction)`` per batch; ``cancelled()`` between batches (raises
        ``analysis.progress.Cancelled``).

    Returns
    -------
    Attribution

    Examples
    --------
    >>> from analysis.models.loading import load_model                       # doctest: +SKIP
    >>> result = attribute(load_model(), "A cat sat.", Target("similarity"),
    ...                    pair="A dog sat.", method="kernel_shap", seed=0)   # doctest: +SKIP
    >>> result.units.labels[:3], result.f_x                                   # doctest: +SKIP

    References
    ----------
    Simonyan, Vedaldi & Zisserman (2014), saliency maps; Shrikumar et al. (2016), Input x
    Gradient; Sundararajan, Taly & Yan (2017), "Axiomatic attribution for deep networks"
    (Integrated Gradients); Zeiler & Fergus (2014), occlusion; Ribeiro et al. (2016), LIME;
    Lundberg & Lee (2017), KernelSHAP; Kokhlikyan et al. (2020), Captum.
    """
    target = target or Target()
    check_options(method, baseline=baseline, steps=steps, max_steps=max_steps, tolerance=tolerance,
                  n_samples=n_samples, target=target)
    if target.kind == "generation":
        raise InputError("a generation is attributed by attribute_generation")
    started = time.perf_counter()
    if isinstance(inputs, str):
        inputs = encode(loaded, inputs, pair, separate=needs_separate_pair(loaded, target), max_tokens=max_tokens)
    is_ig = method == "integrated_gradients"
    objective = build_objective(loaded, inputs, target, baseline=baseline, keep_first=is_ig and keep_first)
    units = units_for(inputs, words)
    prepared = time.perf_counter()

    delta = converged = used_steps = samples = None
    params: dict = {"baseline": baseline, "words": words}
    if is_ig:
        params["first_token_kept"] = objective.first_kept
    if method == "integrated_gradients":
        outcome = integrate(objective, steps=steps, adaptive=adaptive, tolerance=tolerance, max_steps=max_steps,
                            batch_size=batch_size, progress=progress, cancelled=cancelled)
        scores = aggregate(outcome.scores[0], units)
        f_x, f_b = float(outcome.f_x[0]), float(outcome.f_baseline[0])
        delta = float(outcome.delta[0])
        converged = bool(outcome.converged[0])
        used_steps = int(outcome.steps)
        params.update(steps=steps, adaptive=adaptive, tolerance=tolerance, max_steps=max_steps,
                      quadrature=quadrature_name(adaptive), stopped=outcome.stopped,
                      error_bound=float(outcome.error_bound[0]), segments=len(outcome.segments[0]))
    else:
        ends = objective.values(torch.stack([objective.baseline, objective.x]))
        f_b, f_x = float(ends[0, 0]), float(ends[1, 0])
        if method in ("saliency", "input_x_gradient"):
            raise_if_cancelled(cancelled, "attribution")
            grads = gradients(objective)
            token = saliency_scores(grads) if method == "saliency" else input_x_gradient_scores(grads, objective.x)
            scores = aggregate(token[0], units)
            report_progress(progress, 1.0)
        else:
            scores, samples = perturbation_scores(objective, units, method, 0, n_samples=n_samples, seed=seed,
                                                  batch_size=batch_size, progress=progress, cancelled=cancelled)
            if method != "occlusion":
                params.update(n_samples=n_samples, seed=seed)
            if method == "kernel_shap":
                delta = float(abs(np.nansum(scores) - (f_x - f_b)))
    finished = time.perf_counter()
    return Attribution(
        method=method,
        target=objective.infos[0],
        baseline=baseline,
        inputs=inputs,
        units=units,
        scores=scores,
        f_x=f_x,
        f_baseline=f_b,
        delta=delta,
        converged=converged,
        steps=used_steps,
        samples=samples,
        params=params,
        timings={"prepare": prepared - started, "attribute": finished - prepared, "total": finished - started},
        description=METHOD_DESCRIPTIONS[method],
    )
