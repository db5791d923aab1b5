"""Integrated Gradients over the input's word embeddings, with an honest convergence delta.

IG (Sundararajan et al. 2017) scores token ``i`` with
``(x_i - x'_i) . integral_0^1 grad_i f(x' + a (x - x')) da``; the scores add up to
``f(x) - f(x')`` exactly when the integral is exact, so
``delta = |sum(scores) - (f(x) - f(x'))|`` measures the quadrature error.

Quadrature
----------
The integral is a composite Gauss-Legendre rule over segments of the path ``a in [0, 1]``
(nodes and weights from Captum's ``approximation_parameters("gausslegendre")``). A fixed
``steps`` is one segment of that many nodes, exactly Captum's ``IntegratedGradients`` with
``method="gausslegendre"``. The *adaptive* mode doubles each row's gradient evaluations per
round and spends them where its path needs them: on every segment ``[a, b]`` the exact
increment ``f(b) - f(a)`` is known from two forward passes, so each segment's own
completeness error is known; the segments with more than their share of the error are
halved (``segment_steps`` nodes per half), until the sum of the segment errors (a bound on
``|delta|``: errors cannot cancel between segments) is at most
``tolerance * |f(x) - f(x')|``, or the step cap comes first: ``converged`` says which.

Speed
-----
Every batch of path points is one forward pass, shared by all the rows that need those
points (all target positions of a generation: causality makes position ``t``'s output
independent of later tokens, so one pass over the whole sequence serves them all), with
logits only at the positions the rows read; then one backward pass per row
(vector-Jacobian products; batched with vmap when ``BATCHED_VJP`` is on). Each row refines
its own segments, so a row whose path is smooth stops taking backward passes while
another is still refined, and a batch needed only by early rows runs on the prefix up to
their last position. Products are accumulated in float64.

What makes a path hard (measured on SmolLM2-135M)
-------------------------------------------------
float32 is not the problem: on a 201-point scan of the path the integrand in float64
agrees with float32 to 3-4 digits. The integrand itself has narrow spikes (width ~1e-3 in
``a``, up to ~4400 log-prob units per unit ``a`` on ``" Spain"`` after "... and Madrid is
the capital of", PAD baseline), so any fixed number of nodes lands on or beside them by
chance (a 201-point trapezoid gives 6.3 against f(x) - f(x') = 19.1; Gauss-Legendre sums
of 7.4 / -49.8 / 22.4 at 64 / 128 / 512 nodes were reported). They come from the *first token* of a
causal LM without a BOS token: position 0 is the attention sink, and when its embedding is
interpolated the model's sink machinery (massive activations, which at intermediate ``a``
appear at every position when the baseline is a delimiter like SmolLM2's PAD
``<|im_end|>``) switches on and off along the path. With the first token kept as it is the
same integrand is smooth. So for causal models IG keeps the first token by default
(``keep_first``; its score is then 0 by construction, as for special tokens); the adaptive
refinement then converges in a few dozen to a few hundred evaluations where it did not at
all. Interpolating it anyway (``keep_first=False``) is possible: the adaptive mode still
converges on some paths (the " Spain" one: bound 3.4%, delta 0.8%, in 416 evaluations)
and reports ``converged: False`` on the others (" Paris." then "\\n" after "The capital of
France is": still 757% after 256 evaluations with PAD, 1366% with zero).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from analysis.progress import CancelCheck, ProgressCallback, raise_if_cancelled, report_progress

ABSOLUTE_TOLERANCE = 1e-4  # target units: below this a completeness error is float32 noise
_VMAP_SEQUENCES = 128  # rows x points per batched backward (larger batches gained nothing)
# Batched VJPs (vmap over the backward) were 1.7x faster than a loop of backward passes on
# a heavily loaded machine but no faster, or slower, on a quiet one (SmolLM2, 8 rows x 16
# points: loop 3.6 s, vmap 3.7-5.3 s): off by default.
BATCHED_VJP = False
_vmap_works = True  # set to False the first time is_grads_batched fails


def gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(nodes, weights)`` of the n-point Gauss-Legendre rule on [0, 1] (Captum's)."""
    from captum.attr._utils.approximation_methods import approximation_parameters

    step_sizes, alphas = approximation_parameters("gausslegendre")
    return np.asarray(alphas(n), dtype=np.float64), np.asarray(step_sizes(n), dtype=np.float64)


@dataclass
class IntegratedOutcome:
    """What :func:`integrate` found, per row of the objective.

    ``scores`` float64 [K, N]; ``f_x``, ``f_baseline``, ``delta``, ``error_bound``,
    ``tolerance`` float64 [K]; ``converged`` bool [K]; ``steps``: path points evaluated
    (each a forward pass and the backward passes of the rows that needed it);
    ``row_steps`` int [K]: the evaluations each row used; ``segments``: per row, its
    segments ``(a, b, nodes)``; ``stopped``: ``"tolerance"``, ``"step cap"`` or
    ``"fixed steps"`` (per row in ``row_stopped``).
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


def row_gradients(values: torch.Tensor, points: torch.Tensor, rows: list[int]) -> torch.Tensor:
    """Gradients of ``values[:, k].sum()`` for each ``k`` in ``rows`` w.r.t. ``points``:
    ``[len(rows), *points.shape]``. One batched vector-Jacobian product (vmap over the
    backward pass) per chunk of rows; a loop of backward passes where vmap cannot run."""
    global _vmap_works
    b = points.shape[0]
    out = []
    chunk = max(1, _VMAP_SEQUENCES // max(b, 1))
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        last = start + chunk >= len(rows)
        if BATCHED_VJP and _vmap_works and len(part) > 1:
            cotangents = torch.zeros((len(part), *values.shape), dtype=values.dtype, device=values.device)
            for j, k in enumerate(part):
                cotangents[j, :, k] = 1.0
            try:
                (grad,) = torch.autograd.grad(values, points, grad_outputs=cotangents, retain_graph=not last,
                                              is_grads_batched=True)
                out.append(grad)
                continue
            except RuntimeError:  # an op without a batching rule: loop instead from now on
                _vmap_works = False
        for j, k in enumerate(part):
            (grad,) = torch.autograd.grad(values[:, k].sum(), points, retain_graph=not (last and j == len(part) - 1))
            out.append(grad[None])
    return torch.cat(out)


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
        Double each row's gradient evaluations, refining its worst segments, until its
        error bound is within ``tolerance`` or ``max_steps`` would be passed.
    tolerance : float
        Relative: ``|delta| <= tolerance * |f(x) - f(baseline)|`` (and at least
        ``ABSOLUTE_TOLERANCE``) counts as converged.
    max_steps : int
        The adaptive mode's cap on each row's gradient evaluations.
    segment_steps : int
        Nodes on each half of a refined segment.
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

    # segment (a, b) -> [K, N] contributions; which rows have them
    contributions: dict[tuple[float, float], np.ndarray] = {}
    computed: dict[tuple[float, float], np.ndarray] = {}
    nodes_of: dict[tuple[float, float], int] = {}
    leaves: list[list[tuple[float, float]]] = [[(0.0, 1.0)] for _ in range(rows)]
    row_steps = np.zeros(rows, dtype=np.int64)
    evaluated = 0

    def evaluate(requests: dict[tuple[float, float], set[int]], scale) -> None:
        """Contributions of the requesting rows on each requested segment."""
        nonlocal evaluated
        # group segments by who asked, so a batch's backward serves only rows that need it
        order = sorted(requests, key=lambda key: (tuple(sorted(requests[key])), key))
        plan = []  # (alpha, weight, segment key)
        for key in order:
            nodes, w = gauss_legendre(nodes_of[key])
            a, b = key
            for alpha, weight in zip(a + (b - a) * nodes, (b - a) * w, strict=True):
                plan.append((alpha, weight, key))
        batches, current = [], []
        for item in plan:  # a batch never mixes row sets
            if current and (len(current) >= size or requests[current[-1][2]] != requests[item[2]]):
                batches.append(current)
                current = []
            current.append(item)
        if current:
            batches.append(current)
        done = 0
        for batch in batches:
            raise_if_cancelled(cancelled, "Integrated Gradients")
            wanted = sorted(requests[batch[0][2]])
            alpha = torch.as_tensor([item[0] for item in batch], dtype=torch.float32, device=x.device)
            weight = np.array([item[1] for item in batch])
            keys = [item[2] for item in batch]
            with torch.enable_grad():
                points = (base[None] + alpha[:, None, None] * diff[None]).detach().requires_grad_(True)
                values = objective(points, rows=wanted)
                grads = row_gradients(values, points, wanted)  # [R, b, N, E]
            per_token = (grads.double() * diff64[None, None]).sum(-1).cpu().numpy() * weight[None, :, None]
            del values, points, grads
            for key in set(keys):
                mask = np.array([k == key for k in keys])
                contributions.setdefault(key, np.zeros((rows, n)))
                computed.setdefault(key, np.zeros(rows, dtype=bool))
                contributions[key][wanted] += per_token[:, mask].sum(1)
            for k in wanted:
                row_steps[k] += len(batch)
            evaluated += len(batch)
            done += len(batch)
            report(scale(done / max(len(plan), 1)))
        for key, who in requests.items():
            computed[key][sorted(who)] = True

    def endpoints(keys) -> None:
        new = sorted({p for key in keys for p in key} - set(f_at))
        if new:
            a = torch.as_tensor(new, dtype=torch.float32, device=x.device)
            values = objective.values(base[None] + a[:, None, None] * diff[None])
            for p, v in zip(new, values.numpy(), strict=True):
                f_at[p] = v

    def error(key, k) -> float:
        return float(abs(contributions[key][k].sum() - (f_at[key[1]][k] - f_at[key[0]][k])))

    def scores_of(k) -> np.ndarray:
        return sum(contributions[key][k] for key in leaves[k])

    nodes_of[(0.0, 1.0)] = steps
    if not adaptive:
        evaluate({(0.0, 1.0): set(range(rows))}, lambda f: f)
        final = contributions[(0.0, 1.0)].copy()
        delta = np.abs(final.sum(1) - total)
        converged = delta <= tol
        if on_row is not None:
            for k in range(rows):
                on_row(k, final[k].copy())
        report(1.0)
        return IntegratedOutcome(final, f_x, f_b, delta, delta.copy(), tol, converged, evaluated, row_steps,
                                 [[(0.0, 1.0, steps)] for _ in range(rows)], "fixed steps", ["fixed steps"] * rows)

    final = np.zeros((rows, n))
    bound = np.full(rows, np.nan)
    converged = np.zeros(rows, dtype=bool)
    stopped = [""] * rows
    active = set(range(rows))
    round_index = 0
    evaluate({(0.0, 1.0): set(range(rows))}, lambda f: 0.5 * f)

    def finish(k: int, reason: str, errors_k: float) -> None:
        final[k] = scores_of(k)
        bound[k] = errors_k
        converged[k] = reason == "tolerance"
        stopped[k] = reason
        active.discard(k)
        if on_row is not None:
            on_row(int(k), final[k].copy())

    while active:
        requests: dict[tuple[float, float], set[int]] = {}
        splits: dict[int, list[tuple[float, float]]] = {}
        for k in sorted(active):
            errs = np.array([error(key, k) for key in leaves[k]])
            if errs.sum() <= tol[k]:
                finish(k, "tolerance", float(errs.sum()))
                continue
            budget = min(max(int(row_steps[k]), 2 * segment_steps), max_steps - int(row_steps[k]))
            if budget < 2 * segment_steps:
                finish(k, "step cap", float(errs.sum()))
                continue
            share = errs / tol[k]
            fair = share.sum() / len(errs)
            order = [i for i in np.argsort(-share) if share[i] > 0]
            chosen = [i for i in order if share[i] >= fair] or order[:1]
            picked, cost = [], 0
            for i in chosen:
                if cost + 2 * segment_steps > budget:
                    break
                picked.append(leaves[k][i])
                cost += 2 * segment_steps
            splits[k] = picked
            for a, b in picked:
                mid = 0.5 * (a + b)
                for child in ((a, mid), (mid, b)):
                    nodes_of.setdefault(child, segment_steps)
                    if child in computed and computed[child][k]:
                        continue  # another row's earlier request computed it for this row too
                    requests.setdefault(child, set()).add(k)
        if not requests and not splits:
            break
        round_index += 1
        endpoints(requests)
        if requests:
            evaluate(requests, lambda f, r=round_index: 1.0 - 0.5 ** (r + f))
        for k, picked in splits.items():
            new_leaves = []
            for key in leaves[k]:
                if key in picked:
                    mid = 0.5 * (key[0] + key[1])
                    new_leaves += [(key[0], mid), (mid, key[1])]
                else:
                    new_leaves.append(key)
            leaves[k] = new_leaves

    delta = np.abs(final.sum(1) - total)
    report(1.0)
    overall = "tolerance" if all(s == "tolerance" for s in stopped) else "step cap"
    return IntegratedOutcome(final, f_x, f_b, delta, bound, tol, converged, evaluated, row_steps,
                             [[(a, b, nodes_of[(a, b)]) for a, b in leaves[k]] for k in range(rows)],
                             overall, stopped)
