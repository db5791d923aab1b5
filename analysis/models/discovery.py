"""GGUF model files already on this computer: Ollama, LM Studio, llama.cpp, the HF cache.

:func:`find_gguf_models` lists them for the window's model picker. It is cheap: it reads
Ollama's small manifest files and otherwise only lists folders and stats files (no GGUF
header is opened, no torch is imported), so it can run when the window starts.

Where each tool keeps its models (``home`` is the user's home folder):

- Ollama: ``home/.ollama/models`` (or ``$OLLAMA_MODELS``). Each pulled model has a JSON
  manifest ``manifests/<registry>/<namespace>/<name>/<tag>``; its layer whose
  ``mediaType`` is ``application/vnd.ollama.image.model`` names the weights' blob by digest,
  ``blobs/sha256-<hex>`` (a GGUF file without a ``.gguf`` suffix). Listed as
  ``name:tag`` (``namespace/name:tag`` outside the ``library`` namespace).
- LM Studio: ``home/.lmstudio/models`` and ``home/.cache/lm-studio/models``
  (``<publisher>/<repository>/<file>.gguf``).
- llama.cpp: ``home/.cache/llama.cpp`` (or ``$LLAMA_CACHE``), where ``llama-cli -hf``
  downloads.
- The Hugging Face hub cache (``analysis.models.hub_cache.hub_cache_dir()``, or
  ``home/.cache/huggingface/hub`` when ``home`` is given): ``*.gguf`` in snapshots.

Vision projectors (``mmproj*.gguf``) and the later parts of split files
(``*-00002-of-00003.gguf``) are left out: neither loads as a model on its own.

Examples
--------
>>> for found in find_gguf_models():  # doctest: +SKIP
...     print(found.where, found.name, found.size)
ollama llama3.2:1b 1321082688
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["FoundModel", "find_gguf_models", "WHERE"]

WHERE = ("ollama", "lmstudio", "llama.cpp", "hf-cache")
OLLAMA_MODEL_MEDIA_TYPE = "application/vnd.ollama.image.model"
_LATER_PART = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$", re.IGNORECASE)
_MAX_DEPTH = 6  # folders below a tool's root that are searched
_MAX_MANIFEST_BYTES = 1 << 20


@dataclass(frozen=True)
class FoundModel:
    """One GGUF model file found on this computer.

    Attributes
    ----------
    name : str
        What to show: ``"llama3.2:1b"`` (Ollama), the file name, or
        ``"org/repo/file.gguf"`` (HF cache).
    path : Path
        The file; pass ``str(path)`` to :func:`analysis.models.loading.load_model`.
    size : int
        Its size in bytes.
    where : str
        ``"ollama"``, ``"lmstudio"``, ``"llama.cpp"`` or ``"hf-cache"``.
    """

    name: str
    path: Path
    size: int
    where: str


def find_gguf_models(home: str | os.PathLike | None = None) -> list[FoundModel]:
    """Every GGUF model file in the usual places of Ollama, LM Studio, llama.cpp and the
    Hugging Face cache.

    Parameters
    ----------
    home : path, optional
        The home folder to look in (default: the user's). When given, the environment
        overrides (``OLLAMA_MODELS``, ``LLAMA_CACHE``, ``HF_HUB_CACHE``) are ignored, so a
        test can build a fake home in a temporary folder.

    Returns
    -------
    list of FoundModel
        Sorted by ``where`` (in the order of :data:`WHERE`), then by name; one entry per
        file (a file reachable twice is listed once).

    Examples
    --------
    >>> import json, tempfile
    >>> from pathlib import Path
    >>> home = Path(tempfile.mkdtemp())
    >>> blob = home / (".ollama/models/blobs/sha256-" + "ab" * 32)
    >>> manifest = home / ".ollama/models/manifests/registry.ollama.ai/library/tiny/latest"
    >>> manifest.parent.mkdir(parents=True); blob.parent.mkdir(parents=True)
    >>> _ = blob.write_bytes(b"GGUF" + bytes(60))
    >>> _ = manifest.write_text(json.dumps({"layers": [
    ...     {"mediaType": "application/vnd.ollama.image.model", "digest": "sha256:" + "ab" * 32}]}))
    >>> [(m.where, m.name, m.size) for m in find_gguf_models(home)]
    [('ollama', 'tiny:latest', 64)]
    """
    explicit = home is not None
    home = Path(home).expanduser() if explicit else Path.home()
    found: list[FoundModel] = []
    found += _ollama(_env_path("OLLAMA_MODELS", explicit) or home / ".ollama" / "models")
    for root in (home / ".lmstudio" / "models", home / ".cache" / "lm-studio" / "models"):
        found += _gguf_files(root, "lmstudio")
    found += _gguf_files(
        _env_path("LLAMA_CACHE", explicit) or home / ".cache" / "llama.cpp", "llama.cpp"
    )
    found += _hf_cache(_hub_cache(home, explicit))
    unique: dict[str, FoundModel] = {}
    for model in found:
        try:
            key = str(model.path.resolve())
        except OSError:
            key = str(model.path)
        unique.setdefault(key, model)
    order = {where: i for i, where in enumerate(WHERE)}
    return sorted(unique.values(), key=lambda m: (order[m.where], m.name.lower()))


def _env_path(variable: str, explicit_home: bool) -> Path | None:
    value = None if explicit_home else os.environ.get(variable)
    return Path(value).expanduser() if value else None


def _hub_cache(home: Path, explicit_home: bool) -> Path:
    if explicit_home:
        return home / ".cache" / "huggingface" / "hub"
    from analysis.models.hub_cache import hub_cache_dir

    return hub_cache_dir()


def _size(path: Path) -> int | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_size if path.is_file() else None


def _ollama(models: Path) -> list[FoundModel]:
    """Ollama's pulled models: manifest -> the model layer's blob."""
    manifests = models / "manifests"
    if not manifests.is_dir():
        return []
    out = []
    for manifest in _walk_files(manifests, max_depth=_MAX_DEPTH):
        parts = manifest.relative_to(manifests).parts
        if len(parts) < 3:
            continue
        *namespace, name, tag = parts
        digest = _model_digest(manifest)
        if digest is None:
            continue
        blob = models / "blobs" / digest.replace(":", "-", 1)
        size = _size(blob)
        if size is None:
            continue
        if namespace[:1] == ["registry.ollama.ai"]:
            namespace = namespace[1:]
        if namespace == ["library"]:
            namespace = []
        label = "/".join([*namespace, name]) + f":{tag}"
        out.append(FoundModel(label, blob, size, "ollama"))
    return out


def _model_digest(manifest: Path) -> str | None:
    """The ``sha256:<hex>`` digest of a manifest's model layer (None when unreadable)."""
    try:
        if manifest.stat().st_size > _MAX_MANIFEST_BYTES:
            return None
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    layers = data.get("layers") if isinstance(data, dict) else None
    for layer in layers if isinstance(layers, list) else ():
        if isinstance(layer, dict) and layer.get("mediaType") == OLLAMA_MODEL_MEDIA_TYPE:
            digest = layer.get("digest")
            if isinstance(digest, str) and re.fullmatch(r"sha256[:-][0-9a-fA-F]{64}", digest):
                return digest
    return None


def _walk_files(root: Path, *, max_depth: int, suffix: str | None = None):
    """Files under ``root`` (no symlinked folders followed, at most ``max_depth`` deep)."""
    if not root.is_dir():
        return
    base = len(root.parts)
    for folder, dirs, files in os.walk(root, followlinks=False):
        depth = len(Path(folder).parts) - base
        if depth >= max_depth:
            dirs[:] = []
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for file in files:
            if suffix is None or file.lower().endswith(suffix):
                yield Path(folder) / file


def _wanted(file: Path) -> bool:
    name = file.name.lower()
    if name.startswith("mmproj") or "-mmproj" in name:
        return False
    part = _LATER_PART.search(file.name)
    return not (part and int(part.group(1)) > 1)


def _gguf_files(root: Path, where: str) -> list[FoundModel]:
    out = []
    for file in _walk_files(root, max_depth=_MAX_DEPTH, suffix=".gguf"):
        size = _size(file)
        if size is not None and _wanted(file):
            out.append(FoundModel(file.name, file, size, where))
    return out


def _hf_cache(hub: Path) -> list[FoundModel]:
    """``*.gguf`` in the snapshots of the hub cache's model repositories."""
    if not hub.is_dir():
        return []
    out = []
    for repo in sorted(hub.glob("models--*")):
        repo_id = repo.name[len("models--") :].replace("--", "/")
        snapshots = repo / "snapshots"
        for file in _walk_files(snapshots, max_depth=_MAX_DEPTH, suffix=".gguf"):
            size = _size(file)  # snapshot files are links to blobs: stat follows them
            if size is None or not _wanted(file):
                continue
            inner = file.relative_to(snapshots).parts[1:]  # drop the revision folder
            out.append(FoundModel(f"{repo_id}/{'/'.join(inner)}", file, size, "hf-cache"))
    return out
