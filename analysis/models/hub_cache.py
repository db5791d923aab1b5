"""The local Hugging Face cache: where it is and which models it holds. No torch, no network,
so the window can list cached models at start-up."""

from __future__ import annotations

import os
from pathlib import Path


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache folder, read from the environment at call time."""
    from huggingface_hub import constants

    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path(constants.HF_HUB_CACHE)


def cached_hub_models() -> list[str]:
    """Hub ids of the models in the local Hugging Face cache that have a ``config.json``.

    Reads the cache folder only; never touches the network. Sorted, case-insensitively.
    """
    from huggingface_hub import scan_cache_dir

    cache = hub_cache_dir()
    if not cache.is_dir():
        return []
    try:
        info = scan_cache_dir(cache)
    except Exception:  # CacheNotFound, CorruptedCacheException: nothing usable
        return []
    ids = set()
    for repo in info.repos:
        if repo.repo_type != "model":
            continue
        names = {f.file_name for rev in repo.revisions for f in rev.files}
        if "config.json" in names:
            ids.add(repo.repo_id)
    return sorted(ids, key=str.lower)


# --- loading -------------------------------------------------------------------------
