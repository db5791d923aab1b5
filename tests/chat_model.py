"""The embedded chat model (SmolLM2-135M-Instruct, from its GGUF file), loaded once per session.

The first load converts the GGUF file into the conversion cache; ``chat_loaded`` points
``ATLAS_CACHE_DIR`` at a temporary folder for the whole session first, so no test writes into
the user's cache, and every later ``load_model("smollm2")`` in the session reads that folder.
Registered for every test by ``tests/conftest.py``.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def chat_cache_dir(tmp_path_factory):
    """The session's ``ATLAS_CACHE_DIR`` (a temporary folder), set while the session runs."""
    folder = tmp_path_factory.mktemp("atlas-cache")
    patch = pytest.MonkeyPatch()
    patch.setenv("ATLAS_CACHE_DIR", str(folder))
    yield folder
    patch.undo()


@pytest.fixture(scope="session")
def chat_loaded(chat_cache_dir):
    """``load_model("smollm2")``, loaded (and converted into the session's cache) once."""
    from analysis.models.loading import load_model

    return load_model("smollm2")
