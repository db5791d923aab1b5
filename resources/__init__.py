"""Shipped files: sample texts, icons, styles. Found relative to this package, also in a bundle."""

from __future__ import annotations

import json
from pathlib import Path

RESOURCES = Path(__file__).resolve().parent


def resource_path(*parts: str) -> Path:
    return RESOURCES.joinpath(*parts)


def sample_texts() -> list[dict]:
    """``[{"name", "text", "pair"}]`` from ``samples/samples.json``, in menu order."""
    with open(resource_path("samples", "samples.json"), encoding="utf-8") as handle:
        return json.load(handle)


def case_studies() -> list[dict]:
    """``[{"name", "model", "prompt", "chat", "max_new_tokens", "note"}]``: the generation case
    studies of ``samples/case_studies.json``, in menu order."""
    with open(resource_path("samples", "case_studies.json"), encoding="utf-8") as handle:
        return json.load(handle)
