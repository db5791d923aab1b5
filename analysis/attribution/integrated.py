"""Integrated Gradients over the input's word embeddings, with an honest convergence delta.

IG (Sundararajan et al. 2017) scores token ``i`` with
``(x_i - x'_i) . integral_0^1 grad_i f(x' + a (x - x')) da``; the scores add up to
``f(x) - f(x')`` exactly when the integral is exact, so
``delta = |sum(scores) - (f(x) - f(x'))|`` measures the quadrature error.

Quadrature
----------
A fixed ``steps`` is one Gauss-Legendre rule of that many nodes on ``a in [0, 1]`` (nodes
and weights from Captum's ``approximation_parameters("gausslegendre")``): exactly Captum's
``IntegratedGradients`` with ``method="gausslegendre"``.

The *adaptive* mode is a composite Simpson rule on nested dyadic panels, refined row by row
where the row's own exact errors say. Each panel ``[a, b]`` uses the gradients at ``a``, its
midpoint and ``b``; its exact increment ``f(b) - f(a)`` comes with those gradients (the forward
pass that gives a gradient gives ``f`` at that point), so the panel's own completeness error
``|sum of its scores - (f(b) - f(a))|`` is known exactly. The panels with the largest errors
are halved (two new gradient evaluations each: the new midpoints; every evaluation made so far
stays in the rule) until the sum of the panel errors, a bound on ``|delta|`` (errors cannot
cancel between panels in the bound), is at most ``tolerance * |f(x) - f(x')|``, or the step
cap comes first: ``converged`` says which. The first grid has ``min(steps, 8)`` intervals
(rounded down to a power of two, at least 2).

Why Simpson on nested panels and not Gauss-Legendre segments (measured on SmolLM2-135M,
8 generated tokens after "The capital of France is", PAD baseline, first token kept):
the integrands are smooth but have sharp features of width ~0.01 in ``a`` around
``a = 0.4-0.6`` (up to 170 log-prob units per unit ``a``) and are flat elsewhere. A global
Gauss-Legendre rule needs 128 nodes per row for 3.3% (max over rows) and 256 for 0.45%. The
former adaptive mode (halving Gauss-Legendre segments, 8 nodes a half) needed as many, 880
evaluations for 3.4%: half of them were discarded with the segments they refined. Nested
panels discard nothing: 400 evaluations for the same tolerance (max error 2.8%).

Speed
-----
Each (path point, row) a rule needs is evaluated either by a sample of its own, on the row's
prefix (a causal model's position ``t`` does not depend on later tokens), or by one sample for
all the rows that need that point (one forward pass up to the last of them), whichever a cost
model of the batches prefers (:meth:`PathEvaluator.plan`): sharing pays for points every row
needs (fixed steps, the adaptive first grid), not for the points one or two rows refine. The
samples of a batch ask for as many rows; pass ``t`` backs up the sum over the samples of
their ``t``-th row (samples are independent, so each gets its own row's gradient), so a batch
takes as many backward passes as its samples ask for rows, and the LM head is applied per pass
to the hidden states that pass reads. The leading tokens that are the same at every point of
the path (the kept first token, a BOS) are computed once and read from a key-value cache. The
model's parameters do not require gradients during IG (restored after, also on cancel or
error): only the path points do. Products are accumulated in float64.

Measured on SmolLM2-135M (1 thread, 8 generated tokens after "The capital of France is"):
fixed 32 steps with shared samples 10.2-11.3 s, one sample per row 13.9-14.1 s; the adaptive
mode 24-26 s either way (its refinements are needed by one or two rows each). Frozen
parameters: 3-5%. Tried and left out: SDPA instead of the eager attention the model is loaded
with (for the attention views), 2%, within noise; batched vector-Jacobian products (vmap over
the backward), no faster on a quiet machine; a forward in one-token chunks with a key-value
cache so each row's backward covers only its prefix (a third fewer FLOPs, but 1.3-1.5x slower:
thin matrix products, the weights read again for every chunk).

What makes a path hard (measured on SmolLM2-135M)
-------------------------------------------------
float32 is not the problem: on a 201-point scan of the path the integrand in float64
agrees with float32 to 3-4 digits. With the *first token* of a causal LM without a BOS
token interpolated, the integrand has narrow spikes (width ~1e-3 in ``a``, up to ~4400
log-prob units per unit ``a`` on ``" Spain"`` after "... and Madrid is the capital of", PAD
baseline), so any fixed number of nodes lands on or beside them by chance (Gauss-Legendre
sums of 7.4 / -49.8 / 22.4 at 64 / 128 / 512 nodes against f(x) - f(x') = 19.0). Position 0
is the attention sink, and when its embedding is interpolated the model's sink machinery
(massive activations, which at intermediate ``a`` appear at every position when the baseline
is a delimiter like SmolLM2's PAD ``<|im_end|>``) switches on and off along the path. With
the first token kept as it is the integrand is smooth. So for causal models IG keeps the
first token by default (``keep_first``; its score is then 0 by construction, as for special
tokens). Interpolating it anyway (``keep_first=False``) is possible: the adaptive mode
converges on some paths and reports ``converged: False`` on the others.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from analysis.progress import CancelCheck, ProgressCallback, raise_if_cancelled, report_progress

ABSOLUTE_TOLERANCE = 1e-4  # target units: below this a completeness error is float32 noise
FIRST_GRID = 8  # adaptive: the first grid has at most this many intervals
MIN_WIDTH = 2.0**-20  # adaptive: panels are not halved below this width (dyadic, exact in float32)
SPLIT_SHARE = 0.8  # adaptive: halve the worst panels until the others' errors are <= 0.8 x tolerance
# Batching cost model (SmolLM2-135M, 1 thread): a forward or backward pass of a batch costs about
# as much fixed overhead (weights read from memory, Python) as 22 tokens of one sample (60 ms vs
# 2.7 ms a token); backward and forward cost about the same per token.
FIXED_TOKENS = 22
PAD_TOKENS = 24  # a batch may pad its shorter samples by this many tokens in all
SHARE_FORWARD = True  # False: never share a point's forward between rows (one sample per row)
SHARE_MARGIN = 0.9  # share only when the model says it saves at least 10%


def gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(nodes, weights)`` of the n-point Gauss-Legendre rule on [0, 1] (Captum's)."""
    from captum.attr._utils.approximation_methods import approximation_parameters

    step_sizes, alphas = approximation_parameters("gausslegendre")
    return np.asarray(alphas(n), dtype=np.float64), np.asarray(step_sizes(n), dtype=np.float64)


@dataclass
class IntegratedOutcome:
    """What :func:`integrate` found, per row of the objective.

    ``scores`` float64 [K, N]; ``f_x``, ``f_baseline``, ``delta``, ``error_bound``,
    ``tolerance`` float64 [K]; ``converged`` bool [K]; ``steps``: distinct path points
    evaluated (each in a forward pass, with the backward passes of the rows that needed it);
    ``row_steps`` int [K]: the gradient evaluations each row used; ``segments``: per row, its
    panels ``(a, b, nodes)``; ``stopped``: ``"tolerance"``, ``"step cap"`` or ``"fixed
    steps"`` (per row in ``row_stopped``).
    """

    scores: np.ndarray
    f_x: np.ndarray
    f_baseline: np.ndarray
    delta: np.ndarray
    error_bound: np.ndarray
    tolerance: np.ndarray
    converged: np.ndarray
    steps: int
    row_steps: np.ndarray
    segments: list[list[tuple[float, float, int]]] = field(default_factory=list)
    stopped: str = "fixed steps"
    row_stopped: list[str] = field(default_factory=list)


class _Monotone:
    def __init__(self, progress: ProgressCallback | None):
        self.progress = progress
        self.best = 0.0

    def __call__(self, fraction: float) -> None:
        if fraction > self.best:
            self.best = fraction
            report_progress(self.progress, fraction)


@contextmanager
def frozen_parameters(module: torch.nn.Module) -> Iterator[None]:
    """Parameters of ``module`` that require gradients do not, inside the block; restored
    after it, also when it raises (a cancel, an error).

    A backward pass then computes gradients for the inputs only, never for the weights.

    Examples
    --------
    >>> layer = torch.nn.Linear(2, 2)
    >>> with frozen_parameters(layer):
    ...     layer.weight.requires_grad
    False
    >>> layer.weight.requires_grad
    True
    """
    thawed = [p for p in module.parameters() if p.requires_grad]
    for p in thawed:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in thawed:
            p.requires_grad_(True)


class PathEvaluator:
    """Gradients of an objective's rows at points of the straight path, kept per (point, row).

    ``products[(a, k)]``: float64 ``[N]``, token by token ``grad_k f(x' + a (x - x')) . (x - x')``;
    ``values[(a, k)]``: ``f_k`` at that point. :meth:`run` evaluates what rows ask for, in
    batches of at most ``batch_size`` samples (see the module doc, Speed).
    """

    def __init__(self, objective, batch_size: int, cancelled: CancelCheck | None = None):
        self.objective = objective
        self.batch_size = max(1, int(batch_size))
        self.cancelled = cancelled
        self.diff = objective.x - objective.baseline
        self.diff64 = self.diff.double()
        self.products: dict[tuple[float, int], np.ndarray] = {}
        self.values: dict[tuple[float, int], float] = {}
        self.points: set[float] = set()

    def path(self, alphas: list[float]) -> torch.Tensor:
        """Embedding sequences at ``alphas`` (exactly the baseline at 0 and the input at 1)."""
        o = self.objective
        a = torch.as_tensor(alphas, dtype=torch.float32, device=o.x.device)[:, None, None]
        points = o.baseline[None] + a * self.diff[None]
        return torch.where(a == 1.0, o.x[None], points)

    def run(self, requests: dict[float, set[int]], progress=None) -> None:
        """Evaluate every ``(a, k)`` with ``k`` in ``requests[a]`` (``progress(fraction)``
        after each batch; ``cancelled()`` checked before each)."""
        o = self.objective
        batches = self.plan(requests)
        samples = sum(len(batch) for batch in batches)
        done = 0
        for batch in batches:
            raise_if_cancelled(self.cancelled, "Integrated Gradients")
            alphas = [a for a, _ in batch]
            wanted = [rows for _, rows in batch]
            with torch.enable_grad():
                X = self.path(alphas).detach().requires_grad_(True)
                values, passes = o.row_passes(X, wanted)
                for t, summed in enumerate(passes):
                    (grad,) = torch.autograd.grad(summed, X, retain_graph=t < len(passes) - 1)
                    per_token = (grad.double() * self.diff64[None]).sum(-1).cpu().numpy()
                    for j, rows in enumerate(wanted):
                        if len(rows) > t:
                            self.products[(alphas[j], rows[t])] = per_token[j]
            del X, passes
            values = values.numpy()
            for j, rows in enumerate(wanted):
                for k in rows:
                    self.values[(alphas[j], k)] = float(values[j, k])
            self.points.update(alphas)
            done += len(batch)
            if progress is not None:
                progress(done / samples)

    def plan(self, requests: dict[float, set[int]]) -> list[list[tuple[float, list[int]]]]:
        """The batches of samples ``(a, rows)`` that evaluate ``requests``.

        A point several rows ask for can be one sample for all of them (one forward, one
        backward pass per row) or one sample per row (each on its own prefix, one backward
        pass per batch). Sharing the points that at least ``m`` rows ask for is tried for
        every ``m``; the cheapest plan by :meth:`cost` is taken if it costs at most
        ``SHARE_MARGIN`` times the plan without sharing (the model is rougher for batches
        of a few samples and many passes).
        """
        points = [(a, sorted(rows)) for a, rows in requests.items() if rows]
        alone = self._batches([(a, [k]) for a, rows in points for k in rows])
        best, best_cost = alone, SHARE_MARGIN * self.cost(alone)
        counts = sorted({len(rows) for _, rows in points if len(rows) > 1}) if SHARE_FORWARD else []
        for m in counts:
            samples = []
            for a, rows in points:
                samples += [(a, rows)] if len(rows) >= m else [(a, [k]) for k in rows]
            batches = self._batches(samples)
            cost = self.cost(batches)
            if cost < best_cost:
                best, best_cost = batches, cost
        return best

    def cost(self, batches: list[list[tuple[float, list[int]]]]) -> float:
        """Estimated cost of ``batches`` in token-passes: each forward and each backward pass of
        a batch costs ``FIXED_TOKENS`` plus one per token of every sample (at the batch's
        longest reach, plus one for the head)."""
        o = self.objective
        total = 0.0
        for batch in batches:
            ranks = max(len(rows) for _, rows in batch)
            reach = max(o.reach(rows) for _, rows in batch)
            total += (1 + ranks) * (FIXED_TOKENS + len(batch) * (reach + 1))
        return total

    def _batches(self, samples: list[tuple[float, list[int]]]) -> list[list[tuple[float, list[int]]]]:
        """Samples in batches of at most ``batch_size``: each batch's samples ask for as many
        rows (every backward pass serves every sample of its batch) and need about as many
        leading tokens (the longest first; a batch pads at most ``PAD_TOKENS`` tokens in all,
        about what one more forward and backward pass costs in fixed overhead)."""
        o = self.objective
        keyed = sorted(((len(rows), -o.reach(rows)), a, rows) for a, rows in samples)
        batches: list[list[tuple[float, list[int]]]] = []
        group = longest = padded = None
        for (ranks, minus_reach), a, rows in keyed:
            pad = 0 if longest is None else longest + minus_reach
            if ranks != group or len(batches[-1]) >= self.batch_size or padded + pad > PAD_TOKENS:
                batches.append([])
                group, longest, padded, pad = ranks, -minus_reach, 0, 0
            batches[-1].append((a, rows))
            padded += pad
        return batches


def quadrature_name(adaptive: bool) -> str:
    """The rule :func:`integrate` uses, as results record it."""
    return "simpson, nested adaptive panels" if adaptive else "gauss-legendre"


def first_grid(steps: int) -> int:
    """Intervals of the adaptive mode's first grid: ``min(steps, FIRST_GRID)`` rounded down
    to a power of two, at least 2."""
    return max(2, 2 ** int(math.floor(math.log2(max(2, min(int(steps), FIRST_GRID))))))


def integrate(
    objective,
    *,
    steps: int = 32,
    adaptive: bool = False,
    tolerance: float = 0.05,
    max_steps: int = 1024,
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
        Gauss-Legendre nodes (fixed steps); with ``adaptive``, the first grid has
        ``min(steps, 8)`` intervals (a power of two, at least 2).
    adaptive : bool
        Refine each row's Simpson panels where its exact errors are largest, until its error
        bound is within ``tolerance`` or ``max_steps`` would be passed (see the module doc).
    tolerance : float
        Relative: ``|delta| <= tolerance * |f(x) - f(baseline)|`` (and at least
        ``ABSOLUTE_TOLERANCE``) counts as converged.
    max_steps : int
        The adaptive mode's cap on each row's gradient evaluations.
    batch_size : int, optional
        Path points per forward pass (default: sized from the model and the sequence).
    progress, cancelled : callbacks
        ``progress(fraction)`` after each batch; ``cancelled()`` checked between batches
        (raises ``analysis.progress.Cancelled``).
    on_row : callable, optional
        ``on_row(row, scores)`` as soon as a row is final (rows that converge early first
        in the adaptive mode; all rows at the end with fixed steps).

    Returns
    -------
    IntegratedOutcome

    Raises
    ------
    ValueError
        ``steps`` or ``max_steps`` below 1.

    Examples
    --------
    >>> objective = build_objective(loaded, encode(loaded, "A cat sat."), Target())  # doctest: +SKIP
    >>> outcome = integrate(objective, adaptive=True)                              # doctest: +SKIP
    >>> bool(outcome.converged[0]), float(outcome.delta[0]) < 0.05                 # doctest: +SKIP
    (True, True)

    References
    ----------
    Sundararajan, Taly & Yan (2017), "Axiomatic attribution for deep networks".
    Kokhlikyan et al. (2020), "Captum: a unified and generic model interpretability
    library for PyTorch" (Gauss-Legendre nodes, convergence delta).
    """
    if steps < 1 or max_steps < 1:
        raise ValueError("steps and max_steps must be positive")
    with frozen_parameters(objective.model):
        ends = objective.values(torch.stack([objective.baseline, objective.x]))
        f_b, f_x = ends[0].numpy(), ends[1].numpy()
        tol = np.maximum(tolerance * np.abs(f_x - f_b), ABSOLUTE_TOLERANCE)
        evaluator = PathEvaluator(objective, batch_size or objective.batch_size(grad=True), cancelled)
        report = _Monotone(progress)
        if adaptive:
            outcome = _adaptive(evaluator, steps, max_steps, f_x, f_b, tol, report, on_row)
        else:
            outcome = _fixed(evaluator, steps, f_x, f_b, tol, report, on_row)
    report(1.0)
    return outcome


def _fixed(evaluator: PathEvaluator, steps, f_x, f_b, tol, report, on_row) -> IntegratedOutcome:
    """One Gauss-Legendre rule of ``steps`` nodes for every row."""
    rows = evaluator.objective.num_rows
    nodes, weights = gauss_legendre(steps)
    evaluator.run({float(a): set(range(rows)) for a in nodes}, report)
    scores = np.stack([sum(w * evaluator.products[(float(a), k)] for a, w in zip(nodes, weights, strict=True))
                       for k in range(rows)])
    delta = np.abs(scores.sum(1) - (f_x - f_b))
    if on_row is not None:
        for k in range(rows):
            on_row(k, scores[k].copy())
    return IntegratedOutcome(scores, f_x, f_b, delta, delta.copy(), tol, delta <= tol, len(evaluator.points),
                             np.full(rows, len(nodes), dtype=np.int64), [[(0.0, 1.0, steps)] for _ in range(rows)],
                             "fixed steps", ["fixed steps"] * rows)


def _adaptive(evaluator: PathEvaluator, steps, max_steps, f_x, f_b, tol, report, on_row) -> IntegratedOutcome:
    """Nested Simpson panels refined row by row (see the module doc)."""
    rows = evaluator.objective.num_rows
    n = evaluator.objective.num_tokens
    products, values = evaluator.products, evaluator.values
    intervals = first_grid(steps)
    grid = [i / intervals for i in range(intervals + 1)]
    panels = [[(grid[i], grid[i + 2]) for i in range(0, intervals, 2)] for _ in range(rows)]
    used = np.full(rows, len(grid), dtype=np.int64)
    evaluator.run({a: set(range(rows)) for a in grid}, lambda f: report(0.5 * f))

    def panel_scores(k: int, panel: tuple[float, float]) -> np.ndarray:
        a, b = panel
        m = 0.5 * (a + b)
        return (b - a) / 6.0 * (products[(a, k)] + 4.0 * products[(m, k)] + products[(b, k)])

    def panel_error(k: int, panel: tuple[float, float]) -> float:
        a, b = panel
        return abs(float(panel_scores(k, panel).sum()) - (values[(b, k)] - values[(a, k)]))

    scores = np.zeros((rows, n))
    bound = np.full(rows, np.nan)
    stopped = [""] * rows
    active = set(range(rows))

    def finish(k: int, reason: str, errors: float) -> None:
        scores[k] = sum(panel_scores(k, panel) for panel in panels[k])
        bound[k] = errors
        stopped[k] = reason
        active.discard(k)
        if on_row is not None:
            on_row(int(k), scores[k].copy())

    round_index = 0
    while active:
        requests: dict[float, set[int]] = {}
        for k in sorted(active):
            errors = [panel_error(k, panel) for panel in panels[k]]
            total = float(sum(errors))
            if total <= tol[k]:
                finish(k, "tolerance", total)
                continue
            halve, rest = [], total
            for i in np.argsort(errors)[::-1]:
                if rest <= SPLIT_SHARE * tol[k] or used[k] + 2 * (len(halve) + 1) > max_steps:
                    break
                a, b = panels[k][i]
                if b - a > MIN_WIDTH:
                    halve.append(int(i))
                    rest -= errors[i]
            if not halve:
                finish(k, "step cap", total)
                continue
            refined = []
            for i, panel in enumerate(panels[k]):
                if i in halve:
                    a, b = panel
                    m = 0.5 * (a + b)
                    refined += [(a, m), (m, b)]
                    for new in (0.5 * (a + m), 0.5 * (m + b)):
                        requests.setdefault(new, set()).add(k)
                else:
                    refined.append(panel)
            panels[k] = refined
            used[k] += 2 * len(halve)
        if requests:
            round_index += 1
            evaluator.run(requests, lambda f, r=round_index: report(1.0 - 0.5 ** (r + f)))

    delta = np.abs(scores.sum(1) - (f_x - f_b))
    overall = "tolerance" if all(s == "tolerance" for s in stopped) else "step cap"
    return IntegratedOutcome(scores, f_x, f_b, delta, bound, tol, np.array([s == "tolerance" for s in stopped]),
                             len(evaluator.points), used, [[(a, b, 3) for a, b in panels[k]] for k in range(rows)],
                             overall, stopped)
