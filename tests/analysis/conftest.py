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


@pytest.fixture(scope="session")
def tiny(tiny_model_dir):
    """``tiny(family)`` -> the loaded tiny model of that family, loaded once per session."""
    from analysis.models.loading import load_model

    cache = {}

    def get(family):
        if family not in cache:
            cache[family] = load_model(str(tiny_model_dir(family)))
        return cache[family]

    return get


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if the model would be loaded (the option checks come first)."""
    import analysis.models.loading as loading

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the options were checked")

    monkeypatch.setattr(loading, "load_model", refuse)
