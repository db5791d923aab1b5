"""Generation: a decoder writes token by token; every step is recorded; one forward pass over
prompt + generation then gives an ordinary run that every view works on.

- :func:`generate` (steps + run), :func:`generate_steps` (the token loop: streams
  :class:`GenerationStep` records to ``on_token``, stops when ``cancelled()``),
  :func:`generation_run` (the one forward pass);
- :class:`Generation`, :class:`GenerationStep`: the records (no torch needed to read them);
- :class:`LogitLens`: each layer's prediction through the final norm and the unembedding.

Torch is imported by the submodules that run models, on first use of those functions.
"""

from __future__ import annotations

from analysis.generation.records import STOP_REASONS, Generation, GenerationStep

__all__ = [
    "STOP_REASONS",
    "Generation",
    "GenerationError",
    "GenerationStep",
    "LogitLens",
    "build_prompt",
    "end_of_turn_ids",
    "generate",
    "generate_steps",
    "generation_run",
]

_LAZY = {
    "GenerationError": "analysis.generation.loop",
    "build_prompt": "analysis.generation.loop",
    "end_of_turn_ids": "analysis.generation.loop",
    "generate": "analysis.generation.loop",
    "generate_steps": "analysis.generation.loop",
    "generation_run": "analysis.generation.loop",
    "LogitLens": "analysis.generation.lens",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'analysis.generation' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
