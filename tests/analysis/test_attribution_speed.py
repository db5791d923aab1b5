"""The faster Integrated Gradients engine computes what it says: the adaptive mode's scores
are the composite Simpson sums of independently computed gradients over the panels it
reports, its error bound is the sum of those panels' exact errors, nothing it evaluated is
left out of the rule, and the batching plan changes nothing but the cost."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from analysis.attribution import (  # noqa: E402
    Target,
    attribute_generation,
    build_objective,
    generate_greedy,
    integrated,  # noqa: E402
)
from analysis.attribution.integrated import PathEvaluator, first_grid, integrate  # noqa: E402

TEXT = "the cat sat on the mat"


@pytest.fixture(scope="module")
def generation(tiny_model_dir):
    from analysis.models.loading import load_model

    loaded = load_model(str(tiny_model_dir("qwen2")))  # its adaptive paths need refining
    return loaded, generate_greedy(loaded, TEXT, 3)


def independent(objective, alpha: float, k: int) -> tuple[float, np.ndarray]:
    """f_k and the token-by-token gradient . (x - x') at one path point, by one backward pass."""
    diff = objective.x - objective.baseline
    point = (objective.baseline + alpha * diff)[None].detach().requires_grad_(True)
    with torch.enable_grad():
        value = objective(point)[0, k]
        (grad,) = torch.autograd.grad(value, point)
    return float(value.detach()), (grad[0].double() * diff.double()).sum(-1).numpy()


def test_adaptive_scores_are_simpson_sums_over_the_reported_panels(generation):
    loaded, inputs = generation
    objective = build_objective(loaded, inputs, Target("generation"), keep_first=True)
    outcome = integrate(objective, adaptive=True, steps=4, tolerance=0.01)
    assert outcome.row_steps.max() > 5  # refined beyond the first grid (5 points)
    ends = objective.values(torch.stack([objective.baseline, objective.x])).numpy()
    for k in range(objective.num_rows):
        panels = outcome.segments[k]
        assert panels[0][0] == 0.0 and panels[-1][1] == 1.0
        assert all(p[1] == q[0] for p, q in zip(panels, panels[1:], strict=False))  # contiguous, no gaps
        nodes = sorted({a for a, _, _ in panels} | {b for _, b, _ in panels} | {(a + b) / 2 for a, b, _ in panels})
        assert outcome.row_steps[k] == len(nodes)  # every evaluation is in the rule: nothing discarded
        at = {a: independent(objective, a, k) for a in nodes}
        expected = np.zeros(objective.num_tokens)
        bound = 0.0
        for a, b, count in panels:
            assert count == 3
            m = (a + b) / 2
            panel = (b - a) / 6 * (at[a][1] + 4 * at[m][1] + at[b][1])  # Simpson's rule
            expected += panel
            bound += abs(panel.sum() - (at[b][0] - at[a][0]))
        np.testing.assert_allclose(outcome.scores[k], expected, atol=1e-5)
        assert outcome.error_bound[k] == pytest.approx(bound, abs=1e-5)
        total = ends[1, k] - ends[0, k]
        assert outcome.delta[k] == pytest.approx(abs(outcome.scores[k].sum() - total), abs=1e-9)
        assert outcome.delta[k] <= outcome.error_bound[k] + 1e-5  # the bound bounds |delta|
        assert outcome.converged[k] == (outcome.error_bound[k] <= outcome.tolerance[k])


def test_fixed_steps_are_captums_gauss_legendre_on_every_row(generation):
    """Fixed steps through the shared evaluator: Captum's IntegratedGradients (Gauss-Legendre)
    of each row on its own."""
    from captum.attr import IntegratedGradients

    loaded, inputs = generation
    objective = build_objective(loaded, inputs, Target("generation"), keep_first=True)
    outcome = integrate(objective, steps=12, batch_size=5)
    for k in range(objective.num_rows):
        ig = IntegratedGradients(lambda X, k=k: objective(X)[:, k])
        theirs, delta = ig.attribute(objective.x[None], baselines=objective.baseline[None], n_steps=12,
                                     method="gausslegendre", return_convergence_delta=True)
        np.testing.assert_allclose(outcome.scores[k], theirs[0].sum(-1).double().numpy(), atol=1e-5)
        assert float(outcome.delta[k]) == pytest.approx(abs(float(delta[0])), abs=1e-5)


def test_the_batching_plan_changes_the_cost_not_the_result(generation, monkeypatch):
    """With and without sharing a point's forward between rows, in batches of any size: the
    same scores, deltas and evaluations."""
    loaded, inputs = generation
    results = []
    for share, batch in ((True, None), (False, None), (True, 3)):
        monkeypatch.setattr(integrated, "SHARE_FORWARD", share)
        results.append(attribute_generation(loaded, inputs, "integrated_gradients", adaptive=True, steps=4,
                                            tolerance=0.01, batch_size=batch))
    for other in results[1:]:
        np.testing.assert_allclose(other.scores, results[0].scores, atol=1e-5, equal_nan=True)
        np.testing.assert_allclose(other.delta, results[0].delta, atol=1e-5)
        assert other.params["row_steps"] == results[0].params["row_steps"]


def test_batches_hold_samples_of_one_rank_within_the_size(generation):
    """Every batch's samples ask for as many rows (each backward pass serves all of them) and
    there are at most batch_size of them; every requested (point, row) is in exactly one."""
    loaded, inputs = generation
    objective = build_objective(loaded, inputs, Target("generation"), keep_first=True)
    evaluator = PathEvaluator(objective, batch_size=4)
    requests = {a / 16: {0, 1, 2} for a in range(17)} | {1 / 32: {2}, 3 / 32: {0, 2}, 5 / 32: {1}}
    batches = evaluator.plan(requests)
    assert all(0 < len(batch) <= 4 for batch in batches)
    assert all(len({len(rows) for _, rows in batch}) == 1 for batch in batches)
    pairs = [(a, k) for batch in batches for a, rows in batch for k in rows]
    assert sorted(pairs) == sorted((a, k) for a, rows in requests.items() for k in rows)


@pytest.mark.parametrize(("steps", "intervals"), [(1, 2), (2, 2), (3, 2), (4, 4), (7, 4), (8, 8), (32, 8)])
def test_the_first_grid(steps, intervals):
    assert first_grid(steps) == intervals
