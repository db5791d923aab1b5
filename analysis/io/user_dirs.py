"""Where Attention Atlas keeps files of its own: a cache (GGUF conversions, ...) and a data
folder (recovered texts, autosaved sessions). Never inside the installed program or bundle.

``ATLAS_CACHE_DIR`` and ``ATLAS_DATA_DIR`` override them (tests point them at a temporary
folder); otherwise the platform's usual places: ``$XDG_CACHE_HOME/attention-atlas``
(``~/.cache/attention-atlas``) and ``$XDG_DATA_HOME/attention-atlas``
(``~/.local/share/attention-atlas``) on Linux, ``~/Library/Caches|Application Support`` on
macOS, ``%LOCALAPPDATA%`` on Windows.

Examples
--------
>>> import os
>>> os.environ["ATLAS_CACHE_DIR"] = "/tmp/atlas-cache"
>>> str(cache_dir())
'/tmp/atlas-cache'
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

APP_FOLDER = "attention-atlas"


def _platform_base(kind: str) -> Path:
    home = Path.home()
    if sys.platform == "darwin":
        return home / "Library" / ("Caches" if kind == "cache" else "Application Support")
    if os.name == "nt":
        local = os.environ.get("LOCALAPPDATA")
        base = Path(local) if local else home / "AppData" / "Local"
        return base / ("Cache" if kind == "cache" else "")
    variable, default = ("XDG_CACHE_HOME", ".cache") if kind == "cache" else ("XDG_DATA_HOME", ".local/share")
    value = os.environ.get(variable)
    return Path(value) if value else home / default


def cache_dir() -> Path:
    """The folder for caches (may be deleted at any time); not created here."""
    override = os.environ.get("ATLAS_CACHE_DIR")
    return Path(override) if override else _platform_base("cache") / APP_FOLDER


def data_dir() -> Path:
    """The folder for the person's own data (recovered texts, autosave); not created here."""
    override = os.environ.get("ATLAS_DATA_DIR")
    return Path(override) if override else _platform_base("data") / APP_FOLDER


def folder_size(folder: Path) -> int:
    """Total bytes of the regular files under ``folder`` (0 when it does not exist)."""
    if not folder.is_dir():
        return 0
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file() and not path.is_symlink())
