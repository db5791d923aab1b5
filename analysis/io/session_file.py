"""Session files (``.atlas``): an analysis saved to reopen later, even without the model.

A session file is a zip archive of

- ``session.json``: ``{"format": "attention-atlas-session", "version": 1, ...}`` with the
  texts, the model's facts, the run's tokens, labels, word ids, notice and timings, the
  generation record (if any), and the person's choices (``state``: view, graph settings,
  layout, path kind, selected token, path ends), free-form JSON the window reads back;
- ``arrays.npz``: the run's arrays (attentions, ids, offsets, masks, decoder and cross
  attentions), read with ``allow_pickle=False``: opening a session file never runs code;
  the contributions computed for the run (``run.contributions``: ``"alti"``,
  ``"alti_layers"``, ... :data:`analysis.contributions.RUN_KEYS`, each ``[layers, T, T]``)
  as ``contributions.<key>``. Files without them (saved before they existed) open with no
  contributions; entries of keys this version does not know are skipped.

A damaged file, a file that is not a session, or one written by a newer version (a
``version`` above :data:`VERSION`) is refused with one sentence (:class:`SessionFileError`).

Examples
--------
>>> save_session("analysis.atlas", run, state={"view": {"kind": "head", "layer": 2}})   # doctest: +SKIP
>>> run, state = load_session("analysis.atlas")                                          # doctest: +SKIP
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import asdict, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from analysis.run import AttentionRun, ModelFacts

FORMAT = "attention-atlas-session"
VERSION = 1
SUFFIX = ".atlas"
ARRAYS = ("input_ids", "offsets", "special_mask", "segment_ids", "attentions", "decoder_input_ids",
          "decoder_attentions", "cross_attentions")
CONTRIBUTION_PREFIX = "contributions."  # arrays.npz name of run.contributions[key]
MAX_JSON_BYTES = 200_000_000  # a session's text part; more means a damaged or hostile file


class SessionFileError(ValueError):
    """A session file cannot be written or read; the message says why, in one sentence."""


def save_session(path: str | os.PathLike, run: AttentionRun, *, state: dict[str, Any] | None = None) -> Path:
    """Write ``run`` and the person's ``state`` (JSON-ready) to ``path`` (a ``.atlas`` file).

    Written to a temporary file beside ``path`` and renamed, so a failed save leaves any
    earlier file of that name as it was.
    """
    path = Path(path)
    document = {
        "format": FORMAT,
        "version": VERSION,
        "saved": datetime.now(UTC).isoformat(timespec="seconds"),
        "run": _run_document(run),
        "state": state or {},
    }
    arrays = {name: np.asarray(getattr(run, name)) for name in ARRAYS if getattr(run, name) is not None}
    arrays.update(_contribution_arrays(run))
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("session.json", json.dumps(document, ensure_ascii=False, default=_json_default))
            archive.writestr("arrays.npz", buffer.getvalue(), compress_type=zipfile.ZIP_STORED)
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise SessionFileError(f"cannot save the session to '{path}': {error.strerror or error}") from error
    return path


def load_session(path: str | os.PathLike) -> tuple[AttentionRun, dict[str, Any]]:
    """The run and the state saved in a session file; :class:`SessionFileError` otherwise."""
    path = Path(path)
    name = f"'{path.name}'"
    try:
        archive = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise SessionFileError(f"no such session file: '{path}'") from None
    except (zipfile.BadZipFile, OSError):
        raise SessionFileError(f"{name} is not an Attention Atlas session file (.atlas), or it is damaged") from None
    with archive:
        try:
            info = archive.getinfo("session.json")
            if info.file_size > MAX_JSON_BYTES:
                raise SessionFileError(f"{name} is damaged: its description is implausibly large")
            document = json.loads(archive.read("session.json").decode("utf-8"))
        except KeyError:
            raise SessionFileError(f"{name} is not an Attention Atlas session file: it has no session.json") from None
        except (ValueError, zipfile.BadZipFile, OSError) as error:
            raise SessionFileError(f"{name} is damaged: its description cannot be read ({error})") from None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise SessionFileError(f"{name} is not an Attention Atlas session file")
        version = document.get("version")
        if not isinstance(version, int) or version < 1:
            raise SessionFileError(f"{name} is damaged: it has no valid format version")
        if version > VERSION:
            raise SessionFileError(f"{name} was saved by a newer Attention Atlas (session format {version}); "
                                   f"this one reads formats up to {VERSION}: update Attention Atlas to open it")
        try:
            with archive.open("arrays.npz") as handle:
                data = np.load(io.BytesIO(handle.read()), allow_pickle=False)
                arrays = {key: data[key] for key in data.files}
        except KeyError:
            raise SessionFileError(f"{name} is damaged: its arrays are missing") from None
        except (ValueError, OSError, zipfile.BadZipFile) as error:
            raise SessionFileError(f"{name} is damaged: its arrays cannot be read ({error})") from None
    try:
        run = _run_from(document["run"], arrays)
    except (KeyError, TypeError, ValueError) as error:
        raise SessionFileError(f"{name} is damaged: {error}") from None
    state = document.get("state")
    return run, state if isinstance(state, dict) else {}


# ---------------------------------------------------------------------------------------------


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot save {type(value).__name__} in a session file")


def _contribution_arrays(run: AttentionRun) -> dict[str, np.ndarray]:
    """``run.contributions`` as arrays.npz entries (keys the format knows only)."""
    from analysis.contributions import RUN_KEYS

    unknown = sorted(set(run.contributions) - set(RUN_KEYS))
    if unknown:
        raise SessionFileError(f"cannot save contributions named {', '.join(unknown)}; a session file "
                               f"holds {', '.join(RUN_KEYS)}")
    return {CONTRIBUTION_PREFIX + key: np.asarray(value) for key, value in run.contributions.items()}


def _contributions_from(arrays: dict[str, np.ndarray], layers: int, tokens: int) -> dict[str, np.ndarray]:
    """The contributions saved in arrays.npz, checked against the run's shape."""
    from analysis.contributions import RUN_KEYS

    found = {}
    for name, array in arrays.items():
        key = name.removeprefix(CONTRIBUTION_PREFIX)
        if not name.startswith(CONTRIBUTION_PREFIX) or key not in RUN_KEYS:
            continue
        if array.shape != (layers, tokens, tokens) or not np.issubdtype(array.dtype, np.floating):
            raise ValueError(f"its {key} contributions have shape {array.shape} ({array.dtype}) for "
                             f"{layers} layers and {tokens} tokens")
        found[key] = _read_only(array)
    return found


def _run_document(run: AttentionRun) -> dict:
    generation = run.generation
    return {
        "text": run.text,
        "pair": run.pair,
        "tokens": list(run.tokens),
        "labels": list(run.labels),
        "word_ids": list(run.word_ids),
        "model": asdict(run.model),
        "truncated": run.truncated,
        "notice": run.notice,
        "timings": dict(run.timings),
        "decoder_tokens": list(run.decoder_tokens) if run.decoder_tokens is not None else None,
        "decoder_labels": list(run.decoder_labels) if run.decoder_labels is not None else None,
        "prompt_length": run.prompt_length,
        "generation": asdict(generation) if generation is not None and hasattr(generation, "__dataclass_fields__")
        else None,
    }


def _read_only(array: np.ndarray) -> np.ndarray:
    array = np.array(array)
    array.setflags(write=False)
    return array


def _model_facts(data: dict) -> ModelFacts:
    known = {f.name for f in fields(ModelFacts)}
    return ModelFacts(**{key: value for key, value in data.items() if key in known})


def _generation(data: dict | None):
    if not data:
        return None
    from analysis.generation.records import Generation, GenerationStep

    steps = tuple(GenerationStep(**{**step, "top": tuple(tuple(t) for t in step["top"]),
                                    "top_ids": tuple(step["top_ids"]), "lens": tuple(step["lens"]),
                                    "lens_ids": tuple(step["lens_ids"])}) for step in data["steps"])
    return Generation(**{**data, "steps": steps, "prompt_ids": tuple(data["prompt_ids"])})


def _run_from(document: dict, arrays: dict[str, np.ndarray]) -> AttentionRun:
    tokens = tuple(document["tokens"])
    attentions = arrays["attentions"]
    if attentions.ndim != 4 or attentions.shape[-1] != len(tokens) or attentions.shape[-2] != len(tokens):
        raise ValueError(f"its attentions have shape {attentions.shape} for {len(tokens)} tokens")
    for key in ("input_ids", "special_mask", "segment_ids"):
        if len(arrays[key]) != len(tokens):
            raise ValueError(f"its {key} have {len(arrays[key])} entries for {len(tokens)} tokens")
    optional = {key: _read_only(arrays[key]) if key in arrays else None
                for key in ("decoder_input_ids", "decoder_attentions", "cross_attentions")}
    return AttentionRun(
        text=document["text"],
        pair=document["pair"],
        tokens=tokens,
        labels=tuple(document["labels"]),
        input_ids=_read_only(arrays["input_ids"].astype(np.int64)),
        offsets=_read_only(arrays["offsets"].astype(np.int64)),
        word_ids=tuple(document["word_ids"]),
        special_mask=_read_only(arrays["special_mask"].astype(bool)),
        segment_ids=_read_only(arrays["segment_ids"].astype(np.int64)),
        attentions=_read_only(attentions),
        model=_model_facts(document["model"]),
        truncated=bool(document.get("truncated", False)),
        notice=document.get("notice"),
        timings=dict(document.get("timings") or {}),
        decoder_tokens=tuple(document["decoder_tokens"]) if document.get("decoder_tokens") else None,
        decoder_labels=tuple(document["decoder_labels"]) if document.get("decoder_labels") else None,
        prompt_length=document.get("prompt_length"),
        generation=_generation(document.get("generation")),
        contributions=_contributions_from(arrays, attentions.shape[0], len(tokens)),
        **optional,
    )
