"""Shared fixtures for the analysis tests: tiny models of every family, built once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.tiny_models import build_tiny_model


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Callable[[str], Path]:
    """``tiny_model_dir(family)`` -> folder of a tiny random model, built once per session.

    Treat the folder as read-only: copy it (``shutil.copytree``) before changing files.
    """
    folders: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in folders:
            folder = tmp_path_factory.mktemp(f"tiny-{family}")
            folders[family] = build_tiny_model(family, folder)
        return folders[family]

    return get


@pytest.fixture(scope="session")
def default_loaded():
    """The embedded default model, loaded once for the session (torch imported here)."""
    from analysis.models.loading import load_model

    return load_model()


@pytest.fixture
def fresh_model_cache():
    """An empty model cache before and after the test (not autouse: keeps torch unimported
    for the other analysis tests)."""
    from analysis.models.loading import clear_model_cache

    clear_model_cache()
    yield
    clear_model_cache()
