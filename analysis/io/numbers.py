"""Numbers as the files (and the window) write them: rounded to what float32 means.

Attention weights are float32: about 7 significant digits. The analysis computes in
float64, so its results carry noise below that precision (``-0.0``, ``-4.66e-17`` for a
value that is 0, ``0.30000001192092896`` for ``0.3``). Every writer of Attention Atlas
(``tokens.csv``, ``edges.csv``, the matrix CSV, ``summary.json``, GEXF and GraphML
attributes) passes its numbers through :func:`clean_number` / :func:`format_number`:

- integers (and bools) stay integers;
- a float within :data:`ZERO_BELOW` (``1e-12``) of 0 is 0, and 0 is never ``-0.0``;
- any other float is rounded to :data:`SIGNIFICANT_DIGITS` (7) significant digits and
  written as the shortest text that reads back as that value (Python's ``repr``):
  ``0.30000001192092896`` -> ``0.3``, ``1/3`` -> ``0.3333333``, ``2.5e-08`` stays
  ``2.5e-08``;
- NaN and infinities are written ``nan``, ``inf``, ``-inf`` (``summary.json`` writes
  them as ``null``, see :func:`clean_json`).

Widgets use the same helpers with fewer digits for tooltips and tables
(``format_number(x, digits=4)``), so the window never shows ``-0`` either.

Examples
--------
>>> format_number(-4.66e-17), format_number(-0.0), format_number(0.30000001192092896)
('0.0', '0.0', '0.3')
>>> format_number(1 / 3), format_number(1 / 3, digits=3), format_number(12)
('0.3333333', '0.333', '12')
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

SIGNIFICANT_DIGITS = 7  # float32 carries 24 bits: about 7.2 decimal digits
ZERO_BELOW = 1e-12  # |x| below this is written as 0


def clean_number(value, digits: int = SIGNIFICANT_DIGITS) -> int | float:
    """``value`` as a plain Python int or float, rounded as the module doc says."""
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    x = float(value)
    if not math.isfinite(x):
        return x
    if abs(x) < ZERO_BELOW:
        return 0.0
    return float(f"{x:.{int(digits)}g}") + 0.0  # + 0.0 turns a -0.0 into 0.0


def format_number(value, digits: int = SIGNIFICANT_DIGITS) -> str:
    """The text a file (or a tooltip) shows for ``value``: ``"0.3"``, ``"12"``, ``"nan"``."""
    cleaned = clean_number(value, digits)
    if isinstance(cleaned, int):
        return str(cleaned)
    return repr(cleaned)


def clean_array(values, digits: int = SIGNIFICANT_DIGITS) -> list:
    """Each number of an array (any shape) cleaned; nested lists of Python numbers."""
    array = np.asarray(values)
    if array.ndim == 0:
        return clean_number(array.item(), digits)
    return [clean_array(v, digits) for v in array]


def clean_json(data, digits: int = SIGNIFICANT_DIGITS):
    """A copy of JSON-like ``data`` (dicts, lists, tuples, numpy scalars and arrays) with
    every float cleaned and NaN / infinities turned into None (strict JSON has neither)."""
    if isinstance(data, Mapping):
        return {str(k): clean_json(v, digits) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [clean_json(v, digits) for v in data]
    if isinstance(data, np.ndarray):
        return clean_json(data.tolist(), digits)
    if isinstance(data, np.generic):
        data = data.item()
    if isinstance(data, bool) or data is None or isinstance(data, str):
        return data
    if isinstance(data, (int, float)):
        cleaned = clean_number(data, digits)
        if isinstance(cleaned, float) and not math.isfinite(cleaned):
            return None
        return cleaned
    return data
