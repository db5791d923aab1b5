"""Attribution results written to a folder: what ``attention-atlas attribute`` and the
window's export both write.

- ``attribution.csv``: ``index,token,start,end,score``, one row per unit (token, or word
  with ``words``); ``start``/``end`` are the character span in the unit's segment text. For
  a generation the score is the unit's total over the generated tokens (the sum of its
  column; the matrix itself is in the npz).
- ``attribution.npz`` (generations): ``scores`` float32 ``[targets, sources]`` (NaN where a
  source comes at or after its target), ``targets`` and ``sources`` (labels, str),
  ``target_positions`` (int64), ``f_x``, ``f_baseline``, ``delta`` (float64), ``converged``
  (bool). Loads with ``allow_pickle=False``.
- ``summary.json``: model, method and what its numbers mean, its parameters, the target,
  the target function, the baseline, ``f_x``, ``f_baseline``, ``steps``, ``delta``,
  ``converged``, faithfulness (AOPC) figures and timings in seconds.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from analysis.attribution.results import Attribution, FaithfulnessResult, GenerationAttribution
from analysis.io.folder import ensure_writable_dir, write_json, write_tokens_csv


def _spans(units) -> list[tuple[int, int]]:
    return [(int(a), int(b)) for a, b in np.asarray(units.spans).reshape(-1, 2)]


def _finite(value):
    if value is None:
        return None
    value = float(value)
    return value if np.isfinite(value) else None


def build_summary(
    result: Attribution | GenerationAttribution,
    *,
    model: str | None = None,
    faithfulness=None,
    timings: dict | None = None,
) -> dict:
    """The ``summary.json`` content of a result (see the module doc)."""
    generation = isinstance(result, GenerationAttribution)
    summary: dict = {
        "model": model,
        "method": result.method,
        "description": result.description,
        "parameters": dict(result.params),
        "baseline": result.baseline,
        "unit": "word" if result.params.get("words") else "token",
        "tokens": result.inputs.num_tokens,
        "units": result.units.num_units,
        "steps": result.steps,
        "samples": result.samples,
    }
    if generation:
        summary.update(
            target={"kind": "generation", "tokens": list(result.target_labels),
                    "positions": [int(p) for p in result.target_positions]},
            target_function=result.target_function,
            prompt_tokens=result.inputs.prompt_length,
            f_x=[float(v) for v in result.f_x],
            f_baseline=[float(v) for v in result.f_baseline],
            delta=[_finite(v) for v in result.delta],
            converged=[bool(v) for v in result.converged] if result.method == "integrated_gradients" else None,
            csv_score="sum over the generated tokens of each source's scores",
        )
    else:
        t = result.target
        summary.update(
            target={"kind": t.kind, "description": t.description, "token": t.token, "token_id": t.token_id,
                    "contrast": t.contrast, "contrast_id": t.contrast_id, "position": t.position,
                    "label": t.label, "label_name": t.label_name},
            target_function=t.function,
            f_x=float(result.f_x),
            f_baseline=float(result.f_baseline),
            delta=_finite(result.delta),
            converged=result.converged,
        )
    if faithfulness is not None:
        if isinstance(faithfulness, FaithfulnessResult):
            summary["faithfulness"] = faithfulness.as_dict()
        else:  # one per generated token
            rows = [f.as_dict() for f in faithfulness]
            summary["faithfulness"] = {
                "rows": rows,
                "aopc_comprehensiveness": float(np.mean([r["aopc_comprehensiveness"] for r in rows])),
                "aopc_sufficiency": float(np.mean([r["aopc_sufficiency"] for r in rows])),
            }
    summary["timings"] = {**dict(result.timings), **dict(timings or {})}
    return summary


def write_attribution_folder(
    folder: str | os.PathLike,
    result: Attribution | GenerationAttribution,
    *,
    model: str | None = None,
    faithfulness=None,
    timings: dict | None = None,
) -> Path:
    """Write ``attribution.csv`` (+ ``attribution.npz`` for a generation) and
    ``summary.json`` into ``folder`` (created if missing); returns the folder."""
    path = ensure_writable_dir(folder)
    units = result.units
    if isinstance(result, GenerationAttribution):
        matrix = np.asarray(result.scores, dtype=np.float64)
        column = np.where(np.isnan(matrix), 0.0, matrix).sum(0)
        column[np.isnan(matrix).all(0)] = np.nan
        write_tokens_csv(path / "attribution.csv", units.labels, _spans(units), {"score": column})
        np.savez(
            path / "attribution.npz",
            scores=matrix.astype(np.float32),
            targets=np.array(result.target_labels, dtype=str),
            sources=np.array(units.labels, dtype=str),
            target_positions=np.asarray(result.target_positions, dtype=np.int64),
            f_x=np.asarray(result.f_x, dtype=np.float64),
            f_baseline=np.asarray(result.f_baseline, dtype=np.float64),
            delta=np.asarray(result.delta, dtype=np.float64),
            converged=np.asarray(result.converged, dtype=bool),
        )
    else:
        write_tokens_csv(path / "attribution.csv", units.labels, _spans(units), {"score": result.scores})
    write_json(path / "summary.json", build_summary(result, model=model, faithfulness=faithfulness, timings=timings))
    return path
