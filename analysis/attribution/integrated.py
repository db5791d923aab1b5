"""Integrated Gradients over the input's word embeddings, with an honest convergence delta.

IG (Sundararajan et al. 2017) scores token ``i`` with
``(x_i - x'_i) . integral_0^1 grad_i f(x' + a (x - x')) da``; the scores add up to
``f(x) - f(x')`` exactly when the integral is exact, so
``delta = |sum(scores) - (f(x) - f(x'))|`` measures the quadrature error.

The integral is a composite Gauss-Legendre rule over segments of the path ``a in [0, 1]``
(nodes and weights from Captum's ``approximation_parameters("gausslegendre")``). A fixed
``steps`` is one segment of that many nodes, as Captum's ``IntegratedGradients``
(``method="gausslegendre"``). The *adaptive* mode doubles the number of gradient
evaluations each round and spends them where the path needs them: on every segment
``[a, b]`` the exact increment ``f(b) - f(a)`` is known from two forward passes, so each
segment's own completeness error is known; the segments with the largest errors are halved
(``segment_steps`` nodes per half) until the sum of the segments' errors, a bound on
``|delta|``, is at most ``tolerance * |f(x) - f(x')|``, or the step cap is reached
(``converged`` says which).

Every node's forward is one batched pass over the *whole* sequence, shared by all rows of
the objective (all target positions of a generation: causality makes position ``t``'s
output independent of later tokens); each row then takes one backward pass
(vector-Jacobian product) per batch. Rows that have converged stop taking backward passes.
The path's products are accumulated in float64.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from analysis.progress import CancelCheck, ProgressCallback, raise_if_cancelled, report_progress

ABSOLUTE_TOLERANCE = 1e-4  # target units: below this a completeness error is float32 noise


def gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(nodes, weights)`` of the n-point Gauss-Legendre rule on [0, 1] (Captum's)."""
    from captum.attr._utils.approximation_methods import approximation_parameters

    step_sizes, alphas = approximation_parameters("gausslegendre")
    return np.asarray(alphas(n), dtype=np.float64), np.asarray(step_sizes(n), dtype=np.float64)


@dataclass
class _Segment:
    a: float
    b: float
    nodes: int
    contributions: np.ndarray  # float64 [K, N]
    done: np.ndarray  # bool [K]: rows whose contributions are computed


@dataclass
class IntegratedOutcome:
    """What :func:`integrate` found, per row of the objective.

    ``scores`` float64 [K, N]; ``f_x``, ``f_baseline``, ``delta``, ``error_bound``,
    ``tolerance`` float64 [K]; ``converged`` bool [K]; ``steps``: gradient evaluations;
    ``segments``: the path's segments ``(a, b, nodes)``; ``stopped``: ``"tolerance"``,
    ``"step cap"`` or ``"fixed steps"``.
    """

    scores: np.ndarray
    f_x: np.ndarray
    f_baseline: np.ndarray
    delta: np.ndarray
    error_bound: np.ndarray
    tolerance: np.ndarray
    converged: np.ndarray
    steps: int
    segments: list[tuple[float, float, int]] = field(default_factory=list)
    stopped: str = "fixed steps"


class _Monotone:
    def __init__(self, progress: ProgressCallback | None):
        self.progress = progress
        self.best = 0.0

    def __call__(self, fraction: float) -> None:
        if fraction > self.best:
            self.best = fraction
            report_progress(self.progress, fraction)


def integrate(
    objective,
    *,
    steps: int = 32,
    adaptive: bool = False,
    tolerance: float = 0.05,
    max_steps: int = 1024,
    segment_steps: int = 8,
    batch_size: int | None = None,
    progress: ProgressCallback | None = None,
    cancelled: CancelCheck | None = None,
    on_row=None,
) -> IntegratedOutcome:
    """Integrated Gradients of every row of ``objective`` along the straight path from its
    baseline to its input.

    Parameters
    ----------
    objective : analysis.attribution.targets.Objective
    steps : int
        Gauss-Legendre nodes of the first (or only) segment.
    adaptive : bool
        Double the gradient evaluations, refining the worst segments, until each row's
        error bound is within ``tolerance`` or ``max_steps`` would be passed.
    tolerance : float
        Relative: ``|delta| <= tolerance * |f(x) - f(baseline)|`` (and at least
        ``ABSOLUTE_TOLERANCE``) counts as converged.
    max_steps : int
        The adaptive mode's cap on gradient evaluations.
    segment_steps : int
        Nodes on each half of a refined segment.
    batch_size : int, optional
        Path points per forward pass (default: sized from the model and the sequence).
    progress, cancelled : callbacks
        ``progress(fraction)`` after each batch; ``cancelled()`` checked between batches
        (raises ``analysis.progress.Cancelled``).
    on_row : callable, optional
        ``on_row(row, scores)`` as soon as a row is final (converged rows first in the
        adaptive mode; all rows at the end otherwise).

    Returns
    -------
    IntegratedOutcome
    """
    if steps < 1 or max_steps < 1 or segment_steps < 1:
        raise ValueError("steps, max_steps and segment_steps must be positive")
    rows = objective.num_rows
    n = objective.num_tokens
    x, base = objective.x, objective.baseline
    diff = x - base
    diff64 = diff.double()
    size = batch_size or objective.batch_size(grad=True)
    report = _Monotone(progress)

    ends = objective.values(torch.stack([base, x]))
    f_b, f_x = ends[0].numpy(), ends[1].numpy()
    total = f_x - f_b
    tol = np.maximum(tolerance * np.abs(total), ABSOLUTE_TOLERANCE)
    f_at: dict[float, np.ndarray] = {0.0: f_b, 1.0: f_x}

    final = np.zeros((rows, n), dtype=np.float64)
    finished = np.zeros(rows, dtype=bool)
    converged = np.zeros(rows, dtype=bool)
    bound_out = np.full(rows, np.nan)
    used = 0

    def evaluate(segments: list[_Segment], active: np.ndarray, planned: int, done_before: int, scale) -> int:
        """Contributions of the active rows on ``segments``; returns evaluations done."""
        alphas, weights, owner = [], [], []
        for index, seg in enumerate(segments):
            nodes, w = gauss_legendre(seg.nodes)
            alphas.append(seg.a + (seg.b - seg.a) * nodes)
            weights.append((seg.b - seg.a) * w)
            owner.append(np.full(seg.nodes, index))
        alpha = np.concatenate(alphas)
        weight = np.concatenate(weights)
        owners = np.concatenate(owner)
        wanted = np.flatnonzero(active)
        for start in range(0, alpha.size, size):
            raise_if_cancelled(cancelled, "Integrated Gradients")
            a = torch.as_tensor(alpha[start : start + size], dtype=torch.float32, device=x.device)
            w = weight[start : start + size]
            who = owners[start : start + size]
            with torch.enable_grad():
                points = (base[None] + a[:, None, None] * diff[None]).detach().requires_grad_(True)
                values = objective(points)
                for j, k in enumerate(wanted):
                    (grad,) = torch.autograd.grad(values[:, k].sum(), points, retain_graph=j < len(wanted) - 1)
                    per_token = (grad.double() * diff64[None]).sum(-1).cpu().numpy()  # [b, N]
                    weighted = per_token * w[:, None]
                    for index in np.unique(who):
                        segments[index].contributions[k] += weighted[who == index].sum(0)
            del values, points
            report(scale(done_before + min(start + size, alpha.size), planned))
        for seg in segments:
            seg.done[wanted] = True
        return int(alpha.size)

    def endpoints(segments: list[_Segment]) -> None:
        new = sorted({p for seg in segments for p in (seg.a, seg.b)} - set(f_at))
        if new:
            a = torch.as_tensor(new, dtype=torch.float32, device=x.device)
            values = objective.values(base[None] + a[:, None, None] * diff[None])
            for p, v in zip(new, values.numpy(), strict=True):
                f_at[p] = v

    def seg_errors(segments: list[_Segment]) -> np.ndarray:
        """[S, K] completeness error of each segment."""
        return np.stack([np.abs(s.contributions.sum(1) - (f_at[s.b] - f_at[s.a])) for s in segments])

    first = _Segment(0.0, 1.0, steps, np.zeros((rows, n)), np.zeros(rows, dtype=bool))
    segments = [first]
    if not adaptive:
        used = evaluate(segments, np.ones(rows, dtype=bool), steps, 0, lambda d, p: d / p)
        final = first.contributions
        delta = np.abs(final.sum(1) - total)
        converged = delta <= tol
        for k in range(rows):
            if on_row is not None:
                on_row(k, final[k].copy())
        report(1.0)
        return IntegratedOutcome(final, f_x, f_b, delta, delta.copy(), tol, converged, used,
                                 [(0.0, 1.0, steps)], "fixed steps")

    round_index = 0

    def scale_for(round_no):
        return lambda d, p: 1.0 - 0.5 ** (round_no + min(1.0, d / max(p, 1)))

    used = evaluate(segments, np.ones(rows, dtype=bool), steps, 0, lambda d, p: 0.5 * d / p)
    stopped = "tolerance"
    while True:
        errors = seg_errors(segments)  # [S, K]
        bound = errors.sum(0)
        for k in np.flatnonzero(~finished):
            if bound[k] <= tol[k]:
                final[k] = sum(s.contributions[k] for s in segments)
                finished[k] = True
                converged[k] = True
                bound_out[k] = bound[k]
                if on_row is not None:
                    on_row(int(k), final[k].copy())
        active = ~finished
        if not active.any():
            break
        budget = min(max(used, 2 * segment_steps), max_steps - used)  # double the steps
        if budget < 2 * segment_steps:
            stopped = "step cap"
            break
        round_index += 1
        share = (errors[:, active] / tol[active]).max(1)  # [S] worst normalised error
        fair = share.sum() / len(segments)
        order = [i for i in np.argsort(-share) if share[i] > 0]
        chosen = [i for i in order if share[i] >= fair] or order[:1]
        picked, cost = [], 0
        for i in chosen:
            if cost + 2 * segment_steps > budget:
                break
            picked.append(i)
            cost += 2 * segment_steps
        if not picked:
            stopped = "step cap"
            break
        new_segments: list[_Segment] = []
        kept: list[_Segment] = []
        for i, seg in enumerate(segments):
            if i in picked:
                mid = 0.5 * (seg.a + seg.b)
                for a, b in ((seg.a, mid), (mid, seg.b)):
                    part = _Segment(a, b, segment_steps, np.zeros((rows, n)), np.zeros(rows, dtype=bool))
                    new_segments.append(part)
                    kept.append(part)
            else:
                kept.append(seg)
        kept.sort(key=lambda s: s.a)
        endpoints(new_segments)
        used += evaluate(new_segments, active, cost, 0, scale_for(round_index))
        segments = kept

    errors = seg_errors(segments)
    bound = errors.sum(0)
    for k in np.flatnonzero(~finished):
        final[k] = sum(s.contributions[k] for s in segments)
        bound_out[k] = bound[k]
        if on_row is not None:
            on_row(int(k), final[k].copy())
    delta = np.abs(final.sum(1) - total)
    report(1.0)
    return IntegratedOutcome(final, f_x, f_b, delta, bound_out, tol, converged, used,
                             [(s.a, s.b, s.nodes) for s in segments], stopped)
