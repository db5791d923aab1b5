"""Attribution: which input tokens drive a model's output (targets, methods, faithfulness).

Importing this package is cheap (no torch): the option lists and value types are plain;
the functions that run a model are imported on first use.

Public API
----------
- :func:`attribute` (``methods``): one target over the input's tokens or words ->
  :class:`Attribution`.
- :func:`attribute_generation` (``generation``): every generated token over the tokens
  before it -> :class:`GenerationAttribution`; rows through ``on_row(row, scores)``.
- :func:`generate_greedy`: prompt + greedy continuation, ready for ``attribute_generation``.
- :class:`Target`, :func:`available_targets`, :func:`build_objective` (``targets``).
- :func:`encode`, :func:`from_run`, :func:`from_ids` (``inputs``): the tokens.
- :func:`faithfulness`, :func:`faithfulness_of_function`, :func:`faithfulness_of_objective`,
  :func:`rank_correlation`, :func:`method_agreement` (``faithfulness``).
- :func:`compare_explanations` (``compare``): attribution methods, attention and
  contributions of one target, each scored for faithfulness -> :class:`Comparison` of
  :class:`Explanation`; ``VIEWS``, ``VIEW_ITEMS``, ``DEFAULT_VIEWS``, ``DEFAULT_METHODS``.
- :func:`explain_mask_function` (occlusion / LIME / KernelSHAP of any mask function),
  :func:`integrate` (Integrated Gradients of an objective).
- :func:`write_attribution_folder` (``export``): the CLI's files.
- Options: ``METHODS``, ``METHOD_ITEMS``, ``METHOD_DESCRIPTIONS``, ``BASELINES``,
  ``DEFAULT_BASELINE``, ``TARGET_FUNCTIONS``, ``TARGET_KINDS``, ``FAITHFULNESS_BINS``.

Every long function takes ``progress(fraction)`` and ``cancelled()`` callbacks
(:mod:`analysis.progress`) and raises :class:`analysis.progress.Cancelled` when cancelled.
"""

from __future__ import annotations

import importlib

# torch-free (compare imports what runs a model on first use)
from analysis.attribution.compare import (  # noqa: F401
    DEFAULT_METHODS,
    DEFAULT_VIEWS,
    VIEW_ITEMS,
    VIEWS,
    Comparison,
    Explanation,
    compare_explanations,
)

# named like its module: bound here so the name is the function
from analysis.attribution.faithfulness import (  # noqa: F401, E402
    faithfulness,
    faithfulness_of_function,
    faithfulness_of_objective,
    method_agreement,
    rank_correlation,
)
from analysis.attribution.options import (  # noqa: F401
    BASELINE_ITEMS,
    BASELINES,
    DEFAULT_BASELINE,
    DEFAULT_MAX_STEPS,
    DEFAULT_SAMPLES,
    DEFAULT_STEPS,
    DEFAULT_TOLERANCE,
    FAITHFULNESS_BINS,
    GRADIENT_METHODS,
    METHOD_DESCRIPTIONS,
    METHOD_ITEMS,
    METHODS,
    PERTURBATION_METHODS,
    TARGET_FUNCTION_ITEMS,
    TARGET_FUNCTIONS,
    TARGET_ITEMS,
    TARGET_KINDS,
)
from analysis.attribution.results import (  # noqa: F401
    Attribution,
    AttributionInput,
    FaithfulnessResult,
    GenerationAttribution,
    TargetInfo,
)
from analysis.attribution.words import WordUnits, aggregate, word_units  # noqa: F401

_LAZY = {
    "attribute": "analysis.attribution.methods",
    "check_options": "analysis.attribution.methods",
    "explain_mask_function": "analysis.attribution.methods",
    "attribute_generation": "analysis.attribution.generation",
    "generate_greedy": "analysis.attribution.generation",
    "Target": "analysis.attribution.targets",
    "available_targets": "analysis.attribution.targets",
    "build_objective": "analysis.attribution.targets",
    "encode": "analysis.attribution.inputs",
    "from_run": "analysis.attribution.inputs",
    "from_ids": "analysis.attribution.inputs",
    "integrate": "analysis.attribution.integrated",
    "write_attribution_folder": "analysis.attribution.export",
}

__all__ = sorted(
    [*_LAZY, "faithfulness", "faithfulness_of_function", "faithfulness_of_objective", "rank_correlation",
     "method_agreement", "compare_explanations", "Comparison", "Explanation", "VIEWS", "VIEW_ITEMS",
     "DEFAULT_VIEWS", "DEFAULT_METHODS", "Attribution", "AttributionInput", "FaithfulnessResult", "GenerationAttribution", "TargetInfo",
     "WordUnits", "aggregate", "word_units", "METHODS", "METHOD_ITEMS", "METHOD_DESCRIPTIONS", "BASELINES",
     "BASELINE_ITEMS", "DEFAULT_BASELINE", "TARGET_FUNCTIONS", "TARGET_KINDS", "FAITHFULNESS_BINS"]
)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'analysis.attribution' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
